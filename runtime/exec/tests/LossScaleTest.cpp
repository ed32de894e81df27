//===- LossScaleTest.cpp - Loss scaling in the training loop -------------===//
//
// The scaler's recurrence (LossScaleState::update) against hand-derived
// sequences, then runTraining() on lossScaledBigramProgram (BigramRun.h):
// in f16 its seed overflows exactly when the scale is >= 65520, so the
// skipped steps and scales of a run follow from the recurrence alone,
// computed here independently; skipped steps leave weights, moments and
// the optimizer step as they were; resume restores the scaler exactly. In
// f32 a power-of-two scale changes no bit: the run equals the plain plan's.
//
//===----------------------------------------------------------------------===//
#include "exec/LossScale.h"
#include "exec/Checkpoint.h"
#include "exec/Executor.h"
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// What the metrics of one step must say.
struct Expected {
  double scale;
  bool skipped;
  int64_t optimizerStep; ///< Before the step: what lr_schedule read.
  // The scaler after the step (what a checkpoint of it holds).
  double nextScale;
  int64_t growthTracker, hysteresis, nextOptimizerStep;
};

/// The run of lossScaledBigramProgram(F16) for `steps` steps: a step
/// overflows iff its scale is >= 65520 (the f16 seed becomes inf); the
/// scaler follows GradScaler with hysteresis, written out here again.
std::vector<Expected> expectedRun(const LossScaleConfig &c, int steps) {
  std::vector<Expected> out;
  double s = c.init;
  int64_t g = 0, h = c.hysteresis, opt = 0;
  for (int i = 0; i < steps; ++i) {
    Expected e;
    e.scale = s;
    e.skipped = s >= 65520.0;
    e.optimizerStep = opt;
    if (!c.dynamic) {
      if (!e.skipped)
        ++opt;
    } else if (e.skipped) {
      g = 0;
      if (h > 0)
        h -= 1;
      if (h == 0)
        s = std::max(c.minScale, s * c.backoffFactor);
    } else {
      ++opt;
      if (++g == c.growthInterval) {
        s *= c.growthFactor;
        g = 0;
        h = c.hysteresis;
      }
    }
    e.nextScale = s;
    e.growthTracker = g;
    e.hysteresis = h;
    e.nextOptimizerStep = opt;
    out.push_back(e);
  }
  return out;
}

LossScaleConfig dynamicConfig(double init, int64_t interval, int64_t hysteresis,
                              double minScale = 1.0) {
  LossScaleConfig c;
  c.enabled = true;
  c.init = init;
  c.growthInterval = interval;
  c.hysteresis = hysteresis;
  c.minScale = minScale;
  return c;
}

std::string configJson(const LossScaleConfig &c) {
  return json{{"mode", c.dynamic ? "dynamic" : "static"},
              {"init", c.init},
              {"growth_factor", c.growthFactor},
              {"backoff_factor", c.backoffFactor},
              {"growth_interval", c.growthInterval},
              {"hysteresis", c.hysteresis},
              {"min_scale", c.minScale}}
      .dump();
}

/// BigramRun with the loss-scaled plan in `low` precision.
struct ScaledRun : BigramRun {
  ScaledRun(DType low, const LossScaleConfig &config, int64_t steps) {
    writeBytes(options.planPath,
               buildPlan(lossScaledBigramPlan(low, configJson(config))));
    options.steps = steps;
  }
  std::string ckpt() const { return dir.file("ckpt"); }
  std::string step(int64_t s) const { return ckpt() + "/" + checkpointName(s); }
};

/// The lr of 0-based optimizer step `opt`, as the plan's f32 result.
double lrAt(int64_t opt) {
  return static_cast<float>(
      scheduledLearningRate(opt, kLr, kMinLr, kWarmup, kDecay));
}

