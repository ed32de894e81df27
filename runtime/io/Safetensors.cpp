//===- Safetensors.cpp - safetensors reader and writer --------------------===//
//
// JSON is handled with nlohmann::json in its non-throwing forms only:
// parse(..., allow_exceptions = false), type checks before every get, and
// dump() with the `replace` error handler after our own UTF-8 check.
//
//===----------------------------------------------------------------------===//

#include "io/Safetensors.h"
#include "support/Float16.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llamac's safetensors I/O assumes a little-endian host"
#endif

namespace llamac {
namespace io {

using json = nlohmann::json;

//===----------------------------------------------------------------------===//
// DTypes
//===----------------------------------------------------------------------===//

namespace {

struct DTypeEntry {
  DType dtype;
  const char *name;
  uint64_t size;
};

const DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},   {DType::I8, "I8", 1},   {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},   {DType::U16, "U16", 2}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

std::string supportedDTypes() {
  std::string s;
  for (const DTypeEntry &e : kDTypes) {
    if (!s.empty())
      s += ", ";
    s += e.name;
  }
  return s;
}

/// numel of `shape` times `elementSize`, or false on a negative dimension
/// or overflow.
bool checkedBytes(const std::vector<int64_t> &shape, uint64_t elementSize,
                  uint64_t &bytes) {
  uint64_t n = elementSize;
  for (int64_t d : shape) {
    if (d < 0)
      return false;
    uint64_t ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > UINT64_MAX / ud)
      return false;
    n *= ud;
  }
  bytes = n;
  return true;
}

std::string offsetsText(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

/// True when `s` is well-formed UTF-8 (what JSON strings must be).
bool isValidUtf8(const std::string &s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values beyond U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

std::string joinPath(const std::string &dir, const std::string &name) {
  if (dir.empty())
    return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

/// Checks names (non-empty, UTF-8, unique, not "__metadata__"), shapes and
/// data pointers; fills the byte size of each tensor.
bool validateTensors(const std::string &where,
                     const std::vector<TensorRef> &tensors,
                     std::vector<uint64_t> &bytes, std::string &error) {
  std::set<std::string> seen;
  bytes.clear();
  for (const TensorRef &t : tensors) {
    std::string prefix = where + ": cannot write tensor '" + t.name + "': ";
    if (t.name.empty() || t.name == "__metadata__" || !isValidUtf8(t.name)) {
      error = prefix +
              "expected a non-empty UTF-8 name other than \"__metadata__\"";
      return false;
    }
    if (!seen.insert(t.name).second) {
      error = prefix + "the name appears twice";
      return false;
    }
    uint64_t nb = 0;
    if (!checkedBytes(t.shape, dtypeSize(t.dtype), nb)) {
      error = prefix + "shape " + formatShape(t.shape) +
              " is invalid: expected non-negative dimensions whose size fits "
              "64 bits";
      return false;
    }
    if (nb > 0 && !t.data) {
      error =
          prefix + "data pointer is null for " + std::to_string(nb) + " bytes";
      return false;
    }
    bytes.push_back(nb);
  }
  return true;
}

} // namespace

const char *dtypeName(DType dtype) {
  for (const DTypeEntry &e : kDTypes)
    if (e.dtype == dtype)
      return e.name;
  return "?";
}

bool parseDType(const std::string &name, DType &out) {
  for (const DTypeEntry &e : kDTypes) {
    if (name == e.name) {
      out = e.dtype;
      return true;
    }
  }
  return false;
}

uint64_t dtypeSize(DType dtype) {
  for (const DTypeEntry &e : kDTypes)
    if (e.dtype == dtype)
      return e.size;
  return 0;
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<uint64_t>(d);
  return n;
}

std::string formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

//===----------------------------------------------------------------------===//
// SafetensorsFile
//===----------------------------------------------------------------------===//

/// Parses one header entry into `info`; `where` is "<path>: tensor '<name>'".
static bool parseTensorEntry(const std::string &where, const json &v,
                             uint64_t bufferSize, TensorInfo &info,
                             std::string &error) {
  if (!v.is_object()) {
    error = where + ": header entry is a JSON " + v.type_name() +
            ", expected an object with \"dtype\", \"shape\" and "
            "\"data_offsets\"";
    return false;
  }
  // dtype
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) {
    error = where + ": expected a string field \"dtype\"";
    return false;
  }
  const std::string &dtName = dt->get_ref<const std::string &>();
  if (!parseDType(dtName, info.dtype)) {
    error = where + ": unknown dtype \"" + dtName + "\": expected one of " +
            supportedDTypes();
    return false;
  }
  // shape
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) {
    error = where + ": expected an array field \"shape\"";
    return false;
  }
  info.shape.clear();
  for (const json &d : *sh) {
    if (!d.is_number_unsigned() ||
        d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      error = where + ": shape entry " + d.dump() +
              " is invalid: expected a non-negative integer";
      return false;
    }
    info.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  // data_offsets
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 ||
      !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
    error = where + ": expected a field \"data_offsets\" of two non-negative "
                    "integers [begin, end]";
    return false;
  }
  info.begin = (*off)[0].get<uint64_t>();
  info.end = (*off)[1].get<uint64_t>();
  if (info.begin > info.end) {
    error = where + ": data_offsets " + offsetsText(info.begin, info.end) +
            " are reversed: expected begin <= end";
    return false;
  }
  if (info.end > bufferSize) {
    error = where + ": data_offsets " + offsetsText(info.begin, info.end) +
            " lie outside the data buffer of " + std::to_string(bufferSize) +
            " bytes";
    return false;
  }
  uint64_t bytes = 0;
  bool fits = checkedBytes(info.shape, dtypeSize(info.dtype), bytes);
  if (!fits || bytes != info.end - info.begin) {
    error = where + ": shape " + formatShape(info.shape) + " of dtype " +
            dtName + " needs " +
            (fits ? std::to_string(bytes) : std::string("> 2^64")) +
            " bytes, but data_offsets " + offsetsText(info.begin, info.end) +
            " hold " + std::to_string(info.end - info.begin) + " bytes";
    return false;
  }
  return true;
}

bool SafetensorsFile::open(const std::string &path, std::string &error) {
  file_.close();
  path_.clear();
  bufferOffset_ = 0;
  tensors_.clear();
  byName_.clear();
  metadata_.clear();

  detail::MappedFile file;
  if (!file.open(path, "safetensors file", error))
    return false;
  const uint8_t *p = file.data();
  const uint64_t size = file.size();

  // 1. Header length and JSON.
  if (size < 8) {
    error = path + ": safetensors file is too short (" + std::to_string(size) +
            " bytes): expected at least the 8-byte header length";
    return false;
  }
  const uint64_t headerLen = detail::loadLE64(p);
  if (headerLen > size - 8) {
    error = path + ": header length " + std::to_string(headerLen) +
            " extends beyond the end of the file: expected at most " +
            std::to_string(size - 8) + " (file size " + std::to_string(size) +
            " - 8)";
    return false;
  }
  const char *text = reinterpret_cast<const char *>(p + 8);
  json header = json::parse(text, text + headerLen, /*cb=*/nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    error = path + ": malformed JSON in the safetensors header (" +
            std::to_string(headerLen) + " bytes)";
    return false;
  }
  if (!header.is_object()) {
    error = path + ": safetensors header is a JSON " + header.type_name() +
            ", expected an object";
    return false;
  }
  const uint64_t bufferSize = size - 8 - headerLen;

  // 2. Entries.
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const json &v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) {
        error = path + ": \"__metadata__\" is a JSON " +
                std::string(v.type_name()) + ", expected an object of strings";
        return false;
      }
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          error = path + ": \"__metadata__\" entry '" + m.key() +
                  "' is a JSON " + m.value().type_name() +
                  ", expected a string";
          return false;
        }
        metadata[m.key()] = m.value().get_ref<const std::string &>();
      }
      continue;
    }
    TensorInfo info;
    info.name = name;
    if (!parseTensorEntry(path + ": tensor '" + name + "'", v, bufferSize, info,
                          error))
      return false;
    tensors.push_back(std::move(info));
  }

  // 3. No two tensors share bytes (empty tensors occupy none).
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo &a, const TensorInfo &b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  const TensorInfo *prev = nullptr;
  for (const TensorInfo &t : tensors) {
    if (t.begin == t.end)
      continue;
    if (prev && prev->end > t.begin) {
      error = path + ": tensors '" + prev->name + "' (data_offsets " +
              offsetsText(prev->begin, prev->end) + ") and '" + t.name +
              "' (data_offsets " + offsetsText(t.begin, t.end) +
              ") overlap: expected disjoint byte ranges";
      return false;
    }
    if (!prev || t.end > prev->end)
      prev = &t;
  }

  file_ = std::move(file);
  path_ = path;
  bufferOffset_ = 8 + headerLen;
  tensors_ = std::move(tensors);
  for (size_t i = 0; i < tensors_.size(); ++i)
    byName_[tensors_[i].name] = i;
  metadata_ = std::move(metadata);
  return true;
}

