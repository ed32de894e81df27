//===- SimulatedComm.h - One rank of a job, in one process ------*- C++ -*-===//
//
// Tests of tensor-parallel plans without mpirun: a communicator that stands
// for rank `rank` of a job on `grid` and answers every collective as if
// each other member of the group held this rank's values plus
// kPeerOffset * (its group index - this rank's). So the values a gathered
// block or a reduction holds name the member they came from, and the
// expected results have closed forms:
//   all_gather:     block m = x + kPeerOffset * (m - me)
//   reduce_scatter: sum_m (x[block me] + kPeerOffset * (m - me)) for sum
//   all_reduce:     G * x + kPeerOffset * (G (G - 1) / 2 - G me) for sum
// (max and min take the member m = G - 1 and m = 0). Float only.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TESTS_SIMULATEDCOMM_H
#define LLAMAC_RUNTIME_EXEC_TESTS_SIMULATEDCOMM_H

#include "comm/Comm.h"

#include <cstdlib>
#include <string>
#include <vector>

namespace llamac {
namespace exec {
namespace test {

class SimulatedComm final : public comm::Comm {
public:
  static constexpr float kPeerOffset = 1000.0f;

  SimulatedComm(const comm::Grid &grid, int rank) : rank_(rank) {
    grid_ = grid;
  }
  /// "all_gather 24 [2]", one per collective call, in order.
  std::vector<std::string> calls;

  int rank() const override { return rank_; }
  int size() const override { return grid_.size(); }
  const char *name() const override { return "simulated"; }
  bool setGrid(const comm::Grid &grid, std::string &) override {
    grid_ = grid;
    return true;
  }
  bool allReduce(void *data, int64_t count, comm::DType,
                 comm::Reduction reduction, const std::vector<int> &axes,
                 std::string &error) override {
    comm::AxisMask mask;
    if (!comm::gridAxesMask(axes, mask, error))
      return false;
    record("all_reduce", count, axes);
    const GroupPosition pos = groupPosition(mask);
    float *x = static_cast<float *>(data);
    for (int64_t i = 0; i < count; ++i)
      x[i] = reduce(reduction, x[i], pos);
    return true;
  }
  bool allGather(const void *send, void *recv, int64_t count, comm::DType,
                 const std::vector<int> &axes, std::string &error) override {
    comm::AxisMask mask;
    if (!comm::ascendingGridAxesMask(axes, mask, error))
      return false;
    record("all_gather", count, axes);
    const GroupPosition pos = groupPosition(mask);
    const float *x = static_cast<const float *>(send);
    float *y = static_cast<float *>(recv);
    for (int m = 0; m < pos.size; ++m)
      for (int64_t i = 0; i < count; ++i)
        y[m * count + i] = x[i] + kPeerOffset * float(m - pos.index);
    return true;
  }
  bool reduceScatter(const void *send, void *recv, int64_t count, comm::DType,
                     comm::Reduction reduction, const std::vector<int> &axes,
                     std::string &error) override {
    comm::AxisMask mask;
    if (!comm::ascendingGridAxesMask(axes, mask, error))
      return false;
    record("reduce_scatter", count, axes);
    const GroupPosition pos = groupPosition(mask);
    const float *x = static_cast<const float *>(send) + pos.index * count;
    float *y = static_cast<float *>(recv);
    for (int64_t i = 0; i < count; ++i)
      y[i] = reduce(reduction, x[i], pos);
    return true;
  }
  bool barrier(std::string &) override { return true; }
  bool broadcast(void *, int64_t, int, std::string &) override { return true; }
  bool agreeOnFailure(bool failed, std::string &) override { return failed; }
  [[noreturn]] void abort(const std::string &, int code) override {
    std::exit(code);
  }

private:
  /// The reduction over the group of x as member m holds it.
  static float reduce(comm::Reduction reduction, float x,
                      const GroupPosition &pos) {
    auto member = [&](int m) { return x + kPeerOffset * float(m - pos.index); };
    switch (reduction) {
    case comm::Reduction::Sum: {
      float sum = 0.0f;
      for (int m = 0; m < pos.size; ++m)
        sum += member(m);
      return sum;
    }
    case comm::Reduction::Max:
      return member(pos.size - 1);
    case comm::Reduction::Min:
      return member(0);
    }
    return x;
  }
  void record(const char *what, int64_t count, const std::vector<int> &axes) {
    std::string s = std::string(what) + " " + std::to_string(count) + " [";
    for (size_t i = 0; i < axes.size(); ++i)
      s += (i ? ", " : "") + std::to_string(axes[i]);
    calls.push_back(s + "]");
  }

  int rank_;
};

} // namespace test
} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TESTS_SIMULATEDCOMM_H
