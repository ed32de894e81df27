//===- ConformanceTest.cpp - CUDA kernels against the CPU backend ---------===//
//
// Every kernel of CudaKernels.h (and the cuBLASLt GEMMs) on fresh random
// inputs (uniform, never zeros), against the CPU backend's float kernels,
// which are themselves checked against finite differences and closed forms
// (backends/cpu/tests). The measure is the norm-wise relative error
// ||gpu - cpu|| / ||cpu||, with a tolerance per storage type: f32 1e-5
// (attention and the reductions 2e-5), bf16 and f16 1e-2. For the 16-bit
// cases the inputs are rounded to the storage type first, the CPU runs on
// their exact f32 values, and the GPU's 16-bit outputs are widened.
//
// Without a usable GPU every case is skipped, with the reason.
//
//===----------------------------------------------------------------------===//
#include "backends/cuda/CudaKernels.h"
#include "backends/cuda/Gemm.h"
#include "llamac/runtime/Kernels.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace k = llamac::kernels;
namespace cu = llamac::cuda;

namespace {

using Vec = std::vector<float>;

/// Why no GPU can be used, or "" when one can.
std::string noGpu() {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess)
    return cudaGetErrorString(e);
  return count == 0 ? "no CUDA device found" : "";
}

Vec randomVec(std::mt19937 &rng, size_t n, float amp = 1.0f) {
  std::uniform_real_distribution<float> dist(-amp, amp);
  Vec v(n);
  for (float &x : v) {
    do
      x = dist(rng);
    while (x == 0.0f);
  }
  return v;
}

double relError(const Vec &got, const Vec &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

/// A device buffer of one tensor in a storage type.
class Buf {
public:
  Buf(size_t n, cu::DType t) : n_(n), t_(t) {
    bytes_ = std::max<size_t>(1, n * cu::dtypeBytes(t));
    EXPECT_EQ(cudaMalloc(&p_, bytes_), cudaSuccess);
    cudaMemset(p_, 0, bytes_);
  }
  /// Uploaded from f32 values, rounded to the storage type.
  Buf(const Vec &v, cu::DType t) : Buf(v.size(), t) { set(v); }
  ~Buf() { cudaFree(p_); }
  Buf(const Buf &) = delete;
  Buf(Buf &&other) noexcept
      : p_(other.p_), n_(other.n_), bytes_(other.bytes_), t_(other.t_) {
    other.p_ = nullptr;
  }
  void set(const Vec &v) {
    std::vector<uint16_t> half(v.size());
    const void *src = v.data();
    if (t_ == cu::DType::BF16 || t_ == cu::DType::F16) {
      for (size_t i = 0; i < v.size(); ++i)
        half[i] = t_ == cu::DType::BF16 ? llamac::floatToBf16(v[i])
                                        : llamac::floatToHalf(v[i]);
      src = half.data();
    }
    cudaMemcpy(p_, src, v.size() * cu::dtypeBytes(t_), cudaMemcpyHostToDevice);
  }
  Vec get() const {
    Vec out(n_);
    if (t_ == cu::DType::F32) {
      cudaMemcpy(out.data(), p_, n_ * 4, cudaMemcpyDeviceToHost);
    } else {
      std::vector<uint16_t> half(n_);
      cudaMemcpy(half.data(), p_, n_ * 2, cudaMemcpyDeviceToHost);
      for (size_t i = 0; i < n_; ++i)
        out[i] = t_ == cu::DType::BF16 ? llamac::bf16ToFloat(half[i])
                                       : llamac::halfToFloat(half[i]);
    }
    return out;
  }
  void *p() const { return p_; }
  float *f() const { return static_cast<float *>(p_); }
  int32_t *i32() const { return static_cast<int32_t *>(p_); }

private:
  void *p_ = nullptr;
  size_t n_, bytes_;
  cu::DType t_;
};

Buf ints(const std::vector<int32_t> &v) {
  Buf b(v.size(), cu::DType::F32); // 4-byte elements.
  cudaMemcpy(b.p(), v.data(), v.size() * 4, cudaMemcpyHostToDevice);
  return b;
}

/// Values as the storage type holds them (the CPU's inputs).
Vec rounded(const Vec &v, cu::DType t) {
  if (t == cu::DType::F32)
    return v;
  Vec out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = t == cu::DType::BF16 ? llamac::bf16ToFloat(llamac::floatToBf16(v[i]))
                                  : llamac::halfToFloat(llamac::floatToHalf(v[i]));
  return out;
}

class Conformance : public ::testing::TestWithParam<cu::DType> {
protected:
  void SetUp() override {
    const std::string why = noGpu();
    if (!why.empty())
      GTEST_SKIP() << "no usable CUDA GPU (" << why
                   << "): the CUDA backend is not checked here";
  }
  void TearDown() override {
    if (!IsSkipped()) {
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess)
          << cudaGetErrorString(cudaGetLastError());
    }
  }
  cu::DType t() const { return GetParam(); }
  double tol(double f32 = 1e-5) const {
    return t() == cu::DType::F32 ? f32 : 1e-2;
  }
  Vec input(size_t n, float amp = 1.0f) {
    return rounded(randomVec(rng_, n, amp), t());
  }
  std::mt19937 rng_{20261129};
};

