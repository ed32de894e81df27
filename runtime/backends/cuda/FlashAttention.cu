//===- FlashAttention.cu - Tiled causal GQA attention on CUDA -------------===//
//
// attentionFwd / attentionBwd of CudaKernels.h: causal grouped-query
// attention in the flash-attention style. Memory is O(S): the only
// per-position state is out, lse [B, H, S] and, in the backward pass,
// delta [B, H, S]; score tiles live in shared memory and registers.
//
// Algorithm (one (batch, head) slice; i a query row, j a key, j <= i):
//  - Forward. One block per (query tile, b, h) walks the key tiles from 0 up
//    to the diagonal (tiles entirely above it are skipped) with an online
//    softmax: running max m, running sum l and an f32 accumulator O, each
//    rescaled by exp(m_old - m_new) when the max grows. At the end
//    out = O / l and lse = m + log(l). Key 0 is in every row's first tile,
//    so m is finite from the first tile on (masked scores are -inf, and
//    exp(-inf - m) = 0).
//  - Backward, FlashAttention-2 style but deterministic (no atomics):
//     1. delta[b, h, i] = <dout_i, out_i>, one warp per row.
//     2. One block per (key tile, b, kv head) recomputes
//        P = exp(scale * Q K^T - lse) for the query heads of its kv head and
//        the query tiles from the diagonal to the end, in that fixed order,
//        and accumulates dV += P^T dO and dK += dS^T Q, where
//        dS = P * (dO V^T - delta); dk = scale * dK and dv are written once.
//     3. One block per (query tile, b, h) recomputes P and dS for the key
//        tiles up to the diagonal and accumulates dQ += dS K; dq = scale * dQ
//        is written once.
//    Recomputing P in pass 3 instead of scattering dQ with atomics is the
//    price of determinism.
//
// Two implementations of the same algorithm:
//  - 16-bit storage (bf16, f16): every matrix product (Q K^T, P V; in the
//    backward pass dO V^T, P^T dO, dS^T Q, dS K) runs on tensor cores
//    through WMMA (16x16x16 fragments, f32 accumulators); the softmax and
//    dS are computed in f32 from the accumulators, stored to shared memory.
//    P and dS are rounded to the storage type to feed the tensor cores, as
//    in FlashAttention. The head dim D is a template parameter (a multiple
//    of 16, at most 128), so fragment arrays live in registers.
//  - f32 storage: plain f32 FMAs (no TF32), thread micro-tiles over shared
//    memory, any head dim up to 128. This is the path of the fp32
//    conformance tests against the CPU oracle.
// Rows past S (a partial last tile) are loaded as zeros, masked, and never
// written.
//
// WMMA's fragment-to-thread layout is opaque, so accumulators that need
// per-row work (the softmax, the online rescale of O, the epilogues) go
// through shared memory with a row-major store_matrix_sync.
//
//===----------------------------------------------------------------------===//
#include "backends/cuda/CudaKernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace llamac {
namespace cuda {

namespace {

namespace wmma = nvcuda::wmma;

using bf16 = __nv_bfloat16;
using f16 = __half;

/// Scalars of one attention call, as the kernels use them. The launchers
/// check that every count fits an int.
struct AttnParams {
  int s;       ///< Sequence length.
  int h;       ///< Query heads.
  int kv;      ///< Key/value heads.
  int group;   ///< h / kv: query heads per kv head.
  float scale; ///< Score scale (1 / sqrt(dh) usually).
};

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float toFloat(f16 x) { return __half2float(x); }

/// Rounds to nearest even (16-bit storage types only).
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ bf16 fromFloat<bf16>(float x) {
  return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ f16 fromFloat<f16>(float x) {
  return __float2half_rn(x);
}

/// Element offset of position i of head `head` of batch b in a
/// [B, S, heads, dh] tensor.
__device__ __forceinline__ int64_t rowOffset(int b, int i, int s, int heads,
                                             int head, int dh) {
  return ((int64_t(b) * s + i) * heads + head) * int64_t(dh);
}

/// Offset of (b, head, i) in a [B, H, S] tensor (lse, delta).
__device__ __forceinline__ int64_t statOffset(int b, int head, int i, int s,
                                              int heads) {
  return (int64_t(b) * heads + head) * s + i;
}

/// Max and sum over the 16 lanes of a half warp (xor butterfly: every lane
/// gets the bitwise same result, the order being fixed).
__device__ __forceinline__ float halfWarpMax(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1)
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float halfWarpSum(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1)
    x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__host__ __device__ constexpr int ceilDiv(int a, int b) {
  return (a + b - 1) / b;
}

//===----------------------------------------------------------------------===//
// Backward pass 1: delta = rowsum(dout * out) (both paths)
//===----------------------------------------------------------------------===//

constexpr int kDeltaThreads = 256; ///< 8 rows (warps) per block.

/// One warp per row of out [B, S, H, Dh]; the lanes' partial sums are added
/// by a fixed xor tree. delta is [B, H, S].
template <typename T>
__global__ void __launch_bounds__(kDeltaThreads)
    attnDeltaKernel(const T *__restrict__ dout, const T *__restrict__ out,
                    float *__restrict__ delta, int64_t rows, AttnParams p,
                    int dh) {
  const int64_t row =
      int64_t(blockIdx.x) * (kDeltaThreads / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) // Uniform over the warp.
    return;
  const T *a = dout + row * dh, *o = out + row * dh;
  float sum = 0.f;
  for (int d = lane; d < dh; d += 32)
    sum = fmaf(toFloat(a[d]), toFloat(o[d]), sum);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) {
    // row = (b * S + i) * H + head.
    const int64_t bs = row / p.h;
    const int head = int(row - bs * p.h);
    const int b = int(bs / p.s), i = int(bs - int64_t(b) * p.s);
    delta[statOffset(b, head, i, p.s, p.h)] = sum;
  }
}

//===----------------------------------------------------------------------===//
// f32 path (SIMT)
//===----------------------------------------------------------------------===//
//
// 256 threads as a 16 x 16 grid (ty = tid / 16, tx = tid % 16). A thread
// owns R consecutive rows ty * R + a of a score tile and the strided
// columns tx + 16 * c, and of the [rows, Dh] accumulators the same rows and
// the columns tx + 16 * e (e < NC, NC = 2, 4 or 8 for Dh <= 32, 64, 128).
// A row's 16 threads are one half warp, so row reductions are shuffles.
// Shared tiles of Dh columns have an odd pitch (Dh | 1), so the 16 distinct
// rows read by a half warp at one column fall in 16 distinct banks.
//
//  - Forward: 64 query rows x 64 keys per tile (R = 4, 4 score columns per
//    thread). Q, one buffer that holds K and then V of the key tile, P:
//    (2 * 64 * (Dh|1) + 64 * 65) floats, 82.7 KB at Dh = 128.
//  - Backward: 32 x 32 tiles (R = 2, 2 score columns per thread).
//    dK/dV: K, V, Q, dO, P^T, dS^T, lse, delta: 74.8 KB at Dh = 128.
//    dQ: Q, dO, K, V, dS: 70.3 KB at Dh = 128.

constexpr int kF32Threads = 256;
constexpr int kF32FwdTile = 64; ///< Query rows and keys per forward tile.
constexpr int kF32BwdTile = 32; ///< Query rows and keys per backward tile.

/// dst[r * ld + d] = r < valid ? src[r * stride + d] : 0, r < rows, d < dh.
__device__ __forceinline__ void loadRowsF32(float *dst, int ld,
                                            const float *__restrict__ src,
                                            int64_t stride, int rows,
                                            int valid, int dh) {
  for (int idx = threadIdx.x; idx < rows * dh; idx += kF32Threads) {
    const int r = idx / dh, d = idx - r * dh;
    dst[r * ld + d] = r < valid ? src[r * stride + d] : 0.f;
  }
}

size_t f32FwdSmem(int dh) {
  const int ld = dh | 1;
  return sizeof(float) * (2 * kF32FwdTile * ld + kF32FwdTile * (kF32FwdTile + 1));
}
size_t f32BwdKVSmem(int dh) {
  const int ld = dh | 1, t = kF32BwdTile;
  return sizeof(float) * (4 * t * ld + 2 * t * (t + 1) + 2 * t);
}
size_t f32BwdQSmem(int dh) {
  const int ld = dh | 1, t = kF32BwdTile;
  return sizeof(float) * (4 * t * ld + t * (t + 1));
}

template <int NC>
__global__ void __launch_bounds__(kF32Threads, 1)
    attnFwdF32(const float *__restrict__ q, const float *__restrict__ k,
               const float *__restrict__ v, float *__restrict__ out,
               float *__restrict__ lse, AttnParams p, int dh) {
  constexpr int BT = kF32FwdTile, R = 4, LDP = BT + 1;
  extern __shared__ __align__(128) unsigned char smemBytes[];
  const int ld = dh | 1;
  float *Qs = reinterpret_cast<float *>(smemBytes); // [BT][ld]
  float *KVs = Qs + BT * ld;                        // [BT][ld], K then V
  float *Ps = KVs + BT * ld;                        // [BT][LDP]

  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  // Longest rows (most key tiles) first.
  const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int g = h / p.group, i0 = qt * BT;
  const int64_t qStride = int64_t(p.h) * dh, kStride = int64_t(p.kv) * dh;
  const float *kb = k + rowOffset(b, 0, p.s, p.kv, g, dh);
  const float *vb = v + rowOffset(b, 0, p.s, p.kv, g, dh);

  loadRowsF32(Qs, ld, q + rowOffset(b, i0, p.s, p.h, h, dh), qStride, BT,
              p.s - i0, dh);

  float m[R], l[R], o[R][NC];
#pragma unroll
  for (int a = 0; a < R; ++a) {
    m[a] = -INFINITY;
    l[a] = 0.f;
#pragma unroll
    for (int e = 0; e < NC; ++e)
      o[a][e] = 0.f;
  }

  // Key tiles 0 .. qt: the tiles past the diagonal tile qt are all masked.
  for (int kt = 0; kt <= qt; ++kt) {
    const int j0 = kt * BT;
    __syncthreads(); // The previous tile's P V is done with KVs and Ps.
    loadRowsF32(KVs, ld, kb + j0 * kStride, kStride, BT, p.s - j0, dh);
    __syncthreads();

    // Scores of rows ty * R + a, keys tx + 16 * c.
    float sc[R][4];
#pragma unroll
    for (int a = 0; a < R; ++a)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        sc[a][c] = 0.f;
#pragma unroll 4
    for (int d = 0; d < dh; ++d) {
      float qv[R], kv[4];
#pragma unroll
      for (int a = 0; a < R; ++a)
        qv[a] = Qs[(ty * R + a) * ld + d];
#pragma unroll
      for (int c = 0; c < 4; ++c)
        kv[c] = KVs[(tx + 16 * c) * ld + d];
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          sc[a][c] = fmaf(qv[a], kv[c], sc[a][c]);
    }

    // Online softmax. The 16 threads of a row (a half warp) keep identical
    // copies of m and l.
#pragma unroll
    for (int a = 0; a < R; ++a) {
      const int i = i0 + ty * R + a;
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int j = j0 + tx + 16 * c;
        sc[a][c] = j <= i ? sc[a][c] * p.scale : -INFINITY;
        mx = fmaxf(mx, sc[a][c]);
      }
      mx = halfWarpMax(mx);
      const float mNew = fmaxf(m[a], mx);
      const float mUse = mNew == -INFINITY ? 0.f : mNew; // No inf - inf.
      const float alpha = expf(m[a] - mUse);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float pr = expf(sc[a][c] - mUse);
        Ps[(ty * R + a) * LDP + tx + 16 * c] = pr;
        sum += pr;
      }
      sum = halfWarpSum(sum);
      l[a] = l[a] * alpha + sum;
      m[a] = mNew;
#pragma unroll
      for (int e = 0; e < NC; ++e)
        o[a][e] *= alpha;
    }
    __syncthreads(); // Everyone is done with K; P is complete.
    loadRowsF32(KVs, ld, vb + j0 * kStride, kStride, BT, p.s - j0, dh);
    __syncthreads();

