//===- Comm.h - Collectives between the ranks of a run ------------*- C++
//-*-===//
//
// One process per rank (DESIGN.md B, "Launch"). A Comm connects this
// process to the others of its job: world rank and size, collectives over
// groups of the device grid (comm/Grid.h), and the error agreement that keeps
// a failure on one rank from leaving the others waiting in a collective.
//
// Implementations:
//  - LocalComm: one process, world size 1; every collective is the identity
//    (a gather or scatter over one rank copies).
//  - MpiComm (comm/mpi/, built with -DLLAMAC_ENABLE_MPI=ON): the ranks of
//    `mpirun -np N`; one MPI sub-communicator per set of grid axes, created
//    by setGrid().
//  - NcclComm (comm/nccl/NcclComm.h, with CUDA and NCCL): GPU jobs started
//    without mpirun (EnvLaunch below); host buffers staged through the GPU.
// createComm() picks MPI when the process was launched by mpirun, LocalComm
// otherwise; the driver asks exec::createLaunchComm() for an NcclComm when
// envLaunchRequested().
//
// Collectives are called by every rank of the group, in the same order, with
// the same count, dtype, reduction and axes (as with MPI; violating that
// hangs or corrupts). Errors: false + one line in `error`, never exceptions.
// A failed collective leaves the communicator unusable: the caller reports
// and ends the job (abort()).
//
// Usage (what the trainer does): every rank validates its input, then
//   if (comm.agreeOnFailure(!ok, error)) return 1;   // all ranks, same error
// before its first collective and again after any work only some ranks do
// (rank 0's metrics and checkpoints); then setGrid() once the plan's layout
// is known to match the world size.
//
// Asynchronous all-reduces (allReduceStart / allReduceWait, the gradient
// buckets of data parallelism): MpiComm runs them on a communication thread
// of its own (comm/CommThread.h) while the caller goes on computing; the
// other communicators do them at the wait (the default below).
//
// Point-to-point transfers (the pipeline stages' send / recv kernels, and
// the checkpoint transfer of the stages' parameters to rank 0): isend()
// posts a send and returns at once, waitSend() completes it, recv() blocks
// until the message has arrived. Messages between two ranks with the same
// tag arrive in the order they were sent (MPI's non-overtaking rule).
// MpiComm runs them on a communicator of their own; LocalComm (one rank)
// and the default implementation have none and return an error.
//
// Not thread-safe: call from one thread (the one that runs the executor).
// The communication thread is internal to MpiComm.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_COMM_H
#define LLAMAC_RUNTIME_COMM_COMM_H

#include "comm/Grid.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llamac {
namespace comm {

/// Element types of collective buffers.
enum class DType : uint8_t { F32, F64, I32, I64 };
/// Bytes of one element of `dtype`.
int64_t dtypeBytes(DType dtype);

/// The reduction of an all_reduce (the plan's `reduction` attribute).
enum class Reduction : uint8_t { Sum, Max, Min };
/// "sum", "max", "min".
const char *reductionName(Reduction reduction);
/// Parses "sum" | "max" | "min"; false for anything else.
bool parseReduction(const std::string &name, Reduction &out);

/// An all-reduce in flight: allReduceStart() gives it, allReduceWait()
/// completes it. kNoTicket stands for one that needs no communication.
using Ticket = uint64_t;
constexpr Ticket kNoTicket = 0;

/// A point-to-point send in flight: isend() gives it, waitSend() completes
/// it.
using SendTicket = uint64_t;
constexpr SendTicket kNoSend = 0;
/// Tags of point-to-point messages are in [0, kMaxTag] (the smallest
/// MPI_TAG_UB the MPI standard allows).
constexpr int kMaxTag = 32767;

/// When a started all-reduce ran (steady clock), for traces.
struct AsyncTiming {
  /// Whether it ran on the communication thread; false when allReduceWait
  /// did it on the caller's thread, or when there was nothing to
  /// communicate. The times below are set only when true.
  bool threaded = false;
  /// allReduceStart() posted it; the thread began and ended the reduction
  /// (begin - posted: the time it queued behind earlier ones).
  std::chrono::steady_clock::time_point posted, begin, end;
};

class Comm {
public:
  virtual ~Comm();

  /// This process's rank in the world, in [0, size()).
  virtual int rank() const = 0;
  /// The number of ranks of the job.
  virtual int size() const = 0;
  /// "local" or "mpi", for logs.
  virtual const char *name() const = 0;

