//===- CpuKernels.cpp - CPU implementation of the kernel contract --------===//
//
// The CPU backend of Kernels.h, and the numerical oracle of every other
// backend. GEMMs go to OpenBLAS; everything else is OpenMP loops.
//
// Three rules shape every kernel below:
//  - Determinism. No atomics. Work is split over an output dimension so that
//    each output element is produced by exactly one iteration, and any
//    reduction runs in an order fixed by the data layout (inside an
//    iteration, or fixed-size blocks whose partials are summed in order).
//    Apart from the linear layers' GEMMs, results therefore do not even
//    depend on the thread count: attention runs its GEMMs serially, one
//    (batch, kv head) per iteration.
//  - Accuracy where it is observed. Statistics (norm statistics, losses,
//    sums of squares, softmax normalizers) are accumulated in double. The
//    double instantiation evaluates every exp in double, so finite-difference
//    tests stay meaningful. The float instantiation computes elementwise
//    results in float, exponentials with expFloat (within 1.5 ulp), since
//    they are stored as float anyway; attention's scores and softmax are
//    float GEMMs and float arithmetic, as in any float framework, and agree
//    with the double instantiation to ~5e-7.
//  - Speed. Attention is tiled GEMMs on the [B, S, H, Dh] layout that skip
//    the masked upper triangle; the elementwise loops vectorize. Loops with
//    arithmetic are compiled twice, for the build's baseline ISA and for
//    x86-64-v3 (AVX2 + FMA), and the dynamic loader picks the clone the CPU
//    supports, so the binary stays portable (LLAMAC_MULTIVERSION).
//
// Threads: one pool, OpenMP's. GEMMs are split over the OpenMP threads and
// each part is a single-threaded BLAS call (gemmParallel); attention calls
// BLAS from inside its own parallel loop. OpenBLAS's own pool stays idle.
// setNumThreads() sets both libraries accordingly.
//
//===----------------------------------------------------------------------===//

#include "Parallel.h"
#include "llamac/runtime/Kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

/// Compiles a function for x86-64-v3 and for the baseline ISA; the clone is
/// chosen once at load time (GNU ifunc). OpenMP regions inside are cloned
/// with it. Only GCC on x86-64: elsewhere it is the plain function.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&       \
    defined(__linux__)
#define LLAMAC_MULTIVERSION                                                    \
  __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LLAMAC_MULTIVERSION
#endif

/// Helpers of hot loops are always inlined, so that they are compiled for the
/// ISA of the clone that calls them (a call would run the baseline version).
#if defined(__GNUC__)
#define LLAMAC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LLAMAC_ALWAYS_INLINE inline
#endif

