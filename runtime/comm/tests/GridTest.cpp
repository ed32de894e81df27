//===- GridTest.cpp - Device grid coordinates and rank groups
//--------------===//
//
// The rank order of DESIGN.md A4 and the groups a collective over grid axes
// runs in, checked against tables written out by hand.
//
//===----------------------------------------------------------------------===//
#include "comm/Grid.h"

#include <gtest/gtest.h>

#include <set>

using namespace llamac::comm;

namespace {

constexpr AxisMask kPp = 1u << kPipelineAxis, kDp = 1u << kDataAxis,
                   kTp = 1u << kTensorAxis;

} // namespace

TEST(Grid, RankOrderIsPipelineOutermostTensorInnermost) {
  Grid g{/*pp=*/2, /*dp=*/3, /*tp=*/2};
  EXPECT_EQ(g.size(), 12);
  EXPECT_EQ(g.toString(), "dp=3 tp=2 pp=2");
  for (int p = 0; p < 2; ++p)
    for (int d = 0; d < 3; ++d)
      for (int t = 0; t < 2; ++t) {
        const int rank = (p * 3 + d) * 2 + t; // A4
        EXPECT_EQ(g.rankAt({p, d, t}), rank);
        std::array<int, kGridAxes> c = g.coords(rank);
        EXPECT_EQ(c[0], p);
        EXPECT_EQ(c[1], d);
        EXPECT_EQ(c[2], t);
        EXPECT_EQ(g.dpRank(rank), (rank / 2) % 3);
      }
}

TEST(Grid, SplitOfTwoByTwoDataTensorGrid) {
  // [pp, dp, tp] = [1, 2, 2]: ranks 0 (d0 t0), 1 (d0 t1), 2 (d1 t0),
  // 3 (d1 t1).
  Grid g{1, 2, 2};
  const int dpColor[4] = {0, 1, 0, 1}; // {0, 2} and {1, 3}
  const int tpColor[4] = {0, 0, 2, 2}; // {0, 1} and {2, 3}
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(g.groupSplit(r, kDp).color, dpColor[r]) << r;
    EXPECT_EQ(g.groupSplit(r, kTp).color, tpColor[r]) << r;
    EXPECT_EQ(g.groupSplit(r, kDp | kTp).color, 0) << r;
    EXPECT_EQ(g.groupSplit(r, kPp | kDp | kTp).color, 0) << r;
    EXPECT_EQ(g.groupSplit(r, kPp).color, r) << "pp = 1: alone";
    for (AxisMask m = 1; m < kNumAxisMasks; ++m)
      EXPECT_EQ(g.groupSplit(r, m).key, r);
  }
  EXPECT_EQ(g.groupRanks(3, kDp), (std::vector<int>{1, 3}));
  EXPECT_EQ(g.groupRanks(2, kTp), (std::vector<int>{2, 3}));
  EXPECT_EQ(g.groupRanks(1, kDp | kTp), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(g.groupRanks(1, kPp), (std::vector<int>{1}));
  EXPECT_EQ(g.groupSize(kDp), 2);
  EXPECT_EQ(g.groupSize(kPp), 1);
  EXPECT_EQ(g.groupSize(kDp | kTp), 4);
}

TEST(Grid, GroupsOfAThreeAxisGrid) {
  Grid g{2, 3, 2};
  // Rank 7 = (p1, d0, t1).
  EXPECT_EQ(g.groupRanks(7, kDp), (std::vector<int>{7, 9, 11}));
  EXPECT_EQ(g.groupRanks(7, kPp), (std::vector<int>{1, 7}));
  EXPECT_EQ(g.groupRanks(7, kTp), (std::vector<int>{6, 7}));
  EXPECT_EQ(g.groupRanks(7, kPp | kTp), (std::vector<int>{0, 1, 6, 7}));
  EXPECT_EQ(g.groupRanks(7, kDp | kTp), (std::vector<int>{6, 7, 8, 9, 10, 11}));
}

TEST(Grid, GroupsPartitionTheWorldByTheOtherCoordinates) {
  for (Grid g : {Grid{1, 1, 1}, Grid{1, 4, 1}, Grid{2, 2, 2}, Grid{3, 1, 2},
                 Grid{2, 3, 4}}) {
    for (AxisMask m = 1; m < kNumAxisMasks; ++m) {
      std::set<int> seen;
      std::set<int> colors;
      for (int r = 0; r < g.size(); ++r) {
        GroupSplit s = g.groupSplit(r, m);
        EXPECT_GE(s.color, 0);
        colors.insert(s.color);
        std::vector<int> group = g.groupRanks(r, m);
        EXPECT_EQ(static_cast<int>(group.size()), g.groupSize(m));
        for (int q : group) {
          // Same coordinates on every axis not reduced over.
          for (int a = 0; a < kGridAxes; ++a) {
            if (!(m & (1u << a))) {
              EXPECT_EQ(g.coords(q)[a], g.coords(r)[a]);
            }
          }
        }
        seen.insert(r);
      }
      EXPECT_EQ(static_cast<int>(seen.size()), g.size());
      EXPECT_EQ(static_cast<int>(colors.size()), g.size() / g.groupSize(m))
          << g.toString() << " mask " << m;
    }
  }
}

