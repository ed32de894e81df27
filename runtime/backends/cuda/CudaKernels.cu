//===- CudaKernels.cu - The kernel contract on CUDA devices ---------------===//
//
// Everything of CudaKernels.h but attention (FlashAttention.cu) and the
// GEMMs (Gemm.cpp, cuBLASLt).
//
// Conventions of this file:
//  - Storage types are template parameters (float, __nv_bfloat16, __half);
//    ld() widens to f32 exactly, st() rounds to nearest even. The public
//    launchers switch on DType once (LLAMAC_CUDA_DISPATCH).
//  - Row kernels (RMSNorm, cross entropy) use one block of kRowThreads per
//    row and blockReduce(), a fixed tree: the result does not depend on
//    scheduling.
//  - Elementwise kernels use a grid-stride loop over int64 indices.
//
//===----------------------------------------------------------------------===//
#include "backends/cuda/CudaKernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace llamac {
namespace cuda {

namespace {

using bf16 = __nv_bfloat16;
using f16 = __half;

constexpr int kThreads = 256;    ///< Elementwise kernels.
constexpr int kRowThreads = 512; ///< One block per row.

__device__ __forceinline__ float ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16 *p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ float ld(const f16 *p, int64_t i) {
  return __half2float(p[i]);
}
__device__ __forceinline__ void st(float *p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void st(bf16 *p, int64_t i, float x) {
  p[i] = __float2bfloat16_rn(x);
}
__device__ __forceinline__ void st(f16 *p, int64_t i, float x) {
  p[i] = __float2half_rn(x);
}

/// Blocks for n elements of a grid-stride loop.
unsigned gridFor(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535 * 8)));
}

Status lastError() { return static_cast<Status>(cudaGetLastError()); }

#define LLAMAC_GRID_STRIDE(i, n)                                               \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);   \
       i += int64_t(gridDim.x) * blockDim.x)

/// Calls `body` with `T` the storage type of `dt` (f32, bf16, f16).
#define LLAMAC_CUDA_DISPATCH(dt, ...)                                          \
  switch (dt) {                                                                \
  case DType::F32: {                                                           \
    using T = float;                                                           \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case DType::BF16: {                                                          \
    using T = bf16;                                                            \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case DType::F16: {                                                           \
    using T = f16;                                                             \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  default:                                                                     \
    return static_cast<Status>(cudaErrorInvalidValue);                         \
  }

/// Sum over the block of one value per thread, in a fixed tree (warp
/// shuffles, then the warps' sums by warp 0). Every thread gets the sum.
/// `shared` holds 32 values. Ends with the block synchronized.
template <typename V> __device__ V blockReduceSum(V x, V *shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1)
    x += __shfl_xor_sync(0xffffffffu, x, o);
  if (lane == 0)
    shared[warp] = x;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  V total = lane < warps ? shared[lane] : V(0);
  for (int o = 16; o > 0; o >>= 1)
    total += __shfl_xor_sync(0xffffffffu, total, o);
  __syncthreads(); // shared may be reused by the caller.
  return total;
}

__device__ float blockReduceMax(float x, float *shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1)
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  if (lane == 0)
    shared[warp] = x;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  float m = lane < warps ? shared[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1)
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  __syncthreads();
  return m;
}

/// Online softmax statistics: max m and sum s of exp(x - m).
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY)
    return b;
  if (b.m == -INFINITY)
    return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}
__device__ MaxSum blockReduceMaxSum(MaxSum x, float *shared /*64*/) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum y{__shfl_xor_sync(0xffffffffu, x.m, o),
             __shfl_xor_sync(0xffffffffu, x.s, o)};
    x = combine(x, y);
  }
  if (lane == 0) {
    shared[warp] = x.m;
    shared[32 + warp] = x.s;
  }
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  MaxSum t = lane < warps ? MaxSum{shared[lane], shared[32 + lane]}
                          : MaxSum{-INFINITY, 0.0f};
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum y{__shfl_xor_sync(0xffffffffu, t.m, o),
             __shfl_xor_sync(0xffffffffu, t.s, o)};
    t = combine(t, y);
  }
  __syncthreads();
  return t;
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

template <typename T>
__global__ void embeddingFwdKernel(const T *table, const int32_t *ids, T *out,
                                   int64_t n, int64_t d, int64_t v,
                                   int64_t begin) {
  LLAMAC_GRID_STRIDE(i, n * d) {
    const int64_t row = i / d, col = i - row * d;
    const int64_t id = int64_t(ids[row]) - begin;
    out[i] = id >= 0 && id < v ? table[id * d + col] : T(0.0f);
  }
}

/// Sort keys: the row of the shard, or v for ids of other shards (sorted
/// last, never read).
__global__ void embeddingKeysKernel(const int32_t *ids, int32_t *keys,
                                    int32_t *positions, int64_t n, int64_t v,
                                    int64_t begin) {
  LLAMAC_GRID_STRIDE(i, n) {
    const int64_t id = int64_t(ids[i]) - begin;
    keys[i] = id >= 0 && id < v ? int32_t(id) : int32_t(v);
    positions[i] = int32_t(i);
  }
}