namespace llamac {
namespace kernels {

namespace {

/// Columns handled by one iteration when a reduction over rows is split over
/// columns (rmsNormBwd's dw, embeddingBwd). Fixed, so the split does not
/// depend on the thread count.
constexpr int64_t kColumnBlock = 64;

/// Elements per partial sum in sumSquares. Fixed for the same reason.
constexpr int64_t kSumBlock = int64_t(1) << 16;

/// Query rows per attention tile. A tile of rows [i0, i0 + 64) multiplies
/// keys [0, i0 + 64) only, so the GEMMs compute 1/2 + 32/S of the full score
/// matrix instead of all of it, in GEMMs still large enough for BLAS.
constexpr int64_t kAttnTile = 64;

//===----------------------------------------------------------------------===//
// Scalar helpers
//===----------------------------------------------------------------------===//

template <typename To, typename From> To bitCast(From x) {
  static_assert(sizeof(To) == sizeof(From), "bitCast between sizes");
  To y;
  std::memcpy(&y, &x, sizeof(To));
  return y;
}

/// exp(x) in float, within 1.5 ulp of the exact value for x in
/// [-87.3, 88] (max 1.0 ulp measured over 4M random arguments); branch-free
/// so that loops calling it vectorize. Arguments are clamped to that range:
/// below it the result is ~1.2e-38 instead of a subnormal or 0, above it
/// exp(88) instead of a larger number or inf. NaN propagates. Every caller
/// uses the result next to terms of order 1 (1 + e, or a softmax row whose
/// sum is at least 1), where both differences are below rounding. Cephes
/// expf: x = n ln2 + r with
/// |r| <= ln2 / 2, a degree-7 polynomial for exp(r), 2^n from the bits.
LLAMAC_ALWAYS_INLINE float expFloat(float x) {
  constexpr float kHi = 88.0f, kLo = -87.33654f;
  x = x > kHi ? kHi : x;
  x = x < kLo ? kLo : x;
  // t = n + 1.5 * 2^23 rounds x / ln2 to the integer n, which then sits in
  // the low mantissa bits of t.
  constexpr float kShift = 12582912.0f;
  const float t = x * 1.44269504088896341f + kShift;
  const float n = t - kShift;
  float r = x - n * 0.693359375f; // ln2, split so n * hi is exact.
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n: n + 127 into the exponent field (the low 9 bits of bits(t) + 127).
  return p * bitCast<float>((bitCast<uint32_t>(t) + 127u) << 23);
}

/// exp(x) in double, within 1 ulp for x in [-708.39, 709] (max 0.62 ulp
/// measured); branch-free so that loops vectorize. Clamped like expFloat.
/// The same reduction with a degree-13 Taylor polynomial, whose truncation
/// error (|r|^14 / 14! < 2e-17) is below double rounding.
LLAMAC_ALWAYS_INLINE double expDouble(double x) {
  constexpr double kHi = 709.0, kLo = -708.3964185322641;
  x = x > kHi ? kHi : x;
  x = x < kLo ? kLo : x;
  constexpr double kShift = 6755399441055744.0; // 1.5 * 2^52
  const double t = x * 1.4426950408889634 + kShift;
  const double n = t - kShift;
  double r = x - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * bitCast<double>((bitCast<uint64_t>(t) + 1023u) << 52);
}

/// The exp of elementwise kernels: expFloat for float, libm's exp for
/// double (the finite-difference instantiation).
LLAMAC_ALWAYS_INLINE float expT(float x) { return expFloat(x); }
LLAMAC_ALWAYS_INLINE double expT(double x) { return std::exp(x); }

/// Sum of a[i] * b[i] in double. The simd reduction fixes the order per
/// build and ISA clone, independent of the thread count.
template <typename T>
LLAMAC_ALWAYS_INLINE double dot(const T *a, const T *b, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i)
    acc += double(a[i]) * double(b[i]);
  return acc;
}

/// Largest element of x[0, n), n >= 1.
template <typename T> LLAMAC_ALWAYS_INLINE T rowMax(const T *x, int64_t n) {
  T mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int64_t j = 1; j < n; ++j)
    mx = x[j] > mx ? x[j] : mx;
  return mx;
}

//===----------------------------------------------------------------------===//
// BLAS
//===----------------------------------------------------------------------===//

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

/// Row-major C[m, n] = alpha * op(A) * op(B) + beta * C. Degenerate shapes
/// are handled here because OpenBLAS rejects leading dimensions of 0.
template <typename T>
void gemm(CBLAS_TRANSPOSE transA, CBLAS_TRANSPOSE transB, int64_t m,
          int64_t n, int64_t k, T alpha, const T *a, int64_t lda, const T *b,
          int64_t ldb, T beta, T *c, int64_t ldc) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    // An empty sum: the product is zero.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  blasint bm = toBlasInt(m, "M"), bn = toBlasInt(n, "N"),
          bk = toBlasInt(k, "K");
  blasint blda = toBlasInt(lda, "lda"), bldb = toBlasInt(ldb, "ldb"),
          bldc = toBlasInt(ldc, "ldc");
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, transA, transB, bm, bn, bk, alpha, a, blda, b,
                bldb, beta, c, bldc);
  else
    cblas_dgemm(CblasRowMajor, transA, transB, bm, bn, bk, alpha, a, blda, b,
                bldb, beta, c, bldc);
}

/// Switches OpenBLAS to one thread for its lifetime, so that GEMMs called
/// from inside an OpenMP region neither start a BLAS team per call (the
/// pthreads build does not know about OpenMP) nor depend on the thread
/// count. Only the pthreads build is touched: the OpenMP build already runs
/// serially inside a parallel region, and setting its thread count would set
/// ours. NOTE: the setting is process-wide; kernels are not meant to be
/// called concurrently from several threads.
class SerialBlasScope {
public:
  SerialBlasScope() {
    if (openblas_get_parallel() == OPENBLAS_THREAD) {
      saved_ = openblas_get_num_threads();
      if (saved_ > 1)
        openblas_set_num_threads(1);
    }
  }
  ~SerialBlasScope() {
    if (saved_ > 1)
      openblas_set_num_threads(saved_);
  }
  SerialBlasScope(const SerialBlasScope &) = delete;
  SerialBlasScope &operator=(const SerialBlasScope &) = delete;

private:
  int saved_ = 0;
};

constexpr int kScratchSlots = 6;

/// Per-thread scratch buffer `slot` of at least n elements. It grows to the
/// largest request and is then reused, so a training loop does not allocate
/// per call.
template <typename T> T *threadScratch(int slot, size_t n) {
  thread_local std::vector<T> buffers[kScratchSlots];
  std::vector<T> &buf = buffers[slot];
  if (buf.size() < n)
    buf.resize(n);
  return buf.data();
}

} // namespace

