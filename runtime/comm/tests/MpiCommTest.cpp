//===- MpiCommTest.cpp - Collectives across 4 MPI ranks
//--------------------===//
//
// Run by test/e2e/mpi-allreduce.test (and ctest) as
//   mpirun -np 4 llamac-mpi-comm-tests
// Every rank runs every test. Rank r contributes values that encode r, and
// each result (all_reduce, and the blocks of all_gather and reduce_scatter
// in group-index order) is compared with its closed form, written out per
// group:
// on the [pp, dp, tp] = [1, 2, 2] grid rank r is (d, t) = (r / 2, r % 2), so
// the dp groups are {0, 2} and {1, 3} and the tp groups {0, 1} and {2, 3}.
// Without mpirun (one rank) the tests skip.
//
//===----------------------------------------------------------------------===//
#include "comm/tests/MpiTestEnv.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace llamac::comm;
using llamac::comm::test::testComm;

namespace {

#define NEED_FOUR_RANKS()                                                      \
  do {                                                                         \
    if (testComm().size() != 4)                                                \
      GTEST_SKIP() << "needs mpirun -np 4, world size is "                     \
                   << testComm().size();                                       \
  } while (0)

/// Element i of rank r: (r + 1) * 1000 + i.
template <typename T> std::vector<T> contribution(int r, int n) {
  std::vector<T> x(n);
  for (int i = 0; i < n; ++i)
    x[i] = static_cast<T>((r + 1) * 1000 + i);
  return x;
}

/// "" when x[i] == expected(i) for every i, else the first difference.
/// (Not ASSERT in a loop: a rank leaving the test early would leave the
/// others waiting in the next collective.)
template <typename T, typename F>
std::string mismatch(const std::vector<T> &x, F expected) {
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != static_cast<T>(expected(static_cast<int>(i))))
      return "rank " + std::to_string(testComm().rank()) + " element " +
             std::to_string(i) + " = " + std::to_string(x[i]) + ", expected " +
             std::to_string(static_cast<T>(expected(static_cast<int>(i))));
  return "";
}

void setGrid(const Grid &grid) {
  std::string error;
  EXPECT_TRUE(testComm().setGrid(grid, error)) << error;
}

} // namespace

TEST(MpiComm, WorldAndGrid) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  EXPECT_STREQ(c.name(), "mpi");
  EXPECT_GE(c.rank(), 0);
  EXPECT_LT(c.rank(), 4);
  std::string error;
  EXPECT_FALSE(c.setGrid(Grid{1, 2, 1}, error));
  EXPECT_EQ(error, "device grid dp=2 tp=1 pp=1 needs 2 ranks, the world has 4");
  setGrid(Grid{1, 2, 2});
  EXPECT_TRUE(c.hasGrid());
  EXPECT_EQ(c.grid(), (Grid{1, 2, 2}));
}

TEST(MpiComm, SumOverDpAndTpGroupsOfATwoByTwoGrid) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 2, 2});
  const int r = c.rank(), t = r % 2, d = r / 2, n = 1000;
  std::string error;

  // dp groups {t, t + 2}: ((t + 1) + (t + 3)) * 1000 + 2i.
  std::vector<float> x = contribution<float>(r, n);
  EXPECT_TRUE(c.allReduce(x.data(), n, DType::F32, Reduction::Sum, {1}, error))
      << error;
  EXPECT_EQ(
      mismatch(x, [&](int i) { return float((2 * t + 4) * 1000 + 2 * i); }),
      "");
  // tp groups {2d, 2d + 1}: ((2d + 1) + (2d + 2)) * 1000 + 2i.
  x = contribution<float>(r, n);
  EXPECT_TRUE(c.allReduce(x.data(), n, DType::F32, Reduction::Sum, {2}, error))
      << error;
  EXPECT_EQ(
      mismatch(x, [&](int i) { return float((4 * d + 3) * 1000 + 2 * i); }),
      "");
  // dp and tp: all four ranks, (1 + 2 + 3 + 4) * 1000 + 4i.
  x = contribution<float>(r, n);
  EXPECT_TRUE(
      c.allReduce(x.data(), n, DType::F32, Reduction::Sum, {2, 1}, error))
      << error;
  EXPECT_EQ(mismatch(x, [&](int i) { return float(10000 + 4 * i); }), "");
  // pp has extent 1: each rank alone, the values stay.
  x = contribution<float>(r, n);
  EXPECT_TRUE(c.allReduce(x.data(), n, DType::F32, Reduction::Sum, {0}, error))
      << error;
  EXPECT_EQ(x, contribution<float>(r, n));
}

