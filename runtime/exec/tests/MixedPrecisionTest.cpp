//===- MixedPrecisionTest.cpp - 16-bit tensors, cast, all_finite ----------===//
//
// The executor's low-precision storage (bf16 / f16 operands of any compute
// kernel or collective, computed in f32), the `cast` and `all_finite`
// kernels, AdamW's `apply` flag, and the loader's checks of them and of the
// loss-scaling roles. References: the f32 kernels called directly on the
// rounded inputs (llamac::kernels), rounded with the scalar conversions of
// support/Float16.h: the executor's result must be bit-identical.
//
//===----------------------------------------------------------------------===//
#include "exec/Executor.h"
#include "exec/tests/PlanTestUtil.h"
#include "exec/tests/SimulatedComm.h"
#include "llamac/runtime/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
namespace k = llamac::kernels;

namespace {

struct Prepared {
  LoadedPlan plan;
  Executor exec;
};

std::unique_ptr<Prepared> prepare(const ProgramDef &program) {
  auto p = std::make_unique<Prepared>();
  std::string error;
  if (!loadDef(singleProgram(program), p->plan, error) ||
      !p->exec.init(p->plan.program(0), error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  return p;
}

std::string loadError(const ProgramDef &program) {
  LoadedPlan plan;
  std::string error;
  if (loadDef(singleProgram(program), plan, error))
    return "";
  return error;
}

#define EXPECT_CONTAINS(text, substring)                                       \
  do {                                                                         \
    std::string text_ = (text);                                                \
    EXPECT_NE(text_.find(substring), std::string::npos)                        \
        << "'" << text_ << "' lacks '" << (substring) << "'";                  \
  } while (0)

bool runOk(Executor &exec) {
  std::string error;
  bool ok = exec.run(error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

template <typename T> T *data(Executor &exec, int tensor) {
  return static_cast<T *>(exec.tensorData(tensor));
}

/// Deterministic, irregular values in [-amp, amp] with full float
/// mantissas (so that every rounding to 16 bits loses something).
std::vector<float> wave(int64_t n, double phase, double amp = 1.0) {
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i)
    x[i] = static_cast<float>(amp * std::sin(0.7 * i + phase) +
                              amp * 1e-3 * std::cos(3.1 * i));
  return x;
}

std::vector<float> roundedBf16(std::vector<float> x) {
  for (float &v : x)
    v = bf16ToFloat(floatToBf16(v));
  return x;
}

std::vector<float> roundedF16(std::vector<float> x) {
  for (float &v : x)
    v = halfToFloat(floatToHalf(v));
  return x;
}

std::vector<uint16_t> bf16Bits(const std::vector<float> &x) {
  std::vector<uint16_t> h;
  for (float v : x)
    h.push_back(floatToBf16(v));
  return h;
}

std::vector<uint16_t> f16Bits(const std::vector<float> &x) {
  std::vector<uint16_t> h;
  for (float v : x)
    h.push_back(floatToHalf(v));
  return h;
}

std::vector<uint16_t> bits16(Executor &exec, int tensor, int64_t n) {
  const uint16_t *p = data<uint16_t>(exec, tensor);
  return std::vector<uint16_t>(p, p + n);
}

void put(Executor &exec, int tensor, const std::vector<float> &x) {
  std::memcpy(exec.tensorData(tensor), x.data(), x.size() * sizeof(float));
}

uint32_t floatBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

} // namespace

//===----------------------------------------------------------------------===//
// Compute kernels on bf16 and f16 operands
//===----------------------------------------------------------------------===//

TEST(MixedPrecision, KernelsOn16BitOperandsEqualF32OnRoundedValues) {
  // x, w cast to bf16; linear in bf16; add of a bf16 and an f32 operand into
  // f16; rms_norm of f16 activations with an f16 weight into bf16; an add in
  // place over both of its (identical) bf16 inputs; cast back to f32.
  const int64_t M = 6, K = 8, N = 5;
  ProgramDef p;
  int x = p.arg("param", "x", {2, 3, K});
  int w = p.arg("param", "w", {N, K});
  int nw = p.arg("param", "nw", {N});
  int b = p.arg("param", "b", {2, 3, N});
  int xb = p.arena("xb", {2, 3, K}, DType::BF16);
  int wb = p.arena("wb", {N, K}, DType::BF16);
  int nwh = p.arena("nwh", {N}, DType::F16);
  int y = p.arena("y", {2, 3, N}, DType::BF16);
  int z = p.arena("z", {2, 3, N}, DType::F16);
  int r = p.arena("r", {2, 3, N}, DType::BF16);
  int out = p.arena("out", {2, 3, N});
  p.instr("cast", {x}, {xb});
  p.instr("cast", {w}, {wb});
  p.instr("cast", {nw}, {nwh});
  p.instr("linear", {xb, wb}, {y});
  p.instr("add", {y, b}, {z});
  p.instr("rms_norm", {z, nwh}, {r}, {R("eps", 1e-5)});
  p.instr("add", {r, r}, {r});
  p.instr("cast", {r}, {out});
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  const std::vector<float> X = wave(M * K, 0.1), W = wave(N * K, 1.3, 0.7),
                           NW = wave(N, 2.0, 1.5), B = wave(M * N, 0.4, 3.0);
  put(e, x, X);
  put(e, w, W);
  put(e, nw, NW);
  put(e, b, B);
  ASSERT_TRUE(runOk(e));

  // The reference: f32 kernels on the rounded inputs, rounded outputs.
  std::vector<float> Y(M * N), Z(M * N), Rr(M * N), Out(M * N);
  const std::vector<float> Xr = roundedBf16(X), Wr = roundedBf16(W);
  k::linearFwd<float>(Xr.data(), Wr.data(), Y.data(), M, N, K);
  EXPECT_EQ(bits16(e, y, M * N), bf16Bits(Y)) << "linear";
  Y = roundedBf16(Y);
  k::add<float>(Y.data(), B.data(), Z.data(), M * N);
  EXPECT_EQ(bits16(e, z, M * N), f16Bits(Z)) << "add bf16 + f32 -> f16";
  Z = roundedF16(Z);
  const std::vector<float> NWr = roundedF16(NW);
  k::rmsNormFwd<float>(Z.data(), NWr.data(), Rr.data(), M, N, 1e-5f);
  Rr = roundedBf16(Rr);
  k::add<float>(Rr.data(), Rr.data(), Out.data(), M * N);
  EXPECT_EQ(bits16(e, r, M * N), bf16Bits(Out)) << "rms_norm, add in place";
  Out = roundedBf16(Out);
  for (int64_t i = 0; i < M * N; ++i)
    EXPECT_EQ(floatBits(data<float>(e, out)[i]), floatBits(Out[i])) << i;
  // Rounding happened: the f32 path would differ.
  std::vector<float> exact(M * N);
  k::linearFwd<float>(X.data(), W.data(), exact.data(), M, N, K);
  EXPECT_NE(bf16Bits(exact), bf16Bits(roundedBf16(Y))) << "inputs rounded";
}

TEST(MixedPrecision, BackwardKernelsAndLossOn16BitOperands) {
  // cross_entropy of bf16 logits into an f32 loss, its gradient (from a
  // bf16 dloss) into f16, linear_grad_weight of f16 x bf16 into f32,
  // swiglu_grad of f16 dy and gate and an f32 up into bf16 and f32.
  const int64_t M = 4, K = 6, V = 7;
  ProgramDef p;
  int logits = p.arena("logits", {M, V}, DType::BF16);
  int targets = p.arg("targets", "", {M}, DType::I32);
  int xs = p.arena("x", {M, K}, DType::BF16);
  int loss = p.arena("loss", {});
  int dloss = p.arena("dloss", {}, DType::BF16);
  int dlogits = p.arena("dlogits", {M, V}, DType::F16);
  int dw = p.arena("dw", {V, K});
  int g2 = p.arena("g2", {M, V}, DType::F16);
  int u2 = p.arena("u2", {M, V});
  int dg2 = p.arena("dg2", {M, V}, DType::BF16);
  int du2 = p.arena("du2", {M, V});
  p.instr("cross_entropy", {logits, targets}, {loss}, {I("normalizer", 4)});
  p.instr("constant", {}, {dloss}, {R("value", 3.3)});
  p.instr("cross_entropy_grad", {dloss, logits, targets}, {dlogits},
          {I("normalizer", 4)});
  p.instr("linear_grad_weight", {dlogits, xs}, {dw});
  p.instr("swiglu_grad", {dlogits, g2, u2}, {dg2, du2});
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  const std::vector<float> L = wave(M * V, 0.2, 4.0), X = wave(M * K, 1.1),
                           G2 = wave(M * V, 0.5, 2.0), U2 = wave(M * V, 0.9);
  std::vector<uint16_t> Lb = bf16Bits(L), Xb = bf16Bits(X), G2h = f16Bits(G2);
  std::memcpy(e.tensorData(logits), Lb.data(), Lb.size() * 2);
  std::memcpy(e.tensorData(xs), Xb.data(), Xb.size() * 2);
  std::memcpy(e.tensorData(g2), G2h.data(), G2h.size() * 2);
  put(e, u2, U2);
  auto *t = data<int32_t>(e, targets);
  for (int i = 0; i < M; ++i)
    t[i] = (3 * i + 2) % V;
  ASSERT_TRUE(runOk(e));

  const std::vector<float> Lr = roundedBf16(L), Xr = roundedBf16(X),
                           G2r = roundedF16(G2);
  const float lossRef =
      static_cast<float>(k::crossEntropyFwd<float>(Lr.data(), t, M, V, 0.25));
  EXPECT_EQ(floatBits(*data<float>(e, loss)), floatBits(lossRef));
  const float dl = bf16ToFloat(floatToBf16(3.3f));
  EXPECT_EQ(*data<uint16_t>(e, dloss), floatToBf16(3.3f));
  std::vector<float> DL(M * V);
  k::crossEntropyBwd<float>(Lr.data(), t, DL.data(), M, V, 0.25, dl);
  EXPECT_EQ(bits16(e, dlogits, M * V), f16Bits(DL));
  DL = roundedF16(DL);
  std::vector<float> DW(V * K);
  k::linearBwdWeight<float>(DL.data(), Xr.data(), DW.data(), M, V, K);
  for (int64_t i = 0; i < V * K; ++i)
    EXPECT_EQ(floatBits(data<float>(e, dw)[i]), floatBits(DW[i])) << i;
  std::vector<float> DG(M * V), DU(M * V);
  k::swigluBwd<float>(DL.data(), G2r.data(), U2.data(), DG.data(), DU.data(),
                      M * V);
  EXPECT_EQ(bits16(e, dg2, M * V), bf16Bits(DG));
  for (int64_t i = 0; i < M * V; ++i)
    EXPECT_EQ(floatBits(data<float>(e, du2)[i]), floatBits(DU[i])) << i;
}

TEST(MixedPrecision, AttentionOnBf16KeepsAnF32Lse) {
  const int64_t B = 1, S = 4, H = 2, KV = 1, Dh = 4;
  ProgramDef p;
  int q = p.arena("q", {B, S, H, Dh}, DType::BF16);
  int kk = p.arena("k", {B, S, KV, Dh}, DType::BF16);
  int v = p.arena("v", {B, S, KV, Dh}, DType::F16);
  int out = p.arena("out", {B, S, H, Dh}, DType::BF16);
  int lse = p.arena("lse", {B, H, S});
  p.instr("attention", {q, kk, v}, {out, lse}, {R("scale", 0.5)});
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  const int64_t nq = B * S * H * Dh, nk = B * S * KV * Dh;
  const std::vector<float> Q = wave(nq, 0.3, 2.0), Kk = wave(nk, 1.7, 2.0),
                           Vv = wave(nk, 2.9);
  auto qb = bf16Bits(Q), kb = bf16Bits(Kk);
  auto vh = f16Bits(Vv);
  std::memcpy(e.tensorData(q), qb.data(), nq * 2);
  std::memcpy(e.tensorData(kk), kb.data(), nk * 2);
  std::memcpy(e.tensorData(v), vh.data(), nk * 2);
  ASSERT_TRUE(runOk(e));
  std::vector<float> O(nq), Lse(B * H * S);
  const auto Qr = roundedBf16(Q), Kr = roundedBf16(Kk), Vr = roundedF16(Vv);
  k::attentionFwd<float>(Qr.data(), Kr.data(), Vr.data(), O.data(), Lse.data(),
                         B, S, H, KV, Dh, 0.5f);
  EXPECT_EQ(bits16(e, out, nq), bf16Bits(O));
  for (int64_t i = 0; i < B * H * S; ++i)
    EXPECT_EQ(floatBits(data<float>(e, lse)[i]), floatBits(Lse[i])) << i;
}

TEST(MixedPrecision, ScratchIsReusedAcrossInstructions) {
  // Many bf16 instructions share one f32 scratch: a later instruction's
  // copies overwrite an earlier one's, which must not leak into results.
  const int64_t n = 37;
  ProgramDef p;
  int a = p.arena("a", {n}, DType::BF16);
  int b = p.arena("b", {n}, DType::F16);
  int c = p.arena("c", {n}, DType::BF16);
  int d = p.arena("d", {n}, DType::BF16);
  int s = p.arena("s", {}, DType::BF16);
  p.instr("add", {a, b}, {c});
  p.instr("constant", {}, {s}, {R("value", -0.3)});
  p.instr("scale", {c, s}, {c});
  p.instr("clip_by_value", {c}, {d}, {R("limit", 0.25)});
  p.instr("add", {d, a}, {d});
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  // The largest need is the first add's: three copies of 37 floats, each
  // rounded up to 64 bytes.
  EXPECT_EQ(e.scratchBytes(), 3 * 192);
  const auto A = wave(n, 0.0), Bv = wave(n, 0.8, 0.6);
  auto ab = bf16Bits(A);
  auto bh = f16Bits(Bv);
  std::memcpy(e.tensorData(a), ab.data(), n * 2);
  std::memcpy(e.tensorData(b), bh.data(), n * 2);
  for (int rep = 0; rep < 2; ++rep) { // Reruns give the same bits.
    ASSERT_TRUE(runOk(e));
    const auto Ar = roundedBf16(A), Br = roundedF16(Bv);
    std::vector<float> C(n), D(n);
    k::add<float>(Ar.data(), Br.data(), C.data(), n);
    C = roundedBf16(C);
    const float sv = bf16ToFloat(floatToBf16(-0.3f));
    k::scale<float>(C.data(), C.data(), n, sv);
    EXPECT_EQ(bits16(e, c, n), bf16Bits(C));
    C = roundedBf16(C);
    k::clipByValue<float>(C.data(), D.data(), n, 0.25);
    D = roundedBf16(D);
    k::add<float>(D.data(), Ar.data(), D.data(), n);
    EXPECT_EQ(bits16(e, d, n), bf16Bits(D));
  }
}

//===----------------------------------------------------------------------===//
// Collectives on 16-bit tensors: f32 reduction, one rounding
//===----------------------------------------------------------------------===//

TEST(MixedPrecision, CollectivesOnBf16ReduceInF32AndRoundOnce) {
  // Rank 1 of tp = 4 under SimulatedComm: member m holds x + 1000 (m - me).
  const int64_t n = 8;
  ProgramDef p;
  int x = p.arena("x", {n}, DType::BF16);
  int sum = p.arena("sum", {n}, DType::BF16);
  int gathered = p.arena("gathered", {4 * n}, DType::BF16);
  p.instr("all_reduce", {x}, {sum},
          {L("grid_axes", {2}), S("reduction", "sum")});
  p.instr("all_gather", {x}, {gathered}, {L("grid_axes", {2}), I("dim", 0)});
  p.instr("all_reduce", {x}, {x}, {L("grid_axes", {2}), S("reduction", "max")});
  PlanDef def;
  def.tp = 4;
  for (int r = 0; r < 4; ++r) {
    def.programs.push_back(p);
    def.programs.back().rank = r;
  }
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  SimulatedComm comm(comm::Grid{1, 1, 4}, 1);
  Executor e;
  ASSERT_TRUE(e.init(plan.program(1), &comm, error)) << error;
  const auto X = wave(n, 0.6, 3.0);
  auto xb = bf16Bits(X);
  std::memcpy(e.tensorData(x), xb.data(), n * 2);
  ASSERT_TRUE(e.run(error)) << error;

  // The same collectives on the widened values, in f32, then rounded.
  const auto Xr = roundedBf16(X);
  SimulatedComm ref(comm::Grid{1, 1, 4}, 1);
  std::vector<float> S = Xr, G(4 * n), Mx = Xr;
  ASSERT_TRUE(ref.allReduce(S.data(), n, comm::DType::F32, comm::Reduction::Sum,
                            {2}, error));
  ASSERT_TRUE(
      ref.allGather(Xr.data(), G.data(), n, comm::DType::F32, {2}, error));
  ASSERT_TRUE(ref.allReduce(Mx.data(), n, comm::DType::F32,
                            comm::Reduction::Max, {2}, error));
  EXPECT_EQ(bits16(e, sum, n), bf16Bits(S));
  EXPECT_EQ(bits16(e, gathered, 4 * n), bf16Bits(G));
  EXPECT_EQ(bits16(e, x, n), bf16Bits(Mx));
  // A sum of bf16 values rounded at every partial sum would differ.
  std::vector<float> perStep(n);
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (int m = 0; m < 4; ++m)
      acc = bf16ToFloat(floatToBf16(acc + Xr[i] + 1000.0f * float(m - 1)));
    perStep[i] = acc;
  }
  EXPECT_NE(bf16Bits(perStep), bf16Bits(S));
  EXPECT_EQ(comm.calls,
            (std::vector<std::string>{"all_reduce 8 [2]", "all_gather 8 [2]",
                                      "all_reduce 8 [2]"}));
}

//===----------------------------------------------------------------------===//
// cast
//===----------------------------------------------------------------------===//

namespace {

/// Floats that exercise every rounding corner: ties of both formats,
/// fp16 overflow and subnormals, bf16 overflow, signed zeros, inf, NaN.
std::vector<float> cornerFloats() {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           1.0f,
                           -2.5f,
                           65504.0f,
                           65519.0f,
                           65520.0f,
                           -70000.0f,
                           1e-8f,
                           -3e-6f,
                           6e-5f,
                           std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::denorm_min(),
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::nanf("")};
  const uint32_t ties[] = {0x3F808000u, 0x3F818000u, 0x3F808001u, 0x3F807FFFu,
                           0x3F801000u, 0x3F803000u, 0x3F800FFFu, 0xC7801000u};
  for (uint32_t u : ties) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    xs.push_back(f);
  }
  for (float v : wave(64, 0.3, 1e4))
    xs.push_back(v);
  return xs;
}

} // namespace

