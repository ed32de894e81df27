//===- DataLoaderTest.cpp - Tests of the A3 data order ----------*- C++ -*-===//
//
// The batches are compared with DESIGN.md A3 computed here independently:
// token ids equal their stream position (mod a large vocabulary), so a
// sequence is identified by its first id, and the expected first id comes
// from the formula ((s*B + i) mod N) * T with N = (count - 1) / T. Also:
// concatenating all data-parallel ranks' microbatches reproduces the global
// batch for every (dp, micro batch) layout, sequences may cross shard
// boundaries, and every invalid argument is rejected with a clear message.
//
//===----------------------------------------------------------------------===//

#include "io/DataLoader.h"

#include "IOTestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace llamac::io;
using llamac::io::testing::TempDir;

namespace {

/// Makes a stream of ids 0, 1, ..., count-1 (mod vocab), written as token
/// files that end at the given cumulative positions `splits` (the rest goes
/// to a last file).
class LoaderTest : public ::testing::Test {
protected:
  void makeStream(uint64_t count, std::vector<uint64_t> splits = {},
                  uint64_t vocab = 1u << 20) {
    std::vector<uint32_t> all(count);
    for (uint64_t k = 0; k < count; ++k)
      all[k] = static_cast<uint32_t>(k % vocab);
    tokens_ = all;
    std::vector<std::string> paths;
    uint64_t begin = 0;
    splits.push_back(count);
    for (size_t f = 0; f < splits.size(); ++f) {
      uint64_t end = std::min<uint64_t>(splits[f], count);
      std::vector<uint32_t> part(all.begin() + begin, all.begin() + end);
      std::string path = dir_.file("part" + std::to_string(f) + ".tok");
      std::string error;
      ASSERT_TRUE(writeTokenFile(path, part, vocab, error)) << error;
      paths.push_back(path);
      begin = end;
    }
    std::string error;
    ASSERT_TRUE(stream_.open(paths, error)) << error;
  }

  /// The A3 reference: inputs and targets of sequence i of step s.
  void reference(int64_t s, int64_t i, int64_t B, int64_t T,
                 std::vector<int32_t> &in, std::vector<int32_t> &tgt) const {
    const uint64_t n = (tokens_.size() - 1) / T;
    const uint64_t start = (static_cast<uint64_t>(s * B + i) % n) * T;
    in.assign(tokens_.begin() + start, tokens_.begin() + start + T);
    tgt.assign(tokens_.begin() + start + 1, tokens_.begin() + start + T + 1);
  }

  TempDir dir_;
  std::vector<uint32_t> tokens_;
  TokenStream stream_;
};

TEST_F(LoaderTest, GlobalBatchMatchesFormulaIncludingWrapAround) {
  makeStream(1000);
  const int64_t B = 4, T = 8;
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, B, T, error)) << error;
  EXPECT_EQ(loader.numSequences(), 124); // (1000 - 1) / 8
  std::vector<int32_t> in(B * T), tgt(B * T), refIn, refTgt;
  // 124 sequences / 4 per step: steps 31.. wrap around.
  for (int64_t s = 0; s < 70; ++s) {
    ASSERT_TRUE(loader.fillBatch(s, 0, 1, 0, B, in.data(), tgt.data(), error))
        << error;
    for (int64_t i = 0; i < B; ++i) {
      reference(s, i, B, T, refIn, refTgt);
      for (int64_t t = 0; t < T; ++t) {
        ASSERT_EQ(in[i * T + t], refIn[t]) << "step " << s << " seq " << i;
        ASSERT_EQ(tgt[i * T + t], refTgt[t]) << "step " << s << " seq " << i;
      }
    }
  }
}

// Small enough to write the expected starts down by hand: T = 4 and 15
// tokens give N = 3 whole sequences starting at tokens 0, 4 and 8; tokens
// 13 and 14 are never an input.
TEST_F(LoaderTest, WrapsOnWholeSequences) {
  makeStream(15);
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, /*B=*/2, /*T=*/4, error)) << error;
  EXPECT_EQ(loader.numSequences(), 3);
  const int32_t expectedFirst[4][2] = {{0, 4}, {8, 0}, {4, 8}, {0, 4}};
  std::vector<int32_t> in(8), tgt(8);
  for (int64_t s = 0; s < 4; ++s) {
    ASSERT_TRUE(loader.fillBatch(s, 0, 1, 0, 2, in.data(), tgt.data(), error));
    for (int i = 0; i < 2; ++i) {
      for (int t = 0; t < 4; ++t) {
        EXPECT_EQ(in[i * 4 + t], expectedFirst[s][i] + t);
        EXPECT_EQ(tgt[i * 4 + t], expectedFirst[s][i] + t + 1);
      }
    }
  }
  EXPECT_EQ(loader.sequenceStart(1, 0), 8u);
}