TEST(MpiComm, MaxMinAndOtherDtypes) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 2, 2});
  const int r = c.rank(), t = r % 2, d = r / 2, n = 257;
  std::string error;

  std::vector<float> x = contribution<float>(r, n);
  EXPECT_TRUE(c.allReduce(x.data(), n, DType::F32, Reduction::Max, {1}, error))
      << error;
  // The larger of (t + 1) and (t + 3).
  EXPECT_EQ(mismatch(x, [&](int i) { return float((t + 3) * 1000 + i); }), "");
  x = contribution<float>(r, n);
  EXPECT_TRUE(c.allReduce(x.data(), n, DType::F32, Reduction::Min, {2}, error))
      << error;
  // The smaller of (2d + 1) and (2d + 2).
  EXPECT_EQ(mismatch(x, [&](int i) { return float((2 * d + 1) * 1000 + i); }),
            "");

  std::vector<double> f64 = contribution<double>(r, n);
  EXPECT_TRUE(
      c.allReduce(f64.data(), n, DType::F64, Reduction::Sum, {1}, error))
      << error;
  EXPECT_EQ(
      mismatch(f64, [&](int i) { return double((2 * t + 4) * 1000 + 2 * i); }),
      "");
  std::vector<int32_t> i32 = contribution<int32_t>(r, n);
  EXPECT_TRUE(
      c.allReduce(i32.data(), n, DType::I32, Reduction::Sum, {2}, error))
      << error;
  EXPECT_EQ(mismatch(i32, [&](int i) { return (4 * d + 3) * 1000 + 2 * i; }),
            "");
  // Beyond 2^31 per element: the sum must not wrap.
  std::vector<int64_t> i64(n, (int64_t(1) << 40) * (r + 1));
  EXPECT_TRUE(
      c.allReduce(i64.data(), n, DType::I64, Reduction::Sum, {1, 2}, error))
      << error;
  EXPECT_EQ(mismatch(i64, [](int) { return (int64_t(1) << 40) * 10; }), "");
}

TEST(MpiComm, LargeBufferAndRegriddedPipelineAxis) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  const int r = c.rank();
  std::string error;
  // [pp, dp, tp] = [2, 2, 1]: rank r is (p, d) = (r / 2, r % 2); pp groups
  // {0, 2} and {1, 3}.
  setGrid(Grid{2, 2, 1});
  const int n = 1 << 20; // several segments for the MPI algorithms
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i)
    x[i] = float((r + 1) * (i % 1024));
  EXPECT_TRUE(c.allReduce(x.data(), n, DType::F32, Reduction::Sum, {0}, error))
      << error;
  const int members = (r % 2 + 1) + (r % 2 + 3);
  EXPECT_EQ(mismatch(x, [&](int i) { return float(members * (i % 1024)); }),
            "");
  setGrid(Grid{1, 2, 2});
}

