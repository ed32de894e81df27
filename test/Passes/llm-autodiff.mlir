// RUN: llamac-opt %s -split-input-file -llm-autodiff | FileCheck %s

// Linear: dx and dw from the linear rule, seeded by the cross-entropy rule.
// CHECK-LABEL: func @linear_rule
// CHECK-SAME: -> (tensor<f32> {llm.role = "loss"}, tensor<16x8xf32> {llm.param = "w", llm.role = "grad"})
// CHECK: %[[LOGITS:.*]] = llm.linear %[[X:.*]], %[[W:.*]] :
// CHECK: %[[ONE:.*]] = llm.constant {value = 1.000000e+00 : f64} : () -> tensor<f32>
// CHECK: %[[DL:.*]] = llm.cross_entropy_grad %[[ONE]], %[[LOGITS]], %{{.*}} {normalizer = 2 : i64}
// CHECK-NOT: llm.linear_grad_input
// CHECK: %[[DW:.*]] = llm.linear_grad_weight %[[DL]], %[[X]]
// CHECK: return %{{.*}}, %[[DW]]
func.func @linear_rule(%w: tensor<16x8xf32> {llm.param = "w"}, %x: tensor<2x8xf32>,
                       %t: tensor<2xi32>) -> (tensor<f32> {llm.role = "loss"}) {
  %l = llm.linear %x, %w : (tensor<2x8xf32>, tensor<16x8xf32>) -> tensor<2x16xf32>
  %loss = llm.cross_entropy %l, %t {normalizer = 2 : i64} : (tensor<2x16xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A parameter used twice gets the sum of both contributions (fan-out).
// CHECK-LABEL: func @fan_out_accumulates
// CHECK-DAG: %[[G1:.*]] = llm.linear_grad_weight
// CHECK-DAG: %[[G2:.*]] = llm.linear_grad_weight
// CHECK: %[[SUM:.*]] = llm.add %[[G1]], %[[G2]]
// CHECK: return %{{.*}}, %[[SUM]]
func.func @fan_out_accumulates(%w: tensor<8x8xf32> {llm.param = "w"}, %x: tensor<2x8xf32>,
                               %t: tensor<2xi32>) -> (tensor<f32> {llm.role = "loss"}) {
  %h = llm.linear %x, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %l = llm.linear %h, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %loss = llm.cross_entropy %l, %t {normalizer = 2 : i64} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Tied embeddings: the table gets the LM-head gradient plus the lookup's.
// CHECK-LABEL: func @tied_embedding
// CHECK-SAME: tensor<32x8xf32> {llm.param = "model.embed_tokens.weight", llm.role = "grad"}
// CHECK: %[[HEAD:.*]] = llm.linear_grad_weight
// CHECK: %[[LOOKUP:.*]] = llm.embedding_grad %{{.*}}, %{{.*}} : (tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<32x8xf32>
// CHECK: %[[SUM:.*]] = llm.add %[[HEAD]], %[[LOOKUP]]
// CHECK: return %{{.*}}, %[[SUM]]
func.func @tied_embedding(%e: tensor<32x8xf32> {llm.param = "model.embed_tokens.weight"},
                          %ids: tensor<2x4xi32>, %t: tensor<2x4xi32>)
    -> (tensor<f32> {llm.role = "loss"}) {
  %h = llm.embedding %e, %ids : (tensor<32x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %l = llm.linear %h, %e : (tensor<2x4x8xf32>, tensor<32x8xf32>) -> tensor<2x4x32xf32>
  %loss = llm.cross_entropy %l, %t {normalizer = 8 : i64} : (tensor<2x4x32xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// RMSNorm, SwiGLU, residual add: each op's rule, and add's gradient reaches
// both of its operands.
// CHECK-LABEL: func @norm_swiglu_add_rules
// CHECK: %[[DG:.*]], %[[DU:.*]] = llm.swiglu_grad
// CHECK: %[[DX:.*]], %[[DW:.*]] = llm.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} {eps = 1.000000e-05 : f64}
// CHECK: return %{{.*}}, %[[DW]], %{{.*}}, %{{.*}}
func.func @norm_swiglu_add_rules(%nw: tensor<8xf32> {llm.param = "norm"},
                                 %wg: tensor<8x8xf32> {llm.param = "gate"},
                                 %wu: tensor<8x8xf32> {llm.param = "up"},
                                 %x: tensor<2x8xf32>, %t: tensor<2xi32>)
    -> (tensor<f32> {llm.role = "loss"}) {
  %n = llm.rms_norm %x, %nw {eps = 1.0e-5 : f64} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %g = llm.linear %n, %wg : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %u = llm.linear %n, %wu : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %s = llm.swiglu %g, %u : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %r = llm.add %s, %n : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %loss = llm.cross_entropy %r, %t {normalizer = 2 : i64} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Attention: one attention_grad gives dq, dk, dv; RoPE's gradient is the
// inverse rotation; reshape's gradient reshapes back.
// CHECK-LABEL: func @attention_rope_reshape_rules
// CHECK: %[[DQ:.*]], %[[DK:.*]], %[[DV:.*]] = llm.attention_grad {{.*}} {scale = 2.500000e-01 : f64}
// CHECK-DAG: llm.rope_grad %[[DQ]] {theta = 1.000000e+04 : f64} : (tensor<1x4x4x16xf32>)
// CHECK-DAG: llm.rope_grad %[[DK]] {theta = 1.000000e+04 : f64} : (tensor<1x4x2x16xf32>)
// v is k4 here, so dv and the k path add up before reshaping back.
// CHECK-DAG: %[[DKV:.*]] = llm.add %[[DV]], %{{.*}} : (tensor<1x4x2x16xf32>
// CHECK-DAG: llm.reshape %[[DKV]] : (tensor<1x4x2x16xf32>) -> tensor<1x4x32xf32>
func.func @attention_rope_reshape_rules(%wq: tensor<64x64xf32> {llm.param = "q"},
                                        %wk: tensor<32x64xf32> {llm.param = "k"},
                                        %x: tensor<1x4x64xf32>, %t: tensor<1x4xi32>)
    -> (tensor<f32> {llm.role = "loss"}) {
  %q = llm.linear %x, %wq : (tensor<1x4x64xf32>, tensor<64x64xf32>) -> tensor<1x4x64xf32>
  %k = llm.linear %x, %wk : (tensor<1x4x64xf32>, tensor<32x64xf32>) -> tensor<1x4x32xf32>
  %q4 = llm.reshape %q : (tensor<1x4x64xf32>) -> tensor<1x4x4x16xf32>
  %k4 = llm.reshape %k : (tensor<1x4x32xf32>) -> tensor<1x4x2x16xf32>
  %qr = llm.rope %q4 {theta = 1.0e4 : f64} : (tensor<1x4x4x16xf32>) -> tensor<1x4x4x16xf32>
  %kr = llm.rope %k4 {theta = 1.0e4 : f64} : (tensor<1x4x2x16xf32>) -> tensor<1x4x2x16xf32>
  %o, %lse = llm.attention %qr, %kr, %k4 {scale = 0.25 : f64} : (tensor<1x4x4x16xf32>, tensor<1x4x2x16xf32>, tensor<1x4x2x16xf32>) -> (tensor<1x4x4x16xf32>, tensor<1x4x4xf32>)
  %o3 = llm.reshape %o : (tensor<1x4x4x16xf32>) -> tensor<1x4x64xf32>
  %loss = llm.cross_entropy %o3, %t {normalizer = 4 : i64} : (tensor<1x4x64xf32>, tensor<1x4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The gradient of rope_grad is rope (the rotation is orthogonal).
// CHECK-LABEL: func @rope_grad_rule
// CHECK: llm.rope_grad %{{.*}} {pos_offset = 3 : i64
// CHECK: llm.rope %{{.*}} {pos_offset = 3 : i64
// CHECK: llm.linear_grad_weight
func.func @rope_grad_rule(%w: tensor<8x16xf32> {llm.param = "w"}, %wx: tensor<16x16xf32> {llm.param = "wx"},
                          %x: tensor<1x2x4x16xf32>,
                          %t: tensor<1x2x4xi32>) -> (tensor<f32> {llm.role = "loss"}) {
  %x1 = llm.linear %x, %wx : (tensor<1x2x4x16xf32>, tensor<16x16xf32>) -> tensor<1x2x4x16xf32>
  %r = llm.rope_grad %x1 {theta = 1.0e4 : f64, pos_offset = 3 : i64} : (tensor<1x2x4x16xf32>) -> tensor<1x2x4x16xf32>
  %l = llm.linear %r, %w : (tensor<1x2x4x16xf32>, tensor<8x16xf32>) -> tensor<1x2x4x8xf32>
  %loss = llm.cross_entropy %l, %t {normalizer = 8 : i64} : (tensor<1x2x4x8xf32>, tensor<1x2x4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A parameter that does not reach the loss has a zero gradient.
// CHECK-LABEL: func @unused_parameter
// CHECK: %[[Z:.*]] = llm.constant {value = 0.000000e+00 : f64} : () -> tensor<4xf32>
// CHECK: return %{{.*}}, %{{.*}}, %[[Z]]
func.func @unused_parameter(%w: tensor<8x8xf32> {llm.param = "w"}, %u: tensor<4xf32> {llm.param = "unused"},
                            %x: tensor<2x8xf32>, %t: tensor<2xi32>) -> (tensor<f32> {llm.role = "loss"}) {
  %l = llm.linear %x, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %loss = llm.cross_entropy %l, %t {normalizer = 2 : i64} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A function without a loss result is not a training step: left alone.
// CHECK-LABEL: func @no_loss
// CHECK-SAME: -> tensor<2x8xf32>
// CHECK-NOT: llm.linear_grad
func.func @no_loss(%w: tensor<8x8xf32> {llm.param = "w"}, %x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %l = llm.linear %x, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  return %l : tensor<2x8xf32>
}
