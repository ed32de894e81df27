// RUN: llamac-opt %s -split-input-file -llm-mixed-precision="precision=bf16" | FileCheck %s
// RUN: llamac-opt %s -split-input-file -llm-mixed-precision="precision=fp16 loss-scale=true" | FileCheck %s --check-prefix=FP16
// RUN: llamac-opt %s -split-input-file -llm-mixed-precision="precision=bf16" -llm-autodiff | FileCheck %s --check-prefix=GRAD
// RUN: llamac-opt %s -split-input-file -llm-mixed-precision="precision=fp16 loss-scale=true" -llm-autodiff -llm-optimizer | FileCheck %s --check-prefix=SKIP

// One decoder-ish layer: every parameter is cast once at the top (the
// weight used twice, by q and k, too), the fp32 activation input once where
// a bf16 op first reads it, every op that reads bf16 computes in bf16
// storage, the loss (and attention's lse) stay fp32.
// CHECK-LABEL: func @layer
// CHECK-COUNT-3: llm.cast %arg{{[0-9]}} : (tensor<{{[0-9x]+}}xf32>) -> tensor<{{[0-9x]+}}xbf16>
// CHECK-NEXT: llm.cast %arg3 : (tensor<2x4x8xf32>) -> tensor<2x4x8xbf16>
// CHECK-NOT: llm.cast
// CHECK: llm.rms_norm {{.*}} -> tensor<2x4x8xbf16>
// CHECK: llm.linear {{.*}} : (tensor<2x4x8xbf16>, tensor<8x8xbf16>) -> tensor<2x4x8xbf16>
// CHECK: llm.linear {{.*}} -> tensor<2x4x8xbf16>
// CHECK: llm.add {{.*}} -> tensor<2x4x8xbf16>
// CHECK: llm.linear {{.*}} -> tensor<2x4x16xbf16>
// CHECK: llm.cross_entropy {{.*}} : (tensor<2x4x16xbf16>, tensor<2x4xi32>) -> tensor<f32>
// CHECK-NOT: loss_scale

// FP16-LABEL: func @layer
// FP16-SAME: %arg5: tensor<f32> {llm.role = "loss_scale"}, %arg6: tensor<f32> {llm.role = "inv_loss_scale"}
// FP16-SAME: -> (tensor<f32> {llm.role = "loss"}, tensor<f32> {llm.role = "scaled_loss"})
// FP16-COUNT-4: llm.cast {{.*}} -> tensor<{{[0-9x]+}}xf16>
// FP16: %[[L:.*]] = llm.cross_entropy {{.*}} -> tensor<f32>
// FP16: %[[S:.*]] = llm.scale %[[L]], %arg5 : (tensor<f32>, tensor<f32>) -> tensor<f32>
// FP16: return %[[L]], %[[S]]

// The backward pass is derived in the same precisions; each cast's
// gradient casts back, so parameter gradients are fp32 (one cast-back per
// parameter, after its contributions are summed in bf16).
// GRAD-LABEL: func @layer
// GRAD: llm.cross_entropy_grad {{.*}} -> tensor<2x4x16xbf16>
// GRAD: llm.linear_grad_weight {{.*}} -> tensor<16x8xbf16>
// GRAD-COUNT-3: llm.cast {{.*}}xbf16>) -> tensor<{{[0-9x]+}}xf32>
// GRAD: return {{.*}} : tensor<f32>, tensor<8xf32>, tensor<8x8xf32>, tensor<16x8xf32>

// Loss scaling: backward starts from loss x scale, the optimizer unscales
// every gradient, checks them all, and AdamW skips the step on overflow.
// SKIP-LABEL: func @layer
// SKIP-SAME: tensor<f32> {llm.role = "all_finite"})
// SKIP: llm.constant {value = 1.000000e+00 : f64} : () -> tensor<f32>
// SKIP-NEXT: %[[SEED:.*]] = llm.scale %{{.*}}, %arg5
// SKIP: llm.cross_entropy_grad %[[SEED]]
// SKIP: %[[U0:.*]] = llm.scale %{{.*}}, %arg6 : (tensor<8xf32>, tensor<f32>) -> tensor<8xf32>
// SKIP: %[[U1:.*]] = llm.scale %{{.*}}, %arg6
// SKIP: %[[U2:.*]] = llm.scale %{{.*}}, %arg6
// SKIP: %[[OK:.*]] = llm.all_finite %[[U0]], %[[U1]], %[[U2]] : (tensor<8xf32>, tensor<8x8xf32>, tensor<16x8xf32>) -> tensor<f32>
// SKIP: llm.global_norm %[[U0]], %[[U1]], %[[U2]]
// SKIP-COUNT-3: llm.adamw {{.*}}, %[[OK]] {
// SKIP: return {{.*}}, %[[OK]] :
func.func @layer(%n: tensor<8xf32> {llm.param = "n"}, %w: tensor<8x8xf32> {llm.param = "w"},
                 %head: tensor<16x8xf32> {llm.param = "head"},
                 %x: tensor<2x4x8xf32>, %targets: tensor<2x4xi32>) -> (tensor<f32> {llm.role = "loss"}) {
  %h = llm.rms_norm %x, %n {eps = 1.0e-5 : f64} : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
  %q = llm.linear %h, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %k = llm.linear %h, %w : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %s = llm.add %q, %k : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
  %logits = llm.linear %s, %head : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %logits, %targets {normalizer = 8 : i64} : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}
