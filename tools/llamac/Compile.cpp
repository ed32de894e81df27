//===- Compile.cpp - llamac compile ----------------------------------------===//
//
// config -> forward graph -> llamac-train-pipeline -> (lowering, memory plan)
// -> output. Every phase verifies the IR; a failure prints one diagnostic and
// leaves no output file behind (llvm::ToolOutputFile removes it unless kept).
//
//===----------------------------------------------------------------------===//
#include "Compile.h"
#include "Pipeline.h"
#include "Report.h"

#include "dialects/llm/LlmDialect.h"
#include "dialects/lrt/ExportPlan.h"
#include "dialects/lrt/LrtDialect.h"
#include "frontend/GraphBuilder.h"
#include "model/LlamaConfig.h"
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <chrono>

using namespace mlir;
using namespace llamac;

namespace {
/// Wall-clock time of each phase, printed with --timing.
class PhaseTimer {
public:
  explicit PhaseTimer(bool enabled) : enabled(enabled) {}
  void done(const char *phase) {
    auto now = std::chrono::steady_clock::now();
    if (enabled)
      llvm::errs() << llvm::format("  %-28s %8.3f s\n", phase,
                                   std::chrono::duration<double>(now - last)
                                       .count());
    last = now;
  }

private:
  bool enabled;
  std::chrono::steady_clock::time_point last =
      std::chrono::steady_clock::now();
};
} // namespace

static int fail(const std::string &message) {
  llvm::errs() << "llamac compile: error: " << message << "\n";
  return 1;
}

static void setPipelineOptions(const TrainOptions &t,
                               TrainPipelineOptions &o) {
  o.lr = t.lr;
  o.minLr = t.minLr;
  o.warmupSteps = t.warmupSteps;
  o.decaySteps = t.decaySteps;
  o.beta1 = t.beta1;
  o.beta2 = t.beta2;
  o.eps = t.adamEps;
  o.weightDecay = t.weightDecay;
  o.clipGradNorm = t.clipGradNorm;
  o.clipGradValue = t.clipGradValue;
  o.dp = t.dp;
  o.tp = t.tp;
  o.pp = t.pp;
  o.sequenceParallel = t.sequenceParallel;
  o.shardingPasses = t.shardingPasses;
  o.precision = t.precision;
  o.bucketCapMb = t.bucketCapMb;
  o.zero = t.zero;
  o.gradReduceDtype = t.gradReduceDtype;
  o.firstBucketMb = t.firstBucketMb;
  o.microbatches = t.numMicrobatches();
  o.schedule = t.schedule;
  o.ppSplit = t.ppSplit;
  o.lossScale = t.lossScaleMode() != "none";
}

/// Applies `--shard NAME=SHARDING` to the parameters of @train_step.
static LogicalResult applyShardFlags(ModuleOp module,
                                     const std::vector<std::string> &flags,
                                     std::string &error) {
  auto func = *module.getOps<func::FuncOp>().begin();
  for (const std::string &flag : flags) {
    size_t eq = flag.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "--shard '" + flag +
              "': expected NAME=SHARDING, e.g. lm_head.weight=[{tp}, {}]";
      return failure();
    }
    std::string name = flag.substr(0, eq), spec = flag.substr(eq + 1);
    int index = -1;
    for (unsigned i = 0; i < func.getNumArguments() && index < 0; ++i)
      if (argParamName(func, i) == name)
        index = static_cast<int>(i);
    if (index < 0) {
      error = "--shard '" + flag + "': the model has no parameter named '" +
              name + "'";
      return failure();
    }
    if (func.getArgAttr(index, dist::kShardingAttr)) {
      error = "--shard '" + flag + "': parameter '" + name +
              "' is annotated twice (conflicting user annotations)";
      return failure();
    }
    std::string diag;
    llvm::raw_string_ostream os(diag);
    ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &d) {
      os << d.str();
      return success();
    });
    Attribute attr =
        parseAttribute("#dist.sharding<" + spec + ">", module.getContext());
    auto sharding = dyn_cast_or_null<dist::ShardingAttr>(attr);
    auto type = cast<RankedTensorType>(func.getArgument(index).getType());
    if (!sharding) {
      error = "--shard '" + flag + "': invalid sharding '" + spec + "'" +
              (diag.empty() ? "" : ": " + diag);
      return failure();
    }
    if (sharding.getDims().size() != static_cast<size_t>(type.getRank())) {
      error = "--shard '" + flag + "': '" + name + "' has rank " +
              std::to_string(type.getRank()) + " but the sharding lists " +
              std::to_string(sharding.getDims().size()) + " dimensions";
      return failure();
    }
    if (sharding.getPriority() < 0)
      sharding = dist::ShardingAttr::get(module.getContext(),
                                         sharding.getDims(),
                                         sharding.getPartial(), 0);
    func.setArgAttr(index, dist::kShardingAttr, sharding);
  }
  return success();
}

