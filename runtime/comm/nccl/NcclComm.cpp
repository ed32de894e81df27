//===- NcclComm.cpp - The host communicator of a launch without mpirun ----===//
#include "comm/nccl/NcclComm.h"

#include "comm/nccl/NcclGroups.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#ifdef LLAMAC_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace llamac {
namespace comm {

#ifdef LLAMAC_HAVE_NCCL

namespace {

ncclDataType_t ncclType(DType t) {
  switch (t) {
  case DType::F64:
    return ncclFloat64;
  case DType::I32:
    return ncclInt32;
  case DType::I64:
    return ncclInt64;
  default:
    return ncclFloat32;
  }
}

ncclRedOp_t ncclOp(Reduction r) {
  return r == Reduction::Max ? ncclMax : r == Reduction::Min ? ncclMin : ncclSum;
}

class NcclComm final : public Comm {
public:
  NcclComm(int rank, int size) : rank_(rank), size_(size) {}
  ~NcclComm() override {
    if (stream_)
      cudaStreamSynchronize(stream_);
    for (auto &[ticket, send] : sends_)
      release(send);
    if (staging_)
      cudaFree(staging_);
    groups_.reset();
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  bool start(int device, std::string &error) {
    groups_ = std::make_unique<NcclGroups>();
    return cuda(cudaSetDevice(device), "cudaSetDevice", error) &&
           cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                "cudaStreamCreate", error) &&
           groups_->connectFromEnvironment(rank_, size_, error);
  }

