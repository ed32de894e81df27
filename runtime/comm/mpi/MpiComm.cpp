//===- MpiComm.cpp - The MPI communicator
//----------------------------------===//
#include "comm/mpi/MpiComm.h"

#include "comm/CommThread.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace llamac {
namespace comm {
namespace {

/// "MPI_Allreduce: <MPI's message>".
std::string mpiError(const char *call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return std::string(call) + " failed with MPI error " + std::to_string(code);
  return std::string(call) + " failed: " + std::string(text, length);
}

MPI_Datatype mpiType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return MPI_FLOAT;
  case DType::F64:
    return MPI_DOUBLE;
  case DType::I32:
    return MPI_INT32_T;
  case DType::I64:
    return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpiOp(Reduction reduction) {
  switch (reduction) {
  case Reduction::Sum:
    return MPI_SUM;
  case Reduction::Max:
    return MPI_MAX;
  case Reduction::Min:
    return MPI_MIN;
  }
  return MPI_OP_NULL;
}

/// MPI counts are int: larger buffers go in chunks of this many elements.
constexpr int64_t kMaxChunk = int64_t(1) << 30;

/// MPI_Allreduce in place on `group`, in chunks of int counts.
bool allReduceInChunks(void *data, int64_t count, DType dtype,
                       Reduction reduction, MPI_Comm group,
                       std::string &error) {
  char *p = static_cast<char *>(data);
  const int64_t elementBytes = dtypeBytes(dtype);
  while (count > 0) {
    const int n = static_cast<int>(std::min(count, kMaxChunk));
    int rc = MPI_Allreduce(MPI_IN_PLACE, p, n, mpiType(dtype), mpiOp(reduction),
                           group);
    if (rc != MPI_SUCCESS) {
      error = mpiError("MPI_Allreduce", rc);
      return false;
    }
    p += n * elementBytes;
    count -= n;
  }
  return true;
}

/// "MPI_THREAD_FUNNELED" for logs.
const char *threadLevelName(int level) {
  switch (level) {
  case MPI_THREAD_SINGLE:
    return "MPI_THREAD_SINGLE";
  case MPI_THREAD_FUNNELED:
    return "MPI_THREAD_FUNNELED";
  case MPI_THREAD_SERIALIZED:
    return "MPI_THREAD_SERIALIZED";
  case MPI_THREAD_MULTIPLE:
    return "MPI_THREAD_MULTIPLE";
  }
  return "an unknown thread level";
}

/// One communicator per non-empty set of grid axes, built by MPI_Comm_split
/// of the world with Grid::groupSplit's color and key.
class GridComm {
public:
  GridComm() { std::fill(std::begin(comms_), std::end(comms_), MPI_COMM_NULL); }
  ~GridComm() { release(); }
  GridComm(const GridComm &) = delete;
  GridComm &operator=(const GridComm &) = delete;

