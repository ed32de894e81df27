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

/// The bigram step of bigramProgram for rank (d, t) of a [1, dp, tp] grid,
/// in the form the compiler's tensor and sequence parallelism gives it
/// (Megatron): the embedding and lm_head split over the vocabulary (their
/// moments too, and the unused decoder matrices as in
/// addAllParamsSharded), the final norm on a 1/tp slice of the sequence
/// (reduce_scatter / all_gather along dim 1), the loss from vocabulary
/// statistics, the gradient norm from the shards' sums of squares. The
/// program is the same on every rank. With tp = 1 every tp collective is
/// over a group of one.
inline ProgramDef tensorParallelBigramProgram(int64_t micro, int64_t global,
                                              int dp, int tp) {
  ProgramDef p;
  addAllParamsSharded(p, tinyConfig(), tp, /*withMoments=*/true);
  int tokens = p.arg("tokens", "", {micro, kT}, DType::I32);
  int targets = p.arg("targets", "", {micro, kT}, DType::I32);
  int step = p.arg("step", "", {}, DType::I64);
  const std::string names[3] = {"model.embed_tokens.weight",
                                "model.norm.weight", "lm_head.weight"};
  int emb = argTensor(p, "param", names[0]);
  int normW = argTensor(p, "param", names[1]);
  int head = argTensor(p, "param", names[2]);
  const int64_t vl = kV / tp, tl = kT / tp;
  const std::vector<AttrDef> sumOverTp = {L("grid_axes", {2}),
                                          S("reduction", "sum")};
  const std::vector<AttrDef> sumOverDp = {L("grid_axes", {1}),
                                          S("reduction", "sum")};
  const std::vector<AttrDef> seqOverTp = {L("grid_axes", {2}), I("dim", 1)};
  const std::vector<AttrDef> vocab = {L("shard_axes", {2})};
  const int64_t normalizer = global * kT;
  // Forward: partial embeddings summed and split along the sequence at once.
  int hPart = p.arena("h_partial", {micro, kT, kD});
  int hs = p.arena("h_seq", {micro, tl, kD});
  int ys = p.arena("y_seq", {micro, tl, kD});
  int y = p.arena("y", {micro, kT, kD});
  int logits = p.arena("logits", {micro, kT, vl});
  int mx = p.arena("max", {micro, kT});
  int se = p.arena("sumexp", {micro, kT});
  int tgt = p.arena("target_logit", {micro, kT});
  int loss = p.arena("loss", {});
  p.instr("embedding", {emb, tokens}, {hPart}, vocab);
  p.instr("reduce_scatter", {hPart}, {hs},
          {L("grid_axes", {2}), I("dim", 1), S("reduction", "sum")});
  p.instr("rms_norm", {hs, normW}, {ys}, {R("eps", 1e-5)});
  p.instr("all_gather", {ys}, {y}, seqOverTp);
  p.instr("linear", {y, head}, {logits});
  p.instr("row_max", {logits}, {mx});
  p.instr("all_reduce", {mx}, {mx},
          {L("grid_axes", {2}), S("reduction", "max")});
  p.instr("row_sum_exp", {logits, mx}, {se});
  p.instr("all_reduce", {se}, {se}, sumOverTp);
  p.instr("target_logit", {logits, targets}, {tgt}, vocab);
  p.instr("all_reduce", {tgt}, {tgt}, sumOverTp);
  p.instr("cross_entropy_from_stats", {mx, se, tgt}, {loss},
          {I("normalizer", normalizer)});
  if (dp > 1) {
    int partial = loss;
    loss = p.arena("global_loss", {});
    p.instr("all_reduce", {partial}, {loss}, sumOverDp);
  }
  // Backward.
  int one = p.arena("one", {});
  int dlogits = p.arena("dlogits", {micro, kT, vl});
  int dhead = p.arena("dhead", {vl, kD});
  int dyPart = p.arena("dy_partial", {micro, kT, kD});
  int dys = p.arena("dy_seq", {micro, tl, kD});
  int dhs = p.arena("dh_seq", {micro, tl, kD});
  int dh = p.arena("dh", {micro, kT, kD});
  int dnorm = p.arena("dnorm", {kD});
  int demb = p.arena("demb", {vl, kD});
  p.instr("constant", {}, {one}, {R("value", 1.0)});
  p.instr("cross_entropy_grad_from_stats", {one, logits, targets, mx, se},
          {dlogits}, {I("normalizer", normalizer), L("shard_axes", {2})});
  p.instr("linear_grad_weight", {dlogits, y}, {dhead});
  p.instr("linear_grad_input", {dlogits, head}, {dyPart});
  p.instr("reduce_scatter", {dyPart}, {dys},
          {L("grid_axes", {2}), I("dim", 1), S("reduction", "sum")});
  p.instr("rms_norm_grad", {dys, hs, normW}, {dhs, dnorm}, {R("eps", 1e-5)});
  p.instr("all_reduce", {dnorm}, {dnorm}, sumOverTp); // sequence slices
  p.instr("all_gather", {dhs}, {dh}, seqOverTp);
  p.instr("embedding_grad", {dh, tokens}, {demb}, vocab);
  if (dp > 1)
    for (int g : {demb, dnorm, dhead})
      p.instr("all_reduce", {g}, {g}, sumOverDp);
  // Optimizer: the norm over the shards and the replicated norm weight.
  int sharded = p.arena("sumsq_sharded", {});
  int replicated = p.arena("sumsq_replicated", {});
  int total = p.arena("sumsq", {});
  int norm = p.arena("grad_norm", {});
  int coef = p.arena("coef", {});
  int lr = p.arena("lr", {});
  p.instr("sum_squares", {demb, dhead}, {sharded});
  p.instr("all_reduce", {sharded}, {sharded}, sumOverTp);
  p.instr("sum_squares", {dnorm}, {replicated});
  p.instr("add", {sharded, replicated}, {total});
  p.instr("sqrt", {total}, {norm});
  p.instr("clip_coef", {norm}, {coef}, {R("max_norm", 1.0)});
  p.instr("lr_schedule", {step}, {lr},
          {R("lr", kLr), R("min_lr", kMinLr), I("warmup_steps", kWarmup),
           I("decay_steps", kDecay)});
  const int params[3] = {emb, normW, head}, grads[3] = {demb, dnorm, dhead};
  for (int i = 0; i < 3; ++i) {
    int m = argTensor(p, "adam_m", names[i]);
    int v = argTensor(p, "adam_v", names[i]);
    p.instr("scale", {grads[i], coef}, {grads[i]});
    p.instr("adamw", {params[i], grads[i], m, v, lr, step}, {params[i], m, v},
            {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
             R("weight_decay", i == 1 ? 0.0 : 0.1)});
    p.result("new_param", params[i], names[i]);
  }
  p.result("loss", loss);
  p.result("grad_norm", norm);
  p.result("lr", lr);
  return p;
}