void setNumThreads(int n) {
  n = std::max(n, 1);
  // The kernels run every GEMM on OpenMP threads (gemmParallel). OpenBLAS's
  // pthreads build would add a second pool, so it gets one thread; its
  // OpenMP build shares OpenMP's pool, and setting its count sets OpenMP's.
  openblas_set_num_threads(openblas_get_parallel() == OPENBLAS_OPENMP ? n
                                                                      : 1);
  omp_set_num_threads(n);
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

template <typename T>
void embeddingShardFwd(const T *table, const int32_t *ids, T *out, int64_t n,
                       int64_t d, int64_t v, int64_t begin) {
#pragma omp parallel for schedule(static) if (n * d >= kMinParallelWork)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t row = int64_t(ids[r]) - begin;
    if (row >= 0 && row < v)
      std::copy_n(table + row * d, d, out + r * d);
    else
      std::fill_n(out + r * d, d, T(0));
  }
}

template <typename T>
LLAMAC_MULTIVERSION void embeddingShardBwd(const T *dy, const int32_t *ids,
                                           T *dtable, int64_t n, int64_t d,
                                           int64_t v, int64_t begin) {
  fill(dtable, v * d, T(0));
  // Repeated ids make this a scatter-add. Splitting over columns gives each
  // iteration exclusive ownership of its slice of every table row, and the
  // tokens are visited in order, so no atomics and a fixed summation order.
  // Tokens of other shards are skipped.
  const int64_t blocks = (d + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * d >= kMinParallelWork)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock;
    const int64_t j1 = std::min(d, j0 + kColumnBlock);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = int64_t(ids[r]) - begin;
      if (row < 0 || row >= v)
        continue;
      T *dst = dtable + row * d;
      const T *src = dy + r * d;
      for (int64_t j = j0; j < j1; ++j)
        dst[j] += src[j];
    }
  }
}

/// The whole table is the shard of rows [0, v).
template <typename T>
void embeddingFwd(const T *table, const int32_t *ids, T *out, int64_t n,
                  int64_t d, int64_t v) {
  embeddingShardFwd(table, ids, out, n, d, v, /*begin=*/0);
}

template <typename T>
void embeddingBwd(const T *dy, const int32_t *ids, T *dtable, int64_t n,
                  int64_t d, int64_t v) {
  embeddingShardBwd(dy, ids, dtable, n, d, v, /*begin=*/0);
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

template <typename T>
LLAMAC_MULTIVERSION void rmsNormFwd(const T *x, const T *w, T *y,
                                    int64_t rows, int64_t d, float eps) {
#pragma omp parallel for schedule(static) if (rows * d >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d;
    T *yr = y + r * d;
    const T rstd = T(1.0 / std::sqrt(dot(xr, xr, d) / double(d) + eps));
    for (int64_t j = 0; j < d; ++j)
      yr[j] = w[j] * (xr[j] * rstd);
  }
}

template <typename T>
LLAMAC_MULTIVERSION void rmsNormBwd(const T *dy, const T *x, const T *w,
                                    T *dx, T *dw, int64_t rows, int64_t d,
                                    float eps) {
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
#pragma omp simd reduction(+ : proj)
    for (int64_t j = 0; j < d; ++j)
      proj += double(dyr[j]) * double(w[j]) * double(xr[j]);
    const T a = T(rs), c = T(rs * rs * rs * proj / double(d));
    for (int64_t j = 0; j < d; ++j)
      dxr[j] = a * (dyr[j] * w[j]) - c * xr[j];
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
      const double rs = rstd[r];
      for (int64_t j = j0; j < j1; ++j)
        acc[j - j0] += double(dyr[j]) * double(xr[j]) * rs;
    }
    for (int64_t j = j0; j < j1; ++j)
      dw[j] = T(acc[j - j0]);
  }
}

//===----------------------------------------------------------------------===//
// Linear (OpenBLAS)
//===----------------------------------------------------------------------===//

