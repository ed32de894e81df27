// RUN: llamac-opt %s -split-input-file -llm-spmd-partition -verify-diagnostics

// Partitioning needs every op's decision; one op without it is an error.
shard.grid @world(shape = 1x1x2)
func.func @not_propagated(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error@+1 {{has no `dist.operands`: run llm-sharding-propagation first}}
  %y = llm.add %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %z = llm.add %y, %y {dist.operands = [#dist.sharding<[{}]>, #dist.sharding<[{}]>], dist.sharding = [#dist.sharding<[{}]>]} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %z : tensor<4xf32>
}
