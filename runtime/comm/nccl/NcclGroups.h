//===- NcclGroups.h - NCCL communicators per grid-axis group ------*- C++ -*-===//
//
// The GPU side of comm/: one NCCL communicator per non-empty set of grid
// axes of the [pp, dp, tp] grid (the groups of all_reduce, all_gather,
// reduce_scatter and the gradient buckets), one process per GPU.
//
// Bootstrap over the host communicator (comm/Comm.h; MpiComm under
// mpirun): rank 0 makes the NCCL unique id, Comm::broadcast hands it to
// every rank, ncclCommInitRank joins the world (or, for a launch without
// mpirun, every rank's id comes from NCCL_COMM_ID: connectFromEnvironment,
// and a device beside that NcclComm splits its own: connectFrom), and
// ncclCommSplit cuts it
// into the 7 groups in the same order on every rank (color: the group's
// grid point, key: the world rank, so a rank's position in its NCCL
// communicator is its group index, Grid::groupIndex, which numbers the
// blocks of gathers and shards). With pipeline stages, each boundary
// between adjacent stages gets two more splits, one per direction (stage s
// to s+1: activations; s+1 to s: their gradients), each a communicator of
// two ranks (key: the stage) at every data- and tensor-parallel point: the
// transfers of one direction are matched in order on their own
// communicator, so a send waiting for its receiver never holds up a
// transfer in the other direction. The communicators live until
// destruction.
//
// Built only with NCCL (LLAMAC_HAVE_NCCL); without it connect() fails with
// that reason.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_NCCL_NCCLGROUPS_H
#define LLAMAC_RUNTIME_COMM_NCCL_NCCLGROUPS_H

#include "comm/Grid.h"

#include <array>
#include <string>
#include <vector>

namespace llamac {
namespace comm {

class Comm;

class NcclGroups {
public:
  NcclGroups() = default;
  ~NcclGroups();
  NcclGroups(const NcclGroups &) = delete;
  NcclGroups &operator=(const NcclGroups &) = delete;

  /// Every rank of `host` calls it, with its own GPU current and the
  /// host's grid set; false with `error` on every rank when any failed
  /// before the NCCL calls (NCCL's own failures can only be reported
  /// locally).
  bool connect(Comm &host, std::string &error);
  /// The job's communicator without a host one (NcclComm): NCCL_COMM_ID
  /// (host:port) in the environment gives every rank the same unique id.
  /// No groups until split().
  bool connectFromEnvironment(int rank, int size, std::string &error);
  /// Communicators of its own, split from `parent`'s job communicator,
  /// with `grid`'s groups (a device beside an NcclComm host).
  bool connectFrom(const NcclGroups &parent, const Grid &grid, int rank,
                   std::string &error);
  /// (Re)makes the groups and pipeline channels of `grid` from the job's
  /// communicator; collective over it.
  bool split(const Grid &grid, int rank, std::string &error);
  bool connected() const { return world_ != nullptr; }
  /// The job's communicator (ncclComm_t), every rank.
  void *world() const { return world_; }

  /// Bytes of an ncclUniqueId.
  static constexpr int kUniqueIdBytes = 128;

  /// The ncclComm_t of this rank's group over `mask` (1..7).
  void *group(AxisMask mask) const { return groups_[mask]; }

  /// The communicator of this rank's transfers to (`send`) or from world
  /// rank `peerRank`, and in `peer` that rank's index in it; nullptr when
  /// the peer is not on an adjacent stage at this rank's data- and
  /// tensor-parallel point.
  void *channel(int peerRank, bool send, int &peer) const;

  /// "NCCL 2.28.9", or why there is none.
  static std::string version();

private:
  bool initWorld(const void *id, int rank, int size, std::string &error);
  void dropSplits();

  void *world_ = nullptr;
  std::array<void *, kNumAxisMasks> groups_{};
  Grid grid_;
  int rank_ = 0;
  /// Per boundary b (stages b, b+1): [2b] from b to b+1, [2b+1] back.
  std::vector<void *> channels_;
};

} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_NCCL_NCCLGROUPS_H