/// rowStart[r] / rowEnd[r]: the range of row r in the sorted keys (empty
/// rows keep the [0, 0) the memset left).
__global__ void embeddingRangesKernel(const int32_t *keys, int32_t *rowStart,
                                      int32_t *rowEnd, int64_t n, int64_t v) {
  LLAMAC_GRID_STRIDE(i, n) {
    const int32_t k = keys[i];
    if (k >= v)
      continue;
    if (i == 0 || keys[i - 1] != k)
      rowStart[k] = int32_t(i);
    if (i == n - 1 || keys[i + 1] != k)
      rowEnd[k] = int32_t(i + 1);
  }
}

/// One thread per (row, column): the row's positions in token order.
template <typename T>
__global__ void embeddingAccumulateKernel(const T *dy, const int32_t *sorted,
                                          const int32_t *rowStart,
                                          const int32_t *rowEnd, T *dtable,
                                          int64_t d, int64_t v) {
  LLAMAC_GRID_STRIDE(i, v * d) {
    const int64_t row = i / d, col = i - row * d;
    float acc = 0.0f;
    for (int32_t p = rowStart[row]; p < rowEnd[row]; ++p)
      acc += ld(dy, int64_t(sorted[p]) * d + col);
    st(dtable, i, acc);
  }
}

/// The parts of embeddingBwd's scratch, 256-byte aligned.
struct EmbeddingScratch {
  int64_t keysIn, keysOut, posIn, posOut, rowStart, rowEnd, temp, tempBytes,
      total;
};
/// Bits of the sort keys, which are in [0, v].
int embeddingKeyBits(int64_t v) {
  int bits = 1;
  while ((int64_t(1) << bits) <= v)
    ++bits;
  return bits;
}

EmbeddingScratch embeddingScratchLayout(int64_t n, int64_t v) {
  auto align = [](int64_t x) { return (x + 255) / 256 * 256; };
  EmbeddingScratch s{};
  size_t temp = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, temp, (const int32_t *)nullptr,
                                  (int32_t *)nullptr, (const int32_t *)nullptr,
                                  (int32_t *)nullptr, static_cast<int>(n), 0,
                                  embeddingKeyBits(v));
  int64_t at = 0;
  const int64_t n4 = align(n * 4), v4 = align(v * 4);
  s.keysIn = at, at += n4;
  s.keysOut = at, at += n4;
  s.posIn = at, at += n4;
  s.posOut = at, at += n4;
  s.rowStart = at, at += v4;
  s.rowEnd = at, at += v4;
  s.temp = at, s.tempBytes = align(static_cast<int64_t>(temp)), at += s.tempBytes;
  s.total = at;
  return s;
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

template <typename T>
__global__ void rmsNormFwdKernel(const T *x, const T *w, T *y, int64_t d,
                                 float eps) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T *xr = x + row * d;
  T *yr = y + row * d;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float xv = ld(xr, j);
    ss += xv * xv;
  }
  ss = blockReduceSum(ss, shared);
  const float rstd = rsqrtf(ss / float(d) + eps);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    st(yr, j, ld(w, j) * (ld(xr, j) * rstd));
}

/// dx per row, and rstd of each row for the dw pass.
template <typename T>
__global__ void rmsNormBwdDxKernel(const T *dy, const T *x, const T *w, T *dx,
                                   float *rstdOut, int64_t d, float eps) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T *xr = x + row * d, *dyr = dy + row * d;
  T *dxr = dx + row * d;
  float ss = 0.0f, proj = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float xv = ld(xr, j);
    ss += xv * xv;
    proj += ld(dyr, j) * ld(w, j) * xv;
  }
  ss = blockReduceSum(ss, shared);
  proj = blockReduceSum(proj, shared);
  const float rs = rsqrtf(ss / float(d) + eps);
  const float c = rs * rs * rs * proj / float(d);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    st(dxr, j, rs * (ld(dyr, j) * ld(w, j)) - c * ld(xr, j));
  if (threadIdx.x == 0)
    rstdOut[row] = rs;
}

constexpr int64_t kRmsRowChunk = 64;

/// partial[chunk, j] = sum over the chunk's rows of dy * x * rstd.
template <typename T>
__global__ void rmsNormBwdDwPartialKernel(const T *dy, const T *x,
                                          const float *rstd, float *partial,
                                          int64_t rows, int64_t d) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (j >= d)
    return;
  const int64_t r0 = chunk * kRmsRowChunk;
  const int64_t r1 = min(rows, r0 + kRmsRowChunk);
  float acc = 0.0f;
  for (int64_t r = r0; r < r1; ++r)
    acc += ld(dy, r * d + j) * ld(x, r * d + j) * rstd[r];
  partial[chunk * d + j] = acc;
}

template <typename T>
__global__ void rmsNormBwdDwSumKernel(const float *partial, T *dw,
                                      int64_t chunks, int64_t d) {
  LLAMAC_GRID_STRIDE(j, d) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c)
      acc += partial[c * d + j];
    st(dw, j, acc);
  }
}

