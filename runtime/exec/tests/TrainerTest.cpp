//===- TrainerTest.cpp - The training loop end to end ----------------------===//
//
// The bigram training step of BigramRun.h, written as a plan file and run by
// runTraining() on a token file.
//
//===----------------------------------------------------------------------===//
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
#include "io/Safetensors.h"
#include "io/TokenFile.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

using Fixture = BigramRun;

TEST(Trainer, TrainsAndStreamsMetrics) {
  Fixture f;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  auto rows = f.metrics();
  ASSERT_EQ(rows.size(), 30u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto &r = rows[i];
    EXPECT_EQ(r["step"].get<int64_t>(), int64_t(i + 1));
    for (const char *key : {"loss", "lr", "grad_norm", "tokens_per_s"})
      ASSERT_TRUE(r[key].is_number()) << key << " at " << i;
    EXPECT_GT(r["grad_norm"].get<double>(), 0.0);
    EXPECT_GT(r["tokens_per_s"].get<double>(), 0.0);
  }
  // Near-zero logits at init: the loss of a uniform guess, ln(16).
  EXPECT_NEAR(rows[0]["loss"].get<double>(), std::log(16.0), 0.05);
  EXPECT_LT(rows.back()["loss"].get<double>(),
            rows[0]["loss"].get<double>() - 0.5);
  // The schedule: warmup 2, cosine to step 20, then min_lr.
  EXPECT_NEAR(rows[0]["lr"].get<double>(), kLr / 2, 1e-9);
  EXPECT_NEAR(rows[1]["lr"].get<double>(), kLr, 1e-9);
  EXPECT_NEAR(rows[11]["lr"].get<double>(), (kLr + kMinLr) / 2, 1e-9);
  EXPECT_NEAR(rows[29]["lr"].get<double>(), kMinLr, 1e-9);
}

TEST(Trainer, RunsAreReproducibleAndSeeded) {
  Fixture f;
  std::string error;
  f.options.steps = 5;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  auto first = f.metrics();
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  auto second = f.metrics();
  f.options.seed = 4321;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  auto reseeded = f.metrics();
  ASSERT_EQ(first.size(), 5u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i]["loss"], second[i]["loss"]) << i;
    EXPECT_EQ(first[i]["grad_norm"], second[i]["grad_norm"]) << i;
  }
  EXPECT_NE(first[0]["loss"], reseeded[0]["loss"]);
}

