//===- Passes.h - llamac compiler passes -------------------------*- C++ -*-===//
#ifndef LLAMAC_PASSES_PASSES_H
#define LLAMAC_PASSES_PASSES_H

#include "dialects/dist/DistDialect.h"
#include "dialects/llm/LlmOps.h"
#include "dialects/lrt/LrtDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"

namespace llamac {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Options of the `llamac-train-pipeline` (see Pipelines.cpp).
struct TrainPipelineOptions
    : public mlir::PassPipelineOptions<TrainPipelineOptions> {
  Option<double> lr{*this, "lr", llvm::cl::init(3.0e-4)};
  Option<double> minLr{*this, "min-lr", llvm::cl::init(0.0)};
  Option<int64_t> warmupSteps{*this, "warmup-steps", llvm::cl::init(0)};
  Option<int64_t> decaySteps{*this, "decay-steps", llvm::cl::init(0)};
  Option<double> beta1{*this, "beta1", llvm::cl::init(0.9)};
  Option<double> beta2{*this, "beta2", llvm::cl::init(0.95)};
  Option<double> eps{*this, "eps", llvm::cl::init(1.0e-8)};
  Option<double> weightDecay{*this, "weight-decay", llvm::cl::init(0.0)};
  Option<double> clipGradNorm{*this, "clip-grad-norm", llvm::cl::init(0.0)};
  Option<double> clipGradValue{*this, "clip-grad-value", llvm::cl::init(0.0)};
  Option<int64_t> microbatches{*this, "microbatches", llvm::cl::init(1)};
  Option<int64_t> zero{*this, "zero", llvm::cl::init(0)};
  Option<std::string> gradReduceDtype{*this, "grad-reduce-dtype",
                                      llvm::cl::init("fp32")};
  Option<double> bucketCapMb{*this, "bucket-cap-mb", llvm::cl::init(25.0)};
  Option<double> firstBucketMb{*this, "first-bucket-mb", llvm::cl::init(1.0)};
  Option<int64_t> dp{*this, "dp", llvm::cl::init(1)};
  Option<int64_t> tp{*this, "tp", llvm::cl::init(1)};
  Option<int64_t> pp{*this, "pp", llvm::cl::init(1)};
  Option<std::string> precision{*this, "precision", llvm::cl::init("fp32")};
  Option<bool> lossScale{*this, "loss-scale", llvm::cl::init(false)};
  Option<bool> sequenceParallel{*this, "sequence-parallel",
                                llvm::cl::init(false)};
  /// Pipeline schedule (gpipe | 1f1b) and user stage boundaries (pp > 1).
  Option<std::string> schedule{*this, "schedule", llvm::cl::init("1f1b")};
  Option<std::string> ppSplit{*this, "pp-split", llvm::cl::init("")};
  /// User sharding passes (a textual pipeline on the module), run after the
  /// optimizer and before the --tp plan, e.g. "llm-example-replicate-vocab".
  Option<std::string> shardingPasses{*this, "sharding-passes",
                                     llvm::cl::init("")};
};

/// Name of the device grid symbol (upstream shard.grid), shape pp x dp x tp.
inline constexpr llvm::StringLiteral kWorldGrid = "world";

/// Finds or declares `shard.grid @world(shape = pp x dp x tp)`; an existing
/// grid of another shape is an error on `module`.
mlir::FailureOr<mlir::shard::GridOp>
getOrCreateWorldGrid(mlir::ModuleOp module, llvm::ArrayRef<int64_t> shape);

/// The device grid `@world` of `module` as sharding rules see it; an error
/// when it is missing or is not pp x dp x tp.
mlir::FailureOr<dist::GridInfo> getWorldGridInfo(mlir::ModuleOp module);

/// Appends the training pipeline (autodiff, optimizer, cleanup) to `pm`.
void buildTrainPipeline(mlir::OpPassManager &pm,
                        const TrainPipelineOptions &options);
/// Appends the lowering to the runtime (llm-lower-to-lrt, lrt-memory-plan).
void buildLowerPipeline(mlir::OpPassManager &pm);
/// Adds the dialects llamac's IR uses (llm, lrt, dist, func, shard) and the
/// sharding rules of upstream ops to `registry`.
void registerLlamacDialects(mlir::DialectRegistry &registry);
/// Registers `llamac-train-pipeline` and `llamac-lower-pipeline` with
/// mlir-opt style tools.
void registerTrainPipeline();

} // namespace llamac

#endif // LLAMAC_PASSES_PASSES_H
