//===- Grid.h - The device grid and its rank groups ---------------*- C++
//-*-===//
//
// The device grid of a plan is [pp, dp, tp] (axis 0 = pp, 1 = dp, 2 = tp)
// and the rank of grid point (p, d, t) is (p * dp + d) * tp + t (DESIGN.md
// A4): tensor-parallel ranks are adjacent, pipeline stages outermost.
//
// A collective over a set of grid axes (an all_reduce's `grid_axes`) runs in
// the group of ranks that share every coordinate except those on the axes:
// reducing over {dp} on a [1, 2, 2] grid pairs ranks {0, 2} and {1, 3};
// over {dp, tp} all four ranks form one group. groupSplit() gives each rank
// the MPI_Comm_split arguments of its group, groupIndex() its place in the
// group (the block it holds of a sharded tensor, where its data lands in an
// all_gather); everything here is pure arithmetic (no MPI), so it is
// unit-tested on its own.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_COMM_GRID_H
#define LLAMAC_RUNTIME_COMM_GRID_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace llamac {
namespace comm {

/// Number of grid axes: pp, dp, tp.
constexpr int kGridAxes = 3;
constexpr int kPipelineAxis = 0, kDataAxis = 1, kTensorAxis = 2;

/// A set of grid axes as bits (bit a = axis a); 0 is the empty set.
using AxisMask = unsigned;
/// Every non-empty set of axes is a mask in [1, kNumAxisMasks).
constexpr AxisMask kNumAxisMasks = 1u << kGridAxes;

/// The arguments of MPI_Comm_split for one rank and one set of axes.
struct GroupSplit {
  int color; ///< Same for exactly the ranks of one group; >= 0.
  int key;   ///< Orders the ranks within the group (the world rank).
};

struct Grid {
  int pp = 1, dp = 1, tp = 1;

  /// pp * dp * tp: the world size the grid needs.
  int size() const { return pp * dp * tp; }
  /// The extent of `axis` (0 = pp, 1 = dp, 2 = tp).
  int dim(int axis) const;
  /// {pp_idx, dp_idx, tp_idx} of `rank`. Precondition: 0 <= rank < size().
  std::array<int, kGridAxes> coords(int rank) const;
  /// The rank at grid point `c` (A4).
  int rankAt(const std::array<int, kGridAxes> &c) const;
  /// The data-parallel index of `rank`: (rank / tp) % dp.
  int dpRank(int rank) const { return coords(rank)[kDataAxis]; }

  /// Ranks in one group over `mask`: the product of those axes' extents.
  int groupSize(AxisMask mask) const;
  /// The group of `rank` over `mask`: color = the rank of the group's grid
  /// point whose coordinates on the reduced axes are 0 (so it encodes the
  /// coordinates on the other axes), key = `rank`.
  GroupSplit groupSplit(int rank, AxisMask mask) const;
  /// The world ranks of `rank`'s group over `mask`, ascending.
  std::vector<int> groupRanks(int rank, AxisMask mask) const;
  /// The group index of `rank` over `mask`: the row-major index of its
  /// coordinates on the axes of `mask` taken in ascending axis order (pp
  /// slowest, tp fastest), in [0, groupSize(mask)). Because the rank order
  /// (A4) is row-major over (pp, dp, tp) too, this is also the rank's
  /// position in groupRanks(), i.e. its rank in the group's communicator
  /// (MPI_Comm_split with key = world rank). Shards and gathered blocks are
  /// numbered by it.
  int groupIndex(int rank, AxisMask mask) const;

  /// "dp=2 tp=2 pp=1" (the order of the command-line flags).
  std::string toString() const;

  bool operator==(const Grid &o) const {
    return pp == o.pp && dp == o.dp && tp == o.tp;
  }
  bool operator!=(const Grid &o) const { return !(*this == o); }
};

/// Checks a list of grid axes — at least one, each in [0, 3), none repeated —
/// and returns them as a mask. On failure `why` shows the list and the
/// offending axis, for the caller to prefix: "[1, 3]: axis 3 is out of range
/// [0, 3) (0 = pp, 1 = dp, 2 = tp)".
bool gridAxesMask(const int64_t *axes, size_t count, AxisMask &mask,
                  std::string &why);
bool gridAxesMask(const std::vector<int> &axes, AxisMask &mask,
                  std::string &why);
/// gridAxesMask() for lists whose order matters (the blocks of an
/// all_gather, reduce_scatter or shard are in group-index order): the axes
/// must also be ascending, "[2, 1]: axes must be ascending".
bool ascendingGridAxesMask(const int64_t *axes, size_t count, AxisMask &mask,
                           std::string &why);
bool ascendingGridAxesMask(const std::vector<int> &axes, AxisMask &mask,
                           std::string &why);

} // namespace comm
} // namespace llamac

#endif // LLAMAC_RUNTIME_COMM_GRID_H
