// RUN: llamac-opt %s -llm-allreduce-bucketing="bucket-cap-mb=0" -verify-diagnostics

// expected-error@+1 {{bucket sizes must be positive, got bucket-cap-mb = 0, first-bucket-mb = 1}}
func.func @zero(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