#define EXPECT_CLOSE(got, want, tolerance)                                     \
  do {                                                                         \
    const double err_ = relError(got, want);                                   \
    EXPECT_LE(err_, tolerance) << #got " vs " #want;                           \
  } while (0)

TEST_P(Conformance, Embedding) {
  const int64_t n = 300, d = 64, v = 50;
  Vec table = input(v * d), dy = input(n * d);
  std::vector<int32_t> ids(n);
  for (auto &x : ids)
    x = static_cast<int32_t>(rng_() % v); // Repeats: rows get several tokens.
  Buf dTable(table, t()), dIds = ints(ids), out(n * d, t()), dDy(dy, t()),
      dGrad(v * d, t());
  ASSERT_EQ(cu::embeddingFwd(dTable.p(), dIds.i32(), out.p(), n, d, v, 0, t(),
                             nullptr),
            0);
  Vec want(n * d), wantGrad(v * d);
  k::embeddingFwd<float>(table.data(), ids.data(), want.data(), n, d, v);
  EXPECT_CLOSE(out.get(), want, 0.0);
  Buf scratch(cu::embeddingBwdScratchBytes(n, v) / 4 + 1, cu::DType::F32);
  ASSERT_EQ(cu::embeddingBwd(dDy.p(), dIds.i32(), dGrad.p(), n, d, v, 0, t(),
                             scratch.p(), nullptr),
            0);
  k::embeddingBwd<float>(dy.data(), ids.data(), wantGrad.data(), n, d, v);
  EXPECT_CLOSE(dGrad.get(), wantGrad, tol());

  // A vocabulary shard: rows [20, 45) of the full table.
  const int64_t begin = 20, sv = 25;
  Buf shardGrad(sv * d, t()), shardOut(n * d, t());
  ASSERT_EQ(cu::embeddingFwd(dTable.p(), dIds.i32(), shardOut.p(), n, d, sv,
                             begin, t(), nullptr),
            0);
  k::embeddingShardFwd<float>(table.data(), ids.data(), want.data(), n, d, sv,
                              begin);
  EXPECT_CLOSE(shardOut.get(), want, 0.0);
  ASSERT_EQ(cu::embeddingBwd(dDy.p(), dIds.i32(), shardGrad.p(), n, d, sv,
                             begin, t(), scratch.p(), nullptr),
            0);
  Vec wantShard(sv * d);
  k::embeddingShardBwd<float>(dy.data(), ids.data(), wantShard.data(), n, d,
                              sv, begin);
  EXPECT_CLOSE(shardGrad.get(), wantShard, tol());
}

