//===- TrainOptions.cpp - Training settings of llamac compile/train -------===//
#include "TrainOptions.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace llamac;

// CLI11's stock range validators print the whole double range; these say
// what was expected in words.
static const CLI::Validator kPositive(
    [](std::string &v) -> std::string {
      char *end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || n <= 0)
        return "expected a positive integer, got '" + v + "'";
      return "";
    },
    "POSITIVE");
static const CLI::Validator kNonNegative(
    [](std::string &v) -> std::string {
      char *end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(d >= 0) || !std::isfinite(d))
        return "expected a non-negative number, got '" + v + "'";
      return "";
    },
    "NON-NEGATIVE");
static const CLI::Validator kProbability(
    [](std::string &v) -> std::string {
      char *end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(d >= 0 && d < 1))
        return "expected a number in [0, 1), got '" + v + "'";
      return "";
    },
    "[0,1)");

void TrainOptions::addFlags(CLI::App &app) {
  app.add_option("model", model,
                 "Preset name (e.g. tiny, llama3-8b) or path to an HF "
                 "config.json")
      ->required();
  app.add_option("--seq-len", seqLen, "Tokens per sequence")
      ->check(kPositive);
  app.add_option("--micro-batch-size", microBatch,
                 "Sequences per microbatch per data-parallel rank "
                 "(default: global batch / dp)")
      ->check(kNonNegative);
  app.add_option("--global-batch-size", globalBatch,
                 "Sequences per optimizer step over all ranks")
      ->check(kPositive);
  app.add_option("--lr", lr, "Peak learning rate")
      ->check(kNonNegative);
  app.add_option("--min-lr", minLr, "Final learning rate of the cosine decay")
      ->check(kNonNegative);
  app.add_option("--warmup-steps", warmupSteps, "Linear warmup steps")
      ->check(kNonNegative);
  app.add_option("--decay-steps", decaySteps,
                 "Step where the cosine decay reaches --min-lr (0: constant)")
      ->check(kNonNegative);
  app.add_option("--beta1", beta1, "AdamW beta1")->check(kProbability);
  app.add_option("--beta2", beta2, "AdamW beta2")->check(kProbability);
  app.add_option("--adam-eps", adamEps, "AdamW epsilon")
      ->check(kNonNegative);
  app.add_option("--weight-decay", weightDecay,
                 "Decoupled weight decay (matrices only)")
      ->check(kNonNegative);
  app.add_option("--clip-grad-norm", clipGradNorm,
                 "Clip gradients by global L2 norm (0: off)")
      ->check(kNonNegative);
  app.add_option("--clip-grad-value", clipGradValue,
                 "Clip each gradient element to [-v, v] (0: off; excludes "
                 "--clip-grad-norm)")
      ->check(kNonNegative);
  app.add_option("--dp", dp, "Data-parallel size")->check(kPositive);
  app.add_option("--tp", tp, "Tensor-parallel size")->check(kPositive);
  app.add_option("--pp", pp, "Pipeline-parallel size")->check(kPositive);
  app.add_option("--schedule", schedule,
                 "Pipeline schedule: 1f1b (default; at most pp microbatches "
                 "in flight per stage) or gpipe (all forwards, then all "
                 "backwards)")
      ->check(CLI::IsMember({"gpipe", "1f1b"}));
  app.add_option("--pp-split", ppSplit,
                 "Pipeline stage boundaries: the first layer of stages "
                 "1..pp-1, comma-separated, e.g. 3,6,9 (default: balanced "
                 "by the cost model)");
  app.add_option("--microbatches", microbatches,
                 "Microbatches per step (sets --micro-batch-size to global "
                 "batch / (dp x M))")
      ->check(kPositive);
  app.add_option("--zero", zero,
                 "ZeRO stage: 1 splits the AdamW moments over the "
                 "data-parallel ranks (gradients reduce-scattered, weights "
                 "all-gathered); 0 off");
  app.add_option("--grad-reduce-dtype", gradReduceDtype,
                 "Precision of the data-parallel gradient all-reduce: fp32 "
                 "(default) or bf16 / fp16 (half the bytes)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--bucket-cap-mb", bucketCapMb,
                 "Data parallelism: largest gradient all-reduce bucket, MiB "
                 "(PyTorch DDP's 25)");
  app.add_option("--first-bucket-mb", firstBucketMb,
                 "Data parallelism: largest first bucket, MiB (DDP's 1)");
  app.add_option("--gemm-workspace-mb", gemmWorkspaceMb,
                 "GEMM workspace of a GPU rank (cuBLASLt split-K / stream-K "
                 "scratch), MiB, part of the plan's device memory (default "
                 "32, cuBLASLt's size for Hopper; 0: none)");
  app.add_flag("--sequence-parallel", sequenceParallel,
               "With --tp: split norms and residuals along the sequence "
               "(Megatron-SP)");
  app.add_option("--shard", shards,
                 "Annotate a parameter: NAME=SHARDING, e.g. "
                 "'lm_head.weight=[{}, {}]' (dims as in #dist.sharding; "
                 "overrides the --tp plan; repeatable)");
  app.add_option("--sharding-passes", shardingPasses,
                 "Sharding passes to run before the --tp plan, as an MLIR "
                 "pass pipeline on the module, e.g. "
                 "llm-example-replicate-vocab (docs/guides/"
                 "writing-a-sharding-pass.md)");
  app.add_option("--precision", precision,
                 "Compute precision: fp32, or bf16 / fp16 compute with fp32 "
                 "master weights and optimizer")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--loss-scale", lossScale,
                 "dynamic | none | <value> (default: dynamic for fp16, none "
                 "otherwise)");
  app.add_option("--loss-scale-init", lossScaleInit,
                 "Dynamic loss scaling: initial scale (GradScaler: 65536)")
      ->check(kPositive);
  app.add_option("--loss-scale-window", lossScaleWindow,
                 "Dynamic loss scaling: finite steps before the scale doubles")
      ->check(kPositive);
  app.add_option("--loss-scale-hysteresis", lossScaleHysteresis,
                 "Dynamic loss scaling: overflows tolerated before the scale "
                 "halves (Megatron's hysteresis; 1 = GradScaler)")
      ->check(kPositive);
  app.add_option("--min-loss-scale", minLossScale,
                 "Dynamic loss scaling: the scale never drops below this")
      ->check(kPositive);
}

