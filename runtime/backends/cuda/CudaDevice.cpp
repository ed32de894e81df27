//===- CudaDevice.cpp - Executor ops on a CUDA GPU ------------------------===//
//
// exec::Device on one GPU: cudaMalloc'd memory, one stream for every
// kernel, cuBLASLt for the GEMMs (Gemm.h, with the plan's workspace:
// Program.workspace_bytes), the kernels of CudaKernels.h,
// and CUDA graphs: the first step runs eagerly (cuBLASLt picks its
// algorithms, the kernels' first launches load their modules); the second
// is captured into a graph and every later step replays it. The per-step
// uploads and the scalar downloads stay outside the graph (the executor
// does them around runStep()).
//
// Consecutive adamw instructions (the optimizer of every parameter, one
// after the other at the end of the step) become one multi-tensor launch.
//
// Several ranks (one process per GPU, under mpirun): connect() makes the
// NCCL communicators of the grid's groups (comm/nccl/NcclGroups.h).
// all_reduce, all_gather and reduce_scatter run on the kernels' stream, in
// program order. A gradient bucket's all-reduce runs on a communication
// stream of its own: its start records an event after the gradients'
// kernels, the communication stream waits for it and reduces, and the
// bucket's wait makes the kernels' stream wait for the reduction's event,
// so the backward kernels in between overlap the reduction (also inside a
// CUDA graph: the event fork and join are captured as graph edges).
//
// Pipeline stages: a recv is an ncclRecv on the kernels' stream; a send
// copies its tensor into the executor's staging buffer on the kernels'
// stream and sends that on a send stream of its direction (to the next
// stage, or back to the previous one), so the kernels go on while the
// receiver is not ready yet (the CPU backend's isend). Each direction of
// each stage boundary has its own NCCL communicator (NcclGroups::channel),
// where the transfers match in program order; the plan numbers them by
// tag, so prepare() checks that the tags of each channel rise. At the end
// of the step the kernels' stream waits for the send streams.
//
//===----------------------------------------------------------------------===//
#include "backends/cuda/CudaKernels.h"
#include "backends/cuda/Gemm.h"
#include "comm/Comm.h"
#include "comm/nccl/NcclComm.h"
#include "comm/nccl/NcclGroups.h"
#include "exec/Device.h"