TEST_P(Conformance, RmsNorm) {
  const int64_t rows = 130, d = 96;
  const float eps = 1e-5f;
  Vec x = input(rows * d), w = input(d), dy = input(rows * d);
  Buf dX(x, t()), dW(w, t()), dDy(dy, t()), y(rows * d, t()), dx(rows * d, t()),
      dw(d, t()), partial(cu::rmsNormBwdPartialSize(rows, d), cu::DType::F32);
  ASSERT_EQ(cu::rmsNormFwd(dX.p(), dW.p(), y.p(), rows, d, eps, t(), nullptr),
            0);
  ASSERT_EQ(cu::rmsNormBwd(dDy.p(), dX.p(), dW.p(), dx.p(), dw.p(), rows, d,
                           eps, t(), partial.f(), nullptr),
            0);
  Vec wy(rows * d), wdx(rows * d), wdw(d);
  k::rmsNormFwd<float>(x.data(), w.data(), wy.data(), rows, d, eps);
  k::rmsNormBwd<float>(dy.data(), x.data(), w.data(), wdx.data(), wdw.data(),
                       rows, d, eps);
  EXPECT_CLOSE(y.get(), wy, tol());
  EXPECT_CLOSE(dx.get(), wdx, tol());
  EXPECT_CLOSE(dw.get(), wdw, tol(2e-5));
}

TEST_P(Conformance, Linear) {
  const int64_t m = 67, n = 48, kk = 80;
  Vec x = input(m * kk), w = input(n * kk), dy = input(m * n);
  Buf ws(cu::Gemm::kWorkspaceBytes / 4, cu::DType::F32);
  cu::Gemm gemm(ws.p(), cu::Gemm::kWorkspaceBytes, /*tf32=*/false);
  std::string why;
  ASSERT_TRUE(gemm.ok(why)) << why;
  Buf dX(x, t()), dW(w, t()), dDy(dy, t()), y(m * n, t()), dx(m * kk, t()),
      dw(n * kk, t());
  ASSERT_EQ(gemm.run(cu::GemmKind::Linear, dX.p(), dW.p(), y.p(), m, n, kk,
                     t(), nullptr),
            0)
      << gemm.lastError();
  ASSERT_EQ(gemm.run(cu::GemmKind::LinearGradInput, dDy.p(), dW.p(), dx.p(), m,
                     n, kk, t(), nullptr),
            0)
      << gemm.lastError();
  ASSERT_EQ(gemm.run(cu::GemmKind::LinearGradWeight, dDy.p(), dX.p(), dw.p(),
                     m, n, kk, t(), nullptr),
            0)
      << gemm.lastError();
  Vec wy(m * n), wdx(m * kk), wdw(n * kk);
  k::linearFwd<float>(x.data(), w.data(), wy.data(), m, n, kk);
  k::linearBwdInput<float>(dy.data(), w.data(), wdx.data(), m, n, kk);
  k::linearBwdWeight<float>(dy.data(), x.data(), wdw.data(), m, n, kk);
  EXPECT_CLOSE(y.get(), wy, tol());
  EXPECT_CLOSE(dx.get(), wdx, tol());
  EXPECT_CLOSE(dw.get(), wdw, tol());

  // Arena tensors are 64-byte aligned, not 256 as cuBLASLt assumes by
  // default: the same products on operands 64 bytes past an allocation.
  const size_t e = cu::dtypeBytes(t()), pad = 64;
  Buf arena((pad * 4 + (m * kk + n * kk + m * n) * e) / 4 + 1, cu::DType::F32);
  char *base = static_cast<char *>(arena.p()) + pad;
  void *x64 = base, *w64 = base + m * kk * e, *y64 = base + (m + n) * kk * e;
  cudaMemcpy(x64, dX.p(), m * kk * e, cudaMemcpyDeviceToDevice);
  cudaMemcpy(w64, dW.p(), n * kk * e, cudaMemcpyDeviceToDevice);
  ASSERT_EQ(gemm.run(cu::GemmKind::Linear, x64, w64, y64, m, n, kk, t(),
                     nullptr),
            0)
      << gemm.lastError();
  Buf y2(m * n, t());
  cudaMemcpy(y2.p(), y64, m * n * e, cudaMemcpyDeviceToDevice);
  EXPECT_CLOSE(y2.get(), wy, tol());
}

