//===- CpuKernels.cpp - CPU implementation of the kernel contract --------===//
//
// The CPU backend of Kernels.h, and the numerical oracle of every other
// backend. GEMMs go to OpenBLAS; everything else is a plain OpenMP loop.
//
// Two rules shape every kernel below:
//  - Determinism. No atomics. Work is split over an output dimension so that
//    each output element is produced by exactly one iteration, and any
//    reduction runs in an order fixed by the data layout (sequential inside
//    an iteration, or fixed-size blocks whose partials are summed in order).
//    Apart from the GEMMs, results therefore do not even depend on the
//    thread count.
//  - Accuracy over speed. Sums, softmax statistics and transcendental
//    functions are computed in double and rounded to T once at the end, so
//    the float instantiation is as close to exact as float storage allows.
//
// NOTE: this file deliberately does not tile, vectorize by hand or fuse; the
// CPU backend exists for correctness and small runs.
//
//===----------------------------------------------------------------------===//

#include "llamac/runtime/Kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

namespace llamac {
namespace kernels {

namespace {

/// Columns handled by one iteration when a reduction over rows is split over
/// columns (rmsNormBwd's dw, embeddingBwd). Fixed, so the split does not
/// depend on the thread count.
constexpr int64_t kColumnBlock = 64;

/// Elements per partial sum in sumSquares. Fixed for the same reason.
constexpr int64_t kSumBlock = int64_t(1) << 16;

/// Below this much work (roughly, inner-loop iterations) a kernel runs on
/// the calling thread. Starting a team costs microseconds when cores are
/// idle, but on a loaded machine spinning workers can cost milliseconds per
/// region, which dominates small models and the finite-difference tests.
/// Results are the same either way: no kernel's split depends on the thread
/// count.
constexpr int64_t kMinParallelWork = int64_t(1) << 15;

/// OpenBLAS takes 32-bit dimensions; a larger one would silently wrap, so it
/// is treated as the precondition violation it is.
blasint toBlasInt(int64_t x, const char *what) {
  if (x > std::numeric_limits<blasint>::max()) {
    std::fprintf(stderr,
                 "llamac: GEMM dimension %s = %lld exceeds the BLAS integer "
                 "range\n",
                 what, static_cast<long long>(x));
    std::abort();
  }
  return static_cast<blasint>(x);
}

/// Row-major C[m, n] = op(A) * op(B) with C overwritten. Degenerate shapes
/// are handled here because OpenBLAS rejects leading dimensions of 0.
template <typename T>
void gemm(CBLAS_TRANSPOSE transA, CBLAS_TRANSPOSE transB, int64_t m,
          int64_t n, int64_t k, const T *a, int64_t lda, const T *b,
          int64_t ldb, T *c, int64_t ldc) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    // An empty sum: the product is zero, and "overwrites" still holds.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = T(0);
    return;
  }
  blasint bm = toBlasInt(m, "M"), bn = toBlasInt(n, "N"),
          bk = toBlasInt(k, "K");
  blasint blda = toBlasInt(lda, "lda"), bldb = toBlasInt(ldb, "ldb"),
          bldc = toBlasInt(ldc, "ldc");
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, transA, transB, bm, bn, bk, 1.0f, a, blda, b,
                bldb, 0.0f, c, bldc);
  else
    cblas_dgemm(CblasRowMajor, transA, transB, bm, bn, bk, 1.0, a, blda, b,
                bldb, 0.0, c, bldc);
}

template <typename T> double dot(const T *a, const T *b, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i)
    acc += double(a[i]) * double(b[i]);
  return acc;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

} // namespace

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

template <typename T>
void embeddingFwd(const T *table, const int32_t *ids, T *out, int64_t n,
                  int64_t d, int64_t v) {
  (void)v;
#pragma omp parallel for schedule(static) if (n * d >= kMinParallelWork)
  for (int64_t r = 0; r < n; ++r) {
    const T *src = table + int64_t(ids[r]) * d;
    T *dst = out + r * d;
    for (int64_t j = 0; j < d; ++j)
      dst[j] = src[j];
  }
}

