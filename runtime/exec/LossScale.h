//===- LossScale.h - Dynamic loss scaling -----------------------*- C++ -*-===//
//
// The loss scaler of a plan compiled with loss scaling (docs/plan-format.md:
// the `loss_scale` / `inv_loss_scale` arguments and the `all_finite`
// result). The program seeds its backward pass with the loss times S (so
// that small fp16 gradients do not flush to zero), multiplies the gradients
// by 1/S, checks them for inf/NaN over every rank and skips AdamW when it
// finds any. The trainer keeps S between steps:
//
//   update(finite):                       (torch.cuda.amp.GradScaler, plus
//     not finite: the step was skipped;    Megatron-LM's hysteresis)
//       growth_tracker = 0
//       hysteresis -= 1
//       if hysteresis <= 0:
//         S = max(min_scale, S * backoff_factor); hysteresis = H
//     finite:
//       growth_tracker += 1
//       if growth_tracker == growth_interval:
//         S *= growth_factor; growth_tracker = 0; hysteresis = H
//
// with H the configured hysteresis (1: back off at every overflow, as
// GradScaler does; H > 1 tolerates H - 1 overflows in a row first). In
// static mode S never changes (overflowing steps are still skipped).
//
// As in Megatron's DynamicGradScaler, only growth refills the hysteresis
// counter: once it is spent, every further overflow backs off until the
// scale grows again.
//
// S is kept in double; the program gets float(S) and float(1 / S). Every
// value is exact with the default powers of two.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_LOSSSCALE_H
#define LLAMAC_RUNTIME_EXEC_LOSSSCALE_H

#include <cstdint>
#include <string>

namespace llamac {
namespace exec {

/// The train config's "loss_scale" object (docs/plan-format.md).
struct LossScaleConfig {
  bool enabled = false; ///< Whether the train config has "loss_scale".
  bool dynamic = true;  ///< "mode": "dynamic" (default) or "static".
  double init = 65536.0;
  double growthFactor = 2.0;
  double backoffFactor = 0.5;
  int64_t growthInterval = 2000;
  int64_t hysteresis = 1;
  double minScale = 1.0;
};

/// The scaler's state between steps (saved in trainer_state.json).
struct LossScaleState {
  double scale = 0.0;
  int64_t growthTracker = 0; ///< Finite steps since the last change.
  int64_t hysteresis = 0;    ///< Overflows left before the next backoff.

  /// The state of a run's first step.
  static LossScaleState initial(const LossScaleConfig &config) {
    return {config.init, 0, config.hysteresis};
  }
  /// The state after a step whose gradients were (not) all finite.
  void update(const LossScaleConfig &config, bool finite);
  bool operator==(const LossScaleState &o) const {
    return scale == o.scale && growthTracker == o.growthTracker &&
           hysteresis == o.hysteresis;
  }
};

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_LOSSSCALE_H
