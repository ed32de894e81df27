// Shadow CUDA runtime for a CPU simulation of kernels: every CUDA thread of a
// block is a fiber (ucontext) on one OS thread; blocks run one at a time;
// __syncthreads / __syncwarp / shuffles are real barriers of the scheduler.
// The order in which runnable fibers (and blocks) are resumed is set by
// SIM_ORDER=fwd|rev|shuffle (SIM_SEED): results of race-free kernels do not
// depend on it.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>
#include <algorithm>
#include <ucontext.h>
#include <sys/mman.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SIM_ASAN 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __align__(n) alignas(n)
#define __launch_bounds__(...)

struct CUstream_st;
typedef struct CUstream_st *cudaStream_t;
#define __DRIVER_TYPES_H__ 1
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
                   cudaErrorInvalidConfiguration = 9, cudaErrorNoDevice = 100, cudaErrorLaunchFailure = 719 };
typedef cudaError_t cudaError;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

struct uint3 { unsigned x, y, z; };
struct uint4 { unsigned x, y, z, w; };
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline uint3 threadIdx, blockIdx;
inline dim3 gridDim, blockDim;

//===--- Math ---===//
using std::isfinite;
using std::isnan;
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline double cospi(double x) { return double(cosl(3.141592653589793238462643383279502884L * (long double)x)); }
inline int min(int a, int b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

//===--- Device memory ---===//
inline std::map<uintptr_t, size_t> &simAllocs() { static std::map<uintptr_t, size_t> m; return m; }
inline bool simIsDevicePtr(const void *p, size_t bytes) {
  auto &m = simAllocs();
  auto a = reinterpret_cast<uintptr_t>(p);
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}
inline cudaError_t gSimLastError = cudaSuccess;
inline cudaError_t cudaGetLastError() { cudaError_t e = gSimLastError; gSimLastError = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError() { return gSimLastError; }
inline const char *cudaGetErrorString(cudaError_t e) {
  switch (e) { case cudaSuccess: return "no error"; case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument"; default: return "sim error"; }
}
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void **p, size_t bytes) {
  void *q = nullptr;
  if (posix_memalign(&q, 256, bytes ? bytes : 1)) return cudaErrorMemoryAllocation;
  std::memset(q, 0xff, bytes); // cudaMalloc'd memory is not zeroed: NaN pattern
  simAllocs()[reinterpret_cast<uintptr_t>(q)] = bytes;
  *p = q;
  return cudaSuccess;
}
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc(reinterpret_cast<void **>(p), bytes); }
inline cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  auto &m = simAllocs();
  auto it = m.find(reinterpret_cast<uintptr_t>(p));
  if (it == m.end()) { fprintf(stderr, "sim: cudaFree of a non-device pointer\n"); std::abort(); }
  m.erase(it);
  std::free(p);
  return cudaSuccess;
}
inline void simCheckDev(const void *p, size_t bytes, const char *what) {
  if (bytes && !simIsDevicePtr(p, bytes)) { fprintf(stderr, "sim: %s: %zu bytes at %p are not device memory\n", what, bytes, p); std::abort(); }
}
inline cudaError_t cudaMemset(void *p, int v, size_t bytes) { simCheckDev(p, bytes, "cudaMemset"); std::memset(p, v, bytes); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t = nullptr) { return cudaMemset(p, v, bytes); }
struct SimHash { uint64_t h = 1469598103934665603ull; long n = 0;
  ~SimHash() { if (getenv("SIM_HASH")) fprintf(stderr, "SIM_HASH %016llx over %ld copies\n", (unsigned long long)h, n); } };
