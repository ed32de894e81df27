//===- Checkpoint.h - Training checkpoints: save, prune, resume -*- C++ -*-===//
//
// The checkpoints of `llamac run --save-dir DIR` (DESIGN.md A5):
//
//   DIR/step-00000010/            one directory per saved step
//         config.json             LlamaConfig::toJson() of the plan's model
//         model.safetensors       fp32 weights with HF names (or shards
//                                 model-0000i-of-0000N.safetensors and
//                                 model.safetensors.index.json beyond
//                                 SaveOptions::maxShardBytes); no
//                                 lm_head.weight when tied
//         optimizer.safetensors   AdamW moments "<param>.exp_avg" and
//                                 "<param>.exp_avg_sq" (fp32)
//         trainer_state.json      see TrainerState
//   DIR/latest                    "step-00000010\n": what --resume loads
//   DIR/.tmp-*                    a save (or a pruning) in progress, or the
//                                 leftover of a crashed one
//
// A checkpoint directory is what transformers' from_pretrained() loads as is;
// optimizer.safetensors and trainer_state.json sit beside the weights.
//
// Tensors are always full (A5), so a checkpoint resumes under any layout.
// A rank whose arguments are shards (tensor parallelism, Executor::Shard)
// saves through CheckpointTensors::gather(), which every rank calls: each
// sharded tensor is all-gathered over its shard axes and its blocks put
// together along the shard dimension. Resuming reads each full tensor and
// copies this rank's block (loadFullTensor, exec/Init.h).
//
// Pipeline parallelism (pp > 1): each stage holds only its own parameters
// and moments. gather(exec, plan) first gathers within the stage as above,
// then the first rank of every stage s >= 1 (dp 0, tp 0) sends its stage's
// full tensors to rank 0 (Comm::send, tag kCheckpointTag), stage by stage,
// each stage's in the order of (HF name, role); rank 0 knows that order
// and the full shapes from the plan, receives them, and writes the whole
// model, in the same files and format as any other checkpoint. So a
// checkpoint saved at pp = 2 resumes at pp = 1 and the other way round.
// Resuming with the plan (loadCheckpoint(path, exec, plan, ...)) validates
// the files against the whole model (every parameter, and the moments of
// every program of the plan), and each rank loads only its own arguments.
//
// Saving (saveCheckpoint) is atomic at every instant:
//  1. write every file into DIR/.tmp-step-N-<pid>/ (each file written,
//     fsync'ed and renamed by the safetensors writer), fsync that directory;
//  2. rename it to DIR/step-N, fsync DIR;
//  3. replace DIR/latest atomically (temporary file, fsync, rename, fsync);
//  4. prune: rename the oldest step-* directories beyond `keep` to .tmp-*
//     names and delete them (never the one just written), and delete stale
//     .tmp-* entries of earlier, interrupted saves.
// A crash (even SIGKILL) at any point leaves `latest` naming a complete
// checkpoint: the previous one until step 3 has happened, the new one after.
//
// Resuming (resolveLatest + loadCheckpoint) validates everything before it
// writes a byte into the executor: the pointer, trainer_state.json (version,
// step, batch and sequence length against the plan), config.json (every
// model field against the plan's model), both safetensors files (headers,
// every expected tensor with its shape and dtype F32, nothing unexpected).
// Errors are one line naming the file, the field or tensor, and the values.
//
// NOTE: the data order is a pure function of the iteration (A3), so the data
// position is the step (the iteration count: one global batch each, also
// when loss scaling skipped the update); the optimizer step and the loss
// scaler are saved beside it. The model has no dropout, so there is no RNG
// state to save beyond the seed of the initialisation. A checkpoint's train
// config (lr, schedule, ...) is recorded but not compared: resuming with
// another schedule is allowed; another global batch or sequence length is not,
// since the data position would mean other tokens.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_CHECKPOINT_H
#define LLAMAC_RUNTIME_EXEC_CHECKPOINT_H

#include "exec/Executor.h"
#include "exec/LossScale.h"
#include "exec/PlanLoader.h"
#include "model/LlamaConfig.h"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace llamac {
namespace exec {

/// Version of the checkpoint layout (trainer_state.json "format_version").
constexpr int64_t kCheckpointFormatVersion = 1;
/// Model weights beyond this size are written as shards plus an index, the
/// layout of transformers' save_pretrained (whose default limit is larger).
constexpr uint64_t kDefaultMaxShardBytes = uint64_t(2) << 30;

constexpr const char *kLatestName = "latest";
constexpr const char *kOptimizerName = "optimizer.safetensors";
constexpr const char *kTrainerStateName = "trainer_state.json";
constexpr const char *kConfigName = "config.json";
/// The tag of the checkpoint transfer between stages. It may equal a plan's
/// send / recv tag: the transfer starts after the step, whose messages have
/// all been received by then, and MPI keeps messages in order.
constexpr int kCheckpointTag = 32767;

/// trainer_state.json: everything besides tensors that a resume needs.
///   {"format_version": 1, "step": 10, "data_position": 10,
///    "optimizer_step": 9, "global_batch_size": 4, "seq_len": 128,
///    "seed": 1234, "loss_scale": null, "train_config": {...}}
/// `step` counts the iterations run (each read one global batch: the data
/// position); `optimizer_step` the updates applied, which is fewer when
/// loss scaling skipped some (it is the plan's `step` argument: the LR
/// schedule and AdamW's bias correction). "loss_scale" is the scaler's
/// state with loss scaling,
///   {"scale": 32768.0, "growth_tracker": 12, "hysteresis": 1},
/// and null without. A file without "optimizer_step" (written before it
/// existed) means optimizer_step = step.
struct TrainerState {
  int64_t step = 0;            ///< Completed iterations (= data position).
  int64_t optimizerStep = 0;   ///< Applied optimizer steps (<= step).
  int64_t globalBatchSize = 0; ///< The data position's unit (A3).
  int64_t seqLen = 0;
  uint64_t seed = 0;           ///< Seed of the initialisation.
  std::string trainConfigJson; ///< The plan's train config (JSON object).
  bool hasLossScale = false;   ///< Whether lossScale holds a state.
  LossScaleState lossScale;

