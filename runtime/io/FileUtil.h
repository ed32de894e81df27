//===- FileUtil.h - Memory-mapped reads and atomic writes -------*- C++ -*-===//
//
// Internal helpers of LlamacIO (not part of its public API):
//  - MappedFile: a read-only mmap of a whole regular file;
//  - AtomicFileWriter: writes `path` through a temporary `path.tmp.<pid>`,
//    then fsync + rename + fsync of the directory, so that a reader (or a
//    crash) sees either the previous file or the complete new one
//    (DESIGN.md A5, A7: no partial output left behind).
//
// Errors are reported through `bool` + `std::string &error` (one line that
// names the file), never by exceptions: the library is also linked into
// -fno-exceptions tools.
//
// NOTE: a mapped file that another process truncates while it is mapped
// raises SIGBUS on access; files are expected to be immutable while in use
// (they are replaced by rename, which keeps the old inode alive).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_IO_FILEUTIL_H
#define LLAMAC_RUNTIME_IO_FILEUTIL_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace llamac {
namespace io {
namespace detail {

/// A read-only, private memory map of a whole regular file. Movable, not
/// copyable; unmaps on destruction. An empty file maps to data() == nullptr.
class MappedFile {
public:
  MappedFile() = default;
  ~MappedFile() { close(); }
  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  /// Maps `path`. `what` describes the expected content in errors
  /// ("token file", "safetensors file").
  bool open(const std::string &path, const char *what, std::string &error);
  void close();

  const uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }

private:
  const uint8_t *data_ = nullptr;
  uint64_t size_ = 0;
};

/// Streams bytes to `path.tmp.<pid>` and renames it onto `path` on commit().
/// Destroying (or abandon()ing) an uncommitted writer removes the temporary.
class AtomicFileWriter {
public:
  AtomicFileWriter() = default;
  ~AtomicFileWriter() { abandon(); }
  AtomicFileWriter(const AtomicFileWriter &) = delete;
  AtomicFileWriter &operator=(const AtomicFileWriter &) = delete;

  bool begin(const std::string &path, std::string &error);
  bool write(const void *data, size_t size, std::string &error);
  /// fsync, close, rename onto the final path, fsync the directory.
  bool commit(std::string &error);
  /// Closes and removes the temporary file, if any.
  void abandon();

private:
  std::string path_;
  std::string tmpPath_;
  int fd_ = -1;
};

/// Writes `contents` to `path` atomically (AtomicFileWriter).
bool writeFileAtomic(const std::string &path, const std::string &contents,
                     std::string &error);

/// Reads a whole (small) file into `out`.
bool readFile(const std::string &path, std::string &out, std::string &error);

/// Decodes little-endian integers from possibly unaligned bytes.
inline uint16_t loadLE16(const uint8_t *p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t loadLE32(const uint8_t *p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t loadLE64(const uint8_t *p) {
  return static_cast<uint64_t>(loadLE32(p)) |
         (static_cast<uint64_t>(loadLE32(p + 4)) << 32);
}
inline void storeLE16(uint8_t *p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void storeLE32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void storeLE64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

} // namespace detail
} // namespace io
} // namespace llamac

#endif // LLAMAC_RUNTIME_IO_FILEUTIL_H