inline SimHash gSimHash;
inline cudaError_t cudaMemcpy(void *d, const void *s, size_t bytes, cudaMemcpyKind k) {
  if (k == cudaMemcpyDeviceToHost) { ++gSimHash.n; auto *c = static_cast<const unsigned char *>(s);
    for (size_t i = 0; i < bytes; ++i) gSimHash.h = (gSimHash.h ^ c[i]) * 1099511628211ull; }
  if (k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice) simCheckDev(d, bytes, "cudaMemcpy dst");
  if (k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice) simCheckDev(s, bytes, "cudaMemcpy src");
  if (bytes) std::memmove(d, s, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t bytes, cudaMemcpyKind k, cudaStream_t = nullptr) {
  return cudaMemcpy(d, s, bytes, k);
}

//===--- Fibers ---===//
struct SimFiber { ucontext_t ctx; void *stack = nullptr; int state = 0; /*0 run 1 wait 2 done*/ int wait = 0; };
struct SimBlock {
  unsigned nt = 0, cur = 0;
  std::vector<SimFiber> f;
  ucontext_t main;
  const void *mainStack = nullptr; size_t mainSize = 0;
  std::function<void()> body;
  unsigned blockArrived = 0;
  std::vector<unsigned> warpArrived, warpCount;
  std::vector<uint64_t> shfl[2];
  std::vector<unsigned> shflCount;
  std::map<int, void *> shared;
  unsigned char *dyn = nullptr; size_t dynSize = 0;
  std::vector<unsigned> order;
};
inline SimBlock gSim;
constexpr size_t kSimStack = 512 * 1024;
inline std::vector<void *> &simStacks() { static std::vector<void *> s; return s; }
inline long gLaunches = 0, gBlocks = 0, gFiberSwitches = 0;
inline std::mt19937 &simRng() {
  static std::mt19937 r(getenv("SIM_SEED") ? atoi(getenv("SIM_SEED")) : 1);
  return r;
}
inline int simOrderMode() {
  static int m = [] { const char *o = getenv("SIM_ORDER"); std::string s = o ? o : "fwd";
    return s == "rev" ? 1 : s == "shuffle" ? 2 : s == "greedy" ? 3 : s == "greedyrev" ? 4 : s == "greedyrand" ? 5 : 0; }();
  return m;
}

inline void simSwitch(ucontext_t *from, ucontext_t *to, const void *toStack, size_t toSize, bool dying = false) {
  ++gFiberSwitches;
#ifdef SIM_ASAN
  void *fake = nullptr;
  __sanitizer_start_switch_fiber(dying ? nullptr : &fake, toStack, toSize);
#else
  (void)toStack; (void)toSize; (void)dying;
#endif
  swapcontext(from, to);
#ifdef SIM_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}
inline void simSetCur(unsigned t) {
  gSim.cur = t;
  threadIdx = make_uint3(t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y));
}
inline void simYield() {
  SimFiber &me = gSim.f[gSim.cur];
  simSwitch(&me.ctx, &gSim.main, gSim.mainStack, gSim.mainSize);
}
inline void simFiberEntry() {
#ifdef SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &gSim.mainStack, &gSim.mainSize);
#endif
  gSim.body();
  SimFiber &me = gSim.f[gSim.cur];
  me.state = 2;
  simSwitch(&me.ctx, &gSim.main, gSim.mainStack, gSim.mainSize, true);
  std::abort();
}
inline unsigned simLinearTid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

inline void __syncthreads() {
  SimBlock &s = gSim;
  if (++s.blockArrived == s.nt) {
    s.blockArrived = 0;
    for (auto &f : s.f) if (f.state == 1 && f.wait == 1) { f.state = 0; f.wait = 0; }
  } else {
    s.f[s.cur].state = 1; s.f[s.cur].wait = 1;
  }
  simYield();
}
inline void simWarpBarrier() {
  SimBlock &s = gSim;
  const unsigned w = s.cur / 32;
  if (++s.warpArrived[w] == s.warpCount[w]) {
    s.warpArrived[w] = 0;
    for (unsigned t = w * 32; t < std::min(s.nt, w * 32 + 32); ++t)
      if (s.f[t].state == 1 && s.f[t].wait == 2) { s.f[t].state = 0; s.f[t].wait = 0; }
  } else {
    s.f[s.cur].state = 1; s.f[s.cur].wait = 2;
  }
  simYield();
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  const unsigned w = gSim.cur / 32, cnt = gSim.warpCount[w];
  const unsigned full = cnt == 32 ? 0xffffffffu : ((1u << cnt) - 1);
  if ((mask & full) != full) { fprintf(stderr, "sim: __syncwarp with partial mask %x\n", mask); std::abort(); }
  simWarpBarrier();
}
template <class T> T __shfl_xor_sync(unsigned mask, T x, int o, int width = 32) {
  static_assert(sizeof(T) <= 8, "shuffle of > 8 bytes");
  SimBlock &s = gSim;
  const unsigned t = s.cur, w = t / 32, cnt = s.warpCount[w];
  const unsigned full = cnt == 32 ? 0xffffffffu : ((1u << cnt) - 1);
  if ((mask & full) != full || width != 32) { fprintf(stderr, "sim: shuffle mask %x width %d\n", mask, width); std::abort(); }
  const unsigned k = s.shflCount[t]++;
  uint64_t bits = 0; std::memcpy(&bits, &x, sizeof x);
  s.shfl[k & 1][t] = bits;
  simWarpBarrier();
  const unsigned src = (t & ~31u) | ((t & 31u) ^ unsigned(o & 31));
  if (src >= s.nt) { fprintf(stderr, "sim: shuffle from inactive lane\n"); std::abort(); }
  if (s.shflCount[src] != k + 1 && s.shflCount[src] != k + 2) { fprintf(stderr, "sim: lanes out of step in shuffle\n"); std::abort(); }
  T y; std::memcpy(&y, &s.shfl[k & 1][src], sizeof y);
  return y;
}
inline void __trap() { fprintf(stderr, "sim: __trap\n"); std::abort(); }

/// A static __shared__ array of the current block (poisoned with 0xff bytes).
template <class T> T *simShared(size_t n, int id) {
  auto &m = gSim.shared;
  auto it = m.find(id);
  if (it != m.end()) return static_cast<T *>(it->second);
  void *p = nullptr;
  if (posix_memalign(&p, 16, n * sizeof(T))) std::abort();
  std::memset(p, 0xff, n * sizeof(T));
  m[id] = p;
  return static_cast<T *>(p);
}
inline unsigned char *simDynSmem() { return gSim.dyn; }
inline bool inSmem(const void *p, size_t bytes) {
  auto *c = static_cast<const unsigned char *>(p);
  return c >= gSim.dyn && c + bytes <= gSim.dyn + gSim.dynSize;
}

inline std::map<const void *, int> &simMaxDyn() { static std::map<const void *, int> m; return m; }
template <class T> cudaError_t cudaFuncSetAttribute(T *fn, cudaFuncAttribute a, int v) {
  if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (v > 227 * 1024) return cudaErrorInvalidValue;
    simMaxDyn()[reinterpret_cast<const void *>(fn)] = v;
  }
  return cudaSuccess;
}

