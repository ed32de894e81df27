// Shadow CUDA runtime for a CPU simulation of kernels: every CUDA thread of a
// block is a fiber (its own stack; an 8-register switch on x86-64, ucontext
// elsewhere) on one OS thread; blocks run one at a time;
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
#include <deque>
#include <functional>
#include <memory>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>
#include <algorithm>
#include <chrono>
#include <ucontext.h>
#include <sched.h>
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
                   cudaErrorInvalidConfiguration = 9, cudaErrorNoDevice = 100, cudaErrorInvalidDevice = 101,
                   cudaErrorInvalidResourceHandle = 400, cudaErrorIllegalState = 401,
                   cudaErrorNotReady = 600, cudaErrorLaunchFailure = 719,
                   cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901,
                   cudaErrorStreamCaptureUnmatched = 903, cudaErrorStreamCaptureUnjoined = 904,
                   cudaErrorStreamCaptureIsolation = 905, cudaErrorStreamCaptureImplicit = 906 };
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

//===--- Streams, events and graphs ---===//
// Work on a stream (kernels, async copies and memsets, cuBLASLt, CUB, NCCL)
// is queued, not run: SIM_STREAMS=lazy (the default) runs it only when the
// host must see it (a synchronization, a synchronous copy, a download), in
// an order that follows the streams' own order and their event waits and
// nothing else: SIM_STREAM_ORDER=first (default: the earliest-created
// runnable stream runs as far as it can), last (the latest-created first)
// or random (SIM_SEED). A missing event wait between two streams so gives
// wrong results under one of the orders. SIM_STREAMS=eager runs each item
// when it is enqueued (outside a capture).
//
// Capture (cudaStreamBeginCapture .. cudaStreamEndCapture) records the
// items of the stream, and of every stream that waits on an event recorded
// in the capture, into a graph, with CUDA's rules for the capture modes
// Global and ThreadLocal: synchronizing, cudaMalloc / cudaFree, synchronous
// copies, copies from or to pageable host memory, and the legacy stream are
// errors that invalidate the capture; a forked stream must be joined back
// before the capture ends. A launched graph queues its items again: the
// origin's on the launch stream, each forked stream's on a stream of the
// instantiated graph, with the graph's own copies of the events.
struct CUevent_st;
typedef struct CUevent_st *cudaEvent_t;
struct CUgraph_st;
typedef struct CUgraph_st *cudaGraph_t;
struct CUgraphExec_st;
typedef struct CUgraphExec_st *cudaGraphExec_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

struct SimItem {
  enum Kind { Work, Record, Wait } kind = Work;
  std::function<void()> work;
  /// Work that is complete only when `poll` says so (communication in
  /// flight: its stream waits, the other streams go on).
  std::function<bool()> poll;
  /// Work in a sequence (a NCCL communicator's operations): it starts only
  /// after those queued before it in the sequence started, whatever their
  /// streams, so every rank posts them in the order it issued them.
  struct SimOrder *order = nullptr;
  long seq = 0;
  CUevent_st *event = nullptr;
  long gen = 0; ///< Record: the generation it completes; Wait: the one it needs.
};
struct SimOrder { long issued = 0, started = 0; };
struct SimCapture;
struct CUstream_st {
  int id = 0;
  std::deque<SimItem> q;
  SimCapture *cap = nullptr; ///< The capture it takes part in.
  int branch = 0;            ///< Its branch of that capture (0: the origin).
  bool headStarted = false;  ///< Its first item ran and is being polled.
};
struct CUevent_st {
  long recorded = 0, done = 0; ///< Generations enqueued / completed.
  unsigned flags = 0;          ///< cudaEventDisableTiming: no time.
  std::chrono::steady_clock::time_point when; ///< Its last record ran.
  SimCapture *cap = nullptr;   ///< Recorded (last) inside this capture,
  int capBranch = 0, capNode = -1; ///< on this branch, as this node.
};
struct SimNode { int branch; SimItem item; };
struct SimCapture {
  CUstream_st *origin = nullptr;
  std::vector<SimNode> nodes;
  std::vector<CUstream_st *> joined; ///< Forked streams, branch 1, 2, ...
  cudaError_t invalid = cudaSuccess;
};
struct CUgraph_st { std::vector<SimNode> nodes; int branches = 0; };
struct CUgraphExec_st {
  std::vector<SimNode> nodes;
  std::vector<CUstream_st *> branchStreams;
  std::map<CUevent_st *, CUevent_st *> events;
};

