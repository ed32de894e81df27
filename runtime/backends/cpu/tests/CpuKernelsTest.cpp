//===- CpuKernelsTest.cpp - Tests of the CPU kernels ------------*- C++ -*-===//
//
// The CPU kernels are the oracle of every other backend, so they are checked
// against references that share no code with them:
//  - forward kernels against naive loops written here in double, and against
//    closed forms (identities that hold whatever the implementation);
//  - every backward kernel against central finite differences of its forward
//    kernel in double, through a random projection L = sum(w * y) so that one
//    check covers the whole output;
//  - the float instantiation against the double one;
//  - bit-identical reruns, also across thread counts.
//
//===----------------------------------------------------------------------===//

#include "llamac/runtime/Kernels.h"

#include <cblas.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

using namespace llamac::kernels;

namespace {

using Vec = std::vector<double>;

/// Uniform in [-1, 1] scaled by `amp`. Random data never hits the special
/// cases (zeros, ties) that could hide a wrong formula.
Vec randomVec(std::mt19937_64 &rng, size_t n, double amp = 1.0) {
  std::uniform_real_distribution<double> dist(-amp, amp);
  Vec out(n);
  for (double &x : out)
    x = dist(rng);
  return out;
}

std::vector<float> toFloat(const Vec &x) { return {x.begin(), x.end()}; }
Vec toDouble(const std::vector<float> &x) { return {x.begin(), x.end()}; }

double dotVec(const Vec &a, const Vec &b) {
  double acc = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    acc += a[i] * b[i];
  return acc;
}

/// max |a - ref| / max |ref|: an error relative to the scale of the whole
/// tensor, so that tiny entries of a gradient do not dominate.
double relErr(const Vec &a, const Vec &ref) {
  EXPECT_EQ(a.size(), ref.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::abs(a[i] - ref[i]));
    den = std::max(den, std::abs(ref[i]));
  }
  return num / std::max(den, std::numeric_limits<double>::min());
}

/// Central finite-difference gradient of `loss` with respect to `x`, which
/// `loss` reads by reference.
Vec fdGradient(Vec &x, const std::function<double()> &loss, double h = 1e-5) {
  Vec grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    grad[i] = (up - down) / (2.0 * h);
  }
  return grad;
}

/// Tolerance of a double-precision gradient against central differences
/// with h = 1e-5 (truncation ~h^2, rounding ~1e-16/h).
constexpr double kFdTol = 1e-6;

//===----------------------------------------------------------------------===//
// Naive references
//===----------------------------------------------------------------------===//

struct AttnShape {
  int64_t b, s, h, kv, dh;
};

/// Causal GQA attention with repeat_kv spelled out; returns out and lse.
void refAttention(const Vec &q, const Vec &k, const Vec &v, AttnShape sh,
                  double scale, Vec &out, Vec &lse) {
  out.assign(sh.b * sh.s * sh.h * sh.dh, 0.0);
  lse.assign(sh.b * sh.h * sh.s, 0.0);
  const int64_t rep = sh.h / sh.kv;
  for (int64_t b = 0; b < sh.b; ++b)
    for (int64_t h = 0; h < sh.h; ++h)
      for (int64_t i = 0; i < sh.s; ++i) {
        Vec scores(i + 1);
        for (int64_t j = 0; j <= i; ++j) {
          double acc = 0.0;
          for (int64_t t = 0; t < sh.dh; ++t)
            acc += q[((b * sh.s + i) * sh.h + h) * sh.dh + t] *
                   k[((b * sh.s + j) * sh.kv + h / rep) * sh.dh + t];
          scores[j] = scale * acc;
        }
        double z = 0.0;
        for (double sc : scores)
          z += std::exp(sc);
        lse[(b * sh.h + h) * sh.s + i] = std::log(z);
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t t = 0; t < sh.dh; ++t)
            out[((b * sh.s + i) * sh.h + h) * sh.dh + t] +=
                std::exp(scores[j]) / z *
                v[((b * sh.s + j) * sh.kv + h / rep) * sh.dh + t];
      }
}

/// The contract's rope formula, evaluated directly.
Vec refRope(const Vec &x, int64_t b, int64_t s, int64_t h, int64_t dh,
            double theta, int64_t posOffset) {
  Vec y(x.size());
  const int64_t half = dh / 2;
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t p = 0; p < s; ++p)
      for (int64_t hh = 0; hh < h; ++hh)
        for (int64_t i = 0; i < half; ++i) {
          const double a =
              double(posOffset + p) * std::pow(theta, -2.0 * i / double(dh));
          const int64_t base = ((bb * s + p) * h + hh) * dh;
          y[base + i] =
              x[base + i] * std::cos(a) - x[base + i + half] * std::sin(a);
          y[base + i + half] =
              x[base + i + half] * std::cos(a) + x[base + i] * std::sin(a);
        }
  return y;
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

TEST(EmbeddingTest, ForwardGathersRows) {
  std::mt19937_64 rng(1);
  const int64_t v = 6, d = 5;
  Vec table = randomVec(rng, v * d);
  std::vector<int32_t> ids = {3, 0, 3, 5};
  Vec out(ids.size() * d);
  embeddingFwd(table.data(), ids.data(), out.data(), int64_t(ids.size()), d,
               v);
  for (size_t n = 0; n < ids.size(); ++n)
    for (int64_t j = 0; j < d; ++j)
      EXPECT_EQ(out[n * d + j], table[ids[n] * d + j]);
}

