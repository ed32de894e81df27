//===- SafetensorsTest.cpp - Tests of the safetensors I/O -------*- C++ -*-===//
//
// - A file laid out as Python's `safetensors.torch.save_file` writes it
//   (header JSON and data bytes composed by hand here, not by our writer) is
//   read correctly, for every float dtype the trainer loads.
// - binary16 decoding against an ldexp reference over all 65536 patterns.
// - Writer round trips, the exact byte layout of what the writer produces,
//   atomicity (no temporary left, old file kept on failure).
// - Every rejection of a bad file, each from a hand-made file.
// - Sharded checkpoints: the split, the index JSON, switching between the
//   single-file and sharded forms, and the reader of both.
//
//===----------------------------------------------------------------------===//

#include "io/Safetensors.h"
#include "support/Float16.h"

#include "IOTestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

using namespace llamac::io;
using llamac::bf16ToFloat;
using llamac::halfToFloat;
using llamac::io::testing::le;
using llamac::io::testing::readBytes;
using llamac::io::testing::TempDir;
using llamac::io::testing::writeBytes;

namespace {

/// A safetensors file from a header text and a data buffer, the header padded
/// with spaces to a multiple of 8 bytes when `pad` (as Python's writer does).
std::string makeFile(std::string header, const std::string &buffer,
                     bool pad = true) {
  while (pad && header.size() % 8 != 0)
    header += ' ';
  return le(header.size(), 8) + header + buffer;
}

template <typename T> std::string bytesOf(const std::vector<T> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()),
                     v.size() * sizeof(T));
}

/// Opening `bytes` fails with a one-line message containing the file name
/// and every string of `needles`.
void expectOpenError(const std::string &bytes,
                     const std::vector<std::string> &needles) {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  writeBytes(path, bytes);
  SafetensorsFile f;
  std::string error;
  EXPECT_FALSE(f.open(path, error));
  EXPECT_CONTAINS(error, path);
  for (const std::string &n : needles)
    EXPECT_CONTAINS(error, n);
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
}

/// A one-tensor header.
std::string entry(const std::string &name, const std::string &body) {
  return "{\"" + name + "\":" + body + "}";
}

//===----------------------------------------------------------------------===//
// Files written by others
//===----------------------------------------------------------------------===//

TEST(Safetensors, ReadsFileLaidOutAsPythonWritesIt) {
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, 65504.0f};
  // binary16: 1, -2, 0x3555 = 0.333251953125, smallest subnormal 2^-24,
  // largest finite 65504, -inf.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3555,
                                     0x0001, 0x7bff, 0xfc00};
  // bfloat16: 1, -3.140625, 0.
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc049, 0x0000};
  const std::vector<int64_t> i64 = {-5};
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("model.embed_tokens.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("half":{"dtype":"F16","shape":[6],"data_offsets":[24,36]},)"
      R"("brain":{"dtype":"BF16","shape":[3,1],"data_offsets":[36,42]},)"
      R"("count":{"dtype":"I64","shape":[],"data_offsets":[42,50]}})";
  std::string buffer =
      bytesOf(f32) + bytesOf(f16) + bytesOf(bf16) + bytesOf(i64);
  ASSERT_EQ(buffer.size(), 50u);

  // Once with the header padded to 8 bytes, once unpadded (so the data is
  // unaligned).
  for (bool pad : {true, false}) {
    TempDir dir;
    std::string path = dir.file("py.safetensors");
    writeBytes(path, makeFile(header, buffer, pad));
    SafetensorsFile f;
    std::string error;
    ASSERT_TRUE(f.open(path, error)) << error;
    EXPECT_EQ(f.metadata().at("format"), "pt");
    ASSERT_EQ(f.tensors().size(), 4u);
    EXPECT_EQ(f.tensors()[0].name, "model.embed_tokens.weight");
    EXPECT_EQ(f.tensors()[3].name, "count");

    const TensorInfo *w = f.find("model.embed_tokens.weight");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->dtype, DType::F32);
    EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(w->numel(), 6u);
    std::vector<float> out(6);
    ASSERT_TRUE(f.readAsFloat(w->name, {2, 3}, out.data(), error)) << error;
    EXPECT_EQ(out, f32);

    ASSERT_TRUE(f.readAsFloat("half", out.data(), error)) << error;
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[1], -2.0f);
    EXPECT_EQ(out[2], 0.333251953125f);
    EXPECT_EQ(out[3], 5.9604644775390625e-08f);
    EXPECT_EQ(out[4], 65504.0f);
    EXPECT_EQ(out[5], -std::numeric_limits<float>::infinity());

    ASSERT_TRUE(f.readAsFloat("brain", {3, 1}, out.data(), error)) << error;
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[1], -3.140625f);
    EXPECT_EQ(out[2], 0.0f);

    const TensorInfo *c = f.find("count");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->dtype, DType::I64);
    EXPECT_TRUE(c->shape.empty());
    EXPECT_EQ(c->numel(), 1u);
    int64_t v;
    std::memcpy(&v, f.data(*c), 8);
    EXPECT_EQ(v, -5);
  }
}

