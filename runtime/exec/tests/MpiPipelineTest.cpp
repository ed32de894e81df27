//===- MpiPipelineTest.cpp - Pipeline stages under mpirun -----------------===//
//
// Run as part of llamac-mpi-exec-tests under `mpirun -np 4` (also -np 2):
// plans with pp = 2 stages of dp = world / 2 ranks, built in C++.
//  - the executor's send / recv: activations to the next stage and
//    gradients back, between the ranks of the same dp coordinate; the
//    second send received first (no rendezvous deadlock), the sent arena
//    slot overwritten right after the send, a bf16 tensor moved as bytes,
//    two steps (staging buffers reused);
//  - a recv of another size than what arrives: an error, not a crash;
//  - checkpoints: every stage's parameters and moments reach rank 0 and the
//    files hold the whole model; they resume at pp = 2 (each rank loads its
//    own) and at pp = 1, a pp = 1 checkpoint resumes at pp = 2, and the
//    resume validates the files against every stage's tensors;
//  - `llamac run` of a two-stage bigram model (stage 0 the embedding and
//    the tokens, stage 1 the norm, lm_head and targets): its losses are
//    those of the single-rank run, and its checkpoint resumes there.
// Expected values are closed forms of the rank's dp coordinate, and the
// initial weights those of exec/Init.h (a function of seed and name).
//
//===----------------------------------------------------------------------===//
#include "comm/tests/MpiTestEnv.h"
#include "exec/Checkpoint.h"
#include "exec/Executor.h"
#include "exec/Init.h"
#include "exec/Trace.h"
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
#include "exec/tests/MpiExecTestUtil.h"
#include "exec/tests/PlanTestUtil.h"
#include "io/Safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
using llamac::comm::test::testComm;

namespace {

#define NEED_EVEN_WORLD()                                                      \
  do {                                                                         \
    if (testComm().size() != 2 && testComm().size() != 4)                      \
      GTEST_SKIP() << "needs mpirun -np 2 or 4, world size is "                \
                   << testComm().size();                                       \
  } while (0)

/// The [pp = 2, dp = world / 2, tp = 1] grid, set on the test communicator.
comm::Grid pipelineGrid() {
  const comm::Grid grid{2, testComm().size() / 2, 1};
  std::string error;
  EXPECT_TRUE(testComm().setGrid(grid, error)) << error;
  return grid;
}

/// Every rank loads `def` and inits its program; false (on every rank) when
/// any rank failed.
bool loadAndInit(const PlanDef &def, LoadedPlan &plan, Executor &exec) {
  std::string error;
  bool ok = loadDef(def, plan, error) &&
            exec.init(plan.program(testComm().rank()), &testComm(), error);
  EXPECT_TRUE(ok) << error;
  return !testComm().agreeOnFailure(!ok, error);
}

constexpr int64_t kRows = 64, kCols = 1024; // 256 KiB: a rendezvous send

/// Stage 0 sends a and b (f32 [64, 1024]; tags 1, 2) and a bf16 h (tag 3),
/// overwrites a right after sending it, and receives g = a + b (tag 4)
/// from stage 1, which receives b before a.
PlanDef transferPlan(const comm::Grid &grid) {
  PlanDef def;
  def.pp = grid.pp;
  def.dp = grid.dp;
  for (int r = 0; r < grid.size(); ++r) {
    ProgramDef p;
    p.rank = r;
    p.stage = grid.coords(r)[0];
    int a = p.arena("a", {kRows, kCols});
    int b = p.arena("b", {kRows, kCols});
    int g = p.arena("g", {kRows, kCols});
    int h = p.arena("h", {4, 8}, DType::BF16);
    if (p.stage == 0) {
      p.instr("send", {a}, {}, {I("peer", 1), I("tag", 1)});
      p.instr("constant", {}, {a}, {R("value", -5.0)});
      p.instr("send", {b}, {}, {I("peer", 1), I("tag", 2)});
      p.instr("send", {h}, {}, {I("peer", 1), I("tag", 3)});
      p.instr("recv", {}, {g}, {I("peer", 1), I("tag", 4)});
    } else {
      p.instr("recv", {}, {b}, {I("peer", 0), I("tag", 2)});
      p.instr("recv", {}, {a}, {I("peer", 0), I("tag", 1)});
      p.instr("recv", {}, {h}, {I("peer", 0), I("tag", 3)});
      p.instr("add", {a, b}, {g});
      p.instr("send", {g}, {}, {I("peer", 0), I("tag", 4)});
    }
    def.programs.push_back(p);
  }
  return def;
}

/// Stage 0's inputs at `step` for dp coordinate `d`.
float aValue(int d, int step, int64_t i) {
  return static_cast<float>(1000 * d + 10 * step) + static_cast<float>(i % 97);
}
float bValue(int d, int step, int64_t i) {
  return static_cast<float>(-7 * d - step) - static_cast<float>(i % 13);
}
uint16_t hBits(int d, int step, int64_t i) {
  return static_cast<uint16_t>(0x3f80 + 100 * d + 10 * step + i);
}

} // namespace

