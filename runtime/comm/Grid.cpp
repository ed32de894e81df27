//===- Grid.cpp - The device grid and its rank groups
//----------------------===//
#include "comm/Grid.h"

namespace llamac {
namespace comm {

int Grid::dim(int axis) const {
  switch (axis) {
  case kPipelineAxis:
    return pp;
  case kDataAxis:
    return dp;
  case kTensorAxis:
    return tp;
  default:
    return 1;
  }
}

std::array<int, kGridAxes> Grid::coords(int rank) const {
  return {rank / (tp * dp), (rank / tp) % dp, rank % tp};
}

int Grid::rankAt(const std::array<int, kGridAxes> &c) const {
  return (c[kPipelineAxis] * dp + c[kDataAxis]) * tp + c[kTensorAxis];
}

int Grid::groupSize(AxisMask mask) const {
  int n = 1;
  for (int a = 0; a < kGridAxes; ++a)
    if (mask & (1u << a))
      n *= dim(a);
  return n;
}

GroupSplit Grid::groupSplit(int rank, AxisMask mask) const {
  std::array<int, kGridAxes> c = coords(rank);
  for (int a = 0; a < kGridAxes; ++a)
    if (mask & (1u << a))
      c[a] = 0;
  return {rankAt(c), rank};
}

std::vector<int> Grid::groupRanks(int rank, AxisMask mask) const {
  std::vector<int> ranks;
  const int color = groupSplit(rank, mask).color;
  for (int r = 0; r < size(); ++r)
    if (groupSplit(r, mask).color == color)
      ranks.push_back(r);
  return ranks;
}

int Grid::groupIndex(int rank, AxisMask mask) const {
  const std::array<int, kGridAxes> c = coords(rank);
  int index = 0;
  for (int a = 0; a < kGridAxes; ++a)
    if (mask & (1u << a))
      index = index * dim(a) + c[a];
  return index;
}

std::string Grid::toString() const {
  return "dp=" + std::to_string(dp) + " tp=" + std::to_string(tp) +
         " pp=" + std::to_string(pp);
}

namespace {

template <typename T>
bool maskOf(const T *axes, size_t count, AxisMask &mask, std::string &why) {
  auto list = [&] {
    std::string s = "[";
    for (size_t i = 0; i < count; ++i)
      s += (i ? ", " : "") + std::to_string(axes[i]);
    return s + "]";
  };
  if (count == 0) {
    why = "[] is empty, expected at least one axis (0 = pp, 1 = dp, "
          "2 = tp)";
    return false;
  }
  AxisMask m = 0;
  for (size_t i = 0; i < count; ++i) {
    const int64_t a = axes[i];
    if (a < 0 || a >= kGridAxes) {
      why = list() + ": axis " + std::to_string(a) +
            " is out of range [0, 3) (0 = pp, 1 = dp, 2 = tp)";
      return false;
    }
    if (m & (1u << a)) {
      why = list() + ": axis " + std::to_string(a) + " is repeated";
      return false;
    }
    m |= 1u << a;
  }
  mask = m;
  return true;
}

template <typename T>
bool ascendingMaskOf(const T *axes, size_t count, AxisMask &mask,
                     std::string &why) {
  if (!maskOf(axes, count, mask, why))
    return false;
  for (size_t i = 1; i < count; ++i) {
    if (axes[i] < axes[i - 1]) {
      std::string s = "[";
      for (size_t j = 0; j < count; ++j)
        s += (j ? ", " : "") + std::to_string(axes[j]);
      why = s + "]: axes must be ascending (blocks are numbered row-major "
                "over the axes in grid order)";
      return false;
    }
  }
  return true;
}

} // namespace

bool ascendingGridAxesMask(const int64_t *axes, size_t count, AxisMask &mask,
                           std::string &why) {
  return ascendingMaskOf(axes, count, mask, why);
}

bool ascendingGridAxesMask(const std::vector<int> &axes, AxisMask &mask,
                           std::string &why) {
  return ascendingMaskOf(axes.data(), axes.size(), mask, why);
}

bool gridAxesMask(const int64_t *axes, size_t count, AxisMask &mask,
                  std::string &why) {
  return maskOf(axes, count, mask, why);
}

bool gridAxesMask(const std::vector<int> &axes, AxisMask &mask,
                  std::string &why) {
  return maskOf(axes.data(), axes.size(), mask, why);
}

} // namespace comm
} // namespace llamac
