// RUN: llamac-opt %s -llm-lower-to-lrt -verify-diagnostics

func.func @foreign_op(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error@+1 {{cannot lower op 'arith.addf' to the runtime: only llm ops, shard.all_reduce, all_gather, reduce_scatter, all_slice and dist bucket ops have kernels}}
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