TEST(MpiComm, AllGatherPutsBlocksInGroupIndexOrder) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 2, 2});
  const int r = c.rank(), t = r % 2, d = r / 2, n = 300;
  std::string error;
  const std::vector<float> x = contribution<float>(r, n);
  // Block b, element i of the result: the contribution of the group member
  // with group index b, (member + 1) * 1000 + i.
  auto gathered = [&](const std::vector<int> &axes, int members, auto member) {
    std::vector<float> y(members * n, -1.0f);
    EXPECT_TRUE(c.allGather(x.data(), y.data(), n, DType::F32, axes, error))
        << error;
    return mismatch(
        y, [&](int e) { return float((member(e / n) + 1) * 1000 + e % n); });
  };
  // tp groups {2d, 2d + 1}: member b is rank 2d + b.
  EXPECT_EQ(gathered({2}, 2, [&](int b) { return 2 * d + b; }), "");
  // dp groups {t, t + 2}: member b is rank t + 2b.
  EXPECT_EQ(gathered({1}, 2, [&](int b) { return t + 2 * b; }), "");
  // dp and tp: the whole world, member b is rank b.
  EXPECT_EQ(gathered({1, 2}, 4, [&](int b) { return b; }), "");
  // pp has extent 1: each rank alone.
  EXPECT_EQ(gathered({0}, 1, [&](int) { return r; }), "");

  // Another dtype, and a [2, 2, 1] grid: rank r = (p, d) = (r / 2, r % 2).
  setGrid(Grid{2, 2, 1});
  std::vector<int64_t> big(2, (int64_t(1) << 40) + r), all(8, -1);
  EXPECT_TRUE(c.allGather(big.data(), all.data(), 2, DType::I64, {0, 1}, error))
      << error;
  EXPECT_EQ(mismatch(all, [](int e) { return (int64_t(1) << 40) + e / 2; }),
            "");
  std::vector<double> f64 = {double(r)}, pair(2, -1.0);
  // pp groups {d, d + 2}: member b is rank d + 2b, with d = r % 2 here.
  EXPECT_TRUE(c.allGather(f64.data(), pair.data(), 1, DType::F64, {0}, error))
      << error;
  EXPECT_EQ(mismatch(pair, [&](int b) { return double(r % 2 + 2 * b); }), "");
  setGrid(Grid{1, 2, 2});
}

TEST(MpiComm, ReduceScatterGivesEachRankItsBlockOfTheReduction) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 2, 2});
  const int r = c.rank(), t = r % 2, d = r / 2, n = 250;
  std::string error;
  // Rank r sends G blocks; element i of block b is (r + 1) * 1000 +
  // b * 100 + i. Rank r receives block (its group index).
  auto send = [&](int members) {
    std::vector<float> x(members * n);
    for (int e = 0; e < members * n; ++e)
      x[e] = float((r + 1) * 1000 + (e / n) * 100 + e % n);
    return x;
  };
  std::vector<float> y(n, -1.0f);
  // tp {2d, 2d + 1}, index t: sum of ranks 2d, 2d + 1.
  EXPECT_TRUE(c.reduceScatter(send(2).data(), y.data(), n, DType::F32,
                              Reduction::Sum, {2}, error))
      << error;
  EXPECT_EQ(mismatch(y,
                     [&](int i) {
                       return float((4 * d + 3) * 1000 + 2 * (t * 100 + i));
                     }),
            "");
  // dp {t, t + 2}, index d: the larger is rank t + 2.
  EXPECT_TRUE(c.reduceScatter(send(2).data(), y.data(), n, DType::F32,
                              Reduction::Max, {1}, error))
      << error;
  EXPECT_EQ(
      mismatch(y, [&](int i) { return float((t + 3) * 1000 + d * 100 + i); }),
      "");
  // tp, min: rank 2d.
  EXPECT_TRUE(c.reduceScatter(send(2).data(), y.data(), n, DType::F32,
                              Reduction::Min, {2}, error))
      << error;
  EXPECT_EQ(
      mismatch(y,
               [&](int i) { return float((2 * d + 1) * 1000 + t * 100 + i); }),
      "");
  // The whole world, index r: (1 + 2 + 3 + 4) * 1000 + 4 * (r * 100 + i).
  EXPECT_TRUE(c.reduceScatter(send(4).data(), y.data(), n, DType::F32,
                              Reduction::Sum, {1, 2}, error))
      << error;
  EXPECT_EQ(
      mismatch(y, [&](int i) { return float(10000 + 4 * (r * 100 + i)); }), "");
  // Alone over pp: a copy of block 0.
  EXPECT_TRUE(c.reduceScatter(send(1).data(), y.data(), n, DType::F32,
                              Reduction::Sum, {0}, error))
      << error;
  EXPECT_EQ(mismatch(y, [&](int i) { return float((r + 1) * 1000 + i); }), "");
}