TEST_F(LoaderTest, ExactlyOneSequence) {
  makeStream(5);
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, 3, 4, error)) << error;
  EXPECT_EQ(loader.numSequences(), 1);
  std::vector<int32_t> in(12), tgt(12);
  ASSERT_TRUE(loader.fillBatch(7, 0, 1, 0, 3, in.data(), tgt.data(), error));
  for (int i = 0; i < 3; ++i)
    for (int t = 0; t < 4; ++t) {
      EXPECT_EQ(in[i * 4 + t], t);
      EXPECT_EQ(tgt[i * 4 + t], t + 1);
    }
}

TEST_F(LoaderTest, RanksAndMicrobatchesConcatenateToGlobalBatch) {
  makeStream(2000);
  const int64_t B = 12, T = 16;
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, B, T, error)) << error;
  for (int64_t s : {0, 1, 5, 10, 11, 1000}) {
    std::vector<int32_t> globalIn(B * T), globalTgt(B * T);
    ASSERT_TRUE(loader.fillBatch(s, 0, 1, 0, B, globalIn.data(),
                                 globalTgt.data(), error));
    for (int64_t dp : {1, 2, 3, 4, 6, 12}) {
      const int64_t perRank = B / dp;
      for (int64_t mb = 1; mb <= perRank; ++mb) {
        if (perRank % mb != 0)
          continue;
        std::vector<int32_t> catIn, catTgt;
        for (int64_t r = 0; r < dp; ++r) {
          for (int64_t k = 0; k < perRank / mb; ++k) {
            std::vector<int32_t> in(mb * T), tgt(mb * T), refIn, refTgt;
            ASSERT_TRUE(
                loader.fillBatch(s, r, dp, k, mb, in.data(), tgt.data(), error))
                << error;
            // Sequence j of microbatch k of rank r is global sequence
            // r * B/dp + k * mb + j.
            for (int64_t j = 0; j < mb; ++j) {
              reference(s, r * perRank + k * mb + j, B, T, refIn, refTgt);
              ASSERT_TRUE(
                  std::equal(refIn.begin(), refIn.end(), in.begin() + j * T))
                  << "step " << s << " dp " << dp << " rank " << r << " micro "
                  << k << " seq " << j;
              ASSERT_TRUE(std::equal(refTgt.begin(), refTgt.end(),
                                     tgt.begin() + j * T));
            }
            catIn.insert(catIn.end(), in.begin(), in.end());
            catTgt.insert(catTgt.end(), tgt.begin(), tgt.end());
          }
        }
        EXPECT_EQ(catIn, globalIn) << "dp " << dp << " mb " << mb;
        EXPECT_EQ(catTgt, globalTgt) << "dp " << dp << " mb " << mb;
      }
    }
  }
}

// A stream of several shards gives the same batches as one file; sequences
// cross shard boundaries (shards of 7, 0, 30 and the rest).
TEST_F(LoaderTest, SequencesCrossShardBoundaries) {
  makeStream(300, {7, 7, 37});
  ASSERT_EQ(stream_.numFiles(), 4u);
  const int64_t B = 5, T = 6;
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, B, T, error)) << error;
  std::vector<int32_t> in(B * T), tgt(B * T), refIn, refTgt;
  for (int64_t s = 0; s < 25; ++s) {
    ASSERT_TRUE(loader.fillBatch(s, 0, 1, 0, B, in.data(), tgt.data(), error));
    for (int64_t i = 0; i < B; ++i) {
      reference(s, i, B, T, refIn, refTgt);
      ASSERT_TRUE(std::equal(refIn.begin(), refIn.end(), in.begin() + i * T));
      ASSERT_TRUE(
          std::equal(refTgt.begin(), refTgt.end(), tgt.begin() + i * T));
    }
  }
}

