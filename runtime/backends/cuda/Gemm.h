//===- Gemm.h - The linear kernels through cuBLASLt ---------------*- C++ -*-===//
//
// linear, linear_grad_input and linear_grad_weight (Kernels.h) as cuBLASLt
// matmuls on row-major tensors: f32, bf16 or f16 operands with f32
// accumulation (CUBLAS_COMPUTE_32F; TF32 tensor cores for f32 only when
// asked for). The algorithm of each (kind, m, n, k, dtype, operand
// alignment) is chosen once by cuBLASLt's heuristic and cached (arena
// tensors are 64-byte aligned, not the 256 bytes cuBLASLt assumes by
// default, so the heuristic is told each pointer's alignment); the workspace is one buffer given at
// construction (the device's, sized once), so a matmul never allocates and
// can be captured in a CUDA graph.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_BACKENDS_CUDA_GEMM_H
#define LLAMAC_RUNTIME_BACKENDS_CUDA_GEMM_H

#include "backends/cuda/CudaKernels.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace llamac {
namespace cuda {

enum class GemmKind : uint8_t {
  Linear,          ///< y[M,N] = x[M,K] w[N,K]^T
  LinearGradInput, ///< dx[M,K] = dy[M,N] w[N,K]
  LinearGradWeight ///< dw[N,K] = dy[M,N]^T x[M,K]
};

class Gemm {
public:
  /// `workspace` (device, not owned) of `workspaceBytes`; tf32: f32
  /// products on TF32 tensor cores (off: exact f32, as the CPU backend).
  Gemm(void *workspace, size_t workspaceBytes, bool tf32);
  ~Gemm();
  Gemm(const Gemm &) = delete;
  Gemm &operator=(const Gemm &) = delete;

  /// False (with `error`) when cuBLASLt cannot start.
  bool ok(std::string &error) const;

  /// The product of `kind`: a and b are the kernel's inputs in order
  /// (x, w / dy, w / dy, x), c its output (overwritten). All three in `t`.
  /// Returns the cuBLAS status (0 = success) of the matmul, or of the
  /// heuristic when it finds no algorithm.
  int run(GemmKind kind, const void *a, const void *b, void *c, int64_t m,
          int64_t n, int64_t k, DType t, cudaStream_t stream);

  /// What went wrong in the last failed run(), for the error message.
  const std::string &lastError() const { return lastError_; }

  /// Recommended workspace: 32 MiB (Hopper's cuBLASLt kernels use up to
  /// that for split-K and stream-K).
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

private:
  struct Plan;
  /// kind, m, n, k, dtype, and the alignment of the three pointers.
  using Key = std::tuple<int, int64_t, int64_t, int64_t, int, uint32_t>;
  Plan *plan(GemmKind kind, int64_t m, int64_t n, int64_t k, DType t,
             const uint32_t align[3]);

  void *handle_ = nullptr; ///< cublasLtHandle_t
  int initStatus_ = 0;
  void *workspace_;
  size_t workspaceBytes_;
  bool tf32_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
  std::string lastError_;
};

} // namespace cuda
} // namespace llamac

#endif // LLAMAC_RUNTIME_BACKENDS_CUDA_GEMM_H