inline void simRunBlock(unsigned nt) {
  SimBlock &s = gSim;
  s.nt = nt;
  s.f.assign(nt, SimFiber{});
  s.blockArrived = 0;
  const unsigned warps = (nt + 31) / 32;
  s.warpArrived.assign(warps, 0);
  s.warpCount.assign(warps, 0);
  for (unsigned w = 0; w < warps; ++w) s.warpCount[w] = std::min(32u, nt - w * 32);
  s.shfl[0].assign(nt, 0); s.shfl[1].assign(nt, 0);
  s.shflCount.assign(nt, 0);
  auto &stacks = simStacks();
  while (stacks.size() < nt) {
    void *p = mmap(nullptr, kSimStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();
    stacks.push_back(p);
  }
  for (unsigned t = 0; t < nt; ++t) {
    SimFiber &f = s.f[t];
    getcontext(&f.ctx);
    f.stack = stacks[t];
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kSimStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, simFiberEntry, 0);
  }
  s.order.resize(nt);
  const int mode = simOrderMode();
  for (unsigned t = 0; t < nt; ++t) s.order[t] = (mode == 1 || mode == 4) ? nt - 1 - t : t;
  if (mode >= 3) {
    // Greedy: always resume the highest-priority runnable thread, so that
    // some warps run as far ahead of the others as barriers allow.
    if (mode == 5) std::shuffle(s.order.begin(), s.order.end(), simRng());
    for (;;) {
      unsigned pick = nt;
      for (unsigned t : s.order) if (s.f[t].state == 0) { pick = t; break; }
      if (pick == nt) {
        bool alive = false;
        for (auto &f : s.f) alive |= f.state != 2;
        if (!alive) break;
        fprintf(stderr, "sim: deadlock in launch %ld block (%u,%u,%u)\n", gLaunches, blockIdx.x, blockIdx.y, blockIdx.z);
        std::abort();
      }
      simSetCur(pick);
      simSwitch(&s.main, &s.f[pick].ctx, s.f[pick].stack, kSimStack);
    }
    for (auto &kv : s.shared) std::free(kv.second);
    s.shared.clear();
    return;
  }
  for (;;) {
    if (simOrderMode() == 2) std::shuffle(s.order.begin(), s.order.end(), simRng());
    bool ran = false, alive = false;
    for (unsigned t : s.order) {
      if (s.f[t].state == 0) {
        simSetCur(t);
        simSwitch(&s.main, &s.f[t].ctx, s.f[t].stack, kSimStack);
        ran = true;
      }
    }
    for (auto &f : s.f) alive |= f.state != 2;
    if (!alive) break;
    if (!ran) {
      fprintf(stderr, "sim: deadlock in launch %ld block (%u,%u,%u): threads wait at a barrier others never reach\n",
              gLaunches, blockIdx.x, blockIdx.y, blockIdx.z);
      std::abort();
    }
  }
  for (auto &kv : s.shared) std::free(kv.second);
  s.shared.clear();
}