void expectMetrics(const std::vector<json> &rows,
                   const std::vector<Expected> &want, size_t first = 0) {
  ASSERT_EQ(rows.size() + first, want.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Expected &e = want[i + first];
    SCOPED_TRACE("step " + std::to_string(i + first + 1));
    EXPECT_EQ(rows[i]["step"].get<int64_t>(), int64_t(i + first + 1));
    EXPECT_EQ(rows[i]["loss_scale"].get<double>(), e.scale);
    EXPECT_EQ(rows[i]["skipped"].get<bool>(), e.skipped);
    EXPECT_EQ(rows[i]["lr"].get<double>(), lrAt(e.optimizerStep));
    EXPECT_TRUE(rows[i]["loss"].is_number());
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// The recurrence
//===----------------------------------------------------------------------===//

TEST(LossScale, UpdateFollowsGradScalerWithHysteresis) {
  // GradScaler (hysteresis 1): back off at each overflow, grow after
  // growth_interval finite steps in a row; an overflow resets the count.
  LossScaleConfig c = dynamicConfig(1024.0, 3, 1);
  LossScaleState s = LossScaleState::initial(c);
  EXPECT_EQ(s, (LossScaleState{1024.0, 0, 1}));
  const bool finite[] = {true, true, false, true, true, true, true};
  const LossScaleState after[] = {
      {1024.0, 1, 1}, {1024.0, 2, 1}, {512.0, 0, 0}, {512.0, 1, 0},
      {512.0, 2, 0},  {1024.0, 0, 1}, {1024.0, 1, 1}};
  for (int i = 0; i < 7; ++i) {
    s.update(c, finite[i]);
    EXPECT_EQ(s, after[i]) << "after update " << i;
  }
  // Hysteresis 2: the first overflow only counts; the second backs off, and
  // so does every further one until growth refills the counter (Megatron).
  c = dynamicConfig(1024.0, 2, 2);
  s = LossScaleState::initial(c);
  const bool finite2[] = {false, false, false, true, true, false, true};
  const LossScaleState after2[] = {
      {1024.0, 0, 1}, {512.0, 0, 0}, {256.0, 0, 0}, {256.0, 1, 0},
      {512.0, 0, 2},  {512.0, 0, 1}, {512.0, 1, 1}};
  for (int i = 0; i < 7; ++i) {
    s.update(c, finite2[i]);
    EXPECT_EQ(s, after2[i]) << "after update " << i << " (hysteresis 2)";
  }
  // The floor, and a static scaler.
  c = dynamicConfig(4.0, 100, 1, /*minScale=*/2.0);
  s = LossScaleState::initial(c);
  s.update(c, false);
  s.update(c, false);
  EXPECT_EQ(s.scale, 2.0);
  c.dynamic = false;
  s = LossScaleState::initial(c);
  for (bool f : {false, true, false})
    s.update(c, f);
  EXPECT_EQ(s, LossScaleState::initial(c));
}

//===----------------------------------------------------------------------===//
// The training loop
//===----------------------------------------------------------------------===//

TEST(LossScale, DynamicScaleBacksOffSkipsAndGrows) {
  // From 2^20: five overflowing steps (2^20 .. 2^16) back off to 2^15,
  // three finite steps grow it to 2^16, which overflows again, ...
  const LossScaleConfig c = dynamicConfig(std::ldexp(1.0, 20), 3, 1);
  ScaledRun f(DType::F16, c, 16);
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  const std::vector<Expected> want = expectedRun(c, 16);
  ASSERT_TRUE(want[0].skipped && want[4].skipped && !want[5].skipped);
  ASSERT_EQ(want[8].scale, 65536.0);
  ASSERT_TRUE(want[8].skipped);
  expectMetrics(f.metrics(), want);
  // Training still happens on the finite steps.
  const auto rows = f.metrics();
  EXPECT_LT(rows.back()["loss"].get<double>(), rows[0]["loss"].get<double>());
}

TEST(LossScale, HysteresisDelaysBackoff) {
  const LossScaleConfig c = dynamicConfig(std::ldexp(1.0, 17), 3, 2);
  ScaledRun f(DType::F16, c, 12);
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  const std::vector<Expected> want = expectedRun(c, 12);
  // The first overflow only spends the hysteresis; the second halves the
  // scale, and so does every further one until the scale grows (Megatron).
  EXPECT_EQ(want[1].scale, std::ldexp(1.0, 17));
  EXPECT_EQ(want[2].scale, std::ldexp(1.0, 16));
  EXPECT_EQ(want[3].scale, std::ldexp(1.0, 15));
  EXPECT_FALSE(want[3].skipped);
  expectMetrics(f.metrics(), want);
}

TEST(LossScale, MinScaleAndStaticMode) {
  // The floor holds the scale at 2^16 (still overflowing): every step is
  // skipped and the scale stays there.
  LossScaleConfig c = dynamicConfig(std::ldexp(1.0, 18), 3, 1,
                                    /*minScale=*/65536.0);
  ScaledRun floor(DType::F16, c, 5);
  std::string error;
  ASSERT_EQ(runTraining(floor.options, error), 0) << error;
  expectMetrics(floor.metrics(), expectedRun(c, 5));
  EXPECT_EQ(floor.metrics().back()["loss_scale"].get<double>(), 65536.0);

  // Static: the scale never moves; overflowing steps are still skipped.
  c.dynamic = false;
  c.init = 65536.0;
  c.minScale = 1.0;
  ScaledRun overflow(DType::F16, c, 4);
  ASSERT_EQ(runTraining(overflow.options, error), 0) << error;
  expectMetrics(overflow.metrics(), expectedRun(c, 4));
  c.init = 1024.0;
  ScaledRun fine(DType::F16, c, 4);
  ASSERT_EQ(runTraining(fine.options, error), 0) << error;
  const std::vector<Expected> want = expectedRun(c, 4);
  EXPECT_FALSE(want[3].skipped);
  expectMetrics(fine.metrics(), want);
}

TEST(LossScale, SkippedStepsLeaveTheStateUnchanged) {
  // A checkpoint after every step: a skipped step's weights and moments are
  // the previous step's, byte for byte, and its optimizer step too; the
  // scaler state is the recurrence's.
  const LossScaleConfig c = dynamicConfig(std::ldexp(1.0, 17), 2, 2);
  ScaledRun f(DType::F16, c, 10);
  f.options.saveDir = f.ckpt();
  f.options.saveEvery = 1;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  const std::vector<Expected> want = expectedRun(c, 10);
  int skippedAfterFirst = 0, appliedAfterFirst = 0;
  for (int64_t s = 1; s <= 10; ++s) {
    SCOPED_TRACE("step " + std::to_string(s));
    const Expected &e = want[s - 1];
    json state = json::parse(readText(f.step(s) + "/trainer_state.json"));
    EXPECT_EQ(state["step"], s);
    EXPECT_EQ(state["data_position"], s);
    EXPECT_EQ(state["optimizer_step"], e.nextOptimizerStep);
    EXPECT_EQ(state["loss_scale"]["scale"].get<double>(), e.nextScale);
    EXPECT_EQ(state["loss_scale"]["growth_tracker"], e.growthTracker);
    EXPECT_EQ(state["loss_scale"]["hysteresis"], e.hysteresis);
    if (s == 1)
      continue;
    const bool sameWeights = readText(f.step(s) + "/model.safetensors") ==
                             readText(f.step(s - 1) + "/model.safetensors");
    const bool sameMoments = readText(f.step(s) + "/optimizer.safetensors") ==
                             readText(f.step(s - 1) + "/optimizer.safetensors");
    EXPECT_EQ(sameWeights, e.skipped);
    EXPECT_EQ(sameMoments, e.skipped);
    (e.skipped ? skippedAfterFirst : appliedAfterFirst) += 1;
  }
  EXPECT_GT(skippedAfterFirst, 0);
  EXPECT_GT(appliedAfterFirst, 0);
}

TEST(LossScale, ResumeRestoresTheScalerExactly) {
  // Checkpoints at step 5 (growth tracker 2 of 3) and at step 7 (one
  // overflow of the refilled hysteresis 2 spent): the resumed runs repeat
  // the uninterrupted one bit for bit.
  const LossScaleConfig c = dynamicConfig(std::ldexp(1.0, 17), 3, 2);
  const std::vector<Expected> want = expectedRun(c, 14);
  ASSERT_EQ(want[4].growthTracker, 2);
  ASSERT_EQ(want[6].hysteresis, 1);
  ScaledRun straight(DType::F16, c, 14);
  std::string error;
  ASSERT_EQ(runTraining(straight.options, error), 0) << error;
  const std::vector<json> all = straight.metrics();
  expectMetrics(all, want);

  for (int64_t at : {5, 7}) {
    SCOPED_TRACE("resumed at step " + std::to_string(at));
    ScaledRun f(DType::F16, c, at);
    f.options.saveDir = f.ckpt();
    ASSERT_EQ(runTraining(f.options, error), 0) << error;
    json state = json::parse(readText(f.step(at) + "/trainer_state.json"));
    EXPECT_EQ(state["optimizer_step"], want[at - 1].nextOptimizerStep);
    f.options.steps = 14;
    f.options.resume = true;
    f.options.quiet = false;
    testing::internal::CaptureStdout();
    int rc = runTraining(f.options, error);
    std::string out = testing::internal::GetCapturedStdout();
    ASSERT_EQ(rc, 0) << error;
    EXPECT_NE(out.find("(step " + std::to_string(at) + ", optimizer step " +
                       std::to_string(want[at - 1].nextOptimizerStep) + ")"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("(resumed)"), std::string::npos) << out;
    const std::vector<json> resumed = f.metrics();
    ASSERT_EQ(resumed.size(), size_t(14 - at));
    expectMetrics(resumed, want, at);
    for (size_t i = 0; i < resumed.size(); ++i)
      for (const char *key : {"loss", "lr", "loss_scale", "skipped"})
        EXPECT_EQ(resumed[i][key], all[i + at][key])
            << key << " at step " << i + at + 1;
  }
}

TEST(LossScale, ScalingInF32ChangesNoBit) {
  // Powers of two scale every f32 operation exactly, so a loss-scaled f32
  // run (a growing dynamic scale, no overflow) trains exactly like the
  // plain plan; so does a plain checkpoint resumed into the scaled plan
  // (whose scaler then starts afresh).
  BigramRun plain;
  plain.options.steps = 8;
  std::string error;
  ASSERT_EQ(runTraining(plain.options, error), 0) << error;
  const std::vector<json> reference = plain.metrics();

  const LossScaleConfig c = dynamicConfig(1024.0, 2, 1);
  ScaledRun scaled(DType::F32, c, 8);
  ASSERT_EQ(runTraining(scaled.options, error), 0) << error;
  const std::vector<json> rows = scaled.metrics();
  ASSERT_EQ(rows.size(), 8u);
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i + 1));
    for (const char *key : {"loss", "grad_norm", "lr"})
      EXPECT_EQ(rows[i][key], reference[i][key]) << key;
    EXPECT_EQ(rows[i]["loss_scale"].get<double>(),
              std::ldexp(1024.0, int(i / 2)));
    EXPECT_EQ(rows[i]["skipped"], false);
  }
  EXPECT_FALSE(reference[0].contains("loss_scale"));
  EXPECT_FALSE(reference[0].contains("skipped"));

  BigramRun first;
  first.options.steps = 3;
  first.options.saveDir = first.dir.file("ckpt");
  ASSERT_EQ(runTraining(first.options, error), 0) << error;
  json state = json::parse(
      readText(first.dir.file("ckpt/step-00000003/trainer_state.json")));
  EXPECT_EQ(state["optimizer_step"], 3);
  EXPECT_TRUE(state["loss_scale"].is_null());
  writeBytes(first.options.planPath,
             buildPlan(lossScaledBigramPlan(DType::F32, configJson(c))));
  first.options.steps = 8;
  first.options.resume = true;
  ASSERT_EQ(runTraining(first.options, error), 0) << error;
  const std::vector<json> resumed = first.metrics();
  ASSERT_EQ(resumed.size(), 5u);
  for (size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i]["loss"], reference[i + 3]["loss"]) << i;
    EXPECT_EQ(resumed[i]["loss_scale"].get<double>(),
              std::ldexp(1024.0, int(i / 2)))
        << i;
  }
}