#include <cuda_runtime.h>
#ifdef LLAMAC_HAVE_NCCL
#include <nccl.h>
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace llamac {
namespace exec {

namespace {

namespace cu = llamac::cuda;

std::string mib(int64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}

cu::DType toCuda(plan::DType t) { return static_cast<cu::DType>(t); }

/// The device's data of a multi-tensor op (global_norm, sum_squares,
/// all_finite, a run of adamw): offsets into the uploaded lists.
struct Slot {
  int64_t refs = 0;   ///< Byte offset of its TensorRef / AdamRef array.
  int64_t starts = 0; ///< Byte offset of its chunkStart array.
  int count = 0;
  int64_t chunks = 0;
  bool adam = false;
  bool skip = false; ///< An adamw fused into an earlier op's launch.
};

class CudaDevice final : public Device {
public:
  CudaDevice(int index, bool tf32, bool graphs)
      : index_(index), graphs_(graphs), tf32_(tf32) {}
  ~CudaDevice() override;

  bool start(std::string &error);

  std::string name() const override { return name_; }
  int64_t freeBytes() const override {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess)
      return -1;
    return static_cast<int64_t>(free);
  }
  void *allocate(int64_t bytes, const std::string &what,
                 std::string &error) override;
  void release(void *p) override { cudaFree(p); }
  bool upload(void *device, const void *host, int64_t bytes,
              std::string &error) override {
    return check(cudaMemcpyAsync(device, host, static_cast<size_t>(bytes),
                                 cudaMemcpyHostToDevice, stream_),
                 "upload", error);
  }
  bool download(void *host, const void *device, int64_t bytes,
                std::string &error) override {
    return check(cudaMemcpyAsync(host, device, static_cast<size_t>(bytes),
                                 cudaMemcpyDeviceToHost, stream_),
                 "download", error) &&
           check(cudaStreamSynchronize(stream_), "the step", error);
  }
  bool copy(void *to, const void *from, int64_t bytes,
            std::string &error) override {
    return check(cudaMemcpyAsync(to, from, static_cast<size_t>(bytes),
                                 cudaMemcpyDeviceToDevice, stream_),
                 "copy", error);
  }
  bool convert(const void *x, plan::DType from, void *y, plan::DType to,
               int64_t n, std::string &error) override {
    return check(static_cast<cudaError_t>(
                     cu::cast(x, toCuda(from), y, toCuda(to), n, stream_)),
                 "cast", error);
  }
  bool connect(comm::Comm &comm, std::string &error) override;
  bool beginProgram(int64_t workspaceBytes, std::string &error) override;
  bool prepare(Op &op, const ListOperand *list, std::string &error) override;
  bool finishPrepare(std::string &error) override;
  bool launch(const Op &op, std::string &error) override;
  bool runStep(const std::function<bool(std::string &)> &enqueue,
               std::string &error) override;
  bool startTiming(std::string &error) override;
  bool timings(std::vector<DeviceTiming> &out, std::string &error) override;

private:
  /// The kernels of `op` (launch() adds the timing around them).
  bool launchOp(const Op &op, std::string &error);
  /// --trace: a timing event of this step recorded on `stream`.
  bool mark(cudaStream_t stream, cudaEvent_t &event, std::string &error);
  bool check(cudaError_t e, const char *what, std::string &error) const {
    if (e == cudaSuccess)
      return true;
    error = name_ + ": " + what + ": " + cudaGetErrorString(e);
    return false;
  }
  void dropGraph();
  /// Appends `bytes` to hostLists_ (16-byte aligned); returns the offset.
  int64_t appendList(const void *data, size_t bytes);
  /// The collectives of several ranks through NCCL.
  bool collective(const Op &op, std::string &error);

  int index_;
  bool graphs_, tf32_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  void *gemmWorkspace_ = nullptr; ///< Program.workspace_bytes of the plans.
  int64_t gemmWorkspaceBytes_ = 0;
  std::unique_ptr<cu::Gemm> gemm_;
  // Scratch, sized by prepare() and allocated by finishPrepare().
  int64_t byteScratchBytes_ = 0, floatScratchBytes_ = 0, doubleScratchBytes_ = 0;
  void *byteScratch_ = nullptr;
  float *floatScratch_ = nullptr;
  double *doubleScratch_ = nullptr;
  std::vector<Slot> slots_;
  std::vector<char> hostLists_; ///< TensorRef / AdamRef / int64 arrays.
  char *lists_ = nullptr;       ///< Their device copy.
  /// The parameters of each adamw run, by slot, until finishPrepare().
  std::vector<std::vector<cu::AdamRef>> adamRefs_;
  int lastAdam_ = -1;           ///< The slot of the adamw run being built.
  const Op *lastAdamOp_ = nullptr;
  // Several ranks.
  comm::NcclGroups nccl_;
  cudaStream_t commStream_ = nullptr;
  /// Per bucket: "its gradients are ready" and "it is reduced".
  std::vector<cudaEvent_t> bucketReady_, bucketDone_;
  /// Pipeline sends, per direction (0: to the next stage, 1: back): the
  /// stream, "its data is staged" / "its sends are done", whether this
  /// step has used it, and per channel the last tag (prepare's check).
  struct SendLane {
    cudaStream_t stream = nullptr;
    cudaEvent_t staged = nullptr, done = nullptr;
    bool used = false;
  };
  std::array<SendLane, 2> sendLanes_;
  std::map<std::pair<int64_t, bool>, int64_t> lastTag_;
  bool laneFor(const Op &op, SendLane *&lane, std::string &error);
  /// Makes the kernels' stream wait for the sends of the step.
  bool joinSends(std::string &error);
  // --trace (startTiming): events around every op of the step, the step's
  // first event and the host's time when it was recorded.
  bool timing_ = false;
  struct Timed {
    int32_t instr;
    bool bucket;
    cudaEvent_t begin, end;
  };
  std::vector<Timed> timed_;
  std::vector<cudaEvent_t> timingEvents_;
  size_t timingEventsUsed_ = 0;
  cudaEvent_t stepStart_ = nullptr;
  std::chrono::steady_clock::time_point hostStart_;
  // CUDA graphs.
  int64_t steps_ = 0;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t graphExec_ = nullptr;
};

CudaDevice::~CudaDevice() {
  dropGraph();
  if (stream_)
    cudaStreamSynchronize(stream_);
  if (commStream_)
    cudaStreamSynchronize(commStream_);
  for (cudaEvent_t e : bucketReady_)
    cudaEventDestroy(e);
  for (cudaEvent_t e : bucketDone_)
    cudaEventDestroy(e);
  for (cudaEvent_t e : timingEvents_)
    cudaEventDestroy(e);
  if (stepStart_)
    cudaEventDestroy(stepStart_);
  for (SendLane &lane : sendLanes_) {
    if (lane.stream)
      cudaStreamSynchronize(lane.stream);
    for (cudaEvent_t e : {lane.staged, lane.done})
      if (e)
        cudaEventDestroy(e);
    if (lane.stream)
      cudaStreamDestroy(lane.stream);
  }
  if (commStream_)
    cudaStreamDestroy(commStream_);
  gemm_.reset();
  for (void *p : {static_cast<void *>(lists_), byteScratch_,
                  static_cast<void *>(floatScratch_),
                  static_cast<void *>(doubleScratch_), gemmWorkspace_})
    if (p)
      cudaFree(p);
  if (stream_)
    cudaStreamDestroy(stream_);
}

void CudaDevice::dropGraph() {
  if (graphExec_)
    cudaGraphExecDestroy(graphExec_);
  if (graph_)
    cudaGraphDestroy(graph_);
  graphExec_ = nullptr;
  graph_ = nullptr;
}

bool CudaDevice::start(std::string &error) {
  name_ = "cuda:" + std::to_string(index_);
  if (!check(cudaSetDevice(index_), "cudaSetDevice", error))
    return false;
  cudaDeviceProp prop{};
  if (!check(cudaGetDeviceProperties(&prop, index_), "cudaGetDeviceProperties",
             error))
    return false;
  name_ += std::string(" (") + prop.name + ", " +
           std::to_string(prop.totalGlobalMem >> 30) + " GiB, sm_" +
           std::to_string(prop.major) + std::to_string(prop.minor) + ")";
  return check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
               "cudaStreamCreate", error);
}

bool CudaDevice::beginProgram(int64_t bytes, std::string &error) {
  // What an earlier program left: its graph, lists and scratch.
  dropGraph();
  steps_ = 0;
  if (stream_)
    cudaStreamSynchronize(stream_);
  for (void *p : {static_cast<void *>(lists_), byteScratch_,
                  static_cast<void *>(floatScratch_),
                  static_cast<void *>(doubleScratch_)})
    if (p)
      cudaFree(p);
  lists_ = nullptr;
  byteScratch_ = nullptr;
  floatScratch_ = nullptr;
  doubleScratch_ = nullptr;
  byteScratchBytes_ = floatScratchBytes_ = doubleScratchBytes_ = 0;
  slots_.clear();
  hostLists_.clear();
  adamRefs_.clear();
  lastAdam_ = -1;
  lastAdamOp_ = nullptr;
  lastTag_.clear();
  if (gemm_ && bytes <= gemmWorkspaceBytes_)
    return true;
  // A larger workspace: cuBLASLt's choices are remade for it.
  void *workspace = nullptr;
  if (bytes > 0 &&
      !(workspace = allocate(bytes, "the plan's GEMM workspace", error)))
    return false;
  auto gemm = std::make_unique<cu::Gemm>(
      workspace, static_cast<size_t>(std::max<int64_t>(bytes, 0)), tf32_);
  if (!gemm->ok(error)) {
    if (workspace)
      cudaFree(workspace);
    return false;
  }
  if (gemmWorkspace_) {
    cudaStreamSynchronize(stream_); // No GEMM still uses the old one.
    cudaFree(gemmWorkspace_);
  }
  gemmWorkspace_ = workspace;
  gemmWorkspaceBytes_ = std::max<int64_t>(bytes, 0);
  gemm_ = std::move(gemm);
  return true;
}

bool CudaDevice::connect(comm::Comm &comm, std::string &error) {
  if (nccl_.connected())
    return true;
  // Beside an NcclComm (a launch without mpirun), the device's
  // communicators are split from the job's; else bootstrapped over `comm`.
  const comm::NcclGroups *job = comm::ncclGroupsOf(comm);
  if (!(job ? nccl_.connectFrom(*job, comm.grid(), comm.rank(), error)
            : nccl_.connect(comm, error)))
    return false;
  return check(cudaStreamCreateWithFlags(&commStream_, cudaStreamNonBlocking),
               "cudaStreamCreate", error);
}

void *CudaDevice::allocate(int64_t bytes, const std::string &what,
                           std::string &error) {
  void *p = nullptr;
  const size_t n = static_cast<size_t>(std::max<int64_t>(bytes, 1));
  cudaError_t e = cudaMalloc(&p, n);
  if (e != cudaSuccess) {
    cudaGetLastError(); // Clear the sticky-free allocation error.
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    error = "out of device memory: cannot allocate " + mib(bytes) + " for " +
            what + " on " + name_ + " (" + mib(static_cast<int64_t>(free)) +
            " free of " + mib(static_cast<int64_t>(total)) +
            "): " + cudaGetErrorString(e);
    return nullptr;
  }
  if (!check(cudaMemsetAsync(p, 0, n, stream_), "cudaMemset", error)) {
    cudaFree(p);
    return nullptr;
  }
  return p;
}

int64_t CudaDevice::appendList(const void *data, size_t bytes) {
  const int64_t at = static_cast<int64_t>(hostLists_.size());
  hostLists_.resize(hostLists_.size() + (bytes + 15) / 16 * 16);
  std::memcpy(hostLists_.data() + at, data, bytes);
  return at;
}

bool CudaDevice::prepare(Op &op, const ListOperand *list, std::string &error) {
  const int64_t *s = op.size;
  auto need = [](int64_t &have, int64_t bytes) {
    have = std::max(have, (bytes + 255) / 256 * 256);
  };
  if (op.kernel != Kernel::AdamW)
    lastAdam_ = -1;
  switch (op.kernel) {
  case Kernel::EmbeddingGrad:
    need(byteScratchBytes_, cu::embeddingBwdScratchBytes(s[0], s[2]));
    break;
  case Kernel::RmsNormGrad:
    need(floatScratchBytes_, cu::rmsNormBwdPartialSize(s[0], s[1]) * 4);
    break;
  case Kernel::CrossEntropy:
    need(floatScratchBytes_, s[0] * 4);
    break;
  case Kernel::Attention:
  case Kernel::AttentionGrad: {
    const cu::AttentionShape shape{s[0], s[1], s[2], s[3], s[4],
                                   static_cast<float>(op.attrs.real[0])};
    const char *why = cu::attentionUnsupported(shape, toCuda(op.dtype));
    if (why && *why) {
      error = why;
      return false;
    }
    if (op.kernel == Kernel::AttentionGrad)
      need(floatScratchBytes_, s[0] * s[2] * s[1] * 4);
    break;
  }
  case Kernel::GlobalNorm:
  case Kernel::SumSquares:
  case Kernel::AllFinite: {
    std::vector<cu::TensorRef> refs;
    std::vector<int64_t> sizes;
    for (int32_t i = 0; i < op.listCount; ++i) {
      refs.push_back({const_cast<void *>(list[i].data), list[i].n,
                      toCuda(list[i].dtype)});
      sizes.push_back(list[i].n);
    }
    std::vector<int64_t> starts(sizes.size() + 1);
    Slot slot;
    slot.count = op.listCount;
    slot.chunks = cu::multiTensorChunks(sizes.data(), slot.count, starts.data());
    slot.refs = appendList(refs.data(), refs.size() * sizeof(cu::TensorRef));
    slot.starts = appendList(starts.data(), starts.size() * sizeof(int64_t));
    need(doubleScratchBytes_, std::max<int64_t>(slot.chunks, 1) * 8);
    op.slot = static_cast<int32_t>(slots_.size());
    slots_.push_back(slot);
    break;
  }
  case Kernel::AdamW: {
    // Joins the run of adamw ops before it when they read the same lr,
    // step and apply flag with the same hyperparameters.
    const bool joins =
        lastAdam_ >= 0 && lastAdamOp_->in[4] == op.in[4] &&
        lastAdamOp_->in[5] == op.in[5] && lastAdamOp_->in[6] == op.in[6] &&
        std::equal(op.attrs.real, op.attrs.real + 4, lastAdamOp_->attrs.real);
    // The first op of a run launches it; the others skip.
    Slot slot;
    slot.adam = !joins;
    slot.skip = joins;
    if (!joins)
      lastAdam_ = static_cast<int>(slots_.size());
    op.slot = static_cast<int32_t>(slots_.size());
    slots_.push_back(slot);
    lastAdamOp_ = &op;
    // The run's parameters, gathered here and uploaded by finishPrepare.
    slots_[lastAdam_].count += 1;
    adamRefs_.resize(slots_.size());
    adamRefs_[lastAdam_].push_back(
        {static_cast<float *>(op.out[0]), static_cast<const float *>(op.in[1]),
         static_cast<float *>(op.out[1]), static_cast<float *>(op.out[2]),
         s[0]});
    break;
  }
  case Kernel::BucketAllReduceStart:
    // One pair of events per bucket (s[3] is its index, in start order).
    while (static_cast<int64_t>(bucketReady_.size()) <= s[3]) {
      cudaEvent_t ready = nullptr, done = nullptr;
      if (!check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming),
                 "cudaEventCreate", error) ||
          !check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming),
                 "cudaEventCreate", error))
        return false;
      bucketReady_.push_back(ready);
      bucketDone_.push_back(done);
    }
    break;
  case Kernel::Send:
  case Kernel::Recv: { // s: bytes, peer world rank, tag
    const bool send = op.kernel == Kernel::Send;
    int peer = 0;
    if (!nccl_.connected() || !nccl_.channel(static_cast<int>(s[1]), send, peer)) {
      error = name_ + ": a pipeline " + (send ? "send to" : "recv from") +
              " rank " + std::to_string(s[1]) +
              (nccl_.connected()
                   ? ", which is not on an adjacent stage at this rank's "
                     "data- and tensor-parallel point"
                   : " without NCCL communicators") +
              " (the CUDA backend transfers between adjacent stages only)";
      return false;
    }
    // NCCL matches a channel's transfers in order; the plan, by tag.
    int64_t &last = lastTag_.try_emplace({s[1], send}, -1).first->second;
    if (s[2] <= last) {
      error = name_ + ": pipeline " + (send ? "sends to" : "recvs from") +
              " rank " + std::to_string(s[1]) + " are not in the order of "
              "their tags (tag " + std::to_string(s[2]) + " after " +
              std::to_string(last) + "); NCCL would match them in program "
              "order";
      return false;
    }
    last = s[2];
    SendLane *lane = nullptr;
    return !send || laneFor(op, lane, error);
  }
  default:
    break;
  }
  return true;
}

