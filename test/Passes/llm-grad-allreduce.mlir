// RUN: llamac-opt %s -split-input-file -llm-grad-allreduce="dp=2 tp=1 pp=1" | FileCheck %s
// RUN: llamac-opt %s -split-input-file -llm-grad-allreduce="dp=1" | FileCheck %s --check-prefix=SINGLE

// Every gradient and the loss are summed over the data-parallel axis (1) of
// the pp x dp x tp grid; other results are left alone.
// CHECK: shard.grid @world(shape = 1x2x1)
// CHECK-LABEL: func @dp_insertion
// CHECK: %[[L:.*]] = shard.all_reduce %{{.*}} on @world grid_axes = [1] : tensor<f32> -> tensor<f32>
// CHECK: %[[G:.*]] = shard.all_reduce %{{.*}} on @world grid_axes = [1] {llm.grad = "w"} : tensor<4x8xf32> -> tensor<4x8xf32>
// CHECK-NOT: shard.all_reduce
// CHECK: return %[[L]], %[[G]], %{{.*}} :
// SINGLE-LABEL: func @dp_insertion
// SINGLE-NOT: shard.all_reduce
// SINGLE: return %arg2, %arg1, %arg3
func.func @dp_insertion(%w: tensor<4x8xf32> {llm.param = "w"}, %gw: tensor<4x8xf32>,
                        %loss: tensor<f32>, %other: tensor<f32>)
    -> (tensor<f32> {llm.role = "loss"},
        tensor<4x8xf32> {llm.param = "w", llm.role = "grad"},
        tensor<f32> {llm.role = "lr"}) {
  return %loss, %gw, %other : tensor<f32>, tensor<4x8xf32>, tensor<f32>
}

// -----

// An existing grid of the right shape is reused.
// CHECK: shard.grid @world(shape = 1x2x1)
// CHECK-NOT: shard.grid
// CHECK-LABEL: func @existing_grid
shard.grid @world(shape = 1x2x1)
func.func @existing_grid(%loss: tensor<f32>) -> (tensor<f32> {llm.role = "loss"}) {
  return %loss : tensor<f32>
}

// -----

// Low-precision reduction: the gradient is cast down for the all-reduce
// (half the bytes) and back to fp32 after; the loss stays fp32.
// RUN: llamac-opt %s -split-input-file -llm-grad-allreduce="dp=2 reduce-dtype=bf16" | FileCheck %s --check-prefix=BF16
// BF16-LABEL: func @low_precision
// BF16: %[[L:.*]] = shard.all_reduce %arg2 on @world grid_axes = [1] : tensor<f32> -> tensor<f32>
// BF16: %[[C:.*]] = llm.cast %arg1 : (tensor<4x8xf32>) -> tensor<4x8xbf16>
// BF16: %[[R:.*]] = shard.all_reduce %[[C]] on @world grid_axes = [1] {llm.grad = "w"} : tensor<4x8xbf16> -> tensor<4x8xbf16>
// BF16: %[[B:.*]] = llm.cast %[[R]] : (tensor<4x8xbf16>) -> tensor<4x8xf32>
// BF16: return %[[L]], %[[B]]
func.func @low_precision(%w: tensor<4x8xf32> {llm.param = "w"}, %gw: tensor<4x8xf32>, %loss: tensor<f32>)
    -> (tensor<f32> {llm.role = "loss"}, tensor<4x8xf32> {llm.param = "w", llm.role = "grad"}) {
  return %loss, %gw : tensor<f32>, tensor<4x8xf32>
}