TEST(MpiPipeline, ActivationsAndGradientsCrossStages) {
  NEED_EVEN_WORLD();
  const comm::Grid grid = pipelineGrid();
  const int rank = testComm().rank();
  const int stage = grid.coords(rank)[0], d = grid.coords(rank)[1];
  LoadedPlan plan;
  Executor exec;
  if (!loadAndInit(transferPlan(grid), plan, exec))
    return;
  const int64_t n = kRows * kCols;
  for (int step = 1; step <= 2; ++step) {
    float *a = static_cast<float *>(exec.tensorData(0));
    float *b = static_cast<float *>(exec.tensorData(1));
    float *g = static_cast<float *>(exec.tensorData(2));
    uint16_t *h = static_cast<uint16_t *>(exec.tensorData(3));
    if (stage == 0) {
      for (int64_t i = 0; i < n; ++i) {
        a[i] = aValue(d, step, i);
        b[i] = bValue(d, step, i);
      }
      for (int64_t i = 0; i < 32; ++i)
        h[i] = hBits(d, step, i);
    }
    std::string error;
    const bool ran = exec.run(error);
    EXPECT_TRUE(ran) << error;
    if (testComm().agreeOnFailure(!ran, error))
      return;
    // Every rank: g is a + b of the stage-0 rank of its dp coordinate (on
    // stage 0 received back, on stage 1 computed from what arrived).
    std::string bad;
    for (int64_t i = 0; i < n && bad.empty(); ++i)
      if (g[i] != aValue(d, step, i) + bValue(d, step, i))
        bad = "g[" + std::to_string(i) + "] = " + std::to_string(g[i]);
    EXPECT_EQ(bad, "") << "rank " << rank << " step " << step;
    if (stage == 0) {
      EXPECT_EQ(a[5], -5.0f); // overwritten after the send
    } else {
      EXPECT_EQ(a[5], aValue(d, step, 5));
      for (int64_t i = 0; i < 32; ++i)
        EXPECT_EQ(h[i], hBits(d, step, i)) << i;
    }
  }
}

TEST(MpiPipeline, ReceivingAnotherSizeFailsTheRun) {
  // Each stage runs a plan that is valid on its own, but stage 0's sends
  // 32 bytes where stage 1's expects 16: stage 1's run fails with both
  // sizes; it then takes the message, and stage 0's run completes.
  NEED_EVEN_WORLD();
  const comm::Grid grid = pipelineGrid();
  const int rank = testComm().rank();
  const int stage = grid.coords(rank)[0];
  auto planOf = [&](int64_t elements) {
    PlanDef def;
    def.pp = grid.pp;
    def.dp = grid.dp;
    for (int r = 0; r < grid.size(); ++r) {
      ProgramDef p;
      p.rank = r;
      p.stage = grid.coords(r)[0];
      int x = p.arena("x", {elements});
      if (p.stage == 0)
        p.instr("send", {x}, {}, {I("peer", 1), I("tag", 6)});
      else
        p.instr("recv", {}, {x}, {I("peer", 0), I("tag", 6)});
      def.programs.push_back(p);
    }
    return def;
  };
  LoadedPlan plan;
  Executor exec;
  if (!loadAndInit(planOf(stage == 0 ? 8 : 4), plan, exec))
    return;
  std::string error;
  const bool ran = exec.run(error);
  if (stage == 1) {
    EXPECT_FALSE(ran);
    const int from = grid.rankAt({0, grid.coords(rank)[1], 0});
    EXPECT_EQ(error, "instr 0 'recv' (test): recv from rank " +
                         std::to_string(from) +
                         " with tag 6: expected 16 bytes, got a message of 32 "
                         "bytes (the sender's tensor has another size)");
    float drain[8];
    EXPECT_TRUE(testComm().recv(drain, 32, from, 6, error)) << error;
  } else {
    EXPECT_TRUE(ran) << error;
  }
  EXPECT_TRUE(testComm().barrier(error)) << error;
}

