//===- LocalCommTest.cpp - The single-process communicator
//-----------------===//
#include "comm/Comm.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

using namespace llamac::comm;

TEST(LocalComm, IsRankZeroOfOneWithATrivialGrid) {
  LocalComm c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_STREQ(c.name(), "local");
  EXPECT_TRUE(c.hasGrid());
  std::string error;
  EXPECT_TRUE(c.setGrid(Grid{1, 1, 1}, error)) << error;
  EXPECT_FALSE(c.setGrid(Grid{1, 2, 2}, error));
  EXPECT_EQ(error, "device grid dp=2 tp=2 pp=1 needs 4 ranks, this process "
                   "is alone");
  EXPECT_EQ(c.grid(), (Grid{1, 1, 1}));
}

TEST(LocalComm, AllReduceOverOneRankIsTheIdentity) {
  LocalComm c;
  std::string error;
  std::vector<float> x = {1.5f, -2.0f, 3.25f};
  for (Reduction r : {Reduction::Sum, Reduction::Max, Reduction::Min}) {
    EXPECT_TRUE(c.allReduce(x.data(), 3, DType::F32, r, {1}, error)) << error;
    EXPECT_EQ(x, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  }
  std::vector<int64_t> y = {7, 8};
  EXPECT_TRUE(
      c.allReduce(y.data(), 2, DType::I64, Reduction::Sum, {0, 1, 2}, error))
      << error;
  EXPECT_EQ(y, (std::vector<int64_t>{7, 8}));
  EXPECT_TRUE(c.allReduce(nullptr, 0, DType::F32, Reduction::Sum, {2}, error));
}

TEST(LocalComm, BadArgumentsAreErrors) {
  LocalComm c;
  std::string error;
  float x = 1;
  EXPECT_FALSE(c.allReduce(&x, 1, DType::F32, Reduction::Sum, {}, error));
  EXPECT_NE(error.find("all_reduce over grid axes [] is empty"),
            std::string::npos)
      << error;
  EXPECT_FALSE(c.allReduce(&x, 1, DType::F32, Reduction::Sum, {3}, error));
  EXPECT_NE(error.find("axis 3 is out of range"), std::string::npos) << error;
  EXPECT_FALSE(c.allReduce(&x, -1, DType::F32, Reduction::Sum, {1}, error));
  EXPECT_NE(error.find("all_reduce of -1 elements"), std::string::npos)
      << error;
  EXPECT_FALSE(c.broadcast(&x, 4, 1, error));
  EXPECT_NE(error.find("from rank 1, expected root 0 of 1"), std::string::npos)
      << error;
  EXPECT_TRUE(c.broadcast(&x, 4, 0, error)) << error;
  EXPECT_TRUE(c.barrier(error)) << error;
}

TEST(LocalComm, HasNoPointToPointTransfers) {
  LocalComm c;
  std::string error;
  float x = 1;
  SendTicket t = 7;
  EXPECT_FALSE(c.hasPointToPoint());
  EXPECT_FALSE(c.isend(&x, 4, 0, 0, t, error));
  EXPECT_EQ(t, kNoSend);
  EXPECT_EQ(error, "send of 4 bytes to rank 0 with tag 0: expected another "
                   "rank of the world [0, 1), not this rank 0");
  EXPECT_FALSE(c.recv(&x, 4, 1, 0, error));
  EXPECT_EQ(error, "recv of 4 bytes from rank 1 with tag 0: expected another "
                   "rank of the world [0, 1), not this rank 0");
  EXPECT_FALSE(c.send(&x, 4, 0, -1, error));
  EXPECT_TRUE(c.waitSend(kNoSend, error)) << error;
  EXPECT_FALSE(c.waitSend(3, error));
  EXPECT_EQ(error, "wait for send ticket 3, which is not in flight (never "
                   "started, or already waited for)");
}

TEST(LocalComm, GatherAndScatterOverOneRankCopy) {
  LocalComm c;
  std::string error;
  std::vector<float> x = {1.5f, -2.0f, 3.25f}, y(3, 0.0f), z(3, 0.0f);
  EXPECT_TRUE(c.allGather(x.data(), y.data(), 3, DType::F32, {2}, error))
      << error;
  EXPECT_EQ(y, x);
  EXPECT_TRUE(c.reduceScatter(x.data(), z.data(), 3, DType::F32, Reduction::Max,
                              {1, 2}, error))
      << error;
  EXPECT_EQ(z, x);
  std::vector<int64_t> a = {7, 8}, b(2, 0);
  EXPECT_TRUE(c.allGather(a.data(), b.data(), 2, DType::I64, {0, 1, 2}, error))
      << error;
  EXPECT_EQ(b, a);
  EXPECT_TRUE(c.allGather(nullptr, nullptr, 0, DType::F32, {2}, error));
  const Comm::GroupPosition pos = c.groupPosition(1u << kTensorAxis);
  EXPECT_EQ(pos.index, 0);
  EXPECT_EQ(pos.size, 1);
}

TEST(LocalComm, GatherAndScatterArgumentErrors) {
  LocalComm c;
  std::string error;
  float x[4] = {1, 2, 3, 4}, y[4] = {};
  EXPECT_FALSE(c.allGather(x, y, 2, DType::F32, {2, 1}, error));
  EXPECT_EQ(error, "all_gather over grid axes [2, 1]: axes must be ascending "
                   "(blocks are numbered row-major over the axes in grid "
                   "order)");
  EXPECT_FALSE(c.reduceScatter(x, y, 2, DType::F32, Reduction::Sum, {}, error));
  EXPECT_NE(error.find("reduce_scatter over grid axes [] is empty"),
            std::string::npos)
      << error;
  EXPECT_FALSE(c.allGather(x, y, -1, DType::F32, {2}, error));
  EXPECT_EQ(error, "all_gather of -1 elements, expected count >= 0 and two "
                   "buffers");
  EXPECT_FALSE(c.allGather(x, nullptr, 2, DType::F32, {2}, error));
  EXPECT_NE(error.find("with a null buffer"), std::string::npos) << error;
  EXPECT_FALSE(c.allGather(x, x + 1, 2, DType::F32, {2}, error));
  EXPECT_EQ(error, "all_gather: the send buffer (8 bytes) and the receive "
                   "buffer (8 bytes) overlap");
  EXPECT_TRUE(c.allGather(x, x + 2, 2, DType::F32, {2}, error)) << error;
  EXPECT_EQ(x[2], 1.0f);
  EXPECT_EQ(x[3], 2.0f);
}

TEST(LocalComm, AgreementReportsOwnFailureUnchanged) {
  LocalComm c;
  std::string error = "untouched";
  EXPECT_FALSE(c.agreeOnFailure(false, error));
  EXPECT_EQ(error, "untouched");
  error = "plan.llx: bad";
  EXPECT_TRUE(c.agreeOnFailure(true, error));
  EXPECT_EQ(error, "plan.llx: bad");
}

TEST(Comm, ReductionNamesAndDtypeSizes) {
  for (Reduction r : {Reduction::Sum, Reduction::Max, Reduction::Min}) {
    Reduction parsed;
    ASSERT_TRUE(parseReduction(reductionName(r), parsed));
    EXPECT_EQ(parsed, r);
  }
  Reduction parsed;
  EXPECT_FALSE(parseReduction("avg", parsed));
  EXPECT_FALSE(parseReduction("SUM", parsed));
  EXPECT_EQ(dtypeBytes(DType::F32), 4);
  EXPECT_EQ(dtypeBytes(DType::I32), 4);
  EXPECT_EQ(dtypeBytes(DType::F64), 8);
  EXPECT_EQ(dtypeBytes(DType::I64), 8);
}

TEST(Comm, OutsideMpirunTheCommunicatorIsLocal) {
  if (launchedByMpirun())
    GTEST_SKIP() << "running under mpirun";
  std::string error;
  std::unique_ptr<Comm> c = createComm(error);
  ASSERT_TRUE(c) << error;
  EXPECT_STREQ(c->name(), "local");
  EXPECT_EQ(c->size(), 1);
}

TEST(Comm, MpirunWithoutMpiBuildIsAnError) {
  if (mpiAvailable() || launchedByMpirun())
    GTEST_SKIP() << "needs a build without MPI, outside mpirun";
  // As mpirun -np 3 would start us: each rank would think it is alone.
  setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
  std::string error;
  std::unique_ptr<Comm> c = createComm(error);
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
  std::unique_ptr<Comm> single = createComm(error);
  unsetenv("OMPI_COMM_WORLD_SIZE");
  EXPECT_FALSE(c);
  EXPECT_EQ(error, "launched by mpirun with 3 ranks, but this llamac was "
                   "built without MPI (configure with -DLLAMAC_ENABLE_MPI=ON)");
  ASSERT_TRUE(single);
  EXPECT_STREQ(single->name(), "local");
}
