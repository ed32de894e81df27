//===- Pipelines.cpp - Named pass pipelines --------------------------------===//
//
// `llamac-train-pipeline`: forward graph -> full training step. The driver
// (`llamac compile`) runs exactly this pipeline, and `llamac-opt` can run it
// whole or pass by pass.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void llamac::buildTrainPipeline(OpPassManager &pm,
                                const TrainPipelineOptions &options) {
  pm.addNestedPass<func::FuncOp>(createLlmAutodiff());
  LlmGradAllReduceOptions reduce;
  reduce.dp = options.dp;
  reduce.tp = options.tp;
  reduce.pp = options.pp;
  pm.addPass(createLlmGradAllReduce(reduce));
  OpPassManager &fpm = pm.nest<func::FuncOp>();
  LlmOptimizerOptions opt;
  opt.lr = options.lr;
  opt.minLr = options.minLr;
  opt.warmupSteps = options.warmupSteps;
  opt.decaySteps = options.decaySteps;
  opt.beta1 = options.beta1;
  opt.beta2 = options.beta2;
  opt.eps = options.eps;
  opt.weightDecay = options.weightDecay;
  opt.clipGradNorm = options.clipGradNorm;
  opt.clipGradValue = options.clipGradValue;
  fpm.addPass(createLlmOptimizer(opt));
  // Sharding sees the whole step (forward, backward, optimizer): the plan
  // annotates, propagation decides, partition rewrites (no-ops without any
  // annotation, so single-rank and pure data-parallel IR is unchanged).
  if (!options.shardingPasses.empty() &&
      failed(parsePassPipeline(options.shardingPasses, pm)))
    llvm::report_fatal_error(llvm::Twine("invalid sharding-passes pipeline '") +
                             options.shardingPasses + "'");
  LlmTensorParallelOptions plan;
  plan.dp = options.dp;
  plan.tp = options.tp;
  plan.pp = options.pp;
  plan.sequenceParallel = options.sequenceParallel;
  pm.addPass(createLlmTensorParallel(plan));
  pm.addPass(createLlmShardingPropagation());
  pm.addPass(createLlmSpmdPartition());
  OpPassManager &cleanup = pm.nest<func::FuncOp>();
  cleanup.addPass(createCSEPass());
  cleanup.addPass(createCanonicalizerPass());
}

void llamac::buildLowerPipeline(OpPassManager &pm) {
  OpPassManager &fpm = pm.nest<func::FuncOp>();
  fpm.addPass(createLlmLowerToLrt());
  fpm.addPass(createLrtMemoryPlan());
}

void llamac::registerLlamacDialects(DialectRegistry &registry) {
  registry.insert<llm::LlmDialect, lrt::LrtDialect, dist::DistDialect,
                  func::FuncDialect, shard::ShardDialect>();
  dist::registerExternalShardingRules(registry);
}

void llamac::registerTrainPipeline() {
  PassPipelineRegistration<>(
      "llamac-lower-pipeline",
      "Training step to runtime program: llm-lower-to-lrt, lrt-memory-plan",
      buildLowerPipeline);
  PassPipelineRegistration<TrainPipelineOptions>(
      "llamac-train-pipeline",
      "Forward graph to training step: llm-autodiff, llm-grad-allreduce, "
      "llm-optimizer, llm-tensor-parallel, llm-sharding-propagation, "
      "llm-spmd-partition, cse, canonicalize",
      buildTrainPipeline);
}