  /// Sets the device grid the collectives' grid axes refer to, and builds
  /// the per-axes groups (MpiComm: one MPI_Comm_split per non-empty set of
  /// axes, all created here, once). Collective over the world. Fails when
  /// grid.size() != size(). May be called again for another grid.
  virtual bool setGrid(const Grid &grid, std::string &error) = 0;
  /// The grid of the last successful setGrid(); [1, 1, 1] before.
  const Grid &grid() const { return grid_; }
  /// Whether the grid covers the world (setGrid() succeeded, or size() == 1).
  bool hasGrid() const { return grid_.size() == size(); }

  /// In place: `data` (count elements of `dtype`) becomes the reduction of
  /// the buffers of every rank in this rank's group over `gridAxes` (the
  /// ranks sharing every grid coordinate except those on `gridAxes`).
  /// Every rank of the group gets the same values. count == 0 is a no-op;
  /// so is a group of one rank.
  /// Equivalent to: MPI_Allreduce(MPI_IN_PLACE, ...) on the group's
  /// communicator / ncclAllReduce with sendbuff == recvbuff.
  virtual bool allReduce(void *data, int64_t count, DType dtype,
                         Reduction reduction, const std::vector<int> &gridAxes,
                         std::string &error) = 0;

  /// Concatenation: `recv` (G * count elements, G = the number of ranks in
  /// this rank's group over `gridAxes`) receives the `send` buffer (count
  /// elements) of every rank of the group, the one of group index g
  /// (Grid::groupIndex) at elements [g * count, (g + 1) * count). Every
  /// rank of the group gets the same `recv`. `gridAxes` must be ascending
  /// (the block order is row-major over them); `send` and `recv` must not
  /// overlap. count == 0 is a no-op; a group of one rank copies.
  /// Equivalent to: MPI_Allgather on the group's communicator (whose rank
  /// order is the group index order) / ncclAllGather.
  virtual bool allGather(const void *send, void *recv, int64_t count,
                         DType dtype, const std::vector<int> &gridAxes,
                         std::string &error) = 0;

  /// `send` holds G blocks of `recvCount` elements (G as for allGather);
  /// `recv` (recvCount elements) becomes block g, g = this rank's group
  /// index, of the elementwise reduction of the `send` buffers of every
  /// rank of the group. `gridAxes` must be ascending; the buffers must not
  /// overlap. recvCount == 0 is a no-op; a group of one rank copies.
  /// Equivalent to: MPI_Reduce_scatter_block on the group's communicator /
  /// ncclReduceScatter.
  virtual bool reduceScatter(const void *send, void *recv, int64_t recvCount,
                             DType dtype, Reduction reduction,
                             const std::vector<int> &gridAxes,
                             std::string &error) = 0;

  /// Starts the in-place allReduce() of `data` (the same arguments and
  /// result) and returns at once with its `ticket`; allReduceWait(ticket)
  /// completes it. Until then `data` must be neither read nor written.
  /// Started all-reduces run one at a time in the order they were started,
  /// so every rank of a group starts them in the same order (as for any
  /// collective); they never interleave with the synchronous collectives,
  /// which may be called meanwhile. A group of one rank or count == 0 gives
  /// kNoTicket.
  ///  - MpiComm with MPI_THREAD_MULTIPLE: a communication thread runs them
  ///    on communicators of their own, overlapping the caller's work.
  ///  - Otherwise (this default: LocalComm, MPI without threads, test
  ///    communicators): the request is recorded and allReduceWait() runs
  ///    allReduce() for it, after every earlier request still pending.
  /// Equivalent to: MPI_Iallreduce / ncclAllReduce on a communication
  /// stream.
  virtual bool allReduceStart(void *data, int64_t count, DType dtype,
                              Reduction reduction,
                              const std::vector<int> &gridAxes, Ticket &ticket,
                              std::string &error);
  /// Blocks until the all-reduce of `ticket` is complete (kNoTicket: at
  /// once). Every ticket is waited for exactly once; `timing` (may be null)
  /// says when it ran. False with `error` when it failed or the ticket is
  /// unknown; a failed reduction leaves the communicator unusable.
  /// Equivalent to: MPI_Wait / cudaStreamWaitEvent on the communication
  /// stream.
  virtual bool allReduceWait(Ticket ticket, AsyncTiming *timing,
                             std::string &error);
  /// Whether started all-reduces overlap the caller's work (run on a
  /// communication thread), for logs.
  virtual bool overlapsAllReduce() const { return false; }