namespace {

/// Below this many multiply-adds a GEMM runs on the calling thread.
constexpr int64_t kMinParallelGemm = int64_t(1) << 20;

/// Rows (or columns) of C per thread are a multiple of this, so that blocks
/// split on whole register tiles of the BLAS kernels.
constexpr int64_t kGemmSplitAlign = 16;

/// C[m, n] = op(A) * op(B) on the OpenMP threads: C is cut into one block of
/// rows per thread (of columns when it is wider than tall), each a
/// single-threaded BLAS call. The kernels then use one thread pool,
/// OpenMP's. With OpenBLAS's own pool as well, the two pools' idle workers
/// spin while the other pool works; on 2 cores that halved the throughput of
/// a training step (2,100 instead of 4,100 tokens/s on the `small` preset).
/// The result is deterministic for a fixed thread count.
template <typename T>
void gemmParallel(CBLAS_TRANSPOSE transA, CBLAS_TRANSPOSE transB, int64_t m,
                  int64_t n, int64_t k, const T *a, int64_t lda, const T *b,
                  int64_t ldb, T *c, int64_t ldc) {
  const bool splitRows = m >= n;
  const int64_t dim = splitRows ? m : n;
  int64_t parts = std::min<int64_t>(omp_get_max_threads(),
                                    (dim + kGemmSplitAlign - 1) /
                                        kGemmSplitAlign);
  SerialBlasScope serialBlas;
  if (parts <= 1 || m * n * k < kMinParallelGemm || omp_in_parallel()) {
    gemm<T>(transA, transB, m, n, k, T(1), a, lda, b, ldb, T(0), c, ldc);
    return;
  }
  const int64_t chunk = ((dim + parts - 1) / parts + kGemmSplitAlign - 1) /
                        kGemmSplitAlign * kGemmSplitAlign;
  parts = (dim + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(int(parts))
  for (int64_t part = 0; part < parts; ++part) {
    const int64_t lo = part * chunk, len = std::min(chunk, dim - lo);
    if (splitRows)
      gemm<T>(transA, transB, len, n, k, T(1),
              transA == CblasNoTrans ? a + lo * lda : a + lo, lda, b, ldb,
              T(0), c + lo * ldc, ldc);
    else
      gemm<T>(transA, transB, m, len, k, T(1), a, lda,
              transB == CblasNoTrans ? b + lo : b + lo * ldb, ldb, T(0),
              c + lo, ldc);
  }
}

} // namespace

template <typename T>
void linearFwd(const T *x, const T *w, T *y, int64_t m, int64_t n, int64_t k) {
  gemmParallel<T>(CblasNoTrans, CblasTrans, m, n, k, x, k, w, k, y, n);
}

template <typename T>
void linearBwdInput(const T *dy, const T *w, T *dx, int64_t m, int64_t n,
                    int64_t k) {
  gemmParallel<T>(CblasNoTrans, CblasNoTrans, m, k, n, dy, n, w, k, dx, k);
}

template <typename T>
void linearBwdWeight(const T *dy, const T *x, T *dw, int64_t m, int64_t n,
                     int64_t k) {
  gemmParallel<T>(CblasTrans, CblasNoTrans, n, k, m, dy, n, x, k, dw, k);
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

template <typename T>
LLAMAC_MULTIVERSION void rope(const T *x, T *y, int64_t b, int64_t s,
                              int64_t h, int64_t dh, float theta,
                              int64_t posOffset, bool inverse) {
  const int64_t half = dh / 2;
  // The angle grows with the position; computing it and its cos/sin in
  // double keeps long positions accurate in the float instantiation too.
  // The transpose of a rotation by `a` is the rotation by `-a`.
  const double sign = inverse ? -1.0 : 1.0;
  std::vector<double> invFreq(half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = std::pow(double(theta), -2.0 * double(i) / double(dh));
  std::vector<T> cosTab(s * half), sinTab(s * half);
#pragma omp parallel for schedule(static) if (s * half >= kMinParallelWork)
  for (int64_t p = 0; p < s; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(posOffset + p) * invFreq[i];
      cosTab[p * half + i] = T(std::cos(angle));
      sinTab[p * half + i] = T(sign * std::sin(angle));
    }
  }
#pragma omp parallel for schedule(static) \
    if (b * s * h * dh >= kMinParallelWork)
  for (int64_t row = 0; row < b * s; ++row) {
    const int64_t p = row % s;
    const T *c = cosTab.data() + p * half;
    const T *sn = sinTab.data() + p * half;
    for (int64_t hh = 0; hh < h; ++hh) {
      const T *xr = x + (row * h + hh) * dh;
      T *yr = y + (row * h + hh) * dh;
      for (int64_t i = 0; i < half; ++i) {
        // Read both halves before writing, so the loop is also correct if a
        // caller runs it in place.
        const T x1 = xr[i], x2 = xr[i + half];
        yr[i] = x1 * c[i] - x2 * sn[i];
        yr[i + half] = x2 * c[i] + x1 * sn[i];
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Causal GQA attention
//===----------------------------------------------------------------------===//
//
// One iteration handles one (batch, kv head) and the `group` query heads that
// read it, as GEMMs against K and V straight on the [B, S, KV, Dh] layout
// (rows Dh contiguous elements KV * Dh apart: a matrix with that leading
// dimension). Queries are taken in tiles of kAttnTile rows; the group's
// query tiles are gathered one head after the other into a contiguous
// [group * rows, Dh] block, so that each GEMM covers the whole group and K
// and V are packed once per tile rather than once per head. A tile of rows
// [i0, i1) multiplies keys [0, i1) only, so the masked upper triangle is
// skipped except inside the tile on the diagonal, whose masked entries are
// set to zero after the GEMM.

namespace {

/// Scratch slots of the attention kernels (threadScratch).
enum AttnScratch { kQTile, kDoTile, kOutTile, kScores, kGrads, kRowStats };

/// Copies rows [i0, i0 + rows) of the group's heads h0 .. h0 + group - 1 of
/// x [S, H, Dh] (one batch) into tile [group * rows, Dh], head after head.
template <typename T>
void gatherHeads(const T *x, T *tile, int64_t i0, int64_t rows, int64_t h,
                 int64_t h0, int64_t group, int64_t dh) {
  for (int64_t hg = 0; hg < group; ++hg)
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(x + ((i0 + r) * h + h0 + hg) * dh, dh,
                  tile + (hg * rows + r) * dh);
}

/// Softmax of one head's tile of scores, in place. Row r is query i0 + r and
/// allows keys j <= i0 + r of `keys`. Leaves P = exp(score - rowmax) (masked
/// entries 0), rowInv = 1 / sum_j P, and lse = rowmax + log(sum_j P).
template <typename T>
LLAMAC_MULTIVERSION void softmaxTile(T *scores, int64_t rows, int64_t keys,
                                     int64_t i0, T *rowInv, float *lse) {
  for (int64_t r = 0; r < rows; ++r) {
    T *p = scores + r * keys;
    const int64_t allowed = i0 + r + 1;
    const T mx = rowMax(p, allowed);
    for (int64_t j = 0; j < allowed; ++j)
      p[j] = expT(p[j] - mx);
    // The sum in double, in its own loop: fused into the exp loop it would
    // halve that loop's vector width.
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < allowed; ++j)
      sum += double(p[j]);
    std::fill(p + allowed, p + keys, T(0));
    rowInv[r] = T(1.0 / sum);
    lse[r] = float(double(mx) + std::log(sum));
  }
}

/// Backward of one head's tile: with scores in `p` and dP = dO V^T in `dp`,
/// leaves P = exp(score - lse) in `p` and dS = P * (dP - D) in `dp`, masked
/// entries 0, where D_i = <dO_i, O_i> (rowDot).
template <typename T>
LLAMAC_MULTIVERSION void softmaxGradTile(T *p, T *dp, int64_t rows,
                                         int64_t keys, int64_t i0,
                                         const float *lse, const T *rowDot) {
  for (int64_t r = 0; r < rows; ++r) {
    T *pr = p + r * keys, *dpr = dp + r * keys;
    const int64_t allowed = i0 + r + 1;
    const T l = T(lse[r]), d = rowDot[r];
#pragma omp simd
    for (int64_t j = 0; j < allowed; ++j) {
      const T e = expT(pr[j] - l);
      pr[j] = e;
      dpr[j] = e * (dpr[j] - d);
    }
    std::fill(pr + allowed, pr + keys, T(0));
    std::fill(dpr + allowed, dpr + keys, T(0));
  }
}

} // namespace

template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, T *out, float *lse,
                  int64_t b, int64_t s, int64_t h, int64_t kv, int64_t dh,
                  float scale) {
  const int64_t group = h / kv, ldk = kv * dh;
  const int64_t stacked = group * std::min(kAttnTile, s);
  SerialBlasScope serialBlas;
#pragma omp parallel for schedule(static) \
    if (b * h * s * s * dh >= kMinParallelWork)
  for (int64_t task = 0; task < b * kv; ++task) {
    const int64_t bb = task / kv, g = task % kv, h0 = g * group;
    const T *kg = k + (bb * s * kv + g) * dh;
    const T *vg = v + (bb * s * kv + g) * dh;
    T *qTile = threadScratch<T>(kQTile, size_t(stacked * dh));
    T *oTile = threadScratch<T>(kOutTile, size_t(stacked * dh));
    T *scores = threadScratch<T>(kScores, size_t(stacked * s));
    T *rowInv = threadScratch<T>(kRowStats, size_t(stacked));
    for (int64_t i0 = 0; i0 < s; i0 += kAttnTile) {
      const int64_t rows = std::min(kAttnTile, s - i0), keys = i0 + rows;
      const int64_t m = group * rows;
      // scores = scale * Q K^T, softmax per head, O = P V / rowsum.
      gatherHeads(q + bb * s * h * dh, qTile, i0, rows, h, h0, group, dh);
      gemm<T>(CblasNoTrans, CblasTrans, m, keys, dh, T(scale), qTile, dh, kg,
              ldk, T(0), scores, keys);
      for (int64_t hg = 0; hg < group; ++hg)
        softmaxTile(scores + hg * rows * keys, rows, keys, i0,
                    rowInv + hg * rows, lse + (bb * h + h0 + hg) * s + i0);
      gemm<T>(CblasNoTrans, CblasNoTrans, m, dh, keys, T(1), scores, keys, vg,
              ldk, T(0), oTile, dh);
      for (int64_t hg = 0; hg < group; ++hg)
        for (int64_t r = 0; r < rows; ++r) {
          const T *src = oTile + (hg * rows + r) * dh;
          T *dst = out + ((bb * s + i0 + r) * h + h0 + hg) * dh;
          const T inv = rowInv[hg * rows + r];
          for (int64_t t = 0; t < dh; ++t)
            dst[t] = src[t] * inv;
        }
    }
  }
}

template <typename T>
void attentionBwd(const T *dout, const T *q, const T *k, const T *v,
                  const T *out, const float *lse, T *dq, T *dk, T *dv,
                  int64_t b, int64_t s, int64_t h, int64_t kv, int64_t dh,
                  float scale) {
  // With P recomputed as exp(score - lse), dP = dO V^T and
  // D_i = <dO_i, O_i> = sum_j P_ij dP_ij:
  //   dS = P * (dP - D)
  //   dQ = scale * dS K
  //   dK = scale * sum over the group's heads of dS^T Q
  //   dV =         sum over the group's heads of P^T dO
  // One iteration per (batch, kv head) owns that slice of dk and dv and
  // visits the tiles in order, so dk and dv accumulate in a fixed order
  // without atomics; dq rows are written once.
  const int64_t group = h / kv, ldk = kv * dh;
  const int64_t stacked = group * std::min(kAttnTile, s);
  const T sc = T(scale);
  SerialBlasScope serialBlas;
#pragma omp parallel for schedule(static) \
    if (b * h * s * s * dh >= kMinParallelWork)
  for (int64_t task = 0; task < b * kv; ++task) {
    const int64_t bb = task / kv, g = task % kv, h0 = g * group;
    const int64_t batch = bb * s * h * dh;
    const T *kg = k + (bb * s * kv + g) * dh;
    const T *vg = v + (bb * s * kv + g) * dh;
    T *dkg = dk + (bb * s * kv + g) * dh;
    T *dvg = dv + (bb * s * kv + g) * dh;
    for (int64_t j = 0; j < s; ++j) {
      std::fill_n(dkg + j * ldk, dh, T(0));
      std::fill_n(dvg + j * ldk, dh, T(0));
    }
    T *qTile = threadScratch<T>(kQTile, size_t(stacked * dh));
    T *doTile = threadScratch<T>(kDoTile, size_t(stacked * dh));
    T *dqTile = threadScratch<T>(kOutTile, size_t(stacked * dh));
    T *p = threadScratch<T>(kScores, size_t(stacked * s));
    T *dp = threadScratch<T>(kGrads, size_t(stacked * s));
    T *rowDot = threadScratch<T>(kRowStats, size_t(group * s));
    // D for every row of the group's heads up front: one strided pass
    // instead of cache misses inside each tile.
    for (int64_t hg = 0; hg < group; ++hg)
      for (int64_t i = 0; i < s; ++i) {
        const int64_t row = batch + (i * h + h0 + hg) * dh;
        rowDot[hg * s + i] = T(dot(dout + row, out + row, dh));
      }
    for (int64_t i0 = 0; i0 < s; i0 += kAttnTile) {
      const int64_t rows = std::min(kAttnTile, s - i0), keys = i0 + rows;
      const int64_t m = group * rows;
      gatherHeads(q + batch, qTile, i0, rows, h, h0, group, dh);
      gatherHeads(dout + batch, doTile, i0, rows, h, h0, group, dh);
      gemm<T>(CblasNoTrans, CblasTrans, m, keys, dh, sc, qTile, dh, kg, ldk,
              T(0), p, keys);
      gemm<T>(CblasNoTrans, CblasTrans, m, keys, dh, T(1), doTile, dh, vg,
              ldk, T(0), dp, keys);
      for (int64_t hg = 0; hg < group; ++hg)
        softmaxGradTile(p + hg * rows * keys, dp + hg * rows * keys, rows,
                        keys, i0, lse + (bb * h + h0 + hg) * s + i0,
                        rowDot + hg * s + i0);
      gemm<T>(CblasNoTrans, CblasNoTrans, m, dh, keys, sc, dp, keys, kg, ldk,
              T(0), dqTile, dh);
      gemm<T>(CblasTrans, CblasNoTrans, keys, dh, m, T(1), p, keys, doTile,
              dh, T(1), dvg, ldk);
      gemm<T>(CblasTrans, CblasNoTrans, keys, dh, m, sc, dp, keys, qTile, dh,
              T(1), dkg, ldk);
      for (int64_t hg = 0; hg < group; ++hg)
        for (int64_t r = 0; r < rows; ++r)
          std::copy_n(dqTile + (hg * rows + r) * dh, dh,
                      dq + batch + ((i0 + r) * h + h0 + hg) * dh);
    }
  }
}

//===----------------------------------------------------------------------===//
// SwiGLU
//===----------------------------------------------------------------------===//

template <typename T>
LLAMAC_MULTIVERSION void swigluFwd(const T *gate, const T *up, T *y,
                                   int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    y[i] = g * up[i] / (T(1) + expT(-g));
  }
}

template <typename T>
LLAMAC_MULTIVERSION void swigluBwd(const T *dy, const T *gate, const T *up,
                                   T *dgate, T *dup, int64_t n) {
  // silu'(g) = sig(g) * (1 + g * (1 - sig(g))).
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i], u = up[i], d = dy[i];
    const T sg = T(1) / (T(1) + expT(-g));
    dgate[i] = d * u * sg * (T(1) + g * (T(1) - sg));
    dup[i] = d * g * sg;
  }
}

//===----------------------------------------------------------------------===//
// Cross entropy
//===----------------------------------------------------------------------===//

namespace {
/// Numerically stable logsumexp of one row, in double (the loss is compared
/// across precisions to 1e-12).
template <typename T>
LLAMAC_ALWAYS_INLINE double rowLogSumExp(const T *x, int64_t v) {
  const double mx = double(rowMax(x, v));
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < v; ++j)
    sum += expDouble(double(x[j]) - mx);
  return mx + std::log(sum);
}
} // namespace