//===----------------------------------------------------------------------===//
// RoPE, SwiGLU, elementwise
//===----------------------------------------------------------------------===//

/// One thread per (row, head, i < Dh/2). The angle in double, as on the
/// CPU (long positions stay accurate).
template <typename T>
__global__ void ropeKernel(const T *x, T *y, int64_t s, int64_t h, int64_t dh,
                           double logTheta, int64_t posOffset, double sign,
                           int64_t total) {
  const int64_t half = dh / 2;
  LLAMAC_GRID_STRIDE(i, total) {
    const int64_t k = i % half;
    const int64_t rowHead = i / half; // (b * s + p) * h + head
    const int64_t p = (rowHead / h) % s;
    const double invFreq = exp(-2.0 * double(k) / double(dh) * logTheta);
    double sn, cs;
    sincos(double(posOffset + p) * invFreq, &sn, &cs);
    const float c = float(cs), sv = float(sign * sn);
    const int64_t base = rowHead * dh;
    const float x1 = ld(x, base + k), x2 = ld(x, base + k + half);
    st(y, base + k, x1 * c - x2 * sv);
    st(y, base + k + half, x2 * c + x1 * sv);
  }
}

template <typename T>
__global__ void swigluFwdKernel(const T *gate, const T *up, T *y, int64_t n) {
  LLAMAC_GRID_STRIDE(i, n) {
    const float g = ld(gate, i);
    st(y, i, g * ld(up, i) / (1.0f + expf(-g)));
  }
}

template <typename T>
__global__ void swigluBwdKernel(const T *dy, const T *gate, const T *up,
                                T *dgate, T *dup, int64_t n) {
  LLAMAC_GRID_STRIDE(i, n) {
    const float g = ld(gate, i), u = ld(up, i), d = ld(dy, i);
    const float sg = 1.0f / (1.0f + expf(-g));
    st(dgate, i, d * u * sg * (1.0f + g * (1.0f - sg)));
    st(dup, i, d * g * sg);
  }
}

template <typename T>
__global__ void addKernel(const T *a, const T *b, T *y, int64_t n) {
  LLAMAC_GRID_STRIDE(i, n) st(y, i, ld(a, i) + ld(b, i));
}

template <typename T>
__global__ void scaleKernel(const T *x, const float *s, T *y, int64_t n) {
  const double sv = *s;
  LLAMAC_GRID_STRIDE(i, n) st(y, i, float(double(ld(x, i)) * sv));
}

template <typename T>
__global__ void clipKernel(const T *x, T *y, int64_t n, float limit) {
  LLAMAC_GRID_STRIDE(i, n) {
    float v = ld(x, i);
    // Comparisons, not fminf/fmaxf: NaN passes through (torch.clamp).
    if (v > limit)
      v = limit;
    else if (v < -limit)
      v = -limit;
    st(y, i, v);
  }
}

template <typename T> __global__ void fillKernel(T *y, int64_t n, float v) {
  LLAMAC_GRID_STRIDE(i, n) st(y, i, v);
}

/// Conversions: any float dtype to any other, one rounding.
__device__ __forceinline__ double ldAny(const void *p, DType t, int64_t i) {
  switch (t) {
  case DType::F32:
    return static_cast<const float *>(p)[i];
  case DType::F64:
    return static_cast<const double *>(p)[i];
  case DType::BF16:
    return __bfloat162float(static_cast<const bf16 *>(p)[i]);
  default:
    return __half2float(static_cast<const f16 *>(p)[i]);
  }
}
__global__ void castKernel(const void *x, DType from, void *y, DType to,
                           int64_t n) {
  LLAMAC_GRID_STRIDE(i, n) {
    const double v = ldAny(x, from, i);
    switch (to) {
    case DType::F32:
      static_cast<float *>(y)[i] = float(v);
      break;
    case DType::F64:
      static_cast<double *>(y)[i] = v;
      break;
    case DType::BF16:
      // From double: one rounding (__double2bfloat16 rounds to nearest
      // even); from f32/f16 the double is exact, the same.
      static_cast<bf16 *>(y)[i] = __double2bfloat16(v);
      break;
    default:
      static_cast<f16 *>(y)[i] = __double2half(v);
      break;
    }
  }
}

//===----------------------------------------------------------------------===//
// Cross entropy
//===----------------------------------------------------------------------===//

/// Max and sum of exp over one row: one read of the row.
template <typename T>
__device__ MaxSum rowMaxSum(const T *x, int64_t v, float *shared) {
  MaxSum acc{-INFINITY, 0.0f};
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float xv = ld(x, j);
    if (xv > acc.m) {
      acc.s = acc.m == -INFINITY ? 0.0f : acc.s * __expf(acc.m - xv);
      acc.m = xv;
    }
    acc.s += __expf(xv - acc.m);
  }
  return blockReduceMaxSum(acc, shared);
}

