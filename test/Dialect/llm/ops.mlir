// RUN: llamac-opt %s | llamac-opt | FileCheck %s
// RUN: llamac-opt %s --mlir-print-op-generic | llamac-opt | FileCheck %s

// Round trip of every llm op through the custom and the generic syntax.

// CHECK-LABEL: func @model_ops
func.func @model_ops(%table: tensor<100x64xf32>, %ids: tensor<2x8xi32>,
                     %w: tensor<64xf32>, %wq: tensor<64x64xf32>,
                     %wk: tensor<32x64xf32>, %targets: tensor<2x8xi32>)
    -> tensor<f32> {
  // CHECK: llm.embedding %{{.*}}, %{{.*}} : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  %h = llm.embedding %table, %ids : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  // CHECK: llm.rms_norm {{.*}} {eps = 1.000000e-05 : f64}
  %n = llm.rms_norm %h, %w {eps = 1.0e-5 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  // CHECK: llm.linear
  %q = llm.linear %n, %wq : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
  %k = llm.linear %n, %wk : (tensor<2x8x64xf32>, tensor<32x64xf32>) -> tensor<2x8x32xf32>
  // CHECK: llm.reshape
  %q4 = llm.reshape %q : (tensor<2x8x64xf32>) -> tensor<2x8x4x16xf32>
  %k4 = llm.reshape %k : (tensor<2x8x32xf32>) -> tensor<2x8x2x16xf32>
  // CHECK: llm.rope {{.*}} {theta = 1.000000e+04 : f64}
  %qr = llm.rope %q4 {theta = 1.0e4 : f64} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  // CHECK: llm.rope {{.*}} {pos_offset = 8 : i64, theta = 1.000000e+04 : f64}
  %kr = llm.rope %k4 {theta = 1.0e4 : f64, pos_offset = 8 : i64} : (tensor<2x8x2x16xf32>) -> tensor<2x8x2x16xf32>
  // CHECK: llm.attention {{.*}} -> (tensor<2x8x4x16xf32>, tensor<2x4x8xf32>)
  %o, %lse = llm.attention %qr, %kr, %k4 {scale = 0.25 : f64} : (tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32>, tensor<2x8x2x16xf32>) -> (tensor<2x8x4x16xf32>, tensor<2x4x8xf32>)
  %o3 = llm.reshape %o : (tensor<2x8x4x16xf32>) -> tensor<2x8x64xf32>
  // CHECK: llm.swiglu
  %s = llm.swiglu %o3, %n : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  // CHECK: llm.add
  %r = llm.add %s, %h : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %logits = llm.linear %r, %table : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
  // CHECK: llm.cross_entropy {{.*}} {normalizer = 16 : i64}
  %loss = llm.cross_entropy %logits, %targets {normalizer = 16 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func @gradient_ops
func.func @gradient_ops(%dy: tensor<2x8x64xf32>, %x: tensor<2x8x64xf32>,
                        %w: tensor<64xf32>, %wq: tensor<32x64xf32>,
                        %dq32: tensor<2x8x32xf32>, %ids: tensor<2x8xi32>,
                        %q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>,
                        %lse: tensor<1x4x8xf32>, %one: tensor<f32>,
                        %logits: tensor<2x8x100xf32>) {
  // CHECK: llm.embedding_grad
  %0 = llm.embedding_grad %dy, %ids : (tensor<2x8x64xf32>, tensor<2x8xi32>) -> tensor<100x64xf32>
  // CHECK: llm.rms_norm_grad
  %1:2 = llm.rms_norm_grad %dy, %x, %w {eps = 1.0e-5 : f64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<64xf32>) -> (tensor<2x8x64xf32>, tensor<64xf32>)
  // CHECK: llm.linear_grad_input
  %2 = llm.linear_grad_input %dq32, %wq : (tensor<2x8x32xf32>, tensor<32x64xf32>) -> tensor<2x8x64xf32>
  // CHECK: llm.linear_grad_weight
  %3 = llm.linear_grad_weight %dq32, %x : (tensor<2x8x32xf32>, tensor<2x8x64xf32>) -> tensor<32x64xf32>
  // CHECK: llm.rope_grad
  %4 = llm.rope_grad %q {theta = 1.0e4 : f64} : (tensor<1x8x4x16xf32>) -> tensor<1x8x4x16xf32>
  // CHECK: llm.attention_grad
  %5:3 = llm.attention_grad %q, %q, %k, %k, %q, %lse {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4x16xf32>, tensor<1x4x8xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>)
  // CHECK: llm.swiglu_grad
  %6:2 = llm.swiglu_grad %dy, %x, %x : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>)
  // CHECK: llm.cross_entropy_grad
  %7 = llm.cross_entropy_grad %one, %logits, %ids {normalizer = 16 : i64} : (tensor<f32>, tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<2x8x100xf32>
  return
}

// CHECK-LABEL: func @training_ops
func.func @training_ops(%p: tensor<64x64xf32>, %g: tensor<64x64xf32>,
                        %m: tensor<64x64xf32>, %v: tensor<64x64xf32>,
                        %b: tensor<64xf32>, %step: tensor<i64>)
    -> (tensor<64x64xf32>, tensor<64x64xbf16>, tensor<f32>) {
  // CHECK: llm.constant {value = 1.000000e+00 : f64} : () -> tensor<f32>
  %one = llm.constant {value = 1.0 : f64} : () -> tensor<f32>
  // CHECK: llm.lr_schedule
  %lr = llm.lr_schedule %step {lr = 3.0e-4 : f64, min_lr = 3.0e-5 : f64, warmup_steps = 10 : i64, decay_steps = 100 : i64} : (tensor<i64>) -> tensor<f32>
  // CHECK: llm.global_norm
  %n = llm.global_norm %g, %b : (tensor<64x64xf32>, tensor<64xf32>) -> tensor<f32>
  // CHECK: llm.clip_coef
  %c = llm.clip_coef %n {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
  // CHECK: llm.scale
  %gs = llm.scale %g, %c : (tensor<64x64xf32>, tensor<f32>) -> tensor<64x64xf32>
  // CHECK: llm.clip_by_value
  %gc = llm.clip_by_value %gs {limit = 0.5 : f64} : (tensor<64x64xf32>) -> tensor<64x64xf32>
  // CHECK: llm.adamw
  %p1, %m1, %v1 = llm.adamw %p, %gc, %m, %v, %lr, %step {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.1 : f64} : (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<f32>, tensor<i64>) -> (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
  // CHECK: llm.cast {{.*}} -> tensor<64x64xbf16>
  %h = llm.cast %p1 : (tensor<64x64xf32>) -> tensor<64x64xbf16>
  // CHECK: llm.all_finite
  %ok = llm.all_finite %g, %b : (tensor<64x64xf32>, tensor<64xf32>) -> tensor<f32>
  return %p1, %h, %ok : tensor<64x64xf32>, tensor<64x64xbf16>, tensor<f32>
}
