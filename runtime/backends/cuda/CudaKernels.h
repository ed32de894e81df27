//===- CudaKernels.h - The kernel contract on CUDA devices -------*- C++ -*-===//
//
// The kernels of llamac/runtime/Kernels.h on device memory, launched on a
// stream. Same semantics as the CPU backend (the oracle of the conformance
// suite, tests/ConformanceTest.cpp), with these differences:
//
//  - Pointers are device pointers. Scalars that the CPU kernels take or
//    return as numbers (a loss, a clip coefficient, a learning rate, the
//    step counter) are one-element device tensors, so that a training step
//    never waits for the host and can be captured in a CUDA graph.
//  - Float operands are stored as `DType` f32, bf16 or f16; every kernel
//    computes in f32 (accumulations in f32 or double, as said per kernel)
//    and rounds each 16-bit output once, to nearest even. One dtype per
//    call for the tensors of the model ("the storage type"); optimizer
//    state, `lse` and the scalars are f32.
//  - Reductions are deterministic: a fixed tree per launch configuration,
//    no floating-point atomics. The embedding gradient is a gather over the
//    token positions of each row (no scatter-add).
//
// Every launcher returns the launch's cudaError_t (cudaSuccess, or the
// error of an invalid configuration); asynchronous faults show up at the
// next synchronization, as usual.
//
// This header needs no CUDA header: cudaStream_t and cudaError_t are
// forward-declared as the runtime declares them.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_BACKENDS_CUDA_CUDAKERNELS_H
#define LLAMAC_RUNTIME_BACKENDS_CUDA_CUDAKERNELS_H

#include <cstdint>

#ifndef __DRIVER_TYPES_H__
struct CUstream_st;
typedef struct CUstream_st *cudaStream_t;
#endif