bool TrainOptions::validate(std::string &error) const {
  if (clipGradNorm > 0 && clipGradValue > 0) {
    error = "--clip-grad-norm and --clip-grad-value are mutually exclusive; "
            "set one of them to 0";
    return false;
  }
  if (decaySteps != 0 && decaySteps <= warmupSteps) {
    error = "--decay-steps " + std::to_string(decaySteps) +
            " must exceed --warmup-steps " + std::to_string(warmupSteps) +
            " (or be 0 for a constant rate)";
    return false;
  }
  if (!ppSplit.empty() && pp == 1) {
    error = "--pp-split needs --pp > 1 (it places the pipeline stage "
            "boundaries)";
    return false;
  }
  if (microbatches > 0) {
    if (globalBatch % (dp * microbatches) != 0) {
      error = "--microbatches " + std::to_string(microbatches) +
              ": --global-batch-size " + std::to_string(globalBatch) +
              " is not divisible by dp x microbatches (" +
              std::to_string(dp) + " x " + std::to_string(microbatches) +
              ")";
      return false;
    }
    if (microBatch && microBatch * dp * microbatches != globalBatch) {
      error = "--microbatches " + std::to_string(microbatches) +
              " and --micro-batch-size " + std::to_string(microBatch) +
              " disagree: dp x micro batch x microbatches must be the "
              "global batch " + std::to_string(globalBatch);
      return false;
    }
  }
  if (!(bucketCapMb > 0) || !(firstBucketMb > 0)) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "bucket sizes must be positive, got --bucket-cap-mb %g and "
                  "--first-bucket-mb %g",
                  bucketCapMb, firstBucketMb);
    error = buf;
    return false;
  }
  if (!(gemmWorkspaceMb >= 0) || gemmWorkspaceMb > 65536) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "--gemm-workspace-mb %g: expected 0 to 65536 MiB",
                  gemmWorkspaceMb);
    error = buf;
    return false;
  }
  if (zero != 0 && zero != 1) {
    error = "--zero " + std::to_string(zero) +
            ": only ZeRO stage 1 (optimizer state) is supported; stages 2 "
            "and 3 are not implemented";
    return false;
  }
  if (zero == 1 && gradReduceDtype != "fp32") {
    error = "--grad-reduce-dtype " + gradReduceDtype +
            " with --zero 1 is not supported yet (ZeRO reduce-scatters in "
            "fp32)";
    return false;
  }
  if (zero == 1 && dp == 1) {
    error = "--zero 1 needs --dp > 1 (it splits the optimizer state over the "
            "data-parallel ranks)";
    return false;
  }
  if (zero == 1 && tp > 1) {
    error = "--zero 1 with --tp > 1 is not supported yet (ZeRO runs on "
            "data parallelism alone); use --zero 0 or --tp 1";
    return false;
  }
  if (sequenceParallel && tp == 1) {
    error = "--sequence-parallel needs --tp > 1 (it splits the sequence over "
            "the tensor-parallel ranks)";
    return false;
  }
  if (!shards.empty() && tp == 1) {
    error = "--shard needs --tp > 1 (the grid has no tp axis to split over)";
    return false;
  }
  if (globalBatch % dp != 0) {
    error = "--global-batch-size " + std::to_string(globalBatch) +
            " is not divisible by --dp " + std::to_string(dp);
    return false;
  }
  if (!lossScale.empty() && lossScale != "dynamic" && lossScale != "none") {
    char *end = nullptr;
    double v = std::strtod(lossScale.c_str(), &end);
    if (end == lossScale.c_str() || *end != '\0' || !(v > 0) ||
        !std::isfinite(v)) {
      error = "--loss-scale: expected dynamic, none or a positive number, "
              "got '" + lossScale + "'";
      return false;
    }
  }
  int64_t micro = microBatchSize();
  if (globalBatch % (micro * dp) != 0) {
    error = "--global-batch-size " + std::to_string(globalBatch) +
            " is not divisible by dp x --micro-batch-size (" +
            std::to_string(dp) + " x " + std::to_string(micro) + " = " +
            std::to_string(dp * micro) +
            "); the step is that many sequences times the number of "
            "microbatches";
    return false;
  }
  return true;
}

int64_t TrainOptions::microBatchSize() const {
  if (microBatch)
    return microBatch;
  if (microbatches > 0 && globalBatch % (dp * microbatches) == 0)
    return globalBatch / (dp * microbatches);
  return globalBatch / dp;
}

std::string TrainOptions::lossScaleMode() const {
  if (lossScale.empty())
    return precision == "fp16" ? "dynamic" : "none";
  if (lossScale == "dynamic" || lossScale == "none")
    return lossScale;
  return "static";
}

double TrainOptions::lossScaleValue() const {
  return lossScaleMode() == "static" ? std::strtod(lossScale.c_str(), nullptr)
                                     : lossScaleInit;
}
