//===- FileUtil.cpp - Memory-mapped reads and atomic writes ---------------===//

#include "io/FileUtil.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace llamac {
namespace io {
namespace detail {

static std::string errnoText(int err) {
  return std::generic_category().message(err);
}

/// The directory part of `path` ("." when there is none), for the fsync that
/// makes a rename durable.
static std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

//===----------------------------------------------------------------------===//
// MappedFile
//===----------------------------------------------------------------------===//

MappedFile::MappedFile(MappedFile &&other) noexcept
    : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile &MappedFile::operator=(MappedFile &&other) noexcept {
  if (this != &other) {
    close();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

bool MappedFile::open(const std::string &path, const char *what,
                      std::string &error) {
  close();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot open " + what + ": " + errnoText(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    error = path + ": cannot stat " + what + ": " + errnoText(errno);
    ::close(fd);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + ": is not a regular file, expected a " + what;
    ::close(fd);
    return false;
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void *p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      error = path + ": cannot mmap " + what + ": " + errnoText(errno);
      size_ = 0;
      ::close(fd);
      return false;
    }
    data_ = static_cast<const uint8_t *>(p);
  }
  // The mapping stays valid after the descriptor is closed.
  ::close(fd);
  return true;
}

void MappedFile::close() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

//===----------------------------------------------------------------------===//
// AtomicFileWriter
//===----------------------------------------------------------------------===//

bool AtomicFileWriter::begin(const std::string &path, std::string &error) {
  abandon();
  path_ = path;
  tmpPath_ = path + ".tmp." + std::to_string(::getpid());
  fd_ =
      ::open(tmpPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    error = tmpPath_ + ": cannot create temporary file for " + path + ": " +
            errnoText(errno);
    tmpPath_.clear();
    return false;
  }
  return true;
}

bool AtomicFileWriter::write(const void *data, size_t size,
                             std::string &error) {
  if (fd_ < 0) {
    error = path_ + ": write to a file that is not open";
    return false;
  }
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    // Linux transfers at most ~2 GiB per call; larger requests come back
    // partial and the loop continues.
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      error = tmpPath_ + ": write failed: " + errnoText(errno);
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool AtomicFileWriter::commit(std::string &error) {
  if (fd_ < 0) {
    error = path_ + ": commit of a file that is not open";
    return false;
  }
  if (::fsync(fd_) != 0) {
    error = tmpPath_ + ": fsync failed: " + errnoText(errno);
    return false;
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    error = tmpPath_ + ": close failed: " + errnoText(errno);
    return false;
  }
  if (::rename(tmpPath_.c_str(), path_.c_str()) != 0) {
    error =
        path_ + ": cannot rename " + tmpPath_ + " onto it: " + errnoText(errno);
    return false;
  }
  tmpPath_.clear();
  // Make the rename itself durable. Failure to open the directory (e.g. no
  // read permission) is not an error: the data is already written.
  int dirFd = ::open(parentDirectory(path_).c_str(), O_RDONLY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return true;
}

void AtomicFileWriter::abandon() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  if (!tmpPath_.empty())
    ::unlink(tmpPath_.c_str());
  tmpPath_.clear();
}

bool writeFileAtomic(const std::string &path, const std::string &contents,
                     std::string &error) {
  AtomicFileWriter writer;
  return writer.begin(path, error) &&
         writer.write(contents.data(), contents.size(), error) &&
         writer.commit(error);
}

bool readFile(const std::string &path, std::string &out, std::string &error) {
  MappedFile file;
  if (!file.open(path, "file", error))
    return false;
  out.assign(reinterpret_cast<const char *>(file.data()),
             static_cast<size_t>(file.size()));
  return true;
}

} // namespace detail
} // namespace io
} // namespace llamac
