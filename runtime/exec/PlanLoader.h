//===- PlanLoader.h - Load and verify a plan file -----------------*- C++ -*-===//
//
// Reads a `.llx` plan (docs/plan-format.md) and checks everything the
// executor relies on, once, at load time:
//  1. the bytes: size, file identifier "LLPX", the FlatBuffers verifier
//     (every offset and vector inside the buffer);
//  2. the header: format_version == kPlanFormatVersion, the model config
//     (LlamaConfig::fromJson) and the training config (TrainConfig) parse,
//     the layout has dp*tp*pp programs;
//  3. each program: tensor shapes and dtypes, arena tensors inside
//     arena_bytes, argument-backed tensors inside their argument's buffer,
//     argument and result roles, and per instruction the kernel name, the
//     input/output arity and dtypes, the attributes and the shapes.
// After loadPlan() succeeds the executor runs the plan without any further
// check (a step never validates anything).
//
//  4. loss scaling: a program with a `loss_scale` argument has an
//     `inv_loss_scale` argument and an `all_finite` result, and the training
//     config has a "loss_scale" object; a config with one has programs with
//     those arguments.
//  5. gradient buckets across programs: the ranks of each group over a set
//     of grid axes start the same number of buckets over those axes, of the
//     same sizes, in the same order (they are reduced in start order).
//  6. pipeline stages: each program's `stage` is its rank's pp coordinate,
//     rank / (dp * tp); every send of the rank at (stage a, dp d, tp t) to
//     stage b with tag g has exactly one recv of the rank (b, d, t) from
//     stage a with tag g, of the same bytes, and every recv such a send (a
//     (peer, tag) names one transfer per direction: no program repeats
//     one); every parameter and its moments belong to one stage (the
//     programs of other stages do not have them), sharded over dp / tp
//     only.
//
// NOTE: the loader checks what the CPU backend can execute: f32, bf16 and
// f16 activations (16-bit ones computed in f32), f64 only through `cast`
// and `all_finite`, i32 ids, i64 step.
//
// Errors: false + one line in `error` naming the file, the program,
// instruction or tensor, the value and what was expected. Nothing throws.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_PLANLOADER_H
#define LLAMAC_RUNTIME_EXEC_PLANLOADER_H

#include "exec/LossScale.h"
#include "model/LlamaConfig.h"
#include "plan/PlanFormat.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llamac {
namespace exec {

/// The training configuration a plan was compiled for (the plan's
/// `train_config_json`, docs/plan-format.md). The optimizer values are baked
/// into the instructions; they are repeated here for logs and checkpoints.
struct TrainConfig {
  int64_t seqLen = 0;
  int64_t microBatchSize = 0;
  int64_t globalBatchSize = 0;
  int64_t microbatches = 1;
  double lr = 0.0;
  double minLr = 0.0;
  int64_t warmupSteps = 0;
  int64_t decaySteps = 0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weightDecay = 0.0;
  double clipGradNorm = 0.0;  ///< 0: no clipping by norm.
  double clipGradValue = 0.0; ///< 0: no clipping by value.
  /// "fp32", "bf16" or "fp16" (the compute precision); empty when absent.
  std::string precision;
  /// The "loss_scale" object; lossScale.enabled is false when absent.
  LossScaleConfig lossScale;

  /// Parses the JSON object; `source` prefixes errors. seq_len,
  /// micro_batch_size and global_batch_size are required, the rest default
  /// as above (null counts as absent); every field of "loss_scale" is
  /// checked, and an unknown one is an error.
  static bool fromJson(const std::string &text, const std::string &source,
                       TrainConfig &out, std::string &error);
  std::string toJson() const;
};

/// A verified plan. Owns the file's bytes; `plan` points into them. Movable
/// (the bytes do not move), not copyable.
struct LoadedPlan {
  std::string path;
  std::vector<uint8_t> bytes;
  const plan::Plan *plan = nullptr;
  LlamaConfig model; ///< name: the preset it equals, else "custom".
  TrainConfig train;

  LoadedPlan() = default;
  LoadedPlan(LoadedPlan &&) = default;
  LoadedPlan &operator=(LoadedPlan &&) = default;
  LoadedPlan(const LoadedPlan &) = delete;
  LoadedPlan &operator=(const LoadedPlan &) = delete;

  int worldSize() const { return plan->dp() * plan->tp() * plan->pp(); }
  const plan::Program &program(int rank) const {
    return *plan->programs()->Get(rank);
  }
};

/// Reads and verifies the plan file at `path`.
bool loadPlan(const std::string &path, LoadedPlan &out, std::string &error);
/// Verifies a plan already in memory (takes the bytes); `source` names it
/// in errors.
bool loadPlanFromBuffer(std::vector<uint8_t> bytes, const std::string &source,
                        LoadedPlan &out, std::string &error);

/// Bytes of one element of `dtype` (0 for values outside the enum).
int64_t dtypeBytes(plan::DType dtype);
/// Lower-case name ("f32", "bf16"; "dtype(<n>)" outside the enum).
std::string dtypeName(plan::DType dtype);
/// Product of the dims (1 for rank 0). Precondition: a verified tensor.
int64_t numElements(const plan::Tensor &tensor);
/// "[2, 8, 64]".
std::string shapeString(const plan::Tensor &tensor);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_PLANLOADER_H