  std::string toJson() const;
  /// Parses and checks the fields (data_position == step, version,
  /// optimizer_step in [0, step], the loss scale state); `source` names the
  /// file in errors.
  static bool fromJson(const std::string &text, const std::string &source,
                       TrainerState &out, std::string &error);
};

/// "step-00000010" (at least 8 digits).
std::string checkpointName(int64_t step);
/// Parses "step-<digits>"; false for anything else.
bool parseCheckpointName(const std::string &name, int64_t &step);
/// Steps of the step-* directories in `dir`, ascending (empty when `dir`
/// does not exist). .tmp-* entries are not checkpoints.
std::vector<int64_t> listCheckpoints(const std::string &dir);

/// The full tensors of an executor's param, adam_m and adam_v arguments:
/// whole arguments are read from the executor's buffers, sharded ones
/// gathered from their group into buffers owned here (full copies: keep
/// the object only as long as the save).
class CheckpointTensors {
public:
  /// Collects the full tensors of `exec` (which must outlive this object's
  /// use). Collective over exec.comm() when some argument is split over
  /// several ranks: then every rank calls it at the same point (the
  /// tensors are gathered in the order of their HF names and roles, the
  /// same on every rank) and every rank gets the full tensors. Fails only
  /// when a collective fails; the ranks are then out of step and the
  /// caller ends the job.
  bool gather(const Executor &exec, std::string &error);
  /// gather(), then, with pipeline stages (plan.pp() > 1), the transfer of
  /// every stage's full tensors to rank 0 (see the top of this file), so
  /// that rank 0 holds the whole model. `exec` runs `plan`'s program of
  /// this rank. Every rank calls it at the same point (the ranks that
  /// neither send nor receive only gather). Fails when a collective or a
  /// transfer fails (the caller ends the job).
  bool gather(const Executor &exec, const plan::Plan &plan,
              std::string &error);

  const Executor &executor() const { return *exec_; }
  /// The full tensor of argument `a`: f32, row-major,
  /// Executor::Shard::fullShape. Precondition: gather() succeeded.
  const float *full(int a) const;
  /// The full tensor of (`role`, HF name `param`): this rank's argument's,
  /// or on rank 0 one received from another stage; nullptr when neither.
  const float *find(const std::string &role, const std::string &param) const;

private:
  const Executor *exec_ = nullptr;
  std::vector<std::vector<float>> gathered_; ///< Per argument; empty: whole.
  std::vector<float> blocks_; ///< all_gather output before reordering.
  /// Rank 0 of a pipeline: the other stages' tensors by (role, HF name).
  std::map<std::pair<std::string, std::string>, std::vector<float>> received_;
};

struct SaveOptions {
  uint64_t maxShardBytes = kDefaultMaxShardBytes;
  int64_t keep = 0; ///< Keep the `keep` newest checkpoints; 0: all.
};

/// Saves the full parameters and moments of `tensors` (gathered: every
/// parameter of the model must be found there) and
/// `state` as DIR/checkpointName(state.step) by the protocol above; `dir`
/// must exist. Not collective: one rank writes. On success `savedPath` is
/// the checkpoint's path. On failure the temporary directory is removed and
/// `latest` is unchanged.
bool saveCheckpoint(const std::string &dir, const CheckpointTensors &tensors,
                    const LlamaConfig &model, const TrainerState &state,
                    const SaveOptions &options, std::string &savedPath,
                    std::string &error);
/// The same for an executor whose arguments are all whole on this rank (no
/// argument split over several ranks; an error otherwise, since gathering
/// would need every rank).
bool saveCheckpoint(const std::string &dir, const Executor &exec,
                    const LlamaConfig &model, const TrainerState &state,
                    const SaveOptions &options, std::string &savedPath,
                    std::string &error);

/// The checkpoint DIR/latest names (its path in `checkpointPath`). Errors
/// when there is no pointer, when it is malformed or names a missing
/// directory.
bool resolveLatest(const std::string &dir, std::string &checkpointPath,
                   std::string &error);

/// Validates the checkpoint at `path` against the plan (`model`, `train`,
/// the executor's arguments) and only then loads weights, moments and the
/// step counter (the optimizer step) into `exec`, and the trainer state
/// into `state`. Sharded
/// arguments take their block of the full tensors (whatever the layout
/// that saved them). Not collective. Precondition: checkPlanParameters()
/// succeeded.
bool loadCheckpoint(const std::string &path, Executor &exec,
                    const LlamaConfig &model, const TrainConfig &train,
                    TrainerState &state, std::string &error);
/// The same for `exec` running a program of `plan`, whose parameters may
/// be spread over pipeline stages: the files must hold exactly the whole
/// model (every parameter, and the moments of every program of the plan),
/// and only this rank's arguments are loaded. Precondition:
/// checkPlanParameters(exec, plan, ...) succeeded.
bool loadCheckpoint(const std::string &path, Executor &exec,
                    const plan::Plan &plan, const LlamaConfig &model,
                    const TrainConfig &train, TrainerState &state,
                    std::string &error);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_CHECKPOINT_H
