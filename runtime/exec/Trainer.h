//===- Trainer.h - The training loop of `llamac run` ---------------*- C++
//-*-===//
//
// runTraining() is `llamac run` without the command line, for one rank of
// the job (`mpirun -np N llamac run ...` starts N; RunOptions::comm connects
// them):
//  1. validate everything first, on every rank: options, the plan
//     (loadPlan), its layout against the world size (dp * tp * pp ranks),
//     this rank's program (program(rank)) as a
//     training step for the model it names, the token data (io TokenStream,
//     vocabulary <= the model's), --init weights or, with --resume, the
//     checkpoint DIR/latest names (exec/Checkpoint.h). After each phase the
//     ranks agree (Comm::agreeOnFailure): if any rank failed, every rank
//     returns 1 with the same message, before any other collective, so a
//     bad input never hangs the job;
//  2. only then every rank creates its --trace file (as a temporary file,
//     renamed at the end of a successful run) and rank 0 opens the --metrics
//     file and creates --save-dir, so that bad input leaves no file behind
//     (DESIGN.md A7);
//  3. for each step s from 0 (or the checkpoint's step) to --steps: the
//     DataLoader fills each microbatch's tokens/targets with this rank's
//     slice (A3 order, dp rank (rank / tp) % dp: the tp ranks of a dp
//     replica read the same sequences; the k-th `tokens` and the k-th
//     `targets` argument get microbatch k), `step` is set to the optimizer step (= s
//     unless loss scaling skipped steps), the loss scale and its inverse
//     are set (with loss scaling), the program runs (its collectives sum
//     the loss and the gradients over dp and combine the tensor-parallel
//     shards; with gradient buckets the dp all-reduces overlap the backward
//     pass), the loss scaler takes the step's all_finite result
//     (exec/LossScale.h), and rank 0 logs loss / lr / grad_norm and
//     streams them to the metrics file; every --save-every steps and after
//     the last one every rank gathers its sharded parameters and moments
//     and rank 0 saves a checkpoint of the full tensors. The ranks agree on
//     failure after every step.
//
// Initial weights are those of the single-rank run on every rank: the
// default init is a function of (seed, tensor name, index in the full
// tensor), and --init / --resume read the same full tensors, of which a
// sharded parameter takes its block.
//
// Loss scaling (a plan with loss_scale / inv_loss_scale arguments and an
// all_finite result, docs/plan-format.md "Loss scaling"): a step whose
// gradients are not all finite is skipped (AdamW left the weights alone):
// the optimizer step is not incremented, the scaler backs off; the data
// still advances. So iterations (`s`, the metrics' step, the data
// position, checkpoint names) and optimizer steps (the `step` argument:
// LR schedule, bias correction) differ by the skipped steps.
//
// Checkpoints: with --save-dir DIR, checkpoints DIR/step-<N> are saved
// atomically (exec/Checkpoint.h) every --save-every steps and at the end;
// --keep K deletes all but the K newest. --resume continues from
// DIR/latest: weights, moments, the iteration, the optimizer step and the
// loss scaler come from the checkpoint, and --steps is the total
// iteration count, so the run does steps checkpoint+1 .. --steps (none,
// with a note and exit code 0, when the checkpoint is that far already).
// Everything a step computes is a function of the weights, the moments,
// the optimizer step, the loss scale and the iteration (which fixes the
// data position), so the losses after a resume equal those of an
// uninterrupted run bit for bit (same thread count and layout). Without
// --resume, a DIR that already holds checkpoints is an error (nothing is
// overwritten). Rank 0 saves the full tensors: its own when they are whole
// (identical on every dp rank), gathered from its tensor-parallel group when
// they are shards (CheckpointTensors). So a checkpoint saved under one layout
// resumes under any other.
//
// Trace (--trace FILE.json, exec/Trace.h): every rank records its kernel
// calls, all_reduces (with gradient buckets also the communication
// thread's reductions), data loading, logging, checkpoint saves and step
// spans, and writes them at the end of a successful run, to FILE.json with
// one rank and FILE.rank<R>.json with several. A failed run leaves no trace file; so
// does a resumed run with nothing to do.
//
// Console (rank 0): the first lines describe the model, the layout (dp, tp,
// pp and the number of ranks), the memory, the batch and the FLOPs/token
// convention (A6), the loss scaler (with loss scaling), the gradient
// buckets and whether they overlap (with buckets and several ranks); then
// one line per step
//   step 12/100 | loss 5.1234 | lr 3.00e-04 | grad_norm 1.234 | 12,345 tok/s
// (with loss scaling "| scale 65536", and "| skipped (inf/nan gradients)"
// on a skipped step, before the throughput) and, when
// stdout is a terminal, a progress bar redrawn with '\r'.
//
// Metrics (rank 0; JSON Lines, one object per step run; a resumed
// run starts the file afresh at the checkpoint's step + 1): step (1-based,
// as on the console), loss (the global-batch loss before the step's update),
// lr (used by the step), grad_norm (pre-clip; null when the plan computes
// none; null too when non-finite, as on a skipped step), tokens_per_s
// (tokens of the global batch per second); with loss scaling also
// loss_scale (the scale the step used) and skipped (true / false).
//
// Gradient accumulation (train config "microbatches" M > 1): the plan
// unrolls the M microbatches of a step into one program with M `tokens` and
// M `targets` arguments and sums their losses and gradients; the trainer
// checks that there are exactly M of each, shaped [micro_batch_size,
// seq_len], and that global_batch_size = micro_batch_size * M * dp, and
// fills them per step. Everything else (the metrics' loss = the program's
// loss result, checkpoints, the data position) is per step, as with M = 1.
//
// Pipeline parallelism (pp > 1, docs/plan-format.md): each stage's ranks
// run their stage's program, which exchanges activations and gradients
// with the neighbouring stages (send / recv) and holds only the stage's
// parameters. The first stage's programs have the `tokens` arguments, the
// last stage's the `targets` (each program has M of a role or none), filled
// from the rank's dp coordinate as above; every program has the `loss` and
// `lr` results (reduced over the stages by the plan). Parameters are checked
// against the model across all programs; checkpoints gather every stage's
// tensors on rank 0 (CheckpointTensors::gather) and resume under any pp.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TRAINER_H
#define LLAMAC_RUNTIME_EXEC_TRAINER_H

