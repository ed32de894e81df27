//===- MpiTensorParallelTest.cpp - Tensor parallelism across MPI ranks ----===//
//
// Part of llamac-mpi-exec-tests (mpirun -np 4). Checked here:
//  - the executor's all_gather, reduce_scatter and all_slice along an inner
//    dimension over tp, dp and both axes of a [1, 2, 2] grid, against
//    closed forms;
//  - training with tensor and sequence parallelism (the bigram step of
//    BigramRun.h in its Megatron form) on [1, 2, 2] and [1, 1, 4] grids
//    against the single-rank run of the same global batch;
//  - checkpoints: a tp = 2 save holds the full tensors of a single-rank
//    save, resumes exactly under its own layout, and resumes under tp = 1
//    and tp = 4; a single-rank save resumes under tp = 2.
// Without 4 ranks the tests skip.
//
//===----------------------------------------------------------------------===//
#include "comm/tests/MpiTestEnv.h"
#include "exec/tests/MpiExecTestUtil.h"
#include "exec/Checkpoint.h"
#include "exec/Executor.h"
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
#include "io/Safetensors.h"
#include "io/TokenFile.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
using llamac::comm::test::testComm;

namespace {


/// `a` and `b` (metrics rows) agree to float reduction-order noise.
void expectCloseMetrics(const std::vector<nlohmann::json> &a,
                        const std::vector<nlohmann::json> &b,
                        const std::string &what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]) << what;
    double la = a[i]["loss"], lb = b[i]["loss"];
    EXPECT_NEAR(la, lb, 2e-5 * std::abs(lb)) << what << " step " << i;
    double ga = a[i]["grad_norm"], gb = b[i]["grad_norm"];
    EXPECT_NEAR(ga, gb, 2e-4 * std::abs(gb)) << what << " step " << i;
    EXPECT_EQ(a[i]["lr"], b[i]["lr"]) << what;
  }
}

/// The plans of a global batch of 4 sequences: tensor parallel on
/// [1, 2, 2] (2 per dp rank) and [1, 1, 4], and the single-rank plain step;
/// a token file.
struct TensorParallelRun {
  SharedDir dir;
  RunOptions options;
  TensorParallelRun() {
    onRankZero([&] {
      writeBytes(dir.file("dp2tp2.llx"),
                 buildPlan(tensorParallelBigramPlan(2, 2, 2)));
      writeBytes(dir.file("tp4.llx"),
                 buildPlan(tensorParallelBigramPlan(1, 4, 4)));
      writeBytes(dir.file("single.llx"), buildPlan(bigramPlan(1, 4)));
      std::string error;
      EXPECT_TRUE(io::writeTokenFile(dir.file("data.tok"),
                                     irregularTokens(5000), kV, error))
          << error;
    });
    options.dataPaths = {dir.file("data.tok")};
    options.quiet = true;
    options.comm = &testComm();
  }
  /// Runs `plan` on every rank, writing metrics to `metrics`.
  void run(const std::string &plan, const std::string &metrics, int64_t steps) {
    RunOptions o = options;
    o.planPath = dir.file(plan);
    o.metricsPath = dir.file(metrics);
    o.steps = steps;
    std::string error;
    EXPECT_EQ(runTraining(o, error), 0)
        << "rank " << testComm().rank() << ": " << error;
  }
  /// Runs the single-rank plan on rank 0 alone.
  void runSingle(const std::string &metrics, int64_t steps,
                 const RunOptions &base) {
    onRankZero([&] {
      RunOptions o = base;
      o.planPath = dir.file("single.llx");
      o.metricsPath = dir.file(metrics);
      o.steps = steps;
      o.comm = nullptr; // this process alone
      std::string error;
      EXPECT_EQ(runTraining(o, error), 0) << error;
    });
  }
  std::vector<nlohmann::json> metrics(const std::string &name) const {
    return readMetrics(dir.file(name));
  }
};

} // namespace

