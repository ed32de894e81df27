// RUN: llamac-opt %s -split-input-file -llm-autodiff -verify-diagnostics

func.func @op_without_rule(%w: tensor<2x8xf32> {llm.param = "w"}, %x: tensor<2x8xf32>,
                           %t: tensor<2xi32>) -> (tensor<f32> {llm.role = "loss"}) {
  // expected-error@+1 {{op 'arith.addf' has no gradient rule, but lies between a parameter and the loss}}
  %s = arith.addf %w, %x : tensor<2x8xf32>
  %loss = llm.cross_entropy %s, %t {normalizer = 2 : i64} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// expected-error@+1 {{the loss result must be tensor<f32>, got 'tensor<2xf32>'}}
func.func @loss_not_scalar(%w: tensor<2xf32> {llm.param = "w"}) -> (tensor<2xf32> {llm.role = "loss"}) {
  return %w : tensor<2xf32>
}

// -----

func.func @through_lse(%wq: tensor<16x16xf32> {llm.param = "q"}, %x: tensor<1x2x16xf32>)
    -> (tensor<f32> {llm.role = "loss"}) {
  %q = llm.linear %x, %wq : (tensor<1x2x16xf32>, tensor<16x16xf32>) -> tensor<1x2x16xf32>
  %q4 = llm.reshape %q : (tensor<1x2x16xf32>) -> tensor<1x2x1x16xf32>
  // expected-error@+1 {{cannot differentiate through the log-sum-exp result}}
  %o, %lse = llm.attention %q4, %q4, %q4 {scale = 0.25 : f64} : (tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>) -> (tensor<1x2x1x16xf32>, tensor<1x1x2xf32>)
  %t = arith.constant dense<0> : tensor<1x1xi32>
  %l3 = llm.reshape %lse : (tensor<1x1x2xf32>) -> tensor<1x1x2xf32>
  %loss = llm.cross_entropy %l3, %t {normalizer = 1 : i64} : (tensor<1x1x2xf32>, tensor<1x1xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}