template <typename T>
void embeddingBwd(const T *dy, const int32_t *ids, T *dtable, int64_t n,
                  int64_t d, int64_t v) {
  fill(dtable, v * d, T(0));
  // Repeated ids make this a scatter-add. Splitting over columns gives each
  // iteration exclusive ownership of its slice of every table row, and the
  // tokens are visited in order, so no atomics and a fixed summation order.
  const int64_t blocks = (d + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * d >= kMinParallelWork)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock;
    const int64_t j1 = std::min(d, j0 + kColumnBlock);
    for (int64_t r = 0; r < n; ++r) {
      T *dst = dtable + int64_t(ids[r]) * d;
      const T *src = dy + r * d;
      for (int64_t j = j0; j < j1; ++j)
        dst[j] += src[j];
    }
  }
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

template <typename T>
void rmsNormFwd(const T *x, const T *w, T *y, int64_t rows, int64_t d,
                float eps) {
#pragma omp parallel for schedule(static) if (rows * d >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d;
    T *yr = y + r * d;
    const double rstd = 1.0 / std::sqrt(dot(xr, xr, d) / double(d) + eps);
    for (int64_t j = 0; j < d; ++j)
      yr[j] = T(double(w[j]) * (double(xr[j]) * rstd));
  }
}

template <typename T>
void rmsNormBwd(const T *dy, const T *x, const T *w, T *dx, T *dw,
                int64_t rows, int64_t d, float eps) {
  // With r = (mean(x^2) + eps)^(-1/2) and y_j = w_j x_j r:
  //   dx_j = r (dy_j w_j) - (r^3 / D) x_j sum_k dy_k w_k x_k
  //   dw_j = sum_rows dy_j x_j r
  // dx is row-local; dw reduces over rows, so it is a second pass split over
  // columns, which needs r of every row.
  std::vector<double> rstd(rows);
#pragma omp parallel for schedule(static) if (rows * d >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d;
    const T *dyr = dy + r * d;
    T *dxr = dx + r * d;
    const double rs = 1.0 / std::sqrt(dot(xr, xr, d) / double(d) + eps);
    double proj = 0.0;
    for (int64_t j = 0; j < d; ++j)
      proj += double(dyr[j]) * double(w[j]) * double(xr[j]);
    const double coef = rs * rs * rs * proj / double(d);
    for (int64_t j = 0; j < d; ++j)
      dxr[j] = T(rs * double(dyr[j]) * double(w[j]) - coef * double(xr[j]));
    rstd[r] = rs;
  }

  const int64_t blocks = (d + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (rows * d >= kMinParallelWork)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock;
    const int64_t j1 = std::min(d, j0 + kColumnBlock);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * d;
      const T *dyr = dy + r * d;
      for (int64_t j = j0; j < j1; ++j)
        acc[j - j0] += double(dyr[j]) * double(xr[j]) * rstd[r];
    }
    for (int64_t j = j0; j < j1; ++j)
      dw[j] = T(acc[j - j0]);
  }
}

//===----------------------------------------------------------------------===//
// Linear (OpenBLAS)
//===----------------------------------------------------------------------===//

template <typename T>
void linearFwd(const T *x, const T *w, T *y, int64_t m, int64_t n, int64_t k) {
  gemm<T>(CblasNoTrans, CblasTrans, m, n, k, x, k, w, k, y, n);
}

template <typename T>
void linearBwdInput(const T *dy, const T *w, T *dx, int64_t m, int64_t n,
                    int64_t k) {
  gemm<T>(CblasNoTrans, CblasNoTrans, m, k, n, dy, n, w, k, dx, k);
}

