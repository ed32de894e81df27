//===- ExecutorTest.cpp - The executor against references ------------------===//
//
// Small programs built with PlanTestUtil, run by the Executor, compared with
//  - naive loops in double written here (linear, cross-entropy and their
//    gradients, AdamW, the LR schedule, global norm and clipping), and
//  - direct calls of llamac::kernels for the model kernels, which checks the
//    executor's wiring (operand order, sizes derived from shapes, attributes).
//
//===----------------------------------------------------------------------===//
#include "exec/Executor.h"
#include "comm/Comm.h"
#include "exec/tests/PlanTestUtil.h"
#include "exec/tests/SimulatedComm.h"
#include "llamac/runtime/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

namespace {

/// A loaded plan and an executor over its only program.
struct Prepared {
  LoadedPlan plan;
  Executor exec;
};

std::unique_ptr<Prepared> prepare(const ProgramDef &program) {
  auto p = std::make_unique<Prepared>();
  std::string error;
  if (!loadDef(singleProgram(program), p->plan, error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  if (!p->exec.init(p->plan.program(0), error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  return p;
}

float *f32(Executor &exec, int tensor) {
  return static_cast<float *>(exec.tensorData(tensor));
}

/// Deterministic, irregular values in [-amp, amp].
void fillWave(float *x, int64_t n, double phase, double amp = 1.0) {
  for (int64_t i = 0; i < n; ++i)
    x[i] = static_cast<float>(amp * std::sin(0.7 * i + phase));
}

/// Runs the program; false (with the error as a test failure) when it fails.
bool runOk(Executor &exec) {
  std::string error;
  bool ok = exec.run(error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

std::vector<float> copyOf(const float *x, int64_t n) {
  return std::vector<float>(x, x + n);
}

} // namespace

TEST(Executor, LinearAndCrossEntropyMatchNaiveReference) {
  const int M = 6, K = 4, N = 5;
  ProgramDef p;
  int x = p.arg("param", "x", {2, 3, K});
  int w = p.arg("param", "w", {N, K});
  int targets = p.arg("targets", "", {2, 3}, DType::I32);
  int logits = p.arena("logits", {2, 3, N});
  int loss = p.arena("loss", {});
  p.instr("linear", {x, w}, {logits});
  p.instr("cross_entropy", {logits, targets}, {loss}, {I("normalizer", 12)});
  p.result("loss", loss);
  auto r = prepare(p);
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  fillWave(f32(e, x), M * K, 0.1);
  fillWave(f32(e, w), N * K, 1.3);
  auto *t = static_cast<int32_t *>(e.argument("targets"));
  for (int i = 0; i < M; ++i)
    t[i] = (3 * i + 1) % N;
  ASSERT_TRUE(runOk(e));

  const float *X = f32(e, x), *W = f32(e, w), *L = f32(e, logits);
  double lossRef = 0.0;
  for (int m = 0; m < M; ++m) {
    std::vector<double> row(N);
    double mx = -1e30;
    for (int n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int k = 0; k < K; ++k)
        acc += double(X[m * K + k]) * W[n * K + k];
      row[n] = acc;
      mx = std::max(mx, acc);
      EXPECT_NEAR(L[m * N + n], acc, 1e-5) << "logit " << m << "," << n;
    }
    double sum = 0.0;
    for (double v : row)
      sum += std::exp(v - mx);
    lossRef += mx + std::log(sum) - row[t[m]];
  }
  lossRef /= 12.0;
  EXPECT_NEAR(e.scalarResult("loss"), lossRef, 1e-6);
  EXPECT_NEAR(*f32(e, loss), lossRef, 1e-6);
}

TEST(Executor, LinearAndCrossEntropyGradientsMatchNaiveReference) {
  const int M = 6, K = 4, N = 5;
  ProgramDef p;
  int x = p.arg("param", "x", {M, K});
  int w = p.arg("param", "w", {N, K});
  int targets = p.arg("targets", "", {M}, DType::I32);
  int logits = p.arg("param", "logits", {2, 3, N});
  int dloss = p.arena("dloss", {});
  int dlogits = p.arena("dlogits", {2, 3, N});
  int dx = p.arena("dx", {M, K});
  int dw = p.arena("dw", {N, K});
  p.instr("constant", {}, {dloss}, {R("value", 2.0)});
  p.instr("cross_entropy_grad", {dloss, logits, targets}, {dlogits},
          {I("normalizer", 3)});
  int dlogits2 = p.view(dlogits, {M, N});
  p.instr("linear_grad_input", {dlogits2, w}, {dx});
  p.instr("linear_grad_weight", {dlogits2, x}, {dw});
  auto r = prepare(p);
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  fillWave(f32(e, x), M * K, 0.4);
  fillWave(f32(e, w), N * K, 2.1);
  fillWave(f32(e, logits), M * N, 0.9, 3.0);
  auto *t = static_cast<int32_t *>(e.argument("targets"));
  for (int i = 0; i < M; ++i)
    t[i] = (2 * i + 3) % N;
  ASSERT_TRUE(runOk(e));

  const float *X = f32(e, x), *W = f32(e, w), *Z = f32(e, logits);
  EXPECT_FLOAT_EQ(*f32(e, dloss), 2.0f);
  std::vector<double> G(M * N);
  for (int m = 0; m < M; ++m) {
    double mx = -1e30, sum = 0.0;
    for (int n = 0; n < N; ++n)
      mx = std::max(mx, double(Z[m * N + n]));
    for (int n = 0; n < N; ++n)
      sum += std::exp(Z[m * N + n] - mx);
    for (int n = 0; n < N; ++n) {
      double softmax = std::exp(Z[m * N + n] - mx) / sum;
      G[m * N + n] = 2.0 / 3.0 * (softmax - (n == t[m] ? 1.0 : 0.0));
      EXPECT_NEAR(f32(e, dlogits)[m * N + n], G[m * N + n], 1e-6);
    }
  }
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) {
      double acc = 0.0;
      for (int n = 0; n < N; ++n)
        acc += G[m * N + n] * W[n * K + k];
      EXPECT_NEAR(f32(e, dx)[m * K + k], acc, 1e-5);
    }
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      double acc = 0.0;
      for (int m = 0; m < M; ++m)
        acc += G[m * N + n] * X[m * K + k];
      EXPECT_NEAR(f32(e, dw)[n * K + k], acc, 1e-5);
    }
}

TEST(Executor, ModelKernelsMatchDirectKernelCalls) {
  namespace k = llamac::kernels;
  const int B = 1, S = 4, H = 2, KV = 1, Dh = 4, D = 8, V = 16;
  ProgramDef p;
  int ids = p.arg("tokens", "", {B, S}, DType::I32);
  int table = p.arg("param", "table", {V, D});
  int nw = p.arg("param", "nw", {D});
  int q = p.arg("param", "q", {B, S, H, Dh});
  int kk = p.arg("param", "k", {B, S, KV, Dh});
  int v = p.arg("param", "v", {B, S, KV, Dh});
  int dout = p.arg("param", "dout", {B, S, H, Dh});
  int gate = p.arg("param", "gate", {B, S, D});
  int up = p.arg("param", "up", {B, S, D});
  int emb = p.arena("emb", {B, S, D});
  int normed = p.arena("normed", {B, S, D});
  int qr = p.arena("qr", {B, S, H, Dh});
  int qg = p.arena("qg", {B, S, H, Dh});
  int out = p.arena("out", {B, S, H, Dh});
  int lse = p.arena("lse", {B, H, S});
  int dq = p.arena("dq", {B, S, H, Dh});
  int dk = p.arena("dk", {B, S, KV, Dh});
  int dv = p.arena("dv", {B, S, KV, Dh});
  int sw = p.arena("sw", {B, S, D});
  int dg = p.arena("dg", {B, S, D});
  int du = p.arena("du", {B, S, D});
  int sum = p.arena("sum", {B, S, D});
  int dtable = p.arena("dtable", {V, D});
  int dx = p.arena("dx", {B, S, D});
  int dnw = p.arena("dnw", {D});
  p.instr("embedding", {table, ids}, {emb});
  p.instr("rms_norm", {emb, nw}, {normed}, {R("eps", 1e-5)});
  p.instr("rope", {q}, {qr}, {R("theta", 10000.0), I("pos_offset", 3)});
  p.instr("rope_grad", {qr}, {qg}, {R("theta", 500.0)});
  p.instr("attention", {q, kk, v}, {out, lse}, {R("scale", 0.5)});
  p.instr("attention_grad", {dout, q, kk, v, out, lse}, {dq, dk, dv},
          {R("scale", 0.5)});
  p.instr("swiglu", {gate, up}, {sw});
  p.instr("swiglu_grad", {emb, gate, up}, {dg, du});
  p.instr("add", {emb, normed}, {sum});
  p.instr("embedding_grad", {normed, ids}, {dtable});
  p.instr("rms_norm_grad", {sum, emb, nw}, {dx, dnw}, {R("eps", 1e-5)});
  auto r = prepare(p);
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  auto *I32 = static_cast<int32_t *>(e.argument("tokens"));
  int32_t tok[S] = {3, 15, 3, 0};
  for (int i = 0; i < S; ++i)
    I32[i] = tok[i];
  fillWave(f32(e, table), V * D, 0.2);
  fillWave(f32(e, nw), D, 1.0);
  fillWave(f32(e, q), B * S * H * Dh, 0.3);
  fillWave(f32(e, kk), B * S * KV * Dh, 0.6);
  fillWave(f32(e, v), B * S * KV * Dh, 0.8);
  fillWave(f32(e, dout), B * S * H * Dh, 1.7);
  fillWave(f32(e, gate), B * S * D, 2.2);
  fillWave(f32(e, up), B * S * D, 2.9);
  ASSERT_TRUE(runOk(e));

  const int64_t nx = B * S * D, nq = B * S * H * Dh, nk = B * S * KV * Dh;
  std::vector<float> rEmb(nx), rNormed(nx), rQr(nq), rQg(nq), rOut(nq),
      rLse(B * H * S), rDq(nq), rDk(nk), rDv(nk), rSw(nx), rDg(nx), rDu(nx),
      rSum(nx), rDtable(V * D), rDx(nx), rDnw(D);
  k::embeddingFwd<float>(f32(e, table), I32, rEmb.data(), S, D, V);
  k::rmsNormFwd<float>(rEmb.data(), f32(e, nw), rNormed.data(), S, D, 1e-5f);
  k::rope<float>(f32(e, q), rQr.data(), B, S, H, Dh, 10000.0f, 3, false);
  k::rope<float>(rQr.data(), rQg.data(), B, S, H, Dh, 500.0f, 0, true);
  k::attentionFwd<float>(f32(e, q), f32(e, kk), f32(e, v), rOut.data(),
                         rLse.data(), B, S, H, KV, Dh, 0.5f);
  k::attentionBwd<float>(f32(e, dout), f32(e, q), f32(e, kk), f32(e, v),
                         rOut.data(), rLse.data(), rDq.data(), rDk.data(),
                         rDv.data(), B, S, H, KV, Dh, 0.5f);
  k::swigluFwd<float>(f32(e, gate), f32(e, up), rSw.data(), nx);
  k::swigluBwd<float>(rEmb.data(), f32(e, gate), f32(e, up), rDg.data(),
                      rDu.data(), nx);
  k::add<float>(rEmb.data(), rNormed.data(), rSum.data(), nx);
  k::embeddingBwd<float>(rNormed.data(), I32, rDtable.data(), S, D, V);
  k::rmsNormBwd<float>(rSum.data(), rEmb.data(), f32(e, nw), rDx.data(),
                       rDnw.data(), S, D, 1e-5f);

  auto same = [&](int tensor, const std::vector<float> &ref, const char *what) {
    EXPECT_EQ(copyOf(f32(e, tensor), ref.size()), ref) << what;
  };
  same(emb, rEmb, "embedding");
  same(normed, rNormed, "rms_norm");
  same(qr, rQr, "rope");
  same(qg, rQg, "rope_grad");
  same(out, rOut, "attention out");
  same(lse, rLse, "attention lse");
  same(dq, rDq, "attention_grad dq");
  same(dk, rDk, "attention_grad dk");
  same(dv, rDv, "attention_grad dv");
  same(sw, rSw, "swiglu");
  same(dg, rDg, "swiglu_grad dgate");
  same(du, rDu, "swiglu_grad dup");
  same(sum, rSum, "add");
  same(dtable, rDtable, "embedding_grad");
  same(dx, rDx, "rms_norm_grad dx");
  same(dnw, rDnw, "rms_norm_grad dw");
  // An independent spot check: the embedding gathers rows.
  for (int d = 0; d < D; ++d)
    EXPECT_EQ(f32(e, emb)[D + d], f32(e, table)[15 * D + d]);
}

TEST(Executor, AdamWMatchesTorchFormulaInPlace) {
  const int n = 12;
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  ProgramDef p;
  int param = p.arg("param", "w", {3, 4});
  int grad = p.arg("param", "g", {3, 4}); // Any f32 buffer will do.
  int m = p.arg("adam_m", "w", {3, 4});
  int v = p.arg("adam_v", "w", {3, 4});
  int step = p.arg("step", "", {}, DType::I64);
  int lrT = p.arena("lr", {});
  p.instr("constant", {}, {lrT}, {R("value", lr)});
  p.instr("adamw", {param, grad, m, v, lrT, step}, {param, m, v},
          {R("beta1", b1), R("beta2", b2), R("eps", eps),
           R("weight_decay", wd)});
  p.result("new_param", param, "w");
  p.result("new_adam_m", m, "w");
  p.result("new_adam_v", v, "w");
  auto r = prepare(p);
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  float *P = f32(e, param), *G = f32(e, grad), *Mm = f32(e, m),
        *Vv = f32(e, v);
  fillWave(P, n, 0.0);
  fillWave(G, n, 1.0, 0.5);
  fillWave(Mm, n, 2.0, 0.1);
  for (int i = 0; i < n; ++i)
    Vv[i] = 0.01f * (1 + i);
  *static_cast<int64_t *>(e.argument("step")) = 4; // The 5th update.
  std::vector<float> p0 = copyOf(P, n), g0 = copyOf(G, n),
                     m0 = copyOf(Mm, n), v0 = copyOf(Vv, n);
  ASSERT_TRUE(runOk(e));

  const int t = 5;
  for (int i = 0; i < n; ++i) {
    double pp = p0[i] * (1.0 - lr * wd);
    double mm = b1 * m0[i] + (1 - b1) * g0[i];
    double vv = b2 * v0[i] + (1 - b2) * double(g0[i]) * g0[i];
    double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    pp -= lr / bc1 * mm / (std::sqrt(vv) / std::sqrt(bc2) + eps);
    EXPECT_NEAR(P[i], pp, 1e-6) << i;
    EXPECT_NEAR(Mm[i], mm, 1e-7) << i;
    EXPECT_NEAR(Vv[i], vv, 1e-7) << i;
  }
  // The update landed in the argument buffers (in place).
  EXPECT_EQ(static_cast<float *>(e.argument("param", "w")), P);
  EXPECT_EQ(static_cast<float *>(e.argument("adam_m", "w")), Mm);
}

TEST(Executor, LrScheduleMatchesClosedForm) {
  const double lr = 1e-3, minLr = 1e-4;
  struct Case {
    int64_t warmup, decay, step;
    double expected;
  } cases[] = {
      {10, 110, 0, 1e-4},             // warmup: lr * 1 / 10
      {10, 110, 4, 5e-4},             // warmup: lr * 5 / 10
      {10, 110, 9, 1e-3},             // last warmup step reaches lr
      {10, 110, 10, 1e-3},            // cosine starts at lr
      {10, 110, 60, (lr + minLr) / 2}, // cosine midpoint
      {10, 110, 35, minLr + (lr - minLr) * (1 + std::sqrt(0.5)) / 2},
      {10, 110, 110, minLr},          // after decay
      {10, 110, 100000, minLr},
      {0, 0, 0, lr},                  // constant
      {0, 0, 500, lr},
      {5, 0, 2, 6e-4},                // warmup: lr * 3 / 5, then constant
      {5, 0, 50, lr},
      {0, 100, 0, lr},                // no warmup: cosine from step 0
      {0, 100, 50, (lr + minLr) / 2},
  };
  for (const Case &c : cases) {
    ProgramDef p;
    int step = p.arg("step", "", {}, DType::I64);
    int out = p.arena("lr", {});
    p.instr("lr_schedule", {step}, {out},
            {R("lr", lr), R("min_lr", minLr), I("warmup_steps", c.warmup),
             I("decay_steps", c.decay)});
    p.result("lr", out);
    auto r = prepare(p);
    ASSERT_TRUE(r);
    *static_cast<int64_t *>(r->exec.argument("step")) = c.step;
    ASSERT_TRUE(runOk(r->exec));
    EXPECT_NEAR(r->exec.scalarResult("lr"), c.expected, 1e-9)
        << "warmup " << c.warmup << " decay " << c.decay << " step " << c.step;
    EXPECT_NEAR(scheduledLearningRate(c.step, lr, minLr, c.warmup, c.decay),
                c.expected, 1e-15);
  }
}

TEST(Executor, GlobalNormClippingAndScalarKernels) {
  ProgramDef p;
  int g1 = p.arg("param", "g1", {2});
  int g2 = p.arg("param", "g2", {1, 1});
  int norm = p.arena("norm", {});
  int coef = p.arena("coef", {});
  int coefNoClip = p.arena("coef_noclip", {});
  int scaled = p.arena("scaled", {2});
  int clipped = p.arena("clipped", {2});
  int filled = p.arena("filled", {3});
  p.instr("global_norm", {g1, g2}, {norm});
  p.instr("clip_coef", {norm}, {coef}, {R("max_norm", 1.0)});
  p.instr("clip_coef", {norm}, {coefNoClip}, {R("max_norm", 100.0)});
  p.instr("scale", {g1, coef}, {scaled});
  p.instr("clip_by_value", {g1}, {clipped}, {R("limit", 3.5)});
  p.instr("constant", {}, {filled}, {R("value", 2.5)});
  p.result("grad_norm", norm);
  auto r = prepare(p);
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  f32(e, g1)[0] = 3.0f;
  f32(e, g1)[1] = -4.0f;
  f32(e, g2)[0] = 12.0f;
  ASSERT_TRUE(runOk(e));
  EXPECT_FLOAT_EQ(e.scalarResult("grad_norm"), 13.0f); // sqrt(9 + 16 + 144)
  const double c = 1.0 / (13.0 + 1e-6);
  EXPECT_FLOAT_EQ(*f32(e, coef), static_cast<float>(c));
  EXPECT_FLOAT_EQ(*f32(e, coefNoClip), 1.0f);
  EXPECT_FLOAT_EQ(f32(e, scaled)[0], static_cast<float>(3.0 * c));
  EXPECT_FLOAT_EQ(f32(e, scaled)[1], static_cast<float>(-4.0 * c));
  EXPECT_EQ(f32(e, clipped)[0], 3.0f);
  EXPECT_EQ(f32(e, clipped)[1], -3.5f);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(f32(e, filled)[i], 2.5f);
}

TEST(Executor, MemoryLayoutAndLookups) {
  ProgramDef p;
  int w = p.arg("param", "model.norm.weight", {8});
  p.arg("adam_m", "model.norm.weight", {8});
  p.arg("step", "", {}, DType::I64);
  int a = p.arena("a", {});
  int b = p.arena("b", {5});
  p.instr("add", {w, w}, {p.arena("c", {8})});
  p.result("lr", a);
  auto r = prepare(p);
  ASSERT_TRUE(r);
  Executor &e = r->exec;
  EXPECT_EQ(e.numArguments(), 3);
  EXPECT_EQ(e.findArgument("param", "model.norm.weight"), 0);
  EXPECT_EQ(e.findArgument("adam_m", "model.norm.weight"), 1);
  EXPECT_EQ(e.findArgument("step"), 2);
  EXPECT_EQ(e.findArgument("adam_v", "model.norm.weight"), -1);
  EXPECT_EQ(e.argument("tokens"), nullptr);
  EXPECT_EQ(e.argumentBytes(0), 32);
  EXPECT_EQ(e.argumentBytes(2), 8);
  EXPECT_EQ(e.argumentBytesTotal(), 72);
  // Buffers are 64-byte aligned and zeroed.
  for (int i = 0; i < e.numArguments(); ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(e.argument(i)) % 64, 0u);
    for (int64_t j = 0; j < e.argumentBytes(i); ++j)
      EXPECT_EQ(static_cast<const char *>(e.argument(i))[j], 0);
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(e.tensorData(a)) % 64, 0u);
  EXPECT_EQ(static_cast<char *>(e.tensorData(b)) -
                static_cast<char *>(e.tensorData(a)),
            64);
  EXPECT_EQ(e.tensorData(w), e.argument(0));
  EXPECT_EQ(e.findResult("lr"), 0);
  EXPECT_EQ(e.findResult("loss"), -1);
  EXPECT_TRUE(std::isnan(e.scalarResult("loss")));
  EXPECT_EQ(e.scalarResult("lr"), 0.0f);
}

TEST(Executor, RerunsAreBitIdentical) {
  ProgramDef p;
  int x = p.arg("param", "x", {4, 16});
  int w = p.arg("param", "w", {16, 16});
  int y = p.arena("y", {4, 16});
  int n = p.arena("n", {});
  p.instr("linear", {x, w}, {y});
  p.instr("global_norm", {y, x}, {n});
  auto r = prepare(p);
  ASSERT_TRUE(r);
  fillWave(f32(r->exec, x), 64, 0.5);
  fillWave(f32(r->exec, w), 256, 0.25);
  ASSERT_TRUE(runOk(r->exec));
  std::vector<float> first = copyOf(f32(r->exec, y), 64);
  float norm = *f32(r->exec, n);
  ASSERT_TRUE(runOk(r->exec));
  EXPECT_EQ(copyOf(f32(r->exec, y), 64), first);
  EXPECT_EQ(*f32(r->exec, n), norm);
}

namespace {

/// A communicator of `size` ranks that records each all_reduce and acts as
/// if every rank held the same values: sum multiplies by `size`, max and
/// min keep them (gathers repeat them). failWith != "" makes the call fail.
class RecordingComm final : public comm::Comm {
public:
  explicit RecordingComm(int size, bool withGrid = true) : size_(size) {
    if (withGrid)
      grid_ = comm::Grid{1, size, 1};
  }
  struct Call {
    void *data;
    int64_t count;
    comm::DType dtype;
    comm::Reduction reduction;
    std::vector<int> axes;
  };
  std::vector<Call> calls;
  std::string failWith;

  int rank() const override { return 0; }
  int size() const override { return size_; }
  const char *name() const override { return "recording"; }
  bool setGrid(const comm::Grid &grid, std::string &) override {
    grid_ = grid;
    return true;
  }
  bool allReduce(void *data, int64_t count, comm::DType dtype,
                 comm::Reduction reduction, const std::vector<int> &axes,
                 std::string &error) override {
    calls.push_back({data, count, dtype, reduction, axes});
    if (!failWith.empty()) {
      error = failWith;
      return false;
    }
    if (reduction == comm::Reduction::Sum)
      for (int64_t i = 0; i < count; ++i)
        static_cast<float *>(data)[i] *= static_cast<float>(size_);
    return true;
  }
  bool allGather(const void *send, void *recv, int64_t count, comm::DType,
                 const std::vector<int> &axes, std::string &error) override {
    comm::AxisMask mask;
    if (!comm::ascendingGridAxesMask(axes, mask, error))
      return false;
    for (int m = 0; m < grid_.groupSize(mask); ++m)
      std::memcpy(static_cast<float *>(recv) + m * count, send, count * 4);
    return true;
  }
  bool reduceScatter(const void *send, void *recv, int64_t count, comm::DType,
                     comm::Reduction, const std::vector<int> &,
                     std::string &) override {
    std::memcpy(recv, send, count * 4);
    return true;
  }
  bool barrier(std::string &) override { return true; }
  bool broadcast(void *, int64_t, int, std::string &) override { return true; }
  bool agreeOnFailure(bool failed, std::string &) override { return failed; }
  [[noreturn]] void abort(const std::string &, int code) override {
    std::exit(code);
  }

private:
  int size_;
};

} // namespace

TEST(Executor, AllReduceOnOneRankKeepsOrCopiesTheValues) {
  ProgramDef p;
  int x = p.arena("x", {3, 4});
  int y = p.arena("y", {12});
  p.instr("all_reduce", {x}, {x}, {L("grid_axes", {1}), S("reduction", "sum")});
  p.instr("all_reduce", {x}, {y},
          {L("grid_axes", {1, 2}), S("reduction", "max")});
  auto r = prepare(p);
  ASSERT_TRUE(r);
  fillWave(f32(r->exec, x), 12, 0.3);
  std::vector<float> before = copyOf(f32(r->exec, x), 12);
  ASSERT_TRUE(runOk(r->exec));
  EXPECT_EQ(copyOf(f32(r->exec, x), 12), before);
  EXPECT_EQ(copyOf(f32(r->exec, y), 12), before);
}

TEST(Executor, AllReduceGoesToTheCommunicator) {
  ProgramDef p;
  int g = p.arena("g", {2, 5});
  int loss = p.arena("loss", {});
  int total = p.arena("total", {});
  p.instr("all_reduce", {g}, {g}, {L("grid_axes", {1}), S("reduction", "sum")});
  p.instr("all_reduce", {loss}, {total},
          {L("grid_axes", {2, 1}), S("reduction", "min")});
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(singleProgram(p), plan, error)) << error;
  RecordingComm comm(4);
  Executor e;
  ASSERT_TRUE(e.init(plan.program(0), &comm, error)) << error;
  fillWave(f32(e, g), 10, 0.1);
  *f32(e, loss) = 2.5f;
  std::vector<float> g0 = copyOf(f32(e, g), 10);
  ASSERT_TRUE(e.run(error)) << error;

  ASSERT_EQ(comm.calls.size(), 2u);
  EXPECT_EQ(comm.calls[0].data, e.tensorData(g));
  EXPECT_EQ(comm.calls[0].count, 10);
  EXPECT_EQ(comm.calls[0].dtype, comm::DType::F32);
  EXPECT_EQ(comm.calls[0].reduction, comm::Reduction::Sum);
  EXPECT_EQ(comm.calls[0].axes, (std::vector<int>{1}));
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(f32(e, g)[i], 4.0f * g0[i]);
  // Into a fresh buffer: the input is copied there and reduced in place.
  EXPECT_EQ(comm.calls[1].data, e.tensorData(total));
  EXPECT_EQ(comm.calls[1].count, 1);
  EXPECT_EQ(comm.calls[1].reduction, comm::Reduction::Min);
  EXPECT_EQ(comm.calls[1].axes, (std::vector<int>{2, 1}));
  EXPECT_EQ(*f32(e, total), 2.5f);
  EXPECT_EQ(*f32(e, loss), 2.5f);

  comm.failWith = "MPI_Allreduce failed: link down";
  EXPECT_FALSE(e.run(error));
  EXPECT_EQ(error, "instr 0 'all_reduce' (test): MPI_Allreduce failed: link "
                   "down");
}

TEST(Executor, AllReduceNeedsACommunicatorWithAGrid) {
  ProgramDef p;
  int g = p.arena("g", {4});
  p.instr("all_reduce", {g}, {g}, {L("grid_axes", {1}), S("reduction", "sum")});
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(singleProgram(p), plan, error)) << error;
  RecordingComm noGrid(2, /*withGrid=*/false);
  Executor e;
  EXPECT_FALSE(e.init(plan.program(0), &noGrid, error));
  EXPECT_EQ(error, "instr 0 'all_reduce' (test): the communicator (recording, "
                   "2 ranks) has no device grid");
}