template <typename T>
LLAMAC_MULTIVERSION double crossEntropyFwd(const T *logits,
                                           const int32_t *targets,
                                           int64_t rows, int64_t v,
                                           double scale) {
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
LLAMAC_MULTIVERSION void crossEntropyBwd(const T *logits,
                                         const int32_t *targets, T *dlogits,
                                         int64_t rows, int64_t v,
                                         double scale, double dloss) {
  // One exp per logit: dx holds exp(x - max) until the row sum (in double,
  // in a loop of its own, as in softmaxTile) is known.
  const double coef = dloss * scale;
#pragma omp parallel for schedule(static) if (rows * v >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = logits + r * v;
    T *dx = dlogits + r * v;
    const T mx = rowMax(x, v);
    for (int64_t j = 0; j < v; ++j)
      dx[j] = expT(x[j] - mx);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < v; ++j)
      sum += double(dx[j]);
    const int64_t t = targets[r];
    const double pt = double(dx[t]) / sum;
    const T c = T(coef / sum);
    for (int64_t j = 0; j < v; ++j)
      dx[j] *= c;
    dx[t] = T(coef * (pt - 1.0));
  }
}

//===----------------------------------------------------------------------===//
// Cross entropy over a sharded vocabulary
//===----------------------------------------------------------------------===//