bool CudaDevice::laneFor(const Op &op, SendLane *&lane, std::string &error) {
  int peer = 0;
  nccl_.channel(static_cast<int>(op.size[1]), true, peer);
  lane = &sendLanes_[peer == 1 ? 0 : 1]; // to the higher stage: forward
  if (lane->stream)
    return true;
  return check(cudaStreamCreateWithFlags(&lane->stream, cudaStreamNonBlocking),
               "cudaStreamCreate", error) &&
         check(cudaEventCreateWithFlags(&lane->staged, cudaEventDisableTiming),
               "cudaEventCreate", error) &&
         check(cudaEventCreateWithFlags(&lane->done, cudaEventDisableTiming),
               "cudaEventCreate", error);
}

bool CudaDevice::joinSends(std::string &error) {
  for (SendLane &lane : sendLanes_) {
    if (!lane.used)
      continue;
    lane.used = false;
    if (!check(cudaEventRecord(lane.done, lane.stream), "cudaEventRecord",
               error) ||
        !check(cudaStreamWaitEvent(stream_, lane.done, 0),
               "cudaStreamWaitEvent", error))
      return false;
  }
  return true;
}

bool CudaDevice::finishPrepare(std::string &error) {
  adamRefs_.resize(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot &slot = slots_[i];
    if (!slot.adam)
      continue;
    const std::vector<cu::AdamRef> &refs = adamRefs_[i];
    std::vector<int64_t> sizes, starts(refs.size() + 1);
    for (const cu::AdamRef &r : refs)
      sizes.push_back(r.n);
    slot.chunks = cu::multiTensorChunks(sizes.data(), slot.count, starts.data());
    slot.refs = appendList(refs.data(), refs.size() * sizeof(cu::AdamRef));
    slot.starts = appendList(starts.data(), starts.size() * sizeof(int64_t));
  }
  adamRefs_.clear();
  if (!hostLists_.empty()) {
    lists_ = static_cast<char *>(
        allocate(static_cast<int64_t>(hostLists_.size()),
                 "the multi-tensor operand lists", error));
    if (!lists_ || !upload(lists_, hostLists_.data(),
                           static_cast<int64_t>(hostLists_.size()), error))
      return false;
  }
  if (byteScratchBytes_ > 0 &&
      !(byteScratch_ = allocate(byteScratchBytes_,
                                "the embedding gradient's sort", error)))
    return false;
  if (floatScratchBytes_ > 0 &&
      !(floatScratch_ = static_cast<float *>(allocate(
            floatScratchBytes_, "the row statistics scratch", error))))
    return false;
  if (doubleScratchBytes_ > 0 &&
      !(doubleScratch_ = static_cast<double *>(allocate(
            doubleScratchBytes_, "the multi-tensor partial sums", error))))
    return false;
  return check(cudaStreamSynchronize(stream_), "the uploads", error);
}

