//===- TraceTest.cpp - Chrome / Perfetto traces of runs -------------------===//
//
// The trace files of exec/Trace.h, parsed back with nlohmann::json: of a
// small program run by the Executor (event fields, lanes, args), and of the
// bigram training run of BigramRun.h (one event per instruction per step,
// steps, host lanes), plus the file naming and the failure cases (no file
// left behind).
//
//===----------------------------------------------------------------------===//
#include "exec/Trace.h"
#include "exec/Executor.h"
#include "exec/tests/BigramRun.h"
#include "io/Safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
using nlohmann::json;

namespace {

json readJson(const std::string &path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

/// The complete ("X") events of a trace, in file order.
std::vector<json> completeEvents(const json &trace) {
  std::vector<json> out;
  for (const json &e : trace["traceEvents"])
    if (e["ph"] == "X")
      out.push_back(e);
  return out;
}

/// The files of `dir` (to check that nothing, temporary files included, is
/// left behind).
std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  for (const auto &entry : std::filesystem::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// constant -> add -> all_reduce (sum over grid axis 1), with locations.
ProgramDef smallProgram() {
  ProgramDef p;
  int a = p.arena("a", {4, 8});
  int b = p.arena("b", {4, 8});
  int c = p.arena("c", {4, 8});
  p.instr("constant", {}, {a}, {R("value", 1.0)});
  p.instrs.back().loc = "model.layers.0.mlp";
  p.instr("add", {a, a}, {b});
  p.instrs.back().loc = "model.layers.0.mlp \"quoted\"";
  p.instr("all_reduce", {b}, {c}, {L("grid_axes", {1}), S("reduction", "sum")});
  p.instrs.back().loc = "grads";
  return p;
}

} // namespace

TEST(Trace, RankFileNames) {
  EXPECT_EQ(traceFilePath("t.json", 0, 1), "t.json");
  EXPECT_EQ(traceFilePath("t.json", 0, 2), "t.rank0.json");
  EXPECT_EQ(traceFilePath("t.json", 1, 2), "t.rank1.json");
  EXPECT_EQ(traceFilePath("/a/b.d/t.json", 3, 4), "/a/b.d/t.rank3.json");
  EXPECT_EQ(traceFilePath("/a/b.d/trace", 3, 4), "/a/b.d/trace.rank3");
  EXPECT_EQ(traceFilePath("out/t.trace.json", 1, 2), "out/t.trace.rank1.json");
  EXPECT_EQ(traceFilePath("/x/.trace", 0, 2), "/x/.trace.rank0");
}

TEST(Trace, ExecutorEventsHaveLanesAndArgs) {
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(singleProgram(smallProgram()), plan, error)) << error;
  Executor exec;
  ASSERT_TRUE(exec.init(plan.program(0), error)) << error;
  TempDir dir;
  Trace trace;
  ASSERT_TRUE(trace.open(dir.file("t.json"), plan.program(0), /*rank=*/0,
                         /*worldSize=*/1, json{{"plan", "small"}}, error))
      << error;
  EXPECT_FALSE(std::filesystem::exists(dir.file("t.json")));
  exec.setTrace(&trace);
  trace.start();
  for (int step = 1; step <= 2; ++step) {
    trace.beginStep(step);
    ASSERT_TRUE(exec.run(error)) << error;
    trace.flushStep();
  }
  ASSERT_TRUE(trace.finish(error)) << error;
  ASSERT_TRUE(trace.commit(error)) << error;
  EXPECT_EQ(trace.numEvents(), 6);
  EXPECT_EQ(listDir(dir.path), std::vector<std::string>{"t.json"});

  json t = readJson(dir.file("t.json"));
  ASSERT_FALSE(t.is_discarded());
  EXPECT_EQ(t["displayTimeUnit"], "ms");
  EXPECT_EQ(t["metadata"]["plan"], "small");
  EXPECT_EQ(t["metadata"]["rank"], 0);
  EXPECT_EQ(t["metadata"]["world_size"], 1);
  std::vector<json> x = completeEvents(t);
  ASSERT_EQ(x.size(), 6u);
  const char *names[3] = {"constant", "add", "all_reduce"};
  for (size_t i = 0; i < x.size(); ++i) {
    const json &e = x[i];
    EXPECT_EQ(e["name"], names[i % 3]) << i;
    EXPECT_EQ(e["pid"], 0);
    EXPECT_EQ(e["args"]["step"], int(i / 3 + 1));
    EXPECT_EQ(e["args"]["microbatch"], -1); // The whole step.
    EXPECT_FALSE(e["args"].contains("phase"));
    EXPECT_EQ(e["args"]["instr"], int(i % 3));
    EXPECT_EQ(e["args"]["bytes"], 4 * 8 * 4);
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    EXPECT_GE(e["ts"].get<double>(), 0.0);
  }
  EXPECT_EQ(x[0]["cat"], "kernel");
  EXPECT_EQ(x[0]["tid"], 0);
  EXPECT_EQ(x[0]["args"]["loc"], "model.layers.0.mlp");
  EXPECT_EQ(x[1]["args"]["loc"], "model.layers.0.mlp \"quoted\"");
  EXPECT_EQ(x[2]["cat"], "comm");
  EXPECT_EQ(x[2]["tid"], 1);
  EXPECT_EQ(x[2]["args"]["grid_axes"], json::array({1}));
  EXPECT_EQ(x[2]["args"]["reduction"], "sum");
  // Kernels run one after the other.
  for (size_t i = 1; i < x.size(); ++i)
    EXPECT_GE(x[i]["ts"].get<double>(), x[i - 1]["ts"].get<double>() +
                                            x[i - 1]["dur"].get<double>() -
                                            1e-3)
        << i;
}

TEST(Trace, NoTracePointerNoEvents) {
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(singleProgram(smallProgram()), plan, error)) << error;
  Executor exec;
  ASSERT_TRUE(exec.init(plan.program(0), error)) << error;
  TempDir dir;
  Trace trace;
  ASSERT_TRUE(trace.open(dir.file("t.json"), plan.program(0), 0, 1,
                         json::object(), error))
      << error;
  exec.setTrace(&trace);
  exec.setTrace(nullptr); // Detached: run() records nothing.
  ASSERT_TRUE(exec.run(error)) << error;
  trace.flushStep();
  EXPECT_EQ(trace.numEvents(), 0);
}