TEST(MpiComm, GatherAndScatterArgumentErrorsComeBeforeAnyTraffic) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 2, 2});
  std::string error;
  float x[8] = {}, y[8] = {};
  // Every rank fails alike, and no rank waits in a collective.
  EXPECT_FALSE(c.allGather(x, y, 2, DType::F32, {2, 1}, error));
  EXPECT_NE(error.find("all_gather over grid axes [2, 1]: axes must be "
                       "ascending"),
            std::string::npos)
      << error;
  EXPECT_FALSE(
      c.reduceScatter(x, x + 1, 2, DType::F32, Reduction::Sum, {2}, error));
  EXPECT_EQ(error, "reduce_scatter: the send buffer (16 bytes) and the "
                   "receive buffer (8 bytes) overlap");
  EXPECT_TRUE(c.barrier(error)) << error;
}

TEST(MpiComm, BroadcastAndBarrier) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  std::string error;
  char text[32] = {};
  if (c.rank() == 2)
    std::strcpy(text, "/tmp/from-rank-2");
  EXPECT_TRUE(c.broadcast(text, sizeof text, 2, error)) << error;
  EXPECT_STREQ(text, "/tmp/from-rank-2");
  EXPECT_TRUE(c.barrier(error)) << error;
  EXPECT_FALSE(c.broadcast(text, sizeof text, 4, error));
  EXPECT_NE(error.find("expected a root in [0, 4)"), std::string::npos)
      << error;
}

TEST(MpiComm, EveryRankLearnsTheFirstFailure) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  const int r = c.rank();
  std::string error = "unchanged";
  EXPECT_FALSE(c.agreeOnFailure(false, error));
  EXPECT_EQ(error, "unchanged");

  error = r == 2 ? "data.tok: missing" : "";
  EXPECT_TRUE(c.agreeOnFailure(r == 2, error));
  EXPECT_EQ(error, "rank 2: data.tok: missing");

  error = "failure on rank " + std::to_string(r);
  EXPECT_TRUE(c.agreeOnFailure(r == 1 || r == 3, error));
  EXPECT_EQ(error, "rank 1: failure on rank 1");

  // Every rank failed: a shared cause, reported without a rank.
  error = "plan needs 2 ranks (rank " + std::to_string(r) + ")";
  EXPECT_TRUE(c.agreeOnFailure(true, error));
  EXPECT_EQ(error, "plan needs 2 ranks (rank 0)");

  // An empty message travels too.
  error.clear();
  EXPECT_TRUE(c.agreeOnFailure(r == 0, error));
  EXPECT_EQ(error, "rank 0: ");
}

