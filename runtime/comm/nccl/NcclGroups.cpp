//===- NcclGroups.cpp - NCCL communicators per grid-axis group ------------===//
#include "comm/nccl/NcclGroups.h"

#include "comm/Comm.h"

#include <algorithm>
#include <cstdlib>

#ifdef LLAMAC_HAVE_NCCL
#include <nccl.h>
#endif

namespace llamac {
namespace comm {

#ifdef LLAMAC_HAVE_NCCL

namespace {
ncclComm_t asComm(void *p) { return static_cast<ncclComm_t>(p); }
std::string ncclError(const std::string &what, ncclResult_t r) {
  return "NCCL: " + what + ": " + ncclGetErrorString(r);
}
} // namespace

NcclGroups::~NcclGroups() {
  dropSplits();
  if (world_)
    ncclCommDestroy(asComm(world_));
}

void NcclGroups::dropSplits() {
  for (void *&c : channels_)
    if (c)
      ncclCommDestroy(asComm(c));
  channels_.clear();
  for (void *&g : groups_)
    if (g) {
      ncclCommDestroy(asComm(g));
      g = nullptr;
    }
}

std::string NcclGroups::version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess)
    return "NCCL (version unknown)";
  // 2.28.9 is 22809 (major * 10000 + minor * 100 + patch).
  return "NCCL " + std::to_string(v / 10000) + "." +
         std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

bool NcclGroups::initWorld(const void *id, int rank, int size,
                           std::string &error) {
  ncclUniqueId uid;
  static_assert(sizeof(uid) == kUniqueIdBytes, "ncclUniqueId size");
  std::copy_n(static_cast<const char *>(id), sizeof(uid),
              reinterpret_cast<char *>(&uid));
  ncclComm_t world = nullptr;
  const ncclResult_t r = ncclCommInitRank(&world, size, uid, rank);
  if (r != ncclSuccess) {
    error = ncclError("ncclCommInitRank (rank " + std::to_string(rank) +
                          " of " + std::to_string(size) + ")",
                      r);
    return false;
  }
  world_ = world;
  return true;
}

bool NcclGroups::connect(Comm &host, std::string &error) {
  if (!host.hasGrid()) {
    error = "NCCL: the host communicator has no device grid";
    return false;
  }
  ncclUniqueId id{};
  bool failed = false;
  if (host.rank() == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) {
      failed = true;
      error = ncclError("ncclGetUniqueId", r);
    }
  }
  if (host.agreeOnFailure(failed, error))
    return false;
  if (!host.broadcast(&id, sizeof(id), 0, error))
    return false;
  return initWorld(&id, host.rank(), host.size(), error) &&
         split(host.grid(), host.rank(), error);
}

bool NcclGroups::connectFromEnvironment(int rank, int size,
                                        std::string &error) {
  // With NCCL_COMM_ID (host:port) set, every rank's ncclGetUniqueId gives
  // the same id, and rank 0's ncclCommInitRank listens at that address.
  ncclUniqueId id{};
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) {
    error = ncclError("ncclGetUniqueId (NCCL_COMM_ID)", r);
    return false;
  }
  return initWorld(&id, rank, size, error);
}

bool NcclGroups::connectFrom(const NcclGroups &parent, const Grid &grid,
                             int rank, std::string &error) {
  ncclComm_t world = nullptr;
  const ncclResult_t r =
      ncclCommSplit(asComm(parent.world_), 0, rank, &world, nullptr);
  if (r != ncclSuccess) {
    error = ncclError("ncclCommSplit of the job's communicator", r);
    return false;
  }
  world_ = world;
  return split(grid, rank, error);
}

bool NcclGroups::split(const Grid &grid, int rank, std::string &error) {
  dropSplits();
  ncclComm_t world = asComm(world_);
  for (AxisMask mask = 1; mask < kNumAxisMasks; ++mask) {
    const GroupSplit split = grid.groupSplit(rank, mask);
    ncclComm_t c = nullptr;
    const ncclResult_t r =
        ncclCommSplit(world, split.color, split.key, &c, nullptr);
    if (r != ncclSuccess) {
      error = ncclError("ncclCommSplit over grid axes mask " +
                            std::to_string(mask),
                        r);
      return false;
    }
    groups_[mask] = c;
  }
  // Pipeline transfers: per boundary and direction, the two stages' ranks
  // at each data- and tensor-parallel point.
  grid_ = grid;
  rank_ = rank;
  const int stage = grid.coords(rank)[kPipelineAxis];
  const int color = grid.groupSplit(rank, 1u << kPipelineAxis).color;
  for (int b = 0; b + 1 < grid.pp; ++b)
    for (int direction = 0; direction < 2; ++direction) {
      const bool member = stage == b || stage == b + 1;
      ncclComm_t c = nullptr;
      const ncclResult_t r = ncclCommSplit(
          world, member ? color : NCCL_SPLIT_NOCOLOR, stage, &c, nullptr);
      if (r != ncclSuccess) {
        error = ncclError("ncclCommSplit for the transfers between pipeline "
                          "stages " +
                              std::to_string(b) + " and " +
                              std::to_string(b + 1),
                          r);
        return false;
      }
      channels_.push_back(c);
    }
  return true;
}

void *NcclGroups::channel(int peerRank, bool send, int &peer) const {
  if (peerRank < 0 || peerRank >= grid_.size() || channels_.empty())
    return nullptr;
  std::array<int, kGridAxes> mine = grid_.coords(rank_),
                             theirs = grid_.coords(peerRank);
  const int stage = mine[kPipelineAxis], other = theirs[kPipelineAxis];
  mine[kPipelineAxis] = theirs[kPipelineAxis] = 0;
  if (mine != theirs || std::abs(stage - other) != 1)
    return nullptr;
  const int low = std::min(stage, other);
  const int from = send ? stage : other, to = send ? other : stage;
  peer = other > stage ? 1 : 0; // key = stage: the lower stage is rank 0
  return channels_[2 * low + (from < to ? 0 : 1)];
}

#else // !LLAMAC_HAVE_NCCL

namespace {
const char *kNoNccl =
    "this llamac was built without NCCL (libnccl-dev / nccl.h not found at "
    "configure time), so its GPU backend runs single-rank plans only";
} // namespace

NcclGroups::~NcclGroups() = default;
void NcclGroups::dropSplits() {}
std::string NcclGroups::version() { return "no NCCL in this build"; }
bool NcclGroups::initWorld(const void *, int, int, std::string &error) {
  error = kNoNccl;
  return false;
}
bool NcclGroups::connect(Comm &, std::string &error) {
  error = kNoNccl;
  return false;
}
bool NcclGroups::connectFromEnvironment(int, int, std::string &error) {
  error = kNoNccl;
  return false;
}
bool NcclGroups::connectFrom(const NcclGroups &, const Grid &, int,
                             std::string &error) {
  error = kNoNccl;
  return false;
}
bool NcclGroups::split(const Grid &, int, std::string &error) {
  error = kNoNccl;
  return false;
}
void *NcclGroups::channel(int, bool, int &) const { return nullptr; }

#endif

} // namespace comm
} // namespace llamac