TEST(Safetensors, ReadsPrettyPrintedHeaderWithF64) {
  std::vector<double> f64 = {0.1, -1e300};
  std::string header = "{\n  \"x\" : { \"shape\" : [ 2 ],\n"
                       "  \"data_offsets\" : [0, 16], \"dtype\" : \"F64\" }\n}";
  TempDir dir;
  writeBytes(dir.file("a.safetensors"), makeFile(header, bytesOf(f64)));
  SafetensorsFile f;
  std::string error;
  ASSERT_TRUE(f.open(dir.file("a.safetensors"), error)) << error;
  EXPECT_TRUE(f.metadata().empty());
  std::vector<float> out(2);
  ASSERT_TRUE(f.readAsFloat("x", out.data(), error)) << error;
  EXPECT_EQ(out[0], 0.1f);
  EXPECT_EQ(out[1], -std::numeric_limits<float>::infinity());
}

// A zero-size tensor may sit anywhere, even inside another's bytes.
TEST(Safetensors, AcceptsEmptyTensorsAndGaps) {
  std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("z":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}})";
  TempDir dir;
  writeBytes(dir.file("a.safetensors"), makeFile(header, std::string(12, 0)));
  SafetensorsFile f;
  std::string error;
  ASSERT_TRUE(f.open(dir.file("a.safetensors"), error)) << error;
  EXPECT_EQ(f.find("z")->numel(), 0u);
}

// Reference: value = (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
// 2^-14 * m/1024, e = 31 is inf/NaN.
TEST(Safetensors, HalfToFloatMatchesLdexpForAllPatterns) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    int sign = (bits >> 15) & 1;
    int e = (bits >> 10) & 0x1f;
    int m = bits & 0x3ff;
    double ref;
    if (e == 0)
      ref = std::ldexp(static_cast<double>(m), -24);
    else if (e == 31)
      ref = m == 0 ? std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::quiet_NaN();
    else
      ref = std::ldexp(static_cast<double>(1024 + m), e - 25);
    if (sign)
      ref = -ref;
    float got = halfToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(got)) << bits;
    } else {
      ASSERT_EQ(got, static_cast<float>(ref)) << bits;
      ASSERT_EQ(std::signbit(got), sign == 1) << bits;
    }
  }
  EXPECT_EQ(bf16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(bf16ToFloat(0xff80), -std::numeric_limits<float>::infinity());
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

struct Sample {
  std::vector<float> w{0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f, 4, 4.5f, 5, 5.5f};
  double s = -0.25;
  std::vector<int32_t> i{7, -8};
  std::vector<uint16_t> h{0x3c00, 0x4000, 0xbc00};
  std::vector<TensorRef> refs() const {
    return {{"w", DType::F32, {3, 4}, w.data()},
            {"empty", DType::F32, {0, 5}, nullptr},
            {"s", DType::F64, {}, &s},
            {"i", DType::I32, {2}, i.data()},
            {"h", DType::F16, {3}, h.data()}};
  }
};

TEST(SafetensorsWriter, RoundTrip) {
  Sample sample;
  TempDir dir;
  std::string path = dir.file("a.safetensors");
  std::string error;
  ASSERT_TRUE(writeSafetensors(path, sample.refs(), error)) << error;
  EXPECT_EQ(dir.list(), std::vector<std::string>{"a.safetensors"});

  SafetensorsFile f;
  ASSERT_TRUE(f.open(path, error)) << error;
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(f.tensors().size(), 5u);
  for (const TensorRef &r : sample.refs()) {
    const TensorInfo *t = f.find(r.name);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->dtype, r.dtype) << r.name;
    EXPECT_EQ(t->shape, r.shape) << r.name;
    if (t->nbytes()) {
      EXPECT_EQ(std::memcmp(f.data(*t), r.data, t->nbytes()), 0) << r.name;
    }
  }
  std::vector<float> out(12);
  ASSERT_TRUE(f.readAsFloat("w", out.data(), error));
  EXPECT_EQ(out, sample.w);
  ASSERT_TRUE(f.readAsFloat("h", out.data(), error));
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(out[2], -1.0f);
}