const TensorInfo *SafetensorsFile::find(const std::string &name) const {
  auto it = byName_.find(name);
  return it == byName_.end() ? nullptr : &tensors_[it->second];
}

bool SafetensorsFile::readAsFloat(const std::string &name, float *out,
                                  std::string &error) const {
  const TensorInfo *t = find(name);
  if (!t) {
    error = path_ + ": no tensor named '" + name + "'";
    return false;
  }
  const uint8_t *src = data(*t);
  const uint64_t n = t->numel();
  switch (t->dtype) {
  case DType::F32:
    if (n)
      std::memcpy(out, src, n * sizeof(float));
    return true;
  case DType::F16:
    for (uint64_t i = 0; i < n; ++i)
      out[i] = halfToFloat(detail::loadLE16(src + 2 * i));
    return true;
  case DType::BF16:
    for (uint64_t i = 0; i < n; ++i)
      out[i] = bf16ToFloat(detail::loadLE16(src + 2 * i));
    return true;
  case DType::F64:
    for (uint64_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, src + 8 * i, sizeof(d));
      out[i] = static_cast<float>(d);
    }
    return true;
  default:
    error = path_ + ": tensor '" + name + "' has dtype " + dtypeName(t->dtype) +
            ", expected F32, F16, BF16 or F64 to read it as float";
    return false;
  }
}