TEST(EmbeddingTest, BackwardMatchesFiniteDifferencesWithRepeatedIds) {
  std::mt19937_64 rng(2);
  // d > 64 spans two column blocks of the implementation.
  const int64_t v = 6, d = 70;
  std::vector<int32_t> ids = {2, 0, 2, 5, 2, 3, 0};
  const int64_t n = ids.size();
  Vec table = randomVec(rng, v * d), w = randomVec(rng, n * d);
  Vec out(n * d), dtable(v * d, 123.0); // Garbage: must be overwritten.
  auto loss = [&] {
    embeddingFwd(table.data(), ids.data(), out.data(), n, d, v);
    return dotVec(w, out);
  };
  embeddingBwd(w.data(), ids.data(), dtable.data(), n, d, v);
  EXPECT_LT(relErr(dtable, fdGradient(table, loss)), kFdTol);
  // Row 4 is never looked up, so its gradient is exactly zero.
  for (int64_t j = 0; j < d; ++j)
    EXPECT_EQ(dtable[4 * d + j], 0.0);
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

TEST(RmsNormTest, ForwardMatchesReference) {
  std::mt19937_64 rng(3);
  const int64_t rows = 3, d = 7;
  const float eps = 1e-5f;
  Vec x = randomVec(rng, rows * d), w = randomVec(rng, d, 2.0);
  Vec y(rows * d);
  rmsNormFwd(x.data(), w.data(), y.data(), rows, d, eps);
  Vec ref(rows * d);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0.0;
    for (int64_t j = 0; j < d; ++j)
      ms += x[r * d + j] * x[r * d + j];
    ms /= d;
    for (int64_t j = 0; j < d; ++j)
      ref[r * d + j] = w[j] * x[r * d + j] / std::sqrt(ms + double(eps));
  }
  EXPECT_LT(relErr(y, ref), 1e-14);
}

TEST(RmsNormTest, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(4);
  // d > 64 spans two column blocks of the dw pass.
  const int64_t rows = 5, d = 67;
  const float eps = 1e-5f;
  Vec x = randomVec(rng, rows * d), w = randomVec(rng, d, 2.0);
  Vec proj = randomVec(rng, rows * d);
  Vec y(rows * d), dx(rows * d), dw(d);
  auto loss = [&] {
    rmsNormFwd(x.data(), w.data(), y.data(), rows, d, eps);
    return dotVec(proj, y);
  };
  rmsNormBwd(proj.data(), x.data(), w.data(), dx.data(), dw.data(), rows, d,
             eps);
  EXPECT_LT(relErr(dx, fdGradient(x, loss)), kFdTol);
  EXPECT_LT(relErr(dw, fdGradient(w, loss)), kFdTol);
}

//===----------------------------------------------------------------------===//
// Linear
//===----------------------------------------------------------------------===//

TEST(LinearTest, ForwardMatchesReference) {
  std::mt19937_64 rng(5);
  const int64_t m = 3, n = 4, k = 5;
  Vec x = randomVec(rng, m * k), w = randomVec(rng, n * k), y(m * n);
  linearFwd(x.data(), w.data(), y.data(), m, n, k);
  Vec ref(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t)
        ref[i * n + j] += x[i * k + t] * w[j * k + t];
  EXPECT_LT(relErr(y, ref), 1e-14);
}

TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(6);
  const int64_t m = 3, n = 4, k = 5;
  Vec x = randomVec(rng, m * k), w = randomVec(rng, n * k);
  Vec proj = randomVec(rng, m * n);
  Vec y(m * n), dx(m * k, 7.0), dw(n * k, 7.0); // Garbage: overwritten.
  auto loss = [&] {
    linearFwd(x.data(), w.data(), y.data(), m, n, k);
    return dotVec(proj, y);
  };
  linearBwdInput(proj.data(), w.data(), dx.data(), m, n, k);
  linearBwdWeight(proj.data(), x.data(), dw.data(), m, n, k);
  EXPECT_LT(relErr(dx, fdGradient(x, loss)), kFdTol);
  EXPECT_LT(relErr(dw, fdGradient(w, loss)), kFdTol);
}

/// Runs `fn` with `threads` OpenMP threads, restoring the previous setting.
template <typename Fn> void withThreads(int threads, Fn fn) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  fn();
  omp_set_num_threads(saved);
}

TEST(LinearTest, ThreadedSplitsMatchReference) {
  // Above the serial cut-off, so the GEMMs are split over threads: by rows
  // for linearFwd's y [M, N], by columns for linearBwdInput's dx [M, K] and
  // linearBwdWeight's dw [N, K], which are wider than tall. Three threads
  // leave a short last block.
  std::mt19937_64 rng(24);
  const int64_t m = 150, n = 37, k = 200;
  Vec x = randomVec(rng, m * k), w = randomVec(rng, n * k);
  Vec dy = randomVec(rng, m * n);
  Vec refY(m * n, 0.0), refDx(m * k, 0.0), refDw(n * k, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t) {
        refY[i * n + j] += x[i * k + t] * w[j * k + t];
        refDx[i * k + t] += dy[i * n + j] * w[j * k + t];
        refDw[j * k + t] += dy[i * n + j] * x[i * k + t];
      }
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << threads << " threads");
    Vec y(m * n, 7.0), dx(m * k, 7.0), dw(n * k, 7.0); // Overwritten.
    withThreads(threads, [&] {
      linearFwd(x.data(), w.data(), y.data(), m, n, k);
      linearBwdInput(dy.data(), w.data(), dx.data(), m, n, k);
      linearBwdWeight(dy.data(), x.data(), dw.data(), m, n, k);
    });
    EXPECT_LT(relErr(y, refY), 1e-14);
    EXPECT_LT(relErr(dx, refDx), 1e-14);
    EXPECT_LT(relErr(dw, refDw), 1e-14);
  }
}