template <typename T>
void linearBwdWeight(const T *dy, const T *x, T *dw, int64_t m, int64_t n,
                     int64_t k) {
  gemm<T>(CblasTrans, CblasNoTrans, n, k, m, dy, n, x, k, dw, k);
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

template <typename T>
void rope(const T *x, T *y, int64_t b, int64_t s, int64_t h, int64_t dh,
          float theta, int64_t posOffset, bool inverse) {
  const int64_t half = dh / 2;
  // The angle grows with the position; computing it and its cos/sin in
  // double keeps long positions accurate in the float instantiation too.
  std::vector<double> cosTab(s * half), sinTab(s * half);
#pragma omp parallel for schedule(static) if (s * half >= kMinParallelWork)
  for (int64_t p = 0; p < s; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double invFreq =
          std::pow(double(theta), -2.0 * double(i) / double(dh));
      const double angle = double(posOffset + p) * invFreq;
      cosTab[p * half + i] = std::cos(angle);
      sinTab[p * half + i] = std::sin(angle);
    }
  }
  // The transpose of a rotation by `a` is the rotation by `-a`.
  const double sign = inverse ? -1.0 : 1.0;
#pragma omp parallel for schedule(static) \
    if (b * s * h * dh >= kMinParallelWork)
  for (int64_t row = 0; row < b * s; ++row) {
    const int64_t p = row % s;
    const double *c = cosTab.data() + p * half;
    const double *sn = sinTab.data() + p * half;
    for (int64_t hh = 0; hh < h; ++hh) {
      const T *xr = x + (row * h + hh) * dh;
      T *yr = y + (row * h + hh) * dh;
      for (int64_t i = 0; i < half; ++i) {
        // Read both halves before writing, so the loop is also correct if a
        // caller runs it in place.
        const double x1 = double(xr[i]), x2 = double(xr[i + half]);
        const double si = sign * sn[i];
        yr[i] = T(x1 * c[i] - x2 * si);
        yr[i + half] = T(x2 * c[i] + x1 * si);
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Causal GQA attention
//===----------------------------------------------------------------------===//

template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, T *out, float *lse,
                  int64_t b, int64_t s, int64_t h, int64_t kv, int64_t dh,
                  float scale) {
  const int64_t group = h / kv;
  const double sc = scale;
  // One iteration per query row (b, h, i), numbered like lse [B, H, S].
#pragma omp parallel if (b * h * s * s * dh >= kMinParallelWork)
  {
    std::vector<double> p(s), acc(dh);
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < b * h * s; ++idx) {
      const int64_t i = idx % s;
      const int64_t hh = (idx / s) % h;
      const int64_t bb = idx / (s * h);
      const int64_t g = hh / group;
      const T *qi = q + ((bb * s + i) * h + hh) * dh;

      // Two-pass softmax: scores and their max, then exponentials.
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= i; ++j) {
        p[j] = sc * dot(qi, k + ((bb * s + j) * kv + g) * dh, dh);
        mx = std::max(mx, p[j]);
      }
      double sum = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        const double e = std::exp(p[j] - mx);
        sum += e;
        const T *vj = v + ((bb * s + j) * kv + g) * dh;
        for (int64_t t = 0; t < dh; ++t)
          acc[t] += e * double(vj[t]);
      }
      T *oi = out + ((bb * s + i) * h + hh) * dh;
      for (int64_t t = 0; t < dh; ++t)
        oi[t] = T(acc[t] / sum);
      lse[idx] = float(mx + std::log(sum));
    }
  }
}

