//===- IOTestUtil.h - Helpers shared by the LlamacIO tests ------*- C++ -*-===//
//
// A scratch directory per test and raw byte I/O that shares no code with the
// library, so that hand-made files are independent of our writers.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_IO_TESTS_IOTESTUTIL_H
#define LLAMAC_RUNTIME_IO_TESTS_IOTESTUTIL_H

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

/// Checks that the string `text` contains `needle`, showing both if not.
#define EXPECT_CONTAINS(text, needle)                                          \
  EXPECT_NE(std::string(text).find(needle), std::string::npos)                 \
      << "expected to find \"" << (needle) << "\" in: " << (text)

namespace llamac {
namespace io {
namespace testing {

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/llamac-io-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    char *made = ::mkdtemp(buf.data());
    EXPECT_NE(made, nullptr) << "mkdtemp failed for " << tmpl;
    path_ = made ? made : tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }
  /// Names of the entries of the directory (or of `sub` in it), sorted.
  std::vector<std::string> list(const std::string &sub = "") const {
    std::vector<std::string> names;
    for (const auto &e : std::filesystem::directory_iterator(
             sub.empty() ? path_ : path_ + "/" + sub))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

private:
  std::string path_;
};

inline void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

/// `v` as `n` little-endian bytes.
inline std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

} // namespace testing
} // namespace io
} // namespace llamac

#endif // LLAMAC_RUNTIME_IO_TESTS_IOTESTUTIL_H
