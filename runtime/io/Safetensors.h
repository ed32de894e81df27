//===- Safetensors.h - safetensors reader and writer ------------*- C++ -*-===//
//
// Checkpoint tensors in the Hugging Face safetensors format (DESIGN.md A5):
//
//   u64 little-endian N | N bytes of JSON header | byte buffer
//
// The header is a JSON object mapping each tensor name to
//   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// with offsets in bytes relative to the start of the byte buffer, plus an
// optional "__metadata__" object of string to string. Tensor data is
// row-major and little-endian. The header may be padded with trailing spaces;
// our writer pads it so that the buffer starts at a multiple of 8 bytes.
//
// A Hugging Face checkpoint directory holds either one `model.safetensors`,
// or shards `model-00001-of-0000N.safetensors` and
// `model.safetensors.index.json`:
//   {"metadata": {"total_size": <bytes>}, "weight_map": {name: shard file}}
//
// Reading is by mmap: the reader validates the whole header against the file
// (header length, JSON, dtypes, shapes against offsets, offsets within the
// buffer, no overlapping tensors) and then hands out pointers into the map.
// Errors: functions return false and set `error` to one line that names the
// file, the tensor and what was expected (DESIGN.md A7). Nothing throws.
//
// Writing is atomic per file: a temporary `<file>.tmp.<pid>` is written,
// fsync'ed and renamed. A sharded save writes the shards first and the index
// last. Making a whole checkpoint directory atomic (config.json, optimizer
// state, weights) is the caller's job: write it under a temporary directory
// name and rename that.
//
// NOTE: this host code assumes a little-endian machine (x86-64, AArch64).
// NOTE: the reader accepts gaps between tensors in the buffer (the reference
// implementation rejects them); overlaps are always rejected.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_IO_SAFETENSORS_H
#define LLAMAC_RUNTIME_IO_SAFETENSORS_H

#include "io/FileUtil.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace llamac {
namespace io {

/// Element types, named as in the safetensors header.
enum class DType {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  I64,
  U64,
  F64
};

/// "F32", "BF16", ...
const char *dtypeName(DType dtype);
/// Parses a header dtype name; false when it is not one of ours.
bool parseDType(const std::string &name, DType &out);
/// Bytes per element.
uint64_t dtypeSize(DType dtype);

/// One tensor of a safetensors header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0; ///< Byte offset in the data buffer.
  uint64_t end = 0;   ///< One past the last byte.

  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

/// "[2, 3]"
std::string formatShape(const std::vector<int64_t> &shape);

/// A read-only, memory-mapped safetensors file. Movable, not copyable.
class SafetensorsFile {
public:
  bool open(const std::string &path, std::string &error);

  const std::string &path() const { return path_; }
  /// All tensors, in buffer order.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// The tensor named `name`, or nullptr.
  const TensorInfo *find(const std::string &name) const;
  /// The first byte of `tensor`'s data (unaligned in general).
  const uint8_t *data(const TensorInfo &tensor) const {
    return file_.data() + bufferOffset_ + tensor.begin;
  }
  /// The "__metadata__" entries (empty when absent).
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }

  /// Converts tensor `name` (F32, F16, BF16 or F64) to float into `out`,
  /// which must hold numel() floats.
  bool readAsFloat(const std::string &name, float *out,
                   std::string &error) const;
  /// Same, after checking that the tensor's shape is `expectedShape`.
  bool readAsFloat(const std::string &name,
                   const std::vector<int64_t> &expectedShape, float *out,
                   std::string &error) const;

private:
  detail::MappedFile file_;
  std::string path_;
  uint64_t bufferOffset_ = 0; ///< 8 + header length.
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> byName_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to write: the data is numel * dtypeSize bytes, row-major,
/// little-endian, and must stay valid during the call.
struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void *data = nullptr;
};

/// Writes `tensors`, in the given order, as one safetensors file with
/// metadata {"format": "pt"} (as Hugging Face does), atomically.
bool writeSafetensors(const std::string &path,
                      const std::vector<TensorRef> &tensors,
                      std::string &error);
/// Same, with the given "__metadata__" (omitted when empty).
bool writeSafetensors(const std::string &path,
                      const std::vector<TensorRef> &tensors,
                      const std::map<std::string, std::string> &metadata,
                      std::string &error);

constexpr const char *kSafetensorsSingleName = "model.safetensors";
constexpr const char *kSafetensorsIndexName = "model.safetensors.index.json";

/// Writes a Hugging Face weights directory `dir` (created if missing). When
/// the tensors' total size exceeds `maxShardBytes` (> 0), they are split in
/// order into shards model-0000i-of-0000N.safetensors of at most
/// maxShardBytes each (a larger tensor gets a shard of its own), followed by
/// model.safetensors.index.json; otherwise (or when maxShardBytes is 0) one
/// model.safetensors is written. A stale file of the other form is removed
/// afterwards, so that loaders see one unambiguous set of weights.
bool writeSharded(const std::string &dir, const std::vector<TensorRef> &tensors,
                  uint64_t maxShardBytes, std::string &error);

/// The weights of a checkpoint, in either form. open() takes a directory
/// (model.safetensors if present, else model.safetensors.index.json and its
/// shards) or the path of a single .safetensors file. Every tensor of the
/// index's weight_map must be in the shard it names; shard tensors that the
/// weight_map does not list are ignored.
class SafetensorsCheckpoint {
public:
  bool open(const std::string &path, std::string &error);

  /// Tensor names, sorted.
  std::vector<std::string> names() const;
  size_t numTensors() const { return byName_.size(); }
  size_t numFiles() const { return files_.size(); }
  /// The tensor named `name`, or nullptr; `file` (optional) receives the
  /// file that holds it.
  const TensorInfo *find(const std::string &name,
                         const SafetensorsFile **file = nullptr) const;
  /// See SafetensorsFile::readAsFloat; errors name the file.
  bool readAsFloat(const std::string &name, float *out,
                   std::string &error) const;
  bool readAsFloat(const std::string &name,
                   const std::vector<int64_t> &expectedShape, float *out,
                   std::string &error) const;

private:
  std::string path_;
  std::vector<SafetensorsFile> files_;
  /// name -> (file index, tensor index in that file).
  std::map<std::string, std::pair<size_t, size_t>> byName_;
};

} // namespace io
} // namespace llamac

#endif // LLAMAC_RUNTIME_IO_SAFETENSORS_H
