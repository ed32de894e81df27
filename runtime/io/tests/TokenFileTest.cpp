//===- TokenFileTest.cpp - Tests of the token file format -------*- C++ -*-===//
//
// Round trips through writeTokenFile / TokenFile, the header layout checked
// byte by byte against docs/token-format.md, every rejection of a bad file
// (files made by hand, not by our writer), and TokenStream over several
// files and over a directory of shards.
//
//===----------------------------------------------------------------------===//

#include "io/TokenFile.h"

#include "IOTestUtil.h"

#include <gtest/gtest.h>

#include <random>

using namespace llamac::io;
using llamac::io::testing::le;
using llamac::io::testing::readBytes;
using llamac::io::testing::TempDir;
using llamac::io::testing::writeBytes;

namespace {

/// A token file written by hand: header fields as given, then `payload`.
std::string rawTokenFile(const std::string &magic, uint32_t version,
                         uint32_t width, uint64_t vocab, uint64_t count,
                         const std::string &payload) {
  return magic + le(version, 4) + le(width, 4) + le(vocab, 8) + le(count, 8) +
         payload;
}

/// `ids` as `width`-byte little-endian values.
std::string rawIds(const std::vector<uint64_t> &ids, int width) {
  std::string s;
  for (uint64_t id : ids)
    s += le(id, width);
  return s;
}

std::vector<uint32_t> randomTokens(size_t n, uint32_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> dist(0, vocab - 1);
  std::vector<uint32_t> v(n);
  for (uint32_t &t : v)
    t = dist(rng);
  return v;
}

/// Opening `bytes` as a token file fails with a message containing every
/// string of `needles`.
void expectOpenError(const std::string &bytes,
                     const std::vector<std::string> &needles) {
  TempDir dir;
  std::string path = dir.file("bad.tok");
  writeBytes(path, bytes);
  TokenFile f;
  std::string error;
  EXPECT_FALSE(f.open(path, error));
  EXPECT_FALSE(f.isOpen());
  EXPECT_CONTAINS(error, path);
  for (const std::string &n : needles)
    EXPECT_CONTAINS(error, n);
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
}

TEST(TokenFile, RoundTripUint16) {
  TempDir dir;
  std::string path = dir.file("a.tok");
  std::vector<uint32_t> tokens = randomTokens(10000, 50257, 1);
  tokens[17] = 50256; // the largest id
  std::string error;
  ASSERT_TRUE(writeTokenFile(path, tokens, 50257, error)) << error;
  TokenFile f;
  ASSERT_TRUE(f.open(path, error)) << error;
  EXPECT_EQ(f.count(), tokens.size());
  EXPECT_EQ(f.vocabSize(), 50257u);
  EXPECT_EQ(f.bytesPerToken(), 2u);
  for (size_t i = 0; i < tokens.size(); ++i)
    ASSERT_EQ(f.at(i), tokens[i]) << i;
  std::vector<int32_t> copy(100);
  f.copyTo(9900, 100, copy.data());
  for (size_t i = 0; i < 100; ++i)
    EXPECT_EQ(copy[i], static_cast<int32_t>(tokens[9900 + i]));
}

TEST(TokenFile, RoundTripUint32) {
  TempDir dir;
  std::string path = dir.file("a.tok");
  std::vector<uint32_t> tokens = randomTokens(5000, 128256, 2);
  tokens[0] = 128255;
  std::string error;
  ASSERT_TRUE(writeTokenFile(path, tokens, 128256, error)) << error;
  TokenFile f;
  ASSERT_TRUE(f.open(path, error)) << error;
  EXPECT_EQ(f.bytesPerToken(), 4u);
  EXPECT_EQ(f.vocabSize(), 128256u);
  ASSERT_EQ(f.count(), tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    ASSERT_EQ(f.at(i), tokens[i]) << i;
}

TEST(TokenFile, WidthSwitchesAboveVocab65536) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeTokenFile(dir.file("a.tok"), {65535, 0}, 65536, error));
  ASSERT_TRUE(writeTokenFile(dir.file("b.tok"), {65536, 0}, 65537, error));
  TokenFile a, b;
  ASSERT_TRUE(a.open(dir.file("a.tok"), error)) << error;
  ASSERT_TRUE(b.open(dir.file("b.tok"), error)) << error;
  EXPECT_EQ(a.bytesPerToken(), 2u);
  EXPECT_EQ(a.at(0), 65535u);
  EXPECT_EQ(b.bytesPerToken(), 4u);
  EXPECT_EQ(b.at(0), 65536u);
}

// The bytes on disk are exactly those of docs/token-format.md.
TEST(TokenFile, HeaderLayoutIsAsDocumented) {
  TempDir dir;
  std::string path = dir.file("a.tok");
  std::string error;
  ASSERT_TRUE(writeTokenFile(path, {1, 258, 7}, 300, error)) << error;
  std::string expected =
      rawTokenFile("LLAMACTK", 1, 2, 300, 3, rawIds({1, 258, 7}, 2));
  EXPECT_EQ(readBytes(path), expected);
  EXPECT_EQ(expected.size(), 32u + 6u);
}

