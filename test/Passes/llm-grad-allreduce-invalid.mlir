// RUN: llamac-opt %s -split-input-file -llm-grad-allreduce="dp=2 tp=2" -verify-diagnostics

// expected-error@+1 {{grid @world has shape 1, 2 but the layout needs pp x dp x tp}}
shard.grid @world(shape = 1x2)
func.func @wrong_grid(%loss: tensor<f32>) -> (tensor<f32> {llm.role = "loss"}) {
  return %loss : tensor<f32>
}
