// RUN: llamac-opt %s -split-input-file -llm-grad-accumulation="microbatches=2" -verify-diagnostics

// expected-error@+1 {{microbatching needs `tokens` / `targets` arguments}}
func.func @no_data(%x: tensor<f32>) -> (tensor<f32> {llm.role = "loss"}) {
  return %x : tensor<f32>
}

// -----

// expected-error@+1 {{llm-grad-accumulation runs right after llm-autodiff; result 1 has role 'new_param'}}
func.func @late(%x: tensor<f32>, %t: tensor<2xi32> {llm.role = "tokens"}) -> (tensor<f32> {llm.role = "loss"}, tensor<f32> {llm.role = "new_param"}) {
  return %x, %x : tensor<f32>, tensor<f32>
}