TEST_P(Conformance, Rope) {
  const int64_t b = 2, s = 37, h = 3, dh = 32;
  Vec x = input(b * s * h * dh);
  Buf dX(x, t()), y(x.size(), t()), back(x.size(), t());
  ASSERT_EQ(cu::rope(dX.p(), y.p(), b, s, h, dh, 10000.0f, 5, false, t(),
                     nullptr),
            0);
  ASSERT_EQ(cu::rope(dX.p(), back.p(), b, s, h, dh, 10000.0f, 5, true, t(),
                     nullptr),
            0);
  Vec wy(x.size()), wback(x.size());
  k::rope<float>(x.data(), wy.data(), b, s, h, dh, 10000.0f, 5, false);
  k::rope<float>(x.data(), wback.data(), b, s, h, dh, 10000.0f, 5, true);
  EXPECT_CLOSE(y.get(), wy, tol());
  EXPECT_CLOSE(back.get(), wback, tol());
}

/// Shapes of the attention cases: GQA with a sequence that is not a
/// multiple of the tiles, MHA, MQA, one token.
struct AttnCase {
  int64_t b, s, h, kv, dh;
};

TEST_P(Conformance, Attention) {
  for (const AttnCase &c : {AttnCase{2, 70, 4, 2, 64}, AttnCase{1, 129, 2, 2, 32},
                            AttnCase{1, 64, 4, 1, 128}, AttnCase{3, 1, 2, 1, 64},
                            AttnCase{1, 200, 8, 4, 64}}) {
    SCOPED_TRACE("b=" + std::to_string(c.b) + " s=" + std::to_string(c.s) +
                 " h=" + std::to_string(c.h) + " kv=" + std::to_string(c.kv) +
                 " dh=" + std::to_string(c.dh));
    const float scale = 1.0f / std::sqrt(float(c.dh));
    const cu::AttentionShape shape{c.b, c.s, c.h, c.kv, c.dh, scale};
    const int64_t nq = c.b * c.s * c.h * c.dh, nk = c.b * c.s * c.kv * c.dh;
    Vec q = input(nq), kk = input(nk), v = input(nk), dout = input(nq);
    Buf dQ(q, t()), dK(kk, t()), dV(v, t()), out(nq, t()),
        lse(c.b * c.h * c.s, cu::DType::F32), dDo(dout, t()), dq(nq, t()),
        dk(nk, t()), dv(nk, t()), delta(c.b * c.h * c.s, cu::DType::F32);
    ASSERT_STREQ(cu::attentionUnsupported(shape, t()), "");
    ASSERT_EQ(cu::attentionFwd(dQ.p(), dK.p(), dV.p(), out.p(), lse.f(), shape,
                               t(), nullptr),
              0);
    Vec wout(nq), wlse(c.b * c.h * c.s), wdq(nq), wdk(nk), wdv(nk);
    k::attentionFwd<float>(q.data(), kk.data(), v.data(), wout.data(),
                           wlse.data(), c.b, c.s, c.h, c.kv, c.dh, scale);
    EXPECT_CLOSE(out.get(), wout, tol(2e-5));
    EXPECT_CLOSE(lse.get(), wlse, t() == cu::DType::F32 ? 2e-5 : 1e-3);
    // The backward pass reads the forward's out and lse as the CPU computed
    // them (rounded to the storage type), so only the backward is compared.
    Buf cpuOut(wout, t());
    Vec outRounded = rounded(wout, t());
    Buf cpuLse(wlse, cu::DType::F32);
    ASSERT_EQ(cu::attentionBwd(dDo.p(), dQ.p(), dK.p(), dV.p(), cpuOut.p(),
                               cpuLse.f(), dq.p(), dk.p(), dv.p(), shape, t(),
                               delta.f(), nullptr),
              0);
    k::attentionBwd<float>(dout.data(), q.data(), kk.data(), v.data(),
                           outRounded.data(), wlse.data(), wdq.data(),
                           wdk.data(), wdv.data(), c.b, c.s, c.h, c.kv, c.dh,
                           scale);
    if (c.s == 1) {
      // One token: the softmax is 1 whatever the scores, so dq and dk are
      // exactly zero; what remains is the rounding of dP - delta (16-bit
      // out and v round alike, so that is the f32 noise, times |k|, |q|).
      const double zero = t() == cu::DType::F32 ? 1e-5 : 2e-2;
      for (float x : dq.get())
        ASSERT_LE(std::abs(x), zero);
      for (float x : dk.get())
        ASSERT_LE(std::abs(x), zero);
    } else {
      EXPECT_CLOSE(dq.get(), wdq, tol(2e-5));
      EXPECT_CLOSE(dk.get(), wdk, tol(2e-5));
    }
    EXPECT_CLOSE(dv.get(), wdv, tol(2e-5));
  }
}

