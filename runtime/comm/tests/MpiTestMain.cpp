//===- MpiTestMain.cpp - main() of the MPI test executables
//----------------===//
#include "comm/tests/MpiTestEnv.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace {
llamac::comm::Comm *gComm = nullptr;
} // namespace

llamac::comm::Comm &llamac::comm::test::testComm() { return *gComm; }

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  std::string error;
  std::unique_ptr<llamac::comm::Comm> comm = llamac::comm::createComm(error);
  if (!comm) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  gComm = comm.get();
  std::printf("rank %d of %d (%s)\n", comm->rank(), comm->size(), comm->name());
  std::fflush(stdout);
  int rc = RUN_ALL_TESTS();
  gComm = nullptr;
  comm.reset(); // MPI_Finalize
  return rc;
}