/// The tensor-parallel bigram plan for a [1, dp, tp] grid, `micro`
/// sequences per dp rank.
inline PlanDef tensorParallelBigramPlan(int dp, int tp, int64_t micro) {
  PlanDef def;
  def.dp = dp;
  def.tp = tp;
  def.trainJson = tinyTrainJson(kT, micro, micro * dp);
  for (int r = 0; r < dp * tp; ++r) {
    def.programs.push_back(
        tensorParallelBigramProgram(micro, micro * dp, dp, tp));
    def.programs.back().rank = r;
  }
  return def;
}

/// The bigram step of bigramProgram with loss scaling, the way the
/// compiler's mixed precision writes it: the final norm's output and the
/// LM head are cast to `low` (f32: no casts), the logits and their
/// gradient are `low`, the backward pass is seeded with the loss scale
/// (cast to `low` too: in f16 a scale >= 65520 overflows right there, so
/// exactly those steps are skipped), the gradients are multiplied by the
/// inverse scale, checked by all_finite, and AdamW skips the update when
/// they are not all finite. Arguments loss_scale and inv_loss_scale, result
/// all_finite. `micro`, `global` and `allReduce` as for bigramProgram; with
/// `allReduce` the finite check is also reduced (min) over dp.
inline ProgramDef lossScaledBigramProgram(DType low, int64_t micro = kB,
                                          int64_t global = kB,
                                          bool allReduce = false) {
  ProgramDef p;
  addAllParams(p, tinyConfig(), /*withMoments=*/true);
  int tokens = p.arg("tokens", "", {micro, kT}, DType::I32);
  int targets = p.arg("targets", "", {micro, kT}, DType::I32);
  int step = p.arg("step", "", {}, DType::I64);
  int scale = p.arg("loss_scale", "", {});
  int invScale = p.arg("inv_loss_scale", "", {});
  const std::string names[3] = {"model.embed_tokens.weight",
                                "model.norm.weight", "lm_head.weight"};
  int emb = argTensor(p, "param", names[0]);
  int normW = argTensor(p, "param", names[1]);
  int head = argTensor(p, "param", names[2]);
  const bool cast = low != DType::F32;
  // Forward.
  const std::vector<AttrDef> sumOverDp = {L("grid_axes", {1}),
                                          S("reduction", "sum")};
  int h = p.arena("h", {micro, kT, kD});
  int y = p.arena("y", {micro, kT, kD});
  int logits = p.arena("logits", {micro, kT, kV}, low);
  int loss = p.arena("loss", {});
  p.instr("embedding", {emb, tokens}, {h});
  p.instr("rms_norm", {h, normW}, {y}, {R("eps", 1e-5)});
  int yLow = y, headLow = head;
  if (cast) {
    yLow = p.arena("y_low", {micro, kT, kD}, low);
    headLow = p.arena("head_low", {kV, kD}, low);
    p.instr("cast", {y}, {yLow});
    p.instr("cast", {head}, {headLow});
  }
  p.instr("linear", {yLow, headLow}, {logits});
  p.instr("cross_entropy", {logits, targets}, {loss},
          {I("normalizer", global * kT)});
  if (allReduce) {
    int partial = loss;
    loss = p.arena("global_loss", {});
    p.instr("all_reduce", {partial}, {loss}, sumOverDp);
  }
  // Backward, from the scaled loss.
  int seed = scale;
  if (cast) {
    seed = p.arena("seed", {}, low);
    p.instr("cast", {scale}, {seed});
  }
  int dlogits = p.arena("dlogits", {micro, kT, kV}, low);
  int dhead = p.arena("dhead", {kV, kD});
  int dy = p.arena("dy", {micro, kT, kD}, low);
  int dh = p.arena("dh", {micro, kT, kD});
  int dnorm = p.arena("dnorm", {kD});
  int demb = p.arena("demb", {kV, kD});
  p.instr("cross_entropy_grad", {seed, logits, targets}, {dlogits},
          {I("normalizer", global * kT)});
  p.instr("linear_grad_weight", {dlogits, yLow}, {dhead});
  p.instr("linear_grad_input", {dlogits, headLow}, {dy});
  p.instr("rms_norm_grad", {dy, h, normW}, {dh, dnorm}, {R("eps", 1e-5)});
  p.instr("embedding_grad", {dh, tokens}, {demb});
  if (allReduce)
    for (int g : {demb, dnorm, dhead})
      p.instr("all_reduce", {g}, {g}, sumOverDp);
  // Unscale, check, then the optimizer of bigramProgram.
  const int grads[3] = {demb, dnorm, dhead};
  for (int g : grads)
    p.instr("scale", {g, invScale}, {g});
  int finite = p.arena("all_finite", {});
  p.instr("all_finite", {demb, dnorm, dhead}, {finite});
  if (allReduce)
    p.instr("all_reduce", {finite}, {finite},
            {L("grid_axes", {1}), S("reduction", "min")});
  int norm = p.arena("grad_norm", {});
  int coef = p.arena("coef", {});
  int lr = p.arena("lr", {});
  p.instr("global_norm", {demb, dnorm, dhead}, {norm});
  p.instr("clip_coef", {norm}, {coef}, {R("max_norm", 1.0)});
  p.instr("lr_schedule", {step}, {lr},
          {R("lr", kLr), R("min_lr", kMinLr), I("warmup_steps", kWarmup),
           I("decay_steps", kDecay)});
  const int params[3] = {emb, normW, head};
  for (int i = 0; i < 3; ++i) {
    int m = argTensor(p, "adam_m", names[i]);
    int v = argTensor(p, "adam_v", names[i]);
    p.instr("scale", {grads[i], coef}, {grads[i]});
    p.instr("adamw", {params[i], grads[i], m, v, lr, step, finite},
            {params[i], m, v},
            {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
             R("weight_decay", i == 1 ? 0.0 : 0.1)});
    p.result("new_param", params[i], names[i]);
  }
  p.result("loss", loss);
  p.result("grad_norm", norm);
  p.result("lr", lr);
  p.result("all_finite", finite);
  return p;
}