TEST_P(Conformance, Elementwise) {
  const int64_t n = 10007;
  Vec a = input(n, 3.0f), b = input(n), dy = input(n);
  Buf dA(a, t()), dB(b, t()), dDy(dy, t()), y(n, t()), y2(n, t());
  Vec want(n), want2(n);
  ASSERT_EQ(cu::swigluFwd(dA.p(), dB.p(), y.p(), n, t(), nullptr), 0);
  k::swigluFwd<float>(a.data(), b.data(), want.data(), n);
  EXPECT_CLOSE(y.get(), want, tol());
  ASSERT_EQ(cu::swigluBwd(dDy.p(), dA.p(), dB.p(), y.p(), y2.p(), n, t(),
                          nullptr),
            0);
  k::swigluBwd<float>(dy.data(), a.data(), b.data(), want.data(), want2.data(),
                      n);
  EXPECT_CLOSE(y.get(), want, tol());
  EXPECT_CLOSE(y2.get(), want2, tol());
  ASSERT_EQ(cu::add(dA.p(), dB.p(), y.p(), n, t(), nullptr), 0);
  k::add<float>(a.data(), b.data(), want.data(), n);
  EXPECT_CLOSE(y.get(), want, tol());
  Buf s(Vec{0.37f}, cu::DType::F32);
  ASSERT_EQ(cu::scale(dA.p(), s.f(), y.p(), n, t(), nullptr), 0);
  k::scale<float>(a.data(), want.data(), n, double(0.37f));
  EXPECT_CLOSE(y.get(), want, tol());
  ASSERT_EQ(cu::clipByValue(dA.p(), y.p(), n, 1.5f, t(), nullptr), 0);
  k::clipByValue<float>(a.data(), want.data(), n, 1.5);
  EXPECT_CLOSE(y.get(), want, tol(0.0));
  ASSERT_EQ(cu::fill(y.p(), n, 0.25f, t(), nullptr), 0);
  EXPECT_CLOSE(y.get(), Vec(n, 0.25f), 0.0);
}

