// RUN: llamac-opt %s -split-input-file -llm-sharding-propagation -llm-spmd-partition | FileCheck %s

// Megatron MLP on 2 tensor-parallel ranks: local weight shapes, no
// communication until the row-parallel partial sum meets the residual.
// CHECK-LABEL: func @mlp
// CHECK-SAME: %arg2: tensor<8x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}]>, llm.param = "wup"}
// CHECK-SAME: %arg3: tensor<8x8xf32> {dist.sharding = #dist.sharding<[{}, {tp}]>, llm.param = "wdown"}
// CHECK: llm.linear {{.*}} -> tensor<2x4x8xf32>
// CHECK: %[[D:.*]] = llm.linear
// CHECK-NEXT: %[[R:.*]] = shard.all_reduce %[[D]] on @world grid_axes = [2] : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: llm.add %arg0, %[[R]]
// CHECK-NOT: dist.operands
shard.grid @world(shape = 1x1x2)
func.func @mlp(%x: tensor<2x4x8xf32>, %wn: tensor<8xf32>,
               %wup: tensor<16x8xf32> {llm.param = "wup", dist.sharding = #dist.sharding<[{tp}, {}], p1>},
               %wdown: tensor<8x16xf32> {llm.param = "wdown", dist.sharding = #dist.sharding<[{}, {tp}], p1>})
    -> tensor<2x4x8xf32> {
  %n = llm.rms_norm %x, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %u = llm.linear %n, %wup : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %s = llm.swiglu %u, %u : (tensor<2x4x16xf32>, tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %d = llm.linear %s, %wdown : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %r = llm.add %x, %d : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  return %r : tensor<2x4x8xf32>
}

// -----

// Sequence parallelism: replicated -> sequence split is a local slice,
// split -> whole an all-gather, partial -> split a reduce-scatter; the
// constraint op disappears.
// CHECK-LABEL: func @sequence
// CHECK: %[[S:.*]] = shard.all_slice %arg0 on @world grid_axes = [2] slice_axis = 1 : tensor<2x4x8xf32> -> tensor<2x2x8xf32>
// CHECK: %[[N:.*]] = llm.rms_norm %[[S]], %arg1 {{.*}} -> tensor<2x2x8xf32>
// CHECK: %[[G:.*]] = shard.all_gather %[[N]] on @world grid_axes = [2] gather_axis = 1 : tensor<2x2x8xf32> -> tensor<2x4x8xf32>
// CHECK: %[[U:.*]] = llm.linear %[[G]], %arg2
// CHECK: %[[D:.*]] = llm.linear
// CHECK: %[[RS:.*]] = shard.reduce_scatter %[[D]] on @world grid_axes = [2] scatter_axis = 1 : tensor<2x4x8xf32> -> tensor<2x2x8xf32>
// CHECK: llm.add %[[S]], %[[RS]] {{.*}} -> tensor<2x2x8xf32>
// CHECK-NOT: dist.constraint
shard.grid @world(shape = 1x1x2)
func.func @sequence(%x: tensor<2x4x8xf32>, %wn: tensor<8xf32> {llm.param = "wn", dist.sharding = #dist.sharding<[{}], p1>},
                    %wup: tensor<16x8xf32> {llm.param = "wup", dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                    %wdown: tensor<8x16xf32> {llm.param = "wdown", dist.sharding = #dist.sharding<[{}, {tp}], p1>}) -> tensor<2x4x8xf32> {
  %xs = dist.constraint %x <[{}, {tp}, {}], p2> : tensor<2x4x8xf32>
  %n = llm.rms_norm %xs, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %u = llm.linear %n, %wup : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %d = llm.linear %u, %wdown : (tensor<2x4x16xf32>, tensor<8x16xf32>) -> tensor<2x4x8xf32>
  %r = llm.add %xs, %d : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %rs = dist.constraint %r <[{}, {tp}, {}], p2> : tensor<2x4x8xf32>
  return %rs : tensor<2x4x8xf32>
}

// -----

// Vocab-parallel embedding and cross-entropy: the local table lookup is
// masked by the vocabulary shard and all-reduced; the loss reduces the row
// max (max), the sum of exponentials and the target logit (sums), never the
// logits. The gradient reuses the same statistics.
// CHECK-LABEL: func @vocab
// CHECK-SAME: %arg0: tensor<16x8xf32>
// CHECK: %[[E:.*]] = llm.embedding %arg0, %arg2 {shard_axes = array<i64: 2>} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
// CHECK: shard.all_reduce %[[E]] on @world grid_axes = [2]
// CHECK: %[[L:.*]] = llm.linear {{.*}} -> tensor<2x4x16xf32>
// CHECK: %[[M:.*]] = llm.row_max %[[L]]
// CHECK: %[[MR:.*]] = shard.all_reduce %[[M]] on @world grid_axes = [2] reduction = max
// CHECK: %[[S:.*]] = llm.row_sum_exp %[[L]], %[[MR]]
// CHECK: %[[SR:.*]] = shard.all_reduce %[[S]] on @world grid_axes = [2] :
// CHECK: %[[T:.*]] = llm.target_logit %[[L]], %arg3 {shard_axes = array<i64: 2>}
// CHECK: %[[TR:.*]] = shard.all_reduce %[[T]] on @world grid_axes = [2] :
// CHECK: llm.cross_entropy_from_stats %[[MR]], %[[SR]], %[[TR]] {normalizer = 8 : i64}
// CHECK: llm.cross_entropy_grad_from_stats %{{.*}}, %[[L]], %arg3, %[[M2:.*]], %[[S2:.*]] {normalizer = 8 : i64, shard_axes = array<i64: 2>} {{.*}} -> tensor<2x4x16xf32>
shard.grid @world(shape = 1x1x2)
func.func @vocab(%emb: tensor<32x8xf32> {llm.param = "emb", dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                 %wn: tensor<8xf32>, %ids: tensor<2x4xi32>, %targets: tensor<2x4xi32>, %one: tensor<f32>)
    -> (tensor<f32>, tensor<2x4x32xf32>) {
  %h = llm.embedding %emb, %ids : (tensor<32x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %n = llm.rms_norm %h, %wn {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %logits = llm.linear %n, %emb : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  %loss = llm.cross_entropy %logits, %targets {normalizer = 8 : i64} : (tensor<2x4x32xf32>, tensor<2x4xi32>) -> tensor<f32>
  %dl = llm.cross_entropy_grad %one, %logits, %targets {normalizer = 8 : i64} : (tensor<f32>, tensor<2x4x32xf32>, tensor<2x4xi32>) -> tensor<2x4x32xf32>
  return %loss, %dl : tensor<f32>, tensor<2x4x32xf32>
}

// -----

// The global norm of differently split gradients: one sum of squares per
// sharding group, the split group's all-reduced, the replicated one counted
// once, then the square root.
// CHECK-LABEL: func @global_norm
// CHECK: %[[A:.*]] = llm.sum_squares %arg0, %arg1 : (tensor<8x8xf32>, tensor<16x4xf32>) -> tensor<f32>
// CHECK: %[[AR:.*]] = shard.all_reduce %[[A]] on @world grid_axes = [2] : tensor<f32> -> tensor<f32>
// CHECK: %[[B:.*]] = llm.sum_squares %arg2 : (tensor<8xf32>) -> tensor<f32>
// CHECK: %[[S:.*]] = llm.add %[[AR]], %[[B]]
// CHECK: llm.sqrt %[[S]]
shard.grid @world(shape = 1x1x2)
func.func @global_norm(%a: tensor<16x8xf32> {llm.param = "a", dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                       %b: tensor<16x8xf32> {llm.param = "b", dist.sharding = #dist.sharding<[{}, {tp}], p1>},
                       %c: tensor<8xf32> {llm.param = "c", dist.sharding = #dist.sharding<[{}], p1>}) -> tensor<f32> {
  %n = llm.global_norm %a, %b, %c : (tensor<16x8xf32>, tensor<16x8xf32>, tensor<8xf32>) -> tensor<f32>
  return %n : tensor<f32>
}
