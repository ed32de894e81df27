//===- BucketTest.cpp - Gradient buckets in one process -------------------===//
//
// bucket_all_reduce_start / bucket_all_reduce_wait without mpirun: every
// diagnostic of the verifier and the loader about them, the executor on a
// simulated rank (the reduction happens at the wait, as one all_reduce of
// the whole span, after the collectives started before it), and a
// single-rank training run with buckets (a group of one: no-ops) that
// equals the run without them, with its trace. The overlap under MPI:
// MpiBucketTest.cpp.
//
//===----------------------------------------------------------------------===//
#include "exec/Executor.h"
#include "exec/PlanLoader.h"
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
#include "exec/tests/SimulatedComm.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

namespace {

std::vector<AttrDef> startAttrs(int64_t bucket) {
  return {L("grid_axes", {1}), S("reduction", "sum"), I("bucket", bucket)};
}

/// Tensors of bucketProgram.
enum : int { kRegion = 0, kG0 = 1, kG1 = 2, kX = 3, kY = 4 };

/// A bucket of g0 [4] and g1 [3] back to back in one region; its start, an
/// add on other data (and a synchronous all_reduce of x over dp), its
/// wait. Instructions 0 .. 3.
ProgramDef bucketProgram() {
  ProgramDef p;
  int region = p.arena("bucket", {7});
  int g0 = p.within(region, 0, "g0", {4});
  int g1 = p.within(region, 4, "g1", {3});
  int x = p.arena("x", {5});
  int y = p.arena("y", {5});
  p.instr("bucket_all_reduce_start", {g0, g1}, {g0, g1}, startAttrs(0));
  p.instr("add", {x, x}, {y});
  p.instr("all_reduce", {x}, {x}, {L("grid_axes", {1}), S("reduction", "sum")});
  p.instr("bucket_all_reduce_wait", {g0, g1}, {g0, g1}, {I("bucket", 0)});
  return p;
}

/// bucketProgram for both ranks of a [1, 2, 1] grid.
PlanDef bucketPlan(const ProgramDef &p = bucketProgram()) {
  PlanDef def;
  def.dp = 2;
  for (int r = 0; r < 2; ++r) {
    def.programs.push_back(p);
    def.programs.back().rank = r;
  }
  return def;
}

std::string loadError(const PlanDef &def) {
  LoadedPlan plan;
  std::string error;
  if (loadDef(def, plan, error))
    return "";
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  return error;
}

#define EXPECT_ERROR(error, substring)                                         \
  do {                                                                         \
    const std::string e_ = (error);                                            \
    EXPECT_NE(e_.find(substring), std::string::npos)                           \
        << "error '" << e_ << "' lacks '" << (substring) << "'";               \
  } while (0)

} // namespace

TEST(Buckets, AValidBucketLoads) {
  EXPECT_EQ(loadError(bucketPlan()), "");
  // The wait may name other tensor entries over the same storage.
  ProgramDef p = bucketProgram();
  int v0 = p.view(kG0, {2, 2}), v1 = p.view(kG1, {3});
  p.instrs[3].inputs = {v0, v1};
  p.instrs[3].outputs = {v0, v1};
  EXPECT_EQ(loadError(bucketPlan(p)), "");
}

TEST(Buckets, TheSpanMustBeContiguousF32InTheArena) {
  ProgramDef p = bucketProgram();
  p.tensors[kG1].offset += 4; // a gap of one float
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "program 0: instr 0 'bucket_all_reduce_start' (test): input 1 "
               "tensor 2 'g1' (f32 [3]) at arena offset 20, expected 16 "
               "(right after input 0: a bucket's gradients are one "
               "contiguous span)");
  p = bucketProgram();
  std::swap(p.instrs[0].inputs[0], p.instrs[0].inputs[1]); // g1 then g0
  std::swap(p.instrs[0].outputs[0], p.instrs[0].outputs[1]);
  EXPECT_ERROR(loadError(bucketPlan(p)), "at arena offset 0, expected 28");
  p = bucketProgram();
  p.tensors[kG0].dtype = DType::BF16;
  p.tensors[kG0].shape = {8};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "input 0 tensor 1 'g0' (bf16 [8]): expected dtype f32 (a "
               "gradient bucket is one f32 span)");
  p = bucketProgram();
  int arg = p.arg("param", "w", {4});
  p.instrs[0].inputs = {arg};
  p.instrs[0].outputs = {arg};
  p.instrs[3].inputs = {arg};
  p.instrs[3].outputs = {arg};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "expected a tensor in the arena (a bucket's gradients are "
               "activations)");
}

TEST(Buckets, OutputsAreTheInputsInPlace) {
  ProgramDef p = bucketProgram();
  p.instrs[0].outputs = {kG0};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 0 'bucket_all_reduce_start' (test): has 1 outputs, "
               "expected 2 (one per input, in place)");
  p = bucketProgram();
  p.instrs[0].outputs = {kG0, kX};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "output 1 tensor 3 'x' (f32 [5]): expected the storage of "
               "input 1 tensor 2 'g1' (f32 [3]) (the bucket works in place)");
  p = bucketProgram();
  p.instrs[3].outputs = {kG1, kG0};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 3 'bucket_all_reduce_wait' (test): output 0 tensor 2 "
               "'g1' (f32 [3]): expected the storage of input 0");
}