TEST(MpiComm, StartedAllReducesRunOnTheCommunicationThread) {
  // Buckets over dp and over tp in flight together, a synchronous all_reduce
  // over dp and the world's barrier while they are, waits out of order:
  // every result is its closed form, and (with MPI_THREAD_MULTIPLE, which
  // Open MPI provides) the reductions ran on the communication thread.
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 2, 2});
  const int r = c.rank(), t = r % 2, d = r / 2;
  const int n = 3000; // several eager/rendezvous fragments
  std::vector<float> overDp = contribution<float>(r, n);
  std::vector<float> overTp = contribution<float>(r, 7);
  std::vector<float> sync = contribution<float>(r, 5);
  std::vector<float> small = contribution<float>(r, 1);
  std::string error;
  Ticket dp = kNoTicket, tp = kNoTicket, one = kNoTicket;
  EXPECT_TRUE(c.allReduceStart(overDp.data(), n, DType::F32, Reduction::Sum,
                               {1}, dp, error))
      << error;
  EXPECT_TRUE(c.allReduceStart(overTp.data(), 7, DType::F32, Reduction::Max,
                               {2}, tp, error))
      << error;
  // pp = 1: a group of one.
  EXPECT_TRUE(c.allReduceStart(small.data(), 1, DType::F32, Reduction::Sum, {0},
                               one, error))
      << error;
  EXPECT_NE(dp, kNoTicket);
  EXPECT_NE(tp, kNoTicket);
  EXPECT_EQ(one, kNoTicket);
  EXPECT_TRUE(
      c.allReduce(sync.data(), 5, DType::F32, Reduction::Sum, {1}, error))
      << error;
  EXPECT_TRUE(c.barrier(error)) << error;
  AsyncTiming timing;
  EXPECT_TRUE(c.allReduceWait(tp, &timing, error)) << error;
  EXPECT_EQ(timing.threaded, c.overlapsAllReduce());
  EXPECT_TRUE(c.allReduceWait(dp, &timing, error)) << error;
  EXPECT_TRUE(c.allReduceWait(one, nullptr, error)) << error;
  EXPECT_TRUE(c.overlapsAllReduce()) << "MPI without MPI_THREAD_MULTIPLE";
  if (timing.threaded) {
    EXPECT_LE(timing.posted, timing.begin);
    EXPECT_LE(timing.begin, timing.end);
  }
  // dp groups {t, t + 2}: (t + 1 + t + 3) * 1000 + 2i; tp max: rank 2d + 1.
  EXPECT_EQ(mismatch(overDp, [&](int i) { return (2 * t + 4) * 1000 + 2 * i; }),
            "");
  EXPECT_EQ(mismatch(overTp, [&](int i) { return (2 * d + 2) * 1000 + i; }),
            "");
  EXPECT_EQ(mismatch(sync, [&](int i) { return (2 * t + 4) * 1000 + 2 * i; }),
            "");
  EXPECT_EQ(mismatch(small, [&](int) { return (r + 1) * 1000; }), "");
  // Unknown tickets fail on every rank alike.
  EXPECT_FALSE(c.allReduceWait(dp, nullptr, error));
}

TEST(MpiComm, ManyStartedAllReducesStayInOrder) {
  // 64 buckets of different sizes over all four ranks, started back to
  // back and waited for in reverse: the queue matches them in start order
  // on every rank.
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  setGrid(Grid{1, 4, 1});
  const int r = c.rank();
  std::vector<std::vector<float>> bufs;
  for (int b = 0; b < 64; ++b)
    bufs.push_back(std::vector<float>(1 + 37 * b, float(r + b)));
  std::vector<Ticket> tickets(bufs.size());
  std::string error;
  for (size_t b = 0; b < bufs.size(); ++b)
    EXPECT_TRUE(c.allReduceStart(bufs[b].data(), int64_t(bufs[b].size()),
                                 DType::F32, Reduction::Sum, {1}, tickets[b],
                                 error))
        << error;
  for (size_t b = bufs.size(); b-- > 0;)
    EXPECT_TRUE(c.allReduceWait(tickets[b], nullptr, error)) << error;
  for (size_t b = 0; b < bufs.size(); ++b)
    EXPECT_EQ(mismatch(bufs[b], [&](int) { return 6 + 4 * int(b); }), "")
        << "bucket " << b;
}

