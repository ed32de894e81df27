//===- GradAccumulationTest.cpp - Several microbatches per step -----------===//
//
// Plans whose train config has "microbatches": M > 1 unroll the step: M
// pairs of tokens / targets arguments, the losses and gradients summed
// (accumulatedBigramProgram, BigramRun.h). runTraining() fills the k-th pair
// with microbatch k (DESIGN.md A3); checked here against the single
// microbatch run of the same global batch, against closed combinations of
// single-microbatch losses (which data each argument gets), for an exact
// resume, and for the trainer's diagnostics.
//
//===----------------------------------------------------------------------===//
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
#include "io/TokenFile.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

namespace {

/// Irregular tokens (every sequence differs) and a place for plans.
struct Accumulation : BigramRun {
  Accumulation() {
    std::string error;
    EXPECT_TRUE(io::writeTokenFile(dir.file("data.tok"), irregularTokens(4000),
                                   kV, error))
        << error;
  }
  /// Writes `def` as `name` and trains it `steps` steps; the metrics.
  std::vector<nlohmann::json> train(const PlanDef &def, const std::string &name,
                                    int64_t steps) {
    writeBytes(dir.file(name + ".llx"), buildPlan(def));
    options.planPath = dir.file(name + ".llx");
    options.metricsPath = dir.file(name + ".jsonl");
    options.steps = steps;
    std::string error;
    EXPECT_EQ(runTraining(options, error), 0) << name << ": " << error;
    return metrics();
  }
};

} // namespace

TEST(GradAccumulation, MicrobatchesTrainLikeOneBigBatch) {
  // Global batch 4: one microbatch of 4 against two of 2 and four of 1
  // (losses and gradients summed in microbatch order: equal up to fp32
  // summation order).
  Accumulation f;
  std::vector<nlohmann::json> one = f.train(bigramPlan(1, 4), "one", 20);
  for (auto [m, micro] : {std::pair{2, 2}, std::pair{4, 1}}) {
    SCOPED_TRACE(std::to_string(m) + " microbatches of " +
                 std::to_string(micro));
    std::vector<nlohmann::json> acc =
        f.train(accumulatedBigramPlan(m, micro), "acc" + std::to_string(m), 20);
    ASSERT_EQ(acc.size(), 20u);
    ASSERT_EQ(one.size(), 20u);
    for (size_t i = 0; i < acc.size(); ++i) {
      const double a = acc[i]["loss"], b = one[i]["loss"];
      EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << "step " << i + 1;
      const double ga = acc[i]["grad_norm"], gb = one[i]["grad_norm"];
      EXPECT_NEAR(ga, gb, 1e-4 * std::abs(gb)) << "step " << i + 1;
      EXPECT_EQ(acc[i]["lr"], one[i]["lr"]);
      EXPECT_EQ(acc[i]["step"], one[i]["step"]);
    }
    EXPECT_LT(acc.back()["loss"].get<double>(), acc[0]["loss"].get<double>());
  }
}

TEST(GradAccumulation, TheKthArgumentsGetMicrobatchK) {
  // Step 1's loss is that of the initial weights (the same in every run).
  // With normalizer 4T, microbatch 0 (sequences 0, 1) has loss l0 = L2 / 2,
  // L2 the loss of a global batch of 2 (normalizer 2T), and microbatch 1
  // (sequences 2, 3) l1 = L4 - l0, L4 that of the global batch of 4. A probe
  // whose loss result is microbatch k's alone must give lk.
  Accumulation f;
  const double l2 = f.train(bigramPlan(1, 2), "two", 1).at(0)["loss"];
  const double l4 = f.train(bigramPlan(1, 4), "four", 1).at(0)["loss"];
  const double l0 = l2 / 2, l1 = l4 - l0;
  ASSERT_GT(std::abs(l0 - l1), 1e-3) << "the two halves must differ";
  const double probe0 =
      f.train(accumulatedBigramPlan(2, 2, /*lossOf=*/0), "probe0", 1)
          .at(0)["loss"];
  const double probe1 =
      f.train(accumulatedBigramPlan(2, 2, /*lossOf=*/1), "probe1", 1)
          .at(0)["loss"];
  EXPECT_NEAR(probe0, l0, 1e-6 * l0);
  EXPECT_NEAR(probe1, l1, 1e-6 * l1);
}

TEST(GradAccumulation, ResumeIsExact) {
  Accumulation f;
  std::vector<nlohmann::json> straight =
      f.train(accumulatedBigramPlan(2, 2), "straight", 6);
  f.options.saveDir = f.dir.file("ckpt");
  f.train(accumulatedBigramPlan(2, 2), "first", 3);
  f.options.resume = true;
  std::vector<nlohmann::json> resumed =
      f.train(accumulatedBigramPlan(2, 2), "resumed", 6);
  ASSERT_EQ(straight.size(), 6u);
  ASSERT_EQ(resumed.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(resumed[i]["step"], straight[i + 3]["step"]);
    EXPECT_EQ(resumed[i]["loss"], straight[i + 3]["loss"]) << i; // bitwise
    EXPECT_EQ(resumed[i]["grad_norm"], straight[i + 3]["grad_norm"]) << i;
  }
}

TEST(GradAccumulation, ArgumentsMustMatchTheMicrobatches) {
  Accumulation f;
  auto failWith = [&](PlanDef def, const std::string &expected) {
    writeBytes(f.dir.file("bad.llx"), buildPlan(def));
    f.options.planPath = f.dir.file("bad.llx");
    f.expectFailure(expected);
  };
  // The config says 3 microbatches, the program has 2 pairs.
  PlanDef def = accumulatedBigramPlan(2, 2);
  def.trainJson = tinyTrainJson(kT, 2, 6, 3);
  failWith(def, f.dir.file("bad.llx") +
                    ": program 0 has 2 'tokens' arguments, expected one per "
                    "microbatch: 3 (the train config's microbatches)");
  // One more targets argument than tokens.
  def = accumulatedBigramPlan(2, 2);
  def.programs[0].arg("targets", "", {2, kT}, DType::I32);
  failWith(def, ": program 0 has 3 'targets' arguments, expected one per "
                "microbatch: 2");
  // Microbatches of 4 sequences in the config, of 2 in the program.
  def = accumulatedBigramPlan(2, 2);
  def.trainJson = tinyTrainJson(kT, 4, 8, 2);
  failWith(def, "('tokens' of microbatch 0) has shape [2, 8], expected [4, "
                "8] (micro_batch_size, seq_len)");
  // A [B * T] argument holds the right number of ids, but not as rows.
  def = accumulatedBigramPlan(2, 2);
  for (TensorDef &t : def.programs[0].tensors)
    if (t.name == "targets " && t.shape == std::vector<int64_t>{2, kT})
      t.shape = {2 * kT};
  failWith(def, "('targets' of microbatch 0) has shape [16], expected [2, 8]");
  // The global batch is micro_batch_size * microbatches * dp.
  def = accumulatedBigramPlan(2, 2);
  def.trainJson = tinyTrainJson(kT, 2, 2, 2);
  failWith(def, ": global_batch_size 2 != micro_batch_size 2 * microbatches "
                "2 * dp 1");
}