//===----------------------------------------------------------------------===//
// Tensor parallelism
//===----------------------------------------------------------------------===//

namespace {

/// The same program for each of `tp` tensor-parallel ranks (grid
/// [1, 1, tp]), loaded; rank `rank`'s executor on a SimulatedComm.
struct TensorParallel {
  LoadedPlan plan;
  SimulatedComm comm;
  Executor exec;
  TensorParallel(int tp, int rank) : comm(comm::Grid{1, 1, tp}, rank) {}
};

std::unique_ptr<TensorParallel> tensorParallel(const ProgramDef &program,
                                               int tp, int rank) {
  PlanDef def;
  def.tp = tp;
  for (int r = 0; r < tp; ++r) {
    def.programs.push_back(program);
    def.programs.back().rank = r;
  }
  auto t = std::make_unique<TensorParallel>(tp, rank);
  std::string error;
  if (!loadDef(def, t->plan, error) ||
      !t->exec.init(t->plan.program(rank), &t->comm, error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  return t;
}

/// Small integers, exact in float through the simulated collectives.
void fillIndex(float *x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    x[i] = float(i);
}

} // namespace

TEST(Executor, GatherScatterAndSliceOnOneRankAreCopies) {
  // With one rank in every group the blocks are the whole tensor.
  ProgramDef p;
  int x = p.arena("x", {2, 4, 3});
  int y = p.arena("y", {2, 4, 3});
  int z = p.arena("z", {2, 4, 3});
  int w = p.arena("w", {2, 4, 3});
  p.instr("all_gather", {x}, {y}, {L("grid_axes", {2}), I("dim", 1)});
  p.instr("reduce_scatter", {x}, {z},
          {L("grid_axes", {2}), I("dim", 1), S("reduction", "sum")});
  p.instr("all_slice", {x}, {w}, {L("grid_axes", {1, 2}), I("dim", 1)});
  auto r = prepare(p);
  ASSERT_TRUE(r);
  fillWave(f32(r->exec, x), 24, 0.2);
  ASSERT_TRUE(runOk(r->exec));
  std::vector<float> expected = copyOf(f32(r->exec, x), 24);
  EXPECT_EQ(copyOf(f32(r->exec, y), 24), expected);
  EXPECT_EQ(copyOf(f32(r->exec, z), 24), expected);
  EXPECT_EQ(copyOf(f32(r->exec, w), 24), expected);
}

TEST(Executor, GatherScatterAndSliceAlongAnInnerDimension) {
  // [2, 4, 3] blocks along dim 1 (strided: packed through the scratch
  // buffer) and dim 0 (contiguous: straight into the output), on each rank
  // of tp = 2. Member m of a group holds x + 1000 (m - me) (SimulatedComm).
  ProgramDef p;
  int x = p.arena("x", {2, 4, 3});
  int gathered = p.arena("gathered", {2, 8, 3});
  int gathered0 = p.arena("gathered0", {4, 4, 3});
  int x2 = p.arena("x2", {2, 8, 3});
  int scattered = p.arena("scattered", {2, 4, 3});
  int scattered0 = p.arena("scattered0", {1, 8, 3});
  int sliced = p.arena("sliced", {2, 4, 3});
  const std::vector<AttrDef> tp1 = {L("grid_axes", {2}), I("dim", 1)};
  p.instr("all_gather", {x}, {gathered}, tp1);
  p.instr("all_gather", {x}, {gathered0}, {L("grid_axes", {2}), I("dim", 0)});
  p.instr("reduce_scatter", {x2}, {scattered},
          {L("grid_axes", {2}), I("dim", 1), S("reduction", "sum")});
  p.instr("reduce_scatter", {x2}, {scattered0},
          {L("grid_axes", {2}), I("dim", 0), S("reduction", "sum")});
  p.instr("all_slice", {x2}, {sliced}, tp1);
  for (int me = 0; me < 2; ++me) {
    auto t = tensorParallel(p, 2, me);
    ASSERT_TRUE(t);
    Executor &e = t->exec;
    fillIndex(f32(e, x), 24);
    fillIndex(f32(e, x2), 48);
    ASSERT_TRUE(runOk(e));
    const float *X = f32(e, x), *X2 = f32(e, x2);
    auto xAt = [&](int o, int i, int k) { return X[(o * 4 + i) * 3 + k]; };
    auto x2At = [&](int o, int j, int k) { return X2[(o * 8 + j) * 3 + k]; };
    const float peer = SimulatedComm::kPeerOffset;
    for (int o = 0; o < 2; ++o)
      for (int k = 0; k < 3; ++k) {
        for (int b = 0; b < 2; ++b)
          for (int i = 0; i < 4; ++i) {
            // Member b's block at [:, 4b : 4b + 4, :] and [2b : 2b + 2].
            const float from_b = xAt(o, i, k) + peer * float(b - me);
            EXPECT_EQ(f32(e, gathered)[(o * 8 + b * 4 + i) * 3 + k], from_b);
            EXPECT_EQ(f32(e, gathered0)[((b * 2 + o) * 4 + i) * 3 + k], from_b);
          }
        for (int i = 0; i < 4; ++i) {
          // This rank's block of the sum of both members' x2.
          const float mine = x2At(o, me * 4 + i, k);
          EXPECT_EQ(f32(e, scattered)[(o * 4 + i) * 3 + k],
                    2.0f * mine + peer * float(1 - 2 * me));
          EXPECT_EQ(f32(e, sliced)[(o * 4 + i) * 3 + k], mine);
        }
      }
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 3; ++k)
        EXPECT_EQ(f32(e, scattered0)[j * 3 + k],
                  2.0f * x2At(me, j, k) + peer * float(1 - 2 * me));
    // The blocks travel as contiguous buffers of one block each.
    EXPECT_EQ(t->comm.calls,
              (std::vector<std::string>{
                  "all_gather 24 [2]", "all_gather 24 [2]",
                  "reduce_scatter 24 [2]", "reduce_scatter 24 [2]"}));
  }
}

TEST(Executor, BlockShapesMustFitTheCommunicatorsGroups) {
  ProgramDef p;
  int x = p.arena("x", {2, 4, 3});
  int y = p.arena("y", {2, 8, 3});
  p.instr("all_gather", {x}, {y}, {L("grid_axes", {2}), I("dim", 1)});
  PlanDef def;
  def.tp = 2;
  for (int r = 0; r < 2; ++r) {
    def.programs.push_back(p);
    def.programs.back().rank = r;
  }
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  // A plan for tp = 2 on a communicator whose tp groups have 4 ranks.
  SimulatedComm four(comm::Grid{1, 1, 4}, 1);
  Executor e;
  EXPECT_FALSE(e.init(plan.program(1), &four, error));
  EXPECT_EQ(error, "instr 0 'all_gather' (test): dim 1 is 8 for 4 per rank, "
                   "but the group over these grid axes has 4 ranks on the "
                   "communicator's grid dp=1 tp=4 pp=1");
  RecordingComm noGrid(2, /*withGrid=*/false);
  EXPECT_FALSE(e.init(plan.program(1), &noGrid, error));
  EXPECT_EQ(error, "instr 0 'all_gather' (test): the communicator (recording, "
                   "2 ranks) has no device grid");
}

TEST(Executor, VocabShardKernelsMatchDirectKernelCalls) {
  // Rank `me` of tp = 2 holds vocabulary rows / columns [5 me, 5 me + 5) of
  // a vocabulary of 10: the executor passes that offset, the shapes and
  // the normalizer to the kernels.
  const int64_t rows = 6, vl = 5, d = 3;
  ProgramDef p;
  int logits = p.arena("logits", {2, 3, vl});
  int targets = p.arg("targets", "", {2, 3}, DType::I32);
  int table = p.arena("table", {vl, d});
  int dy = p.arena("dy", {2, 3, d});
  int mx = p.arena("mx", {2, 3});
  int se = p.arena("se", {6});
  int tl = p.arena("tl", {2, 3});
  int tlWhole = p.arena("tl_whole", {2, 3});
  int loss = p.arena("loss", {});
  int dloss = p.arena("dloss", {});
  int dlogits = p.arena("dlogits", {2, 3, vl});
  int emb = p.arena("emb", {2, 3, d});
  int dtable = p.arena("dtable", {vl, d});
  int ss = p.arena("ss", {});
  int norm = p.arena("norm", {});
  int gnorm = p.arena("gnorm", {});
  const std::vector<AttrDef> shard = {L("shard_axes", {2})};
  p.instr("row_max", {logits}, {mx});
  p.instr("row_sum_exp", {logits, mx}, {se});
  p.instr("target_logit", {logits, targets}, {tl}, shard);
  p.instr("target_logit", {logits, targets}, {tlWhole});
  p.instr("cross_entropy_from_stats", {mx, se, tl}, {loss},
          {I("normalizer", 12)});
  p.instr("constant", {}, {dloss}, {R("value", 0.5)});
  p.instr("cross_entropy_grad_from_stats", {dloss, logits, targets, mx, se},
          {dlogits}, {I("normalizer", 12), L("shard_axes", {2})});
  p.instr("embedding", {table, targets}, {emb}, shard);
  p.instr("embedding_grad", {dy, targets}, {dtable}, shard);
  p.instr("sum_squares", {logits, dy}, {ss});
  p.instr("sqrt", {ss}, {norm});
  p.instr("sqrt", {norm}, {norm}); // in place
  p.instr("global_norm", {logits, dy}, {gnorm});
  for (int me = 0; me < 2; ++me) {
    auto t = tensorParallel(p, 2, me);
    ASSERT_TRUE(t);
    Executor &e = t->exec;
    fillWave(f32(e, logits), rows * vl, 0.3 + me, 4.0);
    fillWave(f32(e, table), vl * d, 1.1);
    fillWave(f32(e, dy), rows * d, 2.3);
    auto *ids = static_cast<int32_t *>(e.argument("targets"));
    const std::vector<int32_t> t0 = {0, 9, 4, 5, 7, 2};
    std::copy(t0.begin(), t0.end(), ids);
    ASSERT_TRUE(runOk(e));

    const int64_t begin = me * vl;
    const float *L = f32(e, logits);
    std::vector<float> m(rows), s(rows), tv(rows), tw(rows), dl(rows * vl),
        em(rows * d), dt(vl * d);
    kernels::rowMaxes(L, m.data(), rows, vl);
    kernels::rowSumExp(L, m.data(), s.data(), rows, vl);
    kernels::targetLogits(L, ids, tv.data(), rows, vl, begin);
    kernels::targetLogits(L, ids, tw.data(), rows, vl, 0);
    kernels::crossEntropyBwdFromStats(L, ids, m.data(), s.data(), dl.data(),
                                      rows, vl, begin, 1.0 / 12.0, 0.5);
    kernels::embeddingShardFwd(f32(e, table), ids, em.data(), rows, d, vl,
                               begin);
    kernels::embeddingShardBwd(f32(e, dy), ids, dt.data(), rows, d, vl, begin);
    EXPECT_EQ(copyOf(f32(e, mx), rows), m);
    EXPECT_EQ(copyOf(f32(e, se), rows), s);
    EXPECT_EQ(copyOf(f32(e, tl), rows), tv);
    EXPECT_EQ(copyOf(f32(e, tlWhole), rows), tw);
    EXPECT_EQ(*f32(e, loss),
              float(kernels::crossEntropyFromStats(
                  m.data(), s.data(), tv.data(), rows, 1.0 / 12.0)));
    EXPECT_EQ(copyOf(f32(e, dlogits), rows * vl), dl);
    EXPECT_EQ(copyOf(f32(e, emb), rows * d), em);
    EXPECT_EQ(copyOf(f32(e, dtable), vl * d), dt);
    // Rank 1's targets select its own columns, not those of offset 0.
    if (me == 1) {
      EXPECT_NE(tv, tw);
    }
    // sum_squares in double over both operands; sqrt of it; global_norm.
    double ref = 0.0;
    for (int64_t i = 0; i < rows * vl; ++i)
      ref += double(L[i]) * L[i];
    for (int64_t i = 0; i < rows * d; ++i)
      ref += double(f32(e, dy)[i]) * f32(e, dy)[i];
    EXPECT_NEAR(*f32(e, ss), ref, 1e-6 * ref);
    EXPECT_NEAR(*f32(e, gnorm), std::sqrt(ref), 1e-6 * std::sqrt(ref));
    EXPECT_NEAR(*f32(e, norm), std::sqrt(std::sqrt(ref)),
                1e-6 * std::sqrt(std::sqrt(ref)));
  }
}

TEST(Executor, TransfersNeedPointToPointCommunication) {
  // Stage 0 of a two-stage plan sends; a single rank, or a communicator
  // without point-to-point transfers, cannot run it (MpiPipelineTest.cpp
  // runs it under mpirun).
  PlanDef def;
  def.pp = 2;
  for (int s = 0; s < 2; ++s) {
    ProgramDef p;
    p.rank = p.stage = s;
    int x = p.arena("x", {2, 4});
    if (s == 0)
      p.instr("send", {x}, {}, {I("peer", 1), I("tag", 0)});
    else
      p.instr("recv", {}, {x}, {I("peer", 0), I("tag", 0)});
    def.programs.push_back(p);
  }
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  Executor alone;
  EXPECT_FALSE(alone.init(plan.program(0), error));
  EXPECT_EQ(error, "instr 0 'send' (test): the communicator (local, 1 ranks) "
                   "has no point-to-point transfers between pipeline stages "
                   "(a pipeline plan runs under mpirun)");
  SimulatedComm simulated(comm::Grid{2, 1, 1}, 1);
  Executor stage1;
  EXPECT_FALSE(stage1.init(plan.program(1), &simulated, error));
  EXPECT_EQ(error, "instr 0 'recv' (test): the communicator (simulated, 2 "
                   "ranks) has no point-to-point transfers between pipeline "
                   "stages (a pipeline plan runs under mpirun)");
}