namespace llamac {
namespace cuda {

/// Storage types of float tensors. Values are plan::DType's.
enum class DType : uint8_t { F32 = 0, F64 = 1, BF16 = 2, F16 = 3 };

/// Bytes of one element.
inline int dtypeBytes(DType t) {
  return t == DType::F64 ? 8 : t == DType::F32 ? 4 : 2;
}

/// 0 = success; otherwise a cudaError_t value.
using Status = int;

//===----------------------------------------------------------------------===//
// Embedding, RMSNorm, RoPE, SwiGLU, elementwise
//===----------------------------------------------------------------------===//

/// out[n, :] = table[ids[n] - begin, :] when begin <= ids[n] < begin + v,
/// else 0 (begin = 0, sharded = false: every id is in range by contract).
Status embeddingFwd(const void *table, const int32_t *ids, void *out,
                    int64_t n, int64_t d, int64_t v, int64_t begin, DType t,
                    cudaStream_t stream);
/// dtable[r, :] = sum, in token order, of dy[n, :] over the n with
/// ids[n] == begin + r; rows no id selects are zero. Overwrites dtable
/// [v, d]. Deterministic and atomic-free on floats: a stable radix sort of
/// (id, position) pairs (CUB) groups each row's positions in token order,
/// then one thread per (row, column) adds them up. `scratch` holds
/// embeddingBwdScratchBytes(n, v) bytes.
Status embeddingBwd(const void *dy, const int32_t *ids, void *dtable,
                    int64_t n, int64_t d, int64_t v, int64_t begin, DType t,
                    void *scratch, cudaStream_t stream);
/// Bytes of embeddingBwd's scratch (the sort's buffers and temporary
/// storage, the rows' ranges). Host-only; no device work.
int64_t embeddingBwdScratchBytes(int64_t n, int64_t v);

/// y = w * x * rsqrt(mean(x^2) + eps), per row of d.
Status rmsNormFwd(const void *x, const void *w, void *y, int64_t rows,
                  int64_t d, float eps, DType t, cudaStream_t stream);
/// Overwrites dx and dw. `partial` (device, f32) holds
/// rmsNormBwdPartialSize(rows, d) floats: each row's rstd and the partial
/// sums of dw over chunks of 64 rows, added in chunk order.
Status rmsNormBwd(const void *dy, const void *x, const void *w, void *dx,
                  void *dw, int64_t rows, int64_t d, float eps, DType t,
                  float *partial, cudaStream_t stream);
int64_t rmsNormBwdPartialSize(int64_t rows, int64_t d);

/// kernels::rope (inverse = the gradient), x and y [b, s, h, dh].
Status rope(const void *x, void *y, int64_t b, int64_t s, int64_t h,
            int64_t dh, float theta, int64_t posOffset, bool inverse, DType t,
            cudaStream_t stream);

Status swigluFwd(const void *gate, const void *up, void *y, int64_t n, DType t,
                 cudaStream_t stream);
Status swigluBwd(const void *dy, const void *gate, const void *up, void *dgate,
                 void *dup, int64_t n, DType t, cudaStream_t stream);

/// y = a + b; y may alias a or b.
Status add(const void *a, const void *b, void *y, int64_t n, DType t,
           cudaStream_t stream);
/// y = x * (*s); s a device f32 scalar. y may alias x.
Status scale(const void *x, const float *s, void *y, int64_t n, DType t,
             cudaStream_t stream);
/// y = clamp(x, -limit, limit). y may alias x.
Status clipByValue(const void *x, void *y, int64_t n, float limit, DType t,
                   cudaStream_t stream);
/// y[i] = value.
Status fill(void *y, int64_t n, float value, DType t, cudaStream_t stream);
/// y = x converted (nearest even; f16 overflow gives inf); the same dtype
/// is a copy. Any of f32, bf16, f16, f64 on either side.
Status cast(const void *x, DType from, void *y, DType to, int64_t n,
            cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Cross entropy (fused: one pass over the logits per direction)
//===----------------------------------------------------------------------===//

/// rowLoss[r] = logsumexp(logits[r, :]) - logits[r, targets[r]] (f32,
/// online max and sum in one read of the row); then *loss = scale * sum_r
/// rowLoss[r], summed in double in a fixed tree by one block. rowLoss:
/// rows floats of scratch.
Status crossEntropyFwd(const void *logits, const int32_t *targets, float *loss,
                       int64_t rows, int64_t v, double scale, DType t,
                       float *rowLoss, cudaStream_t stream);
/// dlogits = (*dloss) * scale * (softmax(logits) - onehot(targets)), one
/// block per row: a max-and-sum pass, then the write. dlogits may alias
/// logits (in place).
Status crossEntropyBwd(const float *dloss, const void *logits,
                       const int32_t *targets, void *dlogits, int64_t rows,
                       int64_t v, double scale, DType t, cudaStream_t stream);

/// The vocab-parallel statistics of kernels::rowMaxes etc. mx, s, tl use
/// the storage type t as well.
Status rowMaxes(const void *logits, void *mx, int64_t rows, int64_t v, DType t,
                cudaStream_t stream);
Status rowSumExp(const void *logits, const void *mx, void *s, int64_t rows,
                 int64_t v, DType t, cudaStream_t stream);
Status targetLogits(const void *logits, const int32_t *targets, void *tl,
                    int64_t rows, int64_t v, int64_t begin, DType t,
                    cudaStream_t stream);
/// *loss = scale * sum_r (log s[r] + mx[r] - tl[r]), in double, one block,
/// a fixed tree.
Status crossEntropyFromStats(const void *mx, const void *s, const void *tl,
                             float *loss, int64_t rows, double scale, DType t,
                             cudaStream_t stream);
Status crossEntropyBwdFromStats(const float *dloss, const void *logits,
                                const int32_t *targets, const void *mx,
                                const void *s, void *dlogits, int64_t rows,
                                int64_t v, int64_t begin, double scale,
                                DType t, cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Norms, checks, scalars, optimizer (multi-tensor)
//===----------------------------------------------------------------------===//

/// A list of tensors for the multi-tensor kernels. Device pointers.
struct TensorRef {
  void *data;
  int64_t n;
  DType dtype;
};

/// *out = sum of squares of every element of the tensors (f32 ones for the
/// norm; any float dtype), or its square root (root = true). Each tensor is
/// cut into chunks; each chunk's sum is a fixed tree in double, and the
/// chunks are added in order by one block. `list` is a device array of
/// `count` refs (uploaded once at init); `partial` holds `chunks`
/// doubles.
Status sumSquares(const TensorRef *list, int count, int64_t chunks,
                  const int64_t *chunkStart, float *out, bool root,
                  double *partial, cudaStream_t stream);
/// *ok = 1 when no element of the tensors is inf or NaN, else 0.
Status allFinite(const TensorRef *list, int count, int64_t chunks,
                 const int64_t *chunkStart, float *ok, double *partial,
                 cudaStream_t stream);
/// The chunking of the multi-tensor kernels: chunkStart (host, count + 1
/// entries) gets the first chunk of each tensor; returns the number of
/// chunks. Chunks are kMultiTensorChunk elements.
constexpr int64_t kMultiTensorChunk = 65536;
int64_t multiTensorChunks(const int64_t *sizes, int count, int64_t *chunkStart);

/// *y = sqrt(*x).
Status sqrtScalar(const float *x, float *y, cudaStream_t stream);
/// *coef = min(1, maxNorm / (*norm + 1e-6)) (torch clip_grad_norm_).
Status clipCoef(const float *norm, float *coef, double maxNorm,
                cudaStream_t stream);
/// *lr = exec::scheduledLearningRate(*step, ...), in double.
Status lrSchedule(const int64_t *step, float *lr, double baseLr, double minLr,
                  int64_t warmup, int64_t decay, cudaStream_t stream);

/// One fused AdamW launch over the parameters of `params` (p, g, m, v in
/// each ParamRef; all f32): kernels::adamw with lr = *lr and
/// step = *step + 1; nothing changes when apply is given and *apply == 0.
struct AdamRef {
  float *p;
  const float *g;
  float *m, *v;
  int64_t n;
};
Status adamw(const AdamRef *list, int count, int64_t chunks,
             const int64_t *chunkStart, const float *lr, const int64_t *step,
             const float *apply, double beta1, double beta2, double eps,
             double weightDecay, cudaStream_t stream);

/// The block layout helpers of all_gather / reduce_scatter / all_slice
/// (kernels::sliceBlock etc.), in bytes of `elem` each.
Status sliceBlock(const void *x, void *y, int64_t outer, int64_t d,
                  int64_t inner, int64_t g, int64_t index, int elem,
                  cudaStream_t stream);
Status concatBlocks(const void *blocks, void *y, int64_t g, int64_t outer,
                    int64_t d, int64_t inner, int elem, cudaStream_t stream);
Status splitBlocks(const void *x, void *blocks, int64_t g, int64_t outer,
                   int64_t d, int64_t inner, int elem, cudaStream_t stream);

//===----------------------------------------------------------------------===//
// Attention (FlashAttention.cu)
//===----------------------------------------------------------------------===//

struct AttentionShape {
  int64_t b, s, h, kv, dh;
  float scale;
};

/// Causal GQA attention, tiled: O(S) memory, no S x S score tensor.
/// q, out [b, s, h, dh]; k, v [b, s, kv, dh]; lse [b, h, s] f32.
/// bf16 / f16 inputs use tensor cores (mma.sync through WMMA), f32 inputs
/// an f32 SIMT path. dh <= 128, a multiple of 16 for 16-bit inputs.
Status attentionFwd(const void *q, const void *k, const void *v, void *out,
                    float *lse, const AttentionShape &shape, DType t,
                    cudaStream_t stream);
/// Overwrites dq, dk, dv. `delta` (f32 [b, h, s]) is scratch for
/// rowsum(dout * out). Deterministic: dk and dv are accumulated per kv
/// head over its query heads and the query tiles in order, dq per query
/// tile over the key tiles in order; no atomics.
Status attentionBwd(const void *dout, const void *q, const void *k,
                    const void *v, const void *out, const float *lse, void *dq,
                    void *dk, void *dv, const AttentionShape &shape, DType t,
                    float *delta, cudaStream_t stream);
/// dq, dk, dv must not alias the inputs (the dq kernel reads k and v after
/// dk and dv are written). The launchers raise the kernels' dynamic shared
/// memory limit (cudaFuncSetAttribute, not a stream operation) each call.
/// Whether attentionFwd/Bwd support this shape and dtype ("" when they do,
/// else why not: head dim over 128, a 16-bit head dim that is not a
/// multiple of 16, a batch or head count over the grid's 65535, f64).
const char *attentionUnsupported(const AttentionShape &shape, DType t);

} // namespace cuda
} // namespace llamac

#endif // LLAMAC_RUNTIME_BACKENDS_CUDA_CUDAKERNELS_H