bool CudaDevice::launch(const Op &op, std::string &error) {
  // A bucket's reduction and a send are timed on their own streams
  // (collective()); everything else around its kernels on the main stream.
  if (!timing_ || op.kernel == Kernel::BucketAllReduceStart ||
      (op.kernel == Kernel::Send && nccl_.connected()))
    return launchOp(op, error);
  Timed t{op.instr, false, nullptr, nullptr};
  if (!mark(stream_, t.begin, error) || !launchOp(op, error) ||
      !mark(stream_, t.end, error))
    return false;
  timed_.push_back(t);
  return true;
}

bool CudaDevice::mark(cudaStream_t stream, cudaEvent_t &event,
                      std::string &error) {
  if (timingEventsUsed_ == timingEvents_.size()) {
    cudaEvent_t e = nullptr;
    if (!check(cudaEventCreate(&e), "cudaEventCreate", error))
      return false;
    timingEvents_.push_back(e);
  }
  event = timingEvents_[timingEventsUsed_++];
  return check(cudaEventRecord(event, stream), "cudaEventRecord", error);
}

bool CudaDevice::startTiming(std::string &error) {
  dropGraph(); // Each step runs as enqueued: its events are this step's.
  timing_ = true;
  return stepStart_ ||
         check(cudaEventCreate(&stepStart_), "cudaEventCreate", error);
}

