//===- TokenFile.cpp - The llamac token file format -----------------------===//

#include "io/TokenFile.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace llamac {
namespace io {

using detail::loadLE16;
using detail::loadLE32;
using detail::loadLE64;

namespace {

/// The 8 magic bytes as a quoted string, non-printable bytes as \xNN.
std::string describeMagic(const uint8_t *p) {
  static const char *hex = "0123456789abcdef";
  std::string s = "\"";
  for (int i = 0; i < 8; ++i) {
    uint8_t c = p[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      s += static_cast<char>(c);
    } else {
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    }
  }
  return s + "\"";
}

/// Header + ids of `count` tokens of `width` bytes, or false on overflow.
bool expectedFileSize(uint64_t count, uint32_t width, uint64_t &size) {
  if (count > (UINT64_MAX - kTokenFileHeaderBytes) / width)
    return false;
  size = kTokenFileHeaderBytes + count * width;
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

bool writeTokenFile(const std::string &path,
                    const std::vector<uint32_t> &tokens, uint64_t vocabSize,
                    std::string &error) {
  if (vocabSize == 0) {
    error = path + ": cannot write token file with vocab_size 0: expected >= 1";
    return false;
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocabSize) {
      error = path + ": cannot write token " + std::to_string(i) + " with id " +
              std::to_string(tokens[i]) + ": expected < vocab_size " +
              std::to_string(vocabSize);
      return false;
    }
  }
  const uint32_t width = vocabSize <= 65536 ? 2 : 4;

  uint8_t header[kTokenFileHeaderBytes];
  std::memcpy(header, kTokenFileMagic, 8);
  detail::storeLE32(header + 8, kTokenFileVersion);
  detail::storeLE32(header + 12, width);
  detail::storeLE64(header + 16, vocabSize);
  detail::storeLE64(header + 24, tokens.size());

  detail::AtomicFileWriter writer;
  if (!writer.begin(path, error) ||
      !writer.write(header, sizeof(header), error))
    return false;
  // Encode in bounded chunks so a large stream needs no second full copy.
  constexpr size_t kChunk = 1 << 16;
  std::vector<uint8_t> buffer(kChunk * width);
  for (size_t begin = 0; begin < tokens.size(); begin += kChunk) {
    size_t n = std::min(kChunk, tokens.size() - begin);
    for (size_t i = 0; i < n; ++i) {
      if (width == 2)
        detail::storeLE16(&buffer[i * 2],
                          static_cast<uint16_t>(tokens[begin + i]));
      else
        detail::storeLE32(&buffer[i * 4], tokens[begin + i]);
    }
    if (!writer.write(buffer.data(), n * width, error))
      return false;
  }
  return writer.commit(error);
}

//===----------------------------------------------------------------------===//
// TokenFile
//===----------------------------------------------------------------------===//

TokenFile &TokenFile::operator=(TokenFile &&other) noexcept {
  if (this != &other) {
    file_ = std::move(other.file_);
    path_ = std::move(other.path_);
    tokens_ = other.tokens_;
    count_ = other.count_;
    vocabSize_ = other.vocabSize_;
    bytesPerToken_ = other.bytesPerToken_;
    isOpen_ = other.isOpen_;
    other.close();
  }
  return *this;
}

void TokenFile::close() {
  file_.close();
  path_.clear();
  tokens_ = nullptr;
  count_ = 0;
  vocabSize_ = 0;
  bytesPerToken_ = 0;
  isOpen_ = false;
}

bool TokenFile::open(const std::string &path, std::string &error) {
  close();
  detail::MappedFile file;
  if (!file.open(path, "token file", error))
    return false;
  const uint8_t *p = file.data();
  const uint64_t size = file.size();

  // 1. Header.
  if (size < kTokenFileHeaderBytes) {
    error = path + ": token file is too short (" + std::to_string(size) +
            " bytes): expected at least the " +
            std::to_string(kTokenFileHeaderBytes) + "-byte header";
    return false;
  }
  if (std::memcmp(p, kTokenFileMagic, 8) != 0) {
    error = path + ": bad magic " + describeMagic(p) +
            ": expected \"LLAMACTK\" (not a llamac token file)";
    return false;
  }
  uint32_t version = loadLE32(p + 8);
  if (version != kTokenFileVersion) {
    error = path + ": unsupported token file version " +
            std::to_string(version) + ": expected " +
            std::to_string(kTokenFileVersion);
    return false;
  }
  uint32_t width = loadLE32(p + 12);
  if (width != 2 && width != 4) {
    error = path + ": unsupported bytes_per_token " + std::to_string(width) +
            ": expected 2 (uint16 ids) or 4 (uint32 ids)";
    return false;
  }
  uint64_t vocab = loadLE64(p + 16);
  if (vocab == 0) {
    error = path + ": vocab_size is 0: expected >= 1";
    return false;
  }
  uint64_t count = loadLE64(p + 24);

  // 2. Size against the header's count.
  uint64_t expected = 0;
  if (!expectedFileSize(count, width, expected) || size < expected) {
    error = path + ": token file is truncated: header count " +
            std::to_string(count) + " of " + std::to_string(width) +
            "-byte ids needs " +
            (expected ? std::to_string(expected) : std::string("> 2^64")) +
            " bytes, file has " + std::to_string(size);
    return false;
  }
  if (size > expected) {
    error = path + ": token file has " + std::to_string(size - expected) +
            " trailing bytes: header count " + std::to_string(count) + " of " +
            std::to_string(width) + "-byte ids needs exactly " +
            std::to_string(expected) + " bytes, file has " +
            std::to_string(size);
    return false;
  }

  // 3. Every id < vocab_size. 2-byte ids cannot exceed 65535.
  const uint8_t *ids = p + kTokenFileHeaderBytes;
  if (!(width == 2 && vocab > 65535)) {
    for (uint64_t i = 0; i < count; ++i) {
      uint32_t id = width == 2 ? loadLE16(ids + 2 * i) : loadLE32(ids + 4 * i);
      if (id >= vocab) {
        error = path + ": token " + std::to_string(i) + " has id " +
                std::to_string(id) + ": expected < vocab_size " +
                std::to_string(vocab);
        return false;
      }
    }
  }

  file_ = std::move(file);
  path_ = path;
  tokens_ = ids;
  count_ = count;
  vocabSize_ = vocab;
  bytesPerToken_ = width;
  isOpen_ = true;
  return true;
}

void TokenFile::copyTo(uint64_t begin, uint64_t n, int32_t *out) const {
  const uint8_t *p = tokens_ + begin * bytesPerToken_;
  if (bytesPerToken_ == 2) {
    for (uint64_t i = 0; i < n; ++i)
      out[i] = static_cast<int32_t>(loadLE16(p + 2 * i));
  } else {
    for (uint64_t i = 0; i < n; ++i)
      out[i] = static_cast<int32_t>(loadLE32(p + 4 * i));
  }
}

//===----------------------------------------------------------------------===//
// TokenStream
//===----------------------------------------------------------------------===//

/// Appends the `*.tok` regular files of directory `dir`, sorted by name.
static bool listShards(const std::string &dir, std::vector<std::string> &out,
                       std::string &error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) {
    error = dir + ": cannot list token directory: " + ec.message();
    return false;
  }
  std::vector<std::string> names;
  for (; it != end; it.increment(ec)) {
    if (ec) {
      error = dir + ": cannot list token directory: " + ec.message();
      return false;
    }
    const fs::path &p = it->path();
    if (p.extension() == ".tok" && it->is_regular_file(ec))
      names.push_back(p.filename().string());
  }
  if (ec) {
    error = dir + ": cannot list token directory: " + ec.message();
    return false;
  }
  if (names.empty()) {
    error = dir + ": directory contains no *.tok token files";
    return false;
  }
  std::sort(names.begin(), names.end());
  std::string prefix = dir;
  if (prefix.back() != '/')
    prefix += '/';
  for (const std::string &name : names)
    out.push_back(prefix + name);
  return true;
}

bool TokenStream::open(const std::vector<std::string> &paths,
                       std::string &error) {
  files_.clear();
  starts_.clear();
  total_ = 0;
  vocabSize_ = 0;
  if (paths.empty()) {
    error = "no token files given: expected at least one file or directory";
    return false;
  }
  std::vector<std::string> expanded;
  for (const std::string &path : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      if (!listShards(path, expanded, error))
        return false;
    } else {
      expanded.push_back(path);
    }
  }

