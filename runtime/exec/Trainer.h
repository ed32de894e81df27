//===- Trainer.h - The training loop of `llamac run` ---------------*- C++
//-*-===//
//
// runTraining() is `llamac run` without the command line, for one rank of
// the job (`mpirun -np N llamac run ...` starts N; RunOptions::comm connects
// them):
//  1. validate everything first, on every rank: options, the plan
//     (loadPlan), its layout against the world size (dp * tp * pp ranks;
//     pp = 1 for now), this rank's program (program(rank)) as a
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
//     DataLoader fills tokens/targets with this rank's slice (A3 order, dp
//     rank (rank / tp) % dp, microbatch 0: the tp ranks of a dp replica
//     read the same sequences), `step` is set to s, the program runs (its
//     collectives sum the loss and the gradients over dp and combine the
//     tensor-parallel shards), and rank 0 logs loss / lr / grad_norm and
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
// Checkpoints: with --save-dir DIR, checkpoints DIR/step-<N> are saved
// atomically (exec/Checkpoint.h) every --save-every steps and at the end;
// --keep K deletes all but the K newest. --resume continues from
// DIR/latest: weights, moments and the step come from the checkpoint, and
// --steps is the total, so the run does steps checkpoint+1 .. --steps (none,
// with a note and exit code 0, when the checkpoint is that far already).
// Everything a step computes is a function of the weights, the moments and
// the step (which also fixes the data position), so the losses after a
// resume equal those of an uninterrupted run bit for bit (same thread
// count and layout). Without --resume, a DIR that already holds checkpoints
// is an error (nothing is overwritten). Rank 0 saves the full tensors: its
// own when they are whole (identical on every dp rank), gathered from its
// tensor-parallel group when they are shards (CheckpointTensors). So a
// checkpoint saved under one layout resumes under any other.
//
// Trace (--trace FILE.json, exec/Trace.h): every rank records its kernel
// calls, all_reduces, data loading, logging, checkpoint saves and step spans,
// and writes them at the end of a successful run, to FILE.json with one rank
// and FILE.rank<R>.json with several. A failed run leaves no trace file; so
// does a resumed run with nothing to do.
//
// Console (rank 0): the first lines describe the model, the layout (dp, tp,
// pp and the number of ranks), the memory, the batch and the FLOPs/token
// convention (A6); then one line per step
//   step 12/100 | loss 5.1234 | lr 3.00e-04 | grad_norm 1.234 | 12,345 tok/s
// and, when stdout is a terminal, a progress bar redrawn with '\r'.
//
// Metrics (rank 0; JSON Lines, one object per step run; a resumed
// run starts the file afresh at the checkpoint's step + 1): step (1-based,
// as on the console), loss (the global-batch loss before the step's update),
// lr (used by the step), grad_norm (pre-clip; null when the plan computes
// none), tokens_per_s (tokens of the global batch per second).
//
// NOTE: plans with pp > 1 and plans with several microbatches per step are
// rejected for now: they need stage transfers and gradient accumulation
// respectively.
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