// The layout is checked on the raw bytes, with nlohmann::json as the parser.
TEST(SafetensorsWriter, ByteLayout) {
  Sample sample;
  TempDir dir;
  std::string path = dir.file("a.safetensors");
  std::string error;
  ASSERT_TRUE(writeSafetensors(path, sample.refs(), error)) << error;
  std::string bytes = readBytes(path);
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k)
    n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[k])) << (8 * k);
  EXPECT_EQ(n % 8, 0u) << "buffer must start 8-byte aligned";
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos)
      << "only spaces may pad the header";
  auto j = nlohmann::json::parse(header.substr(0, close + 1));
  EXPECT_EQ(j["__metadata__"]["format"], "pt");
  // Offsets follow the given order, back to back.
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> offsets = {
      {"w", {0, 48}},
      {"empty", {48, 48}},
      {"s", {48, 56}},
      {"i", {56, 64}},
      {"h", {64, 70}}};
  for (const auto &o : offsets)
    EXPECT_EQ(j[o.first]["data_offsets"].get<std::vector<uint64_t>>(), o.second)
        << o.first;
  EXPECT_EQ(j["w"]["dtype"], "F32");
  EXPECT_EQ(j["w"]["shape"].get<std::vector<int64_t>>(),
            (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(j["s"]["shape"].get<std::vector<int64_t>>(),
            std::vector<int64_t>{});
  EXPECT_EQ(bytes.size(), 8 + n + 70);
  EXPECT_EQ(bytes.substr(8 + n, 48), bytesOf(sample.w));
}

TEST(SafetensorsWriter, CustomAndEmptyMetadata) {
  Sample sample;
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeSafetensors(dir.file("a.safetensors"), sample.refs(),
                               {{"format", "pt"}, {"step", "12"}}, error));
  ASSERT_TRUE(
      writeSafetensors(dir.file("b.safetensors"), sample.refs(), {}, error));
  SafetensorsFile a, b;
  ASSERT_TRUE(a.open(dir.file("a.safetensors"), error)) << error;
  ASSERT_TRUE(b.open(dir.file("b.safetensors"), error)) << error;
  EXPECT_EQ(a.metadata().at("step"), "12");
  EXPECT_TRUE(b.metadata().empty());
  EXPECT_EQ(readBytes(dir.file("b.safetensors")).find("__metadata__"),
            std::string::npos);
}

TEST(SafetensorsWriter, RejectsBadTensorsAndKeepsOldFile) {
  Sample sample;
  TempDir dir;
  std::string path = dir.file("a.safetensors");
  std::string error;
  ASSERT_TRUE(writeSafetensors(path, sample.refs(), error)) << error;
  const std::string before = readBytes(path);
  float x = 1;
  struct Case {
    std::vector<TensorRef> tensors;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {{{"a", DType::F32, {1}, &x}, {"a", DType::F32, {1}, &x}},
       {"tensor 'a'", "appears twice"}},
      {{{"__metadata__", DType::F32, {1}, &x}}, {"\"__metadata__\""}},
      {{{"", DType::F32, {1}, &x}}, {"non-empty UTF-8 name"}},
      {{{"bad\xff", DType::F32, {1}, &x}}, {"UTF-8"}},
      {{{"neg", DType::F32, {2, -1}, &x}},
       {"tensor 'neg'", "shape [2, -1] is invalid"}},
      {{{"null", DType::F32, {4}, nullptr}},
       {"tensor 'null'", "null for 16 bytes"}},
  };
  for (const Case &c : cases) {
    EXPECT_FALSE(writeSafetensors(path, c.tensors, error));
    EXPECT_CONTAINS(error, path);
    for (const std::string &n : c.needles)
      EXPECT_CONTAINS(error, n);
  }
  EXPECT_EQ(readBytes(path), before);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"a.safetensors"});
}

//===----------------------------------------------------------------------===//
// Bad files
//===----------------------------------------------------------------------===//

TEST(SafetensorsErrors, TooShort) {
  expectOpenError("abc", {"too short", "3 bytes", "8-byte header length"});
}

