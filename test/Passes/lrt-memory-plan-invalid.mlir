// RUN: llamac-opt %s -lrt-memory-plan -verify-diagnostics

func.func @read_after_inplace(%p: tensor<16xf32>, %g: tensor<16xf32>, %lr: tensor<f32>, %s: tensor<i64>)
    -> (tensor<16xf32>, tensor<f32>) {
  %p1 = lrt.kernel "adamw"(%p, %g, %lr, %s) {inplace = array<i64: 0>, params = {}} : (tensor<16xf32>, tensor<16xf32>, tensor<f32>, tensor<i64>) -> tensor<16xf32>
  // expected-error@+1 {{reads operand #0 of the in-place 'adamw' kernel after it was overwritten}}
  %n = lrt.kernel "global_norm"(%p) {params = {}} : (tensor<16xf32>) -> tensor<f32>
  return %p1, %n : tensor<16xf32>, tensor<f32>
}