/// SIM_STATS=1: what ran, at exit (tests check that graphs were captured and replayed).
struct SimStats {
  long kernels = 0, captures = 0, forks = 0, graphLaunches = 0, items = 0;
  ~SimStats() {
    if (getenv("SIM_STATS"))
      fprintf(stderr, "sim stats: %ld kernels run, %ld stream items, %ld graphs captured (%ld forked streams), %ld graph launches\n",
              kernels, items, captures, forks, graphLaunches);
  }
};
inline SimStats gSimStats;
inline std::vector<CUstream_st *> &simStreams() { static std::vector<CUstream_st *> v; return v; }
inline int gSimStreamIds = 0;
inline CUstream_st *simNewStream() {
  auto *s = new CUstream_st;
  s->id = gSimStreamIds++;
  simStreams().push_back(s);
  return s;
}
inline CUstream_st *simLegacyStream() { static CUstream_st *s = simNewStream(); return s; }
inline CUstream_st *simStream(cudaStream_t s) { return s ? s : simLegacyStream(); }
inline std::vector<SimCapture *> &simCaptures() { static std::vector<SimCapture *> v; return v; }
inline bool simEagerStreams() {
  static bool eager = [] { const char *v = getenv("SIM_STREAMS"); return v && std::string(v) == "eager"; }();
  return eager;
}
inline int simStreamOrder() {
  static int m = [] { const char *v = getenv("SIM_STREAM_ORDER"); std::string s = v ? v : "first";
    if (s != "first" && s != "last" && s != "random") { fprintf(stderr, "sim: SIM_STREAM_ORDER=%s (first|last|random)\n", v); std::abort(); }
    return s == "last" ? 1 : s == "random" ? 2 : 0; }();
  return m;
}
inline std::mt19937 &simStreamRng() {
  static std::mt19937 r(getenv("SIM_SEED") ? atoi(getenv("SIM_SEED")) : 1);
  return r;
}
inline bool simRunnable(CUstream_st *s) {
  if (s->q.empty()) return false;
  SimItem &it = s->q.front();
  if (s->headStarted) return it.poll();
  if (it.kind == SimItem::Wait) return it.event->done >= it.gen;
  return !it.order || it.order->started == it.seq;
}
/// Runs (or completes) the head item of one runnable stream: 1 when it did,
/// 0 when none is runnable but communication is in flight, -1 when none is
/// runnable and nothing is in flight.
inline int simStep() {
  std::vector<CUstream_st *> ready;
  bool inFlight = false;
  for (CUstream_st *s : simStreams()) {
    inFlight |= s->headStarted;
    if (simRunnable(s)) ready.push_back(s);
  }
  if (ready.empty()) return inFlight ? 0 : -1;
  CUstream_st *s = simStreamOrder() == 0 ? ready.front() : simStreamOrder() == 1 ? ready.back()
                 : ready[simStreamRng()() % ready.size()];
  if (s->headStarted) { // its communication completed
    s->headStarted = false;
    s->q.pop_front();
    return 1;
  }
  SimItem it = std::move(s->q.front());
  ++gSimStats.items;
  if (it.kind == SimItem::Work) { it.work(); if (it.order) ++it.order->started; }
  else if (it.kind == SimItem::Record) {
    it.event->done = std::max(it.event->done, it.gen);
    it.event->when = std::chrono::steady_clock::now();
  }
  if (it.poll) { s->q.front() = std::move(it); s->headStarted = true; return 1; }
  s->q.pop_front();
  return 1;
}
/// Runs queued work until `s` (nullptr: every stream) is empty.
inline void simDrain(CUstream_st *s) {
  auto pending = [&] {
    if (s) return !s->q.empty();
    for (CUstream_st *t : simStreams()) if (!t->q.empty()) return true;
    return false;
  };
  while (pending()) {
    const int r = simStep();
    if (r == 0) sched_yield(); // another process's part of a transfer
    if (r < 0) { fprintf(stderr, "sim: streams deadlocked: every queued item waits for an event that is never recorded\n"); std::abort(); }
  }
}
/// Appends to a stream's queue (the item's place in its sequence is taken here).
inline void simPush(CUstream_st *s, SimItem it) {
  if (it.order) it.seq = it.order->issued++;
  s->q.push_back(std::move(it));
}
/// An API call that CUDA forbids while a Global or ThreadLocal capture is
/// in progress: invalidates the captures, returns the error (else success).
inline cudaError_t simUnsafeInCapture() {
  bool any = false;
  for (SimCapture *c : simCaptures()) { any = true; if (!c->invalid) c->invalid = cudaErrorStreamCaptureUnsupported; }
  return any ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
inline cudaError_t simEnqueue(cudaStream_t s0, SimItem it) {
  if (!s0 && !simCaptures().empty()) {
    for (SimCapture *c : simCaptures()) if (!c->invalid) c->invalid = cudaErrorStreamCaptureImplicit;
    return cudaErrorStreamCaptureImplicit;
  }
  CUstream_st *s = simStream(s0);
  if (s->cap) {
    if (s->cap->invalid) return cudaErrorStreamCaptureInvalidated;
    s->cap->nodes.push_back({s->branch, std::move(it)});
    return cudaSuccess;
  }
  simPush(s, std::move(it));
  if (simEagerStreams()) simDrain(nullptr);
  return cudaSuccess;
}
inline cudaError_t simEnqueueWork(cudaStream_t s, std::function<void()> f) {
  SimItem it;
  it.work = std::move(f);
  return simEnqueue(s, std::move(it));
}

//===--- Device memory ---===//
inline std::map<uintptr_t, size_t> &simAllocs() { static std::map<uintptr_t, size_t> m; return m; }
inline size_t gSimAllocated = 0;
/// The device's memory: SIM_DEVICE_MIB (default 16 GiB).
inline size_t simDeviceBytes() {
  static size_t b = getenv("SIM_DEVICE_MIB") ? size_t(atoll(getenv("SIM_DEVICE_MIB"))) << 20 : size_t(16) << 30;
  return b;
}
inline bool simIsDevicePtr(const void *p, size_t bytes) {
  auto &m = simAllocs();
  auto a = reinterpret_cast<uintptr_t>(p);
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}
inline cudaError_t gSimLastError = cudaSuccess;
inline cudaError_t simError(cudaError_t e) { if (e != cudaSuccess) gSimLastError = e; return e; }
inline cudaError_t cudaGetLastError() { cudaError_t e = gSimLastError; gSimLastError = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError() { return gSimLastError; }
inline const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  case cudaErrorNoDevice: return "no CUDA-capable device is detected";
  case cudaErrorInvalidDevice: return "invalid device ordinal";
  case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
  case cudaErrorInvalidResourceHandle: return "invalid resource handle";
  case cudaErrorNotReady: return "device not ready";
  case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
  case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
  case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
  case cudaErrorStreamCaptureUnjoined: return "capturing stream has unjoined work";
  case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
  case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
  default: return "sim error";
  }
}
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
  size_t sharedMemPerBlockOptin;
};
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int i) { return i == 0 ? cudaSuccess : simError(cudaErrorInvalidDevice); }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int i) {
  if (i != 0) return simError(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "CUDA simulator on the CPU");
  p->totalGlobalMem = simDeviceBytes();
  p->major = 9; p->minor = 0; p->multiProcessorCount = 132; p->sharedMemPerBlockOptin = 227 * 1024;
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t *free, size_t *total) {
  *total = simDeviceBytes();
  *free = *total - std::min(*total, gSimAllocated);
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() {
  if (cudaError_t e = simUnsafeInCapture()) return e;
  simDrain(nullptr);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (cudaError_t e = simUnsafeInCapture()) return e;
  simDrain(simStream(s));
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void **p, size_t bytes) {
  if (cudaError_t e = simUnsafeInCapture()) return e;
  void *q = nullptr;
  if (bytes > simDeviceBytes() - std::min(simDeviceBytes(), gSimAllocated) ||
      posix_memalign(&q, 256, bytes ? bytes : 1))
    return simError(cudaErrorMemoryAllocation);
  std::memset(q, 0xff, bytes); // cudaMalloc'd memory is not zeroed: NaN pattern
  simAllocs()[reinterpret_cast<uintptr_t>(q)] = bytes;
  gSimAllocated += bytes;
  *p = q;
  return cudaSuccess;
}
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc(reinterpret_cast<void **>(p), bytes); }
inline cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  if (cudaError_t e = simUnsafeInCapture()) return e;
  simDrain(nullptr); // cudaFree waits for the device
  auto &m = simAllocs();
  auto it = m.find(reinterpret_cast<uintptr_t>(p));
  if (it == m.end()) { fprintf(stderr, "sim: cudaFree of a non-device pointer\n"); std::abort(); }
  gSimAllocated -= it->second;
  m.erase(it);
  std::free(p);
  return cudaSuccess;
}
inline void simCheckDev(const void *p, size_t bytes, const char *what) {
  if (bytes && !simIsDevicePtr(p, bytes)) { fprintf(stderr, "sim: %s: %zu bytes at %p are not device memory\n", what, bytes, p); std::abort(); }
}
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = nullptr) {
  simCheckDev(p, bytes, "cudaMemset");
  return simEnqueueWork(s, [=] { std::memset(p, v, bytes); });
}
inline cudaError_t cudaMemset(void *p, int v, size_t bytes) {
  if (cudaError_t e = simUnsafeInCapture()) return e;
  simCheckDev(p, bytes, "cudaMemset");
  simDrain(nullptr);
  std::memset(p, v, bytes);
  return cudaSuccess;
}
struct SimHash { uint64_t h = 1469598103934665603ull; long n = 0;
  ~SimHash() { if (getenv("SIM_HASH")) fprintf(stderr, "SIM_HASH %016llx over %ld copies\n", (unsigned long long)h, n); } };