  const NcclGroups &groups() const { return *groups_; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char *name() const override { return "nccl"; }

  bool setGrid(const Grid &grid, std::string &error) override {
    if (grid.size() != size_) {
      error = "device grid " + grid.toString() + " needs " +
              std::to_string(grid.size()) + " ranks, the job has " +
              std::to_string(size_);
      return false;
    }
    grid_ = Grid();
    if (!groups_->split(grid, rank_, error))
      return false;
    grid_ = grid;
    return true;
  }

  bool allReduce(void *data, int64_t count, DType dtype, Reduction reduction,
                 const std::vector<int> &gridAxes,
                 std::string &error) override {
    AxisMask mask;
    if (!checkAllReduceArguments("all_reduce", data, count, gridAxes, mask,
                                 error) ||
        !checkGridSet("all_reduce", error))
      return false;
    if (count == 0 || grid_.groupSize(mask) == 1)
      return true;
    const int64_t bytes = count * dtypeBytes(dtype);
    char *buf = nullptr;
    return stage(bytes, buf, error) && in(buf, data, bytes, error) &&
           nccl(ncclAllReduce(buf, buf, static_cast<size_t>(count),
                              ncclType(dtype), ncclOp(reduction),
                              group(mask), stream_),
                "ncclAllReduce", error) &&
           out(data, buf, bytes, error);
  }

  bool allGather(const void *send, void *recv, int64_t count, DType dtype,
                 const std::vector<int> &gridAxes,
                 std::string &error) override {
    const int64_t bytes = count * dtypeBytes(dtype);
    AxisMask mask;
    if (!checkGroup("all_gather", gridAxes, mask, error))
      return false;
    const int members = grid_.groupSize(mask);
    if (!checkGatherArguments("all_gather", send, bytes, recv, members * bytes,
                              count, gridAxes, mask, error))
      return false;
    if (count == 0)
      return true;
    if (members == 1) {
      std::memcpy(recv, send, static_cast<size_t>(bytes));
      return true;
    }
    char *buf = nullptr;
    return stage(bytes * (members + 1), buf, error) &&
           in(buf, send, bytes, error) &&
           nccl(ncclAllGather(buf, buf + bytes, static_cast<size_t>(count),
                              ncclType(dtype), group(mask), stream_),
                "ncclAllGather", error) &&
           out(recv, buf + bytes, bytes * members, error);
  }

  bool reduceScatter(const void *send, void *recv, int64_t recvCount,
                     DType dtype, Reduction reduction,
                     const std::vector<int> &gridAxes,
                     std::string &error) override {
    const int64_t bytes = recvCount * dtypeBytes(dtype);
    AxisMask mask;
    if (!checkGroup("reduce_scatter", gridAxes, mask, error))
      return false;
    const int members = grid_.groupSize(mask);
    if (!checkGatherArguments("reduce_scatter", send, members * bytes, recv,
                              bytes, recvCount, gridAxes, mask, error))
      return false;
    if (recvCount == 0)
      return true;
    if (members == 1) {
      std::memcpy(recv, send, static_cast<size_t>(bytes));
      return true;
    }
    char *buf = nullptr;
    return stage(bytes * (members + 1), buf, error) &&
           in(buf, send, bytes * members, error) &&
           nccl(ncclReduceScatter(buf, buf + bytes * members,
                                  static_cast<size_t>(recvCount),
                                  ncclType(dtype), ncclOp(reduction),
                                  group(mask), stream_),
                "ncclReduceScatter", error) &&
           out(recv, buf + bytes * members, bytes, error);
  }

  bool isend(const void *data, int64_t bytes, int peer, int tag,
             SendTicket &ticket, std::string &error) override {
    ticket = kNoSend;
    if (!checkPointToPoint("send", data, bytes, peer, tag, error))
      return false;
    // Each send has its own device copy until waitSend().
    Send send;
    if (bytes > 0 &&
        !cuda(cudaMalloc(&send.buffer, static_cast<size_t>(bytes)),
              "cudaMalloc (a send's staging)", error))
      return false;
    const bool ok =
        cuda(cudaEventCreateWithFlags(&send.done, cudaEventDisableTiming),
             "cudaEventCreate", error) &&
        in(static_cast<char *>(send.buffer), data, bytes, error) &&
        nccl(ncclSend(send.buffer, static_cast<size_t>(bytes), ncclInt8, peer,
                      world(), stream_),
             "ncclSend", error) &&
        cuda(cudaEventRecord(send.done, stream_), "cudaEventRecord", error);
    if (!ok) {
      release(send);
      return false;
    }
    ticket = nextSend_++;
    sends_[ticket] = send;
    return true;
  }

  bool waitSend(SendTicket ticket, std::string &error) override {
    if (ticket == kNoSend)
      return true;
    auto it = sends_.find(ticket);
    if (it == sends_.end())
      return Comm::waitSend(ticket, error);
    const bool ok = cuda(cudaEventSynchronize(it->second.done),
                         "the send (cudaEventSynchronize)", error);
    release(it->second);
    sends_.erase(it);
    return ok;
  }

  bool recv(void *data, int64_t bytes, int peer, int tag,
            std::string &error) override {
    if (!checkPointToPoint("recv", data, bytes, peer, tag, error))
      return false;
    char *buf = nullptr;
    return stage(bytes, buf, error) &&
           nccl(ncclRecv(buf, static_cast<size_t>(bytes), ncclInt8, peer,
                         world(), stream_),
                "ncclRecv", error) &&
           out(data, buf, bytes, error);
  }

  bool hasPointToPoint() const override { return true; }

  bool barrier(std::string &error) override {
    int32_t one = 1;
    char *buf = nullptr;
    return stage(4, buf, error) && in(buf, &one, 4, error) &&
           nccl(ncclAllReduce(buf, buf, 1, ncclInt32, ncclSum, world(),
                              stream_),
                "ncclAllReduce (barrier)", error) &&
           out(&one, buf, 4, error);
  }

  bool broadcast(void *data, int64_t bytes, int root,
                 std::string &error) override {
    if (root < 0 || root >= size_ || bytes < 0 || (bytes > 0 && !data)) {
      error = "broadcast: bad arguments (root " + std::to_string(root) +
              ", " + std::to_string(bytes) + " bytes)";
      return false;
    }
    if (bytes == 0)
      return true;
    char *buf = nullptr;
    return stage(bytes, buf, error) && in(buf, data, bytes, error) &&
           nccl(ncclBroadcast(buf, buf, static_cast<size_t>(bytes), ncclInt8,
                              root, world(), stream_),
                "ncclBroadcast", error) &&
           out(data, buf, bytes, error);
  }

  bool agreeOnFailure(bool failed, std::string &error) override {
    // 1. Who failed.
    static_assert(sizeof(int) == 4, "ncclInt32 flags");
    std::vector<int> flags(static_cast<size_t>(size_));
    int mine = failed ? 1 : 0;
    char *buf = nullptr;
    std::string why;
    if (!stage(4 * (size_ + 1), buf, why) || !in(buf, &mine, 4, why) ||
        !nccl(ncclAllGather(buf, buf + 4, 1, ncclInt32, world(), stream_),
              "ncclAllGather", why) ||
        !out(flags.data(), buf + 4, 4 * size_, why)) {
      error = why + " (agreeing on errors)";
      return true;
    }
    // 2. The first failing rank's message, to everyone.
    return agreeGivenFlags(flags, error);
  }

  [[noreturn]] void abort(const std::string &message, int code) override {
    std::fprintf(stderr, "llamac: error: rank %d: %s\n", rank_,
                 message.c_str());
    std::fflush(stderr);
    // The other ranks' collectives fail or are ended by the launcher.
    ncclCommAbort(world());
    std::_Exit(code);
  }

private:
  struct Send {
    void *buffer = nullptr;
    cudaEvent_t done = nullptr;
  };
  void release(Send &send) {
    if (send.done) {
      cudaEventSynchronize(send.done);
      cudaEventDestroy(send.done);
    }
    if (send.buffer)
      cudaFree(send.buffer);
    send = Send();
  }

  bool cuda(cudaError_t e, const char *what, std::string &error) const {
    if (e == cudaSuccess)
      return true;
    error = std::string("NCCL communicator: ") + what + ": " +
            cudaGetErrorString(e);
    return false;
  }
  bool nccl(ncclResult_t r, const char *what, std::string &error) const {
    if (r == ncclSuccess)
      return true;
    error = std::string("NCCL communicator: ") + what + ": " +
            ncclGetErrorString(r);
    return false;
  }
  ncclComm_t world() const { return static_cast<ncclComm_t>(groups_->world()); }
  ncclComm_t group(AxisMask mask) const {
    return static_cast<ncclComm_t>(groups_->group(mask));
  }
  /// Device scratch of at least `bytes` for one collective.
  bool stage(int64_t bytes, char *&buf, std::string &error) {
    if (bytes > stagingBytes_) {
      if (staging_) {
        cudaStreamSynchronize(stream_);
        cudaFree(staging_);
        staging_ = nullptr;
      }
      if (!cuda(cudaMalloc(&staging_, static_cast<size_t>(bytes)),
                "cudaMalloc (staging)", error))
        return false;
      stagingBytes_ = bytes;
    }
    buf = static_cast<char *>(staging_);
    return true;
  }
  bool in(char *device, const void *host, int64_t bytes, std::string &error) {
    return bytes == 0 ||
           cuda(cudaMemcpyAsync(device, host, static_cast<size_t>(bytes),
                                cudaMemcpyHostToDevice, stream_),
                "cudaMemcpy", error);
  }
  bool out(void *host, const char *device, int64_t bytes, std::string &error) {
    return (bytes == 0 ||
            cuda(cudaMemcpyAsync(host, device, static_cast<size_t>(bytes),
                                 cudaMemcpyDeviceToHost, stream_),
                 "cudaMemcpy", error)) &&
           cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize",
                error);
  }