TEST(Buckets, Attributes) {
  ProgramDef p = bucketProgram();
  p.instrs[0].attrs = {L("grid_axes", {1}), S("reduction", "sum")};
  EXPECT_ERROR(loadError(bucketPlan(p)), "missing attribute 'bucket'");
  p = bucketProgram();
  p.instrs[0].attrs = startAttrs(-1);
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "attribute 'bucket' = -1, expected >= 0");
  p = bucketProgram();
  p.instrs[0].attrs = {L("grid_axes", {1, 1}), S("reduction", "sum"),
                       I("bucket", 0)};
  EXPECT_ERROR(loadError(bucketPlan(p)), "attribute 'grid_axes' = [1, 1]");
  p = bucketProgram();
  p.instrs[0].attrs = {L("grid_axes", {1}), S("reduction", "mean"),
                       I("bucket", 0)};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "attribute 'reduction' = 'mean', expected sum, max or min");
}

TEST(Buckets, EveryStartHasExactlyOneLaterWait) {
  // A wait with no start before it.
  ProgramDef p = bucketProgram();
  p.instrs[3].attrs = {I("bucket", 7)};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 3 'bucket_all_reduce_wait' (test): waits for bucket 7, "
               "which no earlier bucket_all_reduce_start starts");
  p = bucketProgram();
  std::swap(p.instrs[0], p.instrs[3]); // the wait first
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 0 'bucket_all_reduce_wait' (test): waits for bucket 0, "
               "which no earlier bucket_all_reduce_start starts");
  // A start never waited for.
  p = bucketProgram();
  p.instrs.pop_back();
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 0 'bucket_all_reduce_start' (test): bucket 0 is never "
               "waited for (expected a later bucket_all_reduce_wait with "
               "bucket 0)");
  // Two waits.
  p = bucketProgram();
  p.instrs.push_back(p.instrs[3]);
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 4 'bucket_all_reduce_wait' (test): bucket 0 (started by "
               "instr 0) is already waited for by instr 3");
  // Two starts of one id.
  p = bucketProgram();
  p.instrs.push_back(p.instrs[0]);
  p.instrs.push_back(p.instrs[3]);
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 4 'bucket_all_reduce_start' (test): bucket 0 is already "
               "started by instr 0 (bucket ids are unique in a program)");
  // A wait of other tensors than its start's.
  p = bucketProgram();
  p.instrs[3].inputs = {kG0};
  p.instrs[3].outputs = {kG0};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 3 'bucket_all_reduce_wait' (test): its inputs (arena "
               "offset+bytes: 0+16) are not the tensors of bucket 0's start, "
               "instr 0 (0+16, 16+12)");
}

TEST(Buckets, NothingTouchesABucketInFlight) {
  ProgramDef p = bucketProgram();
  p.instrs[1] = {"scale", {kG1, kX}, {kY}, {}, "test"}; // reads g1
  p.tensors[kX].shape = {1};
  p.tensors[kY].shape = {3};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 1 'scale' (test): input 0 tensor 2 'g1' (f32 [3]) lies "
               "in bucket 0, whose all-reduce is in flight (started by instr "
               "0, not yet waited for)");
  p = bucketProgram();
  int inside = p.within(kRegion, 2, "inside", {5}); // overlaps both
  p.instrs[1] = {"add", {kX, kX}, {inside}, {}, "test"};
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 1 'add' (test): output 0 tensor 5 'inside' (f32 [5]) "
               "lies in bucket 0");
  // Two buckets in flight over the same bytes.
  p = bucketProgram();
  p.instrs.insert(
      p.instrs.begin() + 1,
      InstrDef{"bucket_all_reduce_start", {kG1}, {kG1}, startAttrs(1), "test"});
  EXPECT_ERROR(loadError(bucketPlan(p)),
               "instr 1 'bucket_all_reduce_start' (test): bucket 1 (arena "
               "bytes [16, 28)) overlaps bucket 0, whose all-reduce is in "
               "flight (started by instr 0)");
  // After the wait the span is free again.
  p = bucketProgram();
  p.instrs.push_back({"add", {kG0, kG0}, {kG0}, {}, "test"});
  EXPECT_EQ(loadError(bucketPlan(p)), "");
}

TEST(Buckets, TheRanksOfAGroupStartTheSameBuckets) {
  // Rank 1's bucket holds one gradient less: the ranks would reduce spans
  // of different sizes against each other.
  PlanDef def = bucketPlan();
  ProgramDef &other = def.programs[1];
  other.instrs[0].inputs = other.instrs[0].outputs = {kG0};
  other.instrs[3].inputs = other.instrs[3].outputs = {kG0};
  EXPECT_ERROR(loadError(def),
               "test.llx: programs 0 and 1 (one group over grid axes [1]) "
               "differ in their gradient bucket number 0 over these axes: "
               "bucket 0 of 7 elements and bucket 0 of 4 elements (the ranks "
               "of a group must start the same buckets in the same order)");
  def = bucketPlan();
  def.programs[1].instrs.erase(def.programs[1].instrs.begin() + 3);
  def.programs[1].instrs.erase(def.programs[1].instrs.begin());
  EXPECT_ERROR(loadError(def),
               "test.llx: programs 0 and 1 (one group over grid axes [1]) "
               "start 1 and 0 gradient buckets");
  // Different ids are fine: the order and sizes are what the ranks match.
  def = bucketPlan();
  def.programs[1].instrs[0].attrs = startAttrs(5);
  def.programs[1].instrs[3].attrs = {I("bucket", 5)};
  EXPECT_EQ(loadError(def), "");
}

