//===- ProgramVerifier.h - Semantic checks of one program ---------*- C++
//-*-===//
//
// The checks loadPlan() runs on each Program after the FlatBuffers verifier
// (which only guarantees that offsets and vectors lie inside the buffer):
//  1. tensors: known dtype the CPU backend runs (f32, bf16, f16, f64, i32,
//     i64; not i1), dims >= 1, at most 2^40 elements, known storage;
//  2. arguments: known role, HF name for param/adam_m/adam_v, no duplicate
//     (but tokens and targets, once per microbatch),
//     each owns its tensor's storage, dtype by role (step is an i64 scalar,
//     token ids i32, loss_scale and inv_loss_scale f32 scalars, the rest
//     f32); sharding only on param/adam_m/adam_v, shard_dim a dimension of
//     the tensor, shard_axes ascending grid axes;
//  3. storage: arena tensors inside arena_bytes and aligned to their element
//     size, argument-backed tensors (views) inside their argument's buffer;
//  4. results: known role, scalars (loss, grad_norm, lr, all_finite) are
//     f32 of one element, new_* share the storage of the matching argument;
//  5. instructions: known kernel, arity (adamw's optional `apply`),
//     tensor indices, attributes (kind, presence, range), operand dtypes
//     (ids i32, step i64; f32, bf16 or f16 for the float operands of
//     compute kernels and collectives; f32 only for the optimizer, the
//     gradient norm, attention's lse and all_finite's output; any float
//     for cast and all_finite's inputs; collectives keep the dtype) and
//     shapes (docs/plan-format.md), and no output overlapping an input or
//     another output except the in-place forms (add, scale, clip_by_value,
//     sqrt, all_reduce exactly over an input of the same dtype; adamw over
//     p, m, v); grid_axes and shard_axes (at least one axis of the [pp, dp,
//     tp] grid, each in [0, 3), none repeated; ascending except for
//     all_reduce, where the order does not matter), reduction (sum, max or
//     min), and the block shapes of all_gather, reduce_scatter and
//     all_slice for the plan's grid;
//     send and recv (pipeline stages): any dtype (bytes), `peer` another
//     stage of the grid than Program.stage, `tag` in [0, 32767]; an
//     instruction's microbatch >= -1 and phase none, forward or backward;
//  6. gradient buckets: a bucket_all_reduce_start's inputs are f32 arena
//     tensors back to back (one contiguous span), its outputs and its
//     wait's are in place; every start has exactly one later wait with its
//     bucket id and its tensors and vice versa, ids are unique, buckets in
//     flight do not overlap, and no instruction between a start and its
//     wait reads or writes the span (another thread is reducing it).
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