TEST(TokenFile, EmptyStreamRoundTrips) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeTokenFile(dir.file("e.tok"), {}, 10, error)) << error;
  TokenFile f;
  ASSERT_TRUE(f.open(dir.file("e.tok"), error)) << error;
  EXPECT_EQ(f.count(), 0u);
  EXPECT_EQ(f.vocabSize(), 10u);
}

TEST(TokenFile, WriterLeavesNoTemporaryFile) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeTokenFile(dir.file("a.tok"), {1, 2, 3}, 4, error));
  EXPECT_EQ(dir.list(), std::vector<std::string>{"a.tok"});
}

TEST(TokenFile, WriterRejectsIdOutOfVocabAndKeepsOldFile) {
  TempDir dir;
  std::string path = dir.file("a.tok");
  std::string error;
  ASSERT_TRUE(writeTokenFile(path, {1, 2}, 4, error)) << error;
  std::string before = readBytes(path);
  EXPECT_FALSE(writeTokenFile(path, {1, 2, 9, 3}, 4, error));
  EXPECT_CONTAINS(error, "token 2");
  EXPECT_CONTAINS(error, "id 9");
  EXPECT_CONTAINS(error, "vocab_size 4");
  EXPECT_EQ(readBytes(path), before);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"a.tok"});
}

TEST(TokenFile, WriterRejectsZeroVocab) {
  TempDir dir;
  std::string error;
  EXPECT_FALSE(writeTokenFile(dir.file("a.tok"), {}, 0, error));
  EXPECT_CONTAINS(error, "vocab_size 0");
  EXPECT_TRUE(dir.list().empty());
}

TEST(TokenFile, WriterReportsUnwritablePath) {
  TempDir dir;
  std::string error;
  EXPECT_FALSE(writeTokenFile(dir.file("no/such/dir/a.tok"), {1}, 4, error));
  EXPECT_CONTAINS(error, "cannot create");
}

//===----------------------------------------------------------------------===//
// Bad files
//===----------------------------------------------------------------------===//

TEST(TokenFileErrors, ShorterThanHeader) {
  expectOpenError(std::string("LLAMACTK") + le(1, 4),
                  {"too short", "12 bytes", "32-byte header"});
  expectOpenError("", {"too short", "0 bytes"});
}

TEST(TokenFileErrors, WrongMagic) {
  expectOpenError(rawTokenFile("LLAMACTX", 1, 2, 10, 0, ""),
                  {"bad magic", "\"LLAMACTX\"", "expected \"LLAMACTK\""});
  expectOpenError(
      rawTokenFile(std::string("\x93NUMPY\x01\x00", 8), 1, 2, 10, 0, ""),
      {"bad magic", "\\x93NUMPY\\x01\\x00"});
}

TEST(TokenFileErrors, UnsupportedVersion) {
  expectOpenError(rawTokenFile("LLAMACTK", 2, 2, 10, 0, ""),
                  {"version 2", "expected 1"});
}

TEST(TokenFileErrors, UnsupportedWidth) {
  expectOpenError(rawTokenFile("LLAMACTK", 1, 3, 10, 0, ""),
                  {"bytes_per_token 3", "expected 2", "or 4"});
}

TEST(TokenFileErrors, ZeroVocab) {
  expectOpenError(rawTokenFile("LLAMACTK", 1, 2, 0, 0, ""),
                  {"vocab_size is 0", "expected >= 1"});
}

TEST(TokenFileErrors, Truncated) {
  // The header promises 5 ids; 3 are present.
  expectOpenError(rawTokenFile("LLAMACTK", 1, 2, 10, 5, rawIds({1, 2, 3}, 2)),
                  {"truncated", "count 5", "needs 42 bytes", "file has 38"});
  // A count so large that its byte size overflows.
  expectOpenError(rawTokenFile("LLAMACTK", 1, 4, 10, UINT64_MAX / 2, ""),
                  {"truncated", "count " + std::to_string(UINT64_MAX / 2)});
}

TEST(TokenFileErrors, TrailingBytes) {
  expectOpenError(
      rawTokenFile("LLAMACTK", 1, 4, 10, 2, rawIds({1, 2, 3}, 4)),
      {"4 trailing bytes", "count 2", "exactly 40 bytes", "file has 44"});
}

TEST(TokenFileErrors, IdOutOfVocabUint16) {
  expectOpenError(
      rawTokenFile("LLAMACTK", 1, 2, 50, 5, rawIds({0, 49, 7, 50, 51}, 2)),
      {"token 3", "id 50", "expected < vocab_size 50"});
}