inline SimHash gSimHash;
inline void simCopy(void *d, const void *s, size_t bytes, bool toHost) {
  if (toHost) { ++gSimHash.n; auto *c = static_cast<const unsigned char *>(s);
    for (size_t i = 0; i < bytes; ++i) gSimHash.h = (gSimHash.h ^ c[i]) * 1099511628211ull; }
  if (bytes) std::memmove(d, s, bytes);
}
inline cudaMemcpyKind simKind(const void *d, const void *s, size_t bytes, cudaMemcpyKind k) {
  if (k != cudaMemcpyDefault) return k;
  const bool dd = simIsDevicePtr(d, bytes), sd = simIsDevicePtr(s, bytes);
  return dd && sd ? cudaMemcpyDeviceToDevice : dd ? cudaMemcpyHostToDevice : sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost;
}
inline cudaError_t cudaMemcpy(void *d, const void *s, size_t bytes, cudaMemcpyKind k) {
  if (cudaError_t e = simUnsafeInCapture()) return e;
  k = simKind(d, s, bytes, k);
  if (k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice) simCheckDev(d, bytes, "cudaMemcpy dst");
  if (k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice) simCheckDev(s, bytes, "cudaMemcpy src");
  simDrain(nullptr); // synchronous with the device
  simCopy(d, s, bytes, k == cudaMemcpyDeviceToHost);
  return cudaSuccess;
}
/// Host memory here is pageable: a copy from it is staged at the call (so
/// the caller may reuse its buffer), a copy to it completes before the call
/// returns, and neither can be captured.
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t bytes, cudaMemcpyKind k, cudaStream_t st = nullptr) {
  k = simKind(d, s, bytes, k);
  if (k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice) simCheckDev(d, bytes, "cudaMemcpyAsync dst");
  if (k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice) simCheckDev(s, bytes, "cudaMemcpyAsync src");
  if (k == cudaMemcpyDeviceToDevice) return simEnqueueWork(st, [=] { simCopy(d, s, bytes, false); });
  if (simStream(st)->cap) {
    SimCapture *c = simStream(st)->cap;
    if (!c->invalid) c->invalid = cudaErrorStreamCaptureUnsupported;
    return cudaErrorStreamCaptureUnsupported;
  }
  if (k == cudaMemcpyHostToDevice) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char *>(s),
                                                               static_cast<const unsigned char *>(s) + bytes);
    return simEnqueueWork(st, [=] { simCopy(d, staged->data(), bytes, false); });
  }
  if (cudaError_t e = simEnqueueWork(st, [=] { simCopy(d, s, bytes, k == cudaMemcpyDeviceToHost); })) return e;
  simDrain(simStream(st));
  return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = simNewStream(); return cudaSuccess; }
