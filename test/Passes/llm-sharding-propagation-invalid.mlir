// RUN: llamac-opt %s -split-input-file -llm-sharding-propagation -verify-diagnostics

// expected-error@+1 {{sharding annotations need the device grid `shard.grid @world(shape = PPxDPxTP)`}}
module {
func.func @no_grid(%w: tensor<4x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}]>}) { return }
}

// -----

// expected-error@+1 {{grid @world must have 3 axes (pp, dp, tp), got 2}}
shard.grid @world(shape = 2x2)
func.func @two_axes(%w: tensor<4x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}]>}) { return }

// -----

shard.grid @world(shape = 1x1x2)
// expected-error@+1 {{argument 0 (w): sharding #dist.sharding<[{tp}]> does not fit its type 'tensor<4x8xf32>' (one entry per dimension, no partial sums)}}
func.func @rank_mismatch(%w: tensor<4x8xf32> {llm.param = "w", dist.sharding = #dist.sharding<[{tp}]>}) { return }

// -----

shard.grid @world(shape = 1x1x4)
// expected-error@+1 {{argument 0 (w): 'tensor<6x8xf32>' does not split evenly over #dist.sharding<[{tp}, {}]>}}
func.func @not_divisible(%w: tensor<6x8xf32> {llm.param = "w", dist.sharding = #dist.sharding<[{tp}, {}]>}) { return }

// -----

// Two user annotations that split one factor differently contradict each
// other; weaker ones would be resolved by the conflict rule.
shard.grid @world(shape = 1x2x2)
func.func @user_conflict(%a: tensor<8x4xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p0>},
                         %b: tensor<8x4xf32> {dist.sharding = #dist.sharding<[{dp}, {}], p0>}) -> tensor<8x4xf32> {
  // expected-error@+1 {{conflicting user annotations (priority 0): operand 0 splits a dimension over {tp} but operand 1 splits the same dimension over {dp}; give one of them a weaker priority (p1 or more)}}
  %c = llm.add %a, %b : (tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  return %c : tensor<8x4xf32>
}