  /// Posts the send of `bytes` bytes at `data` to world rank `peer` with
  /// `tag` (in [0, kMaxTag]) and returns at once with its `ticket`, without
  /// waiting for the receiver. `data` must stay unchanged until
  /// waitSend(ticket). The message matches the recv() of `peer` with this
  /// rank as its peer and the same tag; its size must be the receiver's.
  /// `peer` is another rank (not this one). bytes == 0 sends an empty
  /// message. The default (LocalComm, test communicators): an error.
  /// Equivalent to: MPI_Isend / ncclSend on a communication stream.
  virtual bool isend(const void *data, int64_t bytes, int peer, int tag,
                     SendTicket &ticket, std::string &error);
  /// Blocks until the send of `ticket` is complete (its buffer may be
  /// reused; the receiver may not have it yet). Every ticket is waited for
  /// exactly once; kNoSend returns at once. False with `error` when the
  /// send failed or the ticket is unknown.
  /// Equivalent to: MPI_Wait.
  virtual bool waitSend(SendTicket ticket, std::string &error);
  /// Blocks until the message from world rank `peer` with `tag` has been
  /// received into `data` (`bytes` bytes). A message of another size is an
  /// error ("expected N bytes, got M"), after which the communicator is
  /// unusable (the job ends). The default: an error.
  /// Equivalent to: MPI_Recv + MPI_Get_count / ncclRecv.
  virtual bool recv(void *data, int64_t bytes, int peer, int tag,
                    std::string &error);
  /// isend() then waitSend(): returns once `data` may be reused.
  bool send(const void *data, int64_t bytes, int peer, int tag,
            std::string &error);
  /// Whether this communicator has point-to-point transfers.
  virtual bool hasPointToPoint() const { return false; }

  /// This rank's place in its group over `mask`: its group index and the
  /// group's size (pure arithmetic on the grid; Grid::groupIndex).
  /// Precondition: hasGrid().
  struct GroupPosition {
    int index = 0; ///< In [0, size): the block this rank holds or sends.
    int size = 1;  ///< G: the number of ranks (and blocks) of the group.
  };
  GroupPosition groupPosition(AxisMask mask) const {
    return {grid_.groupIndex(rank(), mask), grid_.groupSize(mask)};
  }

  /// Returns when every rank of the world has called it.
  /// Equivalent to: MPI_Barrier(MPI_COMM_WORLD).
  virtual bool barrier(std::string &error) = 0;

  /// Copies `bytes` bytes at `data` on rank `root` to `data` on every rank.
  /// Meant for small buffers (paths, flags, messages).
  /// Equivalent to: MPI_Bcast / ncclBroadcast over the world.
  virtual bool broadcast(void *data, int64_t bytes, int root,
                         std::string &error) = 0;

  /// Error agreement. Every rank calls it with whether it failed (and its
  /// message in `error`); returns true on every rank when any rank failed,
  /// and then `error` is, on every rank, the message of the lowest failing
  /// rank, prefixed "rank R: " unless every rank failed (a shared cause,
  /// such as a plan for another world size, then reads the same everywhere).
  /// Returns false, leaving `error` alone, when no rank failed.
  /// Equivalent to: MPI_Allgather of the flags, then MPI_Bcast of the
  /// message from the lowest failing rank.
  /// NOTE: if the agreement itself fails (MPI is broken), it returns true
  /// with that error; the ranks cannot be assumed to agree any more.
  virtual bool agreeOnFailure(bool failed, std::string &error) = 0;

  /// Ends every process of the job with exit code `code` (after printing
  /// `message` to stderr, prefixed by this rank). For errors after which
  /// the ranks cannot agree (a failed collective).
  /// Equivalent to: MPI_Abort(MPI_COMM_WORLD, code).
  [[noreturn]] virtual void abort(const std::string &message, int code) = 0;

protected:
  /// The argument checks every allGather / reduceScatter makes: `gridAxes`
  /// a valid ascending list (its mask in `mask`), count >= 0 and buffers
  /// when count > 0, `sendBytes` and `recvBytes` at `send` and `recv` not
  /// overlapping. On failure `error` starts with `what` ("all_gather").
  static bool checkGatherArguments(const char *what, const void *send,
                                   int64_t sendBytes, const void *recv,
                                   int64_t recvBytes, int64_t count,
                                   const std::vector<int> &gridAxes,
                                   AxisMask &mask, std::string &error);

  /// That setGrid() succeeded; else `error` says `what` came before it.
  bool checkGridSet(const char *what, std::string &error) const;
  /// A gather's or scatter's ascending `gridAxes` (their mask in `mask`),
  /// and that there is a grid; `what` prefixes the error.
  bool checkGroup(const char *what, const std::vector<int> &gridAxes,
                  AxisMask &mask, std::string &error) const;