TEST(SafetensorsErrors, HeaderLengthBeyondFile) {
  expectOpenError(
      le(1000, 8) + "{}",
      {"header length 1000 extends beyond the end of the file", "at most 2"});
}

TEST(SafetensorsErrors, MalformedJson) {
  expectOpenError(makeFile(R"({"w": {"dtype": )", ""), {"malformed JSON"});
}

TEST(SafetensorsErrors, HeaderNotAnObject) {
  expectOpenError(makeFile("[1, 2]", ""),
                  {"header is a JSON array, expected an object"});
}

TEST(SafetensorsErrors, NonObjectEntry) {
  expectOpenError(
      makeFile(entry("w", "[1, 2]"), ""),
      {"tensor 'w'", "header entry is a JSON array", "expected an object"});
}

TEST(SafetensorsErrors, UnknownDtype) {
  expectOpenError(
      makeFile(
          entry("w", R"({"dtype":"F12","shape":[1],"data_offsets":[0,4]})"),
          std::string(4, 0)),
      {"tensor 'w'", "unknown dtype \"F12\"", "expected one of", "BF16"});
}

TEST(SafetensorsErrors, MissingOrMistypedFields) {
  expectOpenError(makeFile(entry("w", R"({"shape":[1],"data_offsets":[0,4]})"),
                           std::string(4, 0)),
                  {"tensor 'w'", "\"dtype\""});
  expectOpenError(
      makeFile(entry("w", R"({"dtype":"F32","data_offsets":[0,4]})"),
               std::string(4, 0)),
      {"tensor 'w'", "\"shape\""});
  expectOpenError(
      makeFile(entry("w", R"({"dtype":"F32","shape":[1],"data_offsets":[4]})"),
               std::string(4, 0)),
      {"tensor 'w'", "\"data_offsets\"", "[begin, end]"});
  expectOpenError(
      makeFile(
          entry("w", R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"),
          std::string(4, 0)),
      {"tensor 'w'", "shape entry -1", "non-negative integer"});
  expectOpenError(
      makeFile(
          entry("w", R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"),
          std::string(4, 0)),
      {"tensor 'w'", "shape entry 1.5"});
}

TEST(SafetensorsErrors, ShapeDoesNotMatchOffsets) {
  expectOpenError(
      makeFile(
          entry("w", R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})"),
          std::string(12, 0)),
      {"tensor 'w'", "shape [2, 2] of dtype F32 needs 16 bytes",
       "[0, 12] hold 12 bytes"});
  // numel * size overflows 64 bits.
  expectOpenError(
      makeFile(entry("w", R"({"dtype":"F64","shape":[4294967296,4294967296],)"
                          R"("data_offsets":[0,8]})"),
               std::string(8, 0)),
      {"tensor 'w'", "needs > 2^64 bytes"});
}

TEST(SafetensorsErrors, OffsetsOutsideBuffer) {
  expectOpenError(
      makeFile(
          entry("w", R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"),
          std::string(8, 0)),
      {"tensor 'w'", "[0, 16] lie outside the data buffer of 8 bytes"});
  expectOpenError(
      makeFile(
          entry("w", R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})"),
          std::string(8, 0)),
      {"tensor 'w'", "reversed"});
}

TEST(SafetensorsErrors, OverlappingTensors) {
  expectOpenError(
      makeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               std::string(12, 0)),
      {"tensors 'a'", "'b'", "overlap"});
  // Contained in a larger tensor, not adjacent to it.
  expectOpenError(
      makeFile(R"({"big":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
               R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
               R"("y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               std::string(16, 0)),
      {"tensors 'big'", "'x'", "overlap"});
}

TEST(SafetensorsErrors, BadMetadata) {
  expectOpenError(makeFile(R"({"__metadata__":{"format":1}})", ""),
                  {"\"__metadata__\" entry 'format'", "expected a string"});
  expectOpenError(makeFile(R"({"__metadata__":[]})", ""),
                  {"\"__metadata__\" is a JSON array"});
}

TEST(SafetensorsErrors, ReadAsFloat) {
  std::vector<int32_t> ints = {1, 2};
  TempDir dir;
  std::string path = dir.file("a.safetensors");
  std::string error;
  ASSERT_TRUE(
      writeSafetensors(path, {{"i", DType::I32, {2}, ints.data()}}, error));
  SafetensorsFile f;
  ASSERT_TRUE(f.open(path, error)) << error;
  std::vector<float> out(2);
  EXPECT_FALSE(f.readAsFloat("i", out.data(), error));
  EXPECT_CONTAINS(error, "tensor 'i' has dtype I32");
  EXPECT_CONTAINS(error, "expected F32, F16, BF16 or F64");
  EXPECT_FALSE(f.readAsFloat("nope", out.data(), error));
  EXPECT_CONTAINS(error, "no tensor named 'nope'");
  EXPECT_FALSE(f.readAsFloat("i", {1, 2}, out.data(), error));
  EXPECT_CONTAINS(error, "tensor 'i' has shape [2], expected [1, 2]");
}

