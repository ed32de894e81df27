// Shadow cuBLASLt: just what Gemm.cpp calls. cublasLtMatmul computes
// D = alpha * op(A) op(B) + beta * C in column-major semantics (cuBLAS docs),
// with the shape checks cuBLASLt makes (CUBLAS_STATUS_INVALID_VALUE otherwise).
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>
#include <vector>
typedef enum { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef cudaDataType_t cudaDataType;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_ALLOC_FAILED = 3,
               CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_ARCH_MISMATCH = 8, CUBLAS_STATUS_EXECUTION_FAILED = 13,
               CUBLAS_STATUS_INTERNAL_ERROR = 14, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0, CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,
               CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4 } cublasLtMatmulDescAttributes_t;
typedef enum { CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8 } cublasLtMatmulPreferenceAttributes_t;
struct cublasLtContext { int magic = 0x1234; };
typedef cublasLtContext *cublasLtHandle_t;
struct cublasLtMatmulDescOpaque_t { cublasComputeType_t compute; cudaDataType_t scale; cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N; };
typedef cublasLtMatmulDescOpaque_t *cublasLtMatmulDesc_t;
struct cublasLtMatrixLayoutOpaque_t { cudaDataType_t type; uint64_t rows, cols; int64_t ld; };
typedef cublasLtMatrixLayoutOpaque_t *cublasLtMatrixLayout_t;
struct cublasLtMatmulPreferenceOpaque_t { uint64_t ws = 0; };
typedef cublasLtMatmulPreferenceOpaque_t *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct { cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4]; } cublasLtMatmulHeuristicResult_t;