namespace {

/// The tiny model's parameters (and moments) split over two stages: the
/// first half of parameterSpecs on stage 0, the rest on stage 1; pp = 1
/// when `stages` is 1 (one program per rank of a [1, world, 1] grid).
PlanDef statePlan(int stages, int world) {
  LlamaConfig config;
  std::string error;
  EXPECT_TRUE(LlamaConfig::fromJson(tinyModelJson(), "tiny", config, error));
  const std::vector<ParamSpec> specs = parameterSpecs(config);
  PlanDef def;
  def.pp = stages;
  def.dp = world / stages;
  for (int r = 0; r < world; ++r) {
    ProgramDef p;
    p.rank = r;
    p.stage = r / def.dp;
    for (size_t i = 0; i < specs.size(); ++i) {
      const int owner = stages == 1 ? 0 : (2 * i < specs.size() ? 0 : 1);
      if (owner != p.stage)
        continue;
      for (const char *role : {"param", "adam_m", "adam_v"})
        p.arg(role, specs[i].name, specs[i].shape);
    }
    p.arg("step", "", {}, DType::I64);
    def.programs.push_back(p);
  }
  return def;
}

/// The values the test gives argument `a`: the default init of its
/// parameter (seed 7), and moments drawn by name and role.
std::vector<float> expectedValues(const Executor &exec, int a) {
  const plan::Argument &arg = exec.argumentInfo(a);
  const std::string role = arg.role()->str(), name = arg.param()->str();
  const int64_t n = exec.argumentBytes(a) / 4;
  std::vector<float> v(static_cast<size_t>(n));
  if (role != "param")
    fillNormal(11, name + "/" + role, 1.0, 0, n, v.data());
  else if (exec.argumentTensor(a).shape()->size() >= 2)
    fillNormal(7, name, 0.02, 0, n, v.data());
  else
    std::fill(v.begin(), v.end(), 1.0f);
  return v;
}

void fillState(Executor &exec) {
  for (int a = 0; a < exec.numArguments(); ++a) {
    if (exec.argumentInfo(a).role()->str() == "step")
      continue;
    std::vector<float> v = expectedValues(exec, a);
    std::memcpy(exec.argument(a), v.data(), v.size() * 4);
  }
}

/// "" when every state argument of `exec` holds expectedValues.
std::string stateMismatch(const Executor &exec) {
  for (int a = 0; a < exec.numArguments(); ++a) {
    const plan::Argument &arg = exec.argumentInfo(a);
    if (arg.role()->str() == "step")
      continue;
    std::vector<float> v = expectedValues(exec, a);
    if (std::memcmp(exec.argument(a), v.data(), v.size() * 4) != 0)
      return "rank " + std::to_string(testComm().rank()) + ": " +
             arg.role()->str() + " " + arg.param()->str() + " differs";
  }
  return "";
}

TrainerState stateAt(int64_t step, const LoadedPlan &plan) {
  TrainerState s;
  s.step = s.optimizerStep = step;
  s.globalBatchSize = plan.train.globalBatchSize;
  s.seqLen = plan.train.seqLen;
  s.seed = 7;
  s.trainConfigJson = plan.train.toJson();
  return s;
}

/// Every rank resumes `path` with `def`'s program; returns rank 0's error
/// ("" when every rank loaded and holds the expected values).
std::string resume(const PlanDef &def, const std::string &path) {
  LoadedPlan plan;
  Executor exec;
  std::string error;
  bool ok = loadDef(def, plan, error) &&
            exec.init(plan.program(testComm().rank()), &testComm(), error) &&
            checkPlanParameters(exec, *plan.plan, plan.model, error);
  TrainerState state;
  ok = ok && loadCheckpoint(path, exec, *plan.plan, plan.model, plan.train,
                            state, error);
  if (ok) {
    error = stateMismatch(exec);
    ok = error.empty();
    if (ok && *static_cast<int64_t *>(exec.argument("step")) != 3) {
      error = "step not restored";
      ok = false;
    }
  }
  if (!testComm().agreeOnFailure(!ok, error))
    return "";
  return error;
}

} // namespace

