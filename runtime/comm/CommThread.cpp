//===- CommThread.cpp - A thread that runs collectives in order -----------===//
#include "comm/CommThread.h"

#include <utility>

namespace llamac {
namespace comm {

using Clock = std::chrono::steady_clock;

CommThread::CommThread(Runner run)
    : run_(std::move(run)), thread_([this] { loop(); }) {}

CommThread::~CommThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  posted_.notify_all();
  thread_.join();
}

Ticket CommThread::post(const Work &work) {
  Ticket ticket;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Item item;
    item.work = work;
    item.posted = Clock::now();
    items_.push_back(std::move(item));
    ticket = next_++;
    ++inFlight_;
  }
  posted_.notify_one();
  return ticket;
}

bool CommThread::wait(Ticket ticket, AsyncTiming *timing, std::string &error) {
  if (timing)
    *timing = AsyncTiming();
  std::unique_lock<std::mutex> lock(mutex_);
  if (ticket < first_ || ticket >= next_ || items_[ticket - first_].collected) {
    error = "wait for all_reduce ticket " + std::to_string(ticket) +
            ", which is not in flight (never started, or already waited for)";
    return false;
  }
  Item &item = items_[ticket - first_];
  finished_.wait(lock, [&] { return item.done; });
  item.collected = true;
  --inFlight_;
  if (timing) {
    timing->threaded = true;
    timing->posted = item.posted;
    timing->begin = item.begin;
    timing->end = item.end;
  }
  const bool ok = item.ok;
  if (!ok)
    error = std::move(item.error);
  // Waits may come in any order; the queue shrinks from its oldest end.
  while (!items_.empty() && items_.front().collected) {
    items_.pop_front();
    ++first_;
  }
  return ok;
}

size_t CommThread::inFlight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return inFlight_;
}

void CommThread::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    posted_.wait(lock, [&] { return stop_ || running_ < next_; });
    if (stop_)
      return;
    // Not collected (so not popped) until it is done: the reference stays
    // valid while the caller posts (deque::push_back keeps references).
    Item &item = items_[running_ - first_];
    lock.unlock();
    std::string why;
    item.begin = Clock::now();
    const bool ok = run_(item.work, why);
    item.end = Clock::now();
    lock.lock();
    item.ok = ok;
    item.error = std::move(why);
    item.done = true;
    ++running_;
    finished_.notify_all();
  }
}

} // namespace comm
} // namespace llamac