  std::vector<TokenFile> files;
  std::vector<uint64_t> starts;
  uint64_t total = 0;
  for (const std::string &path : expanded) {
    TokenFile file;
    if (!file.open(path, error))
      return false;
    if (!files.empty() && file.vocabSize() != files.front().vocabSize()) {
      error = path + ": vocab_size " + std::to_string(file.vocabSize()) +
              " differs from vocab_size " +
              std::to_string(files.front().vocabSize()) + " of " +
              files.front().path() + ": all token files of a stream must " +
              "share one vocabulary";
      return false;
    }
    starts.push_back(total);
    total += file.count();
    files.push_back(std::move(file));
  }
  vocabSize_ = files.front().vocabSize();
  files_ = std::move(files);
  starts_ = std::move(starts);
  total_ = total;
  return true;
}

size_t TokenStream::fileIndexOf(uint64_t i) const {
  // The last file whose start is <= i (empty files share a start with the
  // next one and are skipped by upper_bound).
  auto it = std::upper_bound(starts_.begin(), starts_.end(), i);
  return static_cast<size_t>(it - starts_.begin()) - 1;
}

uint32_t TokenStream::at(uint64_t i) const {
  size_t f = fileIndexOf(i);
  return files_[f].at(i - starts_[f]);
}

void TokenStream::copyTo(uint64_t begin, uint64_t n, int32_t *out) const {
  if (n == 0)
    return;
  size_t f = fileIndexOf(begin);
  while (n > 0) {
    uint64_t local = begin - starts_[f];
    uint64_t take = std::min(n, files_[f].count() - local);
    files_[f].copyTo(local, take, out);
    out += take;
    begin += take;
    n -= take;
    ++f;
  }
}

} // namespace io
} // namespace llamac