//===----------------------------------------------------------------------===//
// Checkpoint directories
//===----------------------------------------------------------------------===//

/// t0, t1 (40 bytes each), big (400 bytes), t2, t3 (40 bytes each).
struct ShardSample {
  std::vector<std::vector<float>> data;
  std::vector<TensorRef> refs;
  ShardSample() {
    const std::vector<std::pair<std::string, int64_t>> specs = {
        {"t0", 10}, {"t1", 10}, {"big", 100}, {"t2", 10}, {"t3", 10}};
    for (size_t k = 0; k < specs.size(); ++k) {
      std::vector<float> v(specs[k].second);
      for (size_t e = 0; e < v.size(); ++e)
        v[e] = static_cast<float>(k * 1000 + e);
      data.push_back(v);
    }
    for (size_t k = 0; k < specs.size(); ++k)
      refs.push_back(
          {specs[k].first, DType::F32, {specs[k].second}, data[k].data()});
  }
  void expectReadable(const SafetensorsCheckpoint &ckpt) const {
    ASSERT_EQ(ckpt.numTensors(), refs.size());
    for (size_t k = 0; k < refs.size(); ++k) {
      std::vector<float> out(data[k].size());
      std::string error;
      ASSERT_TRUE(
          ckpt.readAsFloat(refs[k].name, refs[k].shape, out.data(), error))
          << error;
      EXPECT_EQ(out, data[k]) << refs[k].name;
    }
  }
};

TEST(SafetensorsCheckpoint, SmallCheckpointIsOneFile) {
  ShardSample sample;
  TempDir dir;
  std::string ckpt = dir.file("ckpt");
  std::string error;
  ASSERT_TRUE(writeSharded(ckpt, sample.refs, 560, error)) << error;
  EXPECT_EQ(dir.list("ckpt"), std::vector<std::string>{"model.safetensors"});
  SafetensorsCheckpoint c;
  ASSERT_TRUE(c.open(ckpt, error)) << error;
  EXPECT_EQ(c.numFiles(), 1u);
  sample.expectReadable(c);
  // The file itself also opens as a checkpoint.
  SafetensorsCheckpoint f;
  ASSERT_TRUE(f.open(ckpt + "/model.safetensors", error)) << error;
  sample.expectReadable(f);
}

TEST(SafetensorsCheckpoint, LargeCheckpointIsSharded) {
  ShardSample sample;
  TempDir dir;
  std::string ckpt = dir.file("ckpt");
  std::string error;
  ASSERT_TRUE(writeSharded(ckpt, sample.refs, 100, error)) << error;
  const std::string s1 = "model-00001-of-00003.safetensors";
  const std::string s2 = "model-00002-of-00003.safetensors";
  const std::string s3 = "model-00003-of-00003.safetensors";
  EXPECT_EQ(dir.list("ckpt"), (std::vector<std::string>{
                                  s1, s2, s3, "model.safetensors.index.json"}));
  auto index =
      nlohmann::json::parse(readBytes(ckpt + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 560);
  EXPECT_EQ(index["weight_map"],
            (nlohmann::json{
                {"t0", s1}, {"t1", s1}, {"big", s2}, {"t2", s3}, {"t3", s3}}));
  SafetensorsFile shard;
  ASSERT_TRUE(shard.open(ckpt + "/" + s3, error)) << error;
  ASSERT_EQ(shard.tensors().size(), 2u);
  EXPECT_EQ(shard.metadata().at("format"), "pt");

  SafetensorsCheckpoint c;
  ASSERT_TRUE(c.open(ckpt, error)) << error;
  EXPECT_EQ(c.numFiles(), 3u);
  EXPECT_EQ(c.names(),
            (std::vector<std::string>{"big", "t0", "t1", "t2", "t3"}));
  const SafetensorsFile *file = nullptr;
  ASSERT_NE(c.find("big", &file), nullptr);
  EXPECT_EQ(file->path(), ckpt + "/" + s2);
  sample.expectReadable(c);
}

TEST(SafetensorsCheckpoint, SwitchingFormsRemovesStaleFiles) {
  ShardSample sample;
  TempDir dir;
  std::string ckpt = dir.file("ckpt");
  std::string error;
  ASSERT_TRUE(writeSharded(ckpt, sample.refs, 100, error)) << error;
  ASSERT_TRUE(writeSharded(ckpt, sample.refs, 0, error)) << error;
  auto names = dir.list("ckpt");
  EXPECT_EQ(
      std::count(names.begin(), names.end(), "model.safetensors.index.json"),
      0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "model.safetensors"), 1);
  ASSERT_TRUE(writeSharded(ckpt, sample.refs, 100, error)) << error;
  names = dir.list("ckpt");
  EXPECT_EQ(std::count(names.begin(), names.end(), "model.safetensors"), 0);
  SafetensorsCheckpoint c;
  ASSERT_TRUE(c.open(ckpt, error)) << error;
  EXPECT_EQ(c.numFiles(), 3u);
  sample.expectReadable(c);
}