TEST(MpiExecutor, GatherScatterAndSliceAlongAnInnerDimension) {
  NEED_RANKS(4);
  comm::Comm &c = testComm();
  const int r = c.rank(), d = r / 2, t = r % 2; // [pp, dp, tp] = [1, 2, 2]
  // x [2, 4, 3] on every rank, element (o, i, k) = 1000 (r + 1) + 12 o +
  // 3 i + k. Gathers along dim 1 over tp, dp and both; a reduce_scatter
  // and an all_slice of the tp gather.
  PlanDef def;
  def.dp = 2;
  def.tp = 2;
  for (int rank = 0; rank < 4; ++rank) {
    ProgramDef p;
    p.rank = rank;
    int x = p.arena("x", {2, 4, 3});
    int overTp = p.arena("over_tp", {2, 8, 3});
    int overDp = p.arena("over_dp", {2, 8, 3});
    int overAll = p.arena("over_all", {2, 16, 3});
    int scattered = p.arena("scattered", {2, 4, 3});
    int sliced = p.arena("sliced", {2, 4, 3});
    p.instr("all_gather", {x}, {overTp}, {L("grid_axes", {2}), I("dim", 1)});
    p.instr("all_gather", {x}, {overDp}, {L("grid_axes", {1}), I("dim", 1)});
    p.instr("all_gather", {x}, {overAll},
            {L("grid_axes", {1, 2}), I("dim", 1)});
    p.instr("reduce_scatter", {overAll}, {scattered},
            {L("grid_axes", {1, 2}), I("dim", 1), S("reduction", "max")});
    p.instr("all_slice", {overTp}, {sliced},
            {L("grid_axes", {2}), I("dim", 1)});
    def.programs.push_back(p);
  }
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  EXPECT_TRUE(c.setGrid(comm::Grid{1, 2, 2}, error)) << error;
  Executor e;
  ASSERT_TRUE(e.init(plan.program(r), &c, error)) << error;
  auto at = [&](int tensor) {
    return static_cast<float *>(e.tensorData(tensor));
  };
  auto value = [](int rank, int o, int i, int k) {
    return float(1000 * (rank + 1) + 12 * o + 3 * i + k);
  };
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 3; ++k)
        at(0)[(o * 4 + i) * 3 + k] = value(r, o, i, k);
  EXPECT_TRUE(e.run(error)) << error;
  int wrong = 0;
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < 3; ++k)
      for (int i = 0; i < 4; ++i) {
        for (int b = 0; b < 2; ++b) {
          // Block b of the tp group {2d, 2d + 1} is rank 2d + b's; of the dp
          // group {t, t + 2} rank t + 2b's.
          wrong +=
              at(1)[(o * 8 + b * 4 + i) * 3 + k] != value(2 * d + b, o, i, k);
          wrong +=
              at(2)[(o * 8 + b * 4 + i) * 3 + k] != value(t + 2 * b, o, i, k);
        }
        for (int b = 0; b < 4; ++b)
          wrong += at(3)[(o * 16 + b * 4 + i) * 3 + k] != value(b, o, i, k);
        // Block r of the max over the world of identical tensors; block t
        // of the tp gather: rank r's own x.
        wrong += at(4)[(o * 4 + i) * 3 + k] != value(r, o, i, k);
        wrong += at(5)[(o * 4 + i) * 3 + k] != value(r, o, i, k);
      }
  EXPECT_EQ(wrong, 0) << "rank " << r;
}

TEST(MpiTensorParallel, LossesMatchTheSingleRankRun) {
  NEED_RANKS(4);
  TensorParallelRun f;
  f.run("dp2tp2.llx", "dp2tp2.jsonl", 8);
  f.run("tp4.llx", "tp4.jsonl", 8);
  f.runSingle("single.jsonl", 8, f.options);
  onRankZero([&] {
    std::vector<nlohmann::json> single = f.metrics("single.jsonl");
    ASSERT_EQ(single.size(), 8u);
    expectCloseMetrics(f.metrics("dp2tp2.jsonl"), single, "dp=2 tp=2");
    expectCloseMetrics(f.metrics("tp4.jsonl"), single, "tp=4");
    EXPECT_LT(single.back()["loss"].get<double>(),
              single[0]["loss"].get<double>());
  });
}