    // O += P V (masked P entries are 0; V rows past S are 0).
#pragma unroll 4
    for (int jj = 0; jj < BT; ++jj) {
      float pv[R], vv[NC];
#pragma unroll
      for (int a = 0; a < R; ++a)
        pv[a] = Ps[(ty * R + a) * LDP + jj];
#pragma unroll
      for (int e = 0; e < NC; ++e) {
        const int d = tx + 16 * e;
        vv[e] = d < dh ? KVs[jj * ld + d] : 0.f;
      }
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int e = 0; e < NC; ++e)
          o[a][e] = fmaf(pv[a], vv[e], o[a][e]);
    }
  }

#pragma unroll
  for (int a = 0; a < R; ++a) {
    const int i = i0 + ty * R + a;
    if (i >= p.s)
      continue;
    const float inv = 1.f / l[a];
    float *orow = out + rowOffset(b, i, p.s, p.h, h, dh);
#pragma unroll
    for (int e = 0; e < NC; ++e) {
      const int d = tx + 16 * e;
      if (d < dh)
        orow[d] = o[a][e] * inv;
    }
    if (tx == 0)
      lse[statOffset(b, h, i, p.s, p.h)] = m[a] + logf(l[a]);
  }
}

/// dK, dV of one key tile of one (b, kv head): thread rows are keys,
/// thread columns queries (the scores are computed transposed, S^T = K Q^T).
template <int NC>
__global__ void __launch_bounds__(kF32Threads, 1)
    attnBwdKVF32(const float *__restrict__ dout, const float *__restrict__ q,
                 const float *__restrict__ k, const float *__restrict__ v,
                 const float *__restrict__ lse,
                 const float *__restrict__ delta, float *__restrict__ dk,
                 float *__restrict__ dv, AttnParams p, int dh) {
  constexpr int BT = kF32BwdTile, R = 2, LDP = BT + 1;
  extern __shared__ __align__(128) unsigned char smemBytes[];
  const int ld = dh | 1;
  float *Ks = reinterpret_cast<float *>(smemBytes); // [BT][ld]
  float *Vs = Ks + BT * ld;                         // [BT][ld]
  float *Qs = Vs + BT * ld;                         // [BT][ld]
  float *dOs = Qs + BT * ld;                        // [BT][ld]
  float *Pt = dOs + BT * ld;                        // [BT keys][LDP]
  float *dSt = Pt + BT * LDP;                       // [BT keys][LDP]
  float *lseS = dSt + BT * LDP;                     // [BT]
  float *deltaS = lseS + BT;                        // [BT]

  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int kt = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
  const int j0 = kt * BT;
  const int64_t qStride = int64_t(p.h) * dh, kStride = int64_t(p.kv) * dh;

  loadRowsF32(Ks, ld, k + rowOffset(b, j0, p.s, p.kv, g, dh), kStride, BT,
              p.s - j0, dh);
  loadRowsF32(Vs, ld, v + rowOffset(b, j0, p.s, p.kv, g, dh), kStride, BT,
              p.s - j0, dh);

  float dkAcc[R][NC], dvAcc[R][NC];
#pragma unroll
  for (int a = 0; a < R; ++a)
#pragma unroll
    for (int e = 0; e < NC; ++e)
      dkAcc[a][e] = dvAcc[a][e] = 0.f;

  // Query tiles from the diagonal (tile kt: queries j0 ..) to the end, for
  // each query head of kv head g: a fixed order.
  const int nq = ceilDiv(p.s, BT);
  for (int hg = 0; hg < p.group; ++hg) {
    const int h = g * p.group + hg;
    const float *qb = q + rowOffset(b, 0, p.s, p.h, h, dh);
    const float *dob = dout + rowOffset(b, 0, p.s, p.h, h, dh);
    const float *lseb = lse + statOffset(b, h, 0, p.s, p.h);
    const float *deltab = delta + statOffset(b, h, 0, p.s, p.h);
    for (int qt = kt; qt < nq; ++qt) {
      const int i0 = qt * BT;
      __syncthreads(); // The previous tile is done with Qs, dOs, Pt, dSt.
      loadRowsF32(Qs, ld, qb + i0 * qStride, qStride, BT, p.s - i0, dh);
      loadRowsF32(dOs, ld, dob + i0 * qStride, qStride, BT, p.s - i0, dh);
      if (tid < BT) {
        const int i = i0 + tid;
        lseS[tid] = i < p.s ? lseb[i] : 0.f;
        deltaS[tid] = i < p.s ? deltab[i] : 0.f;
      }
      __syncthreads();

      // S^T and dP^T: keys ty * R + a, queries tx + 16 * c.
      float st[R][2], dpt[R][2];
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int c = 0; c < 2; ++c)
          st[a][c] = dpt[a][c] = 0.f;
#pragma unroll 4
      for (int d = 0; d < dh; ++d) {
        float kk[R], vv[R], qq[2], oo[2];
#pragma unroll
        for (int a = 0; a < R; ++a) {
          kk[a] = Ks[(ty * R + a) * ld + d];
          vv[a] = Vs[(ty * R + a) * ld + d];
        }
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          qq[c] = Qs[(tx + 16 * c) * ld + d];
          oo[c] = dOs[(tx + 16 * c) * ld + d];
        }
#pragma unroll
        for (int a = 0; a < R; ++a)
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            st[a][c] = fmaf(kk[a], qq[c], st[a][c]);
            dpt[a][c] = fmaf(vv[a], oo[c], dpt[a][c]);
          }
      }
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int jr = ty * R + a, ic = tx + 16 * c;
          const int j = j0 + jr, i = i0 + ic;
          const float pr =
              j <= i && i < p.s ? expf(st[a][c] * p.scale - lseS[ic]) : 0.f;
          Pt[jr * LDP + ic] = pr;
          dSt[jr * LDP + ic] = pr * (dpt[a][c] - deltaS[ic]);
        }
      __syncthreads();

      // dV += P^T dO, dK += dS^T Q over the tile's queries, in order.
