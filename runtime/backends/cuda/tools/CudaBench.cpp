//===- CudaBench.cpp - Kernel-level figures of the CUDA backend -----------===//
//
// llamac-cuda-bench: the memory-bound and compute-bound ceilings of one GPU
// next to what the backend's kernels reach, in one run:
//   copy       device-to-device cudaMemcpy, bytes read + written per second
//   adamw      the fused multi-tensor AdamW (28 bytes moved per parameter:
//              p, g, m, v read; p, m, v written) and its ratio to copy
//   gemm       bf16 linear (cuBLASLt) at TinyLlama's MLP shape
//   attention  bf16 causal GQA forward and backward at TinyLlama's shape
//              (FLOPs of the causal half: 2 * 2 * b*h*s*s/2*dh forward,
//              2.5x that backward)
// Each figure is the median of 10 timed runs (CUDA events) after 3 warm-ups.
//
//   llamac-cuda-bench [--params N]   (default 1.1e9, TinyLlama-1.1B)
//   llamac-cuda-bench --small        (small shapes: the CPU simulator's smoke
//                                     test, test/e2e/cuda-sim-bench.test)
//
//===----------------------------------------------------------------------===//
#include "backends/cuda/CudaKernels.h"
#include "backends/cuda/Gemm.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace cu = llamac::cuda;

namespace {

bool ok(cudaError_t e, const char *what) {
  if (e == cudaSuccess)
    return true;
  std::fprintf(stderr, "llamac-cuda-bench: %s: %s\n", what,
               cudaGetErrorString(e));
  return false;
}

/// Median seconds of `run` over 10 timed repetitions after 3 warm-ups.
double timeIt(const std::function<void()> &run) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i)
    run();
  std::vector<double> t;
  for (int i = 0; i < 10; ++i) {
    cudaEventRecord(a);
    run();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Device memory filled with the byte 0x3c: about 0.0115 as bf16 pairs and
/// as f32, not zeros (the tensor cores run faster on zeros).
void *alloc(size_t bytes, const char *what) {
  void *p = nullptr;
  if (!ok(cudaMalloc(&p, bytes), what))
    std::exit(1);
  cudaMemset(p, 0x3c, bytes);
  return p;
}

} // namespace

