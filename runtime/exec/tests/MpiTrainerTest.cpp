//===- MpiTrainerTest.cpp - Plans and training across MPI ranks
//------------===//
//
// Run by test/e2e/mpi-data-parallel.test (and ctest) as
//   mpirun -np 4 llamac-mpi-exec-tests
// Every rank runs every test; rank 0 writes the files into a directory whose
// path it broadcasts. Checked here:
//  - the executor's all_reduce over dp and tp groups of a [1, 2, 2] grid,
//    against closed forms;
//  - data-parallel training (the bigram step of BigramRun.h with its loss
//    and gradients summed over dp) against the single-rank run of the same
//    global batch, an exact resume under dp, and rank 0 alone writing;
//  - loss scaling under dp: every rank skips the same steps, the scaler
//    matches the single-rank run's and resumes exactly;
//  - bad input on any rank (world size, data, rank 0's outputs) ends every
//    rank with the same error instead of a hang.
// Without mpirun (one rank) the tests skip.
//
//===----------------------------------------------------------------------===//
#include "comm/tests/MpiTestEnv.h"
#include "exec/tests/MpiExecTestUtil.h"
#include "exec/Executor.h"
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
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

/// Files of a data-parallel bigram run: the plan for every rank of the world
/// (micro batch 2 each), the single-rank plan of the same global batch, a
/// token file.
struct DataParallelRun {
  SharedDir dir;
  int world = testComm().size();
  RunOptions options;
  DataParallelRun() {
    onRankZero([&] {
      writeBytes(dir.file("dp.llx"), buildPlan(bigramPlan(world, 2)));
      writeBytes(dir.file("single.llx"), buildPlan(bigramPlan(1, 2 * world)));
      std::string error;
      EXPECT_TRUE(io::writeTokenFile(dir.file("data.tok"),
                                     irregularTokens(5000), kV, error))
          << error;
    });
    options.planPath = dir.file("dp.llx");
    options.dataPaths = {dir.file("data.tok")};
    options.steps = 8;
    options.quiet = true;
    options.comm = &testComm();
  }
  /// Runs options on every rank; every rank expects `rc`.
  std::string run(int rc = 0) {
    std::string error;
    EXPECT_EQ(runTraining(options, error), rc)
        << "rank " << testComm().rank() << ": " << error;
    return error;
  }
};

} // namespace