TEST(MpiTensorParallel, CheckpointsHoldFullTensorsAndResumeUnderAnyLayout) {
  NEED_RANKS(4);
  TensorParallelRun f;
  // Uninterrupted, single rank: 6 steps.
  f.runSingle("straight.jsonl", 6, f.options);
  // tp = 2 saves at step 3; the single-rank run too.
  RunOptions saving = f.options;
  saving.saveDir = f.dir.file("ckpt-tp2");
  RunOptions singleSaving = f.options;
  singleSaving.saveDir = f.dir.file("ckpt-single");
  {
    RunOptions o = saving;
    o.planPath = f.dir.file("dp2tp2.llx");
    o.metricsPath = f.dir.file("first.jsonl");
    o.steps = 3;
    std::string error;
    EXPECT_EQ(runTraining(o, error), 0) << error;
  }
  f.runSingle("single-first.jsonl", 3, singleSaving);

  // Resuming saves into the directory it resumed from: each resume below
  // gets its own copy of the step 3 checkpoint.
  onRankZero([&] {
    auto copy = [&](const std::string &from, const std::string &to) {
      namespace fs = std::filesystem;
      fs::create_directories(f.dir.file(to));
      fs::copy(f.dir.file(from + "/step-00000003"),
               f.dir.file(to + "/step-00000003"), fs::copy_options::recursive);
      std::ofstream(f.dir.file(to + "/latest")) << "step-00000003\n";
    };
    copy("ckpt-tp2", "tp2-for-tp1");
    copy("ckpt-tp2", "tp2-for-tp4");
    copy("ckpt-single", "single-for-tp2");
  });

  // 1. The tp = 2 checkpoint holds the full tensors of the single-rank one:
  // the unused decoder weights (sharded along dim 0 and 1, gathered) and
  // their zero moments exactly, the trained ones to reduction noise.
  onRankZero([&] {
    for (const char *file : {"model.safetensors", "optimizer.safetensors"}) {
      io::SafetensorsFile a, b;
      std::string error;
      ASSERT_TRUE(a.open(f.dir.file("ckpt-tp2/step-00000003/") + file, error))
          << error;
      ASSERT_TRUE(
          b.open(f.dir.file("ckpt-single/step-00000003/") + file, error))
          << error;
      ASSERT_EQ(a.tensors().size(), b.tensors().size());
      for (const io::TensorInfo &t : b.tensors()) {
        const io::TensorInfo *u = a.find(t.name);
        ASSERT_TRUE(u) << t.name;
        ASSERT_EQ(u->shape, t.shape) << t.name;
        std::vector<float> x(t.numel()), y(t.numel());
        ASSERT_TRUE(a.readAsFloat(t.name, x.data(), error)) << error;
        ASSERT_TRUE(b.readAsFloat(t.name, y.data(), error)) << error;
        const bool trained = t.name.rfind("model.layers.", 0) != 0;
        double worst = 0.0, scale = 0.0;
        for (size_t i = 0; i < x.size(); ++i) {
          worst = std::max(worst, std::abs(double(x[i]) - y[i]));
          scale = std::max(scale, std::abs(double(y[i])));
        }
        if (trained)
          EXPECT_LE(worst, 1e-4 * scale) << t.name;
        else
          EXPECT_EQ(x, y) << t.name;
      }
    }
  });

  // 2. Resumed under its own layout: the uninterrupted tp = 2 run, bit for
  // bit.
  f.run("dp2tp2.llx", "dp2tp2-straight.jsonl", 6);
  {
    RunOptions o = saving;
    o.planPath = f.dir.file("dp2tp2.llx");
    o.metricsPath = f.dir.file("dp2tp2-resumed.jsonl");
    o.steps = 6;
    o.resume = true;
    std::string error;
    EXPECT_EQ(runTraining(o, error), 0) << error;
  }
  onRankZero([&] {
    std::vector<nlohmann::json> straight = f.metrics("dp2tp2-straight.jsonl");
    std::vector<nlohmann::json> resumed = f.metrics("dp2tp2-resumed.jsonl");
    ASSERT_EQ(straight.size(), 6u);
    ASSERT_EQ(resumed.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(resumed[i]["loss"], straight[i + 3]["loss"]) << i; // bitwise
      EXPECT_EQ(resumed[i]["grad_norm"], straight[i + 3]["grad_norm"]) << i;
    }
  });

  // 3. The tp = 2 checkpoint under tp = 1 and tp = 4, the single-rank one
  // under tp = 2: each continues the single-rank run.
  RunOptions resume = f.options;
  resume.resume = true;
  resume.saveDir = f.dir.file("tp2-for-tp1");
  f.runSingle("tp2-to-tp1.jsonl", 6, resume);
  for (const auto &[dir, plan] :
       {std::pair<std::string, std::string>{"tp2-for-tp4", "tp4.llx"},
        {"single-for-tp2", "dp2tp2.llx"}}) {
    RunOptions o = resume;
    o.saveDir = f.dir.file(dir);
    o.planPath = f.dir.file(plan);
    o.metricsPath = f.dir.file(dir + ".jsonl");
    o.steps = 6;
    std::string error;
    EXPECT_EQ(runTraining(o, error), 0) << dir << ": " << error;
  }
  onRankZero([&] {
    std::vector<nlohmann::json> straight = f.metrics("straight.jsonl");
    ASSERT_EQ(straight.size(), 6u);
    const std::vector<nlohmann::json> tail(straight.begin() + 3,
                                           straight.end());
    expectCloseMetrics(f.metrics("tp2-to-tp1.jsonl"), tail, "tp=2 -> tp=1");
    expectCloseMetrics(f.metrics("tp2-for-tp4.jsonl"), tail, "tp=2 -> tp=4");
    expectCloseMetrics(f.metrics("single-for-tp2.jsonl"), tail, "tp=1 -> tp=2");
  });
}
