//===- CommThreadTest.cpp - The communication thread, started reduces -----===//
//
// CommThread without MPI (a runner that records and transforms the items),
// LocalComm's started all-reduces (no-ops), and Comm's default
// allReduceStart / allReduceWait (the reductions at the waits, in start
// order) through a communicator that records its allReduce calls.
//
//===----------------------------------------------------------------------===//
#include "comm/CommThread.h"
#include "comm/Comm.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

using namespace llamac::comm;

namespace {

/// A runner that doubles the floats of each item and records its order.
struct Doubling {
  std::vector<int64_t> order; ///< Counts of the items run, in run order.
  std::thread::id thread;
  bool run(const CommThread::Work &w, std::string &) {
    thread = std::this_thread::get_id();
    float *x = static_cast<float *>(w.data);
    for (int64_t i = 0; i < w.count; ++i)
      x[i] *= 2.0f;
    order.push_back(w.count);
    return true;
  }
};

} // namespace

TEST(CommThread, RunsItemsInPostingOrderOnItsOwnThread) {
  Doubling d;
  std::vector<std::vector<float>> bufs = {{1, 2}, {3, 4, 5}, {6}};
  std::vector<Ticket> tickets;
  {
    CommThread t(
        [&](const CommThread::Work &w, std::string &e) { return d.run(w, e); });
    for (auto &b : bufs)
      tickets.push_back(
          t.post({b.data(), int64_t(b.size()), DType::F32, Reduction::Sum, 2}));
    EXPECT_EQ(t.inFlight(), 3u);
    std::string error;
    // Waited for out of order: each wait returns once its item is done.
    for (int i : {2, 0, 1}) {
      AsyncTiming timing;
      EXPECT_TRUE(t.wait(tickets[i], &timing, error)) << error;
      EXPECT_TRUE(timing.threaded);
      EXPECT_LE(timing.posted, timing.begin);
      EXPECT_LE(timing.begin, timing.end);
    }
    EXPECT_EQ(t.inFlight(), 0u);
  }
  EXPECT_NE(tickets[0], kNoTicket);
  EXPECT_LT(tickets[0], tickets[1]);
  EXPECT_LT(tickets[1], tickets[2]);
  EXPECT_EQ(d.order, (std::vector<int64_t>{2, 3, 1}));
  EXPECT_NE(d.thread, std::this_thread::get_id());
  EXPECT_EQ(bufs, (std::vector<std::vector<float>>{{2, 4}, {6, 8, 10}, {12}}));
}

TEST(CommThread, OverlapsTheCaller) {
  // The item runs while the caller is busy: it starts before post()'s
  // caller waits, and the caller keeps running meanwhile.
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  CommThread t([&](const CommThread::Work &, std::string &) {
    started = true;
    while (!release)
      std::this_thread::yield();
    return true;
  });
  float x = 1.0f;
  Ticket ticket = t.post({&x, 1, DType::F32, Reduction::Sum, 2});
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!started && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_TRUE(started.load()); // Running before anyone waits for it.
  release = true;
  std::string error;
  EXPECT_TRUE(t.wait(ticket, nullptr, error)) << error;
}

TEST(CommThread, ReportsTheRunnersErrorAndUnknownTickets) {
  CommThread t([](const CommThread::Work &w, std::string &error) {
    if (w.count == 13) {
      error = "MPI_Allreduce failed: unlucky";
      return false;
    }
    return true;
  });
  float x[13] = {};
  Ticket bad = t.post({x, 13, DType::F32, Reduction::Sum, 2});
  Ticket good = t.post({x, 1, DType::F32, Reduction::Sum, 2});
  std::string error;
  EXPECT_FALSE(t.wait(bad, nullptr, error));
  EXPECT_EQ(error, "MPI_Allreduce failed: unlucky");
  EXPECT_TRUE(t.wait(good, nullptr, error)) << error;
  EXPECT_FALSE(t.wait(good, nullptr, error));
  EXPECT_EQ(error, "wait for all_reduce ticket " + std::to_string(good) +
                       ", which is not in flight (never started, or already "
                       "waited for)");
  EXPECT_FALSE(t.wait(good + 5, nullptr, error));
}

TEST(CommThread, DestructionDropsWhatIsStillQueued) {
  // Items never waited for: the destructor lets the one in progress finish
  // and joins without running the rest forever.
  std::atomic<int> ran{0};
  {
    CommThread t([&](const CommThread::Work &, std::string &) {
      ++ran;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return true;
    });
    float x = 0.0f;
    for (int i = 0; i < 50; ++i)
      t.post({&x, 1, DType::F32, Reduction::Sum, 2});
  }
  EXPECT_LT(ran.load(), 50);
}

