//===- TokenizerTest.cpp - Tests of the tokenizer and data preparation ----===//
//
// A byte-fallback BPE tokenizer trained on the GPL-3 text (Debian
// base-files): lossless round trips, chunked encoding equal to whole-text
// encoding, token files with BOS/EOS per document read back independently
// of prepareData, and every error the library reports.
//
//===----------------------------------------------------------------------===//

#include "data/Tokenizer.h"

#include "io/TokenFile.h"
#include "io/tests/IOTestUtil.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace llamac::data;
using llamac::io::TokenFile;
using llamac::io::testing::readBytes;
using llamac::io::testing::TempDir;
using llamac::io::testing::writeBytes;

namespace {

const char *const kCorpus = "/usr/share/common-licenses/GPL-3";

bool exists(const std::string &path) { return std::filesystem::exists(path); }

/// Skips the test when the corpus is absent (a non-Debian machine).
#define REQUIRE_CORPUS()                                                       \
  if (!exists(kCorpus))                                                        \
  GTEST_SKIP() << kCorpus << " is not installed (Debian base-files)"

/// Trains a vocab-512 tokenizer on GPL-3 into `dir` and loads it.
std::string trainGpl(const TempDir &dir, Tokenizer &tok) {
  std::string model = dir.file("tok.model"), error;
  EXPECT_TRUE(trainTokenizer({kCorpus}, 512, model, error)) << error;
  EXPECT_TRUE(tok.load(model, error)) << error;
  return model;
}

std::vector<uint32_t> readTokens(const std::string &path) {
  TokenFile file;
  std::string error;
  EXPECT_TRUE(file.open(path, error)) << error;
  std::vector<uint32_t> ids;
  for (uint64_t i = 0; i < file.count(); ++i)
    ids.push_back(file.at(i));
  return ids;
}

void append(std::vector<uint32_t> &out, const std::vector<int> &ids) {
  out.insert(out.end(), ids.begin(), ids.end());
}

//===----------------------------------------------------------------------===//
// Training and encoding
//===----------------------------------------------------------------------===//

TEST(Tokenizer, TrainsLlamaStyleModel) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  trainGpl(dir, tok);
  EXPECT_EQ(tok.vocabSize(), 512);
  EXPECT_EQ(tok.bosId(), 1);
  EXPECT_EQ(tok.eosId(), 2);
  EXPECT_TRUE(tok.splitsAtNewlines());
  EXPECT_TRUE(exists(dir.file("tok.vocab")));
  // The .vocab file lists one piece per line: unk, bos, eos, bytes, ...
  std::string vocab = readBytes(dir.file("tok.vocab"));
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), '\n'), 512);
  EXPECT_EQ(vocab.rfind("<unk>\t", 0), 0u);
  EXPECT_NE(vocab.find("\n<0x0A>\t"), std::string::npos);
  // No temporary files are left beside them.
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"tok.model", "tok.vocab"}));
}

TEST(Tokenizer, RoundTripsText) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  trainGpl(dir, tok);
  const std::vector<std::string> texts = {
      "The GNU General Public License is a free, copyleft license.",
      "Punctuation: (a) [b] {c} <d> \"e\" 'f' ; : ! ? @ # $ % ^ & * ~ ` | \\",
      "Digits 0123456789, 3.14159 and 2024-01-31.",
      "Unicode (byte fallback): \xc3\xbc\xc3\xa9\xc3\xb1 \xe6\x97\xa5\xe6\x9c"
      "\xac\xe8\xaa\x9e \xf0\x9f\x99\x82 \xce\xb1\xce\xb2\xce\xb3",
      "  leading spaces, trailing spaces   ",
      "tabs\tand\nnewlines\n\n\r\nand a final newline\n",
      std::string("a NUL \0 byte", 12),
      "",
  };
  for (const std::string &text : texts) {
    std::vector<int> ids = tok.encode(text);
    for (int id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, tok.vocabSize());
      EXPECT_NE(id, 0) << "unk in the encoding of: " << text;
    }
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(Tokenizer, SplitsDigits) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  trainGpl(dir, tok);
  // split_digits: every digit is a token of its own.
  std::vector<int> ids = tok.encode("year 20241231");
  int digitTokens = 0;
  for (int id : ids) {
    std::string piece = tok.decode({id});
    if (piece.find_first_of("0123456789") != std::string::npos) {
      EXPECT_EQ(piece.size(), 1u) << "piece \"" << piece << "\"";
      ++digitTokens;
    }
  }
  EXPECT_EQ(digitTokens, 8);
}