template <typename T>
__global__ void crossEntropyRowKernel(const T *logits, const int32_t *targets,
                                      float *rowLoss, int64_t v) {
  __shared__ float shared[64];
  const int64_t row = blockIdx.x;
  const T *x = logits + row * v;
  const MaxSum ms = rowMaxSum(x, v, shared);
  if (threadIdx.x == 0)
    rowLoss[row] = ms.m + logf(ms.s) - ld(x, targets[row]);
}

/// *out = scale * sum(values), one block, in double, fixed tree.
__global__ void sumRowsKernel(const float *values, int64_t n, double scale,
                              float *out) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    acc += values[i];
  acc = blockReduceSum(acc, shared);
  if (threadIdx.x == 0)
    *out = float(scale * acc);
}

template <typename T>
__global__ void crossEntropyBwdKernel(const float *dloss, const T *logits,
                                      const int32_t *targets, T *dlogits,
                                      int64_t v, double scale) {
  __shared__ float shared[64];
  const int64_t row = blockIdx.x;
  const T *x = logits + row * v;
  T *dx = dlogits + row * v;
  const MaxSum ms = rowMaxSum(x, v, shared);
  const int32_t t = targets[row];
  const float coef = float(double(*dloss) * scale);
  const float inv = 1.0f / ms.s;
  // In place allowed: each element is read before it is written, by the
  // same thread.
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float p = __expf(ld(x, j) - ms.m) * inv;
    st(dx, j, coef * (j == t ? p - 1.0f : p));
  }
}

template <typename T>
__global__ void rowMaxKernel(const T *logits, T *mx, int64_t v) {
  __shared__ float shared[32];
  const T *x = logits + int64_t(blockIdx.x) * v;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x)
    m = fmaxf(m, ld(x, j));
  m = blockReduceMax(m, shared);
  if (threadIdx.x == 0)
    st(mx, blockIdx.x, m);
}

template <typename T>
__global__ void rowSumExpKernel(const T *logits, const T *mx, T *s, int64_t v) {
  __shared__ double shared[32];
  const T *x = logits + int64_t(blockIdx.x) * v;
  const double m = ld(mx, blockIdx.x);
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x)
    acc += exp(double(ld(x, j)) - m);
  acc = blockReduceSum(acc, shared);
  if (threadIdx.x == 0)
    st(s, blockIdx.x, float(acc));
}

template <typename T>
__global__ void targetLogitKernel(const T *logits, const int32_t *targets,
                                  T *tl, int64_t rows, int64_t v,
                                  int64_t begin) {
  LLAMAC_GRID_STRIDE(r, rows) {
    const int64_t col = int64_t(targets[r]) - begin;
    st(tl, r, col >= 0 && col < v ? ld(logits, r * v + col) : 0.0f);
  }
}

template <typename T>
__global__ void crossEntropyFromStatsKernel(const T *mx, const T *s,
                                            const T *tl, int64_t rows,
                                            double scale, float *loss) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    acc += log(double(ld(s, r))) + double(ld(mx, r)) - double(ld(tl, r));
  acc = blockReduceSum(acc, shared);
  if (threadIdx.x == 0)
    *loss = float(scale * acc);
}

template <typename T>
__global__ void crossEntropyBwdFromStatsKernel(
    const float *dloss, const T *logits, const int32_t *targets, const T *mx,
    const T *s, T *dlogits, int64_t v, int64_t begin, double scale) {
  const int64_t row = blockIdx.x;
  const T *x = logits + row * v;
  T *dx = dlogits + row * v;
  const double coef = double(*dloss) * scale;
  const float m = ld(mx, row);
  const double sr = ld(s, row);
  const float c = float(coef / sr);
  const int64_t col = int64_t(targets[row]) - begin;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    if (j == col) {
      // The target's probability in double: p - 1 cancels near p = 1.
      const double p = exp(double(ld(x, j)) - double(m)) / sr;
      st(dx, j, float(coef * (p - 1.0)));
    } else {
      st(dx, j, __expf(ld(x, j) - m) * c);
    }
  }
}

//===----------------------------------------------------------------------===//
// Multi-tensor kernels: norms, finiteness, AdamW
//===----------------------------------------------------------------------===//

/// The tensor of chunk c: the last t with chunkStart[t] <= c.
__device__ __forceinline__ int tensorOfChunk(const int64_t *chunkStart,
                                             int count, int64_t c) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (chunkStart[mid] <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

__global__ void sumSquaresChunkKernel(const TensorRef *list, int count,
                                      const int64_t *chunkStart,
                                      double *partial) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x;
  const int t = tensorOfChunk(chunkStart, count, c);
  const TensorRef ref = list[t];
  const int64_t i0 = (c - chunkStart[t]) * kMultiTensorChunk;
  const int64_t i1 = min(ref.n, i0 + kMultiTensorChunk);
  double acc = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
    const double x = ldAny(ref.data, ref.dtype, i);
    acc += x * x;
  }
  acc = blockReduceSum(acc, shared);
  if (threadIdx.x == 0)
    partial[c] = acc;
}

