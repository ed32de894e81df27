//===- Parallel.h - Threading constants of the CPU kernels ------*- C++ -*-===//
//
// Internal to the CPU backend.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_BACKENDS_CPU_PARALLEL_H
#define LLAMAC_RUNTIME_BACKENDS_CPU_PARALLEL_H

#include <cstdint>

namespace llamac {
namespace kernels {

/// Below this much work (roughly, inner-loop iterations) a kernel runs on
/// the calling thread. Starting a team costs microseconds when cores are
/// idle, but on a loaded machine spinning workers can cost milliseconds per
/// region, which dominates small models and the finite-difference tests.
/// Results are the same either way: no kernel's split depends on the thread
/// count.
constexpr int64_t kMinParallelWork = int64_t(1) << 15;

} // namespace kernels
} // namespace llamac

#endif // LLAMAC_RUNTIME_BACKENDS_CPU_PARALLEL_H