bool CudaDevice::timings(std::vector<DeviceTiming> &out, std::string &error) {
  out.clear();
  auto at = [&](cudaEvent_t e, std::chrono::steady_clock::time_point &t) {
    float ms = 0.0f;
    if (!check(cudaEventElapsedTime(&ms, stepStart_, e),
               "cudaEventElapsedTime", error))
      return false;
    t = hostStart_ + std::chrono::duration_cast<
                         std::chrono::steady_clock::duration>(
                         std::chrono::duration<double, std::milli>(ms));
    return true;
  };
  for (const Timed &t : timed_) {
    DeviceTiming d;
    d.instr = t.instr;
    d.bucket = t.bucket;
    if (!at(t.begin, d.begin) || !at(t.end, d.end))
      return false;
    out.push_back(d);
  }
  return true;
}

bool CudaDevice::launchOp(const Op &op, std::string &error) {
  const int64_t *s = op.size;
  const double *r = op.attrs.real;
  const int64_t *iv = op.attrs.integer;
  const cu::DType t = toCuda(op.dtype);
  auto ids = [&](int i) { return static_cast<const int32_t *>(op.in[i]); };
  auto f32 = [&](int i) { return static_cast<const float *>(op.in[i]); };
  auto o32 = [&](int i) { return static_cast<float *>(op.out[i]); };
  int status = 0;
  switch (op.kernel) {
  case Kernel::Embedding:
    status = cu::embeddingFwd(op.in[0], ids(1), op.out[0], s[0], s[1], s[2],
                              s[3], t, stream_);
    break;
  case Kernel::EmbeddingGrad:
    status = cu::embeddingBwd(op.in[0], ids(1), op.out[0], s[0], s[1], s[2],
                              s[3], t, byteScratch_, stream_);
    break;
  case Kernel::RmsNorm:
    status = cu::rmsNormFwd(op.in[0], op.in[1], op.out[0], s[0], s[1],
                            static_cast<float>(r[0]), t, stream_);
    break;
  case Kernel::RmsNormGrad:
    status = cu::rmsNormBwd(op.in[0], op.in[1], op.in[2], op.out[0],
                            op.out[1], s[0], s[1], static_cast<float>(r[0]), t,
                            floatScratch_, stream_);
    break;
  case Kernel::Linear:
  case Kernel::LinearGradInput:
  case Kernel::LinearGradWeight: {
    const cu::GemmKind kind =
        op.kernel == Kernel::Linear            ? cu::GemmKind::Linear
        : op.kernel == Kernel::LinearGradInput ? cu::GemmKind::LinearGradInput
                                               : cu::GemmKind::LinearGradWeight;
    if (!gemm_) {
      error = name_ + ": no GEMM library: beginProgram() was not called";
      return false;
    }
    if (gemm_->run(kind, op.in[0], op.in[1], op.out[0], s[0], s[1], s[2], t,
                   stream_) != 0) {
      error = gemm_->lastError();
      return false;
    }
    break;
  }
  case Kernel::Rope:
  case Kernel::RopeGrad:
    status = cu::rope(op.in[0], op.out[0], s[0], s[1], s[2], s[3],
                      static_cast<float>(r[0]), iv[1],
                      op.kernel == Kernel::RopeGrad, t, stream_);
    break;
  case Kernel::Attention:
    status = cu::attentionFwd(op.in[0], op.in[1], op.in[2], op.out[0], o32(1),
                              {s[0], s[1], s[2], s[3], s[4],
                               static_cast<float>(r[0])},
                              t, stream_);
    break;
  case Kernel::AttentionGrad:
    status = cu::attentionBwd(op.in[0], op.in[1], op.in[2], op.in[3],
                              op.in[4], f32(5), op.out[0], op.out[1],
                              op.out[2],
                              {s[0], s[1], s[2], s[3], s[4],
                               static_cast<float>(r[0])},
                              t, floatScratch_, stream_);
    break;
  case Kernel::Swiglu:
    status = cu::swigluFwd(op.in[0], op.in[1], op.out[0], s[0], t, stream_);
    break;
  case Kernel::SwigluGrad:
    status = cu::swigluBwd(op.in[0], op.in[1], op.in[2], op.out[0], op.out[1],
                           s[0], t, stream_);
    break;
  case Kernel::Add:
    status = cu::add(op.in[0], op.in[1], op.out[0], s[0], t, stream_);
    break;
  case Kernel::CrossEntropy:
    status = cu::crossEntropyFwd(op.in[0], ids(1), o32(0), s[0], s[1],
                                 1.0 / static_cast<double>(iv[0]), t,
                                 floatScratch_, stream_);
    break;
  case Kernel::CrossEntropyGrad:
    status = cu::crossEntropyBwd(f32(0), op.in[1], ids(2), op.out[0], s[0],
                                 s[1], 1.0 / static_cast<double>(iv[0]), t,
                                 stream_);
    break;
  case Kernel::Constant:
    status = cu::fill(op.out[0], s[0], static_cast<float>(r[0]), t, stream_);
    break;
  case Kernel::GlobalNorm:
  case Kernel::SumSquares: {
    const Slot &slot = slots_[op.slot];
    status = cu::sumSquares(
        reinterpret_cast<const cu::TensorRef *>(lists_ + slot.refs),
        slot.count, slot.chunks,
        reinterpret_cast<const int64_t *>(lists_ + slot.starts), o32(0),
        op.kernel == Kernel::GlobalNorm, doubleScratch_, stream_);
    break;
  }
  case Kernel::AllFinite: {
    const Slot &slot = slots_[op.slot];
    status = cu::allFinite(
        reinterpret_cast<const cu::TensorRef *>(lists_ + slot.refs),
        slot.count, slot.chunks,
        reinterpret_cast<const int64_t *>(lists_ + slot.starts), o32(0),
        doubleScratch_, stream_);
    break;
  }
  case Kernel::Sqrt:
    status = cu::sqrtScalar(f32(0), o32(0), stream_);
    break;
  case Kernel::RowMax:
    status = cu::rowMaxes(op.in[0], op.out[0], s[0], s[1], t, stream_);
    break;
  case Kernel::RowSumExp:
    status = cu::rowSumExp(op.in[0], op.in[1], op.out[0], s[0], s[1], t,
                           stream_);
    break;
  case Kernel::TargetLogit:
    status = cu::targetLogits(op.in[0], ids(1), op.out[0], s[0], s[1], s[2],
                              t, stream_);
    break;
  case Kernel::CrossEntropyFromStats:
    status = cu::crossEntropyFromStats(op.in[0], op.in[1], op.in[2], o32(0),
                                       s[0], 1.0 / static_cast<double>(iv[0]),
                                       t, stream_);
    break;
  case Kernel::CrossEntropyGradFromStats:
    status = cu::crossEntropyBwdFromStats(
        f32(0), op.in[1], ids(2), op.in[3], op.in[4], op.out[0], s[0], s[1],
        s[2], 1.0 / static_cast<double>(iv[0]), t, stream_);
    break;
  case Kernel::ClipCoef:
    status = cu::clipCoef(f32(0), o32(0), r[0], stream_);
    break;
  case Kernel::Scale:
    status = cu::scale(op.in[0], f32(1), op.out[0], s[0], t, stream_);
    break;
  case Kernel::ClipByValue:
    status = cu::clipByValue(op.in[0], op.out[0], s[0],
                             static_cast<float>(r[0]), t, stream_);
    break;
  case Kernel::LrSchedule:
    status = cu::lrSchedule(static_cast<const int64_t *>(op.in[0]), o32(0),
                            r[0], r[1], iv[2], iv[3], stream_);
    break;
  case Kernel::AdamW: {
    const Slot &slot = slots_[op.slot];
    if (slot.skip)
      break; // Updated by the first adamw of its run.
    status = cu::adamw(
        reinterpret_cast<const cu::AdamRef *>(lists_ + slot.refs), slot.count,
        slot.chunks, reinterpret_cast<const int64_t *>(lists_ + slot.starts),
        f32(4), static_cast<const int64_t *>(op.in[5]),
        op.in[6] ? f32(6) : nullptr, r[0], r[1], r[2], r[3], stream_);
    break;
  }
  case Kernel::AllReduce:
  case Kernel::AllGather:
  case Kernel::ReduceScatter:
  case Kernel::BucketAllReduceStart:
  case Kernel::BucketAllReduceWait:
    if (nccl_.connected())
      return collective(op, error);
    if (op.kernel == Kernel::BucketAllReduceStart ||
        op.kernel == Kernel::BucketAllReduceWait)
      break; // One rank: the bucket's sum is itself.
    {
    // One rank (Executor::prepareDevice): the group is this rank alone,
    // and the collective is a copy (in place: nothing).
    const int64_t bytes = s[0] * cu::dtypeBytes(t);
    if (op.out[0] != op.in[0] &&
        !check(cudaMemcpyAsync(op.out[0], op.in[0], static_cast<size_t>(bytes),
                               cudaMemcpyDeviceToDevice, stream_),
               "copy", error))
      return false;
    break;
    }
  case Kernel::AllSlice:
    status = cu::sliceBlock(op.in[0], op.out[0], s[3], s[4], s[5], s[2], s[6],
                            cu::dtypeBytes(t), stream_);
    break;
  case Kernel::Cast:
    status = cu::cast(op.in[0], toCuda(static_cast<plan::DType>(s[1])),
                      op.out[0], toCuda(static_cast<plan::DType>(s[2])), s[0],
                      stream_);
    break;
  case Kernel::Send:
  case Kernel::Recv:
    return collective(op, error);
  }
  return check(static_cast<cudaError_t>(status), "kernel launch", error);
}

