// RUN: llamac-opt %s -split-input-file -llm-optimizer="clip-grad-norm=1.0 clip-grad-value=1.0" -verify-diagnostics
// RUN: not llamac-opt %s -split-input-file -llm-optimizer="clip-grad-norm=-1.0" 2>&1 | FileCheck %s --check-prefix=NEG

// expected-error@+2 {{clip-grad-norm and clip-grad-value are mutually exclusive; choose one clipping mode}}
// NEG: clipping thresholds must be non-negative, got clip-grad-norm = -1, clip-grad-value = 0
func.func @both_clip_modes(%w: tensor<4xf32> {llm.param = "w"}, %g: tensor<4xf32>, %loss: tensor<f32>)
    -> (tensor<f32> {llm.role = "loss"}, tensor<4xf32> {llm.param = "w", llm.role = "grad"}) {
  return %loss, %g : tensor<f32>, tensor<4xf32>
}

// -----

// expected-error@+1 {{gradient result #1 names no parameter argument of the function}}
func.func @grad_without_param(%g: tensor<4xf32>, %loss: tensor<f32>)
    -> (tensor<f32> {llm.role = "loss"}, tensor<4xf32> {llm.param = "missing", llm.role = "grad"}) {
  return %loss, %g : tensor<f32>, tensor<4xf32>
}