#pragma unroll 4
      for (int ii = 0; ii < BT; ++ii) {
        float pa[R], da[R];
#pragma unroll
        for (int a = 0; a < R; ++a) {
          pa[a] = Pt[(ty * R + a) * LDP + ii];
          da[a] = dSt[(ty * R + a) * LDP + ii];
        }
#pragma unroll
        for (int e = 0; e < NC; ++e) {
          const int d = tx + 16 * e;
          const float oo = d < dh ? dOs[ii * ld + d] : 0.f;
          const float qq = d < dh ? Qs[ii * ld + d] : 0.f;
#pragma unroll
          for (int a = 0; a < R; ++a) {
            dvAcc[a][e] = fmaf(pa[a], oo, dvAcc[a][e]);
            dkAcc[a][e] = fmaf(da[a], qq, dkAcc[a][e]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int a = 0; a < R; ++a) {
    const int j = j0 + ty * R + a;
    if (j >= p.s)
      continue;
    const int64_t off = rowOffset(b, j, p.s, p.kv, g, dh);
#pragma unroll
    for (int e = 0; e < NC; ++e) {
      const int d = tx + 16 * e;
      if (d < dh) {
        dk[off + d] = dkAcc[a][e] * p.scale;
        dv[off + d] = dvAcc[a][e];
      }
    }
  }
}

/// dQ of one query tile of one (b, h), over the key tiles up to the
/// diagonal.
template <int NC>
__global__ void __launch_bounds__(kF32Threads, 1)
    attnBwdQF32(const float *__restrict__ dout, const float *__restrict__ q,
                const float *__restrict__ k, const float *__restrict__ v,
                const float *__restrict__ lse, const float *__restrict__ delta,
                float *__restrict__ dq, AttnParams p, int dh) {
  constexpr int BT = kF32BwdTile, R = 2, LDP = BT + 1;
  extern __shared__ __align__(128) unsigned char smemBytes[];
  const int ld = dh | 1;
  float *Qs = reinterpret_cast<float *>(smemBytes); // [BT][ld]
  float *dOs = Qs + BT * ld;                        // [BT][ld]
  float *Ks = dOs + BT * ld;                        // [BT][ld]
  float *Vs = Ks + BT * ld;                         // [BT][ld]
  float *dSs = Vs + BT * ld;                        // [BT][LDP]

  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int g = h / p.group, i0 = qt * BT;
  const int64_t qStride = int64_t(p.h) * dh, kStride = int64_t(p.kv) * dh;
  const float *kb = k + rowOffset(b, 0, p.s, p.kv, g, dh);
  const float *vb = v + rowOffset(b, 0, p.s, p.kv, g, dh);

  loadRowsF32(Qs, ld, q + rowOffset(b, i0, p.s, p.h, h, dh), qStride, BT,
              p.s - i0, dh);
  loadRowsF32(dOs, ld, dout + rowOffset(b, i0, p.s, p.h, h, dh), qStride, BT,
              p.s - i0, dh);
  float lseR[R], deltaR[R], dqAcc[R][NC];
#pragma unroll
  for (int a = 0; a < R; ++a) {
    const int i = i0 + ty * R + a;
    lseR[a] = i < p.s ? lse[statOffset(b, h, i, p.s, p.h)] : 0.f;
    deltaR[a] = i < p.s ? delta[statOffset(b, h, i, p.s, p.h)] : 0.f;
#pragma unroll
    for (int e = 0; e < NC; ++e)
      dqAcc[a][e] = 0.f;
  }

  for (int kt = 0; kt <= qt; ++kt) {
    const int j0 = kt * BT;
    __syncthreads(); // The previous tile is done with Ks, Vs, dSs.
    loadRowsF32(Ks, ld, kb + j0 * kStride, kStride, BT, p.s - j0, dh);
    loadRowsF32(Vs, ld, vb + j0 * kStride, kStride, BT, p.s - j0, dh);
    __syncthreads();

    // S and dP: queries ty * R + a, keys tx + 16 * c.
    float sc[R][2], dp[R][2];
#pragma unroll
    for (int a = 0; a < R; ++a)
#pragma unroll
      for (int c = 0; c < 2; ++c)
        sc[a][c] = dp[a][c] = 0.f;
#pragma unroll 4
    for (int d = 0; d < dh; ++d) {
      float qq[R], oo[R], kk[2], vv[2];
#pragma unroll
      for (int a = 0; a < R; ++a) {
        qq[a] = Qs[(ty * R + a) * ld + d];
        oo[a] = dOs[(ty * R + a) * ld + d];
      }
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        kk[c] = Ks[(tx + 16 * c) * ld + d];
        vv[c] = Vs[(tx + 16 * c) * ld + d];
      }
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          sc[a][c] = fmaf(qq[a], kk[c], sc[a][c]);
          dp[a][c] = fmaf(oo[a], vv[c], dp[a][c]);
        }
    }
#pragma unroll
    for (int a = 0; a < R; ++a)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int ir = ty * R + a, jc = tx + 16 * c;
        const int i = i0 + ir, j = j0 + jc;
        const float pr =
            j <= i && i < p.s ? expf(sc[a][c] * p.scale - lseR[a]) : 0.f;
        dSs[ir * LDP + jc] = pr * (dp[a][c] - deltaR[a]);
      }
    __syncthreads();

    // dQ += dS K over the tile's keys, in order.
#pragma unroll 4
    for (int jj = 0; jj < BT; ++jj) {
      float da[R];
#pragma unroll
      for (int a = 0; a < R; ++a)
        da[a] = dSs[(ty * R + a) * LDP + jj];
#pragma unroll
      for (int e = 0; e < NC; ++e) {
        const int d = tx + 16 * e;
        const float kk = d < dh ? Ks[jj * ld + d] : 0.f;
#pragma unroll
        for (int a = 0; a < R; ++a)
          dqAcc[a][e] = fmaf(da[a], kk, dqAcc[a][e]);
      }
    }
  }