  /// Collective over `world`: every rank splits for every mask in the same
  /// order.
  bool create(MPI_Comm world, const Grid &grid, int rank, std::string &error) {
    release();
    for (AxisMask mask = 1; mask < kNumAxisMasks; ++mask) {
      GroupSplit split = grid.groupSplit(rank, mask);
      int rc = MPI_Comm_split(world, split.color, split.key, &comms_[mask]);
      if (rc == MPI_SUCCESS)
        rc = MPI_Comm_set_errhandler(comms_[mask], MPI_ERRORS_RETURN);
      if (rc != MPI_SUCCESS) {
        error = mpiError("MPI_Comm_split", rc);
        return false;
      }
      // allGather and reduceScatter number blocks by group index and MPI
      // numbers them by communicator rank: the key (the world rank) makes
      // the two agree (Grid::groupIndex); checked once here, not per call.
      int groupRank = -1;
      MPI_Comm_rank(comms_[mask], &groupRank);
      if (groupRank != grid.groupIndex(rank, mask)) {
        error = "MPI_Comm_split gave rank " + std::to_string(rank) +
                " the position " + std::to_string(groupRank) +
                " in its group over axis mask " + std::to_string(mask) +
                ", expected its group index " +
                std::to_string(grid.groupIndex(rank, mask));
        return false;
      }
    }
    return true;
  }
  /// Collective over each group of `from`: a duplicate of every one of its
  /// communicators (same groups and rank order, a separate context, so
  /// that collectives on the two never match each other).
  bool duplicate(const GridComm &from, std::string &error) {
    release();
    for (AxisMask mask = 1; mask < kNumAxisMasks; ++mask) {
      int rc = MPI_Comm_dup(from.comms_[mask], &comms_[mask]);
      if (rc == MPI_SUCCESS)
        rc = MPI_Comm_set_errhandler(comms_[mask], MPI_ERRORS_RETURN);
      if (rc != MPI_SUCCESS) {
        error = mpiError("MPI_Comm_dup", rc);
        return false;
      }
    }
    return true;
  }
  void release() {
    for (MPI_Comm &c : comms_)
      if (c != MPI_COMM_NULL)
        MPI_Comm_free(&c);
  }
  MPI_Comm group(AxisMask mask) const { return comms_[mask]; }

private:
  MPI_Comm comms_[kNumAxisMasks];
};

class MpiComm final : public Comm {
public:
  MpiComm(MPI_Comm world, MPI_Comm pointToPoint, bool ownsInit,
          int threadLevel)
      : world_(world), p2p_(pointToPoint), ownsInit_(ownsInit),
        threadLevel_(threadLevel) {
    MPI_Comm_rank(world_, &rank_);
    MPI_Comm_size(world_, &size_);
  }
  ~MpiComm() override {
    // The thread first: it may be using the communicators.
    thread_.reset();
    // Sends never waited for (a failed run): let MPI finish them alone.
    for (auto &entry : sends_)
      for (MPI_Request &r : entry.second)
        if (r != MPI_REQUEST_NULL)
          MPI_Request_free(&r);
    sends_.clear();
    asyncGroups_.release();
    groups_.release();
    MPI_Comm_free(&p2p_);
    MPI_Comm_free(&world_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (ownsInit_ && !finalized)
      MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char *name() const override { return "mpi"; }

  bool setGrid(const Grid &grid, std::string &error) override {
    if (grid.pp < 1 || grid.dp < 1 || grid.tp < 1 || grid.size() != size_) {
      error = "device grid " + grid.toString() + " needs " +
              std::to_string(grid.size()) + " ranks, the world has " +
              std::to_string(size_);
      return false;
    }
    if (thread_ && thread_->inFlight() > 0) {
      error = "setGrid() with " + std::to_string(thread_->inFlight()) +
              " started all-reduces not yet waited for";
      return false;
    }
    grid_ = Grid();
    if (!groups_.create(world_, grid, rank_, error))
      return false;
    // The communication thread's own communicators (only with threads).
    if (threadLevel_ == MPI_THREAD_MULTIPLE &&
        !asyncGroups_.duplicate(groups_, error))
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
    return allReduceInChunks(data, count, dtype, reduction, groups_.group(mask),
                             error);
  }

  // Started all-reduces: a communication thread runs blocking
  // MPI_Allreduce calls, in posting order, on duplicates of the group
  // communicators that no other thread uses. Why not MPI_Iallreduce: Open
  // MPI 4 (Debian 12's 4.1) has no asynchronous progress ("OMPI progress:
  // no" in ompi_info), so a non-blocking collective only advances inside
  // MPI calls; the main thread makes none while it runs kernels, and the
  // reduction would happen at MPI_Wait, after the backward pass. A thread
  // blocked in MPI_Allreduce drives the progress engine itself. It needs
  // MPI_THREAD_MULTIPLE (the main thread's collectives run meanwhile);
  // without it the default of Comm (the reduction at the wait) applies,
  // with a warning.
  bool allReduceStart(void *data, int64_t count, DType dtype,
                      Reduction reduction, const std::vector<int> &gridAxes,
                      Ticket &ticket, std::string &error) override {
    if (threadLevel_ != MPI_THREAD_MULTIPLE) {
      warnNoThreads();
      return Comm::allReduceStart(data, count, dtype, reduction, gridAxes,
                                  ticket, error);
    }
    ticket = kNoTicket;
    AxisMask mask;
    bool trivial = false;
    if (!checkAllReduceStart(data, count, gridAxes, mask, trivial, error))
      return false;
    if (trivial)
      return true;
    if (!thread_)
      thread_ = std::make_unique<CommThread>(
          [this](const CommThread::Work &w, std::string &why) {
            return allReduceInChunks(w.data, w.count, w.dtype, w.reduction,
                                     asyncGroups_.group(w.mask), why);
          });
    ticket = thread_->post({data, count, dtype, reduction, mask});
    return true;
  }

  bool allReduceWait(Ticket ticket, AsyncTiming *timing,
                     std::string &error) override {
    if (threadLevel_ != MPI_THREAD_MULTIPLE || ticket == kNoTicket)
      return Comm::allReduceWait(ticket, timing, error);
    if (!thread_) {
      if (timing)
        *timing = AsyncTiming();
      error = "wait for all_reduce ticket " + std::to_string(ticket) +
              ", which is not in flight (never started, or already waited "
              "for)";
      return false;
    }
    return thread_->wait(ticket, timing, error);
  }

  bool overlapsAllReduce() const override {
    return threadLevel_ == MPI_THREAD_MULTIPLE;
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
    MPI_Comm group = groups_.group(mask);
    char *out = static_cast<char *>(recv);
    int rc = MPI_SUCCESS;
    const char *call = "MPI_Allgather";
    if (count <= kMaxChunk) {
      rc = MPI_Allgather(send, static_cast<int>(count), mpiType(dtype), out,
                         static_cast<int>(count), mpiType(dtype), group);
    } else {
      // Blocks beyond an int count: each member broadcasts its block, in
      // chunks (MPI_Allgather's counts are per block).
      call = "MPI_Bcast";
      const int me = grid_.groupIndex(rank_, mask);
      std::memcpy(out + me * bytes, send, static_cast<size_t>(bytes));
      for (int m = 0; m < members && rc == MPI_SUCCESS; ++m) {
        char *block = out + m * bytes;
        for (int64_t off = 0; off < count && rc == MPI_SUCCESS;) {
          const int n = static_cast<int>(std::min(count - off, kMaxChunk));
          rc = MPI_Bcast(block + off * dtypeBytes(dtype), n, mpiType(dtype), m,
                         group);
          off += n;
        }
      }
    }
    if (rc != MPI_SUCCESS) {
      error = mpiError(call, rc);
      return false;
    }
    return true;
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
    MPI_Comm group = groups_.group(mask);
    const char *in = static_cast<const char *>(send);
    int rc = MPI_SUCCESS;
    const char *call = "MPI_Reduce_scatter_block";
    if (recvCount <= kMaxChunk) {
      rc = MPI_Reduce_scatter_block(send, recv, static_cast<int>(recvCount),
                                    mpiType(dtype), mpiOp(reduction), group);
    } else {
      // Blocks beyond an int count: block m is reduced onto member m, in
      // chunks.
      call = "MPI_Reduce";
      const int me = grid_.groupIndex(rank_, mask);
      char *out = static_cast<char *>(recv);
      for (int m = 0; m < members && rc == MPI_SUCCESS; ++m) {
        for (int64_t off = 0; off < recvCount && rc == MPI_SUCCESS;) {
          const int n = static_cast<int>(std::min(recvCount - off, kMaxChunk));
          const int64_t at = off * dtypeBytes(dtype);
          rc = MPI_Reduce(in + m * bytes + at, m == me ? out + at : nullptr, n,
                          mpiType(dtype), mpiOp(reduction), m, group);
          off += n;
        }
      }
    }
    if (rc != MPI_SUCCESS) {
      error = mpiError(call, rc);
      return false;
    }
    return true;
  }

  // Point-to-point: on p2p_, a duplicate of the world of their own, so
  // that they never match the world's collectives. A message of more than
  // kMaxChunk bytes travels as consecutive messages of kMaxChunk bytes (the
  // last one shorter) with the same tag; MPI keeps them in order.
  bool isend(const void *data, int64_t bytes, int peer, int tag,
             SendTicket &ticket, std::string &error) override {
    ticket = kNoSend;
    if (!checkPointToPoint("send", data, bytes, peer, tag, error))
      return false;
    std::vector<MPI_Request> requests;
    const char *p = static_cast<const char *>(data);
    int64_t offset = 0;
    do {
      const int n = static_cast<int>(std::min(bytes - offset, kMaxChunk));
      MPI_Request request = MPI_REQUEST_NULL;
      int rc = MPI_Isend(p ? p + offset : nullptr, n, MPI_BYTE, peer, tag,
                         p2p_, &request);
      if (rc != MPI_SUCCESS) {
        error = mpiError("MPI_Isend", rc) + " (send of " +
                std::to_string(bytes) + " bytes to rank " +
                std::to_string(peer) + " with tag " + std::to_string(tag) + ")";
        for (MPI_Request &r : requests)
          MPI_Request_free(&r);
        return false;
      }
      requests.push_back(request);
      offset += n;
    } while (offset < bytes);
    ticket = nextSend_++;
    sends_.emplace(ticket, std::move(requests));
    return true;
  }

  bool waitSend(SendTicket ticket, std::string &error) override {
    if (ticket == kNoSend)
      return true;
    auto it = sends_.find(ticket);
    if (it == sends_.end())
      return Comm::waitSend(ticket, error);
    std::vector<MPI_Request> requests = std::move(it->second);
    sends_.erase(it);
    int rc = MPI_Waitall(static_cast<int>(requests.size()), requests.data(),
                         MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      error = mpiError("MPI_Waitall", rc) + " (send ticket " +
              std::to_string(ticket) + ")";
      return false;
    }
    return true;
  }

  bool recv(void *data, int64_t bytes, int peer, int tag,
            std::string &error) override {
    if (!checkPointToPoint("recv", data, bytes, peer, tag, error))
      return false;
    char *p = static_cast<char *>(data);
    int64_t offset = 0;
    do {
      const int64_t n = std::min(bytes - offset, kMaxChunk);
      // The size first: a longer message would be an MPI truncation error,
      // a shorter one would leave the buffer half written.
      MPI_Status status;
      int rc = MPI_Probe(peer, tag, p2p_, &status);
      int count = 0;
      if (rc == MPI_SUCCESS)
        rc = MPI_Get_count(&status, MPI_BYTE, &count);
      if (rc != MPI_SUCCESS) {
        error = mpiError("MPI_Probe", rc) + " (recv from rank " +
                std::to_string(peer) + " with tag " + std::to_string(tag) +
                ")";
        return false;
      }
      if (count != n) {
        error = "recv from rank " + std::to_string(peer) + " with tag " +
                std::to_string(tag) + ": expected " + std::to_string(bytes) +
                " bytes, got a message of " + std::to_string(count) +
                " bytes" +
                (offset > 0 ? " at byte " + std::to_string(offset) +
                                  " (messages beyond 2^30 bytes travel in "
                                  "parts)"
                            : std::string()) +
                " (the sender's tensor has another size)";
        return false;
      }
      rc = MPI_Recv(p ? p + offset : nullptr, count, MPI_BYTE, peer, tag, p2p_,
                    MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) {
        error = mpiError("MPI_Recv", rc) + " (recv from rank " +
                std::to_string(peer) + " with tag " + std::to_string(tag) +
                ")";
        return false;
      }
      offset += n;
    } while (offset < bytes);
    return true;
  }

  bool hasPointToPoint() const override { return true; }

  bool barrier(std::string &error) override {
    int rc = MPI_Barrier(world_);
    if (rc != MPI_SUCCESS) {
      error = mpiError("MPI_Barrier", rc);
      return false;
    }
    return true;
  }

  bool broadcast(void *data, int64_t bytes, int root,
                 std::string &error) override {
    if (root < 0 || root >= size_ || bytes < 0 || bytes > INT_MAX ||
        (bytes > 0 && !data)) {
      error = "broadcast of " + std::to_string(bytes) + " bytes from rank " +
              std::to_string(root) + ", expected a root in [0, " +
              std::to_string(size_) + ") and at most 2^31 - 1 bytes";
      return false;
    }
    int rc = MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, world_);
    if (rc != MPI_SUCCESS) {
      error = mpiError("MPI_Bcast", rc);
      return false;
    }
    return true;
  }

  bool agreeOnFailure(bool failed, std::string &error) override {
    // 1. Who failed.
    int mine = failed ? 1 : 0;
    std::vector<int> flags(size_);
    int rc = MPI_Allgather(&mine, 1, MPI_INT, flags.data(), 1, MPI_INT, world_);
    if (rc != MPI_SUCCESS) {
      error = mpiError("MPI_Allgather", rc) + " (agreeing on errors)";
      return true;
    }
    // 2. The first failing rank's message, to everyone.
    return agreeGivenFlags(flags, error);
  }

  [[noreturn]] void abort(const std::string &message, int code) override {
    std::fprintf(stderr, "llamac: error: rank %d: %s\n", rank_,
                 message.c_str());
    std::fflush(stderr);
    MPI_Abort(world_, code);
    std::_Exit(code); // MPI_Abort does not return; in case it does.
  }

private:
  /// Once per process, on rank 0: started all-reduces will not overlap.
  void warnNoThreads() const {
    static bool warned = false;
    if (warned || rank_ != 0)
      return;
    warned = true;
    std::fprintf(stderr,
                 "llamac: warning: MPI provides %s, not MPI_THREAD_MULTIPLE: "
                 "gradient buckets are all-reduced at their waits, without "
                 "overlapping the backward pass\n",
                 threadLevelName(threadLevel_));
    std::fflush(stderr);
  }

  MPI_Comm world_;
  MPI_Comm p2p_; ///< Point-to-point transfers (a duplicate of world_).
  bool ownsInit_;
  int threadLevel_; ///< What MPI provides (MPI_Init_thread / Query_thread).
  int rank_ = 0, size_ = 1;
  GridComm groups_;
  GridComm asyncGroups_; ///< The communication thread's duplicates.
  std::unique_ptr<CommThread> thread_; ///< Started by the first start.
  /// Sends in flight: the requests of each ticket (one per part).
  std::map<SendTicket, std::vector<MPI_Request>> sends_;
  SendTicket nextSend_ = kNoSend + 1;
};

} // namespace

std::unique_ptr<Comm> createMpiComm(std::string &error) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) {
    error = "MPI was already finalized in this process";
    return nullptr;
  }
  bool ownsInit = false;
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    // The thread that runs the executor and the communication thread of
    // started all-reduces (CommThread) call MPI at the same time, on
    // different communicators; OpenMP threads never do. Without
    // MPI_THREAD_MULTIPLE the started all-reduces run at their waits.
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) {
      error = mpiError("MPI_Init_thread", rc);
      return nullptr;
    }
    ownsInit = true;
  } else {
    MPI_Query_thread(&provided);
  }
  // The world of the collectives, and one of the point-to-point transfers.
  MPI_Comm world = MPI_COMM_NULL, p2p = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &world);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_dup(world, &p2p);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(p2p, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    error = mpiError("MPI_Comm_dup", rc);
    if (ownsInit)
      MPI_Finalize();
    return nullptr;
  }
  return std::make_unique<MpiComm>(world, p2p, ownsInit, provided);
}

} // namespace comm
} // namespace llamac
