//===- InitTest.cpp - Default init and --init weights ----------------------===//
#include "exec/Init.h"
#include "exec/tests/PlanTestUtil.h"
#include "exec/tests/SimulatedComm.h"
#include "io/Safetensors.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <memory>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

namespace {

LlamaConfig tinyConfig(bool tied = false) {
  LlamaConfig c;
  std::string error;
  EXPECT_TRUE(LlamaConfig::fromJson(tinyModelJson(tied), "tiny", c, error))
      << error;
  return c;
}

/// A plan with every parameter of the tiny model, its moments and a step.
struct ParamsPlan {
  LoadedPlan plan;
  Executor exec;
};

std::unique_ptr<ParamsPlan> paramsPlan(bool tied = false) {
  ProgramDef p;
  addAllParams(p, tinyConfig(tied), /*withMoments=*/true);
  p.arg("step", "", {}, DType::I64);
  PlanDef def = singleProgram(p);
  def.modelJson = tinyModelJson(tied);
  auto r = std::make_unique<ParamsPlan>();
  std::string error;
  if (!loadDef(def, r->plan, error) ||
      !r->exec.init(r->plan.program(0), error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  return r;
}

std::vector<float> normalValues(uint64_t seed, const std::string &name,
                                int64_t n, double stddev = 1.0) {
  std::vector<float> v(n);
  fillNormal(seed, name, stddev, 0, n, v.data());
  return v;
}

} // namespace

TEST(Init, NormalIsDeterministicAndKeyedBySeedAndName) {
  auto a = normalValues(1234, "model.layers.0.mlp.up_proj.weight", 1001);
  EXPECT_EQ(a, normalValues(1234, "model.layers.0.mlp.up_proj.weight", 1001));
  EXPECT_NE(a, normalValues(1235, "model.layers.0.mlp.up_proj.weight", 1001));
  EXPECT_NE(a, normalValues(1234, "model.layers.0.mlp.gate_proj.weight", 1001));
  // FNV-1a 64 of "a" (published test vector).
  EXPECT_EQ(hashName("a"), 0xaf63dc4c8601ec8cull);
}

TEST(Init, NormalDoesNotDependOnThreadsOrSlicing) {
  const int64_t n = 300001; // Large enough for the parallel path; odd.
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = normalValues(7, "w", n);
  omp_set_num_threads(3);
  auto three = normalValues(7, "w", n);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, three);
  // A shard drawing elements [begin, begin + count) gets the same values.
  for (int64_t begin : {int64_t(0), int64_t(1), int64_t(5), int64_t(299990)}) {
    std::vector<float> part(11);
    fillNormal(7, "w", 1.0, begin, 11, part.data());
    for (int i = 0; i < 11; ++i)
      EXPECT_EQ(part[i], one[begin + i]) << begin << "+" << i;
  }
}

TEST(Init, NormalHasTheRequestedMoments) {
  const int64_t n = 200000;
  const double stddev = 0.02;
  auto v = normalValues(42, "model.embed_tokens.weight", n, stddev);
  double sum = 0, sq = 0, within1 = 0;
  for (float x : v) {
    sum += x;
    sq += double(x) * x;
    within1 += std::fabs(x) < stddev;
  }
  double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  // Standard error of the mean: 0.02 / sqrt(2e5) = 4.5e-5.
  EXPECT_LT(std::fabs(mean), 2.5e-4);
  EXPECT_NEAR(sd, stddev, 0.01 * stddev);
  // P(|z| < 1) = 0.6827 for a normal.
  EXPECT_NEAR(within1 / n, 0.6827, 0.005);
}

TEST(Init, InitializeParametersFillsMatricesNormsAndZeroState) {
  auto r = paramsPlan();
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  LlamaConfig config = tinyConfig();
  std::string error;
  ASSERT_TRUE(checkPlanParameters(e, config, error)) << error;
  // Dirty the optimizer state: init must reset it.
  static_cast<float *>(e.argument("adam_m", "model.norm.weight"))[0] = 5.0f;
  *static_cast<int64_t *>(e.argument("step")) = 9;
  initializeParameters(e, config, 99);
  for (const ParamSpec &spec : parameterSpecs(config)) {
    const float *p = static_cast<const float *>(e.argument("param", spec.name));
    ASSERT_TRUE(p) << spec.name;
    if (spec.shape.size() == 1) {
      for (int64_t i = 0; i < spec.numel(); ++i)
        EXPECT_EQ(p[i], 1.0f) << spec.name;
    } else {
      EXPECT_EQ(std::vector<float>(p, p + spec.numel()),
                normalValues(99, spec.name, spec.numel(), 0.02))
          << spec.name;
    }
  }
  EXPECT_EQ(static_cast<float *>(e.argument("adam_m", "model.norm.weight"))[0],
            0.0f);
  EXPECT_EQ(*static_cast<int64_t *>(e.argument("step")), 0);
}

TEST(Init, CheckPlanParametersNamesTheMismatch) {
  auto r = paramsPlan();
  ASSERT_TRUE(r);
  std::string error;
  LlamaConfig other = tinyConfig();
  other.intermediateSize = 24;
  EXPECT_FALSE(checkPlanParameters(r->exec, other, error));
  EXPECT_NE(error.find("plan parameter 'model.layers.0.mlp.gate_proj.weight' "
                       "has shape [16, 8], model tiny expects [24, 8]"),
            std::string::npos)
      << error;
  LlamaConfig tied = tinyConfig(true);
  EXPECT_FALSE(checkPlanParameters(r->exec, tied, error));
  EXPECT_NE(error.find("plan parameter 'lm_head.weight' is not a parameter"),
            std::string::npos)
      << error;
  LlamaConfig deeper = tinyConfig();
  deeper.numHiddenLayers = 2;
  EXPECT_FALSE(checkPlanParameters(r->exec, deeper, error));
  EXPECT_NE(error.find("plan has no parameter 'model.layers.1."),
            std::string::npos)
      << error;
}

namespace {

/// Writes every parameter of `config` (value i * 0.001 + k for tensor k) to
/// a safetensors file, plus `extra` tensors; `skip` is left out and `reshape`
/// gets a wrong shape.
std::string writeWeights(const TempDir &dir, const LlamaConfig &config,
                         const std::vector<std::string> &extra = {},
                         const std::string &skip = "",
                         const std::string &reshape = "") {
  std::vector<io::TensorRef> refs;
  std::vector<std::vector<float>> storage;
  std::vector<ParamSpec> specs = parameterSpecs(config);
  for (const std::string &name : extra)
    specs.push_back({name, {2}});
  storage.reserve(specs.size());
  for (size_t k = 0; k < specs.size(); ++k) {
    if (specs[k].name == skip)
      continue;
    std::vector<float> v(specs[k].numel());
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = float(i) * 0.001f + float(k);
    storage.push_back(std::move(v));
    std::vector<int64_t> shape = specs[k].shape;
    if (specs[k].name == reshape)
      std::swap(shape.front(), shape.back());
    refs.push_back({specs[k].name, io::DType::F32, shape,
                    storage.back().data()});
  }
  std::string path = dir.file("weights.safetensors");
  std::string error;
  EXPECT_TRUE(io::writeSafetensors(path, refs, error)) << error;
  return path;
}

} // namespace

TEST(Init, LoadInitWeightsCopiesEveryParameter) {
  auto r = paramsPlan();
  ASSERT_TRUE(r);
  TempDir dir;
  LlamaConfig config = tinyConfig();
  std::string path = writeWeights(
      dir, config, {"model.layers.0.self_attn.rotary_emb.inv_freq"});
  *static_cast<int64_t *>(r->exec.argument("step")) = 3;
  std::string error;
  ASSERT_TRUE(loadInitWeights(r->exec, config, path, error)) << error;
  std::vector<ParamSpec> specs = parameterSpecs(config);
  for (size_t k = 0; k < specs.size(); ++k) {
    const float *p =
        static_cast<const float *>(r->exec.argument("param", specs[k].name));
    EXPECT_EQ(p[0], float(k)) << specs[k].name;
    EXPECT_EQ(p[specs[k].numel() - 1],
              float(specs[k].numel() - 1) * 0.001f + float(k))
        << specs[k].name;
  }
  EXPECT_EQ(*static_cast<int64_t *>(r->exec.argument("step")), 0);
}

TEST(Init, LoadInitWeightsErrors) {
  auto r = paramsPlan();
  ASSERT_TRUE(r);
  TempDir dir;
  LlamaConfig config = tinyConfig();
  std::string error;
  std::string path = writeWeights(dir, config, {}, "model.norm.weight");
  EXPECT_FALSE(loadInitWeights(r->exec, config, path, error));
  EXPECT_NE(error.find("weights.safetensors: missing tensor "
                       "'model.norm.weight' (expected shape [8])"),
            std::string::npos)
      << error;
  path = writeWeights(dir, config, {}, "", "lm_head.weight");
  EXPECT_FALSE(loadInitWeights(r->exec, config, path, error));
  EXPECT_NE(error.find("tensor 'lm_head.weight' has shape [8, 16], expected "
                       "[16, 8]"),
            std::string::npos)
      << error;
  path = writeWeights(dir, config, {"model.layers.0.self_attn.q_proj.bias"});
  EXPECT_FALSE(loadInitWeights(r->exec, config, path, error));
  EXPECT_NE(error.find("unexpected tensor "
                       "'model.layers.0.self_attn.q_proj.bias'"),
            std::string::npos)
      << error;
  EXPECT_FALSE(loadInitWeights(r->exec, config, dir.file("none"), error));
  EXPECT_NE(error.find("none"), std::string::npos) << error;
}

TEST(Init, TiedEmbeddingsIgnoreLmHead) {
  auto r = paramsPlan(/*tied=*/true);
  ASSERT_TRUE(r);
  TempDir dir;
  LlamaConfig tied = tinyConfig(true);
  std::string error;
  // Without lm_head.weight (the tied form) and with it (HF writes both).
  std::string path = writeWeights(dir, tied);
  EXPECT_TRUE(loadInitWeights(r->exec, tied, path, error)) << error;
  path = writeWeights(dir, tinyConfig(false)); // includes lm_head.weight
  EXPECT_TRUE(loadInitWeights(r->exec, tied, path, error)) << error;
}

namespace {

/// The tiny model split over `tp` tensor-parallel ranks
/// (addAllParamsSharded): rank r's executor, on a communicator that stands
/// for rank r of the grid [1, 1, tp].
struct ShardedRank {
  LoadedPlan plan;
  SimulatedComm comm;
  Executor exec;
  ShardedRank(int tp, int rank) : comm(comm::Grid{1, 1, tp}, rank) {}
};

std::unique_ptr<ShardedRank> shardedRank(int tp, int rank) {
  PlanDef def;
  def.tp = tp;
  for (int r = 0; r < tp; ++r) {
    ProgramDef p;
    p.rank = r;
    addAllParamsSharded(p, tinyConfig(), tp, /*withMoments=*/true);
    p.arg("step", "", {}, DType::I64);
    def.programs.push_back(p);
  }
  auto s = std::make_unique<ShardedRank>(tp, rank);
  std::string error;
  if (!loadDef(def, s->plan, error) ||
      !s->exec.init(s->plan.program(rank), &s->comm, error) ||
      !checkPlanParameters(s->exec, tinyConfig(), error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  return s;
}

/// Every parameter of `sharded` is its block of the same parameter of
/// `whole`, the unsharded executor.
void expectBlocksOfWhole(const Executor &whole, const Executor &sharded, int tp,
                         int rank) {
  for (const ParamSpec &spec : parameterSpecs(tinyConfig())) {
    const float *full = static_cast<const float *>(
        whole.argument(whole.findArgument("param", spec.name)));
    const int a = sharded.findArgument("param", spec.name);
    const float *mine = static_cast<const float *>(sharded.argument(a));
    std::vector<float> fullValues(full, full + spec.numel());
    const int dim = tensorParallelDim(spec);
    std::vector<float> expected =
        dim < 0 ? fullValues : blockOf(fullValues, spec.shape, dim, tp, rank);
    EXPECT_EQ(std::vector<float>(mine, mine + expected.size()), expected)
        << spec.name << " on rank " << rank << " of " << tp;
    EXPECT_EQ(sharded.argumentShard(a).fullShape, spec.shape) << spec.name;
  }
}

} // namespace

TEST(Init, ShardsDescribeTheirBlock) {
  auto r = shardedRank(4, 3);
  ASSERT_TRUE(r);
  const Executor &e = r->exec;
  const Executor::Shard &down = e.argumentShard(
      e.findArgument("param", "model.layers.0.mlp.down_proj.weight"));
  // down_proj [8, 16] split along dim 1 into 4: rank 3 holds columns
  // [12, 16) of every row.
  EXPECT_EQ(down.dim, 1);
  EXPECT_EQ(down.axes, (std::vector<int>{2}));
  EXPECT_EQ(down.index, 3);
  EXPECT_EQ(down.count, 4);
  EXPECT_EQ(down.outer, 8);
  EXPECT_EQ(down.size, 4);
  EXPECT_EQ(down.inner, 1);
  EXPECT_EQ(down.fullShape, (std::vector<int64_t>{8, 16}));
  EXPECT_TRUE(down.split());
  const Executor::Shard &norm =
      e.argumentShard(e.findArgument("param", "model.norm.weight"));
  EXPECT_EQ(norm.dim, -1);
  EXPECT_FALSE(norm.split());
  EXPECT_EQ(norm.fullShape, (std::vector<int64_t>{8}));
}

TEST(Init, ShardedParametersStartFromTheirBlockOfTheUnshardedInit) {
  auto whole = paramsPlan();
  ASSERT_TRUE(whole);
  initializeParameters(whole->exec, tinyConfig(), 99);
  for (int tp : {2, 4}) {
    for (int rank = 0; rank < tp; ++rank) {
      auto r = shardedRank(tp, rank);
      ASSERT_TRUE(r);
      *static_cast<int64_t *>(r->exec.argument("step")) = 5;
      initializeParameters(r->exec, tinyConfig(), 99);
      expectBlocksOfWhole(whole->exec, r->exec, tp, rank);
      EXPECT_EQ(*static_cast<int64_t *>(r->exec.argument("step")), 0);
    }
  }
}

TEST(Init, ShardedParametersLoadTheirBlockOfInitWeights) {
  TempDir dir;
  std::string path = writeWeights(dir, tinyConfig());
  auto whole = paramsPlan();
  ASSERT_TRUE(whole);
  std::string error;
  ASSERT_TRUE(loadInitWeights(whole->exec, tinyConfig(), path, error)) << error;
  for (int rank = 0; rank < 2; ++rank) {
    auto r = shardedRank(2, rank);
    ASSERT_TRUE(r);
    ASSERT_TRUE(loadInitWeights(r->exec, tinyConfig(), path, error)) << error;
    expectBlocksOfWhole(whole->exec, r->exec, 2, rank);
  }
}

TEST(Init, CheckPlanParametersComparesFullShapes) {
  // gate_proj [16, 8] split in 2 along dim 0 is [8, 8] per rank; a model
  // with intermediate_size 24 needs [24, 8].
  auto r = shardedRank(2, 1);
  ASSERT_TRUE(r);
  LlamaConfig other = tinyConfig();
  other.intermediateSize = 24;
  std::string error;
  EXPECT_FALSE(checkPlanParameters(r->exec, other, error));
  EXPECT_NE(error.find("plan parameter 'model.layers.0.mlp.gate_proj.weight' "
                       "has shape [16, 8] (its 2 shards of [8, 8] put "
                       "together), model tiny expects [24, 8]"),
            std::string::npos)
      << error;
  // A moment of another shape than its parameter.
  ProgramDef p;
  addAllParams(p, tinyConfig(), /*withMoments=*/false);
  p.arg("adam_m", "model.norm.weight", {4});
  LoadedPlan plan;
  Executor e;
  ASSERT_TRUE(loadDef(singleProgram(p), plan, error)) << error;
  ASSERT_TRUE(e.init(plan.program(0), error)) << error;
  EXPECT_FALSE(checkPlanParameters(e, tinyConfig(), error));
  EXPECT_EQ(error, "plan adam_m argument of 'model.norm.weight' has shape "
                   "[4], model tiny expects [8]");
}

TEST(Init, PipelineStagesTogetherHoldTheModel) {
  // Stage 0 holds the first half of the parameters, stage 1 the rest: each
  // stage's executor passes the plan-wide check; the stage-local check
  // alone would miss the other stage's parameters.
  const LlamaConfig config = tinyConfig();
  const std::vector<ParamSpec> specs = parameterSpecs(config);
  auto planOf = [&](size_t stage1From, const std::string &extra) {
    PlanDef def;
    def.pp = 2;
    for (int s = 0; s < 2; ++s) {
      ProgramDef p;
      p.rank = p.stage = s;
      for (size_t i = 0; i < specs.size(); ++i)
        if ((i >= stage1From) == (s == 1))
          p.arg("param", specs[i].name, specs[i].shape);
      if (s == 1 && !extra.empty())
        p.arg("param", extra, {3});
      def.programs.push_back(p);
    }
    return def;
  };
  const size_t half = specs.size() / 2;
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(planOf(half, ""), plan, error)) << error;
  for (int s = 0; s < 2; ++s) {
    SimulatedComm comm(comm::Grid{2, 1, 1}, s);
    Executor e;
    ASSERT_TRUE(e.init(plan.program(s), &comm, error)) << error;
    EXPECT_TRUE(checkPlanParameters(e, *plan.plan, config, error)) << error;
    EXPECT_FALSE(checkPlanParameters(e, config, error));
  }
  // A parameter on no stage.
  PlanDef missing = planOf(half, "");
  missing.programs[1].args.pop_back();
  missing.programs[1].tensors.pop_back();
  ASSERT_TRUE(loadDef(missing, plan, error)) << error;
  Executor e;
  SimulatedComm comm(comm::Grid{2, 1, 1}, 0);
  ASSERT_TRUE(e.init(plan.program(0), &comm, error)) << error;
  EXPECT_FALSE(checkPlanParameters(e, *plan.plan, config, error));
  EXPECT_EQ(error, "plan has no parameter '" + specs.back().name +
                       "' of model " + config.name +
                       " on any of its 2 pipeline stages");
  // Another stage's parameter that the model does not have.
  ASSERT_TRUE(loadDef(planOf(half, "model.extra"), plan, error)) << error;
  Executor f;
  ASSERT_TRUE(f.init(plan.program(0), &comm, error)) << error;
  EXPECT_FALSE(checkPlanParameters(f, *plan.plan, config, error));
  EXPECT_EQ(error, "plan parameter 'model.extra' (program 1, stage 1) is not "
                   "a parameter of model " +
                       config.name);
}