#pragma unroll
  for (int a = 0; a < R; ++a) {
    const int i = i0 + ty * R + a;
    if (i >= p.s)
      continue;
    float *row = dq + rowOffset(b, i, p.s, p.h, h, dh);
#pragma unroll
    for (int e = 0; e < NC; ++e) {
      const int d = tx + 16 * e;
      if (d < dh)
        row[d] = dqAcc[a][e] * p.scale;
    }
  }
}

//===----------------------------------------------------------------------===//
// 16-bit path (tensor cores through WMMA)
//===----------------------------------------------------------------------===//
//
// Shared tiles of D 16-bit elements have a pitch of D + 8 elements: a
// multiple of 8 (WMMA's requirement) whose 16-byte offset per row spreads
// the rows of a fragment load over the banks. f32 score tiles have a pitch
// of (columns + 4) floats; once their f32 values have been read (a barrier
// later), the 16-bit P / dS tiles are written over them, row r at the same
// byte offset (a pitch of 2 * (columns + 4) elements). Every region starts
// at a multiple of 128 bytes and every fragment pointer is 32-byte aligned
// (rows multiples of 16, columns multiples of 16).
//
// Accumulators that need per-row work leave the fragments through a
// per-warp 16 x 16 f32 scratch (pitch kScratchLd) and are read back by the
// lanes with a fixed layout: lane -> row lane / 2, columns (lane % 2) * 8
// .. + 7.
//
//  - Forward: 64 query rows per block, 4 warps of 16 rows each, key tiles of
//    64. Q, K, V tiles, per warp a 16 x 64 score tile (P over it) and the
//    scratch; O lives in registers in the lane layout above (D / 2 floats a
//    lane) and is rescaled there. 74.8 KB at D = 128, 50.2 KB at D = 64.
//  - Backward dK/dV: 64 keys per block, 8 warps; query tiles of 64 rows
//    (D <= 64) or 32 (D > 64). Warps 0-3 compute S^T = K Q^T for 16 keys
//    each and accumulate dV, warps 4-7 dP^T = V dO^T and dK, each in D / 16
//    accumulator fragments. 72.2 KB at D = 64, 70.9 KB at D = 128.
//  - Backward dQ: 64 query rows per block, 8 warps; key tiles of 64 (D <= 64)
//    or 32 (D > 64). Warps 0-3 compute S = Q K^T, warps 4-7 dP = dO V^T;
//    then warp w accumulates dQ for rows 16 * (w % 4) and the column blocks
//    of parity w / 4. 72.2 KB at D = 64, 71.2 KB at D = 128.

constexpr int kPad = 8;        ///< Row padding of 16-bit tiles, elements.
constexpr int kScratchLd = 20; ///< Pitch of the per-warp f32 scratch.
constexpr size_t kScratchBytes = 16 * kScratchLd * sizeof(float);

template <typename T>
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragBRow =
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragBCol =
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