inline long gSimMatmuls = 0;
inline cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = new cublasLtContext; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
inline const char *cublasLtGetStatusString(cublasStatus_t s) {
  switch (s) { case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS"; case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED"; default: return "CUBLAS_STATUS_?"; }
}
inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t s) {
  *d = new cublasLtMatmulDescOpaque_t{c, s};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t n) {
  if (a == CUBLASLT_MATMUL_DESC_TRANSA || a == CUBLASLT_MATMUL_DESC_TRANSB) {
    if (n != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE; // cublasOperation_t is an int32 attribute
    int32_t v; std::memcpy(&v, buf, 4);
    if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
    (a == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = cublasOperation_t(v);
    return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}
inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld) {
  if (ld < int64_t(rows) || ld < 1) { *l = nullptr; return CUBLAS_STATUS_INVALID_VALUE; }
  *l = new cublasLtMatrixLayoutOpaque_t{t, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) { *p = new cublasLtMatmulPreferenceOpaque_t; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *buf, size_t n) {
  if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) { if (n != 8) return CUBLAS_STATUS_INVALID_VALUE; std::memcpy(&p->ws, buf, 8); return CUBLAS_STATUS_SUCCESS; }
  if (a >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && a <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
    uint32_t v; if (n != 4) return CUBLAS_STATUS_INVALID_VALUE; std::memcpy(&v, buf, 4);
    if (v == 0 || (v & (v - 1)) || v > 256) return CUBLAS_STATUS_INVALID_VALUE; return CUBLAS_STATUS_SUCCESS; }
  return CUBLAS_STATUS_INVALID_VALUE;
}
/// The shape check of a matmul: op(A) [m,k], op(B) [k,n], C = D [m,n].
inline cublasStatus_t simMatmulCheck(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                                     cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D, uint64_t &m, uint64_t &n, uint64_t &k) {
  if (!d || !A || !B || !C || !D) return CUBLAS_STATUS_INVALID_VALUE;
  m = C->rows; n = C->cols;
  const uint64_t am = d->ta == CUBLAS_OP_N ? A->rows : A->cols, ak = d->ta == CUBLAS_OP_N ? A->cols : A->rows;
  const uint64_t bk = d->tb == CUBLAS_OP_N ? B->rows : B->cols, bn = d->tb == CUBLAS_OP_N ? B->cols : B->rows;
  if (am != m || bn != n || ak != bk || D->rows != m || D->cols != n) {
    fprintf(stderr, "cublasLt shadow: shape mismatch: op(A) %llux%llu op(B) %llux%llu C %llux%llu\n",
            (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn,
            (unsigned long long)m, (unsigned long long)n);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  k = ak;
  if (A->type != B->type || C->type != D->type || d->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && A->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A,
                                                     cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D,
                                                     cublasLtMatmulPreference_t, int requested, cublasLtMatmulHeuristicResult_t *r, int *count) {
  uint64_t m, n, k;
  if (!h || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  cublasStatus_t s = simMatmulCheck(d, A, B, C, D, m, n, k);
  if (s != CUBLAS_STATUS_SUCCESS) { *count = 0; return s; }
  r[0] = cublasLtMatmulHeuristicResult_t{};
  r[0].algo.data[0] = 0xA160;
  r[0].state = CUBLAS_STATUS_SUCCESS;
  *count = 1;
  return CUBLAS_STATUS_SUCCESS;
}
inline float simLoad(const void *p, cudaDataType_t t, int64_t i) {
  switch (t) {
  case CUDA_R_32F: return static_cast<const float *>(p)[i];
  case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
  case CUDA_R_16F: return __half2float(static_cast<const __half *>(p)[i]);
  default: std::abort();
  }
}
inline void simStore(void *p, cudaDataType_t t, int64_t i, float x) {
  switch (t) {
  case CUDA_R_32F: static_cast<float *>(p)[i] = x; break;
  case CUDA_R_16BF: static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(x); break;
  case CUDA_R_16F: static_cast<__half *>(p)[i] = __float2half_rn(x); break;
  default: std::abort();
  }
}
inline int simElem(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *Ap,
                                     cublasLtMatrixLayout_t A, const void *Bp, cublasLtMatrixLayout_t B, const void *beta,
                                     const void *Cp, cublasLtMatrixLayout_t C, void *Dp, cublasLtMatrixLayout_t D,
                                     const cublasLtMatmulAlgo_t *algo, void *ws, size_t wsBytes, cudaStream_t stream) {
  uint64_t m, n, k;
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  cublasStatus_t s = simMatmulCheck(d, A, B, C, D, m, n, k);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (algo && algo->data[0] != 0xA160) { fprintf(stderr, "cublasLt shadow: algo not from the heuristic\n"); return CUBLAS_STATUS_INVALID_VALUE; }
  ++gSimMatmuls;
  // Every element the layouts describe must lie in device memory.
  auto span = [](cublasLtMatrixLayout_t L) { return size_t((L->cols - 1) * L->ld + L->rows) * simElem(L->type); };
  simCheckDev(Ap, span(A), "matmul A"); simCheckDev(Bp, span(B), "matmul B"); simCheckDev(Dp, span(D), "matmul D");
  if (ws && wsBytes) simCheckDev(ws, wsBytes, "matmul workspace");
  const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
  if (be != 0.0f) simCheckDev(Cp, span(C), "matmul C");
  // The product runs in stream order; the descriptors may be gone by then.
  const cublasLtMatmulDescOpaque_t dd = *d;
  const cublasLtMatrixLayoutOpaque_t La = *A, Lb = *B, Lc = *C, Ld = *D;
  const cudaError_t queued = simEnqueueWork(stream, [=] {
    const cublasLtMatmulDescOpaque_t *d = &dd;
    const cublasLtMatrixLayoutOpaque_t *A = &La, *B = &Lb, *C = &Lc, *D = &Ld;
    std::vector<float> out(m * n);
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) {
        float acc = 0.0f;
        for (uint64_t p = 0; p < k; ++p) {
          // op(A)(i,p), op(B)(p,j), column-major storage.
          const float a = d->ta == CUBLAS_OP_N ? simLoad(Ap, A->type, int64_t(i) + int64_t(p) * A->ld)
                                               : simLoad(Ap, A->type, int64_t(p) + int64_t(i) * A->ld);
          const float b = d->tb == CUBLAS_OP_N ? simLoad(Bp, B->type, int64_t(p) + int64_t(j) * B->ld)
                                               : simLoad(Bp, B->type, int64_t(j) + int64_t(p) * B->ld);
          acc = fmaf(a, b, acc);
        }
        float r = al * acc;
        if (be != 0.0f) r += be * simLoad(Cp, C->type, int64_t(i) + int64_t(j) * C->ld);
        out[i + j * m] = r;
      }
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) simStore(Dp, D->type, int64_t(i) + int64_t(j) * D->ld, out[i + j * m]);
  });
  if (queued != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  return CUBLAS_STATUS_SUCCESS;
}
