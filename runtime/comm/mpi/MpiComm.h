//===- MpiComm.h - The MPI communicator ---------------------------*- C++
//-*-===//
//
// Comm over the ranks of `mpirun -np N` (comm/Comm.h for the semantics).
// Built only with -DLLAMAC_ENABLE_MPI=ON; this header includes nothing from
// MPI, so its users need no MPI include path.
//
//  - Creation: MPI_Init_thread(MPI_THREAD_FUNNELED) unless MPI is already
//    initialised; the world is a duplicate of MPI_COMM_WORLD with
//    MPI_ERRORS_RETURN, so MPI errors come back as messages instead of
//    killing the job.
//  - setGrid(): GridComm, one MPI_Comm_split per non-empty set of grid axes
//    (7 of them, in the same order on every rank; color and key from
//    Grid::groupSplit), so an all_reduce never creates a communicator.
//    The key (the world rank) makes each group communicator's rank order
//    the group index order that allGather / reduceScatter blocks follow.
//  - Destruction: frees the communicators and calls MPI_Finalize when this
//    object called MPI_Init.
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