/// lossScaledBigramProgram's plan for `dp` ranks of `micro` sequences,
/// with `lossScaleJson` as the train config's "loss_scale" object and the
/// precision named after `low`.
inline PlanDef lossScaledBigramPlan(DType low, const std::string &lossScaleJson,
                                    int dp = 1, int64_t micro = kB) {
  PlanDef def;
  def.dp = dp;
  for (int r = 0; r < dp; ++r) {
    def.programs.push_back(
        lossScaledBigramProgram(low, micro, micro * dp, dp > 1));
    def.programs.back().rank = r;
  }
  def.precision = low == DType::F16    ? "fp16"
                  : low == DType::BF16 ? "bf16"
                                       : "fp32";
  std::string train = tinyTrainJson(kT, micro, micro * dp);
  train.erase(train.rfind('}'));
  def.trainJson = train + R"(, "precision": ")" + def.precision +
                  R"(", "loss_scale": )" + lossScaleJson + "}";
  return def;
}

/// The loss and gradients of one microbatch of the bigram step.
struct BigramGrads {
  int loss, demb, dnorm, dhead;
};

/// bigramProgram's forward and backward pass on one microbatch (`tokens`,
/// `targets` of `micro` sequences; the loss normalizer counts the global
/// batch's targets), its tensors named with `suffix`. The gradients go to
/// `into` where given (>= 0: a bucket's region), else to fresh tensors.
inline BigramGrads bigramMicrobatch(ProgramDef &p, int tokens, int targets,
                                    int64_t micro, int64_t global,
                                    const std::string &suffix,
                                    BigramGrads into = {-1, -1, -1, -1}) {
  int emb = argTensor(p, "param", "model.embed_tokens.weight");
  int normW = argTensor(p, "param", "model.norm.weight");
  int head = argTensor(p, "param", "lm_head.weight");
  int h = p.arena("h" + suffix, {micro, kT, kD});
  int y = p.arena("y" + suffix, {micro, kT, kD});
  int logits = p.arena("logits" + suffix, {micro, kT, kV});
  BigramGrads g = into;
  g.loss = p.arena("loss" + suffix, {});
  p.instr("embedding", {emb, tokens}, {h});
  p.instr("rms_norm", {h, normW}, {y}, {R("eps", 1e-5)});
  p.instr("linear", {y, head}, {logits});
  p.instr("cross_entropy", {logits, targets}, {g.loss},
          {I("normalizer", global * kT)});
  int one = p.arena("one" + suffix, {});
  int dlogits = p.arena("dlogits" + suffix, {micro, kT, kV});
  int dy = p.arena("dy" + suffix, {micro, kT, kD});
  int dh = p.arena("dh" + suffix, {micro, kT, kD});
  if (g.dhead < 0)
    g.dhead = p.arena("dhead" + suffix, {kV, kD});
  if (g.dnorm < 0)
    g.dnorm = p.arena("dnorm" + suffix, {kD});
  if (g.demb < 0)
    g.demb = p.arena("demb" + suffix, {kV, kD});
  p.instr("constant", {}, {one}, {R("value", 1.0)});
  p.instr("cross_entropy_grad", {one, logits, targets}, {dlogits},
          {I("normalizer", global * kT)});
  p.instr("linear_grad_weight", {dlogits, y}, {g.dhead});
  p.instr("linear_grad_input", {dlogits, head}, {dy});
  p.instr("rms_norm_grad", {dy, h, normW}, {dh, g.dnorm}, {R("eps", 1e-5)});
  p.instr("embedding_grad", {dh, tokens}, {g.demb});
  return g;
}

