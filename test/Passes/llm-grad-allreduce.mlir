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