template <typename T>
void attentionBwd(const T *dout, const T *q, const T *k, const T *v,
                  const T *out, const float *lse, T *dq, T *dk, T *dv,
                  int64_t b, int64_t s, int64_t h, int64_t kv, int64_t dh,
                  float scale) {
  // With P recomputed as exp(score - lse), dP_ij = <dO_i, v_j> and
  // D_i = <dO_i, O_i> = sum_j P_ij dP_ij:
  //   dS_ij = P_ij (dP_ij - D_i)
  //   dq_i  = scale * sum_j dS_ij k_j
  //   dk_j  = scale * sum_{h in group, i >= j} dS_ij q_i
  //   dv_j  =         sum_{h in group, i >= j} P_ij dO_i
  // dq and dk/dv are produced by separate passes, each over its own output
  // rows, so every output element has one owner and a fixed summation order.
  // That recomputes P once more, in exchange for B*KV*S-way parallelism on
  // dk/dv without atomics.
  const int64_t group = h / kv;
  const double sc = scale;
  // Element offsets of row i of query head hh, and of row j of kv head g.
  auto qOff = [&](int64_t bb, int64_t i, int64_t hh) {
    return ((bb * s + i) * h + hh) * dh;
  };
  auto kvOff = [&](int64_t bb, int64_t j, int64_t g) {
    return ((bb * s + j) * kv + g) * dh;
  };

  std::vector<double> rowDot(b * h * s);
#pragma omp parallel for schedule(static) \
    if (b * h * s * dh >= kMinParallelWork)
  for (int64_t idx = 0; idx < b * h * s; ++idx) {
    const int64_t i = idx % s, hh = (idx / s) % h, bb = idx / (s * h);
    rowDot[idx] = dot(dout + qOff(bb, i, hh), out + qOff(bb, i, hh), dh);
  }

  // dq: one iteration per query row.
#pragma omp parallel if (b * h * s * s * dh >= kMinParallelWork)
  {
    std::vector<double> acc(dh);
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < b * h * s; ++idx) {
      const int64_t i = idx % s, hh = (idx / s) % h, bb = idx / (s * h);
      const int64_t g = hh / group;
      const T *qi = q + qOff(bb, i, hh);
      const T *doi = dout + qOff(bb, i, hh);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        const T *kj = k + kvOff(bb, j, g);
        const double pij = std::exp(sc * dot(qi, kj, dh) - double(lse[idx]));
        const double dpij = dot(doi, v + kvOff(bb, j, g), dh);
        const double dsij = pij * (dpij - rowDot[idx]);
        for (int64_t t = 0; t < dh; ++t)
          acc[t] += dsij * double(kj[t]);
      }
      T *dqi = dq + qOff(bb, i, hh);
      for (int64_t t = 0; t < dh; ++t)
        dqi[t] = T(sc * acc[t]);
    }
  }

  // dk, dv: one iteration per key row (b, kv head, j); the group's query
  // heads are summed inside, in head order.
#pragma omp parallel if (b * h * s * s * dh >= kMinParallelWork)
  {
    std::vector<double> accK(dh), accV(dh);
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < b * kv * s; ++idx) {
      const int64_t j = idx % s, g = (idx / s) % kv, bb = idx / (s * kv);
      const T *kj = k + kvOff(bb, j, g);
      const T *vj = v + kvOff(bb, j, g);
      std::fill(accK.begin(), accK.end(), 0.0);
      std::fill(accV.begin(), accV.end(), 0.0);
      for (int64_t hh = g * group; hh < (g + 1) * group; ++hh) {
        for (int64_t i = j; i < s; ++i) {
          const int64_t row = (bb * h + hh) * s + i;
          const T *qi = q + qOff(bb, i, hh);
          const T *doi = dout + qOff(bb, i, hh);
          const double pij = std::exp(sc * dot(qi, kj, dh) - double(lse[row]));
          const double dsij = pij * (dot(doi, vj, dh) - rowDot[row]);
          for (int64_t t = 0; t < dh; ++t) {
            accK[t] += dsij * double(qi[t]);
            accV[t] += pij * double(doi[t]);
          }
        }
      }
      T *dkj = dk + kvOff(bb, j, g);
      T *dvj = dv + kvOff(bb, j, g);
      for (int64_t t = 0; t < dh; ++t) {
        dkj[t] = T(sc * accK[t]);
        dvj[t] = T(accV[t]);
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// SwiGLU
//===----------------------------------------------------------------------===//

template <typename T>
void swigluFwd(const T *gate, const T *up, T *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    y[i] = T(g * sigmoid(g) * double(up[i]));
  }
}

template <typename T>
void swigluBwd(const T *dy, const T *gate, const T *up, T *dgate, T *dup,
               int64_t n) {
  // silu'(g) = sig(g) * (1 + g * (1 - sig(g))).
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], u = up[i], d = dy[i];
    const double sg = sigmoid(g);
    dgate[i] = T(d * u * sg * (1.0 + g * (1.0 - sg)));
    dup[i] = T(d * g * sg);
  }
}