/// bigramProgram's optimizer (norm, clipping, schedule, AdamW) on the
/// gradients `g`, and the results (loss: `g.loss`).
inline void bigramOptimizer(ProgramDef &p, const BigramGrads &g) {
  const std::string names[3] = {"model.embed_tokens.weight",
                                "model.norm.weight", "lm_head.weight"};
  const int step = argTensor(p, "step", "");
  int norm = p.arena("grad_norm", {});
  int coef = p.arena("coef", {});
  int lr = p.arena("lr", {});
  p.instr("global_norm", {g.demb, g.dnorm, g.dhead}, {norm});
  p.instr("clip_coef", {norm}, {coef}, {R("max_norm", 1.0)});
  p.instr("lr_schedule", {step}, {lr},
          {R("lr", kLr), R("min_lr", kMinLr), I("warmup_steps", kWarmup),
           I("decay_steps", kDecay)});
  const int grads[3] = {g.demb, g.dnorm, g.dhead};
  for (int i = 0; i < 3; ++i) {
    int param = argTensor(p, "param", names[i]);
    int m = argTensor(p, "adam_m", names[i]);
    int v = argTensor(p, "adam_v", names[i]);
    p.instr("scale", {grads[i], coef}, {grads[i]});
    p.instr("adamw", {param, grads[i], m, v, lr, step}, {param, m, v},
            {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
             R("weight_decay", i == 1 ? 0.0 : 0.1)});
    p.result("new_param", param, names[i]);
  }
  p.result("loss", g.loss);
  p.result("grad_norm", norm);
  p.result("lr", lr);
}

