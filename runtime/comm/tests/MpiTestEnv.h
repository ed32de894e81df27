//===- MpiTestEnv.h - The communicator of the MPI test executables -*- C++
//-*-===//
//
// The MPI test executables (llamac_add_mpi_test) run every test on every rank
// of `mpirun -np N`. MpiTestMain.cpp creates the process's communicator once
// (createComm: MPI under mpirun, LocalComm otherwise) and finalizes it after
// the tests; tests reach it through testComm().
//
// Tests call collectives in the same order on every rank, so they use
// EXPECT_* (never an ASSERT_* or a return that one rank takes alone) between
// collectives: a rank that skipped one would leave the others waiting.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_TESTS_MPITESTENV_H
#define LLAMAC_RUNTIME_COMM_TESTS_MPITESTENV_H

#include "comm/Comm.h"

namespace llamac {
namespace comm {
namespace test {

/// The communicator of this process.
Comm &testComm();

} // namespace test
} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_TESTS_MPITESTENV_H