#ifdef LLAMAC_HAVE_NCCL
namespace {
ncclDataType_t ncclType(cu::DType t) {
  switch (t) {
  case cu::DType::BF16:
    return ncclBfloat16;
  case cu::DType::F16:
    return ncclFloat16;
  case cu::DType::F64:
    return ncclFloat64;
  default:
    return ncclFloat32;
  }
}
/// The executor's s[2] / s[6] reduction (comm::Reduction) as NCCL's.
ncclRedOp_t ncclOp(int64_t reduction) {
  switch (static_cast<comm::Reduction>(reduction)) {
  case comm::Reduction::Max:
    return ncclMax;
  case comm::Reduction::Min:
    return ncclMin;
  default:
    return ncclSum;
  }
}
} // namespace
#endif

bool CudaDevice::collective(const Op &op, std::string &error) {
#ifdef LLAMAC_HAVE_NCCL
  const int64_t *s = op.size;
  const cu::DType t = toCuda(op.dtype);
  auto comm = [&]() {
    return static_cast<ncclComm_t>(nccl_.group(op.groupMask));
  };
  auto nccl = [&](ncclResult_t r, const char *what) {
    if (r == ncclSuccess)
      return true;
    error = name_ + ": " + what + ": " + ncclGetErrorString(r);
    return false;
  };
  switch (op.kernel) {
  case Kernel::AllReduce: // s: n, axes, reduction
    return nccl(ncclAllReduce(op.in[0], op.out[0], static_cast<size_t>(s[0]),
                              ncclType(t), ncclOp(s[2]), comm(), stream_),
                "ncclAllReduce");
  case Kernel::AllGather: { // s: count, axes, G, outer, d, inner
    void *recv = op.scratch ? op.scratch : op.out[0];
    if (!nccl(ncclAllGather(op.in[0], recv, static_cast<size_t>(s[0]),
                            ncclType(t), comm(), stream_),
              "ncclAllGather"))
      return false;
    return !op.scratch ||
           check(static_cast<cudaError_t>(cu::concatBlocks(
                     recv, op.out[0], s[2], s[3], s[4], s[5],
                     cu::dtypeBytes(t), stream_)),
                 "concat blocks", error);
  }
  case Kernel::ReduceScatter: { // s: count, axes, G, outer, d, inner, red.
    const void *send = op.in[0];
    if (op.scratch) {
      if (!check(static_cast<cudaError_t>(cu::splitBlocks(
                     op.in[0], op.scratch, s[2], s[3], s[4], s[5],
                     cu::dtypeBytes(t), stream_)),
                 "split blocks", error))
        return false;
      send = op.scratch;
    }
    return nccl(ncclReduceScatter(send, op.out[0], static_cast<size_t>(s[0]),
                                  ncclType(t), ncclOp(s[6]), comm(), stream_),
                "ncclReduceScatter");
  }
  case Kernel::BucketAllReduceStart: { // s: n, axes, reduction, bucket
    Timed t{op.instr, true, nullptr, nullptr};
    if (!check(cudaEventRecord(bucketReady_[s[3]], stream_),
               "cudaEventRecord", error) ||
        !check(cudaStreamWaitEvent(commStream_, bucketReady_[s[3]], 0),
               "cudaStreamWaitEvent", error) ||
        (timing_ && !mark(commStream_, t.begin, error)) ||
        !nccl(ncclAllReduce(op.in[0], op.out[0], static_cast<size_t>(s[0]),
                            ncclFloat32, ncclOp(s[2]), comm(), commStream_),
              "ncclAllReduce (bucket)") ||
        (timing_ && !mark(commStream_, t.end, error)))
      return false;
    if (timing_)
      timed_.push_back(t);
    return check(cudaEventRecord(bucketDone_[s[3]], commStream_),
                 "cudaEventRecord", error);
  }
  case Kernel::BucketAllReduceWait:
    return check(cudaStreamWaitEvent(stream_, bucketDone_[s[3]], 0),
                 "cudaStreamWaitEvent", error);
  case Kernel::Send: { // s: bytes, peer world rank, tag; scratch: staging
    int peer = 0;
    auto *channel = static_cast<ncclComm_t>(
        nccl_.channel(static_cast<int>(s[1]), true, peer));
    SendLane *lane = nullptr;
    if (!laneFor(op, lane, error))
      return false;
    lane->used = true;
    // Timed from the staging copy to the send's completion.
    Timed t{op.instr, false, nullptr, nullptr};
    if ((timing_ && !mark(stream_, t.begin, error)) ||
        !check(cudaMemcpyAsync(op.scratch, op.in[0],
                               static_cast<size_t>(s[0]),
                               cudaMemcpyDeviceToDevice, stream_),
               "copy", error) ||
        !check(cudaEventRecord(lane->staged, stream_), "cudaEventRecord",
               error) ||
        !check(cudaStreamWaitEvent(lane->stream, lane->staged, 0),
               "cudaStreamWaitEvent", error) ||
        !nccl(ncclSend(op.scratch, static_cast<size_t>(s[0]), ncclInt8, peer,
                       channel, lane->stream),
              "ncclSend") ||
        (timing_ && !mark(lane->stream, t.end, error)))
      return false;
    if (timing_)
      timed_.push_back(t);
    return true;
  }
  case Kernel::Recv: {
    int peer = 0;
    auto *channel = static_cast<ncclComm_t>(
        nccl_.channel(static_cast<int>(s[1]), false, peer));
    return nccl(ncclRecv(op.out[0], static_cast<size_t>(s[0]), ncclInt8, peer,
                         channel, stream_),
                "ncclRecv");
  }
  default:
    error = "not a collective";
    return false;
  }
#else
  (void)op;
  error = "no NCCL in this build";
  return false;
#endif
}

