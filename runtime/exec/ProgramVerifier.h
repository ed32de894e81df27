//===- ProgramVerifier.h - Semantic checks of one program ---------*- C++
//-*-===//
//
// The checks loadPlan() runs on each Program after the FlatBuffers verifier
// (which only guarantees that offsets and vectors lie inside the buffer):
//  1. tensors: known dtype the CPU backend runs (f32, i32, i64), dims >= 1,
//     at most 2^40 elements, known storage;
//  2. arguments: known role, HF name for param/adam_m/adam_v, no duplicate,
//     each owns its tensor's storage, dtype by role (step is an i64 scalar,
//     token ids i32, the rest f32); sharding only on param/adam_m/adam_v,
//     shard_dim a dimension of the tensor, shard_axes ascending grid axes;
//  3. storage: arena tensors inside arena_bytes and aligned to their element
//     size, argument-backed tensors (views) inside their argument's buffer;
//  4. results: known role, scalars are f32 of one element, new_* share the
//     storage of the matching argument;
//  5. instructions: known kernel, arity, tensor indices, attributes (kind,
//     presence, range), operand dtypes and shapes (docs/plan-format.md), and
//     no output overlapping an input or another output except the in-place
//     forms (add, scale, clip_by_value, sqrt, all_reduce exactly over an
//     input; adamw over p, m, v); grid_axes and shard_axes (at least one
//     axis of the [pp, dp, tp] grid, each in [0, 3), none repeated;
//     ascending except for all_reduce, where the order does not matter),
//     reduction (sum, max or min), and the block shapes of all_gather,
//     reduce_scatter and all_slice for the plan's grid.
// Internal to LlamacExec.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_PROGRAMVERIFIER_H
#define LLAMAC_RUNTIME_EXEC_PROGRAMVERIFIER_H

#include "comm/Grid.h"
#include "plan/PlanFormat.h"

#include <string>

namespace llamac {
namespace exec {

/// False with one line in `error`, prefixed by `where` ("plan.llx: program
/// 0"), on the first violation. `grid` is the plan's layout: it sizes the
/// groups of all_gather, reduce_scatter and all_slice.
bool verifyProgram(const plan::Program &program, const comm::Grid &grid,
                   const std::string &where, std::string &error);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_PROGRAMVERIFIER_H