bool SafetensorsFile::readAsFloat(const std::string &name,
                                  const std::vector<int64_t> &expectedShape,
                                  float *out, std::string &error) const {
  const TensorInfo *t = find(name);
  if (t && t->shape != expectedShape) {
    error = path_ + ": tensor '" + name + "' has shape " +
            formatShape(t->shape) + ", expected " + formatShape(expectedShape);
    return false;
  }
  return readAsFloat(name, out, error);
}

//===----------------------------------------------------------------------===//
// Writers
//===----------------------------------------------------------------------===//

bool writeSafetensors(const std::string &path,
                      const std::vector<TensorRef> &tensors,
                      std::string &error) {
  return writeSafetensors(path, tensors, {{"format", "pt"}}, error);
}

bool writeSafetensors(const std::string &path,
                      const std::vector<TensorRef> &tensors,
                      const std::map<std::string, std::string> &metadata,
                      std::string &error) {
  std::vector<uint64_t> bytes;
  if (!validateTensors(path, tensors, bytes, error))
    return false;

  // 1. Header: offsets follow the given order.
  json header = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto &kv : metadata) {
      if (!isValidUtf8(kv.first) || !isValidUtf8(kv.second)) {
        error = path + ": cannot write metadata entry '" + kv.first +
                "': expected UTF-8 text";
        return false;
      }
      m[kv.first] = kv.second;
    }
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    json entry = json::object();
    entry["dtype"] = dtypeName(tensors[i].dtype);
    entry["shape"] = tensors[i].shape;
    entry["data_offsets"] = json::array({offset, offset + bytes[i]});
    header[tensors[i].name] = std::move(entry);
    offset += bytes[i];
  }
  std::string text =
      header.dump(-1, ' ', false, json::error_handler_t::replace);
  // Pad with spaces so that the data buffer starts 8-byte aligned.
  while ((8 + text.size()) % 8 != 0)
    text += ' ';

  // 2. Length, header, data.
  uint8_t lengthBytes[8];
  detail::storeLE64(lengthBytes, text.size());
  detail::AtomicFileWriter writer;
  if (!writer.begin(path, error) || !writer.write(lengthBytes, 8, error) ||
      !writer.write(text.data(), text.size(), error))
    return false;
  for (size_t i = 0; i < tensors.size(); ++i)
    if (bytes[i] && !writer.write(tensors[i].data, bytes[i], error))
      return false;
  return writer.commit(error);
}

/// Removes `path` if it exists.
static bool removeStale(const std::string &path, std::string &error) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    error = path + ": cannot remove stale file: " +
            std::generic_category().message(errno);
    return false;
  }
  return true;
}

bool writeSharded(const std::string &dir, const std::vector<TensorRef> &tensors,
                  uint64_t maxShardBytes, std::string &error) {
  std::vector<uint64_t> bytes;
  if (!validateTensors(dir, tensors, bytes, error))
    return false;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = dir + ": cannot create checkpoint directory: " + ec.message();
    return false;
  }
  uint64_t total = 0;
  for (uint64_t b : bytes)
    total += b;

  const std::string singlePath = joinPath(dir, kSafetensorsSingleName);
  const std::string indexPath = joinPath(dir, kSafetensorsIndexName);
  if (maxShardBytes == 0 || total <= maxShardBytes) {
    return writeSafetensors(singlePath, tensors, error) &&
           removeStale(indexPath, error);
  }

  // 1. Greedy split in order; a tensor larger than the limit stands alone.
  std::vector<std::vector<TensorRef>> shards;
  uint64_t shardBytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (shards.empty() ||
        (!shards.back().empty() && shardBytes + bytes[i] > maxShardBytes)) {
      shards.emplace_back();
      shardBytes = 0;
    }
    shards.back().push_back(tensors[i]);
    shardBytes += bytes[i];
  }

  // 2. Shards, then the index that makes them visible.
  json weightMap = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1,
                  shards.size());
    if (!writeSafetensors(joinPath(dir, name), shards[s], error))
      return false;
    for (const TensorRef &t : shards[s])
      weightMap[t.name] = name;
  }
  json index = json::object();
  index["metadata"] = json::object({{"total_size", total}});
  index["weight_map"] = std::move(weightMap);
  std::string text =
      index.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  return detail::writeFileAtomic(indexPath, text, error) &&
         removeStale(singlePath, error);
}