int main(int argc, char **argv) {
  int64_t params = 1100000000;
  bool small = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--params") && i + 1 < argc)
      params = static_cast<int64_t>(std::atof(argv[++i]));
    else if (!std::strcmp(argv[i], "--small"))
      small = true, params = 65536;
    else {
      std::fprintf(stderr, "usage: llamac-cuda-bench [--params N | --small]\n");
      return 2;
    }
  }
  if (params < 1) {
    std::fprintf(stderr, "llamac-cuda-bench: --params must be positive\n");
    return 2;
  }
  int count = 0;
  if (!ok(cudaGetDeviceCount(&count), "cudaGetDeviceCount") || count == 0) {
    std::fprintf(stderr, "llamac-cuda-bench: no CUDA GPU\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s, %d SMs, %zu GiB\n", prop.name,
              prop.multiProcessorCount, prop.totalGlobalMem >> 30);

  // 1. Copy bandwidth on the optimizer state's size (p + m + v + g).
  const size_t bytes = static_cast<size_t>(params) * 4;
  float *p = static_cast<float *>(alloc(bytes, "p"));
  float *g = static_cast<float *>(alloc(bytes, "g"));
  float *m = static_cast<float *>(alloc(bytes, "m"));
  float *v = static_cast<float *>(alloc(bytes, "v"));
  {
    std::vector<float> host(1 << 20);
    for (size_t i = 0; i < host.size(); ++i)
      host[i] = 1e-3f * float((i * 2654435761u) % 1000 + 1);
    for (float *x : {p, g, m, v})
      for (size_t at = 0; at < static_cast<size_t>(params); at += host.size())
        cudaMemcpy(x + at, host.data(),
                   std::min(host.size(), static_cast<size_t>(params) - at) * 4,
                   cudaMemcpyHostToDevice);
  }
  const double copyS =
      timeIt([&] { cudaMemcpyAsync(m, p, bytes, cudaMemcpyDeviceToDevice); });
  const double copyBw = 2.0 * bytes / copyS;

  // 2. AdamW over the parameters, cut into TinyLlama-like tensors of 11.5 M.
  const int64_t piece = 11534336;
  std::vector<cu::AdamRef> refs;
  for (int64_t at = 0; at < params; at += piece)
    refs.push_back({p + at, g + at, m + at, v + at, std::min(piece, params - at)});
  std::vector<int64_t> sizes, starts(refs.size() + 1);
  for (const auto &r : refs)
    sizes.push_back(r.n);
  const int64_t chunks =
      cu::multiTensorChunks(sizes.data(), int(refs.size()), starts.data());
  auto *dRefs = static_cast<cu::AdamRef *>(alloc(refs.size() * sizeof(cu::AdamRef), "refs"));
  auto *dStarts = static_cast<int64_t *>(alloc(starts.size() * 8, "starts"));
  auto *lr = static_cast<float *>(alloc(4, "lr"));
  auto *step = static_cast<int64_t *>(alloc(8, "step"));
  cudaMemcpy(dRefs, refs.data(), refs.size() * sizeof(cu::AdamRef), cudaMemcpyHostToDevice);
  cudaMemcpy(dStarts, starts.data(), starts.size() * 8, cudaMemcpyHostToDevice);
  const float lrValue = 3e-4f;
  const int64_t stepValue = 0;
  cudaMemcpy(lr, &lrValue, 4, cudaMemcpyHostToDevice);
  cudaMemcpy(step, &stepValue, 8, cudaMemcpyHostToDevice);
  int adamStatus = 0, attnStatus = 0;
  const double adamS = timeIt([&] {
    adamStatus |= cu::adamw(dRefs, int(refs.size()), chunks, dStarts, lr, step, nullptr,
              0.9, 0.95, 1e-8, 0.1, nullptr);
  });
  const double adamBw = 28.0 * double(params) / adamS;
  if (!ok(cudaDeviceSynchronize(), "adamw"))
    return 1;
  for (float *x : {p, g, m, v})
    cudaFree(x);

  // 3. GEMM: TinyLlama's gate projection, 16 sequences of 2048 tokens.
  const int64_t M = small ? 256 : 16 * 2048, N = small ? 256 : 5632,
                K = small ? 128 : 2048;
  void *ws = alloc(cu::Gemm::kWorkspaceBytes, "workspace");
  cu::Gemm gemm(ws, cu::Gemm::kWorkspaceBytes, false);
  void *x = alloc(M * K * 2, "x"), *w = alloc(N * K * 2, "w"),
       *y = alloc(M * N * 2, "y");
  int gemmStatus = 0;
  const double gemmS = timeIt([&] {
    gemmStatus = gemm.run(cu::GemmKind::Linear, x, w, y, M, N, K,
                          cu::DType::BF16, nullptr);
  });
  const double gemmTf = 2.0 * M * N * K / gemmS / 1e12;
  cudaFree(x), cudaFree(w), cudaFree(y);

  // 4. Attention at TinyLlama's shape.
  const cu::AttentionShape a = small ? cu::AttentionShape{1, 128, 4, 2, 64, 0.125f}
                                     : cu::AttentionShape{8, 2048, 32, 4, 64, 0.125f};
  const size_t nq = a.b * a.s * a.h * a.dh, nk = a.b * a.s * a.kv * a.dh;
  void *q = alloc(nq * 2, "q"), *k = alloc(nk * 2, "k"), *vv = alloc(nk * 2, "v"),
       *o = alloc(nq * 2, "o"), *dq = alloc(nq * 2, "dq"),
       *dk = alloc(nk * 2, "dk"), *dv = alloc(nk * 2, "dv"),
       *dO = alloc(nq * 2, "do");
  float *lse = static_cast<float *>(alloc(a.b * a.h * a.s * 4, "lse"));
  float *delta = static_cast<float *>(alloc(a.b * a.h * a.s * 4, "delta"));
  const double fwdFlops = 4.0 * a.b * a.h * (a.s * a.s / 2.0) * a.dh;
  const double fwdS = timeIt([&] {
    attnStatus |= cu::attentionFwd(q, k, vv, o, lse, a, cu::DType::BF16, nullptr);
  });
  const double bwdS = timeIt([&] {
    attnStatus |= cu::attentionBwd(dO, q, k, vv, o, lse, dq, dk, dv, a, cu::DType::BF16,
                     delta, nullptr);
  });
  if (!ok(cudaDeviceSynchronize(), "attention"))
    return 1;

  std::printf("%-10s %12s %14s %s\n", "kernel", "time (ms)", "rate", "note");
  std::printf("%-10s %12.3f %10.0f GB/s  device-to-device copy, %.2f GB\n",
              "copy", copyS * 1e3, copyBw / 1e9, bytes / 1e9);
  std::printf("%-10s %12.3f %10.0f GB/s  fused AdamW, %.2f B params; %.2f of copy%s\n",
              "adamw", adamS * 1e3, adamBw / 1e9, params / 1e9, adamBw / copyBw,
              adamStatus ? " (FAILED)" : "");
  std::printf("%-10s %12.3f %10.1f TF/s  bf16 linear %lldx%lldx%lld%s\n", "gemm",
              gemmS * 1e3, gemmTf, (long long)M, (long long)N, (long long)K,
              gemmStatus ? " (FAILED)" : "");
  std::printf("%-10s %12.3f %10.1f TF/s  bf16 causal b=%lld s=%lld h=%lld kv=%lld dh=%lld\n",
              "attn-fwd", fwdS * 1e3, fwdFlops / fwdS / 1e12, (long long)a.b,
              (long long)a.s, (long long)a.h, (long long)a.kv, (long long)a.dh);
  std::printf("%-10s %12.3f %10.1f TF/s  (2.5x the forward's FLOPs)%s\n",
              "attn-bwd", bwdS * 1e3, 2.5 * fwdFlops / bwdS / 1e12,
              attnStatus ? " (FAILED)" : "");
  return gemmStatus || adamStatus || attnStatus ? 1 : 0;
}