bool CudaDevice::runStep(const std::function<bool(std::string &)> &program,
                         std::string &error) {
  // The step's ops, then the join of its sends.
  auto enqueue = [&](std::string &err) {
    return program(err) && joinSends(err);
  };
  if (timing_) { // Eagerly, each op between events.
    timed_.clear();
    timingEventsUsed_ = 0;
    hostStart_ = std::chrono::steady_clock::now();
    ++steps_;
    return check(cudaEventRecord(stepStart_, stream_), "cudaEventRecord",
                 error) &&
           enqueue(error) &&
           check(cudaStreamSynchronize(stream_), "the step", error);
  }
  const bool capture = graphs_ && !graphExec_ && steps_ >= 1;
  ++steps_;
  if (graphExec_) {
    if (!check(cudaGraphLaunch(graphExec_, stream_), "cudaGraphLaunch", error))
      return false;
  } else if (capture) {
    if (!check(cudaStreamBeginCapture(stream_,
                                      cudaStreamCaptureModeThreadLocal),
               "cudaStreamBeginCapture", error))
      return false;
    std::string why;
    const bool enqueued = enqueue(why);
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (enqueued && e == cudaSuccess)
      e = cudaGraphInstantiate(&graphExec_, graph, 0);
    if (!enqueued || e != cudaSuccess) {
      // Something in the step cannot be captured (or failed while being
      // captured): run eagerly from now on. A real failure shows up again
      // in the eager run, with its own error.
      if (graphExec_)
        cudaGraphExecDestroy(graphExec_);
      graphExec_ = nullptr;
      if (graph)
        cudaGraphDestroy(graph);
      cudaGetLastError();
      graphs_ = false;
      std::fprintf(stderr,
                   "llamac: warning: %s: capturing the step as a CUDA graph "
                   "failed (%s); running the steps without graphs\n",
                   name_.c_str(),
                   enqueued ? cudaGetErrorString(e) : why.c_str());
      if (!enqueue(error))
        return false;
    } else {
      graph_ = graph;
      if (!check(cudaGraphLaunch(graphExec_, stream_), "cudaGraphLaunch",
                 error))
        return false;
    }
  } else if (!enqueue(error)) {
    return false;
  }
  return check(cudaStreamSynchronize(stream_), "the step", error);
}

} // namespace