template <typename T>
void rowMaxes(const T *logits, T *mx, int64_t rows, int64_t v) {
#pragma omp parallel for schedule(static) if (rows * v >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r)
    mx[r] = rowMax(logits + r * v, v);
}

template <typename T>
LLAMAC_MULTIVERSION void rowSumExp(const T *logits, const T *mx, T *s,
                                   int64_t rows, int64_t v) {
  // The exponentials and their sum in double, as rowLogSumExp: the shards'
  // sums are added and logged into the loss, which is compared across
  // layouts to fp32 noise.
#pragma omp parallel for schedule(static) if (rows * v >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = logits + r * v;
    const double m = double(mx[r]);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < v; ++j)
      sum += expDouble(double(x[j]) - m);
    s[r] = T(sum);
  }
}

template <typename T>
void targetLogits(const T *logits, const int32_t *targets, T *t, int64_t rows,
                  int64_t v, int64_t begin) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t col = int64_t(targets[r]) - begin;
    t[r] = col >= 0 && col < v ? logits[r * v + col] : T(0);
  }
}

template <typename T>
double crossEntropyFromStats(const T *mx, const T *s, const T *t, int64_t rows,
                             double scale) {
  // Sequential, in row order: the same sum whatever the thread count.
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r)
    total += std::log(double(s[r])) + double(mx[r]) - double(t[r]);
  return scale * total;
}

