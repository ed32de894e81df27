// RUN: llamac-opt %s -llm-tensor-parallel="tp=3 sequence-parallel=true" -verify-diagnostics

func.func @sequence(%x: tensor<2x4x6xf32>, %w: tensor<6xf32>) {
  // expected-error@+1 {{sequence parallelism: tp = 3 does not divide the sequence length (4)}}
  %n = llm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x4x6xf32>, tensor<6xf32>) -> tensor<2x4x6xf32>
  return
}
