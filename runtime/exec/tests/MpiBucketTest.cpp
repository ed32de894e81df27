//===- MpiBucketTest.cpp - Buckets and microbatches across ranks ----------===//
//
// Run by mpirun -np 4 llamac-mpi-exec-tests (with MpiTrainerTest.cpp).
// Checked here:
//  - the executor's bucket_all_reduce_start / _wait over the dp, tp and
//    dp x tp groups of a [1, 2, 2] grid, with a synchronous all_reduce in
//    between and the waits out of order, against closed forms;
//  - data-parallel training with gradient buckets (bucketedBigramProgram)
//    equals, bit for bit, the same step with one all_reduce per gradient;
//  - the overlap: in each rank's trace, the communication thread's
//    reduction of the first bucket begins before the backward kernels
//    after its start have ended;
//  - gradient accumulation under dp: rank r's microbatch k is the k-th
//    slice of its sequences (the loss equals the single-rank run's).
// Without mpirun (one rank) the tests skip.
//
//===----------------------------------------------------------------------===//
#include "comm/tests/MpiTestEnv.h"
#include "exec/Executor.h"
#include "exec/Trace.h"
#include "exec/Trainer.h"
#include "exec/tests/MpiExecTestUtil.h"
#include "io/TokenFile.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
using llamac::comm::test::testComm;

namespace {

/// A shared directory with a token file, and options for every rank.
struct BucketRun {
  SharedDir dir;
  int world = testComm().size();
  RunOptions options;
  BucketRun() {
    onRankZero([&] {
      std::string error;
      EXPECT_TRUE(io::writeTokenFile(dir.file("data.tok"),
                                     irregularTokens(5000), kV, error))
          << error;
    });
    options.dataPaths = {dir.file("data.tok")};
    options.steps = 8;
    options.quiet = true;
    options.comm = &testComm();
  }
  /// Rank 0 writes `def` as `name`; every rank trains it; the metrics.
  void train(const PlanDef &def, const std::string &name) {
    onRankZero([&] { writeBytes(dir.file(name + ".llx"), buildPlan(def)); });
    options.planPath = dir.file(name + ".llx");
    options.metricsPath = dir.file(name + ".jsonl");
    std::string error;
    EXPECT_EQ(runTraining(options, error), 0)
        << "rank " << testComm().rank() << ": " << error;
  }
};

/// The complete events of a trace file.
std::vector<nlohmann::json> traceEvents(const std::string &path) {
  std::ifstream in(path);
  nlohmann::json t = nlohmann::json::parse(in, nullptr, false);
  std::vector<nlohmann::json> events;
  if (t.is_discarded()) {
    ADD_FAILURE() << path << " is not JSON";
    return events;
  }
  for (const nlohmann::json &e : t["traceEvents"])
    if (e["ph"] == "X")
      events.push_back(e);
  return events;
}

} // namespace

