//===- MpiComm.h - The MPI communicator ---------------------------*- C++
//-*-===//
//
// Comm over the ranks of `mpirun -np N` (comm/Comm.h for the semantics).
// Built only with -DLLAMAC_ENABLE_MPI=ON; this header includes nothing from
// MPI, so its users need no MPI include path.
//
//  - Creation: MPI_Init_thread(MPI_THREAD_MULTIPLE) unless MPI is already
//    initialised (then MPI_Query_thread says what it provides); the world
//    is a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so MPI errors
//    come back as messages instead of killing the job.
//  - setGrid(): GridComm, one MPI_Comm_split per non-empty set of grid axes
//    (7 of them, in the same order on every rank; color and key from
//    Grid::groupSplit), so an all_reduce never creates a communicator.
//    The key (the world rank) makes each group communicator's rank order
//    the group index order that allGather / reduceScatter blocks follow.
//    With MPI_THREAD_MULTIPLE, an MPI_Comm_dup of each for the
//    communication thread.
//  - allReduceStart / allReduceWait: a communication thread (CommThread,
//    started by the first start) runs the started all-reduces in order,
//    each a blocking MPI_Allreduce on the duplicated communicator of its
//    group, while the main thread goes on (its collectives use the other
//    communicators, so the two never match each other's calls). Blocking
//    calls on a thread rather than MPI_Iallreduce: Open MPI 4 has no
//    asynchronous progress, so a non-blocking collective would only
//    advance at the next MPI call of the main thread, i.e. at the wait.
//    Without MPI_THREAD_MULTIPLE: the reduction runs at the wait (Comm's
//    default), and rank 0 prints a one-line warning once.
//  - isend / waitSend / recv (pipeline stages, checkpoint transfers): on a
//    duplicate of the world of their own. isend is MPI_Isend with its
//    requests kept per ticket until waitSend (MPI_Waitall); recv probes
//    first (MPI_Probe + MPI_Get_count), so a message of another size is an
//    error naming both sizes rather than a truncation. Messages beyond 2^30
//    bytes travel as several, in order. NOTE: without asynchronous progress
//    a posted send advances inside this rank's later MPI calls (its next
//    recv or collective, at the latest the executor's wait at the end of a
//    step), never by itself.
//  - Destruction: joins the communication thread, frees the communicators
//    and calls MPI_Finalize when this object called MPI_Init.
//
// NOTE: MPI allows one MPI_Init per process: create one MpiComm (through
// createComm) and keep it for the process's life.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_MPI_MPICOMM_H
#define LLAMAC_RUNTIME_COMM_MPI_MPICOMM_H

#include "comm/Comm.h"

#include <memory>
#include <string>

namespace llamac {
namespace comm {

/// Initialises MPI and returns the world communicator; nullptr with `error`
/// when MPI fails or was already finalised.
std::unique_ptr<Comm> createMpiComm(std::string &error);

} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_MPI_MPICOMM_H