/// The training configuration stored in the plan (docs/plan-format.md).
static std::string trainConfigJson(const TrainOptions &t) {
  int64_t micro = t.microBatchSize();
  nlohmann::json j = {{"seq_len", t.seqLen},
                      {"micro_batch_size", micro},
                      {"global_batch_size", t.globalBatch},
                      {"microbatches", t.globalBatch / (t.dp * micro)},
                      {"lr", t.lr},
                      {"min_lr", t.minLr},
                      {"warmup_steps", t.warmupSteps},
                      {"decay_steps", t.decaySteps},
                      {"beta1", t.beta1},
                      {"beta2", t.beta2},
                      {"eps", t.adamEps},
                      {"weight_decay", t.weightDecay},
                      {"clip_grad_norm", t.clipGradNorm},
                      {"clip_grad_value", t.clipGradValue},
                      {"precision", t.precision}};
  if (t.pp > 1)
    j["pipeline"] = {{"schedule", t.schedule}, {"split", t.ppSplit}};
  // The runtime owns the scale (GradScaler semantics, docs/plan-format.md).
  std::string mode = t.lossScaleMode();
  if (mode != "none")
    j["loss_scale"] = {{"mode", mode},
                       {"init", t.lossScaleValue()},
                       {"growth_factor", 2.0},
                       {"backoff_factor", 0.5},
                       {"growth_interval", t.lossScaleWindow},
                       {"hysteresis", t.lossScaleHysteresis},
                       {"min_scale", t.minLossScale}};
  return j.dump();
}

/// Prints `module` to the output (stdout when none is given).
static int emitIR(ModuleOp module, const std::string &output) {
  std::string error;
  auto file = openOutputFile(output.empty() ? "-" : output, &error);
  if (!file)
    return fail(error);
  module.print(file->os());
  file->os() << "\n";
  file->keep();
  return 0;
}