namespace {
/// The CUDA device `spec` names: "cuda:N", or for "cuda" the node-local
/// rank's (`localRank` >= 0, else the launchers' variables; one process per
/// GPU). False with `error` for an unknown spec or where no GPU is usable.
bool pickDevice(const std::string &spec, int localRank, int &index,
                std::string &error) {
  index = 0;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (spec == "cuda" && e == cudaSuccess && count > 0) {
    if (localRank >= 0)
      index = localRank % count;
    else
      for (const char *var :
           {"LLAMAC_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
            "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
        if (const char *v = std::getenv(var)) {
          index = std::atoi(v) % count;
          break;
        }
  } else if (spec != "cuda") {
    const std::string prefix = "cuda:";
    char *end = nullptr;
    if (spec.rfind(prefix, 0) != 0 || spec.size() == prefix.size() ||
        (index = static_cast<int>(
             std::strtol(spec.c_str() + prefix.size(), &end, 10)),
         *end != '\0') ||
        index < 0) {
      error = "--device: unknown device '" + spec +
              "' (expected cpu, cuda or cuda:N)";
      return false;
    }
  }
  if (e != cudaSuccess || count == 0) {
    error = "--device " + spec + ": no CUDA GPU is usable here (" +
            (e != cudaSuccess ? std::string(cudaGetErrorString(e))
                              : std::string("no CUDA device found")) +
            "); run on a machine with an NVIDIA GPU and driver, or use "
            "--device cpu";
    return false;
  }
  if (index >= count) {
    error = "--device " + spec + ": there are " + std::to_string(count) +
            " CUDA devices (cuda:0 .. cuda:" + std::to_string(count - 1) + ")";
    return false;
  }
  return true;
}
} // namespace

std::unique_ptr<Device> createDevice(const std::string &spec, bool tf32,
                                     bool graphs, std::string &error) {
  // A launch without mpirun: the GPU its communicator took.
  int localRank = -1;
  comm::EnvLaunch launch;
  std::string ignored;
  if (comm::envLaunchRequested() && comm::readEnvLaunch(launch, ignored))
    localRank = launch.localRank;
  int index = 0;
  if (!pickDevice(spec, localRank, index, error))
    return nullptr;
  auto device = std::make_unique<CudaDevice>(index, tf32, graphs);
  if (!device->start(error))
    return nullptr;
  return device;
}

std::unique_ptr<comm::Comm> createLaunchComm(const comm::EnvLaunch &launch,
                                             const std::string &spec,
                                             std::string &error) {
  int index = 0;
  if (!pickDevice(spec, launch.localRank, index, error))
    return nullptr;
  return comm::createNcclComm(launch, index, error);
}

} // namespace exec
} // namespace llamac