//===----------------------------------------------------------------------===//
// SafetensorsCheckpoint
//===----------------------------------------------------------------------===//

bool SafetensorsCheckpoint::open(const std::string &path, std::string &error) {
  path_ = path;
  files_.clear();
  byName_.clear();
  namespace fs = std::filesystem;
  std::error_code ec;

  // 1. A single file: the path itself or <dir>/model.safetensors.
  std::string single;
  if (fs::is_regular_file(path, ec)) {
    single = path;
  } else if (!fs::is_directory(path, ec)) {
    error = path + ": no such checkpoint file or directory";
    return false;
  } else if (fs::exists(joinPath(path, kSafetensorsSingleName), ec)) {
    single = joinPath(path, kSafetensorsSingleName);
  }
  if (!single.empty()) {
    SafetensorsFile file;
    if (!file.open(single, error))
      return false;
    for (size_t i = 0; i < file.tensors().size(); ++i)
      byName_[file.tensors()[i].name] = {0, i};
    files_.push_back(std::move(file));
    return true;
  }

  // 2. Sharded: the index's weight_map.
  const std::string indexPath = joinPath(path, kSafetensorsIndexName);
  if (!fs::exists(indexPath, ec)) {
    error = path + ": checkpoint directory contains neither " +
            kSafetensorsSingleName + " nor " + kSafetensorsIndexName;
    return false;
  }
  std::string text;
  if (!detail::readFile(indexPath, text, error))
    return false;
  json index = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded()) {
    error = indexPath + ": malformed JSON";
    return false;
  }
  if (!index.is_object()) {
    error = indexPath + ": index is a JSON " + std::string(index.type_name()) +
            ", expected an object";
    return false;
  }
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object() || wm->empty()) {
    error = indexPath + ": expected a non-empty object field \"weight_map\"";
    return false;
  }
  std::map<std::string, size_t> fileIndex; // shard name -> files_ index
  std::map<std::string, std::string> shardOf;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const json &v = it.value();
    if (!v.is_string()) {
      error = indexPath + ": weight_map entry '" + it.key() + "' is a JSON " +
              v.type_name() + ", expected a shard file name";
      return false;
    }
    const std::string &shard = v.get_ref<const std::string &>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." ||
        shard == "..") {
      error = indexPath + ": weight_map entry '" + it.key() + "' names \"" +
              shard + "\": expected a file name inside the checkpoint " +
              "directory";
      return false;
    }
    shardOf[it.key()] = shard;
    fileIndex.emplace(shard, 0);
  }
  // Open each shard once, in name order.
  for (auto &entry : fileIndex) {
    SafetensorsFile file;
    if (!file.open(joinPath(path, entry.first), error))
      return false;
    entry.second = files_.size();
    files_.push_back(std::move(file));
  }
  for (const auto &kv : shardOf) {
    size_t f = fileIndex[kv.second];
    const TensorInfo *t = files_[f].find(kv.first);
    if (!t) {
      error = files_[f].path() + ": does not contain tensor '" + kv.first +
              "' that " + indexPath + " maps to it";
      return false;
    }
    byName_[kv.first] = {f,
                         static_cast<size_t>(t - files_[f].tensors().data())};
  }
  return true;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto &kv : byName_)
    out.push_back(kv.first);
  return out;
}

const TensorInfo *
SafetensorsCheckpoint::find(const std::string &name,
                            const SafetensorsFile **file) const {
  auto it = byName_.find(name);
  if (it == byName_.end())
    return nullptr;
  const SafetensorsFile &f = files_[it->second.first];
  if (file)
    *file = &f;
  return &f.tensors()[it->second.second];
}

bool SafetensorsCheckpoint::readAsFloat(const std::string &name, float *out,
                                        std::string &error) const {
  const SafetensorsFile *file = nullptr;
  if (!find(name, &file)) {
    error = path_ + ": checkpoint has no tensor named '" + name + "'";
    return false;
  }
  return file->readAsFloat(name, out, error);
}

bool SafetensorsCheckpoint::readAsFloat(
    const std::string &name, const std::vector<int64_t> &expectedShape,
    float *out, std::string &error) const {
  const SafetensorsFile *file = nullptr;
  if (!find(name, &file)) {
    error = path_ + ": checkpoint has no tensor named '" + name + "'";
    return false;
  }
  return file->readAsFloat(name, expectedShape, out, error);
}

} // namespace io
} // namespace llamac