//===----------------------------------------------------------------------===//
// Cross entropy
//===----------------------------------------------------------------------===//

namespace {
/// Numerically stable logsumexp of one row, in double.
template <typename T> double rowLogSumExp(const T *x, int64_t v) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < v; ++j)
    mx = std::max(mx, double(x[j]));
  double sum = 0.0;
  for (int64_t j = 0; j < v; ++j)
    sum += std::exp(double(x[j]) - mx);
  return mx + std::log(sum);
}
} // namespace

template <typename T>
double crossEntropyFwd(const T *logits, const int32_t *targets, int64_t rows,
                       int64_t v, double scale) {
  // Per-row losses first, then a sequential sum: the order is the row order
  // whatever the thread count.
  std::vector<double> rowLoss(rows);
#pragma omp parallel for schedule(static) if (rows * v >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = logits + r * v;
    rowLoss[r] = rowLogSumExp(x, v) - double(x[targets[r]]);
  }
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r)
    total += rowLoss[r];
  return scale * total;
}

template <typename T>
void crossEntropyBwd(const T *logits, const int32_t *targets, T *dlogits,
                     int64_t rows, int64_t v, double scale, double dloss) {
  const double coef = dloss * scale;
#pragma omp parallel for schedule(static) if (rows * v >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = logits + r * v;
    T *dx = dlogits + r * v;
    const double lse = rowLogSumExp(x, v);
    for (int64_t j = 0; j < v; ++j)
      dx[j] = T(coef * std::exp(double(x[j]) - lse));
    const int64_t t = targets[r];
    dx[t] = T(coef * (std::exp(double(x[t]) - lse) - 1.0));
  }
}

//===----------------------------------------------------------------------===//
// Elementwise and reductions
//===----------------------------------------------------------------------===//

template <typename T> void add(const T *a, const T *b, T *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

template <typename T> void accumulate(const T *x, T *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    y[i] += x[i];
}

template <typename T> void scale(const T *x, T *y, int64_t n, double s) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    y[i] = T(double(x[i]) * s);
}

template <typename T>
void clipByValue(const T *x, T *y, int64_t n, double limit) {
  const T hi = T(limit), lo = T(-limit);
  // Written with comparisons rather than std::clamp so that NaN passes
  // through unchanged, as torch.clamp does.
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    T val = x[i];
    if (val > hi)
      val = hi;
    else if (val < lo)
      val = lo;
    y[i] = val;
  }
}

template <typename T> double sumSquares(const T *x, int64_t n) {
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(blocks);
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t i0 = blk * kSumBlock;
    partial[blk] = dot(x + i0, x + i0, std::min(kSumBlock, n - i0));
  }
  double total = 0.0;
  for (int64_t blk = 0; blk < blocks; ++blk)
    total += partial[blk];
  return total;
}

template <typename T> bool allFinite(const T *x, int64_t n) {
  // A logical AND is order-independent, so an OpenMP reduction is exact.
  int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok) \
    if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    ok = ok && std::isfinite(x[i]);
  return ok != 0;
}

template <typename T> void fill(T *y, int64_t n, T value) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    y[i] = value;
}

template <typename T> void copy(const T *x, T *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i)
    y[i] = x[i];
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