/// The bigram step with gradient accumulation, as llm-grad-accumulation
/// unrolls it: `microbatches` copies of the forward and backward pass of
/// `micro` sequences, copy k on the k-th `tokens` and the k-th `targets`
/// argument (those of microbatch 0 where bigramProgram has them, the
/// others appended after every other argument, pair by pair), the losses
/// and gradients added in microbatch order. `lossOf` >= 0: the loss result
/// is that microbatch's loss alone (a probe of which data each argument
/// gets); the gradients are the sum either way. With `dp` > 1: the program
/// of one of `dp` data-parallel ranks, whose summed loss and gradients are
/// then all-reduced over dp (the global batch is micro * microbatches *
/// dp).
inline ProgramDef accumulatedBigramProgram(int microbatches, int64_t micro,
                                           int lossOf = -1, int dp = 1) {
  ProgramDef p;
  addAllParams(p, tinyConfig(), /*withMoments=*/true);
  std::vector<int> tokens = {p.arg("tokens", "", {micro, kT}, DType::I32)};
  std::vector<int> targets = {p.arg("targets", "", {micro, kT}, DType::I32)};
  p.arg("step", "", {}, DType::I64);
  for (int k = 1; k < microbatches; ++k) {
    tokens.push_back(p.arg("tokens", "", {micro, kT}, DType::I32));
    targets.push_back(p.arg("targets", "", {micro, kT}, DType::I32));
  }
  const int64_t global = micro * microbatches * dp;
  BigramGrads total =
      bigramMicrobatch(p, tokens[0], targets[0], micro, global, "_0");
  const int probe = total.loss;
  int lossK = probe;
  for (int k = 1; k < microbatches; ++k) {
    BigramGrads g = bigramMicrobatch(p, tokens[k], targets[k], micro, global,
                                     "_" + std::to_string(k));
    if (k == lossOf)
      lossK = g.loss;
    int sum = p.arena("loss_sum_" + std::to_string(k), {});
    p.instr("add", {total.loss, g.loss}, {sum});
    total.loss = sum;
    for (auto [acc, mine] :
         {std::pair{total.demb, g.demb}, std::pair{total.dnorm, g.dnorm},
          std::pair{total.dhead, g.dhead}})
      p.instr("add", {acc, mine}, {acc});
  }
  if (lossOf >= 0)
    total.loss = lossK;
  if (dp > 1) {
    const std::vector<AttrDef> sumOverDp = {L("grid_axes", {1}),
                                            S("reduction", "sum")};
    int global = p.arena("global_loss", {});
    p.instr("all_reduce", {total.loss}, {global}, sumOverDp);
    total.loss = global;
    for (int g : {total.demb, total.dnorm, total.dhead})
      p.instr("all_reduce", {g}, {g}, sumOverDp);
  }
  bigramOptimizer(p, total);
  return p;
}

