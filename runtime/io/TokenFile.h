//===- TokenFile.h - The llamac token file format ---------------*- C++ -*-===//
//
// A token file holds one stream of token ids (DESIGN.md A3). Format, all
// integers little-endian (also in docs/token-format.md):
//
//   offset  size  field
//   0       8     magic, the ASCII bytes "LLAMACTK"
//   8       4     u32 version, = 1
//   12      4     u32 bytes_per_token: 2 (ids stored as u16) or 4 (u32)
//   16      8     u64 vocab_size, >= 1; every id is < vocab_size
//   24      8     u64 count, the number of tokens
//   32      count * bytes_per_token   the ids, in stream order
//
// The file size is exactly 32 + count * bytes_per_token. The writer uses
// 2-byte ids when vocab_size <= 65536 and 4-byte ids otherwise; the reader
// accepts either width for any vocabulary size.
//
// Several files, or a directory of `*.tok` shards (sorted by file name, byte
// order), form one stream: TokenStream concatenates them, and a sequence may
// span a shard boundary.
//
// Errors: functions return false and set `error` to one line that names the
// file, the field or value, and what was expected (DESIGN.md A7). Nothing
// throws; the library is also linked into -fno-exceptions tools.
//
// Equivalent to: a nanoGPT/llm.c `.bin` shard (flat uint16 ids behind a small
// header), with the vocabulary size recorded and checked.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_IO_TOKENFILE_H
#define LLAMAC_RUNTIME_IO_TOKENFILE_H

#include "io/FileUtil.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace llamac {
namespace io {

constexpr char kTokenFileMagic[8] = {'L', 'L', 'A', 'M', 'A', 'C', 'T', 'K'};
constexpr uint32_t kTokenFileVersion = 1;
constexpr uint64_t kTokenFileHeaderBytes = 32;

/// Writes `tokens` as a token file at `path`, atomically: the bytes go to
/// `path.tmp.<pid>`, which is fsync'ed and renamed onto `path`; on failure
/// nothing is left behind. Ids are stored as u16 when vocabSize <= 65536,
/// else as u32. Fails when vocabSize is 0 or some id is >= vocabSize.
bool writeTokenFile(const std::string &path,
                    const std::vector<uint32_t> &tokens, uint64_t vocabSize,
                    std::string &error);

/// A read-only, memory-mapped token file. open() validates the whole file:
/// its size against the header, the magic, version and width, and every id
/// against vocab_size (one scan). Movable, not copyable.
class TokenFile {
public:
  TokenFile() = default;
  TokenFile(TokenFile &&other) noexcept { *this = std::move(other); }
  TokenFile &operator=(TokenFile &&other) noexcept;
  TokenFile(const TokenFile &) = delete;
  TokenFile &operator=(const TokenFile &) = delete;

  bool open(const std::string &path, std::string &error);
  void close();
  bool isOpen() const { return isOpen_; }

  const std::string &path() const { return path_; }
  uint64_t count() const { return count_; }
  uint64_t vocabSize() const { return vocabSize_; }
  uint32_t bytesPerToken() const { return bytesPerToken_; }

  /// The id at index `i`. Precondition: i < count().
  uint32_t at(uint64_t i) const {
    const uint8_t *p = tokens_ + i * bytesPerToken_;
    return bytesPerToken_ == 2 ? detail::loadLE16(p) : detail::loadLE32(p);
  }
  /// Copies ids [begin, begin + n) to `out`. Precondition: begin + n <=
  /// count() and vocabSize() <= 2^31 (so that ids fit int32).
  void copyTo(uint64_t begin, uint64_t n, int32_t *out) const;

private:
  detail::MappedFile file_;
  std::string path_;
  const uint8_t *tokens_ = nullptr;
  uint64_t count_ = 0;
  uint64_t vocabSize_ = 0;
  uint32_t bytesPerToken_ = 0;
  bool isOpen_ = false;
};

/// One stream over several token files in order. All files must have the
/// same vocab_size. Movable, not copyable.
class TokenStream {
public:
  /// Opens each path in order; a directory stands for its `*.tok` files
  /// sorted by name (a directory without any is an error). An empty list is
  /// an error.
  bool open(const std::vector<std::string> &paths, std::string &error);
  bool open(const std::string &path, std::string &error) {
    return open(std::vector<std::string>{path}, error);
  }

  uint64_t count() const { return total_; }
  uint64_t vocabSize() const { return vocabSize_; }
  size_t numFiles() const { return files_.size(); }
  const TokenFile &file(size_t i) const { return files_[i]; }

  /// The id at stream index `i`. Precondition: i < count().
  uint32_t at(uint64_t i) const;
  /// Copies stream ids [begin, begin + n) to `out`, across file boundaries.
  /// Precondition: begin + n <= count() and vocabSize() <= 2^31.
  void copyTo(uint64_t begin, uint64_t n, int32_t *out) const;

private:
  /// Index of the file that holds stream index `i`.
  size_t fileIndexOf(uint64_t i) const;

  std::vector<TokenFile> files_;
  std::vector<uint64_t> starts_; ///< Stream index of each file's first id.
  uint64_t total_ = 0;
  uint64_t vocabSize_ = 0;
};

} // namespace io
} // namespace llamac

#endif // LLAMAC_RUNTIME_IO_TOKENFILE_H
