//===- LossScale.cpp - Dynamic loss scaling of mixed-precision runs -------===//
#include "exec/LossScale.h"

#include <algorithm>

namespace llamac {
namespace exec {

void LossScaleState::update(const LossScaleConfig &config, bool finite) {
  if (!config.dynamic)
    return; // Static: S is fixed; the overflowing step is only skipped.
  if (!finite) {
    growthTracker = 0;
    // Megatron-LM: once the hysteresis is spent, every further overflow
    // backs off until the scale grows again (only growth refills it).
    if (hysteresis > 0)
      --hysteresis;
    if (hysteresis == 0)
      scale = std::max(config.minScale, scale * config.backoffFactor);
    return;
  }
  // >=: a resumed run may have been given a shorter interval.
  if (++growthTracker >= config.growthInterval) {
    scale *= config.growthFactor;
    growthTracker = 0;
    hysteresis = config.hysteresis;
  }
}

} // namespace exec
} // namespace llamac
