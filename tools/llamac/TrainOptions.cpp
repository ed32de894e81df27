//===- TrainOptions.cpp - Training settings of llamac compile/train -------===//
#include "TrainOptions.h"

#include <cmath>
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
  app.add_option("--precision", precision, "Compute precision")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
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
  if (pp != 1) {
    error = "layout dp=" + std::to_string(dp) + " tp=" + std::to_string(tp) +
            " pp=" + std::to_string(pp) +
            " is not supported yet: pipeline parallelism is not implemented "
            "(use --pp 1)";
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
  if (precision != "fp32") {
    error = "--precision " + precision +
            " is not supported yet: this build compiles fp32 plans only";
    return false;
  }
  int64_t micro = microBatch ? microBatch : globalBatch / dp;
  if (micro * dp != globalBatch) {
    error = "--global-batch-size " + std::to_string(globalBatch) +
            " must equal dp x --micro-batch-size (" + std::to_string(dp) +
            " x " + std::to_string(micro) +
            "); gradient accumulation is not supported yet";
    return false;
  }
  return true;
}