TEST(MpiExecutor, BucketsOverDpAndTpOfATwoByTwoGrid) {
  NEED_RANKS(4);
  comm::Comm &c = testComm();
  const int r = c.rank(), d = r / 2, t = r % 2; // [pp, dp, tp] = [1, 2, 2]
  // Bucket 0: a [3] and b [2, 2] over dp (sum); bucket 1: e [6] over tp
  // (max); bucket 2: f [5] over dp and tp (sum). x is all-reduced over dp
  // synchronously while they are in flight; the waits come 2, 0, 1; an add
  // reads a reduced gradient after its wait.
  PlanDef def;
  def.dp = 2;
  def.tp = 2;
  for (int rank = 0; rank < 4; ++rank) {
    ProgramDef p;
    p.rank = rank;
    int region = p.arena("bucket0", {7});
    int a = p.within(region, 0, "a", {3});
    int b = p.within(region, 3, "b", {2, 2});
    int e = p.arena("e", {6});
    int f = p.arena("f", {5});
    int x = p.arena("x", {4});
    int y = p.arena("y", {3});
    p.instr("bucket_all_reduce_start", {a, b}, {a, b},
            {L("grid_axes", {1}), S("reduction", "sum"), I("bucket", 0)});
    p.instr("bucket_all_reduce_start", {e}, {e},
            {L("grid_axes", {2}), S("reduction", "max"), I("bucket", 1)});
    p.instr("bucket_all_reduce_start", {f}, {f},
            {L("grid_axes", {2, 1}), S("reduction", "sum"), I("bucket", 2)});
    p.instr("all_reduce", {x}, {x},
            {L("grid_axes", {1}), S("reduction", "sum")});
    p.instr("bucket_all_reduce_wait", {f}, {f}, {I("bucket", 2)});
    p.instr("bucket_all_reduce_wait", {a, b}, {a, b}, {I("bucket", 0)});
    p.instr("add", {a, a}, {y});
    p.instr("bucket_all_reduce_wait", {e}, {e}, {I("bucket", 1)});
    def.programs.push_back(p);
  }
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  EXPECT_TRUE(c.setGrid(comm::Grid{1, 2, 2}, error)) << error;
  Executor exec;
  ASSERT_TRUE(exec.init(plan.program(r), &c, error)) << error;
  EXPECT_EQ(exec.numBuckets(), 3);
  auto at = [&](int tensor) {
    return static_cast<float *>(exec.tensorData(tensor));
  };
  // Tensors: 0 bucket0, 1 a, 2 b, 3 e, 4 f, 5 x, 6 y.
  for (int step = 0; step < 2; ++step) { // buckets are reused step to step
    for (int tensor : {0, 3, 4, 5}) {
      const int n = tensor == 0 ? 7 : tensor == 3 ? 6 : tensor == 4 ? 5 : 4;
      for (int i = 0; i < n; ++i)
        at(tensor)[i] = float((r + 1) * 100 + i); // rank r: (r + 1) 100 + i
    }
    EXPECT_TRUE(exec.run(error)) << error;
    for (int i = 0; i < 7; ++i) // dp group {t, t + 2}
      EXPECT_EQ(at(0)[i], float((2 * t + 4) * 100 + 2 * i)) << "rank " << r;
    for (int i = 0; i < 6; ++i) // tp group {2d, 2d + 1}: the max is 2d + 1's
      EXPECT_EQ(at(3)[i], float((2 * d + 2) * 100 + i)) << "rank " << r;
    for (int i = 0; i < 5; ++i) // all four
      EXPECT_EQ(at(4)[i], float(1000 + 4 * i)) << "rank " << r;
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(at(5)[i], float((2 * t + 4) * 100 + 2 * i)) << "rank " << r;
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(at(6)[i], 2.0f * at(1)[i]) << "rank " << r;
  }
}

TEST(MpiTrainer, BucketedDataParallelTrainsExactlyLikeAllReduce) {
  // The same sums, bucketed ({dhead}, {dnorm, demb}) or one all_reduce per
  // gradient: elementwise sums over the same ranks, so the same bits.
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  BucketRun f;
  f.train(bigramPlan(f.world, 2), "plain");
  f.train(bucketedBigramPlan(f.world, 2), "bucketed");
  onRankZero([&] {
    std::vector<nlohmann::json> plain = readMetrics(f.dir.file("plain.jsonl"));
    std::vector<nlohmann::json> bucketed =
        readMetrics(f.dir.file("bucketed.jsonl"));
    ASSERT_EQ(plain.size(), 8u);
    ASSERT_EQ(bucketed.size(), 8u);
    for (size_t i = 0; i < plain.size(); ++i)
      for (const char *key : {"step", "loss", "grad_norm", "lr"})
        EXPECT_EQ(bucketed[i][key], plain[i][key]) << key << " at " << i + 1;
    EXPECT_LT(bucketed.back()["loss"].get<double>(),
              bucketed[0]["loss"].get<double>());
  });
}

