// RUN: llamac-opt %s -split-input-file -llm-sharding-propagation | FileCheck %s

// Column- then row-parallel linear (the Megatron MLP): the intermediate is
// split through swiglu, the row-parallel product is a partial sum, and the
// residual add needs it whole.
// CHECK-LABEL: func @mlp
// CHECK: llm.rms_norm {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {}]>]
// CHECK: llm.linear {{.*}}dist.operands = [#dist.sharding<[{}, {}, {}]>, #dist.sharding<[{tp}, {}]>], dist.sharding = [#dist.sharding<[{}, {}, {tp}]>]
// CHECK: llm.swiglu {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}]>]
// CHECK: llm.linear {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {}], partial = {tp}>]
// CHECK: llm.add {{.*}}dist.operands = [#dist.sharding<[{}, {}, {}]>, #dist.sharding<[{}, {}, {}]>], dist.sharding = [#dist.sharding<[{}, {}, {}]>]
shard.grid @world(shape = 1x1x2)
func.func @mlp(%x: tensor<2x4x8xf32>, %wn: tensor<8xf32> {dist.sharding = #dist.sharding<[{}], p1>},
               %wup: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
               %wdown: tensor<8x16xf32> {dist.sharding = #dist.sharding<[{}, {tp}], p1>})
    -> tensor<2x4x8xf32> {
  %n = llm.rms_norm %x, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %u = llm.linear %n, %wup : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %s = llm.swiglu %u, %u : (tensor<2x4x16xf32>, tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %d = llm.linear %s, %wdown : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %r = llm.add %x, %d : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}

// -----

// Attention: column-parallel q/k split the heads (GQA: 4 query heads over 2
// kv heads, split by kv head), through reshape, RoPE and attention (lse too);
// the merge reshape keeps the split and the row-parallel o_proj is partial.
// CHECK-LABEL: func @attention
// CHECK: llm.reshape {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}, {}]>]
// CHECK: llm.reshape {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}, {}]>]
// CHECK: llm.rope {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}, {}]>]
// CHECK: llm.attention {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}, {}]>, #dist.sharding<[{}, {tp}, {}]>]
// CHECK: llm.reshape {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}]>]
// CHECK: llm.linear {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {}], partial = {tp}>]
shard.grid @world(shape = 1x1x2)
func.func @attention(%x: tensor<2x4x16xf32>,
    %wq: tensor<16x16xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
    %wk: tensor<8x16xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
    %wo: tensor<16x16xf32> {dist.sharding = #dist.sharding<[{}, {tp}], p1>}) -> tensor<2x4x16xf32> {
  %q = llm.linear %x, %wq : (tensor<2x4x16xf32>, tensor<16x16xf32>) -> tensor<2x4x16xf32>
  %k = llm.linear %x, %wk : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %q4 = llm.reshape %q : (tensor<2x4x16xf32>) -> tensor<2x4x4x4xf32>
  %k4 = llm.reshape %k : (tensor<2x4x8xf32>) -> tensor<2x4x2x4xf32>
  %qr = llm.rope %q4 {theta = 1.0e4 : f64} : (tensor<2x4x4x4xf32>) -> tensor<2x4x4x4xf32>
  %o, %lse = llm.attention %qr, %k4, %k4 {scale = 0.5 : f64} : (tensor<2x4x4x4xf32>, tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>) -> (tensor<2x4x4x4xf32>, tensor<2x4x4xf32>)
  %o2 = llm.reshape %o : (tensor<2x4x4x4xf32>) -> tensor<2x4x16xf32>
  %y = llm.linear %o2, %wo : (tensor<2x4x16xf32>, tensor<16x16xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}

// -----

// Vocab-parallel embedding and loss: the lookup is a partial sum over the
// vocabulary split; the LM head's logits are split by vocabulary and the
// cross-entropy takes them split (its own collectives), giving a whole loss.
// CHECK-LABEL: func @vocab
// CHECK: llm.embedding {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {}], partial = {tp}>]
// CHECK: llm.rms_norm {{.*}}dist.operands = [#dist.sharding<[{}, {}, {}]>, #dist.sharding<[{}]>]
// CHECK: llm.linear {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {tp}]>]
// CHECK: llm.cross_entropy {{.*}}dist.operands = [#dist.sharding<[{}, {}, {tp}]>, #dist.sharding<[{}, {}]>], dist.sharding = [#dist.sharding<[]>]
shard.grid @world(shape = 1x1x2)
func.func @vocab(%emb: tensor<32x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                 %wn: tensor<8xf32>, %ids: tensor<2x4xi32>, %targets: tensor<2x4xi32>) -> tensor<f32> {
  %h = llm.embedding %emb, %ids : (tensor<32x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %n = llm.rms_norm %h, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %logits = llm.linear %n, %emb : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  %loss = llm.cross_entropy %logits, %targets {normalizer = 8 : i64} : (tensor<2x4x32xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Partial-sum deferral: the sum of two partial sums stays partial (one
// reduction later instead of one per addend), as do the backward
// accumulations of q/k/v input gradients.
// CHECK-LABEL: func @deferral
// CHECK: llm.linear_grad_input {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {}], partial = {tp}>]
// CHECK: llm.linear_grad_input {{.*}}dist.sharding = [#dist.sharding<[{}, {}, {}], partial = {tp}>]
// CHECK: llm.add {{.*}}dist.operands = [#dist.sharding<[{}, {}, {}], partial = {tp}>, #dist.sharding<[{}, {}, {}], partial = {tp}>], dist.sharding = [#dist.sharding<[{}, {}, {}], partial = {tp}>]
// CHECK: llm.rms_norm_grad {{.*}}dist.operands = [#dist.sharding<[{}, {}, {}]>,
shard.grid @world(shape = 1x1x2)
func.func @deferral(%x: tensor<2x4x8xf32>, %wn: tensor<8xf32>, %gq: tensor<2x4x16xf32>, %gk: tensor<2x4x16xf32>,
    %wq: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
    %wk: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>}) -> tensor<2x4x8xf32> {
  %a = llm.linear_grad_input %gq, %wq : (tensor<2x4x16xf32>, tensor<16x8xf32>) -> tensor<2x4x8xf32>
  %b = llm.linear_grad_input %gk, %wk : (tensor<2x4x16xf32>, tensor<16x8xf32>) -> tensor<2x4x8xf32>
  %s = llm.add %a, %b : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %dx, %dw = llm.rms_norm_grad %s, %x, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>)
  return %dx : tensor<2x4x8xf32>
}

// -----

// Conflict resolution. Rows of x and columns of w both want tp for the
// result: the stronger priority wins (p0 beats p1); at equal priority the
// larger tensor keeps its sharding and the smaller one is resharded.
// CHECK-LABEL: func @conflict_priority
// CHECK: llm.linear {{.*}}dist.operands = [#dist.sharding<[{tp}, {}]>, #dist.sharding<[{}, {}]>], dist.sharding = [#dist.sharding<[{tp}, {}]>]
// CHECK-LABEL: func @conflict_larger_weight
// CHECK: llm.linear {{.*}}dist.operands = [#dist.sharding<[{}, {}]>, #dist.sharding<[{tp}, {}]>], dist.sharding = [#dist.sharding<[{}, {tp}]>]
// CHECK-LABEL: func @conflict_larger_input
// CHECK: llm.linear {{.*}}dist.operands = [#dist.sharding<[{tp}, {}]>, #dist.sharding<[{}, {}]>], dist.sharding = [#dist.sharding<[{tp}, {}]>]
shard.grid @world(shape = 1x1x2)
func.func @conflict_priority(%x: tensor<8x64xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p0>},
                             %w: tensor<16x64xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>}) -> tensor<8x16xf32> {
  %y = llm.linear %x, %w : (tensor<8x64xf32>, tensor<16x64xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}
func.func @conflict_larger_weight(%x: tensor<8x64xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                                  %w: tensor<16x64xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>}) -> tensor<8x16xf32> {
  %y = llm.linear %x, %w : (tensor<8x64xf32>, tensor<16x64xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}
func.func @conflict_larger_input(%x: tensor<32x64xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                                 %w: tensor<16x64xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>}) -> tensor<32x16xf32> {
  %y = llm.linear %x, %w : (tensor<32x64xf32>, tensor<16x64xf32>) -> tensor<32x16xf32>
  return %y : tensor<32x16xf32>
}

// -----

// Sequence parallelism: a constraint splits the residual stream along the
// sequence (p2). The norm runs split; the column-parallel weight (p1) wins
// the tp axis at the linear, so its input is needed whole (an all-gather
// once partitioned); the backward norm-weight gradient is a partial sum.
// CHECK-LABEL: func @sequence
// CHECK: llm.rms_norm {{.*}}dist.sharding = [#dist.sharding<[{}, {tp}, {}]>]
// CHECK: llm.linear {{.*}}dist.operands = [#dist.sharding<[{}, {}, {}]>, #dist.sharding<[{tp}, {}]>]
// CHECK: llm.rms_norm_grad {{.*}}dist.sharding = [#dist.sharding<[{}, {tp}, {}]>, #dist.sharding<[{}], partial = {tp}>]
shard.grid @world(shape = 1x1x2)
func.func @sequence(%x: tensor<2x4x8xf32>, %wn: tensor<8xf32> {dist.sharding = #dist.sharding<[{}], p1>},
                    %w: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                    %g: tensor<2x4x8xf32>) -> (tensor<2x4x16xf32>, tensor<8xf32>) {
  %xs = dist.constraint %x <[{}, {tp}, {}], p2> : tensor<2x4x8xf32>
  %n = llm.rms_norm %xs, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %y = llm.linear %n, %w : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %dx, %dw = llm.rms_norm_grad %g, %xs, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<8xf32>) -> (tensor<2x4x8xf32>, tensor<8xf32>)
  return %y, %dw : tensor<2x4x16xf32>, tensor<8xf32>
}

// -----

// Optimizer: the moments take their parameter's sharding (unannotated
// arguments are decided by propagation); the global norm reads every
// gradient as it is split.
// CHECK-LABEL: func @optimizer
// CHECK-SAME: %arg2: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}]>, llm.param = "w", llm.role = "adam_m"}
// CHECK-SAME: %arg3: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}]>, llm.param = "w", llm.role = "adam_v"}
// CHECK: llm.global_norm {{.*}}dist.operands = [#dist.sharding<[{tp}, {}]>, #dist.sharding<[{}]>]
// CHECK: llm.adamw {{.*}}dist.sharding = [#dist.sharding<[{tp}, {}]>, #dist.sharding<[{tp}, {}]>, #dist.sharding<[{tp}, {}]>]
shard.grid @world(shape = 1x1x2)
func.func @optimizer(%w: tensor<16x8xf32> {llm.param = "w", dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                     %g: tensor<16x8xf32>, %m: tensor<16x8xf32> {llm.param = "w", llm.role = "adam_m"},
                     %v: tensor<16x8xf32> {llm.param = "w", llm.role = "adam_v"},
                     %gn: tensor<8xf32>, %step: tensor<i64>) -> (tensor<16x8xf32>, tensor<f32>) {
  %lr = llm.lr_schedule %step {lr = 1.0e-3 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, decay_steps = 0 : i64} : (tensor<i64>) -> tensor<f32>
  %norm = llm.global_norm %g, %gn : (tensor<16x8xf32>, tensor<8xf32>) -> tensor<f32>
  %p, %m2, %v2 = llm.adamw %w, %g, %m, %v, %lr, %step {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<f32>, tensor<i64>) -> (tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x8xf32>)
  return %p, %norm : tensor<16x8xf32>, tensor<f32>
}

// -----

// Without annotations the pass changes nothing.
// CHECK-LABEL: func @none
// CHECK-NOT: dist.
shard.grid @world(shape = 1x1x2)
func.func @none(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = llm.add %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}