TEST_P(Conformance, CrossEntropy) {
  const int64_t rows = 45, v = 1000;
  const double scale = 1.0 / 50.0;
  Vec logits = input(rows * v, 4.0f);
  std::vector<int32_t> targets(rows);
  for (auto &x : targets)
    x = static_cast<int32_t>(rng_() % v);
  Buf dL(logits, t()), dT = ints(targets), loss(1, cu::DType::F32),
      rowLoss(rows, cu::DType::F32), dlogits(rows * v, t()),
      dloss(Vec{1.7f}, cu::DType::F32);
  ASSERT_EQ(cu::crossEntropyFwd(dL.p(), dT.i32(), loss.f(), rows, v, scale,
                                t(), rowLoss.f(), nullptr),
            0);
  const double want = k::crossEntropyFwd<float>(logits.data(), targets.data(),
                                                rows, v, scale);
  EXPECT_NEAR(loss.get()[0], want, 2e-5 * std::abs(want));
  ASSERT_EQ(cu::crossEntropyBwd(dloss.f(), dL.p(), dT.i32(), dlogits.p(), rows,
                                v, scale, t(), nullptr),
            0);
  Vec wantGrad(rows * v);
  k::crossEntropyBwd<float>(logits.data(), targets.data(), wantGrad.data(),
                            rows, v, scale, double(1.7f));
  EXPECT_CLOSE(dlogits.get(), wantGrad, tol());

  // The vocab-parallel statistics on columns [begin, begin + sv).
  const int64_t begin = 300, sv = 400;
  Vec shard(rows * sv);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < sv; ++j)
      shard[r * sv + j] = logits[r * v + begin + j];
  Buf dS(shard, t()), mx(rows, t()), se(rows, t()), tl(rows, t()),
      grad(rows * sv, t());
  ASSERT_EQ(cu::rowMaxes(dS.p(), mx.p(), rows, sv, t(), nullptr), 0);
  ASSERT_EQ(cu::rowSumExp(dS.p(), mx.p(), se.p(), rows, sv, t(), nullptr), 0);
  ASSERT_EQ(cu::targetLogits(dS.p(), dT.i32(), tl.p(), rows, sv, begin, t(),
                             nullptr),
            0);
  Vec wmx(rows), wse(rows), wtl(rows);
  k::rowMaxes<float>(shard.data(), wmx.data(), rows, sv);
  EXPECT_CLOSE(mx.get(), wmx, 0.0);
  // The rest from the GPU's (rounded) statistics, as a plan would.
  Vec gmx = mx.get();
  k::rowSumExp<float>(shard.data(), gmx.data(), wse.data(), rows, sv);
  k::targetLogits<float>(shard.data(), targets.data(), wtl.data(), rows, sv,
                         begin);
  EXPECT_CLOSE(se.get(), rounded(wse, t()), tol());
  EXPECT_CLOSE(tl.get(), wtl, 0.0);
  Vec gse = se.get(), gtl = tl.get();
  ASSERT_EQ(cu::crossEntropyFromStats(mx.p(), se.p(), tl.p(), loss.f(), rows,
                                      scale, t(), nullptr),
            0);
  const double wantStats = k::crossEntropyFromStats<float>(
      gmx.data(), gse.data(), gtl.data(), rows, scale);
  EXPECT_NEAR(loss.get()[0], wantStats, 2e-5 * std::abs(wantStats));
  ASSERT_EQ(cu::crossEntropyBwdFromStats(dloss.f(), dS.p(), dT.i32(), mx.p(),
                                         se.p(), grad.p(), rows, sv, begin,
                                         scale, t(), nullptr),
            0);
  Vec wgrad(rows * sv);
  k::crossEntropyBwdFromStats<float>(shard.data(), targets.data(), gmx.data(),
                                     gse.data(), wgrad.data(), rows, sv, begin,
                                     scale, double(1.7f));
  EXPECT_CLOSE(grad.get(), wgrad, tol());
}

TEST_P(Conformance, BlocksAndCasts) {
  const int64_t outer = 3, d = 5, inner = 7, g = 4;
  Vec x = input(outer * g * d * inner);
  const int elem = cu::dtypeBytes(t());
  Buf dX(x, t()), block(outer * d * inner, t()), blocks(x.size(), t()),
      whole(x.size(), t());
  ASSERT_EQ(cu::sliceBlock(dX.p(), block.p(), outer, d, inner, g, 2, elem,
                           nullptr),
            0);
  Vec wblock(outer * d * inner), wblocks(x.size()), wwhole(x.size());
  k::sliceBlock<float>(x.data(), wblock.data(), outer, d, inner, g, 2);
  EXPECT_CLOSE(block.get(), wblock, 0.0);
  ASSERT_EQ(cu::splitBlocks(dX.p(), blocks.p(), g, outer, d, inner, elem,
                            nullptr),
            0);
  k::splitBlocks<float>(x.data(), wblocks.data(), g, outer, d, inner);
  EXPECT_CLOSE(blocks.get(), wblocks, 0.0);
  ASSERT_EQ(cu::concatBlocks(blocks.p(), whole.p(), g, outer, d, inner, elem,
                             nullptr),
            0);
  EXPECT_CLOSE(whole.get(), x, 0.0);
  // Casts from f32 round exactly as the CPU's (nearest even).
  Vec wide = randomVec(rng_, 4099, 70000.0f);
  Buf f32(wide, cu::DType::F32), narrow(wide.size(), t());
  ASSERT_EQ(cu::cast(f32.p(), cu::DType::F32, narrow.p(), t(), wide.size(),
                     nullptr),
            0);
  EXPECT_EQ(narrow.get(), rounded(wide, t()));
}

