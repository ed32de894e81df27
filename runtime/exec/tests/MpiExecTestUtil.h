//===- MpiExecTestUtil.h - Shared pieces of the MPI exec tests -*- C++ -*-===//
//
// What MpiTrainerTest.cpp and MpiTensorParallelTest.cpp (one binary,
// llamac-mpi-exec-tests, run under mpirun) both need: skipping without the
// right world size, a directory shared by the ranks, rank-0-only work,
// metrics files (irregular token streams: BigramRun.h).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TESTS_MPIEXECTESTUTIL_H
#define LLAMAC_RUNTIME_EXEC_TESTS_MPIEXECTESTUTIL_H

#include "comm/tests/MpiTestEnv.h"
#include "exec/tests/BigramRun.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace llamac {
namespace exec {
namespace test {

using llamac::comm::test::testComm;

#define NEED_RANKS(n)                                                          \
  do {                                                                         \
    if (testComm().size() != (n))                                              \
      GTEST_SKIP() << "needs mpirun -np " << (n) << ", world size is "         \
                   << testComm().size();                                       \
  } while (0)

/// A directory rank 0 creates and every rank uses; removed by rank 0 after
/// every rank is done with it.
struct SharedDir {
  std::string path;
  SharedDir() {
    char buf[256] = {};
    if (testComm().rank() == 0) {
      char tmpl[] = "/tmp/llamac-mpi-test-XXXXXX";
      std::strncpy(buf, mkdtemp(tmpl), sizeof buf - 1);
    }
    std::string error;
    EXPECT_TRUE(testComm().broadcast(buf, sizeof buf, 0, error)) << error;
    path = buf;
  }
  ~SharedDir() {
    std::string error;
    EXPECT_TRUE(testComm().barrier(error)) << error;
    if (testComm().rank() == 0) {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  }
  std::string file(const std::string &name) const { return path + "/" + name; }
};

/// Rank 0 runs `write`; then every rank waits for it.
template <typename F> void onRankZero(F write) {
  if (testComm().rank() == 0)
    write();
  std::string error;
  EXPECT_TRUE(testComm().barrier(error)) << error;
}

inline std::vector<nlohmann::json> readMetrics(const std::string &path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    rows.push_back(nlohmann::json::parse(line));
  return rows;
}

} // namespace test
} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TESTS_MPIEXECTESTUTIL_H
