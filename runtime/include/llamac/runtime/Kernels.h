//===- Kernels.h - Backend-neutral kernel contract -------------*- C++ -*-===//
//
// The kernels a plan can call. Each is named after the `llm` op it executes
// (forward and backward together). Every backend (CPU, CUDA) implements all of
// them with exactly these semantics; the CPU backend is the test oracle.
//
// Conventions
//  - All tensors are dense, row-major, contiguous. Shapes are given as ints.
//  - `T` is the element type of activations/parameters (float, double on the
//    CPU backend for finite-difference tests). Token ids are int32.
//  - Outputs never alias inputs unless said so. "Overwrites" means the output
//    is fully written; "accumulates" means `out += ...`.
//  - Results are deterministic for a fixed thread count: no atomics, no
//    reductions whose order depends on scheduling.
//
// Model math follows Hugging Face LlamaForCausalLM (DESIGN.md A1).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_KERNELS_H
#define LLAMAC_RUNTIME_KERNELS_H

#include "support/Float16.h"

#include <cstdint>

namespace llamac {
namespace kernels {

/// Threads the kernels use from now on, for calls from the calling thread.
/// On the CPU backend: the OpenMP team size (omp_set_num_threads); GEMMs are
/// split over those threads too, so OpenBLAS's own pool (pthreads build) is
/// set to one thread (openblas_set_num_threads) and never competes with
/// OpenMP's. n < 1 means 1. Results are deterministic for a fixed n.
void setNumThreads(int n);

/// out[n, :] = table[ids[n], :]. table [V, D], ids [N], out [N, D].
/// Ids outside [0, V) are a precondition violation (checked by the data loader).
template <typename T>
void embeddingFwd(const T *table, const int32_t *ids, T *out, int64_t n,
                  int64_t d, int64_t v);
/// dtable = sum over n of onehot(ids[n]) * dy[n, :]. Overwrites dtable [V, D].
template <typename T>
void embeddingBwd(const T *dy, const int32_t *ids, T *dtable, int64_t n,
                  int64_t d, int64_t v);

/// embeddingFwd on a vocabulary shard (tensor parallelism): table [V, D]
/// holds rows [begin, begin + V) of the full table. out[n, :] is
/// table[ids[n] - begin, :] when begin <= ids[n] < begin + V, else zero
/// (another shard owns that row; the shards' outputs add up to the full
/// lookup). Any int32 id is allowed.
template <typename T>
void embeddingShardFwd(const T *table, const int32_t *ids, T *out, int64_t n,
                       int64_t d, int64_t v, int64_t begin);
/// embeddingBwd on a vocabulary shard: dtable [V, D] = sum over the n with
/// begin <= ids[n] < begin + V of onehot(ids[n] - begin) * dy[n, :]; rows no
/// id selects are zero. Overwrites dtable.
template <typename T>
void embeddingShardBwd(const T *dy, const int32_t *ids, T *dtable, int64_t n,
                       int64_t d, int64_t v, int64_t begin);

/// y = w * x * rsqrt(mean(x^2) + eps) per row. x, y [rows, D], w [D].
template <typename T>
void rmsNormFwd(const T *x, const T *w, T *y, int64_t rows, int64_t d,
                float eps);
/// Overwrites dx [rows, D] and dw [D].
template <typename T>
void rmsNormBwd(const T *dy, const T *x, const T *w, T *dx, T *dw,
                int64_t rows, int64_t d, float eps);

/// y[M, N] = x[M, K] * w[N, K]^T  (torch.nn.functional.linear, HF layout).
template <typename T>
void linearFwd(const T *x, const T *w, T *y, int64_t m, int64_t n, int64_t k);
/// dx[M, K] = dy[M, N] * w[N, K]. Overwrites.
template <typename T>
void linearBwdInput(const T *dy, const T *w, T *dx, int64_t m, int64_t n,
                    int64_t k);
/// dw[N, K] = dy[M, N]^T * x[M, K]. Overwrites.
template <typename T>
void linearBwdWeight(const T *dy, const T *x, T *dw, int64_t m, int64_t n,
                     int64_t k);

/// Rotary embedding, HF rotate_half layout, on x [B, S, H, Dh] (Dh even):
/// for i < Dh/2, with a = (posOffset + s) * theta^(-2i/Dh), c = cos a,
/// s = sin a:
///   y[i]        = x[i] * c - x[i + Dh/2] * s
///   y[i + Dh/2] = x[i + Dh/2] * c + x[i] * s
/// With inverse = true it applies the transpose (the gradient):
///   y[i] = x[i] * c + x[i + Dh/2] * s ; y[i + Dh/2] = x[i + Dh/2] * c - x[i] * s
template <typename T>
void rope(const T *x, T *y, int64_t b, int64_t s, int64_t h, int64_t dh,
          float theta, int64_t posOffset, bool inverse);

/// Causal grouped-query attention.
/// q [B, S, H, Dh], k and v [B, S, KV, Dh]; query head h reads kv head
/// h / (H / KV) (HF repeat_kv). out [B, S, H, Dh];
/// lse [B, H, S] = logsumexp over the allowed keys of the scaled scores.
/// score(i, j) = scale * <q_i, k_j> for j <= i.
template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, T *out, float *lse,
                  int64_t b, int64_t s, int64_t h, int64_t kv, int64_t dh,
                  float scale);
/// Overwrites dq [B,S,H,Dh], dk and dv [B,S,KV,Dh] (kv heads sum the
/// contributions of all their query heads).
template <typename T>
void attentionBwd(const T *dout, const T *q, const T *k, const T *v,
                  const T *out, const float *lse, T *dq, T *dk, T *dv,
                  int64_t b, int64_t s, int64_t h, int64_t kv, int64_t dh,
                  float scale);

/// y = silu(gate) * up, elementwise over n.
template <typename T>
void swigluFwd(const T *gate, const T *up, T *y, int64_t n);
/// Overwrites dgate and dup.
template <typename T>
void swigluBwd(const T *dy, const T *gate, const T *up, T *dgate, T *dup,
               int64_t n);

/// Sum of per-row cross-entropy losses times `scale`:
///   loss = scale * sum_r (logsumexp(logits[r, :]) - logits[r, targets[r]])
/// logits [rows, V]. `scale` is 1 / (number of target tokens of the global
/// batch), so that per-microbatch / per-rank partial losses add up to the mean.
/// Returns the loss (accumulated in double, returned as double).
template <typename T>
double crossEntropyFwd(const T *logits, const int32_t *targets, int64_t rows,
                       int64_t v, double scale);
/// dlogits[r, :] = dloss * scale * (softmax(logits[r, :]) - onehot(targets[r])).
/// Overwrites dlogits [rows, V].
template <typename T>
void crossEntropyBwd(const T *logits, const int32_t *targets, T *dlogits,
                     int64_t rows, int64_t v, double scale, double dloss);

/// Cross entropy over a vocabulary split across ranks (Megatron's
/// vocab-parallel loss), in statistics that the ranks combine with
/// all_reduce (max for the maxima, sum for the rest). Each rank holds
/// logits [rows, V] = columns [begin, begin + V) of the full logits.
///  - rowMaxes:     mx[r] = max_j logits[r, j].
///  - rowSumExp:    s[r] = sum_j exp(logits[r, j] - mx[r]), with mx the
///                  maximum over the full vocabulary (after the max
///                  all_reduce); exponentials and sum in double.
///  - targetLogits: t[r] = logits[r, targets[r] - begin] when begin <=
///                  targets[r] < begin + V, else 0.
/// With the combined statistics of every row:
///  - crossEntropyFromStats returns scale * sum_r (log s[r] + mx[r] - t[r]),
///    accumulated in double in row order (crossEntropyFwd's loss);
///  - crossEntropyBwdFromStats overwrites dlogits [rows, V] with
///    dloss * scale * (exp(logits[r, j] - mx[r]) / s[r] - onehot), the one-hot
///    at column targets[r] - begin when that is in [0, V)
///    (crossEntropyBwd's columns of this shard).
template <typename T>
void rowMaxes(const T *logits, T *mx, int64_t rows, int64_t v);
template <typename T>
void rowSumExp(const T *logits, const T *mx, T *s, int64_t rows, int64_t v);
template <typename T>
void targetLogits(const T *logits, const int32_t *targets, T *t, int64_t rows,
                  int64_t v, int64_t begin);
template <typename T>
double crossEntropyFromStats(const T *mx, const T *s, const T *t, int64_t rows,
                             double scale);
template <typename T>
void crossEntropyBwdFromStats(const T *logits, const int32_t *targets,
                              const T *mx, const T *s, T *dlogits, int64_t rows,
                              int64_t v, int64_t begin, double scale,
                              double dloss);

/// y = a + b (elementwise). y may alias a or b.
template <typename T> void add(const T *a, const T *b, T *y, int64_t n);
/// y += x.
template <typename T> void accumulate(const T *x, T *y, int64_t n);
/// y = x * s. y may alias x.
template <typename T> void scale(const T *x, T *y, int64_t n, double s);
/// y = clamp(x, -limit, limit). y may alias x.
template <typename T>
void clipByValue(const T *x, T *y, int64_t n, double limit);
/// Sum of squares, accumulated in double in a fixed order.
template <typename T> double sumSquares(const T *x, int64_t n);
/// True when every element is finite.
template <typename T> bool allFinite(const T *x, int64_t n);
template <typename T> void fill(T *y, int64_t n, T value);
template <typename T> void copy(const T *x, T *y, int64_t n);

/// Blocks of a tensor split evenly along one dimension (the layout of
/// all_gather, reduce_scatter, all_slice and sharded arguments). The tensor
/// is viewed as [outer, g * d, inner]: outer is the product of the dims
/// before the split one, inner of those after it. Block b is
/// x[:, b * d : (b + 1) * d, :], a dense [outer, d, inner] tensor. With
/// outer == 1 every block is a contiguous range and these are plain copies.
///
/// y [outer, d, inner] = block `index` of x [outer, g * d, inner].
template <typename T>
void sliceBlock(const T *x, T *y, int64_t outer, int64_t d, int64_t inner,
                int64_t g, int64_t index);
/// y [outer, g * d, inner] = the concatenation along the split dimension of
/// the g blocks stored one after the other in `blocks` [g, outer, d, inner]
/// (what an all_gather of the blocks returns).
template <typename T>
void concatBlocks(const T *blocks, T *y, int64_t g, int64_t outer, int64_t d,
                  int64_t inner);
/// The inverse of concatBlocks: blocks [g, outer, d, inner] from
/// x [outer, g * d, inner] (the send buffer of a reduce_scatter).
template <typename T>
void splitBlocks(const T *x, T *blocks, int64_t g, int64_t outer, int64_t d,
                 int64_t inner);

/// One AdamW step in torch.optim.AdamW semantics (non-amsgrad, not maximize).
/// `step` is the 1-based step count after increment. Updates p, m, v in place:
///   p *= 1 - lr * weightDecay
///   m = beta1 * m + (1 - beta1) * g
///   v = beta2 * v + (1 - beta2) * g^2
///   p -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
template <typename T>
void adamw(T *p, const T *g, T *m, T *v, int64_t n, double lr, double beta1,
           double beta2, double eps, double weightDecay, int64_t step);

//===----------------------------------------------------------------------===//
// Low-precision storage (bf16, fp16) emulated on float
//===----------------------------------------------------------------------===//
//
// Values are held as raw bit patterns (uint16_t); the scalar conversions
// and their rounding semantics are in support/Float16.h (shared with the
// safetensors reader).
using ::llamac::bf16ToFloat;
using ::llamac::doubleToBf16;
using ::llamac::doubleToHalf;
using ::llamac::floatToBf16;
using ::llamac::floatToHalf;
using ::llamac::halfToFloat;

/// Elementwise conversions of n values; y = f(x[i]). Results do not depend on
/// the thread count.
void castF32ToBf16(const float *x, uint16_t *y, int64_t n);
void castBf16ToF32(const uint16_t *x, float *y, int64_t n);
void castF32ToF16(const float *x, uint16_t *y, int64_t n);
void castF16ToF32(const uint16_t *x, float *y, int64_t n);

/// Between the 16-bit formats: one rounding (widening to float is exact).
void castBf16ToF16(const uint16_t *x, uint16_t *y, int64_t n);
void castF16ToBf16(const uint16_t *x, uint16_t *y, int64_t n);
/// From double: one rounding to nearest even (support/Float16.h; to float
/// in the default rounding mode). To double: exact.
void castF64ToF32(const double *x, float *y, int64_t n);
void castF64ToBf16(const double *x, uint16_t *y, int64_t n);
void castF64ToF16(const double *x, uint16_t *y, int64_t n);
void castF32ToF64(const float *x, double *y, int64_t n);
void castBf16ToF64(const uint16_t *x, double *y, int64_t n);
void castF16ToF64(const uint16_t *x, double *y, int64_t n);

/// True when no element of the bf16 / fp16 patterns is inf or NaN (the
/// allFinite of their float values).
bool allFiniteBf16(const uint16_t *x, int64_t n);
bool allFiniteF16(const uint16_t *x, int64_t n);

/// Emulates storing x in bf16 / fp16 and reading it back:
/// y[i] = bf16ToFloat(floatToBf16(x[i])) (resp. half). y may alias x.
void roundTripBf16(const float *x, float *y, int64_t n);
void roundTripF16(const float *x, float *y, int64_t n);

} // namespace kernels
} // namespace llamac

#endif // LLAMAC_RUNTIME_KERNELS_H