TEST(SafetensorsCheckpoint, ShardedWriterRejectsDuplicateAcrossShards) {
  ShardSample sample;
  sample.refs.push_back(sample.refs[0]);
  TempDir dir;
  std::string error;
  EXPECT_FALSE(writeSharded(dir.file("ckpt"), sample.refs, 100, error));
  EXPECT_CONTAINS(error, "tensor 't0'");
  EXPECT_CONTAINS(error, "appears twice");
  EXPECT_FALSE(std::filesystem::exists(dir.file("ckpt")));
}

/// A sharded checkpoint whose index text is replaced by `indexText`.
void expectIndexError(const std::string &indexText,
                      const std::vector<std::string> &needles) {
  ShardSample sample;
  TempDir dir;
  std::string ckpt = dir.file("ckpt");
  std::string error;
  ASSERT_TRUE(writeSharded(ckpt, sample.refs, 100, error)) << error;
  writeBytes(ckpt + "/model.safetensors.index.json", indexText);
  SafetensorsCheckpoint c;
  EXPECT_FALSE(c.open(ckpt, error));
  for (const std::string &n : needles)
    EXPECT_CONTAINS(error, n);
}

TEST(SafetensorsCheckpointErrors, BadIndex) {
  expectIndexError("{\"weight_map\": ", {"index.json", "malformed JSON"});
  expectIndexError("[]", {"index.json", "expected an object"});
  expectIndexError(R"({"metadata": {}})", {"index.json", "\"weight_map\""});
  expectIndexError(R"({"weight_map": {"t0": 3}})",
                   {"weight_map entry 't0'", "expected a shard file name"});
  expectIndexError(R"({"weight_map": {"t0": "../x.safetensors"}})",
                   {"weight_map entry 't0'", "inside the checkpoint"});
  expectIndexError(
      R"({"weight_map": {"t0": "model-00002-of-00003.safetensors"}})",
      {"model-00002-of-00003.safetensors", "does not contain tensor 't0'"});
  expectIndexError(R"({"weight_map": {"t0": "gone.safetensors"}})",
                   {"gone.safetensors", "cannot open safetensors file"});
}

TEST(SafetensorsCheckpointErrors, MissingFiles) {
  TempDir dir;
  SafetensorsCheckpoint c;
  std::string error;
  EXPECT_FALSE(c.open(dir.path(), error));
  EXPECT_CONTAINS(error, "neither model.safetensors nor "
                         "model.safetensors.index.json");
  EXPECT_FALSE(c.open(dir.file("nope"), error));
  EXPECT_CONTAINS(error, "no such checkpoint");
}

TEST(SafetensorsCheckpointErrors, ReadAsFloat) {
  ShardSample sample;
  TempDir dir;
  std::string error;
  ASSERT_TRUE(writeSharded(dir.path(), sample.refs, 0, error)) << error;
  SafetensorsCheckpoint c;
  ASSERT_TRUE(c.open(dir.path(), error)) << error;
  std::vector<float> out(100);
  EXPECT_FALSE(c.readAsFloat("lm_head.weight", out.data(), error));
  EXPECT_CONTAINS(error, "checkpoint has no tensor named 'lm_head.weight'");
  EXPECT_FALSE(c.readAsFloat("big", {10, 10}, out.data(), error));
  EXPECT_CONTAINS(error, "tensor 'big' has shape [100], expected [10, 10]");
}

} // namespace