TEST(LinearTest, EmptyReductionOverwritesWithZeros) {
  Vec y(6, 5.0);
  linearFwd<double>(nullptr, nullptr, y.data(), 2, 3, 0);
  for (double val : y)
    EXPECT_EQ(val, 0.0);
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

TEST(RopeTest, ForwardMatchesReference) {
  std::mt19937_64 rng(7);
  const int64_t b = 2, s = 5, h = 3, dh = 8;
  Vec x = randomVec(rng, b * s * h * dh), y(x.size());
  rope(x.data(), y.data(), b, s, h, dh, 10000.0f, 7, false);
  EXPECT_LT(relErr(y, refRope(x, b, s, h, dh, 10000.0, 7)), 1e-14);
}

TEST(RopeTest, PositionZeroIsIdentityAndPairNormIsPreserved) {
  std::mt19937_64 rng(8);
  const int64_t b = 1, s = 4, h = 2, dh = 6, half = dh / 2;
  Vec x = randomVec(rng, b * s * h * dh), y(x.size());
  rope(x.data(), y.data(), b, s, h, dh, 500000.0f, 0, false);
  for (int64_t t = 0; t < h * dh; ++t)
    EXPECT_NEAR(y[t], x[t], 1e-15);
  for (int64_t row = 0; row < b * s * h; ++row)
    for (int64_t i = 0; i < half; ++i) {
      const double *xr = x.data() + row * dh, *yr = y.data() + row * dh;
      EXPECT_NEAR(std::hypot(yr[i], yr[i + half]),
                  std::hypot(xr[i], xr[i + half]), 1e-14);
    }
}

TEST(RopeTest, PositionOffsetMatchesLaterRowsOfALongerSequence) {
  std::mt19937_64 rng(9);
  const int64_t h = 2, dh = 4, row = h * dh;
  Vec longX = randomVec(rng, 6 * row), longY(longX.size());
  rope(longX.data(), longY.data(), 1, 6, h, dh, 10000.0f, 0, false);
  Vec shortX(longX.begin() + 4 * row, longX.end()), shortY(2 * row);
  rope(shortX.data(), shortY.data(), 1, 2, h, dh, 10000.0f, 4, false);
  EXPECT_LT(relErr(shortY, Vec(longY.begin() + 4 * row, longY.end())), 1e-15);
}

TEST(RopeTest, InverseIsTheTranspose) {
  std::mt19937_64 rng(10);
  const int64_t b = 2, s = 5, h = 2, dh = 6;
  Vec x = randomVec(rng, b * s * h * dh), y = randomVec(rng, x.size());
  Vec rx(x.size()), ry(x.size());
  rope(x.data(), rx.data(), b, s, h, dh, 10000.0f, 3, false);
  rope(y.data(), ry.data(), b, s, h, dh, 10000.0f, 3, true);
  EXPECT_NEAR(dotVec(rx, y), dotVec(x, ry), 1e-13);
  // And rope_inverse(rope(x)) == x.
  Vec back(x.size());
  rope(rx.data(), back.data(), b, s, h, dh, 10000.0f, 3, true);
  EXPECT_LT(relErr(back, x), 1e-14);
}

TEST(RopeTest, InverseIsTheGradient) {
  std::mt19937_64 rng(11);
  const int64_t b = 1, s = 5, h = 3, dh = 4;
  Vec x = randomVec(rng, b * s * h * dh), proj = randomVec(rng, x.size());
  Vec y(x.size()), dx(x.size());
  auto loss = [&] {
    rope(x.data(), y.data(), b, s, h, dh, 10000.0f, 2, false);
    return dotVec(proj, y);
  };
  rope(proj.data(), dx.data(), b, s, h, dh, 10000.0f, 2, true);
  EXPECT_LT(relErr(dx, fdGradient(x, loss)), kFdTol);
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// GQA with odd S, plain multi-head, multi-query (one kv head), and an S
/// that spans two query tiles of the implementation, the second one partial.
const AttnShape kAttnShapes[] = {
    {2, 5, 4, 2, 4}, {1, 3, 2, 2, 6}, {1, 4, 3, 1, 2}, {1, 70, 4, 2, 4}};

TEST(AttentionTest, ForwardMatchesReference) {
  std::mt19937_64 rng(12);
  for (const AttnShape &sh : kAttnShapes) {
    SCOPED_TRACE(testing::Message() << "H=" << sh.h << " KV=" << sh.kv);
    const double scale = 1.0 / std::sqrt(double(sh.dh));
    Vec q = randomVec(rng, sh.b * sh.s * sh.h * sh.dh, 2.0);
    Vec k = randomVec(rng, sh.b * sh.s * sh.kv * sh.dh, 2.0);
    Vec v = randomVec(rng, k.size());
    Vec out(q.size()), refOut, refLse;
    std::vector<float> lse(sh.b * sh.h * sh.s);
    attentionFwd(q.data(), k.data(), v.data(), out.data(), lse.data(), sh.b,
                 sh.s, sh.h, sh.kv, sh.dh, float(scale));
    refAttention(q, k, v, sh, float(scale), refOut, refLse);
    EXPECT_LT(relErr(out, refOut), 1e-14);
    // lse is stored as float.
    EXPECT_LT(relErr(toDouble(lse), refLse), 1e-7);
  }
}

TEST(AttentionTest, SingleTokenReturnsItsValue) {
  std::mt19937_64 rng(13);
  const int64_t b = 2, h = 4, kv = 2, dh = 3;
  Vec q = randomVec(rng, b * h * dh), k = randomVec(rng, b * kv * dh);
  Vec v = randomVec(rng, k.size()), out(q.size());
  std::vector<float> lse(b * h);
  attentionFwd(q.data(), k.data(), v.data(), out.data(), lse.data(), b, 1, h,
               kv, dh, 0.5f);
  for (int64_t bb = 0; bb < b; ++bb)
    for (int64_t hh = 0; hh < h; ++hh) {
      double score = 0.0;
      for (int64_t t = 0; t < dh; ++t) {
        EXPECT_EQ(out[(bb * h + hh) * dh + t],
                  v[(bb * kv + hh / (h / kv)) * dh + t]);
        score += q[(bb * h + hh) * dh + t] * k[(bb * kv + hh / 2) * dh + t];
      }
      // One allowed key: lse is its scaled score.
      EXPECT_NEAR(lse[bb * h + hh], 0.5 * score, 1e-6);
    }
}

TEST(AttentionTest, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(14);
  for (const AttnShape &sh : kAttnShapes) {
    SCOPED_TRACE(testing::Message() << "H=" << sh.h << " KV=" << sh.kv);
    const float scale = 1.0f / std::sqrt(float(sh.dh));
    Vec q = randomVec(rng, sh.b * sh.s * sh.h * sh.dh);
    Vec k = randomVec(rng, sh.b * sh.s * sh.kv * sh.dh);
    Vec v = randomVec(rng, k.size()), proj = randomVec(rng, q.size());
    Vec out(q.size());
    std::vector<float> lse(sh.b * sh.h * sh.s);
    auto loss = [&] {
      attentionFwd(q.data(), k.data(), v.data(), out.data(), lse.data(), sh.b,
                   sh.s, sh.h, sh.kv, sh.dh, scale);
      return dotVec(proj, out);
    };
    loss();
    Vec dq(q.size()), dk(k.size()), dv(v.size());
    attentionBwd(proj.data(), q.data(), k.data(), v.data(), out.data(),
                 lse.data(), dq.data(), dk.data(), dv.data(), sh.b, sh.s, sh.h,
                 sh.kv, sh.dh, scale);
    // P is recomputed from the float lse, which bounds the accuracy of the
    // double instantiation to ~1e-7 relative.
    EXPECT_LT(relErr(dq, fdGradient(q, loss)), kFdTol);
    EXPECT_LT(relErr(dk, fdGradient(k, loss)), kFdTol);
    EXPECT_LT(relErr(dv, fdGradient(v, loss)), kFdTol);
  }
}

//===----------------------------------------------------------------------===//
// SwiGLU
//===----------------------------------------------------------------------===//

TEST(SwigluTest, ForwardMatchesReference) {
  std::mt19937_64 rng(15);
  Vec g = randomVec(rng, 40, 6.0), u = randomVec(rng, 40), y(40);
  swigluFwd(g.data(), u.data(), y.data(), 40);
  Vec ref(40);
  for (int i = 0; i < 40; ++i)
    ref[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  EXPECT_LT(relErr(y, ref), 1e-14);
}

TEST(SwigluTest, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(16);
  const int64_t n = 40;
  Vec g = randomVec(rng, n, 6.0), u = randomVec(rng, n);
  Vec proj = randomVec(rng, n), y(n), dg(n), du(n);
  auto loss = [&] {
    swigluFwd(g.data(), u.data(), y.data(), n);
    return dotVec(proj, y);
  };
  swigluBwd(proj.data(), g.data(), u.data(), dg.data(), du.data(), n);
  EXPECT_LT(relErr(dg, fdGradient(g, loss)), kFdTol);
  EXPECT_LT(relErr(du, fdGradient(u, loss)), kFdTol);
}

//===----------------------------------------------------------------------===//
// Cross entropy
//===----------------------------------------------------------------------===//

TEST(CrossEntropyTest, ForwardMatchesReference) {
  std::mt19937_64 rng(17);
  const int64_t rows = 4, v = 9;
  Vec logits = randomVec(rng, rows * v, 3.0);
  std::vector<int32_t> targets = {8, 0, 3, 3};
  double ref = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    double z = 0.0;
    for (int64_t j = 0; j < v; ++j)
      z += std::exp(logits[r * v + j]);
    ref += std::log(z) - logits[r * v + targets[r]];
  }
  EXPECT_NEAR(
      crossEntropyFwd(logits.data(), targets.data(), rows, v, 1.0 / rows),
      ref / rows, 1e-14);
}

TEST(CrossEntropyTest, UniformLogitsGiveLogV) {
  const int64_t rows = 3, v = 50;
  Vec logits(rows * v, 2.5);
  std::vector<int32_t> targets = {0, 17, 49};
  EXPECT_NEAR(
      crossEntropyFwd(logits.data(), targets.data(), rows, v, 1.0 / rows),
      std::log(50.0), 1e-14);
}

TEST(CrossEntropyTest, LargeLogitsDoNotOverflow) {
  // exp(1000) overflows; the loss only depends on differences of logits.
  const int64_t v = 3;
  std::vector<float> logits = {1000.0f, 1001.0f, 999.0f};
  std::vector<int32_t> target = {1};
  const double expected =
      std::log(std::exp(-1.0) + 1.0 + std::exp(-2.0)); // Shifted by 1001.
  EXPECT_NEAR(crossEntropyFwd(logits.data(), target.data(), 1, v, 1.0),
              expected, 1e-12);
  std::vector<float> dlogits(v);
  crossEntropyBwd(logits.data(), target.data(), dlogits.data(), 1, v, 1.0,
                  1.0);
  for (float x : dlogits)
    EXPECT_TRUE(std::isfinite(x));
}

TEST(CrossEntropyTest, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(18);
  const int64_t rows = 4, v = 7;
  const double scale = 1.0 / 6.0, dloss = 0.7;
  Vec logits = randomVec(rng, rows * v, 3.0), dlogits(rows * v);
  std::vector<int32_t> targets = {6, 0, 3, 0};
  auto loss = [&] {
    return dloss *
           crossEntropyFwd(logits.data(), targets.data(), rows, v, scale);
  };
  crossEntropyBwd(logits.data(), targets.data(), dlogits.data(), rows, v,
                  scale, dloss);
  EXPECT_LT(relErr(dlogits, fdGradient(logits, loss)), kFdTol);
}

//===----------------------------------------------------------------------===//
// Vocabulary shards (tensor parallelism)
//===----------------------------------------------------------------------===//

namespace {

/// Columns [g * vl, (g + 1) * vl) of x [rows, v].
template <typename T>
std::vector<T> columns(const std::vector<T> &x, int64_t rows, int64_t v,
                       int64_t g, int64_t vl) {
  std::vector<T> out(rows * vl);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < vl; ++j)
      out[r * vl + j] = x[r * v + g * vl + j];
  return out;
}

/// The vocab-parallel loss and gradient of logits [rows, v] split into
/// `shards` column blocks, the statistics combined as the compiler's
/// all_reduces do (max of the maxima, sums of the rest, in T).
template <typename T>
double shardedCrossEntropy(const std::vector<T> &logits,
                           const std::vector<int32_t> &targets, int64_t rows,
                           int64_t v, int64_t shards, double scale,
                           double dloss, std::vector<T> &dlogits) {
  const int64_t vl = v / shards;
  std::vector<T> mx(rows, -std::numeric_limits<T>::infinity());
  std::vector<T> sum(rows, T(0)), target(rows, T(0)), part(rows);
  for (int64_t g = 0; g < shards; ++g) {
    rowMaxes(columns(logits, rows, v, g, vl).data(), part.data(), rows, vl);
    for (int64_t r = 0; r < rows; ++r)
      mx[r] = std::max(mx[r], part[r]);
  }
  for (int64_t g = 0; g < shards; ++g) {
    std::vector<T> block = columns(logits, rows, v, g, vl);
    rowSumExp(block.data(), mx.data(), part.data(), rows, vl);
    for (int64_t r = 0; r < rows; ++r)
      sum[r] += part[r];
    targetLogits(block.data(), targets.data(), part.data(), rows, vl, g * vl);
    for (int64_t r = 0; r < rows; ++r)
      target[r] += part[r];
  }
  dlogits.assign(rows * v, T(0));
  std::vector<T> dblock(rows * vl, T(123)); // garbage: overwritten
  for (int64_t g = 0; g < shards; ++g) {
    std::vector<T> block = columns(logits, rows, v, g, vl);
    crossEntropyBwdFromStats(block.data(), targets.data(), mx.data(),
                             sum.data(), dblock.data(), rows, vl, g * vl, scale,
                             dloss);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < vl; ++j)
        dlogits[r * v + g * vl + j] = dblock[r * vl + j];
  }
  return crossEntropyFromStats(mx.data(), sum.data(), target.data(), rows,
                               scale);
}

} // namespace

