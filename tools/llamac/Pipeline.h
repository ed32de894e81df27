//===- Pipeline.h - Pipeline schedule: report and picture ------*- C++ -*-===//
//
// For plans with pipeline stages (llm-pipeline-partition): each stage's
// tasks (one microbatch's forward or backward) in its schedule order, with
// the cost model's time estimate, a simulation of the step (a task starts
// when its stage is free and its input has arrived: the previous stage's
// forward of the microbatch, the next stage's backward), the bubble
// fraction, and an SVG timeline (`llamac compile --schedule-svg`).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_TOOLS_LLAMAC_PIPELINE_H
#define LLAMAC_TOOLS_LLAMAC_PIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace llamac {

struct PipelineTask {
  int microbatch = 0;
  bool backward = false;
  double seconds = 0; ///< Cost-model estimate (roofline).
  double start = 0;   ///< Simulated start within the step.
};

struct PipelineStage {
  int firstLayer = 0, lastLayer = 0; ///< Transformer layers [first, last].
  bool embedding = false, head = false;
  std::vector<PipelineTask> tasks; ///< In the stage's schedule order.
  double stepSeconds = 0; ///< Every op of the stage, optimizer included.
  int64_t params = 0, grads = 0, moments = 0, arena = 0; ///< Bytes per rank.
};

struct PipelineSummary {
  std::string schedule;
  int microbatches = 0;
  std::vector<PipelineStage> stages;
  std::vector<double> unitSeconds; ///< Embedding, layers, head.
  double makespan = 0;             ///< Simulated forward + backward span.
  double bubble = 0;               ///< Idle fraction of stages x makespan.
};

/// Reads the stages' functions (llm level, after llm-pipeline-partition)
/// and simulates the schedule. False when `module` has no pipeline.
bool summarizePipeline(mlir::ModuleOp module, PipelineSummary &out);
/// Adds the memory of each stage from the lowered, memory-planned module.
void addPipelineMemory(mlir::ModuleOp module, PipelineSummary &summary);
/// The report's pipeline section.
void printPipelineReport(const PipelineSummary &summary,
                         llvm::raw_ostream &os);
/// Writes the timeline as SVG (atomically: a temporary file renamed onto
/// `path`); false with `error` set when it cannot be written.
bool writeScheduleSvg(const PipelineSummary &summary, const std::string &path,
                      std::string &error);

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_PIPELINE_H