  int rank_, size_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<NcclGroups> groups_;
  void *staging_ = nullptr;
  int64_t stagingBytes_ = 0;
  std::map<SendTicket, Send> sends_;
  SendTicket nextSend_ = kNoSend + 1;
};

} // namespace

std::unique_ptr<Comm> createNcclComm(const EnvLaunch &launch, int device,
                                     std::string &error) {
  auto comm = std::make_unique<NcclComm>(launch.rank, launch.size);
  if (!comm->start(device, error)) {
    error = "rank " + std::to_string(launch.rank) + " of " +
            std::to_string(launch.size) + " (NCCL_COMM_ID " + launch.commId +
            "): " + error;
    return nullptr;
  }
  return comm;
}

const NcclGroups *ncclGroupsOf(const Comm &comm) {
  auto *nccl = dynamic_cast<const NcclComm *>(&comm);
  return nccl ? &nccl->groups() : nullptr;
}

#else // !LLAMAC_HAVE_NCCL

std::unique_ptr<Comm> createNcclComm(const EnvLaunch &, int,
                                     std::string &error) {
  error = "this llamac was built without NCCL, so it cannot run a job "
          "launched without mpirun (LLAMAC_WORLD_SIZE / WORLD_SIZE)";
  return nullptr;
}

const NcclGroups *ncclGroupsOf(const Comm &) { return nullptr; }

#endif

} // namespace comm
} // namespace llamac