TEST(MpiComm, PointToPointRingWithTagsOutOfOrder) {
  // Rank r sends two messages to r + 1 (mod 4), tags 5 then 9, and
  // receives r - 1's in the other order: the sends do not wait for their
  // receiver, so this does not deadlock. Then an empty message.
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  EXPECT_TRUE(c.hasPointToPoint());
  const int r = c.rank(), next = (r + 1) % 4, prev = (r + 3) % 4;
  const std::vector<float> small = contribution<float>(r, 3);
  const std::vector<int32_t> large = contribution<int32_t>(r, 100000);
  std::string error;
  SendTicket first = kNoSend, second = kNoSend, empty = kNoSend;
  EXPECT_TRUE(c.isend(small.data(), 12, next, 5, first, error)) << error;
  EXPECT_TRUE(c.isend(large.data(), 400000, next, 9, second, error)) << error;
  EXPECT_NE(first, second);
  std::vector<int32_t> gotLarge(100000);
  std::vector<float> gotSmall(3);
  EXPECT_TRUE(c.recv(gotLarge.data(), 400000, prev, 9, error)) << error;
  EXPECT_TRUE(c.recv(gotSmall.data(), 12, prev, 5, error)) << error;
  EXPECT_EQ(mismatch(gotSmall, [&](int i) { return (prev + 1) * 1000 + i; }),
            "");
  EXPECT_EQ(mismatch(gotLarge, [&](int i) { return (prev + 1) * 1000 + i; }),
            "");
  EXPECT_TRUE(c.waitSend(second, error)) << error;
  EXPECT_TRUE(c.waitSend(first, error)) << error;
  EXPECT_TRUE(c.isend(nullptr, 0, prev, 0, empty, error)) << error;
  EXPECT_TRUE(c.recv(nullptr, 0, next, 0, error)) << error;
  EXPECT_TRUE(c.waitSend(empty, error)) << error;
  // A ticket is waited for once.
  EXPECT_FALSE(c.waitSend(first, error));
  EXPECT_NE(error.find("not in flight"), std::string::npos) << error;
  EXPECT_TRUE(c.waitSend(kNoSend, error)) << error;
  // The blocking form.
  const int64_t word = r;
  int64_t got = -1;
  if (r % 2 == 0) {
    EXPECT_TRUE(c.send(&word, 8, r + 1, 100, error)) << error;
  } else {
    EXPECT_TRUE(c.recv(&got, 8, r - 1, 100, error)) << error;
    EXPECT_EQ(got, r - 1);
  }
  EXPECT_TRUE(c.barrier(error)) << error;
}

TEST(MpiComm, ReceivingAnotherSizeIsAnError) {
  // Rank 0 sends 12 bytes to rank 1, which expects 16: an error naming
  // both sizes, with the message still there (it was only probed) for a
  // receive of the right size.
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  const int r = c.rank();
  std::string error;
  const float x[3] = {1.5f, 2.5f, 3.5f};
  if (r == 0) {
    EXPECT_TRUE(c.send(x, 12, 1, 3, error)) << error;
  } else if (r == 1) {
    float y[4] = {};
    EXPECT_FALSE(c.recv(y, 16, 0, 3, error));
    EXPECT_EQ(error, "recv from rank 0 with tag 3: expected 16 bytes, got a "
                     "message of 12 bytes (the sender's tensor has another "
                     "size)");
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_TRUE(c.recv(y, 12, 0, 3, error)) << error;
    EXPECT_EQ(y[2], 3.5f);
  }
  EXPECT_TRUE(c.barrier(error)) << error;
}

TEST(MpiComm, PointToPointArgumentErrorsComeBeforeAnyTraffic) {
  NEED_FOUR_RANKS();
  Comm &c = testComm();
  const int r = c.rank();
  std::string error;
  float x = 0;
  SendTicket t = kNoSend;
  EXPECT_FALSE(c.isend(&x, 4, r, 0, t, error));
  EXPECT_NE(error.find("send of 4 bytes to rank " + std::to_string(r) +
                       " with tag 0: expected another rank of the world [0, "
                       "4), not this rank"),
            std::string::npos)
      << error;
  EXPECT_EQ(t, kNoSend);
  EXPECT_FALSE(c.recv(&x, 4, 4, 0, error));
  EXPECT_NE(error.find("recv of 4 bytes from rank 4"), std::string::npos)
      << error;
  EXPECT_FALSE(c.isend(&x, 4, (r + 1) % 4, kMaxTag + 1, t, error));
  EXPECT_NE(error.find("expected a tag in [0, 32767]"), std::string::npos)
      << error;
  EXPECT_FALSE(c.recv(nullptr, 4, (r + 1) % 4, 0, error));
  EXPECT_NE(error.find("expected bytes >= 0 and a buffer"), std::string::npos)
      << error;
}
