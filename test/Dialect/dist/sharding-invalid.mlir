// RUN: llamac-opt %s -split-input-file -verify-diagnostics

// expected-error@+1 {{unknown grid axis 'xp' (expected pp, dp or tp)}}
func.func @unknown_axis(%w: tensor<4xf32> {dist.sharding = #dist.sharding<[{xp}]>}) { return }

// -----

// expected-error@+1 {{grid axis 'tp' given twice}}
func.func @axis_twice(%w: tensor<4xf32> {dist.sharding = #dist.sharding<[{tp, tp}]>}) { return }

// -----

// expected-error@+1 {{grid axis 'tp' is used twice in one sharding}}
func.func @axis_two_dims(%w: tensor<4x4xf32> {dist.sharding = #dist.sharding<[{tp}, {tp}]>}) { return }

// -----

// expected-error@+1 {{expected 'partial = {...}' or a priority 'pN', got 'p'}}
func.func @bad_priority(%w: tensor<4xf32> {dist.sharding = #dist.sharding<[{tp}], p>}) { return }

// -----

func.func @constraint_rank(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error@+1 {{'dist.constraint' op sharding has 3 dimensions but the tensor 'tensor<2x8xf32>' has rank 2}}
  %0 = dist.constraint %x <[{}, {tp}, {}]> : tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// -----

func.func @constraint_partial(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error@+1 {{'dist.constraint' op a constraint cannot ask for partial sums}}
  %0 = dist.constraint %x <[{}, {}], partial = {tp}> : tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}