TEST(VocabShardTest, StatisticsMatchTheirDefinitions) {
  std::mt19937_64 rng(40);
  const int64_t rows = 3, v = 5;
  Vec x = randomVec(rng, rows * v, 4.0);
  Vec mx(rows), s(rows), t(rows, 99.0);
  rowMaxes(x.data(), mx.data(), rows, v);
  const Vec globalMax = {mx[0] + 0.5, mx[1], mx[2] + 2.0};
  rowSumExp(x.data(), globalMax.data(), s.data(), rows, v);
  // Targets below, inside and above the shard of columns [10, 15).
  std::vector<int32_t> targets = {9, 12, 15};
  targetLogits(x.data(), targets.data(), t.data(), rows, v, 10);
  for (int64_t r = 0; r < rows; ++r) {
    double m = x[r * v], z = 0.0;
    for (int64_t j = 0; j < v; ++j)
      m = std::max(m, x[r * v + j]);
    for (int64_t j = 0; j < v; ++j)
      z += std::exp(x[r * v + j] - globalMax[r]);
    EXPECT_EQ(mx[r], m) << r;
    EXPECT_NEAR(s[r], z, 1e-15 * z) << r;
  }
  EXPECT_EQ(t[0], 0.0);
  EXPECT_EQ(t[1], x[1 * v + 2]);
  EXPECT_EQ(t[2], 0.0);
  // loss = scale * sum_r (log s + m - t).
  const Vec stats[3] = {{0.0, 1.0}, {1.0, std::exp(2.0)}, {0.5, -1.0}};
  EXPECT_NEAR(crossEntropyFromStats(stats[0].data(), stats[1].data(),
                                    stats[2].data(), 2, 0.25),
              0.25 * ((0.0 + 0.0 - 0.5) + (2.0 + 1.0 + 1.0)), 1e-15);
}

