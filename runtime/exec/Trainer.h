//===- Trainer.h - The training loop of `llamac run` ---------------*- C++ -*-===//
//
// runTraining() is `llamac run` without the command line:
//  1. validate everything first: options, the plan (loadPlan), that it is
//     a single-rank plan for the model it names, the token data (io
//     TokenStream, vocabulary <= the model's), --init weights;
//  2. only then open the --metrics file, so that bad input leaves no file
//     behind (DESIGN.md A7);
//  3. for each step s: the DataLoader fills tokens/targets (A3 order, dp
//     rank 0 of 1, microbatch 0), `step` is set to s, the program runs, and
//     loss / lr / grad_norm are logged and streamed to the metrics file.
//
// Console: the first lines describe the model, the layout, the memory, the
// batch and the FLOPs/token convention (A6); then one line per step
//   step 12/100 | loss 5.1234 | lr 3.00e-04 | grad_norm 1.234 | 12,345 tok/s
// and, when stdout is a terminal, a progress bar redrawn with '\r'.
//
// Metrics (JSON Lines, one object per step): step (1-based, as on the
// console), loss (the global-batch loss before the step's update), lr (used
// by the step), grad_norm (pre-clip; null when the plan computes none),
// tokens_per_s.
//
// NOTE: multi-rank plans (dp*tp*pp > 1) and plans with several microbatches
// per step are rejected for now; they need the MPI launcher and gradient
// accumulation respectively.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TRAINER_H
#define LLAMAC_RUNTIME_EXEC_TRAINER_H

#include <cstdint>
#include <string>
#include <vector>

namespace llamac {
namespace exec {

struct RunOptions {
  std::string planPath;
  std::vector<std::string> dataPaths; ///< Token files or directories of them.
  int64_t steps = 0;
  uint64_t seed = 1234;
  std::string metricsPath; ///< Empty: no metrics file.
  std::string initPath;    ///< Empty: random init from `seed`.
  bool quiet = false;      ///< No console output (errors are returned).
};

/// Runs the training loop; returns the process exit code (0 on success,
/// 1 with `error` set to one line on failure).
int runTraining(const RunOptions &options, std::string &error);

/// "12,345" (thousands separators), for logs.
std::string formatThousands(int64_t value);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TRAINER_H