  /// agreeOnFailure() once every rank's flag is known (`flags`, in rank
  /// order, non-zero: failed): the lowest failing rank broadcasts its
  /// message (`error`) to all. Returns whether any failed.
  bool agreeGivenFlags(const std::vector<int> &flags, std::string &error);

  /// The argument checks of isend() and recv(): `peer` another rank of the
  /// world, `tag` in [0, kMaxTag], bytes >= 0 and a buffer when bytes > 0.
  /// On failure `error` starts with `what` ("send").
  bool checkPointToPoint(const char *what, const void *data, int64_t bytes,
                         int peer, int tag, std::string &error) const;

  /// Checks allReduce()'s arguments (`what` prefixes the error) and
  /// returns the mask of `gridAxes`.
  static bool checkAllReduceArguments(const char *what, const void *data,
                                      int64_t count,
                                      const std::vector<int> &gridAxes,
                                      AxisMask &mask, std::string &error);

  /// What every allReduceStart() checks first: the arguments and that a
  /// grid is set. Sets `mask`, and `trivial` when there is nothing to
  /// communicate (count 0, or a group of one rank).
  bool checkAllReduceStart(void *data, int64_t count,
                           const std::vector<int> &gridAxes, AxisMask &mask,
                           bool &trivial, std::string &error) const;

  Grid grid_;

private:
  /// The default allReduceStart(): requests waiting for their
  /// allReduceWait(), in ticket order.
  struct Deferred {
    Ticket ticket;
    void *data;
    int64_t count;
    DType dtype;
    Reduction reduction;
    std::vector<int> gridAxes;
    bool done;
  };
  std::vector<Deferred> deferred_;
  Ticket nextTicket_ = kNoTicket + 1;
};

/// One process alone: rank 0 of 1. Collectives check their arguments and
/// leave the data as it is (a reduction over one rank is the identity).
class LocalComm final : public Comm {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char *name() const override { return "local"; }
  bool setGrid(const Grid &grid, std::string &error) override;
  bool allReduce(void *data, int64_t count, DType dtype, Reduction reduction,
                 const std::vector<int> &gridAxes, std::string &error) override;
  bool allGather(const void *send, void *recv, int64_t count, DType dtype,
                 const std::vector<int> &gridAxes, std::string &error) override;
  bool reduceScatter(const void *send, void *recv, int64_t recvCount,
                     DType dtype, Reduction reduction,
                     const std::vector<int> &gridAxes,
                     std::string &error) override;
  bool barrier(std::string &error) override;
  bool broadcast(void *data, int64_t bytes, int root,
                 std::string &error) override;
  bool agreeOnFailure(bool failed, std::string &error) override;
  [[noreturn]] void abort(const std::string &message, int code) override;
};

/// Whether this process was started by mpirun (OpenMPI sets
/// OMPI_COMM_WORLD_SIZE, PMIx launchers PMIX_RANK). Only then is MPI
/// initialised: a singleton MPI_Init outside mpirun needs extra environment
/// when run as root.
bool launchedByMpirun();
/// Whether this build has the MPI communicator (LLAMAC_ENABLE_MPI).
bool mpiAvailable();

/// A launch without mpirun, one process per GPU, where NCCL connects the
/// ranks (comm/nccl/NcclComm.h): the rank, world size and node-local rank
/// from LLAMAC_RANK, LLAMAC_WORLD_SIZE, LLAMAC_LOCAL_RANK (or torchrun's
/// RANK, WORLD_SIZE, LOCAL_RANK; the local rank defaults to the rank), and
/// NCCL_COMM_ID (host:port where rank 0 listens for NCCL's bootstrap).
struct EnvLaunch {
  int rank = 0, size = 1, localRank = 0;
  std::string commId;
};
/// Whether the environment asks for one: LLAMAC_WORLD_SIZE is set, or
/// WORLD_SIZE is and mpirun did not start this process.
bool envLaunchRequested();
/// Reads and checks it; false with `error` naming the variable at fault.
bool readEnvLaunch(EnvLaunch &launch, std::string &error);

/// The communicator of this process: MPI (MPI_Init_thread; MPI_Finalize when
/// it is destroyed) when launchedByMpirun(), LocalComm otherwise. nullptr
/// with `error` when MPI cannot be initialised, or when mpirun started
/// several ranks but this build has no MPI (each would think it is alone).
/// Create one per process and keep it for the process's life.
std::unique_ptr<Comm> createComm(std::string &error);

} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_COMM_H