template <typename T>
void adamw(T *p, const T *g, T *m, T *v, int64_t n, double lr, double beta1,
           double beta2, double eps, double weightDecay, int64_t step) {
  // Same operation order as torch.optim.AdamW (single-tensor, non-amsgrad);
  // the scalar factors are computed once, in double, as torch does in Python.
  const double decay = 1.0 - lr * weightDecay;
  const double stepSize = lr / (1.0 - std::pow(beta1, double(step)));
  const double bc2Sqrt = std::sqrt(1.0 - std::pow(beta2, double(step)));
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const double gi = g[i];
    const double pi = double(p[i]) * decay;
    const double mi = beta1 * double(m[i]) + (1.0 - beta1) * gi;
    const double vi = beta2 * double(v[i]) + (1.0 - beta2) * gi * gi;
    m[i] = T(mi);
    v[i] = T(vi);
    p[i] = T(pi - stepSize * mi / (std::sqrt(vi) / bc2Sqrt + eps));
  }
}

//===----------------------------------------------------------------------===//
// Explicit instantiations
//===----------------------------------------------------------------------===//

#define LLAMAC_INSTANTIATE_CPU_KERNELS(T)                                      \
  template void embeddingFwd<T>(const T *, const int32_t *, T *, int64_t,      \
                                int64_t, int64_t);                             \
  template void embeddingBwd<T>(const T *, const int32_t *, T *, int64_t,      \
                                int64_t, int64_t);                             \
  template void rmsNormFwd<T>(const T *, const T *, T *, int64_t, int64_t,     \
                              float);                                          \
  template void rmsNormBwd<T>(const T *, const T *, const T *, T *, T *,       \
                              int64_t, int64_t, float);                        \
  template void linearFwd<T>(const T *, const T *, T *, int64_t, int64_t,      \
                             int64_t);                                         \
  template void linearBwdInput<T>(const T *, const T *, T *, int64_t, int64_t, \
                                  int64_t);                                    \
  template void linearBwdWeight<T>(const T *, const T *, T *, int64_t,         \
                                   int64_t, int64_t);                          \
  template void rope<T>(const T *, T *, int64_t, int64_t, int64_t, int64_t,    \
                        float, int64_t, bool);                                 \
  template void attentionFwd<T>(const T *, const T *, const T *, T *, float *, \
                                int64_t, int64_t, int64_t, int64_t, int64_t,   \
                                float);                                        \
  template void attentionBwd<T>(const T *, const T *, const T *, const T *,    \
                                const T *, const float *, T *, T *, T *,       \
                                int64_t, int64_t, int64_t, int64_t, int64_t,   \
                                float);                                        \
  template void swigluFwd<T>(const T *, const T *, T *, int64_t);              \
  template void swigluBwd<T>(const T *, const T *, const T *, T *, T *,        \
                             int64_t);                                         \
  template double crossEntropyFwd<T>(const T *, const int32_t *, int64_t,      \
                                     int64_t, double);                         \
  template void crossEntropyBwd<T>(const T *, const int32_t *, T *, int64_t,   \
                                   int64_t, double, double);                   \
  template void add<T>(const T *, const T *, T *, int64_t);                    \
  template void accumulate<T>(const T *, T *, int64_t);                        \
  template void scale<T>(const T *, T *, int64_t, double);                     \
  template void clipByValue<T>(const T *, T *, int64_t, double);               \
  template double sumSquares<T>(const T *, int64_t);                           \
  template bool allFinite<T>(const T *, int64_t);                              \
  template void fill<T>(T *, int64_t, T);                                      \
  template void copy<T>(const T *, T *, int64_t);                              \
  template void adamw<T>(T *, const T *, T *, T *, int64_t, double, double,    \
                         double, double, double, int64_t);

LLAMAC_INSTANTIATE_CPU_KERNELS(float)
LLAMAC_INSTANTIATE_CPU_KERNELS(double)

#undef LLAMAC_INSTANTIATE_CPU_KERNELS

} // namespace kernels
} // namespace llamac