TEST(Grid, AxesListsAreCheckedAndBecomeMasks) {
  AxisMask mask = 0;
  std::string why;
  EXPECT_TRUE(gridAxesMask(std::vector<int>{1}, mask, why)) << why;
  EXPECT_EQ(mask, kDp);
  EXPECT_TRUE(gridAxesMask(std::vector<int>{2, 0}, mask, why)) << why;
  EXPECT_EQ(mask, kTp | kPp);
  const int64_t all[] = {0, 1, 2};
  EXPECT_TRUE(gridAxesMask(all, 3, mask, why)) << why;
  EXPECT_EQ(mask, kPp | kDp | kTp);

  EXPECT_FALSE(gridAxesMask(std::vector<int>{}, mask, why));
  EXPECT_EQ(why, "[] is empty, expected at least one axis (0 = pp, 1 = dp, "
                 "2 = tp)");
  EXPECT_FALSE(gridAxesMask(std::vector<int>{1, 3}, mask, why));
  EXPECT_EQ(why, "[1, 3]: axis 3 is out of range [0, 3) (0 = pp, 1 = dp, "
                 "2 = tp)");
  const int64_t negative[] = {-1};
  EXPECT_FALSE(gridAxesMask(negative, 1, mask, why));
  EXPECT_NE(why.find("axis -1 is out of range"), std::string::npos) << why;
  EXPECT_FALSE(gridAxesMask(std::vector<int>{1, 2, 1}, mask, why));
  EXPECT_EQ(why, "[1, 2, 1]: axis 1 is repeated");
}

TEST(Grid, GroupIndexIsRowMajorOverTheAxes) {
  // [pp, dp, tp] = [1, 2, 2]: rank r is (d, t) = (r / 2, r % 2).
  Grid g{1, 2, 2};
  const int tpIndex[4] = {0, 1, 0, 1};   // t
  const int dpIndex[4] = {0, 0, 1, 1};   // d
  const int bothIndex[4] = {0, 1, 2, 3}; // d * 2 + t
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(g.groupIndex(r, kTp), tpIndex[r]) << r;
    EXPECT_EQ(g.groupIndex(r, kDp), dpIndex[r]) << r;
    EXPECT_EQ(g.groupIndex(r, kDp | kTp), bothIndex[r]) << r;
    EXPECT_EQ(g.groupIndex(r, kPp), 0) << r;
  }
  // [2, 3, 2], rank 7 = (p1, d0, t1): over {pp, tp} the index is
  // p * 2 + t = 3; over {pp, dp} p * 3 + d = 3; over all, the rank.
  Grid h{2, 3, 2};
  EXPECT_EQ(h.groupIndex(7, kPp | kTp), 3);
  EXPECT_EQ(h.groupIndex(7, kPp | kDp), 3);
  EXPECT_EQ(h.groupIndex(7, kPp | kDp | kTp), 7);
  EXPECT_EQ(h.groupIndex(10, kDp | kTp), 4); // (p1, d2, t0): 2 * 2 + 0
}

TEST(Grid, GroupIndexIsThePositionAmongTheGroupsWorldRanks) {
  // What makes MPI_Comm_split (key = world rank) order a group's
  // communicator by group index.
  for (Grid g : {Grid{1, 2, 2}, Grid{2, 2, 2}, Grid{3, 1, 2}, Grid{2, 3, 4}}) {
    for (AxisMask m = 1; m < kNumAxisMasks; ++m) {
      for (int r = 0; r < g.size(); ++r) {
        std::vector<int> group = g.groupRanks(r, m);
        const int index = g.groupIndex(r, m);
        ASSERT_LT(index, static_cast<int>(group.size()));
        EXPECT_EQ(group[index], r) << g.toString() << " mask " << m;
      }
    }
  }
}

TEST(Grid, OrderedAxesListsMustBeAscending) {
  AxisMask mask = 0;
  std::string why;
  EXPECT_TRUE(ascendingGridAxesMask(std::vector<int>{1, 2}, mask, why)) << why;
  EXPECT_EQ(mask, kDp | kTp);
  const int64_t tp[] = {2};
  EXPECT_TRUE(ascendingGridAxesMask(tp, 1, mask, why)) << why;
  EXPECT_EQ(mask, kTp);
  EXPECT_FALSE(ascendingGridAxesMask(std::vector<int>{2, 1}, mask, why));
  EXPECT_EQ(why, "[2, 1]: axes must be ascending (blocks are numbered "
                 "row-major over the axes in grid order)");
  // The other checks still apply.
  EXPECT_FALSE(ascendingGridAxesMask(std::vector<int>{}, mask, why));
  EXPECT_NE(why.find("is empty"), std::string::npos) << why;
  EXPECT_FALSE(ascendingGridAxesMask(std::vector<int>{1, 1}, mask, why));
  EXPECT_EQ(why, "[1, 1]: axis 1 is repeated");
}
