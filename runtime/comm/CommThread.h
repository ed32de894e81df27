//===- CommThread.h - A thread that runs collectives in order ---*- C++ -*-===//
//
// The communication thread behind Comm::allReduceStart / allReduceWait
// (MpiComm with MPI_THREAD_MULTIPLE): the caller posts work items and goes
// on computing; the thread runs them one at a time, in posting order, with
// a blocking call (MpiComm: MPI_Allreduce on communicators that only this
// thread uses); wait() blocks until a given item is done. So an all-reduce
// posted in the middle of the backward pass overlaps the kernels after it.
//
// Ownership: the thread starts in the constructor and is joined by the
// destructor, which lets the item in progress finish and drops the queued
// ones (their buffers may be gone). The buffers of a posted item must stay
// valid until its wait() returns.
//
// post() and wait() are called from one thread (the executor's); the
// runner is called on the communication thread only. No MPI here: the
// queue is unit-tested on its own (tests/CommThreadTest.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_COMMTHREAD_H
#define LLAMAC_RUNTIME_COMM_COMMTHREAD_H

#include "comm/Comm.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace llamac {
namespace comm {

class CommThread {
public:
  /// One posted all-reduce (Comm::allReduce's arguments, the axes as a
  /// mask).
  struct Work {
    void *data = nullptr;
    int64_t count = 0;
    DType dtype = DType::F32;
    Reduction reduction = Reduction::Sum;
    AxisMask mask = 0;
  };
  /// Runs one item on the communication thread; false with `error`.
  using Runner = std::function<bool(const Work &work, std::string &error)>;

  /// Starts the thread; `run` does every item.
  explicit CommThread(Runner run);
  /// Finishes the item in progress, drops the queued ones, joins.
  ~CommThread();
  CommThread(const CommThread &) = delete;
  CommThread &operator=(const CommThread &) = delete;

  /// Queues `work` behind the items posted before; returns its ticket
  /// (never kNoTicket). Does not block on the thread's work.
  Ticket post(const Work &work);
  /// Blocks until item `ticket` is done; false with its error, or when the
  /// ticket is not in flight (never posted, or already waited for).
  /// `timing` (may be null) gets when it was posted and ran.
  bool wait(Ticket ticket, AsyncTiming *timing, std::string &error);
  /// Items posted and not yet waited for.
  size_t inFlight() const;

private:
  struct Item {
    Work work;
    bool done = false, collected = false, ok = true;
    std::string error;
    std::chrono::steady_clock::time_point posted, begin, end;
  };
  void loop();

  Runner run_;
  mutable std::mutex mutex_;
  std::condition_variable posted_, finished_;
  /// Items of tickets [first_, next_), oldest first; the front is removed
  /// once waited for. A deque: the thread keeps a reference to the item it
  /// runs while the caller posts more.
  std::deque<Item> items_;
  Ticket first_ = kNoTicket + 1, next_ = kNoTicket + 1;
  Ticket running_ = kNoTicket + 1; ///< The next ticket the thread runs.
  size_t inFlight_ = 0;
  bool stop_ = false;
  std::thread thread_; ///< Last: started once the members above exist.
};

} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_COMMTHREAD_H