TEST(MixedPrecision, CastRoundTripsMatchThePrecisionKernels) {
  const std::vector<float> X = cornerFloats();
  const int64_t n = static_cast<int64_t>(X.size());
  ProgramDef p;
  int x = p.arg("param", "x", {n});
  int b = p.arena("b", {n}, DType::BF16);
  int h = p.arena("h", {n}, DType::F16);
  int backB = p.arena("back_b", {n});
  int backH = p.arena("back_h", {n});
  int hb = p.arena("h_to_b", {n}, DType::BF16);
  int bh = p.arena("b_to_h", {n}, DType::F16);
  int same = p.arena("same", {n}, DType::BF16);
  int wide = p.arena("wide", {n}, DType::F64);
  int fromWide = p.arena("from_wide", {n}, DType::F16);
  p.instr("cast", {x}, {b});
  p.instr("cast", {x}, {h});
  p.instr("cast", {b}, {backB});
  p.instr("cast", {h}, {backH});
  p.instr("cast", {h}, {hb});
  p.instr("cast", {b}, {bh});
  p.instr("cast", {b}, {same});
  p.instr("cast", {x}, {wide});
  p.instr("cast", {wide}, {fromWide});
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  put(e, x, X);
  ASSERT_TRUE(runOk(e));
  std::vector<float> rtB(n), rtH(n);
  k::roundTripBf16(X.data(), rtB.data(), n);
  k::roundTripF16(X.data(), rtH.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE("x = " + std::to_string(X[i]));
    EXPECT_EQ(floatBits(data<float>(e, backB)[i]), floatBits(rtB[i]));
    EXPECT_EQ(floatBits(data<float>(e, backH)[i]), floatBits(rtH[i]));
    EXPECT_EQ(data<uint16_t>(e, hb)[i],
              floatToBf16(halfToFloat(floatToHalf(X[i]))));
    EXPECT_EQ(data<uint16_t>(e, bh)[i],
              floatToHalf(bf16ToFloat(floatToBf16(X[i]))));
    EXPECT_EQ(data<uint16_t>(e, same)[i], data<uint16_t>(e, b)[i]);
    const double w = data<double>(e, wide)[i];
    EXPECT_TRUE(std::isnan(X[i]) ? std::isnan(w) : w == double(X[i]));
    EXPECT_EQ(data<uint16_t>(e, fromWide)[i], floatToHalf(X[i]))
        << "f32 -> f64 is exact, so f64 -> f16 rounds like f32 -> f16";
  }
  // The corners themselves: fp16 overflow to inf, NaN stays NaN.
  auto at = [&](float v) {
    for (int64_t i = 0; i < n; ++i)
      if (floatBits(X[i]) == floatBits(v))
        return data<float>(e, backH)[i];
    ADD_FAILURE() << v << " is not a corner";
    return 0.0f;
  };
  EXPECT_EQ(at(65519.0f), 65504.0f);
  EXPECT_EQ(at(65520.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(at(-70000.0f), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(at(std::numeric_limits<float>::max()),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(at(std::nanf(""))));
}

TEST(MixedPrecision, CastFromF64RoundsOnce) {
  // 1 + 2^-8 + 2^-40 lies just above the midpoint of the bf16 neighbours 1
  // and 1 + 2^-7: nearest is the upper one, but rounding to float first
  // lands exactly on the midpoint, whose tie goes to the even 1.
  const double d = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  const double dh = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  ProgramDef p;
  int wide = p.arena("wide", {4}, DType::F64);
  int b = p.arena("b", {4}, DType::BF16);
  int h = p.arena("h", {4}, DType::F16);
  int f = p.arena("f", {4});
  p.instr("cast", {wide}, {b});
  p.instr("cast", {wide}, {h});
  p.instr("cast", {wide}, {f});
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  double *W = data<double>(e, wide);
  W[0] = d;
  W[1] = dh;
  W[2] = 1e300;
  W[3] = -1e-300;
  ASSERT_TRUE(runOk(e));
  EXPECT_EQ(floatToBf16(static_cast<float>(d)), 0x3F80) << "double rounding";
  EXPECT_EQ(data<uint16_t>(e, b)[0], 0x3F81);
  EXPECT_EQ(data<uint16_t>(e, h)[1], 0x3C01);
  EXPECT_EQ(data<uint16_t>(e, b)[2], 0x7F80); // inf
  EXPECT_EQ(data<uint16_t>(e, h)[2], 0x7C00);
  EXPECT_EQ(data<uint16_t>(e, b)[3], 0x8000); // -0
  EXPECT_EQ(data<float>(e, f)[0], static_cast<float>(d));
}

//===----------------------------------------------------------------------===//
// all_finite
//===----------------------------------------------------------------------===//

TEST(MixedPrecision, AllFiniteOverEveryDtype) {
  ProgramDef p;
  int a = p.arena("a", {3, 5});
  int b = p.arena("b", {7}, DType::BF16);
  int h = p.arena("h", {2, 2}, DType::F16);
  int d = p.arena("d", {3}, DType::F64);
  int ok = p.arena("ok", {});
  int alone = p.arena("alone", {});
  p.instr("all_finite", {a, b, h, d}, {ok});
  p.instr("all_finite", {h}, {alone});
  p.result("all_finite", ok);
  auto prep = prepare(p);
  ASSERT_TRUE(prep);
  Executor &e = prep->exec;
  auto reset = [&] {
    put(e, a, wave(15, 0.1, 1e30)); // Large but finite.
    auto bb = bf16Bits(wave(7, 0.2, 3e38));
    std::memcpy(e.tensorData(b), bb.data(), 14);
    auto hh = f16Bits({65504.0f, -65504.0f, 6e-8f, 0.0f});
    std::memcpy(e.tensorData(h), hh.data(), 8);
    double *D = data<double>(e, d);
    D[0] = 1e300;
    D[1] = -1e-310;
    D[2] = 0.0;
  };
  reset();
  ASSERT_TRUE(runOk(e));
  EXPECT_EQ(*data<float>(e, ok), 1.0f);
  EXPECT_EQ(e.scalarResult("all_finite"), 1.0f);

  const float inf = std::numeric_limits<float>::infinity();
  for (int which = 0; which < 4; ++which) {
    for (float bad : {inf, -inf, std::nanf("")}) {
      SCOPED_TRACE("operand " + std::to_string(which) + " holds " +
                   std::to_string(bad));
      reset();
      switch (which) {
      case 0:
        data<float>(e, a)[14] = bad;
        break;
      case 1:
        data<uint16_t>(e, b)[3] = floatToBf16(bad);
        break;
      case 2:
        data<uint16_t>(e, h)[1] = floatToHalf(bad);
        break;
      case 3:
        data<double>(e, d)[2] = bad;
        break;
      }
      ASSERT_TRUE(runOk(e));
      EXPECT_EQ(*data<float>(e, ok), 0.0f);
      EXPECT_EQ(*data<float>(e, alone), which == 2 ? 0.0f : 1.0f);
    }
  }
}

//===----------------------------------------------------------------------===//
// adamw's apply flag
//===----------------------------------------------------------------------===//

TEST(MixedPrecision, AdamWApplyZeroSkipsOneEqualsNoFlag) {
  const int64_t n = 12;
  auto program = [](bool withApply) {
    ProgramDef p;
    int param = p.arg("param", "w", {3, 4});
    int grad = p.arg("param", "g", {3, 4});
    int m = p.arg("adam_m", "w", {3, 4});
    int v = p.arg("adam_v", "w", {3, 4});
    int step = p.arg("step", "", {}, DType::I64);
    int lr = p.arena("lr", {});
    p.instr("constant", {}, {lr}, {R("value", 1e-2)});
    std::vector<int> ins = {param, grad, m, v, lr, step};
    if (withApply)
      ins.push_back(p.arena("apply", {}));
    p.instr("adamw", ins, {param, m, v},
            {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
             R("weight_decay", 0.1)});
    return p;
  };
  auto fill = [&](Executor &e) {
    auto set = [&](const char *role, const char *name, std::vector<float> x) {
      std::memcpy(e.argument(role, name), x.data(), n * 4);
    };
    set("param", "w", wave(n, 0.0));
    set("param", "g", wave(n, 1.0, 0.5));
    set("adam_m", "w", wave(n, 2.0, 0.1));
    std::vector<float> v(n);
    for (int i = 0; i < n; ++i)
      v[i] = 0.01f * (1 + i);
    set("adam_v", "w", v);
    *static_cast<int64_t *>(e.argument("step")) = 3;
  };
  auto state = [&](Executor &e) {
    std::vector<float> s;
    for (const char *role : {"param", "adam_m", "adam_v"}) {
      const float *x = static_cast<const float *>(e.argument(role, "w"));
      s.insert(s.end(), x, x + n);
    }
    return s;
  };
  auto plain = prepare(program(false));
  auto flagged = prepare(program(true));
  ASSERT_TRUE(plain && flagged);
  const int apply = static_cast<int>(program(true).tensors.size()) - 1;
  fill(plain->exec);
  fill(flagged->exec);
  const std::vector<float> before = state(flagged->exec);

  // apply = 0: nothing moves, bit for bit (NaN-free comparison of bytes).
  *data<float>(flagged->exec, apply) = 0.0f;
  ASSERT_TRUE(runOk(flagged->exec));
  const std::vector<float> skipped = state(flagged->exec);
  EXPECT_EQ(std::memcmp(skipped.data(), before.data(), before.size() * 4), 0);

  // apply = 1: the same update as without the flag.
  *data<float>(flagged->exec, apply) = 1.0f;
  ASSERT_TRUE(runOk(flagged->exec));
  ASSERT_TRUE(runOk(plain->exec));
  const std::vector<float> a = state(flagged->exec), b = state(plain->exec);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  EXPECT_NE(std::memcmp(a.data(), before.data(), a.size() * 4), 0);
}

//===----------------------------------------------------------------------===//
// Loader checks
//===----------------------------------------------------------------------===//

TEST(MixedPrecision, LoaderDtypeRules) {
  auto base = [] {
    ProgramDef p;
    p.arena("a", {4}, DType::BF16); // 0
    p.arena("b", {4}, DType::F16);  // 1
    p.arena("c", {4});              // 2
    p.arena("d", {4}, DType::F64);  // 3
    p.arena("s", {});               // 4
    p.arena("i", {4}, DType::I32);  // 5
    return p;
  };
  ProgramDef p = base();
  p.instr("add", {0, 1}, {2});
  p.instr("cast", {3}, {0});
  p.instr("all_finite", {0, 1, 2, 3}, {4});
  EXPECT_EQ(loadError(p), "");

  p = base();
  p.instr("add", {0, 3}, {2});
  EXPECT_CONTAINS(loadError(p), "instr 0 'add' (test): input 1 tensor 3 'd' "
                                "(f64 [4]): expected dtype f32, bf16 or f16");
  p = base();
  p.instr("global_norm", {0}, {4});
  EXPECT_CONTAINS(loadError(p),
                  "input 0 tensor 0 'a' (bf16 [4]): expected dtype f32 "
                  "('global_norm' runs on f32 only");
  p = base();
  p.instr("sum_squares", {2, 1}, {4});
  EXPECT_CONTAINS(loadError(p), "expected dtype f32 ('sum_squares' runs on "
                                "f32 only");
  p = base();
  p.instr("clip_coef", {p.arena("n", {}, DType::BF16)}, {4},
          {R("max_norm", 1.0)});
  EXPECT_CONTAINS(loadError(p), "('clip_coef' runs on f32 only");
  p = base();
  p.instr("all_finite", {0}, {p.arena("o", {}, DType::BF16)});
  EXPECT_CONTAINS(loadError(p), "output 0 tensor 6 'o' (bf16 []): expected "
                                "dtype f32");
  p = base();
  p.instr("all_finite", {5}, {4});
  EXPECT_CONTAINS(loadError(p), "expected dtype f32, bf16, f16 or f64");
  p = base();
  p.instr("all_finite", {}, {4});
  EXPECT_CONTAINS(loadError(p), "has 0 inputs, expected at least 1");
  p = base();
  p.instr("cast", {2}, {p.arena("t", {2, 2}, DType::BF16)});
  EXPECT_CONTAINS(loadError(p), "'cast' (test): output 0 tensor 6 't' (bf16 "
                                "[2, 2]): expected the shape of input 0");
  p = base();
  p.instr("cast", {5}, {0});
  EXPECT_CONTAINS(loadError(p), "input 0 tensor 5 'i' (i32 [4]): expected "
                                "dtype f32, bf16, f16 or f64");
  p = base();
  p.instr("cast", {0}, {0});
  EXPECT_CONTAINS(loadError(p), "'cast' cannot work in place");
  // In place needs the same elements: f16 over the bytes of bf16 is not.
  p = base();
  p.instr("add", {0, 1}, {0});
  EXPECT_EQ(loadError(p), "");
  p.instrs.clear();
  int asF16 = p.view(0, {4});
  p.tensors[asF16].dtype = DType::F16;
  p.instr("add", {0, 1}, {asF16});
  EXPECT_CONTAINS(loadError(p), "output 0 tensor 6 'a' (f16 [4]) overlaps "
                                "input 0 tensor 0 'a' (bf16 [4]); 'add' "
                                "cannot work in place");
  // Collectives keep the dtype.
  p = base();
  p.instr("all_reduce", {0}, {1}, {L("grid_axes", {1}), S("reduction", "sum")});
  EXPECT_CONTAINS(loadError(p), "'all_reduce' (test): output 0 tensor 1 'b' "
                                "(f16 [4]): expected dtype bf16 (input 0 "
                                "tensor 0 'a' (bf16 [4])'s)");
  p = base();
  p.instr("all_gather", {2}, {0}, {L("grid_axes", {2}), I("dim", 0)});
  EXPECT_CONTAINS(loadError(p), "'all_gather' (test): output 0 tensor 0 'a' "
                                "(bf16 [4]): expected dtype f32");
  // Attention's lse stays f32.
  p = base();
  int q = p.arena("q", {1, 2, 1, 2}, DType::BF16);
  int lse = p.arena("lse", {1, 1, 2}, DType::BF16);
  p.instr("attention", {q, q, q},
          {p.arena("o", {1, 2, 1, 2}, DType::BF16), lse}, {R("scale", 1.0)});
  EXPECT_CONTAINS(loadError(p), "output 1 tensor 7 'lse' (bf16 [1, 1, 2]): "
                                "expected dtype f32");
  // i1 has no backend.
  p = base();
  p.arena("flag", {4}, static_cast<DType>(6));
  EXPECT_CONTAINS(loadError(p), "tensor 6 'flag': dtype i1 is not supported "
                                "by the CPU backend");
}

TEST(MixedPrecision, LoaderAdamWApplyInput) {
  auto program = [](DType applyType, std::vector<int64_t> shape, int extra) {
    ProgramDef p;
    int w = p.arg("param", "w", {4});
    int m = p.arg("adam_m", "w", {4});
    int v = p.arg("adam_v", "w", {4});
    int step = p.arg("step", "", {}, DType::I64);
    int g = p.arena("g", {4});
    int lr = p.arena("lr", {});
    std::vector<int> ins = {
        w, g, m, v, lr, step, p.arena("apply", shape, applyType)};
    for (int i = 0; i < extra; ++i)
      ins.push_back(lr);
    p.instr("adamw", ins, {w, m, v},
            {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
             R("weight_decay", 0.0)});
    return p;
  };
  EXPECT_EQ(loadError(program(DType::F32, {}, 0)), "");
  EXPECT_CONTAINS(loadError(program(DType::F32, {}, 1)),
                  "'adamw' (test): has 8 inputs, expected 6 or 7");
  EXPECT_CONTAINS(loadError(program(DType::BF16, {}, 0)),
                  "input 6 tensor 6 'apply' (bf16 []): expected dtype f32");
  EXPECT_CONTAINS(loadError(program(DType::F32, {2}, 0)),
                  "input 6 tensor 6 'apply' (f32 [2]): expected 1 elements");
}

TEST(MixedPrecision, LoaderLossScaleRoles) {
  ProgramDef p;
  int s = p.arg("loss_scale", "", {});
  int inv = p.arg("inv_loss_scale", "", {});
  int ok = p.arena("ok", {});
  p.instr("all_finite", {s, inv}, {ok});
  p.result("all_finite", ok);
  const std::string scaleJson =
      R"({"seq_len": 8, "micro_batch_size": 2, "global_batch_size": 2,
          "precision": "fp16", "loss_scale": {"mode": "dynamic"}})";
  PlanDef def = singleProgram(p);
  def.trainJson = scaleJson;
  def.precision = "fp16";
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  EXPECT_TRUE(plan.train.lossScale.enabled);
  EXPECT_EQ(plan.train.precision, "fp16");

  auto fails = [&](PlanDef d, const std::string &substring) {
    LoadedPlan out;
    std::string why;
    EXPECT_FALSE(loadDef(d, out, why)) << substring;
    EXPECT_CONTAINS(why, substring);
  };
  PlanDef bad = def;
  bad.programs[0].tensors[0].dtype = DType::F16;
  fails(bad, "argument 0 (loss_scale): tensor 0 'loss_scale ' (f16 []) must "
             "be f32");
  bad = def;
  bad.programs[0].tensors[1].shape = {2};
  bad.programs[0].instrs.clear();
  fails(bad, "argument 1 (inv_loss_scale): tensor 1 'inv_loss_scale ' (f32 "
             "[2]) must be a scalar");
  bad = def;
  bad.programs[0].results[0].tensor = 0;
  bad.programs[0].tensors.push_back(
      {"big", DType::F32, {3}, Storage::Arena, 0});
  bad.programs[0].arenaBytes = 64;
  bad.programs[0].results[0].tensor = 3;
  fails(bad, "result 0 (all_finite): tensor 3 'big' (f32 [3]) must be an f32 "
             "scalar");
  bad = def;
  bad.programs[0].results.clear();
  fails(bad, "test.llx: program 0: has a 'loss_scale' argument but no "
             "'all_finite' result");
  bad = def;
  bad.programs[0].args.pop_back(); // inv_loss_scale
  bad.programs[0].tensors[1].storage = Storage::Arena;
  bad.programs[0].tensors[1].offset = 64;
  bad.programs[0].arenaBytes = 128;
  fails(bad, "has a 'loss_scale' argument but no 'inv_loss_scale' argument");
  bad = def;
  bad.trainJson = tinyTrainJson();
  bad.precision = "fp32";
  fails(bad, "program 0: has loss_scale arguments, but train_config_json has "
             "no 'loss_scale' object");
  bad = def;
  bad.precision = "bf16";
  fails(bad, "test.llx: precision is 'bf16' but train_config_json says "
             "'fp16'");
  // The configuration without the arguments.
  PlanDef plain = singleProgram(ProgramDef());
  plain.trainJson = scaleJson;
  plain.precision = "fp16";
  fails(plain, "program 0: has no 'loss_scale' argument, but "
               "train_config_json configures 'loss_scale'");
}

TEST(MixedPrecision, TrainConfigPrecisionAndLossScaleFields) {
  auto parse = [](const std::string &extra, TrainConfig &c,
                  std::string &error) {
    return TrainConfig::fromJson(
        R"({"seq_len": 8, "micro_batch_size": 1, "global_batch_size": 1)" +
            extra + "}",
        "t", c, error);
  };
  TrainConfig c;
  std::string error;
  ASSERT_TRUE(parse("", c, error)) << error;
  EXPECT_FALSE(c.lossScale.enabled);
  EXPECT_EQ(c.precision, "");
  EXPECT_EQ(c.toJson().find("loss_scale"), std::string::npos);
  EXPECT_EQ(c.toJson().find("precision"), std::string::npos);
  ASSERT_TRUE(parse(R"(, "precision": null, "loss_scale": null)", c, error));
  EXPECT_FALSE(c.lossScale.enabled);

  // Defaults, then every field given, and the round trip.
  ASSERT_TRUE(parse(R"(, "precision": "bf16", "loss_scale": {})", c, error))
      << error;
  EXPECT_TRUE(c.lossScale.enabled);
  EXPECT_TRUE(c.lossScale.dynamic);
  EXPECT_EQ(c.lossScale.init, 65536.0);
  EXPECT_EQ(c.lossScale.growthFactor, 2.0);
  EXPECT_EQ(c.lossScale.backoffFactor, 0.5);
  EXPECT_EQ(c.lossScale.growthInterval, 2000);
  EXPECT_EQ(c.lossScale.hysteresis, 1);
  EXPECT_EQ(c.lossScale.minScale, 1.0);
  ASSERT_TRUE(parse(R"(, "precision": "fp16", "loss_scale": {"mode": "static",
      "init": 1024.0, "growth_factor": 4, "backoff_factor": 0.25,
      "growth_interval": 10, "hysteresis": 3, "min_scale": 0.5})",
                    c, error))
      << error;
  EXPECT_FALSE(c.lossScale.dynamic);
  EXPECT_EQ(c.lossScale.init, 1024.0);
  EXPECT_EQ(c.lossScale.growthFactor, 4.0);
  EXPECT_EQ(c.lossScale.backoffFactor, 0.25);
  EXPECT_EQ(c.lossScale.growthInterval, 10);
  EXPECT_EQ(c.lossScale.hysteresis, 3);
  EXPECT_EQ(c.lossScale.minScale, 0.5);
  TrainConfig back;
  ASSERT_TRUE(TrainConfig::fromJson(c.toJson(), "t", back, error)) << error;
  EXPECT_EQ(back.toJson(), c.toJson());
  EXPECT_EQ(back.precision, "fp16");
  EXPECT_EQ(back.lossScale.hysteresis, 3);

  const std::pair<const char *, const char *> bad[] = {
      {R"(, "precision": "fp8")",
       "t: field 'precision' must be \"fp32\", \"bf16\" or \"fp16\", got "
       "\"fp8\""},
      {R"(, "precision": 16)", "field 'precision' must be"},
      {R"(, "loss_scale": 5)",
       "field 'loss_scale' must be an object or null, got 5"},
      {R"(, "loss_scale": {"mode": "auto"})",
       "field 'loss_scale.mode' must be \"dynamic\" or \"static\", got "
       "\"auto\""},
      {R"(, "loss_scale": {"init": 0})",
       "field 'loss_scale.init' must be > 0, got 0.0"},
      {R"(, "loss_scale": {"init": "big"})",
       "field 'loss_scale.init' must be a finite number, got \"big\""},
      {R"(, "loss_scale": {"growth_factor": 1.0})",
       "field 'loss_scale.growth_factor' must be > 1, got 1.0"},
      {R"(, "loss_scale": {"backoff_factor": 1.0})",
       "field 'loss_scale.backoff_factor' must be in (0, 1), got 1.0"},
      {R"(, "loss_scale": {"min_scale": -1})",
       "field 'loss_scale.min_scale' must be > 0, got -1.0"},
      {R"(, "loss_scale": {"growth_interval": 0})",
       "field 'loss_scale.growth_interval' must be >= 1, got 0"},
      {R"(, "loss_scale": {"hysteresis": 1.5})",
       "field 'loss_scale.hysteresis' must be an integer, got 1.5"},
      {R"(, "loss_scale": {"init": 2, "min_scale": 4})",
       "field 'loss_scale.min_scale' (4.0) must not exceed 'loss_scale.init' "
       "(2.0)"},
      {R"(, "loss_scale": {"scale": 2})",
       "unknown field 'loss_scale.scale' (expected mode, init, "
       "growth_factor, backoff_factor, growth_interval, hysteresis, "
       "min_scale)"},
  };
  for (const auto &[extra, message] : bad) {
    EXPECT_FALSE(parse(extra, c, error)) << extra;
    EXPECT_CONTAINS(error, message);
  }
}