TEST(Tokenizer, TrainingIsDeterministic) {
  REQUIRE_CORPUS();
  TempDir dir;
  std::string error;
  ASSERT_TRUE(trainTokenizer({kCorpus}, 400, dir.file("a.model"), error))
      << error;
  ASSERT_TRUE(trainTokenizer({kCorpus}, 400, dir.file("b.model"), error))
      << error;
  EXPECT_EQ(readBytes(dir.file("a.model")), readBytes(dir.file("b.model")));
  EXPECT_EQ(readBytes(dir.file("a.vocab")), readBytes(dir.file("b.vocab")));
}

TEST(Tokenizer, VocabFileNameWithoutModelSuffix) {
  REQUIRE_CORPUS();
  TempDir dir;
  std::string error;
  ASSERT_TRUE(trainTokenizer({kCorpus}, 300 + 100, dir.file("spm"), error))
      << error;
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"spm", "spm.vocab"}));
}

TEST(Tokenizer, ContinuationEncodingMatchesWholeText) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  trainGpl(dir, tok);
  std::string text = readBytes(kCorpus);
  std::vector<int> whole = tok.encode(text);
  // Split after every 97th line: encode(A) ++ continuation(B) == encode(A+B).
  size_t line = 0;
  for (size_t at = 0; (at = text.find('\n', at)) != std::string::npos; ++at) {
    if (++line % 97 != 0)
      continue;
    std::vector<int> ids = tok.encode(text.substr(0, at + 1));
    std::vector<int> rest = tok.encodeContinuation(text.substr(at + 1));
    ids.insert(ids.end(), rest.begin(), rest.end());
    ASSERT_EQ(ids, whole) << "split after line " << line;
  }
  // Text that starts with spaces or a newline after the split.
  std::vector<int> ids = tok.encode("one\n");
  std::vector<int> rest = tok.encodeContinuation("  two\n\nthree");
  ids.insert(ids.end(), rest.begin(), rest.end());
  EXPECT_EQ(ids, tok.encode("one\n  two\n\nthree"));
}

//===----------------------------------------------------------------------===//
// prepareData and dataInfo
//===----------------------------------------------------------------------===//

TEST(PrepareData, OneDocumentPerFileWithBosEos) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  std::string second =
      "Second document.\nIt has two lines, and 42 \xe2\x82\xac.";
  writeBytes(dir.file("b.txt"), second);
  writeBytes(dir.file("empty.txt"), "");

  std::string error;
  uint64_t numTokens = 0, numDocs = 0;
  ASSERT_TRUE(
      prepareData(model, {kCorpus, dir.file("empty.txt"), dir.file("b.txt")},
                  dir.file("data.tok"), false, error, &numTokens, &numDocs))
      << error;

  std::vector<uint32_t> expected = {1};
  append(expected, tok.encode(readBytes(kCorpus)));
  expected.push_back(2);
  expected.push_back(1);
  append(expected, tok.encode(second));
  expected.push_back(2);

  TokenFile file;
  ASSERT_TRUE(file.open(dir.file("data.tok"), error)) << error;
  EXPECT_EQ(file.vocabSize(), 512u);
  EXPECT_EQ(file.bytesPerToken(), 2u);
  EXPECT_EQ(readTokens(dir.file("data.tok")), expected);
  EXPECT_EQ(numTokens, expected.size());
  EXPECT_EQ(numDocs, 2u);
}

TEST(PrepareData, LargeFileIsEncodedInChunks) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  // ~200 KiB: a dozen 16 KiB chunks, stitched together.
  std::string gpl = readBytes(kCorpus), big;
  for (int i = 0; i < 6; ++i)
    big += gpl;
  // A 40 KB line is read whole, across chunk boundaries.
  std::string longLine;
  while (longLine.size() < 40000)
    longLine += "a rather long line, ";
  big += longLine + "\n" + gpl;
  writeBytes(dir.file("big.txt"), big);

  std::string error;
  ASSERT_TRUE(prepareData(model, {dir.file("big.txt")}, dir.file("big.tok"),
                          false, error))
      << error;
  std::vector<uint32_t> expected = {1};
  append(expected, tok.encode(big));
  expected.push_back(2);
  EXPECT_EQ(readTokens(dir.file("big.tok")), expected);
}