TEST(LocalComm, StartedAllReducesAreNoOps) {
  LocalComm c;
  std::vector<float> x = {1.0f, 2.0f};
  std::string error;
  Ticket ticket = 99;
  EXPECT_TRUE(c.allReduceStart(x.data(), 2, DType::F32, Reduction::Sum, {1},
                               ticket, error))
      << error;
  EXPECT_EQ(ticket, kNoTicket);
  AsyncTiming timing;
  timing.threaded = true;
  EXPECT_TRUE(c.allReduceWait(ticket, &timing, error)) << error;
  EXPECT_FALSE(timing.threaded);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_FALSE(c.overlapsAllReduce());
  EXPECT_FALSE(c.allReduceStart(x.data(), 2, DType::F32, Reduction::Sum, {3},
                                ticket, error));
  EXPECT_EQ(error, "all_reduce over grid axes [3]: axis 3 is out of range "
                   "[0, 3) (0 = pp, 1 = dp, 2 = tp)");
}

namespace {

/// Rank 0 of a [1, 2, 1] job whose all_reduce adds 10 * (call number) and
/// records the calls: enough to see when and in which order Comm's default
/// runs started reductions.
class CountingComm final : public Comm {
public:
  CountingComm() { grid_ = Grid{1, 2, 1}; }
  std::vector<int64_t> calls; ///< The count of each allReduce, in order.
  int rank() const override { return 0; }
  int size() const override { return 2; }
  const char *name() const override { return "counting"; }
  bool setGrid(const Grid &grid, std::string &) override {
    grid_ = grid;
    return true;
  }
  bool allReduce(void *data, int64_t count, DType, Reduction,
                 const std::vector<int> &, std::string &) override {
    calls.push_back(count);
    float *x = static_cast<float *>(data);
    for (int64_t i = 0; i < count; ++i)
      x[i] += 10.0f * float(calls.size());
    return true;
  }
  bool allGather(const void *, void *, int64_t, DType, const std::vector<int> &,
                 std::string &) override {
    return true;
  }
  bool reduceScatter(const void *, void *, int64_t, DType, Reduction,
                     const std::vector<int> &, std::string &) override {
    return true;
  }
  bool barrier(std::string &) override { return true; }
  bool broadcast(void *, int64_t, int, std::string &) override { return true; }
  bool agreeOnFailure(bool failed, std::string &) override { return failed; }
  [[noreturn]] void abort(const std::string &, int code) override {
    std::exit(code);
  }
};

} // namespace

TEST(Comm, DefaultStartedAllReducesRunAtTheWaitInStartOrder) {
  CountingComm c;
  float a[2] = {0, 0}, b[3] = {0, 0, 0}, one[1] = {0};
  std::string error;
  Ticket ta, tb, tOne;
  ASSERT_TRUE(
      c.allReduceStart(a, 2, DType::F32, Reduction::Sum, {1}, ta, error));
  ASSERT_TRUE(
      c.allReduceStart(b, 3, DType::F32, Reduction::Sum, {1}, tb, error));
  // A group of one rank (tp = 1): nothing to communicate.
  ASSERT_TRUE(
      c.allReduceStart(one, 1, DType::F32, Reduction::Sum, {2}, tOne, error));
  EXPECT_EQ(tOne, kNoTicket);
  EXPECT_TRUE(c.calls.empty()); // Nothing runs at the start.
  // Waiting for the second runs the first, then the second.
  AsyncTiming timing;
  EXPECT_TRUE(c.allReduceWait(tb, &timing, error)) << error;
  EXPECT_FALSE(timing.threaded);
  EXPECT_EQ(c.calls, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a[0], 10.0f);
  EXPECT_EQ(b[2], 20.0f);
  EXPECT_TRUE(c.allReduceWait(ta, nullptr, error)) << error;
  EXPECT_EQ(c.calls.size(), 2u); // Already done.
  EXPECT_TRUE(c.allReduceWait(tOne, nullptr, error)) << error;
  EXPECT_FALSE(c.allReduceWait(ta, nullptr, error));
  EXPECT_EQ(error, "wait for all_reduce ticket " + std::to_string(ta) +
                       ", which is not in flight (never started, or already "
                       "waited for)");
}