TEST(MpiExecutor, AllReduceOverDpAndTpOfATwoByTwoGrid) {
  NEED_RANKS(4);
  comm::Comm &c = testComm();
  const int r = c.rank(), d = r / 2, t = r % 2; // [pp, dp, tp] = [1, 2, 2]
  // One program per rank: x summed over dp in place, over tp into y, over
  // both into z; the max over dp into m.
  PlanDef def;
  def.dp = 2;
  def.tp = 2;
  for (int rank = 0; rank < 4; ++rank) {
    ProgramDef p;
    p.rank = rank;
    int x = p.arena("x", {3, 5});
    int y = p.arena("y", {15});
    int z = p.arena("z", {15});
    int m = p.arena("m", {15});
    p.instr("all_reduce", {x}, {y},
            {L("grid_axes", {2}), S("reduction", "sum")});
    p.instr("all_reduce", {x}, {z},
            {L("grid_axes", {1, 2}), S("reduction", "sum")});
    p.instr("all_reduce", {x}, {m},
            {L("grid_axes", {1}), S("reduction", "max")});
    p.instr("all_reduce", {x}, {x},
            {L("grid_axes", {1}), S("reduction", "sum")});
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
  for (int i = 0; i < 15; ++i)
    at(0)[i] = float((r + 1) * 100 + i); // rank r holds (r + 1) * 100 + i
  EXPECT_TRUE(e.run(error)) << error;
  for (int i = 0; i < 15; ++i) {
    // tp group {2d, 2d + 1}; dp group {t, t + 2}; all four.
    EXPECT_EQ(at(1)[i], float((4 * d + 3) * 100 + 2 * i)) << "rank " << r;
    EXPECT_EQ(at(2)[i], float(1000 + 4 * i)) << "rank " << r;
    EXPECT_EQ(at(3)[i], float((t + 3) * 100 + i)) << "rank " << r;
    EXPECT_EQ(at(0)[i], float((2 * t + 4) * 100 + 2 * i)) << "rank " << r;
  }
}

TEST(MpiTrainer, DataParallelLossesMatchTheSingleRankRun) {
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  DataParallelRun f;
  const int r = testComm().rank();
  f.options.metricsPath = f.dir.file("metrics-rank" + std::to_string(r));
  f.run();
  onRankZero([&] {
    RunOptions single = f.options;
    single.planPath = f.dir.file("single.llx");
    single.metricsPath = f.dir.file("single.jsonl");
    single.comm = nullptr; // this process alone
    std::string error;
    ASSERT_EQ(runTraining(single, error), 0) << error;
    std::vector<nlohmann::json> dp = readMetrics(f.dir.file("metrics-rank0"));
    std::vector<nlohmann::json> one = readMetrics(single.metricsPath);
    ASSERT_EQ(dp.size(), 8u);
    ASSERT_EQ(one.size(), 8u);
    for (size_t i = 0; i < dp.size(); ++i) {
      double a = dp[i]["loss"], b = one[i]["loss"];
      EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << "step " << i + 1;
      double ga = dp[i]["grad_norm"], gb = one[i]["grad_norm"];
      EXPECT_NEAR(ga, gb, 1e-4 * std::abs(gb)) << "step " << i + 1;
      EXPECT_EQ(dp[i]["lr"], one[i]["lr"]);
      EXPECT_EQ(dp[i]["step"], one[i]["step"]);
    }
    EXPECT_LT(dp.back()["loss"].get<double>(), dp[0]["loss"].get<double>());
    // Only rank 0 writes metrics.
    for (int q = 1; q < f.world; ++q)
      EXPECT_FALSE(std::filesystem::exists(
          f.dir.file("metrics-rank" + std::to_string(q))))
          << q;
  });
}

TEST(MpiTrainer, ResumeUnderDataParallelismIsExact) {
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  DataParallelRun f;
  // Uninterrupted: 6 steps.
  f.options.steps = 6;
  f.options.metricsPath = f.dir.file("straight.jsonl");
  f.run();
  // Interrupted: 3 steps with a checkpoint, then a resume to 6.
  f.options.steps = 3;
  f.options.saveDir = f.dir.file("ckpt");
  f.options.metricsPath = f.dir.file("first.jsonl");
  f.run();
  f.options.steps = 6;
  f.options.resume = true;
  f.options.metricsPath = f.dir.file("resumed.jsonl");
  f.run();
  onRankZero([&] {
    EXPECT_TRUE(
        std::filesystem::is_directory(f.dir.file("ckpt/step-00000003")));
    EXPECT_TRUE(
        std::filesystem::is_directory(f.dir.file("ckpt/step-00000006")));
    std::vector<nlohmann::json> straight =
        readMetrics(f.dir.file("straight.jsonl"));
    std::vector<nlohmann::json> resumed =
        readMetrics(f.dir.file("resumed.jsonl"));
    ASSERT_EQ(straight.size(), 6u);
    ASSERT_EQ(resumed.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(resumed[i]["step"], straight[i + 3]["step"]);
      EXPECT_EQ(resumed[i]["loss"], straight[i + 3]["loss"]) << i; // bitwise
      EXPECT_EQ(resumed[i]["grad_norm"], straight[i + 3]["grad_norm"]) << i;
    }
  });
}

TEST(MpiTrainer, LossScalingSkipsTheSameStepsOnEveryRank) {
  // The f16 loss-scaled bigram step under dp (its finite check reduced
  // with min over dp) against the single-rank run of the global batch: the
  // same scales and skipped steps (the f16 seed overflows at >= 65520 on
  // every rank), losses within reduction-order noise, then an exact resume
  // in the middle of a growth count.
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  DataParallelRun f;
  const std::string scaler =
      R"({"init": 262144.0, "growth_interval": 3, "hysteresis": 2})";
  onRankZero([&] {
    writeBytes(f.dir.file("scaled-dp.llx"),
               buildPlan(lossScaledBigramPlan(DType::F16, scaler, f.world, 2)));
    writeBytes(
        f.dir.file("scaled-one.llx"),
        buildPlan(lossScaledBigramPlan(DType::F16, scaler, 1, 2 * f.world)));
  });
  f.options.planPath = f.dir.file("scaled-dp.llx");
  f.options.steps = 12;
  f.options.metricsPath = f.dir.file("scaled-dp.jsonl");
  f.run();
  f.options.steps = 10; // mid-growth, with the hysteresis spent
  f.options.saveDir = f.dir.file("ckpt");
  f.options.metricsPath = f.dir.file("first.jsonl");
  f.run();
  f.options.steps = 12;
  f.options.resume = true;
  f.options.metricsPath = f.dir.file("resumed.jsonl");
  f.run();
  onRankZero([&] {
    RunOptions single = f.options;
    single.planPath = f.dir.file("scaled-one.llx");
    single.metricsPath = f.dir.file("scaled-one.jsonl");
    single.saveDir.clear();
    single.resume = false;
    single.comm = nullptr;
    std::string error;
    ASSERT_EQ(runTraining(single, error), 0) << error;
    std::vector<nlohmann::json> dp = readMetrics(f.dir.file("scaled-dp.jsonl"));
    std::vector<nlohmann::json> one = readMetrics(single.metricsPath);
    std::vector<nlohmann::json> resumed =
        readMetrics(f.dir.file("resumed.jsonl"));
    ASSERT_EQ(dp.size(), 12u);
    ASSERT_EQ(one.size(), 12u);
    ASSERT_EQ(resumed.size(), 2u);
    // Megatron's hysteresis 2: 2^18 overflows twice before halving, then
    // every overflow halves (2^17, 2^16) until 2^15 is finite; after 3
    // finite steps 2^16 (hysteresis refilled) overflows twice, and so on.
    const double scales[12] = {262144, 262144, 131072, 65536, 32768, 32768,
                               32768,  65536,  65536,  32768, 32768, 32768};
    for (size_t i = 0; i < 12; ++i) {
      SCOPED_TRACE("step " + std::to_string(i + 1));
      EXPECT_EQ(dp[i]["loss_scale"].get<double>(), scales[i]);
      EXPECT_EQ(dp[i]["skipped"].get<bool>(), scales[i] >= 65520);
      EXPECT_EQ(dp[i]["loss_scale"], one[i]["loss_scale"]);
      EXPECT_EQ(dp[i]["skipped"], one[i]["skipped"]);
      EXPECT_EQ(dp[i]["lr"], one[i]["lr"]);
      double a = dp[i]["loss"], b = one[i]["loss"];
      EXPECT_NEAR(a, b, 1e-4 * std::abs(b));
    }
    for (size_t i = 0; i < 2; ++i)
      for (const char *key : {"loss", "lr", "loss_scale", "skipped"})
        EXPECT_EQ(resumed[i][key], dp[i + 10][key])
            << key << " at step " << i + 11;
  });
}

TEST(MpiTrainer, WorldSizeMismatchFailsOnEveryRank) {
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  DataParallelRun f;
  const int world = f.world;
  onRankZero([&] {
    writeBytes(f.dir.file("bigger.llx"), buildPlan(bigramPlan(world + 1, 2)));
  });
  f.options.planPath = f.dir.file("single.llx");
  f.options.metricsPath = f.dir.file("m.jsonl");
  EXPECT_EQ(f.run(1),
            f.options.planPath +
                ": plan needs 1 rank (dp=1 tp=1 pp=1); launched with " +
                std::to_string(world) +
                " ranks: run it without mpirun (or with mpirun -np 1)");
  f.options.planPath = f.dir.file("bigger.llx");
  const std::string w1 = std::to_string(world + 1);
  EXPECT_EQ(f.run(1), f.options.planPath + ": plan needs " + w1 +
                          " ranks (dp=" + w1 + " tp=1 pp=1); launched with " +
                          std::to_string(world) +
                          " ranks: run it with mpirun -np " + w1);
  EXPECT_FALSE(std::filesystem::exists(f.options.metricsPath));
}

TEST(MpiTrainer, BadInputOnOneRankStopsEveryRank) {
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  DataParallelRun f;
  const int last = f.world - 1;
  f.options.metricsPath = f.dir.file("m.jsonl");
  if (testComm().rank() == last)
    f.options.dataPaths = {f.dir.file("missing.tok")};
  std::string error = f.run(1);
  EXPECT_EQ(error.rfind("rank " + std::to_string(last) + ": " +
                            f.dir.file("missing.tok"),
                        0),
            0u)
      << error;
  EXPECT_FALSE(std::filesystem::exists(f.options.metricsPath));
}

TEST(MpiTrainer, RankZeroOutputErrorStopsEveryRank) {
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  DataParallelRun f;
  f.options.metricsPath = f.dir.file("no/such/dir/m.jsonl");
  std::string error = f.run(1);
  EXPECT_EQ(error, "rank 0: " + f.options.metricsPath +
                       ": cannot create metrics file: No such file or "
                       "directory")
      << error;
}
