//===- PlanFormat.h - Plan file format constants -----------------*- C++ -*-===//
#ifndef LLAMAC_RUNTIME_PLAN_PLANFORMAT_H
#define LLAMAC_RUNTIME_PLAN_PLANFORMAT_H

#include "plan/Plan_generated.h"

namespace llamac::plan {
/// Bumped whenever the meaning of a plan changes; the runtime refuses other
/// versions.
inline constexpr uint32_t kPlanFormatVersion = 1;
} // namespace llamac::plan

#endif // LLAMAC_RUNTIME_PLAN_PLANFORMAT_H