/// accumulatedBigramProgram's plan: `microbatches` of `micro` sequences on
/// each of `dp` ranks.
inline PlanDef accumulatedBigramPlan(int microbatches, int64_t micro,
                                     int lossOf = -1, int dp = 1) {
  PlanDef def;
  def.dp = dp;
  for (int r = 0; r < dp; ++r) {
    def.programs.push_back(
        accumulatedBigramProgram(microbatches, micro, lossOf, dp));
    def.programs.back().rank = r;
  }
  def.trainJson =
      tinyTrainJson(kT, micro, micro * microbatches * dp, microbatches);
  return def;
}

/// bigramProgram's data-parallel step (allReduce) with the gradient
/// all_reduces replaced by gradient buckets, as llm-allreduce-bucketing
/// places them: bucket 0 = {dhead}, started as soon as linear_grad_weight
/// wrote it, in the middle of the backward pass; bucket 1 = {dnorm, demb},
/// laid out back to back, started after embedding_grad; both waited for
/// before the optimizer. The loss is still summed by a synchronous
/// all_reduce. With `fillerRows` > 0, a linear of [fillerRows, 512] by
/// [512, 512] (on zeros, its output unused) runs right after bucket 0's
/// start: the rest of a long backward pass for the reduction to overlap.
/// The start's and the wait's outputs are other tensor entries over the
/// same storage, as the compiler's serializer gives them.
inline ProgramDef bucketedBigramProgram(int64_t micro, int64_t global,
                                        int64_t fillerRows = 0) {
  ProgramDef p;
  addAllParams(p, tinyConfig(), /*withMoments=*/true);
  int tokens = p.arg("tokens", "", {micro, kT}, DType::I32);
  int targets = p.arg("targets", "", {micro, kT}, DType::I32);
  p.arg("step", "", {}, DType::I64);
  int emb = argTensor(p, "param", "model.embed_tokens.weight");
  int normW = argTensor(p, "param", "model.norm.weight");
  int head = argTensor(p, "param", "lm_head.weight");
  const std::vector<AttrDef> sumOverDp = {L("grid_axes", {1}),
                                          S("reduction", "sum")};
  auto start = [&](std::vector<int> grads, int64_t id) {
    std::vector<int> outs;
    for (int g : grads)
      outs.push_back(p.view(g, p.tensors[g].shape));
    std::vector<AttrDef> attrs = sumOverDp;
    attrs.push_back(I("bucket", id));
    p.instr("bucket_all_reduce_start", grads, outs, attrs);
    return outs;
  };
  auto wait = [&](const std::vector<int> &started, int64_t id) {
    std::vector<int> outs;
    for (int g : started)
      outs.push_back(p.view(g, p.tensors[g].shape));
    p.instr("bucket_all_reduce_wait", started, outs, {I("bucket", id)});
  };
  // Forward, and the global loss.
  int h = p.arena("h", {micro, kT, kD});
  int y = p.arena("y", {micro, kT, kD});
  int logits = p.arena("logits", {micro, kT, kV});
  int partial = p.arena("loss", {});
  int loss = p.arena("global_loss", {});
  p.instr("embedding", {emb, tokens}, {h});
  p.instr("rms_norm", {h, normW}, {y}, {R("eps", 1e-5)});
  p.instr("linear", {y, head}, {logits});
  p.instr("cross_entropy", {logits, targets}, {partial},
          {I("normalizer", global * kT)});
  p.instr("all_reduce", {partial}, {loss}, sumOverDp);
  // Backward, with the buckets' all-reduces started as gradients appear.
  int one = p.arena("one", {});
  int dlogits = p.arena("dlogits", {micro, kT, kV});
  int dy = p.arena("dy", {micro, kT, kD});
  int dh = p.arena("dh", {micro, kT, kD});
  int dhead = p.arena("dhead", {kV, kD});
  int region = p.arena("bucket1", {kD + kV * kD});
  int dnorm = p.within(region, 0, "dnorm", {kD});
  int demb = p.within(region, kD, "demb", {kV, kD});
  p.instr("constant", {}, {one}, {R("value", 1.0)});
  p.instr("cross_entropy_grad", {one, logits, targets}, {dlogits},
          {I("normalizer", global * kT)});
  p.instr("linear_grad_weight", {dlogits, y}, {dhead});
  std::vector<int> bucket0 = start({dhead}, 0);
  if (fillerRows > 0) {
    int x = p.arena("filler_x", {fillerRows, 512});
    int w = p.arena("filler_w", {512, 512});
    int out = p.arena("filler_y", {fillerRows, 512});
    p.instr("linear", {x, w}, {out});
  }
  p.instr("linear_grad_input", {dlogits, head}, {dy});
  p.instr("rms_norm_grad", {dy, h, normW}, {dh, dnorm}, {R("eps", 1e-5)});
  p.instr("embedding_grad", {dh, tokens}, {demb});
  std::vector<int> bucket1 = start({dnorm, demb}, 1);
  wait(bucket0, 0);
  wait(bucket1, 1);
  bigramOptimizer(p, {loss, demb, dnorm, dhead});
  return p;
}

/// bucketedBigramProgram's plan for `dp` ranks of `micro` sequences.
inline PlanDef bucketedBigramPlan(int dp, int64_t micro,
                                  int64_t fillerRows = 0) {
  PlanDef def;
  def.dp = dp;
  def.trainJson = tinyTrainJson(kT, micro, micro * dp);
  for (int r = 0; r < dp; ++r) {
    def.programs.push_back(
        bucketedBigramProgram(micro, micro * dp, fillerRows));
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

/// The cycle t -> (5t + 3) mod 16 of cycleTokens, with a quarter of the
/// tokens replaced by pseudo-random ones (an LCG): learnable, but without a
/// short period, so every sequence of a batch differs and a rank (or a
/// microbatch) reading the wrong slice changes the loss.
inline std::vector<uint32_t> irregularTokens(size_t n) {
  std::vector<uint32_t> t(n);
  uint32_t lcg = 12345, x = 1;
  for (size_t i = 0; i < n; ++i) {
    lcg = lcg * 1103515245u + 12345u;
    x = ((lcg >> 16) % 4 == 0) ? (lcg >> 20) % kV : (5 * x + 3) % kV;
    t[i] = x;
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