inline cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return simError(cudaErrorInvalidValue);
  simDrain(s); // its work completes; then it goes
  auto &v = simStreams();
  v.erase(std::remove(v.begin(), v.end(), s), v.end());
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
  *e = new CUevent_st;
  (*e)->flags = flags;
  return cudaSuccess;
}
/// The time between two completed records (the host's clock when each ran).
inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b || ((a->flags | b->flags) & cudaEventDisableTiming)) return simError(cudaErrorInvalidResourceHandle);
  if (!a->recorded || !b->recorded || a->done < a->recorded || b->done < b->recorded) return simError(cudaErrorNotReady);
  *ms = float(std::chrono::duration<double, std::milli>(b->when - a->when).count());
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
/// Events stay allocated (queued items may still name them).
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { return e ? cudaSuccess : simError(cudaErrorInvalidValue); }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s0 = nullptr) {
  CUstream_st *s = simStream(s0);
  SimItem it;
  it.kind = SimItem::Record;
  it.event = e;
  if (s->cap) {
    if (s->cap->invalid) return cudaErrorStreamCaptureInvalidated;
    e->cap = s->cap;
    e->capBranch = s->branch;
    e->capNode = int(s->cap->nodes.size());
    s->cap->nodes.push_back({s->branch, std::move(it)});
    return cudaSuccess;
  }
  e->cap = nullptr;
  it.gen = ++e->recorded;
  return simEnqueue(s0, std::move(it));
}
inline cudaError_t cudaStreamWaitEvent(cudaStream_t s0, cudaEvent_t e, unsigned = 0) {
  CUstream_st *s = simStream(s0);
  SimItem it;
  it.kind = SimItem::Wait;
  it.event = e;
  const bool live = e->cap && std::find(simCaptures().begin(), simCaptures().end(), e->cap) != simCaptures().end();
  if (live) {
    // An event of a capture: the stream joins it (a fork) or is in it.
    SimCapture *c = e->cap;
    if (s->cap && s->cap != c) { c->invalid = s->cap->invalid = cudaErrorStreamCaptureIsolation; return cudaErrorStreamCaptureIsolation; }
    if (c->invalid) return cudaErrorStreamCaptureInvalidated;
    if (!s->cap) { s->cap = c; c->joined.push_back(s); s->branch = int(c->joined.size()); }
    c->nodes.push_back({s->branch, std::move(it)});
    return cudaSuccess;
  }
  if (s->cap) { // a captured stream cannot wait for work outside the capture
    if (!s->cap->invalid) s->cap->invalid = cudaErrorStreamCaptureIsolation;
    return cudaErrorStreamCaptureIsolation;
  }
  it.gen = e->recorded;
  return simEnqueue(s0, std::move(it));
}
/// Waits for the event's last record (none: at once).
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return simError(cudaErrorInvalidValue);
  if (cudaError_t err = simUnsafeInCapture()) return err;
  while (e->done < e->recorded) {
    const int r = simStep();
    if (r == 0) sched_yield();
    if (r < 0) { fprintf(stderr, "sim: cudaEventSynchronize on an event whose record never runs\n"); std::abort(); }
  }
  return cudaSuccess;
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (!s || s->cap) return simError(cudaErrorStreamCaptureUnsupported);
  if (mode == cudaStreamCaptureModeRelaxed) { fprintf(stderr, "sim: relaxed capture is not simulated\n"); std::abort(); }
  auto *c = new SimCapture;
  c->origin = s;
  s->cap = c;
  s->branch = 0;
  simCaptures().push_back(c);
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
  *graph = nullptr;
  if (!s || !s->cap) return simError(cudaErrorIllegalState);
  SimCapture *c = s->cap;
  if (c->origin != s) return simError(cudaErrorStreamCaptureUnmatched);
  cudaError_t e = c->invalid;
  if (!e) {
    // Every forked branch must end in an event the origin waits for.
    for (int b = 1; b <= int(c->joined.size()); ++b) {
      int last = -1;
      for (int i = 0; i < int(c->nodes.size()); ++i) if (c->nodes[i].branch == b) last = i;
      bool joined = false;
      for (int i = 0; i < int(c->nodes.size()) && !joined; ++i) {
        const SimNode &n = c->nodes[i];
        if (n.branch != 0 || n.item.kind != SimItem::Wait) continue;
        // The record this wait follows: the last record of its event before it.
        for (int j = i - 1; j >= 0; --j)
          if (c->nodes[j].item.kind == SimItem::Record && c->nodes[j].item.event == n.item.event) {
            joined = c->nodes[j].branch == b && j >= last;
            break;
          }
      }
      if (!joined) { e = cudaErrorStreamCaptureUnjoined; break; }
    }
  }
  for (CUstream_st *t : c->joined) { t->cap = nullptr; t->branch = 0; }
  s->cap = nullptr;
  auto &v = simCaptures();
  v.erase(std::remove(v.begin(), v.end(), c), v.end());
  if (!e) {
    *graph = new CUgraph_st;
    (*graph)->nodes = std::move(c->nodes);
    (*graph)->branches = int(c->joined.size());
    ++gSimStats.captures;
    gSimStats.forks += long(c->joined.size());
  }
  for (SimNode &n : *graph ? (*graph)->nodes : c->nodes)
    if (n.item.event && n.item.event->cap == c) n.item.event->cap = nullptr;
  delete c;
  return simError(e);
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long = 0) {
  if (!g) return simError(cudaErrorInvalidValue);
  auto *x = new CUgraphExec_st;
  x->nodes = g->nodes;
  for (int b = 0; b < g->branches; ++b) x->branchStreams.push_back(simNewStream());
  for (SimNode &n : x->nodes)
    if (n.item.event) {
      CUevent_st *&clone = x->events[n.item.event];
      if (!clone) clone = new CUevent_st;
      n.item.event = clone;
    }
  *exec = x;
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s0) {
  if (!x || !s0) return simError(cudaErrorInvalidValue);
  if (s0->cap) { fprintf(stderr, "sim: graph launch into a capture is not simulated\n"); std::abort(); }
  ++gSimStats.graphLaunches;
  for (const SimNode &n : x->nodes) {
    CUstream_st *s = n.branch == 0 ? s0 : x->branchStreams[n.branch - 1];
    SimItem it = n.item;
    if (it.kind == SimItem::Record) it.gen = ++it.event->recorded;
    if (it.kind == SimItem::Wait) it.gen = it.event->recorded;
    simPush(s, std::move(it));
  }
  if (simEagerStreams()) simDrain(nullptr);
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
  if (!x) return simError(cudaErrorInvalidValue);
  simDrain(nullptr);
  for (CUstream_st *s : x->branchStreams) cudaStreamDestroy(s);
  for (auto &kv : x->events) delete kv.second;
  delete x;
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }

