//===- Trace.cpp - Chrome / Perfetto traces of a run ----------------------===//
#include "exec/Trace.h"

#include "exec/KernelTable.h"
#include "exec/PlanLoader.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace llamac {
namespace exec {

std::string traceFilePath(const std::string &path, int rank, int worldSize) {
  if (worldSize <= 1)
    return path;
  namespace fs = std::filesystem;
  const fs::path p(path);
  // The extension of the file name only ("a.d/trace" has none); a leading
  // dot ("/.trace") starts a name, not an extension.
  fs::path name = p.filename();
  fs::path renamed = name.stem();
  renamed += ".rank" + std::to_string(rank);
  renamed += name.extension();
  return (p.parent_path() / renamed).string();
}

namespace {

constexpr const char *kLaneNames[] = {"compute", "collectives", "host",
                                      "collectives (async)"};

struct HostSpec {
  const char *name, *cat;
  TraceLane lane;
};
/// By HostEvent.
constexpr HostSpec kHost[] = {
    {"step", "host", TraceLane::Host},
    {"data", "host", TraceLane::Host},
    {"log", "host", TraceLane::Host},
    {"checkpoint", "host", TraceLane::Host},
    {"agree_on_failure", "comm", TraceLane::Collectives},
};

std::string jsonString(const std::string &text) {
  return nlohmann::json(text).dump();
}

/// `{"name":...,"cat":...,"ph":"X","pid":R,"tid":L,` — an event up to "ts".
std::string eventHead(const std::string &name, const char *cat, int rank,
                      TraceLane lane) {
  return "{\"name\":" + jsonString(name) + ",\"cat\":\"" + cat +
         "\",\"ph\":\"X\",\"pid\":" + std::to_string(rank) +
         ",\"tid\":" + std::to_string(static_cast<int>(lane)) + ",";
}

} // namespace

Trace::~Trace() { discard(); }

bool Trace::open(const std::string &path, const plan::Program &program,
                 int rank, int worldSize, const nlohmann::json &metadata,
                 std::string &error) {
  namespace fs = std::filesystem;
  discard();
  std::error_code ec;
  if (path.empty() || path.back() == '/' || fs::is_directory(path, ec)) {
    error = path + ": --trace names a directory; expected a file (FILE.json)";
    return false;
  }
  path_ = path;
  tmpPath_ = path + ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(tmpPath_.c_str(), "w");
  if (!file_) {
    error = path + ": cannot create trace file: " + std::strerror(errno);
    return false;
  }
  finished_ = false;
  rank_ = rank;
  step_ = 0;
  written_ = 0;

  // Every instruction's event, formatted once.
  const int numInstrs = program.instrs() ? program.instrs()->size() : 0;
  int numBuckets = 0;
  head_.assign(numInstrs, std::string());
  tail_.assign(numInstrs, std::string());
  for (int i = 0; i < numInstrs; ++i) {
    const plan::Instr &instr = *program.instrs()->Get(i);
    const KernelSpec *spec = findKernel(instr.kernel()->c_str());
    // all_slice moves no data between ranks: a compute kernel.
    const bool bucket = spec && (spec->kernel == Kernel::BucketAllReduceStart ||
                                 spec->kernel == Kernel::BucketAllReduceWait);
    const bool transfer = spec && (spec->kernel == Kernel::Send ||
                                   spec->kernel == Kernel::Recv);
    const bool collective =
        spec && (spec->kernel == Kernel::AllReduce ||
                 spec->kernel == Kernel::AllGather ||
                 spec->kernel == Kernel::ReduceScatter || bucket || transfer);
    if (spec && spec->kernel == Kernel::BucketAllReduceStart)
      ++numBuckets;
    head_[i] =
        eventHead(instr.kernel()->str(), collective ? "comm" : "kernel", rank,
                  collective ? TraceLane::Collectives : TraceLane::Compute);
    // The bytes an instruction writes; a send's are those it sends.
    int64_t bytes = 0;
    const auto *operands = spec && spec->kernel == Kernel::Send
                               ? instr.inputs()
                               : instr.outputs();
    if (operands)
      for (int32_t t : *operands) {
        const plan::Tensor &tensor = *program.tensors()->Get(t);
        bytes += numElements(tensor) * dtypeBytes(tensor.dtype());
      }
    std::string &tail = tail_[i];
    tail = ",\"microbatch\":" + std::to_string(instr.microbatch());
    if (instr.phase() != plan::Phase::None)
      tail += std::string(",\"phase\":\"") +
              (instr.phase() == plan::Phase::Forward ? "forward" : "backward") +
              "\"";
    tail += ",\"instr\":" + std::to_string(i) +
            ",\"loc\":" + jsonString(instr.loc() ? instr.loc()->str() : "") +
            ",\"bytes\":" + std::to_string(bytes);
    // List and string attributes (the collectives' grid_axes and
    // reduction, the vocabulary shards' shard_axes).
    AttrValues values;
    std::string why;
    if (spec && resolveAttrs(*spec, instr, values, why))
      for (int a = 0; a < spec->numAttrs; ++a) {
        const AttrSpec &attr = spec->attrs[a];
        if (attr.kind == AttrKind::IntList && values.list[a])
          tail += ",\"" + std::string(attr.name) + "\":" +
                  nlohmann::json(std::vector<int64_t>(values.list[a]->begin(),
                                                      values.list[a]->end()))
                      .dump();
        else if (attr.kind == AttrKind::String && values.text[a])
          tail += ",\"" + std::string(attr.name) +
                  "\":" + jsonString(values.text[a]->str());
        else if ((bucket || transfer) && attr.kind == AttrKind::Int)
          tail += ",\"" + std::string(attr.name) +
                  "\":" + std::to_string(values.integer[a]);
      }
    tail += "}}";
  }
  batchBytes_ = 0;
  if (program.arguments())
    for (const plan::Argument *arg : *program.arguments())
      if (arg->role() &&
          (arg->role()->str() == "tokens" || arg->role()->str() == "targets")) {
        const plan::Tensor &t = *program.tensors()->Get(arg->tensor());
        batchBytes_ += numElements(t) * dtypeBytes(t.dtype());
      }

  nlohmann::json meta =
      metadata.is_object() ? metadata : nlohmann::json::object();
  meta["rank"] = rank;
  meta["world_size"] = worldSize;
  meta["clock"] = "steady_clock; ts and dur in microseconds from the run's "
                  "start";
  metadata_ = meta.dump();

  events_.clear();
  events_.reserve(numInstrs + numBuckets + 16);
  details_.clear();
  buffer_.clear();
  buffer_.reserve(256 * (numInstrs + 16));

  // The header and the names of the process and its lanes.
  std::string header = "{\"traceEvents\":[\n";
  const std::string pid = std::to_string(rank);
  header += "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + pid +
            ",\"tid\":0,\"args\":{\"name\":\"rank " + pid + "\"}},\n";
  header += "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":" + pid +
            ",\"tid\":0,\"args\":{\"sort_index\":" + pid + "}}";
  // The communication thread's lane only where there are buckets.
  const int lanes = numBuckets > 0 ? 4 : 3;
  for (int lane = 0; lane < lanes; ++lane)
    header += ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" + pid +
              ",\"tid\":" + std::to_string(lane) + ",\"args\":{\"name\":\"" +
              kLaneNames[lane] + "\"}}";
  append(header);
  origin_ = Clock::now();
  return true;
}

void Trace::host(HostEvent what, Clock::time_point begin, Clock::time_point end,
                 const std::string &detail) {
  if (!file_)
    return;
  int32_t d = -1;
  if (!detail.empty()) {
    d = static_cast<int32_t>(details_.size());
    details_.push_back(detail);
  }
  events_.push_back({-1 - static_cast<int32_t>(what), d, step_, begin, end});
}

void Trace::append(const std::string &text) {
  if (file_)
    std::fwrite(text.data(), 1, text.size(), file_);
}

void Trace::flushStep() {
  if (!file_ || events_.empty())
    return;
  // Host events are recorded when they end: order by start (the longer
  // first, so that a span precedes what it contains). std::sort: no buffer.
  std::sort(events_.begin(), events_.end(), [](const Event &a, const Event &b) {
    if (a.begin != b.begin)
      return a.begin < b.begin;
    if (a.end != b.end)
      return a.end > b.end;
    return a.what < b.what;
  });
  auto us = [&](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count();
  };
  buffer_.clear();
  char numbers[96];
  for (const Event &e : events_) {
    buffer_ += ",\n";
    const HostSpec *h = e.what < 0 ? &kHost[-1 - e.what] : nullptr;
    if (e.bucket)
      buffer_ += eventHead("bucket_all_reduce", "comm", rank_,
                           TraceLane::AsyncCollectives);
    else if (h)
      buffer_ += eventHead(h->name, h->cat, rank_, h->lane);
    else
      buffer_ += head_[e.what];
    std::snprintf(numbers, sizeof numbers,
                  "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%lld",
                  us(e.begin - origin_), us(e.end - e.begin),
                  static_cast<long long>(e.step));
    buffer_ += numbers;
    if (e.bucket) {
      std::snprintf(numbers, sizeof numbers, ",\"queued_us\":%.3f",
                    us(e.begin - e.posted));
      buffer_ += numbers;
    }
    if (!h) {
      buffer_ += tail_[e.what];
      continue;
    }
    if (e.what == -1 - static_cast<int32_t>(HostEvent::Data))
      buffer_ += ",\"microbatch\":0,\"bytes\":" + std::to_string(batchBytes_);
    if (e.detail >= 0)
      buffer_ += ",\"path\":" + jsonString(details_[e.detail]);
    buffer_ += "}}";
  }
  append(buffer_);
  written_ += static_cast<int64_t>(events_.size());
  events_.clear();
  details_.clear();
}

bool Trace::finish(std::string &error) {
  if (!file_ || finished_)
    return true;
  flushStep();
  append("\n],\n\"displayTimeUnit\":\"ms\",\n\"metadata\":" + metadata_ +
         "}\n");
  std::FILE *f = file_;
  const bool wrote =
      !std::ferror(f) && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int err = errno;
  file_ = nullptr;
  if (std::fclose(f) != 0 || !wrote) {
    error = path_ +
            ": cannot write trace file: " + std::strerror(wrote ? errno : err);
    std::remove(tmpPath_.c_str());
    tmpPath_.clear();
    return false;
  }
  finished_ = true;
  return true;
}

bool Trace::commit(std::string &error) {
  if (tmpPath_.empty())
    return true;
  if (!finished_ && !finish(error))
    return false;
  if (::rename(tmpPath_.c_str(), path_.c_str()) != 0) {
    error = path_ + ": cannot rename " + tmpPath_ +
            " onto the trace file: " + std::strerror(errno);
    discard();
    return false;
  }
  tmpPath_.clear();
  finished_ = false;
  return true;
}

void Trace::discard() {
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
  }
  if (!tmpPath_.empty()) {
    std::remove(tmpPath_.c_str());
    tmpPath_.clear();
  }
  finished_ = false;
  events_.clear();
  details_.clear();
}

} // namespace exec
} // namespace llamac