__global__ void allFiniteChunkKernel(const TensorRef *list, int count,
                                     const int64_t *chunkStart,
                                     double *partial) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x;
  const int t = tensorOfChunk(chunkStart, count, c);
  const TensorRef ref = list[t];
  const int64_t i0 = (c - chunkStart[t]) * kMultiTensorChunk;
  const int64_t i1 = min(ref.n, i0 + kMultiTensorChunk);
  double bad = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x)
    if (!isfinite(ldAny(ref.data, ref.dtype, i)))
      bad = 1.0;
  bad = blockReduceSum(bad, shared);
  if (threadIdx.x == 0)
    partial[c] = bad;
}

/// One block: the chunks' partial sums in a fixed tree.
__global__ void finishSumKernel(const double *partial, int64_t chunks,
                                float *out, int mode /*0 sum, 1 sqrt, 2 ok*/) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x)
    acc += partial[c];
  acc = blockReduceSum(acc, shared);
  if (threadIdx.x == 0)
    *out = mode == 2 ? (acc == 0.0 ? 1.0f : 0.0f)
                     : float(mode == 1 ? sqrt(acc) : acc);
}

__global__ void adamwKernel(const AdamRef *list, int count,
                            const int64_t *chunkStart, const float *lrPtr,
                            const int64_t *stepPtr, const float *apply,
                            double beta1, double beta2, double eps,
                            double weightDecay) {
  if (apply && *apply == 0.0f)
    return; // A skipped step: the loss-scaled gradients overflowed.
  const int64_t c = blockIdx.x;
  const int t = tensorOfChunk(chunkStart, count, c);
  const AdamRef ref = list[t];
  // The scalar factors in double, once per thread, as torch computes them
  // in Python.
  const double lr = *lrPtr;
  const double step = double(*stepPtr + 1);
  const float decay = float(1.0 - lr * weightDecay);
  const float stepSize = float(lr / (1.0 - pow(beta1, step)));
  const float bc2Sqrt = float(sqrt(1.0 - pow(beta2, step)));
  const float b1 = float(beta1), b2 = float(beta2), e = float(eps);
  const int64_t i0 = (c - chunkStart[t]) * kMultiTensorChunk;
  const int64_t i1 = min(ref.n, i0 + kMultiTensorChunk);
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
    const float g = ref.g[i];
    const float p = ref.p[i] * decay;
    const float m = b1 * ref.m[i] + (1.0f - b1) * g;
    const float v = b2 * ref.v[i] + (1.0f - b2) * g * g;
    ref.m[i] = m;
    ref.v[i] = v;
    ref.p[i] = p - stepSize * m / (sqrtf(v) / bc2Sqrt + e);
  }
}

__global__ void sqrtKernel(const float *x, float *y) {
  *y = float(sqrt(double(*x)));
}
__global__ void clipCoefKernel(const float *norm, float *coef, double maxNorm) {
  *coef = float(fmin(1.0, maxNorm / (double(*norm) + 1e-6)));
}
__global__ void lrScheduleKernel(const int64_t *stepPtr, float *out, double lr,
                                 double minLr, int64_t warmup, int64_t decay) {
  // exec::scheduledLearningRate, on the device.
  const int64_t step = *stepPtr;
  const double s = double(step);
  double r;
  if (warmup > 0 && step < warmup)
    r = lr * (s + 1.0) / double(warmup);
  else if (decay == 0)
    r = lr;
  else if (step < decay)
    r = minLr + 0.5 * (lr - minLr) *
                    (1.0 + cospi((s - double(warmup)) / double(decay - warmup)));
  else
    r = minLr;
  *out = float(r);
}

//===----------------------------------------------------------------------===//
// Blocks along one dimension
//===----------------------------------------------------------------------===//

/// y[o, j, i] = x[o, index * d + j, i] (slice) over [outer, d, inner], in
/// units of E bytes.
template <typename E>
__global__ void sliceKernel(const E *x, E *y, int64_t outer, int64_t d,
                            int64_t inner, int64_t g, int64_t index) {
  LLAMAC_GRID_STRIDE(i, outer * d * inner) {
    const int64_t o = i / (d * inner), rest = i - o * d * inner;
    y[i] = x[(o * g + index) * d * inner + rest];
  }
}
/// blocks [g, outer, d, inner] <-> y [outer, g * d, inner].
template <typename E>
__global__ void blocksKernel(const E *from, E *to, int64_t g, int64_t outer,
                             int64_t d, int64_t inner, bool concat) {
  const int64_t per = outer * d * inner;
  LLAMAC_GRID_STRIDE(i, g * per) {
    const int64_t b = i / per, rest = i - b * per;
    const int64_t o = rest / (d * inner), j = rest - o * d * inner;
    const int64_t whole = (o * g + b) * d * inner + j;
    if (concat)
      to[whole] = from[i];
    else
      to[i] = from[whole];
  }
}