/// kernel<<<grid, block, smem, stream>>>(args...)
template <typename... KArgs, typename... Args>
void simLaunch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t, Args &&...args) {
  ++gLaunches;
  const unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
  auto dynIt = simMaxDyn().find(reinterpret_cast<const void *>(kernel));
  const size_t maxDyn = dynIt == simMaxDyn().end() ? 48 * 1024 : size_t(dynIt->second);
  if (nt == 0 || nt > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u ||
      grid.y > 65535 || grid.z > 65535 || smem > maxDyn) {
    fprintf(stderr, "sim: invalid launch config grid (%u,%u,%u) block (%u,%u,%u) smem %zu\n", grid.x, grid.y, grid.z,
            block.x, block.y, block.z, smem);
    gSimLastError = cudaErrorInvalidConfiguration;
    return;
  }
  gridDim = grid;
  blockDim = block;
  gSim.body = [&] { kernel(args...); };
  const unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z;
  std::vector<unsigned long long> border(nb);
  for (unsigned long long i = 0; i < nb; ++i) border[i] = (simOrderMode() == 1 || simOrderMode() == 4) ? nb - 1 - i : i;
  if (simOrderMode() == 2 || simOrderMode() == 5) std::shuffle(border.begin(), border.end(), simRng());
  for (unsigned long long b : border) {
    blockIdx = make_uint3(unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (grid.x * (unsigned long long)grid.y)));
    void *p = nullptr;
    if (posix_memalign(&p, 128, smem ? smem : 1)) std::abort();
    std::memset(p, 0xff, smem);
    gSim.dyn = static_cast<unsigned char *>(p);
    gSim.dynSize = smem;
    ++gBlocks;
    simRunBlock(unsigned(nt));
    std::free(p);
    gSim.dyn = nullptr;
  }
}
