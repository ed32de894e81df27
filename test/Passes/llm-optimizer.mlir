// RUN: llamac-opt %s -split-input-file -llm-optimizer | FileCheck %s --check-prefixes=CHECK,NOCLIP
// RUN: llamac-opt %s -split-input-file -llm-optimizer="clip-grad-norm=1.0 weight-decay=0.1 lr=0.001 warmup-steps=10 decay-steps=100 min-lr=0.0001" | FileCheck %s --check-prefixes=CHECK,NORM
// RUN: llamac-opt %s -split-input-file -llm-optimizer="clip-grad-value=0.5" | FileCheck %s --check-prefixes=CHECK,VALUE

// One AdamW per parameter, state arguments appended, gradients replaced by
// the new state plus grad_norm and lr.
// CHECK-LABEL: func @optimizer_insertion
// CHECK-SAME: %[[W:[^:]*]]: tensor<4x8xf32> {llm.param = "w"}
// CHECK-SAME: %[[N:[^:]*]]: tensor<8xf32> {llm.param = "n"}
// CHECK-SAME: %[[MW:[^:]*]]: tensor<4x8xf32> {llm.param = "w", llm.role = "adam_m"}
// CHECK-SAME: %[[MN:[^:]*]]: tensor<8xf32> {llm.param = "n", llm.role = "adam_m"}
// CHECK-SAME: %[[VW:[^:]*]]: tensor<4x8xf32> {llm.param = "w", llm.role = "adam_v"}
// CHECK-SAME: %[[VN:[^:]*]]: tensor<8xf32> {llm.param = "n", llm.role = "adam_v"}
// CHECK-SAME: %[[STEP:[^:]*]]: tensor<i64> {llm.role = "step"}
// CHECK-SAME: -> (tensor<f32> {llm.role = "loss"}, tensor<4x8xf32> {llm.param = "w", llm.role = "new_param"}, tensor<8xf32> {llm.param = "n", llm.role = "new_param"}, tensor<4x8xf32> {llm.param = "w", llm.role = "new_adam_m"}, tensor<8xf32> {llm.param = "n", llm.role = "new_adam_m"}, tensor<4x8xf32> {llm.param = "w", llm.role = "new_adam_v"}, tensor<8xf32> {llm.param = "n", llm.role = "new_adam_v"}, tensor<f32> {llm.role = "grad_norm"}, tensor<f32> {llm.role = "lr"})
// NOCLIP: %[[LR:.*]] = llm.lr_schedule %[[STEP]] {decay_steps = 0 : i64, lr = 3.000000e-04 : f64, min_lr = 0.000000e+00 : f64, warmup_steps = 0 : i64}
// NORM: %[[LR:.*]] = llm.lr_schedule %[[STEP]] {decay_steps = 100 : i64, lr = 1.000000e-03 : f64, min_lr = 1.000000e-04 : f64, warmup_steps = 10 : i64}
// VALUE: %[[LR:.*]] = llm.lr_schedule %[[STEP]]
// CHECK: %[[NORM:.*]] = llm.global_norm %[[GW:[^,]*]], %[[GN:[^ ]*]] :
// NOCLIP-NOT: llm.clip
// NORM: %[[COEF:.*]] = llm.clip_coef %[[NORM]] {max_norm = 1.000000e+00 : f64}
// NORM: %[[CW:.*]] = llm.scale %[[GW]], %[[COEF]]
// NORM: %[[CN:.*]] = llm.scale %[[GN]], %[[COEF]]
// VALUE-NOT: llm.clip_coef
// VALUE: %[[CW:.*]] = llm.clip_by_value %[[GW]] {limit = 5.000000e-01 : f64}
// VALUE: %[[CN:.*]] = llm.clip_by_value %[[GN]] {limit = 5.000000e-01 : f64}
// NOCLIP: llm.adamw %[[W]], %[[GW]], %[[MW]], %[[VW]], %[[LR]], %[[STEP]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, weight_decay = 0.000000e+00 : f64}
// NORM: llm.adamw %[[W]], %[[CW]], %[[MW]], %[[VW]], %[[LR]], %[[STEP]] {{.*}}weight_decay = 1.000000e-01 : f64}
// Vectors (norm weights) never decay.
// NORM: llm.adamw %[[N]], %[[CN]], %[[MN]], %[[VN]], %[[LR]], %[[STEP]] {{.*}}weight_decay = 0.000000e+00 : f64}
// VALUE: llm.adamw %[[W]], %[[CW]]
// CHECK: return
func.func @optimizer_insertion(%w: tensor<4x8xf32> {llm.param = "w"}, %n: tensor<8xf32> {llm.param = "n"},
                               %gw: tensor<4x8xf32>, %gn: tensor<8xf32>, %loss: tensor<f32>)
    -> (tensor<f32> {llm.role = "loss"},
        tensor<4x8xf32> {llm.param = "w", llm.role = "grad"},
        tensor<8xf32> {llm.param = "n", llm.role = "grad"}) {
  return %loss, %gw, %gn : tensor<f32>, tensor<4x8xf32>, tensor<8xf32>
}

// -----

// Without gradient results there is nothing to optimize.
// CHECK-LABEL: func @no_gradients
// CHECK-NOT: llm.adamw
func.func @no_gradients(%loss: tensor<f32>) -> (tensor<f32> {llm.role = "loss"}) {
  return %loss : tensor<f32>
}
