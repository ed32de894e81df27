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
} // namespace

NcclGroups::~NcclGroups() {
  for (void *&c : channels_)
    if (c) {
      ncclCommDestroy(asComm(c));
      c = nullptr;
    }
  for (void *&g : groups_)
    if (g) {
      ncclCommDestroy(asComm(g));
      g = nullptr;
    }
  if (world_)
    ncclCommDestroy(asComm(world_));
}

std::string NcclGroups::version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess)
    return "NCCL (version unknown)";
  // 2.28.9 is 22809 (major * 10000 + minor * 100 + patch).
  return "NCCL " + std::to_string(v / 10000) + "." +
         std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
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
      error = std::string("NCCL: ncclGetUniqueId: ") + ncclGetErrorString(r);
    }
  }
  if (host.agreeOnFailure(failed, error))
    return false;
  if (!host.broadcast(&id, sizeof(id), 0, error))
    return false;
  ncclComm_t world = nullptr;
  ncclResult_t r = ncclCommInitRank(&world, host.size(), id, host.rank());
  if (r != ncclSuccess) {
    error = std::string("NCCL: ncclCommInitRank (rank ") +
            std::to_string(host.rank()) + " of " +
            std::to_string(host.size()) + "): " + ncclGetErrorString(r);
    return false;
  }
  world_ = world;
  const Grid &grid = host.grid();
  for (AxisMask mask = 1; mask < kNumAxisMasks; ++mask) {
    const GroupSplit split = grid.groupSplit(host.rank(), mask);
    ncclComm_t c = nullptr;
    r = ncclCommSplit(world, split.color, split.key, &c, nullptr);
    if (r != ncclSuccess) {
      error = std::string("NCCL: ncclCommSplit over grid axes mask ") +
              std::to_string(mask) + ": " + ncclGetErrorString(r);
      return false;
    }
    groups_[mask] = c;
  }
  // Pipeline transfers: per boundary and direction, the two stages' ranks
  // at each data- and tensor-parallel point.
  grid_ = grid;
  rank_ = host.rank();
  const int stage = grid.coords(rank_)[kPipelineAxis];
  const int color = grid.groupSplit(rank_, 1u << kPipelineAxis).color;
  for (int b = 0; b + 1 < grid.pp; ++b)
    for (int direction = 0; direction < 2; ++direction) {
      const bool member = stage == b || stage == b + 1;
      ncclComm_t c = nullptr;
      r = ncclCommSplit(world, member ? color : NCCL_SPLIT_NOCOLOR, stage, &c,
                        nullptr);
      if (r != ncclSuccess) {
        error = std::string("NCCL: ncclCommSplit for the transfers between "
                            "pipeline stages ") +
                std::to_string(b) + " and " + std::to_string(b + 1) + ": " +
                ncclGetErrorString(r);
        return false;
      }
      channels_.push_back(c);
    }
  return true;
}

void *NcclGroups::channel(int peerRank, bool send, int &peer) const {
  if (peerRank < 0 || peerRank >= grid_.size())
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

NcclGroups::~NcclGroups() = default;

void *NcclGroups::channel(int, bool, int &) const { return nullptr; }

std::string NcclGroups::version() { return "no NCCL in this build"; }

bool NcclGroups::connect(Comm &host, std::string &error) {
  (void)host;
  error = "this llamac was built without NCCL (libnccl-dev / nccl.h not "
          "found at configure time), so its GPU backend runs single-rank "
          "plans only";
  return false;
}

#endif

} // namespace comm
} // namespace llamac