TEST(Trace, UncommittedTraceLeavesNoFile) {
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(singleProgram(smallProgram()), plan, error)) << error;
  TempDir dir;
  {
    Trace trace;
    ASSERT_TRUE(trace.open(dir.file("t.json"), plan.program(0), 0, 1,
                           json::object(), error))
        << error;
    EXPECT_EQ(listDir(dir.path).size(), 1u); // The temporary file.
  }
  EXPECT_TRUE(listDir(dir.path).empty());
  Trace finished;
  ASSERT_TRUE(finished.open(dir.file("t.json"), plan.program(0), 0, 1,
                            json::object(), error));
  ASSERT_TRUE(finished.finish(error)) << error;
  finished.discard();
  EXPECT_TRUE(listDir(dir.path).empty());
}

TEST(Trace, TrainingRunHasEveryInstructionOfEveryStep) {
  BigramRun f;
  f.options.steps = 4;
  f.options.tracePath = f.dir.file("trace.json");
  f.options.saveDir = f.dir.file("ckpt");
  f.options.saveEvery = 2;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  json t = readJson(f.options.tracePath);
  ASSERT_FALSE(t.is_discarded());
  EXPECT_EQ(t["metadata"]["steps"], 4);
  EXPECT_EQ(t["metadata"]["world_size"], 1);

  // Metadata events name the process and the lanes.
  std::map<int, std::string> lanes;
  std::string process;
  for (const json &e : t["traceEvents"]) {
    if (e["ph"] != "M")
      continue;
    if (e["name"] == "process_name")
      process = e["args"]["name"];
    if (e["name"] == "thread_name")
      lanes[e["tid"].get<int>()] = e["args"]["name"];
  }
  EXPECT_EQ(process, "rank 0");
  EXPECT_EQ(lanes, (std::map<int, std::string>{
                       {0, "compute"}, {1, "collectives"}, {2, "host"}}));

  const std::vector<InstrDef> instrs = bigramProgram().instrs;
  std::map<int64_t, std::vector<json>> kernelsByStep;
  std::map<std::string, std::vector<int64_t>> hostSteps;
  std::map<int, double> lastTs;
  std::map<int64_t, json> stepSpans;
  for (const json &e : completeEvents(t)) {
    EXPECT_EQ(e["pid"], 0);
    const int lane = e["tid"];
    const double ts = e["ts"];
    if (lastTs.count(lane)) {
      EXPECT_GE(ts, lastTs[lane]) << "lane " << lane << ": " << e.dump();
    }
    lastTs[lane] = ts;
    const int64_t step = e["args"]["step"];
    if (lane == 0) {
      kernelsByStep[step].push_back(e);
    } else if (lane == 2) {
      hostSteps[e["name"]].push_back(step);
      if (e["name"] == "step")
        stepSpans[step] = e;
    }
  }
  ASSERT_EQ(kernelsByStep.size(), 4u);
  for (auto &[step, events] : kernelsByStep) {
    ASSERT_EQ(events.size(), instrs.size()) << "step " << step;
    const json &span = stepSpans[step];
    const double begin = span["ts"], end = begin + span["dur"].get<double>();
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(events[i]["name"], instrs[i].kernel) << step << " " << i;
      EXPECT_EQ(events[i]["args"]["instr"], int(i));
      EXPECT_EQ(events[i]["cat"], "kernel");
      // Inside the step's span (microsecond rounding aside).
      EXPECT_GE(events[i]["ts"].get<double>(), begin - 1e-3);
      EXPECT_LE(events[i]["ts"].get<double>() + events[i]["dur"].get<double>(),
                end + 1e-3);
    }
  }
  const std::vector<int64_t> all = {1, 2, 3, 4};
  EXPECT_EQ(hostSteps["step"], all);
  EXPECT_EQ(hostSteps["data"], all);
  EXPECT_EQ(hostSteps["log"], all); // The metrics file.
  EXPECT_EQ(hostSteps["checkpoint"], (std::vector<int64_t>{2, 4}));
}