/// Calls `body` with E an unsigned type of `elem` bytes.
#define LLAMAC_BYTES_DISPATCH(elem, ...)                                       \
  switch (elem) {                                                              \
  case 2: {                                                                    \
    using E = uint16_t;                                                        \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case 4: {                                                                    \
    using E = uint32_t;                                                        \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  case 8: {                                                                    \
    using E = uint64_t;                                                        \
    __VA_ARGS__;                                                               \
    break;                                                                     \
  }                                                                            \
  default:                                                                     \
    return static_cast<Status>(cudaErrorInvalidValue);                         \
  }

} // namespace

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

Status embeddingFwd(const void *table, const int32_t *ids, void *out,
                    int64_t n, int64_t d, int64_t v, int64_t begin, DType t,
                    cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, embeddingFwdKernel<T><<<gridFor(n * d), kThreads, 0,
                                                   stream>>>(
                              static_cast<const T *>(table), ids,
                              static_cast<T *>(out), n, d, v, begin));
  return lastError();
}

int64_t embeddingBwdScratchBytes(int64_t n, int64_t v) {
  return embeddingScratchLayout(n, v).total;
}

Status embeddingBwd(const void *dy, const int32_t *ids, void *dtable,
                    int64_t n, int64_t d, int64_t v, int64_t begin, DType t,
                    void *scratch, cudaStream_t stream) {
  const EmbeddingScratch L = embeddingScratchLayout(n, v);
  char *base = static_cast<char *>(scratch);
  auto *keysIn = reinterpret_cast<int32_t *>(base + L.keysIn);
  auto *keysOut = reinterpret_cast<int32_t *>(base + L.keysOut);
  auto *posIn = reinterpret_cast<int32_t *>(base + L.posIn);
  auto *posOut = reinterpret_cast<int32_t *>(base + L.posOut);
  auto *rowStart = reinterpret_cast<int32_t *>(base + L.rowStart);
  auto *rowEnd = reinterpret_cast<int32_t *>(base + L.rowEnd);
  // Row ranges start empty ([0, 0)); both arrays are contiguous.
  cudaError_t e = cudaMemsetAsync(rowStart, 0, L.temp - L.rowStart, stream);
  if (e != cudaSuccess)
    return e;
  if (n > 0) {
    embeddingKeysKernel<<<gridFor(n), kThreads, 0, stream>>>(ids, keysIn, posIn,
                                                             n, v, begin);
    size_t temp = static_cast<size_t>(L.tempBytes);
    // Keys are in [0, v]: sort only the bits that can be set. LSD radix
    // sort is stable, so each row's positions stay in token order.
    e = cub::DeviceRadixSort::SortPairs(base + L.temp, temp, keysIn, keysOut,
                                        posIn, posOut, static_cast<int>(n), 0,
                                        embeddingKeyBits(v), stream);
    if (e != cudaSuccess)
      return e;
    embeddingRangesKernel<<<gridFor(n), kThreads, 0, stream>>>(
        keysOut, rowStart, rowEnd, n, v);
  }
  LLAMAC_CUDA_DISPATCH(t, embeddingAccumulateKernel<T><<<gridFor(v * d),
                                                          kThreads, 0, stream>>>(
                              static_cast<const T *>(dy), posOut, rowStart,
                              rowEnd, static_cast<T *>(dtable), d, v));
  return lastError();
}

Status rmsNormFwd(const void *x, const void *w, void *y, int64_t rows,
                  int64_t d, float eps, DType t, cudaStream_t stream) {
  if (rows == 0)
    return 0;
  LLAMAC_CUDA_DISPATCH(t, rmsNormFwdKernel<T><<<rows, kRowThreads, 0, stream>>>(
                              static_cast<const T *>(x),
                              static_cast<const T *>(w), static_cast<T *>(y),
                              d, eps));
  return lastError();
}

int64_t rmsNormBwdPartialSize(int64_t rows, int64_t d) {
  return rows + (rows + kRmsRowChunk - 1) / kRmsRowChunk * d;
}

Status rmsNormBwd(const void *dy, const void *x, const void *w, void *dx,
                  void *dw, int64_t rows, int64_t d, float eps, DType t,
                  float *partial, cudaStream_t stream) {
  const int64_t chunks = (rows + kRmsRowChunk - 1) / kRmsRowChunk;
  float *rstd = partial, *dwPartial = partial + rows;
  LLAMAC_CUDA_DISPATCH(
      t, {
        if (rows > 0) {
          rmsNormBwdDxKernel<T><<<rows, kRowThreads, 0, stream>>>(
              static_cast<const T *>(dy), static_cast<const T *>(x),
              static_cast<const T *>(w), static_cast<T *>(dx), rstd, d, eps);
          dim3 grid(static_cast<unsigned>((d + kThreads - 1) / kThreads),
                    static_cast<unsigned>(chunks));
          rmsNormBwdDwPartialKernel<T><<<grid, kThreads, 0, stream>>>(
              static_cast<const T *>(dy), static_cast<const T *>(x), rstd,
              dwPartial, rows, d);
        }
        rmsNormBwdDwSumKernel<T><<<gridFor(d), kThreads, 0, stream>>>(
            dwPartial, static_cast<T *>(dw), chunks, d);
      });
  return lastError();
}

