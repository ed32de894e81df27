//===- PlanFormat.h - Plan file format constants -----------------*- C++ -*-===//
#ifndef LLAMAC_RUNTIME_PLAN_PLANFORMAT_H
#define LLAMAC_RUNTIME_PLAN_PLANFORMAT_H

#include "plan/Plan_generated.h"

namespace llamac::plan {
/// Bumped whenever the meaning of a plan changes; the runtime refuses other
/// versions.
///  1: data parallelism (all_reduce).
///  2: tensor and sequence parallelism: sharded arguments (shard_dim,
///     shard_axes), all_gather, reduce_scatter, all_slice, vocabulary-sharded
///     embedding and cross-entropy statistics, sum_squares, sqrt.
inline constexpr uint32_t kPlanFormatVersion = 2;
} // namespace llamac::plan

#endif // LLAMAC_RUNTIME_PLAN_PLANFORMAT_H