TEST(Trace, UnwritablePathFailsBeforeTraining) {
  BigramRun f;
  f.options.steps = 2;
  f.options.saveDir = f.dir.file("ckpt");
  f.options.tracePath = f.dir.file("missing/trace.json");
  f.expectFailure("missing/trace.json: cannot create trace file");
  EXPECT_FALSE(std::filesystem::exists(f.options.saveDir));

  f.options.tracePath = f.dir.path;
  f.expectFailure("--trace names a directory");
  EXPECT_EQ(listDir(f.dir.path),
            (std::vector<std::string>{"data.tok", "plan.llx"}));
}

TEST(Trace, FailedRunLeavesNoTraceFile) {
  BigramRun f;
  f.options.steps = 3;
  f.options.tracePath = f.dir.file("trace.json");
  // NaN weights: step 1 runs, then the run fails on its loss.
  std::vector<io::TensorRef> refs;
  std::vector<std::vector<float>> storage;
  const std::vector<ParamSpec> specs = parameterSpecs(tinyConfig());
  storage.reserve(specs.size());
  for (const ParamSpec &spec : specs) {
    storage.emplace_back(spec.numel(), std::nanf(""));
    refs.push_back(
        {spec.name, io::DType::F32, spec.shape, storage.back().data()});
  }
  std::string error;
  ASSERT_TRUE(io::writeSafetensors(f.dir.file("init.safetensors"), refs, error))
      << error;
  f.options.initPath = f.dir.file("init.safetensors");
  EXPECT_EQ(runTraining(f.options, error), 1);
  EXPECT_NE(error.find("step 1: loss is nan"), std::string::npos) << error;
  for (const std::string &name : listDir(f.dir.path))
    EXPECT_EQ(name.find("trace"), std::string::npos) << name;
}