TEST(MpiPipeline, CheckpointsHoldEveryStagesTensorsAndResumeAtAnyPp) {
  NEED_EVEN_WORLD();
  const int world = testComm().size();
  pipelineGrid();
  SharedDir dir;
  const PlanDef twoStages = statePlan(2, world);
  LoadedPlan plan;
  Executor exec;
  if (!loadAndInit(twoStages, plan, exec))
    return;
  std::string error;
  EXPECT_TRUE(checkPlanParameters(exec, *plan.plan, plan.model, error))
      << error;
  fillState(exec);

  // 1. Save at pp = 2: every rank gathers, rank 0 writes the whole model.
  CheckpointTensors full;
  EXPECT_TRUE(full.gather(exec, *plan.plan, error)) << error;
  std::string saved;
  onRankZero([&] {
    EXPECT_TRUE(saveCheckpoint(dir.path, full, plan.model, stateAt(3, plan),
                               SaveOptions(), saved, error))
        << error;
    // The files: every parameter, and both moments of each.
    io::SafetensorsFile weights, moments;
    EXPECT_TRUE(weights.open(saved + "/model.safetensors", error)) << error;
    EXPECT_TRUE(moments.open(saved + "/optimizer.safetensors", error)) << error;
    const size_t numParams = parameterSpecs(plan.model).size();
    EXPECT_EQ(weights.tensors().size(), numParams);
    EXPECT_EQ(moments.tensors().size(), 2 * numParams);
  });
  const std::string path = dir.file("step-00000003");

  // 2. Resume at pp = 2 (each rank loads its own) and at pp = 1.
  EXPECT_EQ(resume(twoStages, path), "");
  pipelineGrid();
  {
    comm::Grid flat{1, world, 1};
    EXPECT_TRUE(testComm().setGrid(flat, error)) << error;
    EXPECT_EQ(resume(statePlan(1, world), path), "");
  }

  // 3. A pp = 1 checkpoint (rank 0 alone, from a whole-model program)
  // resumes at pp = 2.
  SharedDir flatDir;
  onRankZero([&] {
    LoadedPlan one;
    Executor whole;
    ASSERT_TRUE(loadDef(statePlan(1, 1), one, error)) << error;
    ASSERT_TRUE(whole.init(one.program(0), error)) << error;
    fillState(whole);
    EXPECT_TRUE(saveCheckpoint(flatDir.path, whole, one.model,
                               stateAt(3, one), SaveOptions(), saved, error))
        << error;
  });
  pipelineGrid();
  EXPECT_EQ(resume(twoStages, flatDir.file("step-00000003")), "");

  // 4. The files are checked against every stage's tensors: a moment of a
  // stage-1 parameter missing, or a tensor no stage has, fails every rank,
  // stage 0's too.
  const ParamSpec lastSpec = parameterSpecs(plan.model).back();
  const std::string last = lastSpec.name;
  const std::string optimizer = path + "/optimizer.safetensors";
  std::vector<float> keep;
  onRankZero([&] {
    io::SafetensorsFile file;
    ASSERT_TRUE(file.open(optimizer, error)) << error;
    std::vector<std::vector<float>> data;
    std::vector<io::TensorRef> refs;
    for (const io::TensorInfo &t : file.tensors()) {
      if (t.name == last + ".exp_avg")
        continue;
      data.emplace_back();
      int64_t n = 1;
      for (int64_t s : t.shape)
        n *= s;
      data.back().resize(static_cast<size_t>(n));
      ASSERT_TRUE(file.readAsFloat(t.name, data.back().data(), error))
          << error;
    }
    size_t k = 0;
    for (const io::TensorInfo &t : file.tensors())
      if (t.name != last + ".exp_avg")
        refs.push_back({t.name, io::DType::F32, t.shape, data[k++].data()});
    ASSERT_TRUE(io::writeSafetensors(optimizer, refs, error)) << error;
  });
  EXPECT_EQ(resume(twoStages, path),
            optimizer + ": missing tensor '" + last +
                ".exp_avg' (expected F32 " + io::formatShape(lastSpec.shape) +
                ")");
}

