//===- NcclComm.h - The host communicator of a launch without mpirun -*- C++ -*-===//
//
// `llamac run --device cuda` started once per GPU by a launcher other than
// mpirun (srun, a cluster scheduler, a shell loop): the environment names
// the rank, the world size and NCCL's bootstrap address (comm/Comm.h,
// EnvLaunch), and NCCL connects the ranks. NcclComm is the job's host
// communicator then: the trainer's collectives (error agreement,
// broadcasts, the checkpoints' gathers and stage transfers) go through the
// GPU, each host buffer staged in device memory, on a stream of its own.
// The device (backends/cuda/CudaDevice.cpp) splits its communicators from
// this one's (NcclGroups::connectFrom), not from a new bootstrap.
//
// Point-to-point transfers match in order between a pair of ranks (NCCL has
// no tags), and a send waits for its receiver before later work of this
// communicator runs: transfers between two ranks must go one way at a time
// (the checkpoint's stage transfers to rank 0 do).
//
// Built with CUDA and NCCL (LLAMAC_HAVE_NCCL); the CUDA simulator builds it
// over its shadow NCCL.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_NCCL_NCCLCOMM_H
#define LLAMAC_RUNTIME_COMM_NCCL_NCCLCOMM_H

#include "comm/Comm.h"

#include <memory>
#include <string>

namespace llamac {
namespace comm {

class NcclGroups;

/// The communicator of `launch` on CUDA device `device` (made current);
/// nullptr with `error` when NCCL cannot connect.
std::unique_ptr<Comm> createNcclComm(const EnvLaunch &launch, int device,
                                     std::string &error);

/// The NCCL communicators of `comm` when it is an NcclComm, else nullptr.
const NcclGroups *ncclGroupsOf(const Comm &comm);

} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_NCCL_NCCLCOMM_H