// Steps far beyond int64 overflow of s * B * T still follow the formula.
TEST_F(LoaderTest, HugeStepDoesNotOverflow) {
  makeStream(1001);
  const int64_t B = 8, T = 10; // N = 100
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, B, T, error)) << error;
  const int64_t s = INT64_MAX / 3;
  std::vector<int32_t> in(B * T), tgt(B * T);
  ASSERT_TRUE(loader.fillBatch(s, 0, 1, 0, B, in.data(), tgt.data(), error));
  for (int64_t i = 0; i < B; ++i) {
    // ((s mod N) * (B mod N) + i) mod N, all small.
    uint64_t idx = ((static_cast<uint64_t>(s) % 100) * 8 + i) % 100;
    EXPECT_EQ(in[i * T], static_cast<int32_t>(idx * T)) << i;
  }
}

TEST_F(LoaderTest, NotEnoughTokens) {
  makeStream(8);
  DataLoader loader;
  std::string error;
  EXPECT_FALSE(loader.init(stream_, 1, 8, error));
  EXPECT_CONTAINS(error, "part0.tok");
  EXPECT_CONTAINS(error, "holds 8 tokens");
  EXPECT_CONTAINS(error, "at least 9 tokens");
  std::vector<int32_t> in(8), tgt(8);
  EXPECT_FALSE(loader.fillBatch(0, 0, 1, 0, 1, in.data(), tgt.data(), error));
  EXPECT_CONTAINS(error, "not initialized");
}

TEST_F(LoaderTest, InvalidBatchOrSequenceLength) {
  makeStream(100);
  DataLoader loader;
  std::string error;
  EXPECT_FALSE(loader.init(stream_, 0, 8, error));
  EXPECT_CONTAINS(error, "global batch size 0");
  EXPECT_FALSE(loader.init(stream_, 2, -1, error));
  EXPECT_CONTAINS(error, "sequence length -1");
}

TEST_F(LoaderTest, VocabTooLargeForInt32) {
  makeStream(10, {}, /*vocab=*/(1ull << 31) + 1);
  DataLoader loader;
  std::string error;
  EXPECT_FALSE(loader.init(stream_, 1, 4, error));
  EXPECT_CONTAINS(error, "does not fit int32");
}

TEST_F(LoaderTest, InvalidLayouts) {
  makeStream(1000);
  DataLoader loader;
  std::string error;
  ASSERT_TRUE(loader.init(stream_, 12, 4, error)) << error;
  std::vector<int32_t> in(12 * 4), tgt(12 * 4);
  auto fill = [&](int64_t step, int64_t rank, int64_t dp, int64_t k,
                  int64_t mb) {
    return loader.fillBatch(step, rank, dp, k, mb, in.data(), tgt.data(),
                            error);
  };
  EXPECT_FALSE(fill(0, 0, 5, 0, 1));
  EXPECT_CONTAINS(error, "data-parallel size 5 does not divide global batch "
                         "size 12");
  EXPECT_FALSE(fill(0, 0, 0, 0, 1));
  EXPECT_CONTAINS(error, "data-parallel size 0");
  EXPECT_FALSE(fill(0, 4, 4, 0, 1));
  EXPECT_CONTAINS(error, "data-parallel rank 4 is out of range");
  EXPECT_FALSE(fill(0, -1, 4, 0, 1));
  EXPECT_CONTAINS(error, "data-parallel rank -1");
  EXPECT_FALSE(fill(0, 0, 2, 0, 4));
  EXPECT_CONTAINS(error, "micro batch size 4 does not divide the per-rank "
                         "batch 6");
  EXPECT_FALSE(fill(0, 0, 2, 0, 0));
  EXPECT_CONTAINS(error, "micro batch size 0");
  EXPECT_FALSE(fill(0, 0, 2, 3, 2));
  EXPECT_CONTAINS(error, "micro batch index 3 is out of range");
  EXPECT_CONTAINS(error, "< 3");
  EXPECT_FALSE(fill(-1, 0, 1, 0, 12));
  EXPECT_CONTAINS(error, "step -1");
  EXPECT_FALSE(loader.fillBatch(0, 0, 1, 0, 12, nullptr, tgt.data(), error));
  EXPECT_CONTAINS(error, "non-null");
}

} // namespace