TEST(VocabShardTest, ShardsRecombineToTheFullVocabularyLoss) {
  // Float, as the executor runs it: the loss and the gradient of every
  // split of the vocabulary equal crossEntropyFwd / crossEntropyBwd on the
  // full logits. Targets fall in every shard.
  std::mt19937_64 rng(41);
  const int64_t rows = 9, v = 24;
  const double scale = 1.0 / 13.0, dloss = 0.8;
  std::vector<float> logits = toFloat(randomVec(rng, rows * v, 6.0));
  std::vector<int32_t> targets(rows);
  for (int64_t r = 0; r < rows; ++r)
    targets[r] = int32_t((r * 7 + 3) % v);
  const double ref =
      crossEntropyFwd(logits.data(), targets.data(), rows, v, scale);
  std::vector<float> dref(rows * v);
  crossEntropyBwd(logits.data(), targets.data(), dref.data(), rows, v, scale,
                  dloss);
  for (int64_t shards : {1, 2, 3, 4, 8}) {
    std::vector<float> grad;
    const double loss = shardedCrossEntropy(logits, targets, rows, v, shards,
                                            scale, dloss, grad);
    EXPECT_NEAR(loss, ref, 1e-6 * std::abs(ref)) << shards << " shards";
    EXPECT_LT(relErr(toDouble(grad), toDouble(dref)), 1e-6)
        << shards << " shards";
  }
}

TEST(VocabShardTest, ShardedGradientMatchesFiniteDifferences) {
  // In double, the recombined gradient is the gradient of the recombined
  // loss.
  std::mt19937_64 rng(42);
  const int64_t rows = 4, v = 6, shards = 3;
  const double scale = 0.3, dloss = 1.7;
  Vec logits = randomVec(rng, rows * v, 3.0), grad;
  std::vector<int32_t> targets = {0, 3, 5, 2};
  shardedCrossEntropy(logits, targets, rows, v, shards, scale, dloss, grad);
  auto loss = [&] {
    Vec ignored;
    return dloss * shardedCrossEntropy(logits, targets, rows, v, shards, scale,
                                       1.0, ignored);
  };
  EXPECT_LT(relErr(grad, fdGradient(logits, loss)), kFdTol);
}