TEST(PrepareData, DataInfoReportsHeaderAndIds) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  writeBytes(dir.file("a.txt"), "hello world\n");
  std::string error, report;
  ASSERT_TRUE(
      prepareData(model, {dir.file("a.txt")}, dir.file("a.tok"), false, error))
      << error;
  ASSERT_TRUE(dataInfo(dir.file("a.tok"), report, error)) << error;
  uint64_t count = tok.encode("hello world\n").size() + 2;
  EXPECT_CONTAINS(report, "magic: LLAMACTK\n");
  EXPECT_CONTAINS(report, "version: 1\n");
  EXPECT_CONTAINS(report, "bytes_per_token: 2\n");
  EXPECT_CONTAINS(report, "vocab_size: 512\n");
  EXPECT_CONTAINS(report, "count: " + std::to_string(count) + "\n");
  EXPECT_CONTAINS(report, "file_size: " + std::to_string(32 + 2 * count));
  EXPECT_CONTAINS(report, "min_id: 1\n"); // BOS; no unk.
  EXPECT_EQ(std::filesystem::file_size(dir.file("a.tok")), 32 + 2 * count);
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(TokenizerErrors, EmptyCorpus) {
  TempDir dir;
  writeBytes(dir.file("empty.txt"), "");
  writeBytes(dir.file("blank.txt"), "\n\n\n");
  std::string error;
  EXPECT_FALSE(trainTokenizer({dir.file("empty.txt"), dir.file("blank.txt")},
                              512, dir.file("tok.model"), error));
  EXPECT_CONTAINS(error, "empty corpus");
  EXPECT_FALSE(trainTokenizer({}, 512, dir.file("tok.model"), error));
  EXPECT_CONTAINS(error, "empty corpus");
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"blank.txt", "empty.txt"}));
}

TEST(TokenizerErrors, OnlyOverlongLines) {
  TempDir dir;
  writeBytes(dir.file("long.txt"), std::string(kMaxTrainingLineBytes + 1, 'a'));
  std::string error;
  EXPECT_FALSE(trainTokenizer({dir.file("long.txt")}, 512,
                              dir.file("tok.model"), error));
  EXPECT_CONTAINS(error, "empty corpus: every line");
  EXPECT_CONTAINS(error, "4192 bytes");
}

TEST(TokenizerErrors, VocabTooSmall) {
  TempDir dir;
  writeBytes(dir.file("a.txt"), "some text\n");
  std::string error;
  EXPECT_FALSE(
      trainTokenizer({dir.file("a.txt")}, 258, dir.file("tok.model"), error));
  EXPECT_CONTAINS(error, "vocab size 258 is too small: expected >= 259");
  EXPECT_FALSE(exists(dir.file("tok.model")));
}

TEST(TokenizerErrors, VocabTooSmallForCorpus) {
  REQUIRE_CORPUS();
  TempDir dir;
  std::string error;
  EXPECT_FALSE(trainTokenizer({kCorpus}, 300, dir.file("tok.model"), error));
  EXPECT_CONTAINS(error, "vocab size 300 is too small for this corpus");
  EXPECT_CONTAINS(error, "need at least 3");
  EXPECT_TRUE(dir.list().empty());
}

TEST(TokenizerErrors, VocabTooLargeForCorpus) {
  TempDir dir;
  writeBytes(dir.file("tiny.txt"), "hello world\nhello there\n");
  std::string error;
  EXPECT_FALSE(trainTokenizer({dir.file("tiny.txt")}, 4000,
                              dir.file("tok.model"), error));
  EXPECT_CONTAINS(error, "vocab size 4000 is too large for this corpus");
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"tiny.txt"}));
}

TEST(TokenizerErrors, MissingInput) {
  REQUIRE_CORPUS();
  TempDir dir;
  std::string missing = dir.file("missing.txt"), error;
  EXPECT_FALSE(
      trainTokenizer({kCorpus, missing}, 512, dir.file("tok.model"), error));
  EXPECT_EQ(error, missing + ": cannot open text file: No such file or "
                             "directory");
  EXPECT_FALSE(trainTokenizer({dir.path()}, 512, dir.file("tok.model"), error));
  EXPECT_EQ(error, dir.path() + ": is a directory: expected a text file");

  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  EXPECT_FALSE(
      prepareData(model, {kCorpus, missing}, dir.file("d.tok"), false, error));
  EXPECT_EQ(error, missing + ": cannot open text file: No such file or "
                             "directory");
  EXPECT_FALSE(exists(dir.file("d.tok")));
}

TEST(TokenizerErrors, MissingOutputDirectory) {
  REQUIRE_CORPUS();
  TempDir dir;
  std::string out = dir.file("no/such/dir/tok.model"), error;
  EXPECT_FALSE(trainTokenizer({kCorpus}, 512, out, error));
  EXPECT_EQ(error, out + ": cannot write output: directory " +
                       dir.file("no/such/dir") + " does not exist");

  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  out = dir.file("no/d.tok");
  EXPECT_FALSE(prepareData(model, {kCorpus}, out, false, error));
  EXPECT_EQ(error, out + ": cannot write output: directory " + dir.file("no") +
                       " does not exist");
}