int llamac::runCompile(const CompileOptions &options) {
  PhaseTimer timer(options.timing);
  const TrainOptions &train = options.train;

  // 1. Model and training settings.
  LlamaConfig config;
  std::string error;
  if (!LlamaConfig::load(train.model, config, error) ||
      !train.validate(error))
    return fail(error);
  timer.done("config");

  // 2. The forward graph.
  MLIRContext context;
  DialectRegistry registry;
  registerLlamacDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
  GraphShape shape;
  shape.seqLen = train.seqLen;
  shape.batch = train.microBatchSize();
  shape.globalTokens = train.globalBatch * train.seqLen;
  OwningOpRef<ModuleOp> module = buildForwardGraph(context, config, shape);
  if (failed(verify(*module)))
    return fail("internal error: the forward graph does not verify");
  timer.done("build forward graph");
  if (options.emit == "forward")
    return emitIR(*module, options.output);

  if (failed(applyShardFlags(*module, train.shards, error)))
    return fail(error);

  if (!options.scheduleSvg.empty() && train.pp == 1)
    return fail("--schedule-svg needs --pp > 1 (it draws the pipeline "
                "schedule)");
  if (train.pp > 1 && train.numMicrobatches() < train.pp)
    llvm::errs() << "llamac compile: warning: " << train.numMicrobatches()
                 << " microbatch" << (train.numMicrobatches() == 1 ? "" : "es")
                 << " for " << train.pp
                 << " pipeline stages: stages idle most of the step (use "
                    "--microbatches "
                 << train.pp << " or more)\n";
  if (train.precision == "fp16" && train.lossScaleMode() == "none")
    llvm::errs() << "llamac compile: warning: --precision fp16 with "
                    "--loss-scale none: gradients below 6e-8 flush to zero "
                    "and above 65504 overflow; training may diverge\n";
  if (!train.shardingPasses.empty()) {
    // User sharding passes are looked up by name, as llamac-opt does.
    static bool registered = (registerLlamacPasses(), true);
    (void)registered;
    OpPassManager probe("builtin.module");
    std::string why;
    llvm::raw_string_ostream os(why);
    if (failed(parsePassPipeline(train.shardingPasses, probe, os))) {
      std::string line = why.substr(0, why.find('\n'));
      if (size_t at = line.find("error: "); at != std::string::npos)
        line = line.substr(at + 7);
      return fail("--sharding-passes '" + train.shardingPasses +
                  "': " + (line.empty() ? "not a pass pipeline" : line));
    }
  }

  // 3. The training pipeline: autodiff, optimizer, sharding, cleanup.
  PassManager pm(&context);
  TrainPipelineOptions pipeline;
  setPipelineOptions(train, pipeline);
  buildTrainPipeline(pm, pipeline);
  if (failed(pm.run(*module)))
    return fail("the training pipeline failed (see the diagnostic above)");
  timer.done("training pipeline");
  if (options.emit == "llm")
    return emitIR(*module, options.output);
  // Costs on the llm ops (per stage with pipeline stages).
  PipelineSummary schedule;
  bool piped = summarizePipeline(*module, schedule);
  std::vector<CostSummary> costs;
  SmallVector<func::FuncOp> funcs(module->getOps<func::FuncOp>());
  if (options.report) {
    int64_t ranks = train.dp * train.tp * train.pp;
    double tokens = double(train.globalBatch) * double(train.seqLen);
    for (func::FuncOp f : funcs)
      costs.push_back(summarizeCosts(
          f, config.flopsPerToken(train.seqLen) * tokens / double(ranks)));
  }

  // 4. Lowering to runtime kernels and the memory plan.
  PassManager lower(&context);
  buildLowerPipeline(lower);
  if (failed(lower.run(*module)))
    return fail("lowering to the runtime failed (see the diagnostic above)");
  timer.done("lower + memory plan");
  if (piped)
    addPipelineMemory(*module, schedule);
  if (options.report) {
    for (auto [i, f] : llvm::enumerate(funcs)) {
      if (piped)
        llvm::outs() << "== pipeline stage " << i << " of " << train.pp
                     << " (ranks " << i * train.dp * train.tp << ".."
                     << (i + 1) * train.dp * train.tp - 1 << ") ==\n";
      printReport(f, config.name, {train.pp, train.dp, train.tp}, costs[i],
                  llvm::outs());
    }
    if (piped)
      printPipelineReport(schedule, llvm::outs());
  }
  if (!options.scheduleSvg.empty() &&
      !writeScheduleSvg(schedule, options.scheduleSvg, error))
    return fail(error);
  if (options.emit == "lrt")
    return emitIR(*module, options.output);

  // 5. The plan file.
  if (options.output.empty())
    return fail("--emit=plan needs an output file (-o model.llx)");
  PlanMetadata meta;
  meta.modelConfigJson = config.toJson();
  meta.trainConfigJson = trainConfigJson(train);
  meta.precision = train.precision;
  meta.dp = train.dp, meta.tp = train.tp, meta.pp = train.pp;
  // Whole 256-byte units (cuBLASLt's alignment for its workspace).
  meta.workspaceBytes =
      static_cast<int64_t>(train.gemmWorkspaceMb * 1048576.0) / 256 * 256;
  std::string bytes;
  if (failed(exportPlan(*module, meta, bytes)))
    return fail("cannot serialize the plan (see the diagnostic above)");
  auto file = openOutputFile(options.output, &error);
  if (!file)
    return fail(error);
  file->os().write(bytes.data(), bytes.size());
  file->os().flush();
  if (file->os().has_error())
    return fail("cannot write " + options.output);
  file->keep();
  timer.done("write plan");

  int ranks = train.dp * train.tp * train.pp;
  int64_t arena = 0; // the largest stage's
  for (func::FuncOp f : funcs)
    arena = std::max(arena,
                     f->getAttrOfType<IntegerAttr>(lrt::kArenaBytesAttr)
                         .getInt());
  if (!options.quiet)
    llvm::outs() << "wrote " << options.output << ": " << config.name << ", "
               << config.numParameters() << " parameters, " << ranks
               << (ranks == 1 ? " rank" : " ranks") << ", arena "
               << llvm::format("%.2f", arena / 1048576.0) << " MiB, "
               << bytes.size() << " bytes\n";
  return 0;
}
