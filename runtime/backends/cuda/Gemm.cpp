//===- Gemm.cpp - The linear kernels through cuBLASLt ---------------------===//
//
// cuBLASLt is column-major; a row-major [R, C] tensor is a column-major
// [C, R] matrix with leading dimension C. So, with A = the kernel's second
// input and B = its first (always), the three products are (column-major
// shapes, rows x cols, leading dimension):
//
//   linear             y' [N,M] = w'^T x'   A = w  [K,N] ld K, op T
//                                           B = x  [K,M] ld K, op N
//   linear_grad_input  dx'[K,M] = w' dy'    A = w  [K,N] ld K, op N
//                                           B = dy [N,M] ld N, op N
//   linear_grad_weight dw'[K,N] = x' dy'^T  A = x  [K,M] ld K, op N
//                                           B = dy [N,M] ld N, op T
//
//===----------------------------------------------------------------------===//
#include "backends/cuda/Gemm.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

namespace llamac {
namespace cuda {

struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS; ///< Of the set-up.
  ~Plan() {
    if (a)
      cublasLtMatrixLayoutDestroy(a);
    if (b)
      cublasLtMatrixLayoutDestroy(b);
    if (c)
      cublasLtMatrixLayoutDestroy(c);
    if (desc)
      cublasLtMatmulDescDestroy(desc);
  }
};

namespace {
cudaDataType_t dataType(DType t) {
  switch (t) {
  case DType::BF16:
    return CUDA_R_16BF;
  case DType::F16:
    return CUDA_R_16F;
  default:
    return CUDA_R_32F;
  }
}
} // namespace

Gemm::Gemm(void *workspace, size_t workspaceBytes, bool tf32)
    : workspace_(workspace), workspaceBytes_(workspaceBytes), tf32_(tf32) {
  cublasLtHandle_t h = nullptr;
  initStatus_ = cublasLtCreate(&h);
  handle_ = h;
}

Gemm::~Gemm() {
  plans_.clear();
  if (handle_)
    cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

bool Gemm::ok(std::string &error) const {
  if (initStatus_ == CUBLAS_STATUS_SUCCESS)
    return true;
  error = std::string("cublasLtCreate failed: ") +
          cublasLtGetStatusString(static_cast<cublasStatus_t>(initStatus_));
  return false;
}

Gemm::Plan *Gemm::plan(GemmKind kind, int64_t m, int64_t n, int64_t k,
                       DType t, const uint32_t align[3]) {
  Key key{static_cast<int>(kind), m, n, k, static_cast<int>(t),
          align[0] | align[1] << 9 | align[2] << 18};
  auto found = plans_.find(key);
  if (found != plans_.end())
    return found->second.get();
  auto p = std::make_unique<Plan>();
  const cudaDataType_t type = dataType(t);
  const cublasComputeType_t compute =
      t == DType::F32 && tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32
                               : CUBLAS_COMPUTE_32F;
  cublasOperation_t opA = CUBLAS_OP_N, opB = CUBLAS_OP_N;
  // Stored (column-major) shapes of A, B, C: see the file comment.
  uint64_t aRows = k, aCols = n, bRows = k, bCols = m, cRows = n, cCols = m;
  switch (kind) {
  case GemmKind::Linear:
    opA = CUBLAS_OP_T;
    break;
  case GemmKind::LinearGradInput:
    bRows = n, bCols = m, cRows = k, cCols = m;
    break;
  case GemmKind::LinearGradWeight:
    opB = CUBLAS_OP_T;
    aRows = k, aCols = m, bRows = n, bCols = m, cRows = k, cCols = n;
    break;
  }
  auto check = [&](cublasStatus_t s) {
    if (p->status == CUBLAS_STATUS_SUCCESS)
      p->status = s;
  };
  check(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
  if (p->desc) {
    check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                         &opA, sizeof(opA)));
    check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                         &opB, sizeof(opB)));
  }
  check(cublasLtMatrixLayoutCreate(&p->a, type, aRows, aCols,
                                   static_cast<int64_t>(aRows)));
  check(cublasLtMatrixLayoutCreate(&p->b, type, bRows, bCols,
                                   static_cast<int64_t>(bRows)));
  check(cublasLtMatrixLayoutCreate(&p->c, type, cRows, cCols,
                                   static_cast<int64_t>(cRows)));
  if (p->status == CUBLAS_STATUS_SUCCESS) {
    cublasLtMatmulPreference_t pref = nullptr;
    check(cublasLtMatmulPreferenceCreate(&pref));
    if (pref) {
      uint64_t bytes = workspaceBytes_;
      check(cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes,
          sizeof(bytes)));
      // The operands' actual alignment (A is the kernel's second input, B
      // its first, C = D its output).
      const uint32_t alignA = align[1], alignB = align[0], alignC = align[2];
      check(cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alignA,
          sizeof(alignA)));
      check(cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alignB,
          sizeof(alignB)));
      check(cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alignC,
          sizeof(alignC)));
      check(cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alignC,
          sizeof(alignC)));
      cublasLtMatmulHeuristicResult_t result{};
      int count = 0;
      check(cublasLtMatmulAlgoGetHeuristic(
          static_cast<cublasLtHandle_t>(handle_), p->desc, p->a, p->b, p->c,
          p->c, pref, 1, &result, &count));
      if (p->status == CUBLAS_STATUS_SUCCESS && count == 0)
        p->status = CUBLAS_STATUS_NOT_SUPPORTED;
      p->algo = result.algo;
      cublasLtMatmulPreferenceDestroy(pref);
    }
  }
  Plan *raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

int Gemm::run(GemmKind kind, const void *a, const void *b, void *c, int64_t m,
              int64_t n, int64_t k, DType t, cudaStream_t stream) {
  if (initStatus_ != CUBLAS_STATUS_SUCCESS)
    return initStatus_;
  // The largest power of two up to 256 dividing each address.
  auto alignment = [](const void *ptr) {
    const auto bits = reinterpret_cast<uintptr_t>(ptr) | uintptr_t(256);
    return static_cast<uint32_t>(bits & (~bits + 1));
  };
  const uint32_t align[3] = {alignment(a), alignment(b), alignment(c)};
  const Plan *p = plan(kind, m, n, k, t, align);
  static const char *names[] = {"linear", "linear_grad_input",
                                "linear_grad_weight"};
  auto shape = [&] {
    return std::string(names[static_cast<int>(kind)]) + " m=" +
           std::to_string(m) + " n=" + std::to_string(n) +
           " k=" + std::to_string(k);
  };
  if (p->status != CUBLAS_STATUS_SUCCESS) {
    lastError_ = "cuBLASLt found no algorithm for " + shape() + ": " +
                 cublasLtGetStatusString(p->status);
    return p->status;
  }
  const float alpha = 1.0f, beta = 0.0f;
  // A is the kernel's second input, B its first (file comment).
  cublasStatus_t s = cublasLtMatmul(
      static_cast<cublasLtHandle_t>(handle_), p->desc, &alpha, b, p->a, a,
      p->b, &beta, c, p->c, c, p->c, &p->algo, workspace_, workspaceBytes_,
      stream);
  if (s != CUBLAS_STATUS_SUCCESS)
    lastError_ = "cublasLtMatmul " + shape() + ": " + cublasLtGetStatusString(s);
  return s;
}

} // namespace cuda
} // namespace llamac