TEST(MpiTrainer, BucketAllReduceOverlapsTheBackwardPass) {
  // bucketedBigramProgram with a filler GEMM after bucket 0's start: on
  // every rank and in every step, the communication thread's
  // "bucket_all_reduce" of bucket 0 (lane 3) begins after the start and
  // before the filler and the last backward kernel (embedding_grad) end on
  // the compute lane, and ends before the main thread's wait for it does.
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  if (!testComm().overlapsAllReduce())
    GTEST_SKIP() << "MPI without MPI_THREAD_MULTIPLE: no communication thread";
  BucketRun f;
  const int r = testComm().rank();
  f.options.steps = 3;
  f.options.tracePath = f.dir.file("trace.json");
  f.train(bucketedBigramPlan(f.world, 2, /*fillerRows=*/4096), "overlap");
  const std::vector<InstrDef> instrs =
      bucketedBigramProgram(2, 2 * f.world, 4096).instrs;
  int start = -1, wait = -1, filler = -1, last = -1;
  for (int i = 0; i < static_cast<int>(instrs.size()); ++i) {
    const InstrDef &in = instrs[i];
    const bool bucket0 = !in.attrs.empty() &&
                         in.attrs.back().name == "bucket" &&
                         in.attrs.back().ival == 0;
    if (in.kernel == "bucket_all_reduce_start" && bucket0)
      start = i;
    if (in.kernel == "bucket_all_reduce_wait" && bucket0)
      wait = i;
    if (in.kernel == "linear" && start >= 0 && filler < 0)
      filler = i;
    if (in.kernel == "embedding_grad")
      last = i;
  }
  ASSERT_TRUE(start >= 0 && wait > start && filler > start && last > filler);
  // step -> event, per kind.
  std::map<int64_t, nlohmann::json> async, starts, waits, fillers, lasts;
  for (const nlohmann::json &e :
       traceEvents(traceFilePath(f.options.tracePath, r, f.world))) {
    const int64_t step = e["args"]["step"];
    if (e["name"] == "bucket_all_reduce") {
      EXPECT_EQ(e["tid"], 3) << e.dump();
      EXPECT_EQ(e["cat"], "comm") << e.dump();
      EXPECT_GE(e["args"]["queued_us"].get<double>(), 0.0) << e.dump();
      if (e["args"]["bucket"] == 0)
        async[step] = e;
      continue;
    }
    if (!e["args"].contains("instr"))
      continue;
    const int instr = e["args"]["instr"];
    if (instr == start)
      starts[step] = e;
    else if (instr == wait)
      waits[step] = e;
    else if (instr == filler)
      fillers[step] = e;
    else if (instr == last)
      lasts[step] = e;
  }
  auto end = [](const nlohmann::json &e) {
    return e["ts"].get<double>() + e["dur"].get<double>();
  };
  ASSERT_EQ(async.size(), 3u) << "rank " << r;
  for (int64_t step = 1; step <= 3; ++step) {
    SCOPED_TRACE("rank " + std::to_string(r) + " step " + std::to_string(step));
    ASSERT_TRUE(async.count(step) && starts.count(step) && waits.count(step) &&
                fillers.count(step) && lasts.count(step));
    const double begin = async[step]["ts"];
    EXPECT_GE(begin, starts[step]["ts"].get<double>());
    EXPECT_LT(begin, end(fillers[step])) << async[step].dump();
    EXPECT_LT(begin, end(lasts[step])) << async[step].dump();
    EXPECT_LE(end(async[step]), end(waits[step]) + 1e-3);
    EXPECT_EQ(fillers[step]["tid"], 0);
    EXPECT_EQ(waits[step]["tid"], 1);
  }
}

TEST(MpiTrainer, MicrobatchesUnderDataParallelism) {
  // Two microbatches of one sequence on each rank against one rank with the
  // whole global batch: rank r's microbatch k must be sequence 2r + k.
  if (testComm().size() == 1)
    GTEST_SKIP() << "needs mpirun";
  BucketRun f;
  f.train(accumulatedBigramPlan(2, 1, /*lossOf=*/-1, f.world), "acc");
  onRankZero([&] {
    RunOptions single = f.options;
    writeBytes(f.dir.file("single.llx"), buildPlan(bigramPlan(1, 2 * f.world)));
    single.planPath = f.dir.file("single.llx");
    single.metricsPath = f.dir.file("single.jsonl");
    single.comm = nullptr;
    std::string error;
    ASSERT_EQ(runTraining(single, error), 0) << error;
    std::vector<nlohmann::json> acc = readMetrics(f.dir.file("acc.jsonl"));
    std::vector<nlohmann::json> one = readMetrics(single.metricsPath);
    ASSERT_EQ(acc.size(), 8u);
    ASSERT_EQ(one.size(), 8u);
    for (size_t i = 0; i < acc.size(); ++i) {
      const double a = acc[i]["loss"], b = one[i]["loss"];
      EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << "step " << i + 1;
      EXPECT_EQ(acc[i]["lr"], one[i]["lr"]);
    }
  });
}
