//===- BigramRun.h - A small real training run for tests --------*- C++ -*-===//
//
// A real training step for the tiny model's embedding, final norm and LM
// head (a bigram model: the decoder layers' parameters are in the plan but
// unused), with clipping, the LR schedule and AdamW, written as a plan file
// beside a token file, with RunOptions for runTraining(). Shared by the
// trainer and checkpoint tests.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TESTS_BIGRAMRUN_H
#define LLAMAC_RUNTIME_EXEC_TESTS_BIGRAMRUN_H

#include "exec/Trainer.h"
#include "exec/tests/PlanTestUtil.h"
#include "io/TokenFile.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace llamac {
namespace exec {
namespace test {

constexpr int64_t kB = 2, kT = 8, kD = 8, kV = 16;
constexpr double kLr = 0.01, kMinLr = 0.001;
constexpr int64_t kWarmup = 2, kDecay = 20;

inline LlamaConfig tinyConfig() {
  LlamaConfig c;
  std::string error;
  EXPECT_TRUE(LlamaConfig::fromJson(tinyModelJson(), "tiny", c, error));
  return c;
}

/// Index of the tensor of argument (role, param).
inline int argTensor(const ProgramDef &p, const std::string &role,
              const std::string &param) {
  for (const ArgDef &a : p.args)
    if (a.role == role && a.param == param)
      return a.tensor;
  ADD_FAILURE() << "no argument " << role << " " << param;
  return -1;
}

/// The training step on `micro` sequences of a global batch of `global`
/// (the loss normalizer counts the global batch's targets). With
/// `allReduce`, the loss and every gradient are summed over the dp grid axis,
/// as the compiler's data parallelism does: the program of one dp rank.
inline ProgramDef bigramProgram(int64_t micro = kB, int64_t global = kB,
                                bool allReduce = false) {
  ProgramDef p;
  addAllParams(p, tinyConfig(), /*withMoments=*/true);
  int tokens = p.arg("tokens", "", {micro, kT}, DType::I32);
  int targets = p.arg("targets", "", {micro, kT}, DType::I32);
  int step = p.arg("step", "", {}, DType::I64);
  const std::string names[3] = {"model.embed_tokens.weight",
                                "model.norm.weight", "lm_head.weight"};
  int emb = argTensor(p, "param", names[0]);
  int normW = argTensor(p, "param", names[1]);
  int head = argTensor(p, "param", names[2]);
  const std::vector<AttrDef> sumOverDp = {L("grid_axes", {1}),
                                          S("reduction", "sum")};
  // Forward.
  int h = p.arena("h", {micro, kT, kD});
  int y = p.arena("y", {micro, kT, kD});
  int logits = p.arena("logits", {micro, kT, kV});
  int loss = p.arena("loss", {});
  p.instr("embedding", {emb, tokens}, {h});
  p.instr("rms_norm", {h, normW}, {y}, {R("eps", 1e-5)});
  p.instr("linear", {y, head}, {logits});
  p.instr("cross_entropy", {logits, targets}, {loss},
          {I("normalizer", global * kT)});
  if (allReduce) { // The partial loss into the global one.
    int partial = loss;
    loss = p.arena("global_loss", {});
    p.instr("all_reduce", {partial}, {loss}, sumOverDp);
  }
  // Backward.
  int one = p.arena("one", {});
  int dlogits = p.arena("dlogits", {micro, kT, kV});
  int dhead = p.arena("dhead", {kV, kD});
  int dy = p.arena("dy", {micro, kT, kD});
  int dh = p.arena("dh", {micro, kT, kD});
  int dnorm = p.arena("dnorm", {kD});
  int demb = p.arena("demb", {kV, kD});
  p.instr("constant", {}, {one}, {R("value", 1.0)});
  p.instr("cross_entropy_grad", {one, logits, targets}, {dlogits},
          {I("normalizer", global * kT)});
  p.instr("linear_grad_weight", {dlogits, y}, {dhead});
  p.instr("linear_grad_input", {dlogits, head}, {dy});
  p.instr("rms_norm_grad", {dy, h, normW}, {dh, dnorm}, {R("eps", 1e-5)});
  p.instr("embedding_grad", {dh, tokens}, {demb});
  if (allReduce)
    for (int g : {demb, dnorm, dhead})
      p.instr("all_reduce", {g}, {g}, sumOverDp);
  // Optimizer.
  int norm = p.arena("grad_norm", {});
  int coef = p.arena("coef", {});
  int lr = p.arena("lr", {});
  p.instr("global_norm", {demb, dnorm, dhead}, {norm});
  p.instr("clip_coef", {norm}, {coef}, {R("max_norm", 1.0)});
  p.instr("lr_schedule", {step}, {lr},
          {R("lr", kLr), R("min_lr", kMinLr), I("warmup_steps", kWarmup),
           I("decay_steps", kDecay)});
  const int params[3] = {emb, normW, head}, grads[3] = {demb, dnorm, dhead};
  for (int i = 0; i < 3; ++i) {
    int m = argTensor(p, "adam_m", names[i]);
    int v = argTensor(p, "adam_v", names[i]);
    p.instr("scale", {grads[i], coef}, {grads[i]});
    p.instr("adamw", {params[i], grads[i], m, v, lr, step},
            {params[i], m, v},
            {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
             R("weight_decay", i == 1 ? 0.0 : 0.1)});
    p.result("new_param", params[i], names[i]);
  }
  p.result("loss", loss);
  p.result("grad_norm", norm);
  p.result("lr", lr);
  return p;
}

/// The bigram plan for `dp` data-parallel ranks of `micro` sequences each
/// (dp = 1: the single-rank plan of a global batch of `micro`).
inline PlanDef bigramPlan(int dp, int64_t micro) {
  PlanDef def;
  def.dp = dp;
  def.trainJson = tinyTrainJson(kT, micro, micro * dp);
  for (int r = 0; r < dp; ++r) {
    def.programs.push_back(bigramProgram(micro, micro * dp, dp > 1));
    def.programs.back().rank = r;
  }
  return def;
}

/// The tokens follow a fixed cycle t -> (5t + 3) mod 16: a bigram model
/// learns it.
inline std::vector<uint32_t> cycleTokens(size_t n) {
  std::vector<uint32_t> t(n);
  uint32_t x = 1;
  for (size_t i = 0; i < n; ++i) {
    t[i] = x;
    x = (5 * x + 3) % kV;
  }
  return t;
}

/// The plan and a token file in a fresh directory, and options that run 30
/// quiet steps with a metrics file.
struct BigramRun {
  TempDir dir;
  RunOptions options;
  BigramRun() {
    writeBytes(dir.file("plan.llx"), buildPlan(singleProgram(bigramProgram())));
    std::string error;
    EXPECT_TRUE(io::writeTokenFile(dir.file("data.tok"), cycleTokens(2000), kV,
                                   error))
        << error;
    options.planPath = dir.file("plan.llx");
    options.dataPaths = {dir.file("data.tok")};
    options.steps = 30;
    options.metricsPath = dir.file("metrics.jsonl");
    options.quiet = true;
  }
  bool metricsExist() const {
    return std::filesystem::exists(options.metricsPath);
  }
  std::vector<nlohmann::json> metrics() const {
    std::vector<nlohmann::json> rows;
    std::ifstream in(options.metricsPath);
    std::string line;
    while (std::getline(in, line))
      rows.push_back(nlohmann::json::parse(line));
    return rows;
  }
  /// Runs and expects failure with `substring` and no metrics file.
  void expectFailure(const std::string &substring) {
    std::string error;
    EXPECT_EQ(runTraining(options, error), 1);
    EXPECT_NE(error.find(substring), std::string::npos)
        << "error: '" << error << "' lacks '" << substring << "'";
    EXPECT_FALSE(metricsExist()) << substring;
  }
};

} // namespace test
} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TESTS_BIGRAMRUN_H