TEST(TokenizerErrors, InvalidUtf8) {
  REQUIRE_CORPUS();
  TempDir dir;
  writeBytes(dir.file("bad.txt"), "line one\nline two\nbad \xff byte\n");
  writeBytes(dir.file("cut.txt"), "cut \xe2\x82"); // Truncated sequence.
  writeBytes(dir.file("surrogate.txt"), "ok\n\xed\xa0\x80\n");
  std::string error;
  EXPECT_FALSE(
      trainTokenizer({dir.file("bad.txt")}, 512, dir.file("tok.model"), error));
  EXPECT_EQ(error, dir.file("bad.txt") +
                       ":3: invalid UTF-8 byte 0xff: expected UTF-8 text");
  EXPECT_FALSE(exists(dir.file("tok.model")));

  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  EXPECT_FALSE(prepareData(model, {dir.file("bad.txt")}, dir.file("d.tok"),
                           false, error));
  EXPECT_CONTAINS(error, "bad.txt:3: invalid UTF-8 byte 0xff");
  EXPECT_FALSE(prepareData(model, {dir.file("cut.txt")}, dir.file("d.tok"),
                           false, error));
  EXPECT_CONTAINS(error, "cut.txt:1: invalid UTF-8 byte 0xe2");
  EXPECT_FALSE(prepareData(model, {dir.file("surrogate.txt")},
                           dir.file("d.tok"), false, error));
  EXPECT_CONTAINS(error, "surrogate.txt:2: invalid UTF-8 byte 0xed");
  EXPECT_FALSE(exists(dir.file("d.tok")));
}

TEST(TokenizerErrors, NotASentencePieceModel) {
  TempDir dir;
  writeBytes(dir.file("text.model"), "this is plain text, not a model\n");
  writeBytes(dir.file("empty.model"), "");
  Tokenizer tok;
  std::string error;
  EXPECT_FALSE(tok.load(dir.file("text.model"), error));
  EXPECT_EQ(error, dir.file("text.model") + ": not a SentencePiece model");
  EXPECT_FALSE(tok.isLoaded());
  EXPECT_FALSE(tok.load(dir.file("empty.model"), error));
  EXPECT_CONTAINS(error,
                  dir.file("empty.model") + ": not a SentencePiece model");
  EXPECT_FALSE(tok.load(dir.file("missing.model"), error));
  EXPECT_EQ(error, dir.file("missing.model") +
                       ": cannot open tokenizer model: No such file or "
                       "directory");
  EXPECT_FALSE(tok.load(dir.path(), error));
  EXPECT_EQ(error, dir.path() +
                       ": not a regular file: expected a SentencePiece model");

  writeBytes(dir.file("a.txt"), "hello\n");
  EXPECT_FALSE(prepareData(dir.file("text.model"), {dir.file("a.txt")},
                           dir.file("a.tok"), false, error));
  EXPECT_EQ(error, dir.file("text.model") + ": not a SentencePiece model");
  EXPECT_FALSE(exists(dir.file("a.tok")));
}

TEST(PrepareDataErrors, EmptyCorpusLeavesNoOutput) {
  REQUIRE_CORPUS();
  TempDir dir;
  Tokenizer tok;
  std::string model = trainGpl(dir, tok);
  writeBytes(dir.file("e1.txt"), "");
  writeBytes(dir.file("e2.txt"), "");
  std::string error;
  EXPECT_FALSE(prepareData(model, {dir.file("e1.txt"), dir.file("e2.txt")},
                           dir.file("d.tok"), false, error));
  EXPECT_EQ(error, "empty corpus: the 2 text file(s) hold no text");
  EXPECT_FALSE(prepareData(model, {}, dir.file("d.tok"), false, error));
  EXPECT_CONTAINS(error, "empty corpus");
  EXPECT_FALSE(exists(dir.file("d.tok")));
}

TEST(PrepareDataErrors, DataInfoRejectsBadFile) {
  TempDir dir;
  writeBytes(dir.file("x.tok"), "NOTATOKENFILE-but-long-enough-for-a-header");
  std::string error, report;
  EXPECT_FALSE(dataInfo(dir.file("x.tok"), report, error));
  EXPECT_CONTAINS(error, "bad magic");
  EXPECT_FALSE(dataInfo(dir.file("missing.tok"), report, error));
  EXPECT_CONTAINS(error, "missing.tok");
}

} // namespace