template <typename T>
LLAMAC_MULTIVERSION void
crossEntropyBwdFromStats(const T *logits, const int32_t *targets, const T *mx,
                         const T *s, T *dlogits, int64_t rows, int64_t v,
                         int64_t begin, double scale, double dloss) {
  const double coef = dloss * scale;
#pragma omp parallel for schedule(static) if (rows * v >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T *x = logits + r * v;
    T *dx = dlogits + r * v;
    const T m = mx[r];
    const T c = T(coef / double(s[r]));
    for (int64_t j = 0; j < v; ++j)
      dx[j] = expT(x[j] - m) * c;
    // The target's probability in double: p - 1 cancels when p is near 1.
    const int64_t col = int64_t(targets[r]) - begin;
    if (col >= 0 && col < v) {
      const double p = expDouble(double(x[col]) - double(m)) / double(s[r]);
      dx[col] = T(coef * (p - 1.0));
    }
  }
}

//===----------------------------------------------------------------------===//
// Blocks along one dimension
//===----------------------------------------------------------------------===//

template <typename T>
void sliceBlock(const T *x, T *y, int64_t outer, int64_t d, int64_t inner,
                int64_t g, int64_t index) {
  const int64_t run = d * inner; // contiguous elements per outer index
#pragma omp parallel for schedule(static) if (outer * run >= kMinParallelWork)
  for (int64_t o = 0; o < outer; ++o)
    std::copy_n(x + (o * g + index) * run, run, y + o * run);
}