Status rope(const void *x, void *y, int64_t b, int64_t s, int64_t h,
            int64_t dh, float theta, int64_t posOffset, bool inverse, DType t,
            cudaStream_t stream) {
  const int64_t total = b * s * h * (dh / 2);
  if (total == 0)
    return 0;
  LLAMAC_CUDA_DISPATCH(t, ropeKernel<T><<<gridFor(total), kThreads, 0,
                                           stream>>>(
                              static_cast<const T *>(x), static_cast<T *>(y),
                              s, h, dh, std::log(double(theta)), posOffset,
                              inverse ? -1.0 : 1.0, total));
  return lastError();
}

Status swigluFwd(const void *gate, const void *up, void *y, int64_t n, DType t,
                 cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, swigluFwdKernel<T><<<gridFor(n), kThreads, 0,
                                                stream>>>(
                              static_cast<const T *>(gate),
                              static_cast<const T *>(up), static_cast<T *>(y),
                              n));
  return lastError();
}

Status swigluBwd(const void *dy, const void *gate, const void *up, void *dgate,
                 void *dup, int64_t n, DType t, cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, swigluBwdKernel<T><<<gridFor(n), kThreads, 0,
                                                stream>>>(
                              static_cast<const T *>(dy),
                              static_cast<const T *>(gate),
                              static_cast<const T *>(up),
                              static_cast<T *>(dgate), static_cast<T *>(dup),
                              n));
  return lastError();
}

Status add(const void *a, const void *b, void *y, int64_t n, DType t,
           cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, addKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
                              static_cast<const T *>(a),
                              static_cast<const T *>(b), static_cast<T *>(y),
                              n));
  return lastError();
}

Status scale(const void *x, const float *s, void *y, int64_t n, DType t,
             cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, scaleKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
                              static_cast<const T *>(x), s,
                              static_cast<T *>(y), n));
  return lastError();
}

Status clipByValue(const void *x, void *y, int64_t n, float limit, DType t,
                   cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, clipKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
                              static_cast<const T *>(x), static_cast<T *>(y),
                              n, limit));
  return lastError();
}

Status fill(void *y, int64_t n, float value, DType t, cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, fillKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
                              static_cast<T *>(y), n, value));
  return lastError();
}

Status cast(const void *x, DType from, void *y, DType to, int64_t n,
            cudaStream_t stream) {
  if (from == to)
    return static_cast<Status>(cudaMemcpyAsync(
        y, x, static_cast<size_t>(n) * dtypeBytes(from),
        cudaMemcpyDeviceToDevice, stream));
  castKernel<<<gridFor(n), kThreads, 0, stream>>>(x, from, y, to, n);
  return lastError();
}

Status crossEntropyFwd(const void *logits, const int32_t *targets, float *loss,
                       int64_t rows, int64_t v, double scale, DType t,
                       float *rowLoss, cudaStream_t stream) {
  if (rows > 0)
    LLAMAC_CUDA_DISPATCH(t, crossEntropyRowKernel<T><<<rows, kRowThreads, 0,
                                                        stream>>>(
                                static_cast<const T *>(logits), targets,
                                rowLoss, v));
  sumRowsKernel<<<1, 1024, 0, stream>>>(rowLoss, rows, scale, loss);
  return lastError();
}

Status crossEntropyBwd(const float *dloss, const void *logits,
                       const int32_t *targets, void *dlogits, int64_t rows,
                       int64_t v, double scale, DType t, cudaStream_t stream) {
  if (rows == 0)
    return 0;
  LLAMAC_CUDA_DISPATCH(t, crossEntropyBwdKernel<T><<<rows, kRowThreads, 0,
                                                      stream>>>(
                              dloss, static_cast<const T *>(logits), targets,
                              static_cast<T *>(dlogits), v, scale));
  return lastError();
}

Status rowMaxes(const void *logits, void *mx, int64_t rows, int64_t v, DType t,
                cudaStream_t stream) {
  if (rows == 0)
    return 0;
  LLAMAC_CUDA_DISPATCH(t, rowMaxKernel<T><<<rows, kRowThreads, 0, stream>>>(
                              static_cast<const T *>(logits),
                              static_cast<T *>(mx), v));
  return lastError();
}

Status rowSumExp(const void *logits, const void *mx, void *s, int64_t rows,
                 int64_t v, DType t, cudaStream_t stream) {
  if (rows == 0)
    return 0;
  LLAMAC_CUDA_DISPATCH(t, rowSumExpKernel<T><<<rows, kRowThreads, 0, stream>>>(
                              static_cast<const T *>(logits),
                              static_cast<const T *>(mx), static_cast<T *>(s),
                              v));
  return lastError();
}

Status targetLogits(const void *logits, const int32_t *targets, void *tl,
                    int64_t rows, int64_t v, int64_t begin, DType t,
                    cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, targetLogitKernel<T><<<gridFor(rows), kThreads, 0,
                                                  stream>>>(
                              static_cast<const T *>(logits), targets,
                              static_cast<T *>(tl), rows, v, begin));
  return lastError();
}