TEST_P(Conformance, NormsFiniteAdamW) {
  if (t() != cu::DType::F32)
    GTEST_SKIP() << "the optimizer and the norm are f32 only";
  const std::vector<int64_t> sizes = {70000, 3, 65536, 131073};
  std::vector<Vec> g;
  std::vector<std::unique_ptr<Buf>> bufs;
  std::vector<cu::TensorRef> refs;
  for (int64_t n : sizes) {
    g.push_back(input(n));
    bufs.push_back(std::make_unique<Buf>(g.back(), cu::DType::F32));
    refs.push_back({bufs.back()->p(), n, cu::DType::F32});
  }
  std::vector<int64_t> starts(sizes.size() + 1);
  const int64_t chunks =
      cu::multiTensorChunks(sizes.data(), int(sizes.size()), starts.data());
  Buf dRefs(refs.size() * sizeof(cu::TensorRef) / 4, cu::DType::F32),
      dStarts(starts.size() * 2, cu::DType::F32), out(1, cu::DType::F32),
      partial(chunks * 2, cu::DType::F32);
  cudaMemcpy(dRefs.p(), refs.data(), refs.size() * sizeof(cu::TensorRef),
             cudaMemcpyHostToDevice);
  cudaMemcpy(dStarts.p(), starts.data(), starts.size() * 8,
             cudaMemcpyHostToDevice);
  const auto *list = static_cast<const cu::TensorRef *>(dRefs.p());
  const auto *st = static_cast<const int64_t *>(dStarts.p());
  auto *part = static_cast<double *>(partial.p());
  ASSERT_EQ(cu::sumSquares(list, int(sizes.size()), chunks, st, out.f(), true,
                           part, nullptr),
            0);
  double want = 0;
  for (const Vec &x : g)
    want += k::sumSquares<float>(x.data(), int64_t(x.size()));
  EXPECT_NEAR(out.get()[0], std::sqrt(want), 1e-6 * std::sqrt(want));
  ASSERT_EQ(cu::allFinite(list, int(sizes.size()), chunks, st, out.f(), part,
                          nullptr),
            0);
  EXPECT_EQ(out.get()[0], 1.0f);
  Vec bad = g[3];
  bad[100000] = INFINITY;
  bufs[3]->set(bad);
  ASSERT_EQ(cu::allFinite(list, int(sizes.size()), chunks, st, out.f(), part,
                          nullptr),
            0);
  EXPECT_EQ(out.get()[0], 0.0f);
  bufs[3]->set(g[3]);

  // AdamW over the same tensors as gradients.
  std::vector<Vec> p, m, v;
  std::vector<std::unique_ptr<Buf>> dp, dm, dv;
  std::vector<cu::AdamRef> adam;
  for (size_t i = 0; i < sizes.size(); ++i) {
    p.push_back(input(sizes[i]));
    m.push_back(input(sizes[i], 0.1f));
    v.push_back(randomVec(rng_, sizes[i], 0.01f));
    for (float &x : v.back())
      x = std::abs(x);
    dp.push_back(std::make_unique<Buf>(p.back(), cu::DType::F32));
    dm.push_back(std::make_unique<Buf>(m.back(), cu::DType::F32));
    dv.push_back(std::make_unique<Buf>(v.back(), cu::DType::F32));
    adam.push_back({dp.back()->f(), bufs[i]->f(), dm.back()->f(),
                    dv.back()->f(), sizes[i]});
  }
  Buf dAdam(adam.size() * sizeof(cu::AdamRef) / 4, cu::DType::F32),
      lr(Vec{3e-4f}, cu::DType::F32), apply(Vec{1.0f}, cu::DType::F32);
  cudaMemcpy(dAdam.p(), adam.data(), adam.size() * sizeof(cu::AdamRef),
             cudaMemcpyHostToDevice);
  const int64_t step = 4; // 0-based count before the step: step 5.
  Buf dStep(2, cu::DType::F32);
  cudaMemcpy(dStep.p(), &step, 8, cudaMemcpyHostToDevice);
  ASSERT_EQ(cu::adamw(static_cast<const cu::AdamRef *>(dAdam.p()),
                      int(sizes.size()), chunks, st, lr.f(),
                      static_cast<const int64_t *>(dStep.p()), apply.f(), 0.9,
                      0.95, 1e-8, 0.1, nullptr),
            0);
  for (size_t i = 0; i < sizes.size(); ++i) {
    k::adamw<float>(p[i].data(), g[i].data(), m[i].data(), v[i].data(),
                    sizes[i], double(3e-4f), 0.9, 0.95, 1e-8, 0.1, step + 1);
    EXPECT_CLOSE(dp[i]->get(), p[i], 1e-6);
    EXPECT_CLOSE(dm[i]->get(), m[i], 1e-6);
    EXPECT_CLOSE(dv[i]->get(), v[i], 1e-6);
  }
  // apply = 0 (a skipped step) leaves everything as it is, bit for bit.
  const Vec before = dp[0]->get(), beforeM = dm[3]->get();
  apply.set(Vec{0.0f});
  ASSERT_EQ(cu::adamw(static_cast<const cu::AdamRef *>(dAdam.p()),
                      int(sizes.size()), chunks, st, lr.f(),
                      static_cast<const int64_t *>(dStep.p()), apply.f(), 0.9,
                      0.95, 1e-8, 0.1, nullptr),
            0);
  EXPECT_EQ(dp[0]->get(), before);
  EXPECT_EQ(dm[3]->get(), beforeM);
}

