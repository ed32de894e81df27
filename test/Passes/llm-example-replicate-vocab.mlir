// RUN: llamac-opt %s -llm-example-replicate-vocab | FileCheck %s --check-prefix=ANNOTATE
// RUN: llamac-opt %s -llm-example-replicate-vocab -llm-tensor-parallel="tp=2" -llm-sharding-propagation -llm-spmd-partition | FileCheck %s

// The worked example of docs/guides/writing-a-sharding-pass.md: the
// embedding and the LM head are annotated whole at priority 0 (their
// moments are left to follow them); the --tp plan then leaves them alone,
// so the lookup and the loss run on whole tensors with no collectives,
// while the projections stay tensor-parallel.
// ANNOTATE: %arg0: tensor<64x16xf32> {dist.sharding = #dist.sharding<[{}, {}], p0>, llm.param = "model.embed_tokens.weight", llm.role = "param"}
// ANNOTATE-SAME: %arg1: tensor<32x16xf32> {llm.param = "model.layers.0.mlp.up_proj.weight", llm.role = "param"}
// ANNOTATE-SAME: %arg2: tensor<64x16xf32> {dist.sharding = #dist.sharding<[{}, {}], p0>, llm.param = "lm_head.weight", llm.role = "param"}
// ANNOTATE-SAME: %arg3: tensor<64x16xf32> {llm.param = "lm_head.weight", llm.role = "adam_m"}

// CHECK-LABEL: func @model
// CHECK-SAME: %arg1: tensor<16x16xf32> {dist.sharding = #dist.sharding<[{tp}, {}]>
// CHECK: llm.embedding %arg0, %arg4 : (tensor<64x16xf32>, tensor<2x4xi32>) -> tensor<2x4x16xf32>
// CHECK-NOT: shard.all_reduce
// CHECK: llm.cross_entropy %{{.*}}, %arg5 {normalizer = 8 : i64} : (tensor<2x4x64xf32>, tensor<2x4xi32>) -> tensor<f32>
func.func @model(%emb: tensor<64x16xf32> {llm.param = "model.embed_tokens.weight", llm.role = "param"},
                 %up: tensor<32x16xf32> {llm.param = "model.layers.0.mlp.up_proj.weight", llm.role = "param"},
                 %head: tensor<64x16xf32> {llm.param = "lm_head.weight", llm.role = "param"},
                 %m: tensor<64x16xf32> {llm.param = "lm_head.weight", llm.role = "adam_m"},
                 %ids: tensor<2x4xi32>, %targets: tensor<2x4xi32>) -> (tensor<f32>, tensor<2x4x32xf32>) {
  %h = llm.embedding %emb, %ids : (tensor<64x16xf32>, tensor<2x4xi32>) -> tensor<2x4x16xf32>
  %u = llm.linear %h, %up : (tensor<2x4x16xf32>, tensor<32x16xf32>) -> tensor<2x4x32xf32>
  %logits = llm.linear %h, %head : (tensor<2x4x16xf32>, tensor<64x16xf32>) -> tensor<2x4x64xf32>
  %loss = llm.cross_entropy %logits, %targets {normalizer = 8 : i64} : (tensor<2x4x64xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %loss, %u : tensor<f32>, tensor<2x4x32xf32>
}