TEST(Trace, GathersAndScattersAreCollectives) {
  ProgramDef p;
  int x = p.arena("x", {2, 4});
  int y = p.arena("y", {2, 4});
  int z = p.arena("z", {2, 4});
  int w = p.arena("w", {2, 4});
  p.instr("all_gather", {x}, {y}, {L("grid_axes", {2}), I("dim", 1)});
  p.instr("reduce_scatter", {x}, {z},
          {L("grid_axes", {1, 2}), I("dim", 0), S("reduction", "max")});
  p.instr("all_slice", {x}, {w}, {L("grid_axes", {2}), I("dim", 1)});
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(singleProgram(p), plan, error)) << error;
  Executor exec;
  ASSERT_TRUE(exec.init(plan.program(0), error)) << error;
  TempDir dir;
  Trace trace;
  ASSERT_TRUE(trace.open(dir.file("t.json"), plan.program(0), 0, 1, json{},
                         error))
      << error;
  exec.setTrace(&trace);
  trace.start();
  trace.beginStep(1);
  ASSERT_TRUE(exec.run(error)) << error;
  trace.flushStep();
  ASSERT_TRUE(trace.finish(error)) << error;
  ASSERT_TRUE(trace.commit(error)) << error;
  std::vector<json> e = completeEvents(readJson(dir.file("t.json")));
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0]["cat"], "comm");
  EXPECT_EQ(e[0]["tid"], 1);
  EXPECT_EQ(e[0]["args"]["grid_axes"], json::array({2}));
  EXPECT_EQ(e[1]["cat"], "comm");
  EXPECT_EQ(e[1]["args"]["grid_axes"], json::array({1, 2}));
  EXPECT_EQ(e[1]["args"]["reduction"], "max");
  EXPECT_EQ(e[2]["cat"], "kernel"); // all_slice: no communication
  EXPECT_EQ(e[2]["tid"], 0);
}

TEST(Trace, PipelineTransfersAndScheduleArgs) {
  // Stage 0 of a two-stage plan: a forward kernel of microbatch 1, its
  // send to stage 1, and the recv of the gradient (backward). The events
  // are recorded by hand (running a send needs MPI: MpiPipelineTest.cpp).
  PlanDef def;
  def.pp = 2;
  for (int s = 0; s < 2; ++s) {
    ProgramDef p;
    p.rank = p.stage = s;
    int x = p.arena("x", {2, 4});
    int g = p.arena("g", {2, 4}, DType::BF16);
    if (s == 0) {
      p.instr("constant", {}, {x}, {R("value", 1.0)});
      p.instr("send", {x}, {}, {I("peer", 1), I("tag", 3)});
      p.instr("recv", {}, {g}, {I("peer", 1), I("tag", 4)});
      p.instrs[0].microbatch = p.instrs[1].microbatch = 1;
      p.instrs[2].microbatch = 1;
      p.instrs[0].phase = p.instrs[1].phase = plan::Phase::Forward;
      p.instrs[2].phase = plan::Phase::Backward;
    } else {
      p.instr("recv", {}, {x}, {I("peer", 0), I("tag", 3)});
      p.instr("send", {g}, {}, {I("peer", 0), I("tag", 4)});
    }
    def.programs.push_back(p);
  }
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  TempDir dir;
  Trace trace;
  ASSERT_TRUE(trace.open(dir.file("t.json"), plan.program(0), 0, 2, json{},
                         error))
      << error;
  trace.start();
  trace.beginStep(1);
  const Trace::Clock::time_point t0 = Trace::Clock::now();
  for (int i = 0; i < 3; ++i)
    trace.kernel(i, t0 + std::chrono::microseconds(10 * i),
                 t0 + std::chrono::microseconds(10 * i + 5));
  trace.flushStep();
  ASSERT_TRUE(trace.finish(error)) << error;
  ASSERT_TRUE(trace.commit(error)) << error;
  std::vector<json> e = completeEvents(readJson(dir.file("t.json")));
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0]["name"], "constant");
  EXPECT_EQ(e[0]["tid"], 0);
  EXPECT_EQ(e[0]["args"]["microbatch"], 1);
  EXPECT_EQ(e[0]["args"]["phase"], "forward");
  EXPECT_FALSE(e[0]["args"].contains("peer"));
  EXPECT_EQ(e[1]["name"], "send");
  EXPECT_EQ(e[1]["cat"], "comm");
  EXPECT_EQ(e[1]["tid"], 1);
  EXPECT_EQ(e[1]["args"]["peer"], 1);
  EXPECT_EQ(e[1]["args"]["tag"], 3);
  EXPECT_EQ(e[1]["args"]["bytes"], 32); // what it sends
  EXPECT_EQ(e[1]["args"]["microbatch"], 1);
  EXPECT_EQ(e[1]["args"]["phase"], "forward");
  EXPECT_EQ(e[2]["name"], "recv");
  EXPECT_EQ(e[2]["tid"], 1);
  EXPECT_EQ(e[2]["args"]["peer"], 1);
  EXPECT_EQ(e[2]["args"]["tag"], 4);
  EXPECT_EQ(e[2]["args"]["bytes"], 16); // bf16 [2, 4]
  EXPECT_EQ(e[2]["args"]["phase"], "backward");
}