Status crossEntropyFromStats(const void *mx, const void *s, const void *tl,
                             float *loss, int64_t rows, double scale, DType t,
                             cudaStream_t stream) {
  LLAMAC_CUDA_DISPATCH(t, crossEntropyFromStatsKernel<T><<<1, 1024, 0,
                                                            stream>>>(
                              static_cast<const T *>(mx),
                              static_cast<const T *>(s),
                              static_cast<const T *>(tl), rows, scale, loss));
  return lastError();
}

Status crossEntropyBwdFromStats(const float *dloss, const void *logits,
                                const int32_t *targets, const void *mx,
                                const void *s, void *dlogits, int64_t rows,
                                int64_t v, int64_t begin, double scale,
                                DType t, cudaStream_t stream) {
  if (rows == 0)
    return 0;
  LLAMAC_CUDA_DISPATCH(t, crossEntropyBwdFromStatsKernel<T><<<rows, kRowThreads,
                                                               0, stream>>>(
                              dloss, static_cast<const T *>(logits), targets,
                              static_cast<const T *>(mx),
                              static_cast<const T *>(s),
                              static_cast<T *>(dlogits), v, begin, scale));
  return lastError();
}

int64_t multiTensorChunks(const int64_t *sizes, int count, int64_t *chunkStart) {
  int64_t chunks = 0;
  for (int t = 0; t < count; ++t) {
    chunkStart[t] = chunks;
    chunks += (sizes[t] + kMultiTensorChunk - 1) / kMultiTensorChunk;
  }
  chunkStart[count] = chunks;
  return chunks;
}

Status sumSquares(const TensorRef *list, int count, int64_t chunks,
                  const int64_t *chunkStart, float *out, bool root,
                  double *partial, cudaStream_t stream) {
  if (chunks > 0)
    sumSquaresChunkKernel<<<static_cast<unsigned>(chunks), kThreads, 0,
                            stream>>>(list, count, chunkStart, partial);
  finishSumKernel<<<1, 1024, 0, stream>>>(partial, chunks, out, root ? 1 : 0);
  return lastError();
}

Status allFinite(const TensorRef *list, int count, int64_t chunks,
                 const int64_t *chunkStart, float *ok, double *partial,
                 cudaStream_t stream) {
  if (chunks > 0)
    allFiniteChunkKernel<<<static_cast<unsigned>(chunks), kThreads, 0,
                           stream>>>(list, count, chunkStart, partial);
  finishSumKernel<<<1, 1024, 0, stream>>>(partial, chunks, ok, 2);
  return lastError();
}

Status sqrtScalar(const float *x, float *y, cudaStream_t stream) {
  sqrtKernel<<<1, 1, 0, stream>>>(x, y);
  return lastError();
}

Status clipCoef(const float *norm, float *coef, double maxNorm,
                cudaStream_t stream) {
  clipCoefKernel<<<1, 1, 0, stream>>>(norm, coef, maxNorm);
  return lastError();
}

Status lrSchedule(const int64_t *step, float *lr, double baseLr, double minLr,
                  int64_t warmup, int64_t decay, cudaStream_t stream) {
  lrScheduleKernel<<<1, 1, 0, stream>>>(step, lr, baseLr, minLr, warmup, decay);
  return lastError();
}

Status adamw(const AdamRef *list, int count, int64_t chunks,
             const int64_t *chunkStart, const float *lr, const int64_t *step,
             const float *apply, double beta1, double beta2, double eps,
             double weightDecay, cudaStream_t stream) {
  if (chunks == 0)
    return 0;
  adamwKernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(
      list, count, chunkStart, lr, step, apply, beta1, beta2, eps,
      weightDecay);
  return lastError();
}

Status sliceBlock(const void *x, void *y, int64_t outer, int64_t d,
                  int64_t inner, int64_t g, int64_t index, int elem,
                  cudaStream_t stream) {
  LLAMAC_BYTES_DISPATCH(elem, sliceKernel<E><<<gridFor(outer * d * inner),
                                                kThreads, 0, stream>>>(
                                  static_cast<const E *>(x),
                                  static_cast<E *>(y), outer, d, inner, g,
                                  index));
  return lastError();
}

Status concatBlocks(const void *blocks, void *y, int64_t g, int64_t outer,
                    int64_t d, int64_t inner, int elem, cudaStream_t stream) {
  LLAMAC_BYTES_DISPATCH(elem, blocksKernel<E><<<gridFor(g * outer * d * inner),
                                                 kThreads, 0, stream>>>(
                                  static_cast<const E *>(blocks),
                                  static_cast<E *>(y), g, outer, d, inner,
                                  true));
  return lastError();
}

Status splitBlocks(const void *x, void *blocks, int64_t g, int64_t outer,
                   int64_t d, int64_t inner, int elem, cudaStream_t stream) {
  LLAMAC_BYTES_DISPATCH(elem, blocksKernel<E><<<gridFor(g * outer * d * inner),
                                                 kThreads, 0, stream>>>(
                                  static_cast<const E *>(x),
                                  static_cast<E *>(blocks), g, outer, d, inner,
                                  false));
  return lastError();
}

} // namespace cuda
} // namespace llamac
