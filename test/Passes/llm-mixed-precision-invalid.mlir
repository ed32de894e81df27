// RUN: llamac-opt %s -llm-mixed-precision="precision=fp8" -verify-diagnostics

// expected-error@+1 {{precision must be fp32, bf16 or fp16, got 'fp8'}}
func.func @f(%x: tensor<f32>) -> (tensor<f32> {llm.role = "loss"}) {
  return %x : tensor<f32>
}