TEST(VocabShardTest, LargeLogitsDoNotOverflow) {
  std::vector<float> logits = {1000.0f, 1001.0f, 999.0f, 1000.5f};
  std::vector<int32_t> target = {1};
  std::vector<float> grad;
  const double loss =
      shardedCrossEntropy(logits, target, 1, 4, 2, 1.0, 1.0, grad);
  const double expected = std::log(std::exp(-1.0) + 1.0 + std::exp(-2.0) +
                                   std::exp(-0.5)); // shifted by 1001
  EXPECT_NEAR(loss, expected, 1e-6);
  for (float g : grad)
    EXPECT_TRUE(std::isfinite(g));
}

TEST(VocabShardTest, EmbeddingShardsAreBlocksOfTheFullKernel) {
  std::mt19937_64 rng(43);
  // d > 64 spans two column blocks of the backward.
  const int64_t v = 12, d = 70, shards = 3, vl = v / shards;
  std::vector<int32_t> ids = {11, 0, 4, 4, 7, 11, 3, 8, 4};
  const int64_t n = ids.size();
  Vec table = randomVec(rng, v * d), dy = randomVec(rng, n * d);
  Vec full(n * d), dfull(v * d);
  embeddingFwd(table.data(), ids.data(), full.data(), n, d, v);
  embeddingBwd(dy.data(), ids.data(), dfull.data(), n, d, v);
  Vec sum(n * d, 0.0);
  for (int64_t g = 0; g < shards; ++g) {
    Vec block(table.begin() + g * vl * d, table.begin() + (g + 1) * vl * d);
    Vec out(n * d, 7.0), dblock(vl * d, 7.0); // garbage: overwritten
    embeddingShardFwd(block.data(), ids.data(), out.data(), n, d, vl, g * vl);
    embeddingShardBwd(dy.data(), ids.data(), dblock.data(), n, d, vl, g * vl);
    for (int64_t r = 0; r < n; ++r) {
      const bool mine = ids[r] >= g * vl && ids[r] < (g + 1) * vl;
      for (int64_t j = 0; j < d; ++j) {
        // Its rows, or zeros: the shards add up to the full lookup.
        EXPECT_EQ(out[r * d + j], mine ? full[r * d + j] : 0.0);
        sum[r * d + j] += out[r * d + j];
      }
    }
    // The same sums in the same order: exactly the full gradient's rows.
    EXPECT_EQ(dblock,
              Vec(dfull.begin() + g * vl * d, dfull.begin() + (g + 1) * vl * d))
        << "shard " << g;
  }
  EXPECT_EQ(sum, full);
  // Ids of no shard (outside the vocabulary) give zero rows and no
  // gradient.
  std::vector<int32_t> outside = {-1, 12};
  Vec out(2 * d, 7.0), dblock(vl * d, 7.0);
  embeddingShardFwd(table.data(), outside.data(), out.data(), 2, d, vl, 0);
  embeddingShardBwd(dy.data(), outside.data(), dblock.data(), 2, d, vl, 8);
  EXPECT_EQ(out, Vec(2 * d, 0.0));
  EXPECT_EQ(dblock, Vec(vl * d, 0.0));
}

//===----------------------------------------------------------------------===//
// Blocks along a dimension
//===----------------------------------------------------------------------===//

TEST(BlocksTest, SplitConcatAndSliceFollowTheIndexFormula) {
  // x [outer, g * d, inner]; block b holds x[o, b * d + i, k] at
  // [o, i, k]. Small shapes and one large enough for the threaded loops.
  struct Shape {
    int64_t outer, g, d, inner;
  };
  for (Shape sh : {Shape{2, 2, 2, 3}, Shape{1, 3, 4, 5}, Shape{4, 3, 1, 1},
                   Shape{3, 4, 2, 1}, Shape{64, 4, 8, 40}}) {
    const int64_t block = sh.outer * sh.d * sh.inner, n = sh.g * block;
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i)
      x[i] = float(i);
    auto at = [&](int64_t o, int64_t j, int64_t k) {
      return x[(o * sh.g * sh.d + j) * sh.inner + k];
    };
    std::vector<float> blocks(n, -1.0f);
    splitBlocks(x.data(), blocks.data(), sh.g, sh.outer, sh.d, sh.inner);
    std::vector<float> one(block, -1.0f);
    bool ok = true;
    for (int64_t b = 0; b < sh.g; ++b) {
      sliceBlock(x.data(), one.data(), sh.outer, sh.d, sh.inner, sh.g, b);
      for (int64_t o = 0; o < sh.outer; ++o)
        for (int64_t i = 0; i < sh.d; ++i)
          for (int64_t k = 0; k < sh.inner; ++k) {
            const float want = at(o, b * sh.d + i, k);
            const int64_t e = (o * sh.d + i) * sh.inner + k;
            ok = ok && blocks[b * block + e] == want && one[e] == want;
          }
    }
    EXPECT_TRUE(ok) << sh.outer << "x" << sh.g << "*" << sh.d << "x"
                    << sh.inner;
    std::vector<float> back(n, -1.0f);
    concatBlocks(blocks.data(), back.data(), sh.g, sh.outer, sh.d, sh.inner);
    EXPECT_EQ(back, x) << sh.outer << "x" << sh.g << "*" << sh.d << "x"
                       << sh.inner;
  }
}

//===----------------------------------------------------------------------===//
// Elementwise and reductions
//===----------------------------------------------------------------------===//

TEST(ElementwiseTest, MatchesReference) {
  std::mt19937_64 rng(19);
  const int64_t n = 33;
  Vec a = randomVec(rng, n), b = randomVec(rng, n), y(n);

  add(a.data(), b.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], a[i] + b[i]);

  Vec acc = a;
  accumulate(b.data(), acc.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(acc[i], a[i] + b[i]);

  Vec inPlace = a;
  scale(inPlace.data(), inPlace.data(), n, -2.5);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(inPlace[i], a[i] * -2.5);

  clipByValue(a.data(), y.data(), n, 0.3);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], std::min(0.3, std::max(-0.3, a[i])));

  fill(y.data(), n, 4.25);
  for (double val : y)
    EXPECT_EQ(val, 4.25);

  copy(b.data(), y.data(), n);
  EXPECT_EQ(y, b);
}