TEST(TokenFileErrors, IdOutOfVocabUint32) {
  expectOpenError(rawTokenFile("LLAMACTK", 1, 4, 100000, 3,
                               rawIds({99999, 4000000000u, 1}, 4)),
                  {"token 1", "id 4000000000", "vocab_size 100000"});
}

TEST(TokenFileErrors, MissingFileAndDirectory) {
  TempDir dir;
  TokenFile f;
  std::string error;
  EXPECT_FALSE(f.open(dir.file("missing.tok"), error));
  EXPECT_CONTAINS(error, "missing.tok");
  EXPECT_CONTAINS(error, "cannot open token file");
  EXPECT_FALSE(f.open(dir.path(), error));
  EXPECT_CONTAINS(error, "not a regular file");
}

//===----------------------------------------------------------------------===//
// TokenStream
//===----------------------------------------------------------------------===//

TEST(TokenStream, ConcatenatesFilesInOrder) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeTokenFile(dir.file("x.tok"), {10, 11, 12}, 100, error));
  ASSERT_TRUE(writeTokenFile(dir.file("empty.tok"), {}, 100, error));
  ASSERT_TRUE(writeTokenFile(dir.file("y.tok"), {20}, 100, error));
  ASSERT_TRUE(writeTokenFile(dir.file("z.tok"), {30, 31}, 100, error));
  TokenStream s;
  // Given order, not name order; an empty file in the middle is harmless.
  ASSERT_TRUE(s.open({dir.file("z.tok"), dir.file("x.tok"),
                      dir.file("empty.tok"), dir.file("y.tok")},
                     error))
      << error;
  EXPECT_EQ(s.numFiles(), 4u);
  EXPECT_EQ(s.vocabSize(), 100u);
  std::vector<uint32_t> expected = {30, 31, 10, 11, 12, 20};
  ASSERT_EQ(s.count(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(s.at(i), expected[i]) << i;
  // Every window, across every boundary.
  for (uint64_t b = 0; b <= expected.size(); ++b) {
    for (uint64_t n = 0; b + n <= expected.size(); ++n) {
      std::vector<int32_t> out(n + 1, -1);
      s.copyTo(b, n, out.data());
      for (uint64_t k = 0; k < n; ++k)
        EXPECT_EQ(out[k], static_cast<int32_t>(expected[b + k]));
      EXPECT_EQ(out[n], -1) << "wrote past the window";
    }
  }
}

TEST(TokenStream, DirectoryOfShardsSortedByName) {
  TempDir dir;
  std::string error;
  std::filesystem::create_directory(dir.file("shards"));
  ASSERT_TRUE(writeTokenFile(dir.file("shards/part-002.tok"), {3}, 8, error));
  ASSERT_TRUE(writeTokenFile(dir.file("shards/part-000.tok"), {1}, 8, error));
  ASSERT_TRUE(
      writeTokenFile(dir.file("shards/part-001.tok"), {2, 2}, 8, error));
  writeBytes(dir.file("shards/README.txt"), "not a shard");
  TokenStream s;
  ASSERT_TRUE(s.open(dir.file("shards"), error)) << error;
  ASSERT_EQ(s.numFiles(), 3u);
  EXPECT_EQ(s.file(0).path(), dir.file("shards/part-000.tok"));
  ASSERT_EQ(s.count(), 4u);
  EXPECT_EQ(s.at(0), 1u);
  EXPECT_EQ(s.at(1), 2u);
  EXPECT_EQ(s.at(2), 2u);
  EXPECT_EQ(s.at(3), 3u);
}

TEST(TokenStreamErrors, VocabMismatch) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeTokenFile(dir.file("a.tok"), {1}, 100, error));
  ASSERT_TRUE(writeTokenFile(dir.file("b.tok"), {1}, 200, error));
  TokenStream s;
  EXPECT_FALSE(s.open({dir.file("a.tok"), dir.file("b.tok")}, error));
  EXPECT_CONTAINS(error, dir.file("b.tok"));
  EXPECT_CONTAINS(error, "vocab_size 200 differs from vocab_size 100");
}

TEST(TokenStreamErrors, EmptyDirectoryAndEmptyList) {
  TempDir dir;
  TokenStream s;
  std::string error;
  EXPECT_FALSE(s.open(dir.path(), error));
  EXPECT_CONTAINS(error, "no *.tok token files");
  EXPECT_FALSE(s.open(std::vector<std::string>{}, error));
  EXPECT_CONTAINS(error, "no token files given");
}

TEST(TokenStreamErrors, BadShardIsNamed) {
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeTokenFile(dir.file("a.tok"), {1}, 100, error));
  writeBytes(dir.file("b.tok"), "garbage");
  TokenStream s;
  EXPECT_FALSE(s.open(dir.path(), error));
  EXPECT_CONTAINS(error, dir.file("b.tok"));
  EXPECT_CONTAINS(error, "too short");
}

} // namespace
