//===- Comm.cpp - Collectives between the ranks of a run
//-------------------===//
#include "comm/Comm.h"

#ifdef LLAMAC_HAVE_MPI
#include "comm/mpi/MpiComm.h"
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace llamac {
namespace comm {

int64_t dtypeBytes(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F64:
  case DType::I64:
    return 8;
  }
  return 0;
}

const char *reductionName(Reduction reduction) {
  switch (reduction) {
  case Reduction::Sum:
    return "sum";
  case Reduction::Max:
    return "max";
  case Reduction::Min:
    return "min";
  }
  return "?";
}

bool parseReduction(const std::string &name, Reduction &out) {
  for (Reduction r : {Reduction::Sum, Reduction::Max, Reduction::Min}) {
    if (name == reductionName(r)) {
      out = r;
      return true;
    }
  }
  return false;
}

Comm::~Comm() = default;

bool Comm::checkGatherArguments(const char *what, const void *send,
                                int64_t sendBytes, const void *recv,
                                int64_t recvBytes, int64_t count,
                                const std::vector<int> &gridAxes,
                                AxisMask &mask, std::string &error) {
  if (!ascendingGridAxesMask(gridAxes, mask, error)) {
    error = std::string(what) + " over grid axes " + error;
    return false;
  }
  if (count < 0 || (count > 0 && (!send || !recv))) {
    error = std::string(what) + " of " + std::to_string(count) + " elements" +
            (count > 0 ? " with a null buffer" : "") +
            ", expected count >= 0 and two buffers";
    return false;
  }
  const char *s = static_cast<const char *>(send);
  const char *r = static_cast<const char *>(recv);
  if (count > 0 && s < r + recvBytes && r < s + sendBytes) {
    error = std::string(what) + ": the send buffer (" +
            std::to_string(sendBytes) + " bytes) and the receive buffer (" +
            std::to_string(recvBytes) + " bytes) overlap";
    return false;
  }
  return true;
}

bool Comm::checkAllReduceArguments(const char *what, const void *data,
                                   int64_t count,
                                   const std::vector<int> &gridAxes,
                                   AxisMask &mask, std::string &error) {
  if (!gridAxesMask(gridAxes, mask, error)) {
    error = std::string(what) + " over grid axes " + error;
    return false;
  }
  if (count < 0 || (count > 0 && !data)) {
    error = std::string(what) + " of " + std::to_string(count) +
            " elements at " + (data ? "a buffer" : "null") +
            ", expected count >= 0 and a buffer";
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Started all-reduces, by default: done at their wait
//===----------------------------------------------------------------------===//

bool Comm::checkAllReduceStart(void *data, int64_t count,
                               const std::vector<int> &gridAxes,
                               AxisMask &mask, bool &trivial,
                               std::string &error) const {
  if (!checkAllReduceArguments("all_reduce", data, count, gridAxes, mask,
                               error) ||
      !checkGridSet("all_reduce", error))
    return false;
  trivial = count == 0 || grid_.groupSize(mask) == 1;
  return true;
}

bool Comm::checkGridSet(const char *what, std::string &error) const {
  if (hasGrid())
    return true;
  error = std::string(what) + " before setGrid(): no device grid for the " +
          std::to_string(size()) + " ranks";
  return false;
}

bool Comm::checkGroup(const char *what, const std::vector<int> &gridAxes,
                      AxisMask &mask, std::string &error) const {
  if (!ascendingGridAxesMask(gridAxes, mask, error)) {
    error = std::string(what) + " over grid axes " + error;
    return false;
  }
  return checkGridSet(what, error);
}

bool Comm::allReduceStart(void *data, int64_t count, DType dtype,
                          Reduction reduction, const std::vector<int> &gridAxes,
                          Ticket &ticket, std::string &error) {
  ticket = kNoTicket;
  AxisMask mask;
  bool trivial = false;
  if (!checkAllReduceStart(data, count, gridAxes, mask, trivial, error))
    return false;
  if (trivial)
    return true;
  ticket = nextTicket_++;
  deferred_.push_back(
      {ticket, data, count, dtype, reduction, gridAxes, /*done=*/false});
  return true;
}

bool Comm::allReduceWait(Ticket ticket, AsyncTiming *timing,
                         std::string &error) {
  if (timing)
    *timing = AsyncTiming();
  if (ticket == kNoTicket)
    return true;
  auto it = deferred_.begin();
  while (it != deferred_.end() && it->ticket != ticket)
    ++it;
  if (it == deferred_.end()) {
    error = "wait for all_reduce ticket " + std::to_string(ticket) +
            ", which is not in flight (never started, or already waited for)";
    return false;
  }
  // In the order they were started, as the ranks agreed: the earlier ones
  // first (their own waits then find them done).
  for (auto d = deferred_.begin(); d <= it; ++d) {
    if (d->done)
      continue;
    d->done = true;
    if (!allReduce(d->data, d->count, d->dtype, d->reduction, d->gridAxes,
                   error)) {
      deferred_.erase(it);
      return false;
    }
  }
  deferred_.erase(it);
  return true;
}

//===----------------------------------------------------------------------===//
// Point-to-point transfers, by default: none
//===----------------------------------------------------------------------===//

bool Comm::agreeGivenFlags(const std::vector<int> &flags,
                           std::string &error) {
  int first = -1, count = 0;
  for (int r = 0; r < static_cast<int>(flags.size()); ++r)
    if (flags[r]) {
      count += 1;
      if (first < 0)
        first = r;
    }
  if (count == 0)
    return false;
  // The first failing rank's message, to everyone.
  std::string message = rank() == first ? error : std::string();
  int64_t length = static_cast<int64_t>(message.size());
  std::string why;
  if (!broadcast(&length, sizeof length, first, why)) {
    error = why + " (agreeing on errors)";
    return true;
  }
  message.resize(static_cast<size_t>(length));
  if (length > 0 && !broadcast(&message[0], length, first, why)) {
    error = why + " (agreeing on errors)";
    return true;
  }
  error = count == size() ? message
                          : "rank " + std::to_string(first) + ": " + message;
  return true;
}

bool Comm::checkPointToPoint(const char *what, const void *data, int64_t bytes,
                             int peer, int tag, std::string &error) const {
  const std::string prefix = std::string(what) + " of " +
                             std::to_string(bytes) + " bytes " +
                             (std::string(what) == "send" ? "to" : "from") +
                             " rank " + std::to_string(peer) + " with tag " +
                             std::to_string(tag);
  if (peer < 0 || peer >= size() || peer == rank()) {
    error = prefix + ": expected another rank of the world [0, " +
            std::to_string(size()) + "), not this rank " +
            std::to_string(rank());
    return false;
  }
  if (tag < 0 || tag > kMaxTag) {
    error = prefix + ": expected a tag in [0, " + std::to_string(kMaxTag) + "]";
    return false;
  }
  if (bytes < 0 || (bytes > 0 && !data)) {
    error = prefix + ": expected bytes >= 0 and a buffer";
    return false;
  }
  return true;
}

bool Comm::isend(const void *data, int64_t bytes, int peer, int tag,
                 SendTicket &ticket, std::string &error) {
  ticket = kNoSend;
  if (!checkPointToPoint("send", data, bytes, peer, tag, error))
    return false;
  error = std::string("send to rank ") + std::to_string(peer) + ": the " +
          name() + " communicator has no point-to-point transfers";
  return false;
}

bool Comm::waitSend(SendTicket ticket, std::string &error) {
  if (ticket == kNoSend)
    return true;
  error = "wait for send ticket " + std::to_string(ticket) +
          ", which is not in flight (never started, or already waited for)";
  return false;
}

bool Comm::recv(void *data, int64_t bytes, int peer, int tag,
                std::string &error) {
  if (!checkPointToPoint("recv", data, bytes, peer, tag, error))
    return false;
  error = std::string("recv from rank ") + std::to_string(peer) + ": the " +
          name() + " communicator has no point-to-point transfers";
  return false;
}

bool Comm::send(const void *data, int64_t bytes, int peer, int tag,
                std::string &error) {
  SendTicket ticket = kNoSend;
  return isend(data, bytes, peer, tag, ticket, error) &&
         waitSend(ticket, error);
}

//===----------------------------------------------------------------------===//
// LocalComm
//===----------------------------------------------------------------------===//

bool LocalComm::setGrid(const Grid &grid, std::string &error) {
  if (grid.size() != 1) {
    error = "device grid " + grid.toString() + " needs " +
            std::to_string(grid.size()) + " ranks, this process is alone";
    return false;
  }
  grid_ = grid;
  return true;
}

bool LocalComm::allReduce(void *data, int64_t count, DType dtype,
                          Reduction reduction, const std::vector<int> &gridAxes,
                          std::string &error) {
  (void)dtype;
  (void)reduction;
  AxisMask mask;
  // The reduction over one rank is the identity.
  return checkAllReduceArguments("all_reduce", data, count, gridAxes, mask,
                                 error);
}

bool LocalComm::allGather(const void *send, void *recv, int64_t count,
                          DType dtype, const std::vector<int> &gridAxes,
                          std::string &error) {
  // One rank: the group is this rank, G = 1, recv = send.
  const int64_t bytes = count * dtypeBytes(dtype);
  AxisMask mask;
  if (!checkGatherArguments("all_gather", send, bytes, recv, bytes, count,
                            gridAxes, mask, error))
    return false;
  if (count > 0)
    std::memcpy(recv, send, static_cast<size_t>(bytes));
  return true;
}

bool LocalComm::reduceScatter(const void *send, void *recv, int64_t recvCount,
                              DType dtype, Reduction reduction,
                              const std::vector<int> &gridAxes,
                              std::string &error) {
  (void)reduction;
  const int64_t bytes = recvCount * dtypeBytes(dtype);
  AxisMask mask;
  if (!checkGatherArguments("reduce_scatter", send, bytes, recv, bytes,
                            recvCount, gridAxes, mask, error))
    return false;
  if (recvCount > 0)
    std::memcpy(recv, send, static_cast<size_t>(bytes));
  return true;
}

bool LocalComm::barrier(std::string &) { return true; }

bool LocalComm::broadcast(void *data, int64_t bytes, int root,
                          std::string &error) {
  if (root != 0 || bytes < 0 || (bytes > 0 && !data)) {
    error = "broadcast of " + std::to_string(bytes) + " bytes from rank " +
            std::to_string(root) + ", expected root 0 of 1 and a buffer";
    return false;
  }
  return true;
}

bool LocalComm::agreeOnFailure(bool failed, std::string &) { return failed; }

void LocalComm::abort(const std::string &message, int code) {
  std::fprintf(stderr, "llamac: error: %s\n", message.c_str());
  std::fflush(stderr);
  std::exit(code);
}

//===----------------------------------------------------------------------===//
// Choosing the communicator
//===----------------------------------------------------------------------===//

bool launchedByMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK");
}

bool mpiAvailable() {
#ifdef LLAMAC_HAVE_MPI
  return true;
#else
  return false;
#endif
}

namespace {
/// The first of `names` set in the environment (its name in `which`).
const char *firstEnv(std::initializer_list<const char *> names,
                     const char *&which) {
  for (const char *n : names)
    if (const char *v = std::getenv(n)) {
      which = n;
      return v;
    }
  return nullptr;
}
bool envInt(const char *name, const char *text, int &out,
            std::string &error) {
  char *end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (!*text || *end || errno || v < 0 || v > (1 << 20)) {
    error = std::string(name) + "='" + text +
            "': expected a non-negative integer";
    return false;
  }
  out = static_cast<int>(v);
  return true;
}
} // namespace

bool envLaunchRequested() {
  return std::getenv("LLAMAC_WORLD_SIZE") ||
         (std::getenv("WORLD_SIZE") && !launchedByMpirun());
}

bool readEnvLaunch(EnvLaunch &launch, std::string &error) {
  const char *sizeVar = nullptr, *rankVar = nullptr, *localVar = nullptr;
  const char *size = firstEnv({"LLAMAC_WORLD_SIZE", "WORLD_SIZE"}, sizeVar);
  const char *rank = firstEnv({"LLAMAC_RANK", "RANK"}, rankVar);
  const char *local = firstEnv({"LLAMAC_LOCAL_RANK", "LOCAL_RANK"}, localVar);
  if (!size) {
    error = "a launch without mpirun needs LLAMAC_WORLD_SIZE (or WORLD_SIZE)";
    return false;
  }
  if (!envInt(sizeVar, size, launch.size, error))
    return false;
  if (launch.size < 1) {
    error = std::string(sizeVar) + "=" + size + ": expected at least 1";
    return false;
  }
  if (!rank) {
    error = std::string("a launch without mpirun needs this process's rank "
                        "in LLAMAC_RANK (or RANK) beside ") +
            sizeVar;
    return false;
  }
  if (!envInt(rankVar, rank, launch.rank, error))
    return false;
  if (launch.rank >= launch.size) {
    error = std::string(rankVar) + "=" + rank + " is not a rank of " +
            sizeVar + "=" + size + " (0 .. " +
            std::to_string(launch.size - 1) + ")";
    return false;
  }
  launch.localRank = launch.rank;
  if (local && !envInt(localVar, local, launch.localRank, error))
    return false;
  const char *id = std::getenv("NCCL_COMM_ID");
  if (!id || !*id || !std::strchr(id, ':')) {
    error = std::string("a launch without mpirun needs NCCL_COMM_ID=host:port "
                        "(where rank 0 listens for NCCL's bootstrap; the "
                        "same on every rank)") +
            (id ? std::string(", got '") + id + "'" : std::string());
    return false;
  }
  launch.commId = id;
  return true;
}

std::unique_ptr<Comm> createComm(std::string &error) {
  if (!launchedByMpirun())
    return std::make_unique<LocalComm>();
#ifdef LLAMAC_HAVE_MPI
  return createMpiComm(error);
#else
  // One rank under mpirun is harmless; several would each run alone and
  // write the same outputs.
  const char *size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size && std::strcmp(size, "1") == 0)
    return std::make_unique<LocalComm>();
  error = std::string("launched by mpirun") +
          (size ? " with " + std::string(size) + " ranks" : std::string()) +
          ", but this llamac was built without MPI (configure with "
          "-DLLAMAC_ENABLE_MPI=ON)";
  return nullptr;
#endif
}

} // namespace comm
} // namespace llamac