TEST_P(Conformance, Scalars) {
  if (t() != cu::DType::F32)
    GTEST_SKIP() << "scalars are f32";
  Buf norm(Vec{3.5f}, cu::DType::F32), coef(1, cu::DType::F32),
      lr(1, cu::DType::F32), stepBuf(2, cu::DType::F32);
  ASSERT_EQ(cu::clipCoef(norm.f(), coef.f(), 1.0, nullptr), 0);
  EXPECT_FLOAT_EQ(coef.get()[0], float(1.0 / (3.5 + 1e-6)));
  ASSERT_EQ(cu::sqrtScalar(norm.f(), coef.f(), nullptr), 0);
  EXPECT_FLOAT_EQ(coef.get()[0], std::sqrt(3.5f));
  for (int64_t step : {0, 5, 9, 10, 55, 100, 150}) {
    cudaMemcpy(stepBuf.p(), &step, 8, cudaMemcpyHostToDevice);
    ASSERT_EQ(cu::lrSchedule(static_cast<const int64_t *>(stepBuf.p()), lr.f(),
                             3e-4, 3e-5, 10, 100, nullptr),
              0);
    // DESIGN.md A2: linear warmup, then cosine to min_lr.
    double want;
    if (step < 10)
      want = 3e-4 * double(step + 1) / 10.0;
    else if (step < 100)
      want = 3e-5 + 0.5 * (3e-4 - 3e-5) *
                        (1.0 + std::cos(M_PI * double(step - 10) / 90.0));
    else
      want = 3e-5;
    EXPECT_FLOAT_EQ(lr.get()[0], float(want)) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, Conformance,
                         ::testing::Values(cu::DType::F32, cu::DType::BF16,
                                           cu::DType::F16),
                         [](const ::testing::TestParamInfo<cu::DType> &info) {
                           switch (info.param) {
                           case cu::DType::BF16:
                             return std::string("bf16");
                           case cu::DType::F16:
                             return std::string("f16");
                           default:
                             return std::string("f32");
                           }
                         });

} // namespace