TEST(ElementwiseTest, ClipPassesNanThrough) {
  std::vector<float> x = {std::nanf(""), 5.0f, -5.0f}, y(3);
  clipByValue(x.data(), y.data(), 3, 1.0);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], -1.0f);
}

TEST(ReductionTest, SumSquaresMatchesReference) {
  std::mt19937_64 rng(20);
  // Several of the implementation's fixed-size blocks plus a remainder.
  const int64_t n = 3 * 65536 + 123;
  std::vector<float> x = toFloat(randomVec(rng, n));
  long double ref = 0.0L;
  for (float val : x)
    ref += (long double)val * val;
  EXPECT_NEAR(sumSquares(x.data(), n), double(ref), 1e-12 * double(ref));
  EXPECT_EQ(sumSquares<float>(nullptr, 0), 0.0);
}

TEST(ReductionTest, AllFiniteDetectsNanAndInf) {
  std::vector<float> x(1000, 1.0f);
  EXPECT_TRUE(allFinite(x.data(), 1000));
  x[999] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(allFinite(x.data(), 1000));
  x[999] = 1.0f;
  x[3] = std::nanf("");
  EXPECT_FALSE(allFinite(x.data(), 1000));
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

TEST(AdamWTest, FirstStepMatchesHandComputedValues) {
  // From m = v = 0, one step gives m_hat = g and v_hat = g^2, so p moves by
  // lr * g / (|g| + eps) after decay. Values worked out by hand:
  //   p = 1.0,  g = 0.5, lr = 0.1, wd = 0.1:
  //     1.0 * (1 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8) = 0.890000002
  //   p = -0.5, g = -2:
  //     -0.5 * 0.99 + 0.1 * 2 / (2 + 1e-8) = -0.3950000005
  std::vector<double> p = {1.0, -0.5}, g = {0.5, -2.0}, m(2, 0.0), v(2, 0.0);
  adamw(p.data(), g.data(), m.data(), v.data(), 2, 0.1, 0.9, 0.95, 1e-8, 0.1,
        1);
  EXPECT_NEAR(p[0], 0.890000002, 1e-12);
  EXPECT_NEAR(p[1], -0.3950000005, 1e-12);
  EXPECT_NEAR(m[0], 0.05, 1e-15);
  EXPECT_NEAR(m[1], -0.2, 1e-15);
  EXPECT_NEAR(v[0], 0.0125, 1e-15);
  EXPECT_NEAR(v[1], 0.2, 1e-15);
}

TEST(AdamWTest, SeveralStepsMatchTorchFormula) {
  std::mt19937_64 rng(21);
  const int64_t n = 10;
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  Vec p = randomVec(rng, n), m(n, 0.0), v(n, 0.0);
  Vec rp = p, rm = m, rv = v;
  for (int64_t step = 1; step <= 4; ++step) {
    Vec g = randomVec(rng, n);
    adamw(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd,
          step);
    for (int64_t i = 0; i < n; ++i) {
      rp[i] -= lr * wd * rp[i];
      rm[i] = b1 * rm[i] + (1 - b1) * g[i];
      rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
      const double mHat = rm[i] / (1 - std::pow(b1, step));
      const double vHat = rv[i] / (1 - std::pow(b2, step));
      rp[i] -= lr * mHat / (std::sqrt(vHat) + eps);
    }
  }
  EXPECT_LT(relErr(p, rp), 1e-13);
  EXPECT_LT(relErr(m, rm), 1e-13);
  EXPECT_LT(relErr(v, rv), 1e-13);
}

//===----------------------------------------------------------------------===//
// Float vs double
//===----------------------------------------------------------------------===//

TEST(PrecisionTest, FloatAgreesWithDouble) {
  std::mt19937_64 rng(22);
  // Inputs are rounded to float first, so both instantiations see the same
  // numbers and only the kernels' own rounding differs.
  const AttnShape sh = {2, 5, 4, 2, 8};
  std::vector<float> qf = toFloat(randomVec(rng, sh.b * sh.s * sh.h * sh.dh));
  std::vector<float> kf = toFloat(randomVec(rng, sh.b * sh.s * sh.kv * sh.dh));
  std::vector<float> vf = toFloat(randomVec(rng, kf.size()));
  std::vector<float> dof = toFloat(randomVec(rng, qf.size()));
  Vec qd = toDouble(qf), kd = toDouble(kf), vd = toDouble(vf),
      dod = toDouble(dof);
  std::vector<float> outf(qf.size()), lsef(sh.b * sh.h * sh.s), lsed(lsef);
  Vec outd(qf.size());
  attentionFwd(qf.data(), kf.data(), vf.data(), outf.data(), lsef.data(), sh.b,
               sh.s, sh.h, sh.kv, sh.dh, 0.35f);
  attentionFwd(qd.data(), kd.data(), vd.data(), outd.data(), lsed.data(), sh.b,
               sh.s, sh.h, sh.kv, sh.dh, 0.35f);
  EXPECT_LT(relErr(toDouble(outf), outd), 1e-6);
  // The float instantiation computes scores and their softmax in float, so
  // lse agrees to float accuracy rather than bit for bit.
  EXPECT_LT(relErr(toDouble(lsef), toDouble(lsed)), 1e-6);

  std::vector<float> dqf(qf.size()), dkf(kf.size()), dvf(vf.size());
  Vec dqd(qf.size()), dkd(kf.size()), dvd(vf.size());
  attentionBwd(dof.data(), qf.data(), kf.data(), vf.data(), outf.data(),
               lsef.data(), dqf.data(), dkf.data(), dvf.data(), sh.b, sh.s,
               sh.h, sh.kv, sh.dh, 0.35f);
  attentionBwd(dod.data(), qd.data(), kd.data(), vd.data(), outd.data(),
               lsed.data(), dqd.data(), dkd.data(), dvd.data(), sh.b, sh.s,
               sh.h, sh.kv, sh.dh, 0.35f);
  EXPECT_LT(relErr(toDouble(dqf), dqd), 1e-5);
  EXPECT_LT(relErr(toDouble(dkf), dkd), 1e-5);
  EXPECT_LT(relErr(toDouble(dvf), dvd), 1e-5);

  const int64_t rows = 6, d = 16;
  std::vector<float> xf = toFloat(randomVec(rng, rows * d));
  std::vector<float> wf = toFloat(randomVec(rng, d * d));
  Vec xd = toDouble(xf), wd = toDouble(wf);
  std::vector<float> yf(rows * d);
  Vec yd(rows * d);
  rmsNormFwd(xf.data(), wf.data(), yf.data(), rows, d, 1e-6f);
  rmsNormFwd(xd.data(), wd.data(), yd.data(), rows, d, 1e-6f);
  EXPECT_LT(relErr(toDouble(yf), yd), 1e-6);

  linearFwd(xf.data(), wf.data(), yf.data(), rows, d, d);
  linearFwd(xd.data(), wd.data(), yd.data(), rows, d, d);
  EXPECT_LT(relErr(toDouble(yf), yd), 1e-5);

  std::vector<int32_t> targets = {1, 15, 2, 2, 0, 9};
  const double lf = crossEntropyFwd(xf.data(), targets.data(), rows, d, 0.5);
  const double ld = crossEntropyFwd(xd.data(), targets.data(), rows, d, 0.5);
  EXPECT_NEAR(lf, ld, 1e-12 * std::abs(ld));
}

//===----------------------------------------------------------------------===//
// Determinism
//===----------------------------------------------------------------------===//

TEST(DeterminismTest, RerunsAreBitIdenticalAcrossThreadCounts) {
  // Sizes are above the kernels' serial cut-off, so that the threaded paths
  // run. With one thread they match the small-size paths that the reference
  // and finite-difference tests cover; with three they must still match
  // bit for bit, since no split depends on the thread count.
  std::mt19937_64 rng(23);
  const AttnShape sh = {2, 32, 4, 2, 16};
  std::vector<float> q = toFloat(randomVec(rng, sh.b * sh.s * sh.h * sh.dh));
  std::vector<float> k = toFloat(randomVec(rng, sh.b * sh.s * sh.kv * sh.dh));
  std::vector<float> v = toFloat(randomVec(rng, k.size()));
  std::vector<float> dout = toFloat(randomVec(rng, q.size()));
  std::vector<float> out(q.size()), lse(sh.b * sh.h * sh.s);
  attentionFwd(q.data(), k.data(), v.data(), out.data(), lse.data(), sh.b,
               sh.s, sh.h, sh.kv, sh.dh, 0.25f);
  std::vector<float> big = toFloat(randomVec(rng, 5 * 65536 + 7));
  const int64_t rows = 64, d = 600, vocab = 50;
  std::vector<float> x = toFloat(randomVec(rng, rows * d));
  std::vector<float> w = toFloat(randomVec(rng, d));
  std::vector<float> dy = toFloat(randomVec(rng, rows * d));
  std::vector<int32_t> ids(rows);
  for (int32_t &id : ids)
    id = int32_t(rng() % 7); // Few distinct ids: many repeats.

  struct Result {
    std::vector<float> dq, dk, dv, dx, dw, dtable;
    double ss, ce;
  };
  auto run = [&] {
    Result r{std::vector<float>(q.size()),
             std::vector<float>(k.size()),
             std::vector<float>(v.size()),
             std::vector<float>(rows * d),
             std::vector<float>(d),
             std::vector<float>(vocab * d),
             0.0,
             0.0};
    attentionBwd(dout.data(), q.data(), k.data(), v.data(), out.data(),
                 lse.data(), r.dq.data(), r.dk.data(), r.dv.data(), sh.b, sh.s,
                 sh.h, sh.kv, sh.dh, 0.25f);
    r.ss = sumSquares(big.data(), int64_t(big.size()));
    rmsNormBwd(dy.data(), x.data(), w.data(), r.dx.data(), r.dw.data(), rows,
               d, 1e-5f);
    embeddingBwd(dy.data(), ids.data(), r.dtable.data(), rows, d, vocab);
    // The rows of x double as logits over a vocabulary of size d.
    r.ce = crossEntropyFwd(x.data(), ids.data(), rows, d, 1.0 / rows);
    return r;
  };
  auto bitEqual = [](const Result &a, const Result &b) {
    auto same = [](const std::vector<float> &x, const std::vector<float> &y) {
      return x.size() == y.size() &&
             std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    return same(a.dq, b.dq) && same(a.dk, b.dk) && same(a.dv, b.dv) &&
           same(a.dx, b.dx) && same(a.dw, b.dw) && same(a.dtable, b.dtable) &&
           std::memcmp(&a.ss, &b.ss, sizeof(double)) == 0 &&
           std::memcmp(&a.ce, &b.ce, sizeof(double)) == 0;
  };

  const Result first = run();
  EXPECT_TRUE(bitEqual(first, run()));
  withThreads(1, [&] { EXPECT_TRUE(bitEqual(first, run())); });
  withThreads(3, [&] { EXPECT_TRUE(bitEqual(first, run())); });
}

TEST(ThreadsTest, SetNumThreadsSetsTheOpenMpTeam) {
  const int saved = omp_get_max_threads();
  setNumThreads(3);
  EXPECT_EQ(omp_get_max_threads(), 3);
  // GEMMs run on OpenMP's threads; OpenBLAS's own pool is not used.
  if (openblas_get_parallel() == OPENBLAS_THREAD) {
    EXPECT_EQ(openblas_get_num_threads(), 1);
  }
  setNumThreads(0); // Means 1.
  EXPECT_EQ(omp_get_max_threads(), 1);
  setNumThreads(saved);
  EXPECT_EQ(omp_get_max_threads(), saved);
}

} // namespace
