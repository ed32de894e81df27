//===- Compile.h - llamac compile ---------------------------------*- C++ -*-===//
#ifndef LLAMAC_TOOLS_LLAMAC_COMPILE_H
#define LLAMAC_TOOLS_LLAMAC_COMPILE_H

#include "TrainOptions.h"

#include <string>

namespace llamac {

struct CompileOptions {
  TrainOptions train;
  /// forward: the graph as built; llm: after the training pipeline;
  /// lrt: after lowering and memory planning; plan: the plan file (-o).
  std::string emit = "plan";
  std::string output;
  bool timing = false;
  bool quiet = false; ///< No summary line after writing the plan.
  /// Print per-rank memory and the collectives of one step (--report).
  bool report = false;
  /// With pipeline stages: write the schedule's timeline here (SVG).
  std::string scheduleSvg;
};

/// Runs the compiler; returns the process exit code. Errors are printed as
/// one line each on stderr, and nothing is written to `output` on failure.
int runCompile(const CompileOptions &options);

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_COMPILE_H