template <typename T>
void concatBlocks(const T *blocks, T *y, int64_t g, int64_t outer, int64_t d,
                  int64_t inner) {
  const int64_t run = d * inner, block = outer * run;
  // One iteration per (outer index, block): each writes its own run of y.
#pragma omp parallel for collapse(2)                                           \
    schedule(static) if (g * block >= kMinParallelWork)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t b = 0; b < g; ++b)
      std::copy_n(blocks + b * block + o * run, run, y + (o * g + b) * run);
}

template <typename T>
void splitBlocks(const T *x, T *blocks, int64_t g, int64_t outer, int64_t d,
                 int64_t inner) {
  const int64_t run = d * inner, block = outer * run;
#pragma omp parallel for collapse(2)                                           \
    schedule(static) if (g * block >= kMinParallelWork)
  for (int64_t b = 0; b < g; ++b)
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(x + (o * g + b) * run, run, blocks + b * block + o * run);
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

template <typename T>
LLAMAC_MULTIVERSION void scale(const T *x, T *y, int64_t n, double s) {
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

template <typename T>
LLAMAC_MULTIVERSION double sumSquares(const T *x, int64_t n) {
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
LLAMAC_MULTIVERSION void adamw(T *p, const T *g, T *m, T *v, int64_t n,
                               double lr, double beta1, double beta2,
                               double eps, double weightDecay, int64_t step) {
  // Same operation order as torch.optim.AdamW (single-tensor, non-amsgrad);
  // the scalar factors are computed once, in double, as torch does in Python.
  // The update itself is in double too, more exact than torch's float.
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
  template void embeddingShardFwd<T>(const T *, const int32_t *, T *, int64_t, \
                                     int64_t, int64_t, int64_t);               \
  template void embeddingShardBwd<T>(const T *, const int32_t *, T *, int64_t, \
                                     int64_t, int64_t, int64_t);               \
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
  template void rowMaxes<T>(const T *, T *, int64_t, int64_t);                 \
  template void rowSumExp<T>(const T *, const T *, T *, int64_t, int64_t);     \
  template void targetLogits<T>(const T *, const int32_t *, T *, int64_t,      \
                                int64_t, int64_t);                             \
  template double crossEntropyFromStats<T>(const T *, const T *, const T *,    \
                                           int64_t, double);                   \
  template void crossEntropyBwdFromStats<T>(                                   \
      const T *, const int32_t *, const T *, const T *, T *, int64_t, int64_t, \
      int64_t, double, double);                                                \
  template void sliceBlock<T>(const T *, T *, int64_t, int64_t, int64_t,       \
                              int64_t, int64_t);                               \
  template void concatBlocks<T>(const T *, T *, int64_t, int64_t, int64_t,     \
                                int64_t);                                      \
  template void splitBlocks<T>(const T *, T *, int64_t, int64_t, int64_t,      \
                               int64_t);                                       \
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