TEST(Trainer, ConsoleHeaderAndStepLines) {
  Fixture f;
  f.options.steps = 3;
  f.options.quiet = false;
  f.options.metricsPath.clear();
  std::string error;
  testing::internal::CaptureStdout();
  int rc = runTraining(f.options, error);
  std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << error;
  EXPECT_NE(out.find("model custom: " +
                     formatThousands(tinyConfig().numParameters()) +
                     " parameters"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("1 layers, 2 heads, 1 kv heads, hidden 8"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("layout dp=1 tp=1 pp=1 (1 rank) | precision fp32 | "
                     "device cpu | "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("memory: arena "), std::string::npos) << out;
  EXPECT_NE(out.find("batch: global 2 x seq_len 8 = 16 tokens/step"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("FLOPs/token = 6N + 12*L*H*Q*T = "), std::string::npos)
      << out;
  EXPECT_NE(out.find("(PaLM/torchtitan convention)"), std::string::npos);
  EXPECT_NE(out.find("step 1/3 | loss 2.7"), std::string::npos) << out;
  EXPECT_NE(out.find("| lr 5.00e-03 | grad_norm "), std::string::npos) << out;
  EXPECT_NE(out.find("step 3/3 | loss "), std::string::npos) << out;
  EXPECT_NE(out.find(" tok/s\n"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "no progress bar off a TTY";
}

TEST(Trainer, InitFromSafetensors) {
  Fixture f;
  LlamaConfig config = tinyConfig();
  std::vector<io::TensorRef> refs;
  std::vector<std::vector<float>> storage;
  storage.reserve(32);
  for (const ParamSpec &spec : parameterSpecs(config)) {
    std::vector<float> v(spec.numel());
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = spec.shape.size() == 1 ? 1.0f : 0.01f * std::sin(float(i));
    storage.push_back(std::move(v));
    refs.push_back({spec.name, io::DType::F32, spec.shape,
                    storage.back().data()});
  }
  std::string error;
  ASSERT_TRUE(io::writeSafetensors(f.dir.file("init.safetensors"), refs, error))
      << error;
  f.options.initPath = f.dir.file("init.safetensors");
  f.options.steps = 2;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  auto first = f.metrics();
  f.options.seed = 1; // Ignored with --init.
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  EXPECT_EQ(f.metrics()[0]["loss"], first[0]["loss"]);

  // NaN weights: the loss is NaN at the first step.
  for (float &x : storage[0])
    x = std::nanf("");
  ASSERT_TRUE(io::writeSafetensors(f.dir.file("init.safetensors"), refs, error))
      << error;
  std::filesystem::remove(f.options.metricsPath);
  EXPECT_EQ(runTraining(f.options, error), 1);
  EXPECT_NE(error.find("step 1: loss is nan"), std::string::npos) << error;
}

TEST(Trainer, BadOptions) {
  Fixture f;
  f.options.steps = 0;
  f.expectFailure("--steps must be a positive number of steps, got 0");
  f.options.steps = -3;
  f.expectFailure("got -3");
  f.options.steps = 2;
  f.options.dataPaths.clear();
  f.expectFailure("no token data given");
}

TEST(Trainer, BadPlan) {
  Fixture f;
  f.options.planPath = f.dir.file("missing.llx");
  f.expectFailure("missing.llx: cannot open plan file");
  f.options.planPath = f.dir.file("data.tok");
  f.expectFailure("data.tok: not a llamac plan");

  std::vector<uint8_t> bytes = buildPlan(singleProgram(bigramProgram()));
  bytes.resize(bytes.size() / 2);
  writeBytes(f.dir.file("cut.llx"), bytes);
  f.options.planPath = f.dir.file("cut.llx");
  f.expectFailure("cut.llx: corrupted plan");

  PlanDef multi = singleProgram(bigramProgram());
  multi.programs.push_back(bigramProgram());
  multi.programs[1].rank = 1;
  multi.dp = 2;
  writeBytes(f.dir.file("multi.llx"), buildPlan(multi));
  f.options.planPath = f.dir.file("multi.llx");
  f.expectFailure("multi.llx: plan needs 2 ranks (dp=2 tp=1 pp=1); launched "
                  "with 1 rank: run it with mpirun -np 2");

  // Tensor parallelism runs (under mpirun: llamac-mpi-exec-tests), and on
  // one rank it is a world size mismatch like any other.
  PlanDef tensorParallel = multi;
  tensorParallel.dp = 1;
  tensorParallel.tp = 2;
  writeBytes(f.dir.file("tp.llx"), buildPlan(tensorParallel));
  f.options.planPath = f.dir.file("tp.llx");
  f.expectFailure("tp.llx: plan needs 2 ranks (dp=1 tp=2 pp=1); launched "
                  "with 1 rank: run it with mpirun -np 2");

  // Pipeline stages run too (the second stage here holds nothing).
  PlanDef pipeline = multi;
  pipeline.dp = 1;
  pipeline.pp = 2;
  pipeline.programs[1] = ProgramDef();
  pipeline.programs[1].rank = 1;
  pipeline.programs[1].stage = 1;
  writeBytes(f.dir.file("pp.llx"), buildPlan(pipeline));
  f.options.planPath = f.dir.file("pp.llx");
  f.expectFailure("pp.llx: plan needs 2 ranks (dp=1 tp=1 pp=2); launched "
                  "with 1 rank: run it with mpirun -np 2");

  PlanDef other = singleProgram(bigramProgram());
  other.modelJson = R"({"hidden_size": 8, "intermediate_size": 24,
    "num_attention_heads": 2, "num_key_value_heads": 1,
    "num_hidden_layers": 1, "vocab_size": 16})";
  writeBytes(f.dir.file("other.llx"), buildPlan(other));
  f.options.planPath = f.dir.file("other.llx");
  f.expectFailure("plan parameter 'model.layers.0.mlp.gate_proj.weight' has "
                  "shape [16, 8]");

  PlanDef batch = singleProgram(bigramProgram());
  batch.trainJson = tinyTrainJson(8, 2, 4);
  writeBytes(f.dir.file("batch.llx"), buildPlan(batch));
  f.options.planPath = f.dir.file("batch.llx");
  f.expectFailure(
      "global_batch_size 4 != micro_batch_size 2 * microbatches 1 * dp 1");

  PlanDef seq = singleProgram(bigramProgram());
  seq.trainJson = tinyTrainJson(16, 2, 2);
  writeBytes(f.dir.file("seq.llx"), buildPlan(seq));
  f.options.planPath = f.dir.file("seq.llx");
  f.expectFailure(
      "('tokens' of microbatch 0) has shape [2, 8], expected [2, 16]");
}

TEST(Trainer, BadData) {
  Fixture f;
  std::string error;
  f.options.dataPaths = {f.dir.file("missing.tok")};
  f.expectFailure("missing.tok");

  ASSERT_TRUE(io::writeTokenFile(f.dir.file("big.tok"), cycleTokens(100), 32,
                                 error));
  f.options.dataPaths = {f.dir.file("big.tok")};
  f.expectFailure("big.tok: token data has vocab_size 32, larger than the "
                  "model's vocab_size 16");

  ASSERT_TRUE(
      io::writeTokenFile(f.dir.file("short.tok"), cycleTokens(5), kV, error));
  f.options.dataPaths = {f.dir.file("short.tok")};
  f.expectFailure("too few for one sequence");

  writeBytes(f.dir.file("junk.tok"), std::vector<uint8_t>(64, 7));
  f.options.dataPaths = {f.dir.file("junk.tok")};
  f.expectFailure("junk.tok");
}

TEST(Trainer, BadInitAndMetricsPath) {
  Fixture f;
  f.options.initPath = f.dir.file("nothing.safetensors");
  f.expectFailure("nothing.safetensors");
  f.options.initPath.clear();
  f.options.metricsPath = f.dir.file("no/such/dir/metrics.jsonl");
  f.expectFailure("cannot create metrics file");
}

TEST(Trainer, TensorParallelFormOnOneRankMatchesThePlainStep) {
  // The vocabulary-parallel loss, sequence-parallel norm and sharded
  // gradient norm of tensorParallelBigramProgram, with groups of one rank,
  // train the model of the plain bigram step: same losses and norms up to
  // float reduction order.
  BigramRun f;
  f.options.steps = 10;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  std::vector<nlohmann::json> plain = f.metrics();
  writeBytes(f.dir.file("tp1.llx"),
             buildPlan(tensorParallelBigramPlan(1, 1, kB)));
  f.options.planPath = f.dir.file("tp1.llx");
  f.options.metricsPath = f.dir.file("tp1.jsonl");
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  std::vector<nlohmann::json> tp = f.metrics();
  ASSERT_EQ(plain.size(), 10u);
  ASSERT_EQ(tp.size(), 10u);
  for (size_t i = 0; i < tp.size(); ++i) {
    double a = tp[i]["loss"], b = plain[i]["loss"];
    EXPECT_NEAR(a, b, 1e-5 * std::abs(b)) << "step " << i + 1;
    double ga = tp[i]["grad_norm"], gb = plain[i]["grad_norm"];
    EXPECT_NEAR(ga, gb, 1e-4 * std::abs(gb)) << "step " << i + 1;
  }
  EXPECT_LT(tp.back()["loss"].get<double>(), tp[0]["loss"].get<double>());
}
