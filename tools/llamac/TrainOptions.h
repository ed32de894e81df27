//===- TrainOptions.h - Training settings of llamac compile/train -*- C++ -*-===//
//
// The flags that decide what a plan computes (shapes, optimizer, schedule,
// layout). `llamac compile` and `llamac train` share them.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_TOOLS_LLAMAC_TRAINOPTIONS_H
#define LLAMAC_TOOLS_LLAMAC_TRAINOPTIONS_H

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace llamac {

struct TrainOptions {
  std::string model;
  int64_t seqLen = 128;
  int64_t microBatch = 0; ///< 0: equal to the global batch / dp.
  int64_t globalBatch = 8;
  double lr = 3e-4;
  double minLr = 0.0;
  int64_t warmupSteps = 0;
  int64_t decaySteps = 0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double adamEps = 1e-8;
  double weightDecay = 0.1;
  double clipGradNorm = 1.0;
  double clipGradValue = 0.0;
  int64_t dp = 1, tp = 1, pp = 1;
  /// Pipeline parallelism: the schedule (gpipe | 1f1b) and user stage
  /// boundaries (the first layer of stages 1..pp-1, comma-separated).
  std::string schedule = "1f1b";
  std::string ppSplit;
  /// --microbatches M: micro batch = global batch / (dp * M); 0: unset.
  int64_t microbatches = 0;
  bool sequenceParallel = false;
  int64_t zero = 0; ///< ZeRO stage (0 or 1)
  std::string gradReduceDtype = "fp32"; ///< data-parallel gradient sums
  double bucketCapMb = 25.0;  ///< data-parallel gradient buckets (DDP)
  double firstBucketMb = 1.0;
  /// A GPU backend's GEMM workspace per rank (Program.workspace_bytes).
  double gemmWorkspaceMb = 32.0;
  /// --shard NAME=SHARDING: user annotations of parameters (priority 0).
  std::vector<std::string> shards;
  /// --sharding-passes PIPELINE: user sharding passes before the --tp plan.
  std::string shardingPasses;
  std::string precision = "fp32";
  /// --loss-scale: "dynamic", "none" or a positive number (static); empty:
  /// the precision's default (dynamic for fp16, none otherwise).
  std::string lossScale;
  double lossScaleInit = 65536.0;  ///< dynamic: initial scale (2^16)
  int64_t lossScaleWindow = 2000;  ///< dynamic: finite steps before growth
  int64_t lossScaleHysteresis = 1; ///< dynamic: overflows before backoff
  double minLossScale = 1.0;

  /// Sequences per microbatch per data-parallel rank after defaults.
  int64_t microBatchSize() const;
  /// Microbatches per step (gradient accumulation, pipeline).
  int64_t numMicrobatches() const {
    return globalBatch / (dp * microBatchSize());
  }

  /// The loss-scale mode after defaults: "none", "dynamic" or "static".
  std::string lossScaleMode() const;
  /// The static scale (mode "static"), or the dynamic initial scale.
  double lossScaleValue() const;

  /// Registers the flags on a CLI11 (sub)command.
  void addFlags(CLI::App &app);
  /// Cross-field checks CLI11 cannot express; sets a one-line error.
  bool validate(std::string &error) const;
};

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_TRAINOPTIONS_H