/// acc[m][n] += sum_k A[m][k] * B[n][k], k < 16 * KS: A and B row-major
/// (lda, ldb), 16 rows each; B^T is read as a column-major operand.
template <typename T, int KS>
__device__ __forceinline__ void mmaABt(FragC &acc, const T *a, int lda,
                                       const T *b, int ldb) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    FragA<T> fa;
    FragBCol<T> fb;
    wmma::load_matrix_sync(fa, a + kk * 16, lda);
    wmma::load_matrix_sync(fb, b + kk * 16, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

/// acc[m][n] += sum_k A[m][k] * B[k][n], k < 16 * KS: A 16 rows, B 16
/// columns, both row-major.
template <typename T, int KS>
__device__ __forceinline__ void mmaAB(FragC &acc, const T *a, int lda,
                                      const T *b, int ldb) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    FragA<T> fa;
    FragBRow<T> fb;
    wmma::load_matrix_sync(fa, a + kk * 16, lda);
    wmma::load_matrix_sync(fb, b + kk * 16 * ldb, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

/// Copies ROWS rows of D elements (row r at src + r * stride) into dst with
/// the pitch D + kPad; rows r >= valid become 0 and are not read. `vec`:
/// the global base is 16-byte aligned, so rows are moved in 16-byte chunks
/// (D is a multiple of 16, so every row start is too).
template <typename T, int D, int ROWS, int NT>
__device__ __forceinline__ void loadTile16(T *dst, const T *__restrict__ src,
                                           int64_t stride, int valid,
                                           bool vec) {
  constexpr int LD = D + kPad;
  if (vec) {
    constexpr int CH = D / 8;
    for (int idx = threadIdx.x; idx < ROWS * CH; idx += NT) {
      const int r = idx / CH, c = idx - r * CH;
      uint4 x = make_uint4(0u, 0u, 0u, 0u);
      if (r < valid)
        x = *reinterpret_cast<const uint4 *>(src + r * stride + c * 8);
      *reinterpret_cast<uint4 *>(dst + r * LD + c * 8) = x;
    }
  } else {
    for (int idx = threadIdx.x; idx < ROWS * D; idx += NT) {
      const int r = idx / D, d = idx - r * D;
      dst[r * LD + d] = r < valid ? src[r * stride + d] : fromFloat<T>(0.f);
    }
  }
}

/// Rounds a 16-bit region size up to 128 bytes.
constexpr size_t align128(size_t n) { return (n + 127) / 128 * 128; }

// bf16 WMMA needs sm_80. When the file is compiled for an older target, the
// three tensor-core kernels (f16 ones included, for simplicity) are
// trapping stubs there; the f32 path works everywhere.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define LLAMAC_FA_WMMA_UNAVAILABLE 1
#endif

template <typename T, int D> struct Fwd16Cfg {
  static constexpr int BQ = 64, BK = 64, NT = 128;
  static constexpr int LDT = D + kPad, LDS = BK + 4, LDP = 2 * LDS;
  static constexpr size_t qBytes = align128(BQ * LDT * sizeof(T));
  static constexpr size_t kBytes = align128(BK * LDT * sizeof(T));
  static constexpr size_t sBytes = (NT / 32) * 16 * LDS * sizeof(float);
  static constexpr size_t oBytes = (NT / 32) * kScratchBytes;
  static constexpr size_t smem = qBytes + 2 * kBytes + sBytes + oBytes;
};

template <typename T, int D>
__global__ void __launch_bounds__(128, 1)
    attnFwd16(const T *__restrict__ q, const T *__restrict__ k,
              const T *__restrict__ v, T *__restrict__ out,
              float *__restrict__ lse, AttnParams p, bool vec) {
#ifdef LLAMAC_FA_WMMA_UNAVAILABLE
  __trap();
#else
  using C = Fwd16Cfg<T, D>;
  constexpr int BQ = C::BQ, BK = C::BK, NT = C::NT, LDT = C::LDT,
                LDS = C::LDS, LDP = C::LDP, NB = D / 16;
  extern __shared__ __align__(128) unsigned char smemBytes[];
  T *Qs = reinterpret_cast<T *>(smemBytes);
  T *Ks = reinterpret_cast<T *>(smemBytes + C::qBytes);
  T *Vs = reinterpret_cast<T *>(smemBytes + C::qBytes + C::kBytes);
  float *Sbuf =
      reinterpret_cast<float *>(smemBytes + C::qBytes + 2 * C::kBytes);
  float *Obuf = reinterpret_cast<float *>(smemBytes + C::qBytes +
                                          2 * C::kBytes + C::sBytes);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = lane >> 1, hf = lane & 1; // This lane's row and half.
  float *Sw = Sbuf + warp * 16 * LDS;     // [16][LDS] f32 scores
  T *Pw = reinterpret_cast<T *>(Sw);      // [16][LDP] P, over the scores
  float *Ow = Obuf + warp * 16 * kScratchLd;
  const T *Qw = Qs + warp * 16 * LDT;

  const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int g = h / p.group, i0 = qt * BQ;
  const int i = i0 + warp * 16 + r; // This lane's query.
  const int64_t qStride = int64_t(p.h) * D, kStride = int64_t(p.kv) * D;
  const T *kb = k + rowOffset(b, 0, p.s, p.kv, g, D);
  const T *vb = v + rowOffset(b, 0, p.s, p.kv, g, D);

  loadTile16<T, D, BQ, NT>(Qs, q + rowOffset(b, i0, p.s, p.h, h, D), qStride,
                           p.s - i0, vec);

  float m = -INFINITY, l = 0.f;
  float o[NB][8]; // Row r, columns nb * 16 + hf * 8 + e.
#pragma unroll
  for (int nb = 0; nb < NB; ++nb)
#pragma unroll
    for (int e = 0; e < 8; ++e)
      o[nb][e] = 0.f;

  // Key tiles up to the diagonal; BQ == BK, so that is tile qt.
  for (int kt = 0; kt <= qt; ++kt) {
    const int j0 = kt * BK;
    __syncthreads(); // Every warp is done with the previous K and V.
    loadTile16<T, D, BK, NT>(Ks, kb + j0 * kStride, kStride, p.s - j0, vec);
    loadTile16<T, D, BK, NT>(Vs, vb + j0 * kStride, kStride, p.s - j0, vec);
    __syncthreads();

    // S_w = Q_w K^T: 16 x 64, four accumulator fragments.
#pragma unroll
    for (int n = 0; n < BK / 16; ++n) {
      FragC acc;
      wmma::fill_fragment(acc, 0.f);
      mmaABt<T, NB>(acc, Qw, LDT, Ks + n * 16 * LDT, LDT);
      wmma::store_matrix_sync(Sw + n * 16, acc, LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of row r; this lane takes columns 2 * c + hf.
    float sv[BK / 2];
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < BK / 2; ++c) {
      const int col = 2 * c + hf;
      sv[c] = j0 + col <= i ? Sw[r * LDS + col] * p.scale : -INFINITY;
      mx = fmaxf(mx, sv[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float mNew = fmaxf(m, mx);
    const float mUse = mNew == -INFINITY ? 0.f : mNew; // No inf - inf.
    const float alpha = expf(m - mUse);
    float sum = 0.f;
#pragma unroll
    for (int c = 0; c < BK / 2; ++c) {
      sv[c] = expf(sv[c] - mUse);
      sum += sv[c];
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1); // Same value in both lanes.
    l = l * alpha + sum;
    m = mNew;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int e = 0; e < 8; ++e)
        o[nb][e] *= alpha;
    __syncwarp(); // All scores are read before P overwrites them.
#pragma unroll
    for (int c = 0; c < BK / 2; ++c)
      Pw[r * LDP + 2 * c + hf] = fromFloat<T>(sv[c]);
    __syncwarp();

    // O_w += P_w V, one 16-column block at a time through the scratch.
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      FragC acc;
      wmma::fill_fragment(acc, 0.f);
      mmaAB<T, BK / 16>(acc, Pw, LDP, Vs + nb * 16, LDT);
      wmma::store_matrix_sync(Ow, acc, kScratchLd, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int e = 0; e < 8; ++e)
        o[nb][e] += Ow[r * kScratchLd + hf * 8 + e];
      __syncwarp();
    }
  }

  if (i < p.s) {
    const float inv = 1.f / l;
    T *orow = out + rowOffset(b, i, p.s, p.h, h, D) + hf * 8;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int e = 0; e < 8; ++e)
        orow[nb * 16 + e] = fromFloat<T>(o[nb][e] * inv);
    if (hf == 0)
      lse[statOffset(b, h, i, p.s, p.h)] = m + logf(l);
  }
#endif
}

template <typename T, int D> struct BwdKV16Cfg {
  static constexpr int BK = 64, BR = D <= 64 ? 64 : 32, NT = 256;
  static constexpr int LDT = D + kPad, LDS = BR + 4, LDP = 2 * LDS;
  static constexpr size_t kBytes = align128(BK * LDT * sizeof(T));
  static constexpr size_t qBytes = align128(BR * LDT * sizeof(T));
  static constexpr size_t sBytes = BK * LDS * sizeof(float);
  static constexpr size_t rBytes = align128(BR * sizeof(float));
  static constexpr size_t smem = 2 * kBytes + 2 * qBytes + 2 * sBytes +
                                 2 * rBytes;
  // The epilogue's scratch (one per warp) reuses Q, dO and the score tiles.
  static_assert((NT / 32) * kScratchBytes <= 2 * qBytes + 2 * sBytes,
                "epilogue scratch does not fit");
};

/// dK, dV of one key tile (64 keys) of one (b, kv head).
template <typename T, int D>
__global__ void __launch_bounds__(256, 1)
    attnBwdKV16(const T *__restrict__ dout, const T *__restrict__ q,
                const T *__restrict__ k, const T *__restrict__ v,
                const float *__restrict__ lse, const float *__restrict__ delta,
                T *__restrict__ dk, T *__restrict__ dv, AttnParams p,
                bool vec) {
#ifdef LLAMAC_FA_WMMA_UNAVAILABLE
  __trap();
#else
  using C = BwdKV16Cfg<T, D>;
  constexpr int BK = C::BK, BR = C::BR, NT = C::NT, LDT = C::LDT,
                LDS = C::LDS, LDP = C::LDP, NB = D / 16;
  extern __shared__ __align__(128) unsigned char smemBytes[];
  unsigned char *ptr = smemBytes;
  T *Ks = reinterpret_cast<T *>(ptr);
  T *Vs = reinterpret_cast<T *>(ptr += C::kBytes);
  T *Qs = reinterpret_cast<T *>(ptr += C::kBytes);
  T *dOs = reinterpret_cast<T *>(ptr += C::qBytes);
  float *Ss = reinterpret_cast<float *>(ptr += C::qBytes);  // S^T [BK][LDS]
  float *dPs = reinterpret_cast<float *>(ptr += C::sBytes); // dP^T
  float *lseS = reinterpret_cast<float *>(ptr += C::sBytes);
  float *deltaS = reinterpret_cast<float *>(ptr += C::rBytes);
  T *Pt = reinterpret_cast<T *>(Ss);   // P^T [BK][LDP], over S^T
  T *dSt = reinterpret_cast<T *>(dPs); // dS^T [BK][LDP], over dP^T

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  // Role 0: S^T rows and dV; role 1: dP^T rows and dK. Keys 16 * rw ...
  const int role = warp >> 2, rw = warp & 3;
  const int kt = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
  const int j0 = kt * BK;
  const int64_t qStride = int64_t(p.h) * D, kStride = int64_t(p.kv) * D;

  loadTile16<T, D, BK, NT>(Ks, k + rowOffset(b, j0, p.s, p.kv, g, D), kStride,
                           p.s - j0, vec);
  loadTile16<T, D, BK, NT>(Vs, v + rowOffset(b, j0, p.s, p.kv, g, D), kStride,
                           p.s - j0, vec);

  FragC acc[NB]; // dV (role 0) or dK / scale (role 1), keys 16 * rw ...
#pragma unroll
  for (int nb = 0; nb < NB; ++nb)
    wmma::fill_fragment(acc[nb], 0.f);

  const T *A1 = (role ? Vs : Ks) + rw * 16 * LDT; // Phase 1: A1 B1^T -> C1
  const T *B1 = role ? dOs : Qs;
  float *C1 = (role ? dPs : Ss) + rw * 16 * LDS;
  const T *A3 = (role ? dSt : Pt) + rw * 16 * LDP; // Phase 3: acc += A3 B3
  const T *B3 = role ? Qs : dOs;

  // Query tiles from the first one that holds a query >= j0, for each query
  // head of kv head g: a fixed order.
  const int nq = ceilDiv(p.s, BR), qt0 = j0 / BR;
  for (int hg = 0; hg < p.group; ++hg) {
    const int h = g * p.group + hg;
    const T *qb = q + rowOffset(b, 0, p.s, p.h, h, D);
    const T *dob = dout + rowOffset(b, 0, p.s, p.h, h, D);
    const float *lseb = lse + statOffset(b, h, 0, p.s, p.h);
    const float *deltab = delta + statOffset(b, h, 0, p.s, p.h);
    for (int qt = qt0; qt < nq; ++qt) {
      const int i0 = qt * BR;
      __syncthreads(); // The previous tile is done with Q, dO, P^T, dS^T.
      loadTile16<T, D, BR, NT>(Qs, qb + i0 * qStride, qStride, p.s - i0, vec);
      loadTile16<T, D, BR, NT>(dOs, dob + i0 * qStride, qStride, p.s - i0,
                               vec);
      if (tid < BR) {
        const int i = i0 + tid;
        lseS[tid] = i < p.s ? lseb[i] : 0.f;
        deltaS[tid] = i < p.s ? deltab[i] : 0.f;
      }
      __syncthreads();

      // Phase 1: S^T = K Q^T (role 0) or dP^T = V dO^T (role 1), 16 x BR.
#pragma unroll
      for (int n = 0; n < BR / 16; ++n) {
        FragC c;
        wmma::fill_fragment(c, 0.f);
        mmaABt<T, NB>(c, A1, LDT, B1 + n * 16 * LDT, LDT);
        wmma::store_matrix_sync(C1 + n * 16, c, LDS, wmma::mem_row_major);
      }
      __syncthreads();

      // Phase 2: P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - delta),
      // key jr (row), query ic (column); masked entries 0.
      constexpr int PER = BK * BR / NT;
      float pv[PER], dsv[PER];
#pragma unroll
      for (int e = 0; e < PER; ++e) {
        const int idx = tid + e * NT, jr = idx / BR, ic = idx % BR;
        const int j = j0 + jr, i = i0 + ic;
        const float pr = j <= i && i < p.s
                             ? expf(Ss[jr * LDS + ic] * p.scale - lseS[ic])
                             : 0.f;
        pv[e] = pr;
        dsv[e] = pr * (dPs[jr * LDS + ic] - deltaS[ic]);
      }
      __syncthreads(); // All f32 values are read before the overwrite.
#pragma unroll
      for (int e = 0; e < PER; ++e) {
        const int idx = tid + e * NT, jr = idx / BR, ic = idx % BR;
        Pt[jr * LDP + ic] = fromFloat<T>(pv[e]);
        dSt[jr * LDP + ic] = fromFloat<T>(dsv[e]);
      }
      __syncthreads();

      // Phase 3: dV += P^T dO (role 0) or dK += dS^T Q (role 1).
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
        mmaAB<T, BR / 16>(acc[nb], A3, LDP, B3 + nb * 16, LDT);
    }
  }

  // Epilogue: through a per-warp scratch over the Q / dO / score region.
  __syncthreads();
  float *scr = reinterpret_cast<float *>(Qs) + warp * 16 * kScratchLd;
  T *dst = role ? dk : dv;
  const float factor = role ? p.scale : 1.f;
  const int r = lane >> 1, hf = lane & 1, j = j0 + rw * 16 + r;
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    wmma::store_matrix_sync(scr, acc[nb], kScratchLd, wmma::mem_row_major);
    __syncwarp();
    if (j < p.s) {
      T *row = dst + rowOffset(b, j, p.s, p.kv, g, D) + nb * 16 + hf * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e)
        row[e] = fromFloat<T>(factor * scr[r * kScratchLd + hf * 8 + e]);
    }
    __syncwarp();
  }
#endif
}

template <typename T, int D> struct BwdQ16Cfg {
  static constexpr int BQ = 64, BK = D <= 64 ? 64 : 32, NT = 256;
  static constexpr int LDT = D + kPad, LDS = BK + 4, LDP = 2 * LDS;
  static constexpr size_t qBytes = align128(BQ * LDT * sizeof(T));
  static constexpr size_t kBytes = align128(BK * LDT * sizeof(T));
  static constexpr size_t sBytes = BQ * LDS * sizeof(float);
  static constexpr size_t rBytes = align128(BQ * sizeof(float));
  static constexpr size_t smem = 2 * qBytes + 2 * kBytes + 2 * sBytes +
                                 2 * rBytes;
  // The epilogue's scratch reuses K, V and the score tiles.
  static_assert((NT / 32) * kScratchBytes <= 2 * kBytes + 2 * sBytes,
                "epilogue scratch does not fit");
};

/// dQ of one query tile (64 rows) of one (b, h).
template <typename T, int D>
__global__ void __launch_bounds__(256, 1)
    attnBwdQ16(const T *__restrict__ dout, const T *__restrict__ q,
               const T *__restrict__ k, const T *__restrict__ v,
               const float *__restrict__ lse, const float *__restrict__ delta,
               T *__restrict__ dq, AttnParams p, bool vec) {
#ifdef LLAMAC_FA_WMMA_UNAVAILABLE
  __trap();
#else
  using C = BwdQ16Cfg<T, D>;
  constexpr int BQ = C::BQ, BK = C::BK, NT = C::NT, LDT = C::LDT,
                LDS = C::LDS, LDP = C::LDP, NB = D / 16, NF = (NB + 1) / 2;
  extern __shared__ __align__(128) unsigned char smemBytes[];
  unsigned char *ptr = smemBytes;
  T *Qs = reinterpret_cast<T *>(ptr);
  T *dOs = reinterpret_cast<T *>(ptr += C::qBytes);
  T *Ks = reinterpret_cast<T *>(ptr += C::qBytes);
  T *Vs = reinterpret_cast<T *>(ptr += C::kBytes);
  float *Ss = reinterpret_cast<float *>(ptr += C::kBytes);  // S [BQ][LDS]
  float *dPs = reinterpret_cast<float *>(ptr += C::sBytes); // dP
  float *lseS = reinterpret_cast<float *>(ptr += C::sBytes);
  float *deltaS = reinterpret_cast<float *>(ptr += C::rBytes);
  T *dSs = reinterpret_cast<T *>(Ss); // dS [BQ][LDP], over S

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  // Phase 1: role 0 computes S, role 1 dP, for rows 16 * rw. Phase 3: the
  // dQ column blocks nb = 2 * f + role of rows 16 * rw.
  const int role = warp >> 2, rw = warp & 3;
  const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int g = h / p.group, i0 = qt * BQ;
  const int64_t qStride = int64_t(p.h) * D, kStride = int64_t(p.kv) * D;
  const T *kb = k + rowOffset(b, 0, p.s, p.kv, g, D);
  const T *vb = v + rowOffset(b, 0, p.s, p.kv, g, D);

  loadTile16<T, D, BQ, NT>(Qs, q + rowOffset(b, i0, p.s, p.h, h, D), qStride,
                           p.s - i0, vec);
  loadTile16<T, D, BQ, NT>(dOs, dout + rowOffset(b, i0, p.s, p.h, h, D),
                           qStride, p.s - i0, vec);
  if (tid < BQ) {
    const int i = i0 + tid;
    lseS[tid] = i < p.s ? lse[statOffset(b, h, i, p.s, p.h)] : 0.f;
    deltaS[tid] = i < p.s ? delta[statOffset(b, h, i, p.s, p.h)] : 0.f;
  }

  FragC acc[NF];
#pragma unroll
  for (int f = 0; f < NF; ++f)
    wmma::fill_fragment(acc[f], 0.f);

  const T *A1 = (role ? dOs : Qs) + rw * 16 * LDT; // Phase 1: A1 B1^T -> C1
  const T *B1 = role ? Vs : Ks;
  float *C1 = (role ? dPs : Ss) + rw * 16 * LDS;
  const T *A3 = dSs + rw * 16 * LDP;

  // Key tiles holding a key <= the tile's last valid query.
  const int iEnd = min(i0 + BQ, p.s);
  const int nk = ceilDiv(iEnd, BK);
  for (int kt = 0; kt < nk; ++kt) {
    const int j0 = kt * BK;
    __syncthreads(); // The previous tile is done with K, V and dS.
    loadTile16<T, D, BK, NT>(Ks, kb + j0 * kStride, kStride, p.s - j0, vec);
    loadTile16<T, D, BK, NT>(Vs, vb + j0 * kStride, kStride, p.s - j0, vec);
    __syncthreads();

    // Phase 1: S = Q K^T (role 0) or dP = dO V^T (role 1), 16 x BK.
#pragma unroll
    for (int n = 0; n < BK / 16; ++n) {
      FragC c;
      wmma::fill_fragment(c, 0.f);
      mmaABt<T, NB>(c, A1, LDT, B1 + n * 16 * LDT, LDT);
      wmma::store_matrix_sync(C1 + n * 16, c, LDS, wmma::mem_row_major);
    }
    __syncthreads();

    // Phase 2: dS = P (dP - delta), query ir (row), key jc (column).
    constexpr int PER = BQ * BK / NT;
    float dsv[PER];
#pragma unroll
    for (int e = 0; e < PER; ++e) {
      const int idx = tid + e * NT, ir = idx / BK, jc = idx % BK;
      const int i = i0 + ir, j = j0 + jc;
      const float pr = j <= i && i < p.s
                           ? expf(Ss[ir * LDS + jc] * p.scale - lseS[ir])
                           : 0.f;
      dsv[e] = pr * (dPs[ir * LDS + jc] - deltaS[ir]);
    }
    __syncthreads(); // All f32 scores are read before the overwrite.
#pragma unroll
    for (int e = 0; e < PER; ++e) {
      const int idx = tid + e * NT, ir = idx / BK, jc = idx % BK;
      dSs[ir * LDP + jc] = fromFloat<T>(dsv[e]);
    }
    __syncthreads();

    // Phase 3: dQ += dS K.
#pragma unroll
    for (int f = 0; f < NF; ++f) {
      const int nb = 2 * f + role;
      if (nb < NB) // Uniform over the warp.
        mmaAB<T, BK / 16>(acc[f], A3, LDP, Ks + nb * 16, LDT);
    }
  }

  // Epilogue: through a per-warp scratch over the K / V / score region.
  __syncthreads();
  float *scr = reinterpret_cast<float *>(Ks) + warp * 16 * kScratchLd;
  const int r = lane >> 1, hf = lane & 1, i = i0 + rw * 16 + r;
#pragma unroll
  for (int f = 0; f < NF; ++f) {
    const int nb = 2 * f + role;
    if (nb >= NB)
      continue;
    wmma::store_matrix_sync(scr, acc[f], kScratchLd, wmma::mem_row_major);
    __syncwarp();
    if (i < p.s) {
      T *row = dq + rowOffset(b, i, p.s, p.h, h, D) + nb * 16 + hf * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e)
        row[e] = fromFloat<T>(p.scale * scr[r * kScratchLd + hf * 8 + e]);
    }
    __syncwarp();
  }
#endif
}