TEST(LossScale, ConsoleShowsScaleAndSkippedSteps) {
  const LossScaleConfig c = dynamicConfig(65536.0, 2, 1);
  ScaledRun f(DType::F16, c, 3);
  f.options.quiet = false;
  f.options.metricsPath.clear();
  std::string error;
  testing::internal::CaptureStdout();
  int rc = runTraining(f.options, error);
  std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << error;
  EXPECT_NE(out.find("precision fp16"), std::string::npos) << out;
  // The f32 copies of 16-bit operands.
  EXPECT_NE(out.find(", scratch 0.0 MiB\n"), std::string::npos) << out;
  EXPECT_NE(out.find("loss scaling: dynamic, scale 65536, x2 after 2 finite "
                     "steps, x0.5 after 1 overflow, min 1; steps with "
                     "inf/nan gradients are skipped"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("step 1/3 | loss "), std::string::npos) << out;
  EXPECT_NE(out.find(" | scale 65536 | skipped (inf/nan gradients) | "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(" | scale 32768 | "), std::string::npos) << out;
  EXPECT_EQ(out.find("32768 | skipped"), std::string::npos) << out;
  EXPECT_NE(out.find("done: 3 steps (1 skipped) in "), std::string::npos)
      << out;
}

TEST(LossScale, TrainerStateFields) {
  TrainerState s;
  s.step = 9;
  s.optimizerStep = 7;
  s.globalBatchSize = 2;
  s.seqLen = 8;
  s.seed = 5;
  s.hasLossScale = true;
  s.lossScale = {8192.0, 3, 2};
  std::string error;
  TrainerState back;
  ASSERT_TRUE(TrainerState::fromJson(s.toJson(), "ts", back, error)) << error;
  EXPECT_EQ(back.step, 9);
  EXPECT_EQ(back.optimizerStep, 7);
  EXPECT_TRUE(back.hasLossScale);
  EXPECT_EQ(back.lossScale, s.lossScale);

  json j = json::parse(s.toJson());
  auto fails = [&](json edited, const std::string &message) {
    TrainerState out;
    EXPECT_FALSE(TrainerState::fromJson(edited.dump(), "ts", out, error))
        << message;
    EXPECT_NE(error.find(message), std::string::npos)
        << "'" << error << "' lacks '" << message << "'";
  };
  json bad = j;
  bad["optimizer_step"] = 10;
  fails(bad, "ts: optimizer_step 10 > step 9");
  bad = j;
  bad["optimizer_step"] = -1;
  fails(bad, "ts: field 'optimizer_step' must be an integer >= 0, got -1");
  bad = j;
  bad["loss_scale"]["scale"] = 0.0;
  fails(bad, "ts: field 'loss_scale.scale' must be a finite number > 0, got "
             "0.0");
  bad = j;
  bad["loss_scale"] = "big";
  fails(bad, "ts: field 'loss_scale' must be an object or null");
  bad = j;
  bad["loss_scale"]["hysteresis"] = -1;
  fails(bad, "ts: field 'loss_scale.hysteresis' must be an integer >= 0, "
             "got -1");
  bad = j;
  bad["loss_scale"].erase("growth_tracker");
  fails(bad, "ts: field 'loss_scale.growth_tracker' must be an integer >= 0, "
             "got nothing");

  // Without loss scaling: null, and a file without optimizer_step (older
  // checkpoints) means every step was applied.
  s.hasLossScale = false;
  j = json::parse(s.toJson());
  EXPECT_TRUE(j["loss_scale"].is_null());
  j.erase("optimizer_step");
  ASSERT_TRUE(TrainerState::fromJson(j.dump(), "ts", back, error)) << error;
  EXPECT_EQ(back.optimizerStep, 9);
  EXPECT_FALSE(back.hasLossScale);
}
