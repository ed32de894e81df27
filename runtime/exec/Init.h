//===- Init.h - Initial parameter values ---------------------------*- C++
//-*-===//
//
// The values parameters start from (DESIGN.md A1):
//  - by default, normal(0, initializer_range) for every matrix (rank >= 2,
//    the embedding included) and ones for the norm weights (rank 1), drawn
//    from a seed;
//  - with `--init PATH`, Hugging Face safetensors weights (a single file, or
//    a directory with model.safetensors or an index and its shards).
// Optimizer moments and the step counter start at 0 in both cases.
//
// Sharded parameters (Executor::Shard) start from exactly their block of
// what an unsharded run would have: the random init draws the elements of
// the block's global indices, and --init reads the full tensor and copies
// the block. So a tp = 2 run starts from the weights of the tp = 1 run.
//
// The random values come from a counter-based generator: element `i` of the
// tensor named `name` is a pure function of (seed, name, i). So they do not
// depend on the thread count, on the order tensors are visited, or on which
// rank owns a tensor or a slice of it (a shard draws the elements of its
// global indices).
//
// Generator: key = splitmix64(seed ^ splitmix64(fnv1a64(name))); element pair
// j = i / 2 takes two 53-bit uniforms u1 = U(mix(key, 2j)) in (0, 1] and
// u2 = U(mix(key, 2j + 1)) in [0, 1), and Box-Muller gives
// r = sqrt(-2 ln u1): element 2j is r cos(2 pi u2), element 2j + 1 is
// r sin(2 pi u2). All in double, rounded to float at the end.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_INIT_H
#define LLAMAC_RUNTIME_EXEC_INIT_H

#include "exec/Executor.h"
#include "model/LlamaConfig.h"

#include <cstdint>
#include <functional>
#include <string>

namespace llamac {
namespace exec {

/// 64-bit FNV-1a of `name` (stable across platforms, unlike std::hash).
uint64_t hashName(const std::string &name);

/// Writes elements [begin, begin + count) of the normal(0, stddev) tensor
/// identified by (seed, name) to `out` (count floats).
void fillNormal(uint64_t seed, const std::string &name, double stddev,
                int64_t begin, int64_t count, float *out);

/// Checks that the program's `param` arguments are exactly the parameters of
/// `config` (parameterSpecs) with the same full shapes (a shard's
/// Executor::Shard::fullShape), and that every adam_m / adam_v argument
/// belongs to one of them with its full shape: the plan was compiled for
/// this model.
bool checkPlanParameters(const Executor &exec, const LlamaConfig &config,
                         std::string &error);
/// The same for a program of `plan`, whose parameters may be spread over
/// pipeline stages: this executor's param, adam_m and adam_v arguments are
/// parameters of `config` with their full shapes, and the `param`
/// arguments of all of the plan's programs together are exactly the
/// parameters of `config` (each stage holds its own; the loader checked
/// that none is on two stages). With pp = 1 it is the check above.
bool checkPlanParameters(const Executor &exec, const plan::Plan &plan,
                         const LlamaConfig &config, std::string &error);

/// Fills argument `a` (param, adam_m or adam_v) from its full tensor:
/// `read` writes the full tensor (Shard::fullShape, f32) into the buffer it
/// is given and returns false on error. That buffer is the argument's own
/// when the argument is whole; for a shard it is a temporary one, whose
/// block (kernels::sliceBlock) is then copied into the argument.
bool loadFullTensor(Executor &exec, int a,
                    const std::function<bool(float *full)> &read);

/// Default initialisation of every `param` argument (normal for rank >= 2,
/// ones for rank 1) from `seed`, and zero moments and step.
void initializeParameters(Executor &exec, const LlamaConfig &config,
                          uint64_t seed);

/// Loads Hugging Face weights from `path` into the `param` arguments and
/// zeroes moments and step. Every parameter of parameterSpecs(config) must be
/// present with its shape (F32, F16, BF16 or F64 data; converted to f32).
/// With tie_word_embeddings a `lm_head.weight` in the file is ignored. Any
/// other tensor, except rotary `inv_freq` buffers, is an error naming it.
/// Precondition: checkPlanParameters() succeeded.
bool loadInitWeights(Executor &exec, const LlamaConfig &config,
                     const std::string &path, std::string &error);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_INIT_H
