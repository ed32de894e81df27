// RUN: llamac-opt %s -split-input-file -llm-lower-to-lrt | FileCheck %s

// Every llm op becomes a kernel named after it, with its attributes as
// params; reshape becomes a view; AdamW works in place.
// CHECK-LABEL: func @lowering
// CHECK: %[[Y:.*]] = lrt.kernel "rms_norm"(%{{.*}}, %{{.*}}) {params = {eps = 1.000000e-05 : f64}} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK: %[[V:.*]] = lrt.view %[[Y]] : tensor<2x8xf32> to tensor<16xf32>
// CHECK: lrt.kernel "clip_by_value"(%[[V]]) {params = {limit = 1.000000e+00 : f64}}
// CHECK: lrt.kernel "adamw"({{.*}}) {inplace = array<i64: 0, 2, 3>, params = {beta1 = 9.000000e-01 : f64, {{.*}}}}
// CHECK-NOT: llm.
func.func @lowering(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %p: tensor<16xf32>, %lr: tensor<f32>,
                    %s: tensor<i64>) -> (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>) {
  %y = llm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %v = llm.reshape %y : (tensor<2x8xf32>) -> tensor<16xf32>
  %g = llm.clip_by_value %v {limit = 1.0 : f64} : (tensor<16xf32>) -> tensor<16xf32>
  %p1, %m1, %v1 = llm.adamw %p, %g, %p, %p, %lr, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<f32>, tensor<i64>) -> (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>)
  return %p1, %m1, %v1 : tensor<16xf32>, tensor<16xf32>, tensor<16xf32>
}

// -----

// shard.all_reduce becomes the runtime's all_reduce kernel.
// CHECK-LABEL: func @all_reduce
// CHECK: lrt.kernel "all_reduce"(%{{.*}}) {params = {grid_axes = array<i64: 1>, reduction = "sum"}} : (tensor<4xf32>) -> tensor<4xf32>
shard.grid @world(shape = 1x2x1)
func.func @all_reduce(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = shard.all_reduce %x on @world grid_axes = [1] : tensor<4xf32> -> tensor<4xf32>
  return %y : tensor<4xf32>
}