namespace {

/// The bigram model of BigramRun.h on two stages of `dp` ranks each, micro
/// batch kB per rank: stage 0 embeds the tokens and sends h (tag 0), stage
/// 1 computes the loss and sends dh back (tag 1). The loss (stage 0
/// contributes 0) and the squared gradient norm are summed over the
/// stages, the gradients over dp.
PlanDef pipelineBigramPlan(int dp) {
  const int64_t global = kB * dp;
  PlanDef def;
  def.pp = 2;
  def.dp = dp;
  def.trainJson = tinyTrainJson(kT, kB, global);
  const std::vector<ParamSpec> specs = parameterSpecs(tinyConfig());
  const std::vector<AttrDef> overDp = {L("grid_axes", {1}),
                                       S("reduction", "sum")};
  const std::vector<AttrDef> overStages = {L("grid_axes", {0}),
                                           S("reduction", "sum")};
  for (int r = 0; r < 2 * dp; ++r) {
    ProgramDef p;
    p.rank = r;
    p.stage = r / dp;
    // Stage 0 owns everything but the final norm and lm_head.
    for (const ParamSpec &spec : specs) {
      const bool late = spec.name == "model.norm.weight" ||
                        spec.name == "lm_head.weight";
      if (late == (p.stage == 1))
        for (const char *role : {"param", "adam_m", "adam_v"})
          p.arg(role, spec.name, spec.shape);
    }
    int step = p.arg("step", "", {}, DType::I64);
    int h = p.arena("h", {kB, kT, kD});
    int dh = p.arena("dh", {kB, kT, kD});
    int partial = p.arena("partial_loss", {});
    int loss = p.arena("loss", {});
    std::vector<int> params, grads;
    std::vector<std::string> names;
    if (p.stage == 0) {
      int tokens = p.arg("tokens", "", {kB, kT}, DType::I32);
      int emb = argTensor(p, "param", "model.embed_tokens.weight");
      int demb = p.arena("demb", {kV, kD});
      p.instr("embedding", {emb, tokens}, {h});
      p.instr("send", {h}, {}, {I("peer", 1), I("tag", 0)});
      p.instr("constant", {}, {partial}, {R("value", 0.0)});
      p.instr("all_reduce", {partial}, {loss}, overStages);
      p.instr("recv", {}, {dh}, {I("peer", 1), I("tag", 1)});
      p.instr("embedding_grad", {dh, tokens}, {demb});
      params = {emb};
      grads = {demb};
      names = {"model.embed_tokens.weight"};
    } else {
      int targets = p.arg("targets", "", {kB, kT}, DType::I32);
      int normW = argTensor(p, "param", "model.norm.weight");
      int head = argTensor(p, "param", "lm_head.weight");
      int y = p.arena("y", {kB, kT, kD});
      int logits = p.arena("logits", {kB, kT, kV});
      int dp1 = p.arena("dp_loss", {});
      p.instr("recv", {}, {h}, {I("peer", 0), I("tag", 0)});
      p.instr("rms_norm", {h, normW}, {y}, {R("eps", 1e-5)});
      p.instr("linear", {y, head}, {logits});
      p.instr("cross_entropy", {logits, targets}, {partial},
              {I("normalizer", global * kT)});
      p.instr("all_reduce", {partial}, {dp1}, overDp);
      p.instr("all_reduce", {dp1}, {loss}, overStages);
      int one = p.arena("one", {});
      int dlogits = p.arena("dlogits", {kB, kT, kV});
      int dhead = p.arena("dhead", {kV, kD});
      int dy = p.arena("dy", {kB, kT, kD});
      int dnorm = p.arena("dnorm", {kD});
      p.instr("constant", {}, {one}, {R("value", 1.0)});
      p.instr("cross_entropy_grad", {one, logits, targets}, {dlogits},
              {I("normalizer", global * kT)});
      p.instr("linear_grad_weight", {dlogits, y}, {dhead});
      p.instr("linear_grad_input", {dlogits, head}, {dy});
      p.instr("rms_norm_grad", {dy, h, normW}, {dh, dnorm}, {R("eps", 1e-5)});
      p.instr("send", {dh}, {}, {I("peer", 0), I("tag", 1)});
      params = {normW, head};
      grads = {dnorm, dhead};
      names = {"model.norm.weight", "lm_head.weight"};
    }
    for (size_t i = 0; i < p.instrs.size(); ++i)
      p.instrs[i].microbatch = 0;
    for (int g : grads)
      p.instr("all_reduce", {g}, {g}, overDp);
    int local = p.arena("local_sq", {});
    int total = p.arena("total_sq", {});
    int norm = p.arena("grad_norm", {});
    int coef = p.arena("coef", {});
    int lr = p.arena("lr", {});
    p.instr("sum_squares", grads, {local});
    p.instr("all_reduce", {local}, {total}, overStages);
    p.instr("sqrt", {total}, {norm});
    p.instr("clip_coef", {norm}, {coef}, {R("max_norm", 1.0)});
    p.instr("lr_schedule", {step}, {lr},
            {R("lr", kLr), R("min_lr", kMinLr), I("warmup_steps", kWarmup),
             I("decay_steps", kDecay)});
    for (size_t i = 0; i < params.size(); ++i) {
      int m = argTensor(p, "adam_m", names[i]);
      int v = argTensor(p, "adam_v", names[i]);
      p.instr("scale", {grads[i], coef}, {grads[i]});
      p.instr("adamw", {params[i], grads[i], m, v, lr, step},
              {params[i], m, v},
              {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
               R("weight_decay", names[i] == "model.norm.weight" ? 0.0 : 0.1)});
      p.result("new_param", params[i], names[i]);
    }
    p.result("loss", loss);
    p.result("grad_norm", norm);
    p.result("lr", lr);
    def.programs.push_back(p);
  }
  return def;
}

} // namespace