//===--- Fibers ---===//
#if defined(__x86_64__)
// A fiber's context is its saved stack pointer: simCtxSwitch pushes the
// callee-saved registers and the x87 / SSE control words, swaps stacks and
// pops the other side's. (swapcontext also saves the signal mask, with a
// system call per switch: most of the simulator's time.)
struct SimCtx { void *sp = nullptr; };
extern "C" void simCtxSwitch(void **from, void *to);
asm(R"(
  .text
  .weak simCtxSwitch
  .type simCtxSwitch, @function
simCtxSwitch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simCtxSwitch, .-simCtxSwitch
)");
inline void simCtxSwap(SimCtx *from, SimCtx *to) { simCtxSwitch(&from->sp, to->sp); }
/// A context that starts `entry` (which never returns) on the stack.
inline void simCtxMake(SimCtx *c, void *stack, size_t size, void (*entry)()) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  auto *w = reinterpret_cast<uint64_t *>(top - 16); // entry's return slot: 16-aligned
  w[1] = 0;                                         // entry's own (fake) return address
  w[0] = reinterpret_cast<uint64_t>(entry);
  uint64_t *sp = w - 7;                             // rbp rbx r12..r15, control words
  for (int i = 1; i < 7; ++i) sp[i] = 0;
  uint32_t mxcsr; uint16_t fcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fcw));
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char *>(sp) + 4, &fcw, 2);
  c->sp = sp;
}
#else
struct SimCtx { ucontext_t uc; };
inline void simCtxSwap(SimCtx *from, SimCtx *to) { swapcontext(&from->uc, &to->uc); }
inline void simCtxMake(SimCtx *c, void *stack, size_t size, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
#endif
struct SimFiber { SimCtx ctx; void *stack = nullptr; int state = 0; /*0 run 1 wait 2 done*/ int wait = 0; };
struct SimBlock {
  unsigned nt = 0, cur = 0;
  std::vector<SimFiber> f;
  SimCtx main;
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
inline long gLaunchesRun = 0;
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

inline void simSwitch(SimCtx *from, SimCtx *to, const void *toStack, size_t toSize, bool dying = false) {
  ++gFiberSwitches;
#ifdef SIM_ASAN
  void *fake = nullptr;
  __sanitizer_start_switch_fiber(dying ? nullptr : &fake, toStack, toSize);
#else
  (void)toStack; (void)toSize; (void)dying;
#endif
  simCtxSwap(from, to);
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
    f.stack = stacks[t];
    simCtxMake(&f.ctx, f.stack, kSimStack, simFiberEntry);
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
void simLaunch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args &&...args) {
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
  // The kernel's parameters are copied at the launch, as CUDA does.
  auto params = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...);
  cudaError_t queued = simEnqueueWork(stream, [=]() mutable {
    ++gLaunchesRun;
    ++gSimStats.kernels;
    gridDim = grid;
    blockDim = block;
    gSim.body = [&] { std::apply([&](auto &...a) { kernel(a...); }, params); };
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
  });
  if (queued != cudaSuccess) gSimLastError = queued;
}