#include <cstdint>
#include <string>
#include <vector>

namespace llamac {
namespace comm {
class Comm;
} // namespace comm

namespace exec {

struct RunOptions {
  std::string planPath;
  std::vector<std::string> dataPaths; ///< Token files or directories of them.
  int64_t steps = 0;
  uint64_t seed = 1234;
  std::string metricsPath; ///< Empty: no metrics file.
  std::string initPath;    ///< Empty: random init from `seed`.
  bool quiet = false;      ///< No console output (errors are returned).
  std::string saveDir;     ///< Empty: no checkpoints.
  int64_t saveEvery = 0;   ///< Save every K steps; 0: only after the last.
  int64_t keep = 0;        ///< Keep the K newest checkpoints; 0: all.
  bool resume = false;     ///< Continue from saveDir/latest.
  /// Chrome / Perfetto trace of each rank (exec/Trace.h; with several ranks
  /// rank R writes traceFilePath(tracePath, R, size)); empty: no trace.
  std::string tracePath;
  /// CPU threads of this process; 0: OMP_NUM_THREADS, else every core.
  int threads = 0;
  /// Where the kernels run: "cpu" (the CPU backend) or "cuda" / "cuda:N"
  /// (exec/Device.h; single-rank plans).
  std::string device = "cpu";
  /// On CUDA: f32 GEMMs on TF32 tensor cores (off: exact f32).
  bool tf32 = false;
  /// On CUDA: capture the step into a CUDA graph after the first one and
  /// replay it.
  bool cudaGraphs = true;
  /// The ranks of the job (not owned; comm::createComm()); nullptr: this
  /// process alone (a LocalComm).
  comm::Comm *comm = nullptr;
};

/// Runs the training loop as rank options.comm->rank(); returns the process
/// exit code (0 on success, 1 with `error` set to one line on failure; the
/// same on every rank, except when a collective fails inside a step, which
/// ends the job through Comm::abort()).
int runTraining(const RunOptions &options, std::string &error);

/// "12,345" (thousands separators), for logs.
std::string formatThousands(int64_t value);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TRAINER_H