TEST(MpiPipeline, TrainingLossesMatchTheSingleRankRun) {
  NEED_EVEN_WORLD();
  const int world = testComm().size(), dp = world / 2;
  SharedDir dir;
  onRankZero([&] {
    writeBytes(dir.file("pp.llx"), buildPlan(pipelineBigramPlan(dp)));
    PlanDef single = singleProgram(bigramProgram(kB * dp, kB * dp));
    single.trainJson = tinyTrainJson(kT, kB * dp, kB * dp);
    writeBytes(dir.file("single.llx"), buildPlan(single));
    std::string error;
    EXPECT_TRUE(io::writeTokenFile(dir.file("data.tok"), irregularTokens(3000),
                                   kV, error))
        << error;
  });
  RunOptions o;
  o.planPath = dir.file("pp.llx");
  o.dataPaths = {dir.file("data.tok")};
  o.steps = 6;
  o.quiet = true;
  o.metricsPath = dir.file("pp.jsonl");
  o.saveDir = dir.file("ckpt");
  o.tracePath = dir.file("trace.json");
  o.comm = &testComm();
  std::string error;
  EXPECT_EQ(runTraining(o, error), 0) << error;
  onRankZero([&] {
    RunOptions single = o;
    single.planPath = dir.file("single.llx");
    single.metricsPath = dir.file("single.jsonl");
    single.saveDir.clear();
    single.tracePath.clear();
    single.comm = nullptr;
    ASSERT_EQ(runTraining(single, error), 0) << error;
    std::vector<nlohmann::json> pp = readMetrics(o.metricsPath);
    std::vector<nlohmann::json> one = readMetrics(single.metricsPath);
    ASSERT_EQ(pp.size(), 6u);
    ASSERT_EQ(one.size(), 6u);
    for (size_t i = 0; i < pp.size(); ++i) {
      EXPECT_NEAR(pp[i]["loss"].get<double>(), one[i]["loss"].get<double>(),
                  1e-5)
          << "step " << i + 1;
      EXPECT_NEAR(pp[i]["grad_norm"].get<double>(),
                  one[i]["grad_norm"].get<double>(), 1e-5)
          << "step " << i + 1;
    }
    // The pipeline's checkpoint holds the whole model: the single-rank
    // plan resumes from it and continues as its own run did.
    single.saveDir = o.saveDir;
    single.resume = true;
    single.steps = 8;
    single.metricsPath = dir.file("resumed.jsonl");
    EXPECT_EQ(runTraining(single, error), 0) << error;
    EXPECT_EQ(readMetrics(single.metricsPath).size(), 2u);
  });
  // Every rank wrote its trace; stage 1's recv of h is on the
  // collectives lane with its peer and tag.
  if (testComm().rank() == world - 1) {
    std::ifstream in(traceFilePath(o.tracePath, world - 1, world));
    nlohmann::json t = nlohmann::json::parse(in, nullptr, false);
    bool found = false;
    for (const nlohmann::json &e : t["traceEvents"])
      if (e["name"] == "recv" && e["tid"] == 1 && e["args"]["peer"] == 0 &&
          e["args"]["tag"] == 0 && e["args"]["microbatch"] == 0)
        found = true;
    EXPECT_TRUE(found);
  }
}
