// RUN: llamac-opt %s -llm-tensor-parallel="tp=2 dp=2" | FileCheck %s
// RUN: llamac-opt %s -llm-tensor-parallel="tp=2 sequence-parallel=true" | FileCheck %s --check-prefix=SP
// RUN: llamac-opt %s -llm-tensor-parallel="tp=1" | FileCheck %s --check-prefix=OFF

// The default Megatron plan: column-parallel q/k/v/gate/up, row-parallel
// o/down, vocab-parallel embedding and LM head, replicated norms, all at
// priority 1; a user's annotation (p0) is kept.
// CHECK: shard.grid @world(shape = 1x2x2)
// CHECK-LABEL: func @layer
// CHECK-SAME: {dist.sharding = #dist.sharding<[{tp}, {}], p1>, llm.param = "model.embed_tokens.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{}], p1>, llm.param = "model.layers.0.input_layernorm.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{tp}, {}], p1>, llm.param = "model.layers.0.self_attn.q_proj.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{tp}, {}], p1>, llm.param = "model.layers.0.self_attn.k_proj.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{}, {tp}], p1>, llm.param = "model.layers.0.self_attn.o_proj.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{tp}, {}], p1>, llm.param = "model.layers.0.mlp.up_proj.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{}, {tp}], p1>, llm.param = "model.layers.0.mlp.down_proj.weight"}
// CHECK-SAME: {dist.sharding = #dist.sharding<[{}, {}], p0>, llm.param = "lm_head.weight"}
// CHECK-NOT: dist.constraint

// Sequence parallelism: every RMSNorm input (the residual stream) is
// constrained to a sequence split at priority 2, for all of its users.
// SP-LABEL: func @layer
// SP: %[[E:.*]] = llm.embedding
// SP-NEXT: %[[C:.*]] = dist.constraint %[[E]] <[{}, {tp}, {}], p2>
// SP-NEXT: llm.rms_norm %[[C]]
// SP: llm.add %[[C]],

// OFF-NOT: shard.grid
// OFF: %arg0: tensor<64x16xf32> {llm.param = "model.embed_tokens.weight"}
// OFF-NOT: dist.constraint
func.func @layer(%emb: tensor<64x16xf32> {llm.param = "model.embed_tokens.weight"},
                 %n: tensor<16xf32> {llm.param = "model.layers.0.input_layernorm.weight"},
                 %wq: tensor<16x16xf32> {llm.param = "model.layers.0.self_attn.q_proj.weight"},
                 %wk: tensor<8x16xf32> {llm.param = "model.layers.0.self_attn.k_proj.weight"},
                 %wo: tensor<16x16xf32> {llm.param = "model.layers.0.self_attn.o_proj.weight"},
                 %wu: tensor<32x16xf32> {llm.param = "model.layers.0.mlp.up_proj.weight"},
                 %wd: tensor<16x32xf32> {llm.param = "model.layers.0.mlp.down_proj.weight"},
                 %head: tensor<64x16xf32> {llm.param = "lm_head.weight", dist.sharding = #dist.sharding<[{}, {}], p0>},
                 %ids: tensor<2x4xi32>) -> tensor<2x4x16xf32> {
  %h = llm.embedding %emb, %ids : (tensor<64x16xf32>, tensor<2x4xi32>) -> tensor<2x4x16xf32>
  %x = llm.rms_norm %h, %n {eps = 1.0e-5 : f64} : (tensor<2x4x16xf32>, tensor<16xf32>) -> tensor<2x4x16xf32>
  %q = llm.linear %x, %wq : (tensor<2x4x16xf32>, tensor<16x16xf32>) -> tensor<2x4x16xf32>
  %k = llm.linear %x, %wk : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %q4 = llm.reshape %q : (tensor<2x4x16xf32>) -> tensor<2x4x4x4xf32>
  %k4 = llm.reshape %k : (tensor<2x4x8xf32>) -> tensor<2x4x2x4xf32>
  %o, %lse = llm.attention %q4, %k4, %k4 {scale = 0.5 : f64} : (tensor<2x4x4x4xf32>, tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>) -> (tensor<2x4x4x4xf32>, tensor<2x4x4xf32>)
  %o2 = llm.reshape %o : (tensor<2x4x4x4xf32>) -> tensor<2x4x16xf32>
  %a = llm.linear %o2, %wo : (tensor<2x4x16xf32>, tensor<16x16xf32>) -> tensor<2x4x16xf32>
  %r = llm.add %h, %a : (tensor<2x4x16xf32>, tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %u = llm.linear %r, %wu : (tensor<2x4x16xf32>, tensor<32x16xf32>) -> tensor<2x4x32xf32>
  %d = llm.linear %u, %wd : (tensor<2x4x32xf32>, tensor<16x32xf32>) -> tensor<2x4x16xf32>
  return %d : tensor<2x4x16xf32>
}
