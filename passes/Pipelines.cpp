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
  // Casts first: they are forward ops whose gradients autodiff derives, so
  // the backward pass comes out in the same precisions and the gradients of
  // the fp32 masters come out fp32, ready for the fp32 reduction and
  // optimizer; sharding, after the optimizer, treats casts as elementwise.
  if (options.precision != "fp32" || options.lossScale) {
    LlmMixedPrecisionOptions mp;
    mp.precision = options.precision;
    mp.lossScale = options.lossScale;
    pm.addNestedPass<func::FuncOp>(createLlmMixedPrecision(mp));
  }
  pm.addNestedPass<func::FuncOp>(createLlmAutodiff());
  if (options.microbatches > 1) {
    LlmGradAccumulationOptions acc;
    acc.microbatches = options.microbatches;
    pm.addNestedPass<func::FuncOp>(createLlmGradAccumulation(acc));
  }
  LlmGradAllReduceOptions reduce;
  reduce.dp = options.dp;
  reduce.tp = options.tp;
  reduce.pp = options.pp;
  reduce.zero = options.zero;
  reduce.reduceDtype = options.gradReduceDtype;
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
  if (options.zero >= 1) {
    LlmZeroOptions zero;
    zero.dp = options.dp;
    zero.tp = options.tp;
    pm.addPass(createLlmZero(zero));
  }
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
  // On per-rank shapes with every tensor- and data-parallel collective in
  // place: one function per pipeline stage, in schedule order.
  if (options.pp > 1) {
    LlmPipelinePartitionOptions stages;
    stages.pp = options.pp;
    stages.dp = options.dp;
    stages.tp = options.tp;
    stages.schedule = options.schedule;
    stages.split = options.ppSplit;
    pm.addPass(createLlmPipelinePartition(stages));
  }
  // Last, on per-rank shapes (per stage): data-parallel gradient buckets.
  if (options.dp > 1) {
    LlmAllReduceBucketingOptions buckets;
    buckets.bucketCapMb = options.bucketCapMb;
    buckets.firstBucketMb = options.firstBucketMb;
    pm.addNestedPass<func::FuncOp>(createLlmAllReduceBucketing(buckets));
  }
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
      "Forward graph to training step: [llm-mixed-precision], llm-autodiff, "
      "[llm-grad-accumulation], llm-grad-allreduce, "
      "llm-optimizer, llm-tensor-parallel, llm-sharding-propagation, "
      "llm-spmd-partition, cse, canonicalize, [llm-pipeline-partition], "
      "[llm-allreduce-bucketing]",
      buildTrainPipeline);
}