TEST(Buckets, SimulatedRankReducesTheSpanAtTheWait) {
  // Comm's default (no communication thread): the bucket is one all_reduce
  // of its 7 elements at the wait, after the synchronous all_reduce of x
  // issued after the start; in place over g0 and g1.
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(bucketPlan(), plan, error)) << error;
  SimulatedComm comm(comm::Grid{1, 2, 1}, /*rank=*/1);
  Executor e;
  ASSERT_TRUE(e.init(plan.program(1), &comm, error)) << error;
  EXPECT_EQ(e.numBuckets(), 1);
  float *g = static_cast<float *>(e.tensorData(kRegion));
  float *x = static_cast<float *>(e.tensorData(kX));
  for (int i = 0; i < 7; ++i)
    g[i] = float(i);
  for (int i = 0; i < 5; ++i)
    x[i] = 1.0f;
  ASSERT_TRUE(e.run(error)) << error;
  EXPECT_EQ(comm.calls,
            (std::vector<std::string>{"all_reduce 5 [1]", "all_reduce 7 [1]"}));
  // Sum over G = 2 as member 1 sees it: 2 g + kPeerOffset * (1 - 2).
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(g[i], 2.0f * float(i) - SimulatedComm::kPeerOffset) << i;
  float *y = static_cast<float *>(e.tensorData(kY));
  EXPECT_EQ(y[0], 2.0f); // The add ran on x before its all_reduce.
}

TEST(Buckets, LocalCommDoesNothingAndBlocksNothing) {
  // One rank: start and wait are no-ops; the values stay.
  PlanDef def = singleProgram(bucketProgram());
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  Executor e;
  ASSERT_TRUE(e.init(plan.program(0), error)) << error;
  float *g = static_cast<float *>(e.tensorData(kRegion));
  for (int i = 0; i < 7; ++i)
    g[i] = float(i) + 0.5f;
  ASSERT_TRUE(e.run(error)) << error;
  ASSERT_TRUE(e.run(error)) << error; // Buckets are reusable step to step.
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(g[i], float(i) + 0.5f);
}

TEST(Buckets, SingleRankTrainingWithBucketsEqualsWithout) {
  // The bucketed dp step on one rank (every reduction over a group of one)
  // trains bit for bit like bigramProgram; its trace names the
  // communication thread's lane and has the start / wait events on the
  // collectives lane, but no reductions on the thread (there are none).
  BigramRun f;
  f.options.steps = 10;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  std::vector<nlohmann::json> plain = f.metrics();
  writeBytes(f.dir.file("bucketed.llx"),
             buildPlan(bucketedBigramPlan(1, kB, /*fillerRows=*/4)));
  f.options.planPath = f.dir.file("bucketed.llx");
  f.options.tracePath = f.dir.file("trace.json");
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  std::vector<nlohmann::json> bucketed = f.metrics();
  ASSERT_EQ(plain.size(), 10u);
  ASSERT_EQ(bucketed.size(), 10u);
  for (size_t i = 0; i < plain.size(); ++i)
    for (const char *key : {"loss", "grad_norm", "lr"})
      EXPECT_EQ(bucketed[i][key], plain[i][key]) << key << " " << i;

  std::ifstream in(f.options.tracePath);
  nlohmann::json trace = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(trace.is_discarded());
  std::map<int, std::string> lanes;
  std::map<std::string, int> starts, waits;
  int async = 0;
  for (const nlohmann::json &e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name")
      lanes[e["tid"].get<int>()] = e["args"]["name"];
    if (e["ph"] != "X")
      continue;
    if (e["name"] == "bucket_all_reduce")
      ++async;
    if (e["name"] == "bucket_all_reduce_start" ||
        e["name"] == "bucket_all_reduce_wait") {
      EXPECT_EQ(e["tid"], 1) << e.dump();
      EXPECT_EQ(e["cat"], "comm") << e.dump();
      const std::string key = std::to_string(e["args"]["bucket"].get<int>());
      (e["name"] == "bucket_all_reduce_start" ? starts : waits)[key]++;
    }
  }
  EXPECT_EQ(lanes, (std::map<int, std::string>{{0, "compute"},
                                               {1, "collectives"},
                                               {2, "host"},
                                               {3, "collectives (async)"}}));
  EXPECT_EQ(starts, (std::map<std::string, int>{{"0", 10}, {"1", 10}}));
  EXPECT_EQ(waits, starts);
  EXPECT_EQ(async, 0);
}