//===----------------------------------------------------------------------===//
// Launchers
//===----------------------------------------------------------------------===//

/// Raises the kernel's dynamic shared memory limit to `bytes` (needed past
/// 48 KB; a per-device function attribute, not a stream operation).
template <typename K> cudaError_t allowSmem(K *kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel,
                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

bool aligned16(const void *p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

/// Calls f(std::integral_constant<int, D>()) for the head dim dh of the
/// 16-bit path (a multiple of 16 up to 128, checked before).
template <typename F> cudaError_t dispatchHeadDim(int dh, F &&f) {
  switch (dh) {
  case 16:
    return f(std::integral_constant<int, 16>());
  case 32:
    return f(std::integral_constant<int, 32>());
  case 48:
    return f(std::integral_constant<int, 48>());
  case 64:
    return f(std::integral_constant<int, 64>());
  case 80:
    return f(std::integral_constant<int, 80>());
  case 96:
    return f(std::integral_constant<int, 96>());
  case 112:
    return f(std::integral_constant<int, 112>());
  case 128:
    return f(std::integral_constant<int, 128>());
  default:
    return cudaErrorInvalidValue;
  }
}

/// Calls f(std::integral_constant<int, NC>()) with NC = 2, 4 or 8: the
/// 16-column groups of the f32 path's accumulators (dh <= 16 * NC).
template <typename F> cudaError_t dispatchColumns(int dh, F &&f) {
  if (dh <= 32)
    return f(std::integral_constant<int, 2>());
  if (dh <= 64)
    return f(std::integral_constant<int, 4>());
  return f(std::integral_constant<int, 8>());
}

AttnParams makeParams(const AttentionShape &shape) {
  AttnParams p;
  p.s = int(shape.s);
  p.h = int(shape.h);
  p.kv = int(shape.kv);
  p.group = int(shape.h / shape.kv);
  p.scale = shape.scale;
  return p;
}

template <typename T, int D>
cudaError_t launchFwd16(const void *q, const void *k, const void *v,
                        void *out, float *lse, const AttnParams &p, int b,
                        cudaStream_t stream) {
  using C = Fwd16Cfg<T, D>;
  if (cudaError_t e = allowSmem(attnFwd16<T, D>, C::smem))
    return e;
  const bool vec = aligned16(q) && aligned16(k) && aligned16(v);
  const dim3 grid(ceilDiv(p.s, C::BQ), p.h, b);
  attnFwd16<T, D><<<grid, C::NT, C::smem, stream>>>(
      static_cast<const T *>(q), static_cast<const T *>(k),
      static_cast<const T *>(v), static_cast<T *>(out), lse, p, vec);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launchBwd16(const void *dout, const void *q, const void *k,
                        const void *v, const float *lse, const float *delta,
                        void *dq, void *dk, void *dv, const AttnParams &p,
                        int b, cudaStream_t stream) {
  using KVC = BwdKV16Cfg<T, D>;
  using QC = BwdQ16Cfg<T, D>;
  const bool vec =
      aligned16(dout) && aligned16(q) && aligned16(k) && aligned16(v);
  if (cudaError_t e = allowSmem(attnBwdKV16<T, D>, KVC::smem))
    return e;
  const dim3 gridKV(ceilDiv(p.s, KVC::BK), p.kv, b);
  attnBwdKV16<T, D><<<gridKV, KVC::NT, KVC::smem, stream>>>(
      static_cast<const T *>(dout), static_cast<const T *>(q),
      static_cast<const T *>(k), static_cast<const T *>(v), lse, delta,
      static_cast<T *>(dk), static_cast<T *>(dv), p, vec);
  if (cudaError_t e = cudaGetLastError())
    return e;
  if (cudaError_t e = allowSmem(attnBwdQ16<T, D>, QC::smem))
    return e;
  const dim3 gridQ(ceilDiv(p.s, QC::BQ), p.h, b);
  attnBwdQ16<T, D><<<gridQ, QC::NT, QC::smem, stream>>>(
      static_cast<const T *>(dout), static_cast<const T *>(q),
      static_cast<const T *>(k), static_cast<const T *>(v), lse, delta,
      static_cast<T *>(dq), p, vec);
  return cudaGetLastError();
}

template <int NC>
cudaError_t launchFwdF32(const void *q, const void *k, const void *v,
                         void *out, float *lse, const AttnParams &p, int b,
                         int dh, cudaStream_t stream) {
  const size_t smem = f32FwdSmem(dh);
  if (cudaError_t e = allowSmem(attnFwdF32<NC>, smem))
    return e;
  const dim3 grid(ceilDiv(p.s, kF32FwdTile), p.h, b);
  attnFwdF32<NC><<<grid, kF32Threads, smem, stream>>>(
      static_cast<const float *>(q), static_cast<const float *>(k),
      static_cast<const float *>(v), static_cast<float *>(out), lse, p, dh);
  return cudaGetLastError();
}

template <int NC>
cudaError_t launchBwdF32(const void *dout, const void *q, const void *k,
                         const void *v, const float *lse, const float *delta,
                         void *dq, void *dk, void *dv, const AttnParams &p,
                         int b, int dh, cudaStream_t stream) {
  const size_t smemKV = f32BwdKVSmem(dh), smemQ = f32BwdQSmem(dh);
  if (cudaError_t e = allowSmem(attnBwdKVF32<NC>, smemKV))
    return e;
  const dim3 gridKV(ceilDiv(p.s, kF32BwdTile), p.kv, b);
  attnBwdKVF32<NC><<<gridKV, kF32Threads, smemKV, stream>>>(
      static_cast<const float *>(dout), static_cast<const float *>(q),
      static_cast<const float *>(k), static_cast<const float *>(v), lse,
      delta, static_cast<float *>(dk), static_cast<float *>(dv), p, dh);
  if (cudaError_t e = cudaGetLastError())
    return e;
  if (cudaError_t e = allowSmem(attnBwdQF32<NC>, smemQ))
    return e;
  const dim3 gridQ(ceilDiv(p.s, kF32BwdTile), p.h, b);
  attnBwdQF32<NC><<<gridQ, kF32Threads, smemQ, stream>>>(
      static_cast<const float *>(dout), static_cast<const float *>(q),
      static_cast<const float *>(k), static_cast<const float *>(v), lse,
      delta, static_cast<float *>(dq), p, dh);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launchDelta(const void *dout, const void *out, float *delta,
                        const AttnParams &p, int b, int dh,
                        cudaStream_t stream) {
  const int64_t rows = int64_t(b) * p.s * p.h;
  constexpr int rowsPerBlock = kDeltaThreads / 32;
  const int64_t blocks = (rows + rowsPerBlock - 1) / rowsPerBlock;
  attnDeltaKernel<T><<<static_cast<unsigned>(blocks), kDeltaThreads, 0,
                       stream>>>(static_cast<const T *>(dout),
                                 static_cast<const T *>(out), delta, rows, p,
                                 dh);
  return cudaGetLastError();
}

} // namespace

//===----------------------------------------------------------------------===//
// Public entry points
//===----------------------------------------------------------------------===//

const char *attentionUnsupported(const AttentionShape &shape, DType t) {
  if (t != DType::F32 && t != DType::BF16 && t != DType::F16)
    return "attention supports f32, bf16 and f16 tensors only";
  if (shape.b < 0 || shape.s < 0)
    return "negative batch or sequence length";
  if (shape.h < 1 || shape.kv < 1 || shape.dh < 1)
    return "attention needs at least one head, one kv head and a head dim";
  if (shape.h % shape.kv != 0)
    return "query heads are not a multiple of the kv heads";
  if (shape.dh > 128)
    return "head dim > 128";
  if (t != DType::F32 && shape.dh % 16 != 0)
    return "bf16/f16 attention needs a head dim that is a multiple of 16";
  if (shape.h > 65535 || shape.b > 65535)
    return "more than 65535 heads or batch rows (grid limit)";
  if (shape.s > INT_MAX / 2)
    return "sequence too long";
  // Tile indices are ints, element offsets int64; the grids' x dimension is
  // ceil(s / 32), the delta kernel's b * s * h / 8.
  if (shape.b * shape.s * shape.h / (kDeltaThreads / 32) >= INT_MAX)
    return "too many rows";
  return "";
}

Status attentionFwd(const void *q, const void *k, const void *v, void *out,
                    float *lse, const AttentionShape &shape, DType t,
                    cudaStream_t stream) {
  if (*attentionUnsupported(shape, t))
    return cudaErrorInvalidValue;
  if (shape.b == 0 || shape.s == 0)
    return cudaSuccess;
  const AttnParams p = makeParams(shape);
  const int b = int(shape.b), dh = int(shape.dh);
  switch (t) {
  case DType::F32:
    return dispatchColumns(dh, [&](auto nc) {
      return launchFwdF32<decltype(nc)::value>(q, k, v, out, lse, p, b, dh,
                                               stream);
    });
  case DType::BF16:
    return dispatchHeadDim(dh, [&](auto d) {
      return launchFwd16<bf16, decltype(d)::value>(q, k, v, out, lse, p, b,
                                                   stream);
    });
  case DType::F16:
    return dispatchHeadDim(dh, [&](auto d) {
      return launchFwd16<f16, decltype(d)::value>(q, k, v, out, lse, p, b,
                                                  stream);
    });
  default:
    return cudaErrorInvalidValue;
  }
}

Status attentionBwd(const void *dout, const void *q, const void *k,
                    const void *v, const void *out, const float *lse, void *dq,
                    void *dk, void *dv, const AttentionShape &shape, DType t,
                    float *delta, cudaStream_t stream) {
  if (*attentionUnsupported(shape, t))
    return cudaErrorInvalidValue;
  if (shape.b == 0 || shape.s == 0)
    return cudaSuccess;
  const AttnParams p = makeParams(shape);
  const int b = int(shape.b), dh = int(shape.dh);
  switch (t) {
  case DType::F32:
    if (cudaError_t e = launchDelta<float>(dout, out, delta, p, b, dh, stream))
      return e;
    return dispatchColumns(dh, [&](auto nc) {
      return launchBwdF32<decltype(nc)::value>(dout, q, k, v, lse, delta, dq,
                                               dk, dv, p, b, dh, stream);
    });
  case DType::BF16:
    if (cudaError_t e = launchDelta<bf16>(dout, out, delta, p, b, dh, stream))
      return e;
    return dispatchHeadDim(dh, [&](auto d) {
      return launchBwd16<bf16, decltype(d)::value>(dout, q, k, v, lse, delta,
                                                   dq, dk, dv, p, b, stream);
    });
  case DType::F16:
    if (cudaError_t e = launchDelta<f16>(dout, out, delta, p, b, dh, stream))
      return e;
    return dispatchHeadDim(dh, [&](auto d) {
      return launchBwd16<f16, decltype(d)::value>(dout, q, k, v, lse, delta,
                                                  dq, dk, dv, p, b, stream);
    });
  default:
    return cudaErrorInvalidValue;
  }
}

} // namespace cuda
} // namespace llamac
