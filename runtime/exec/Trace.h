//===- Trace.h - Chrome / Perfetto traces of a run --------------*- C++ -*-===//
//
// `llamac run --trace FILE.json`: a timeline of one rank's run in the Trace
// Event Format of chrome://tracing and ui.perfetto.dev, as one JSON object
//   {"traceEvents": [...], "displayTimeUnit": "ms", "metadata": {...}}.
//
// Files: every rank writes its own (traceFilePath): FILE.json with one rank,
// FILE.rank<R>.json (".rank<R>" before the extension) with several.
//
// Events: complete events ("ph": "X"), ts and dur in microseconds from the
// run's start (start()), pid = the rank, tid = a lane (TraceLane):
//   0 compute      one event per kernel call, named after the kernel (cat
//                  "kernel"); args step (1-based), microbatch (the
//                  instruction's Instr.microbatch: the microbatch of a
//                  pipeline schedule it belongs to, -1 for the whole step),
//                  phase ("forward" or "backward"; only when the plan gives
//                  Instr.phase), instr, loc (the instruction's HF module),
//                  bytes (of its outputs);
//   1 collectives  the main thread's communication: one event per
//                  all_reduce, all_gather, reduce_scatter, per
//                  bucket_all_reduce_start / bucket_all_reduce_wait and per
//                  send / recv between pipeline stages (cat "comm"; args
//                  also grid_axes, reduction, bucket, and for send / recv
//                  peer (the other stage) and tag; bytes are those of the
//                  outputs, a send's those it sends; a wait or a recv lasts
//                  as long as the main thread blocked in it, a send as long
//                  as copying and posting it), and the trainer's error
//                  agreement after each step (agree_on_failure);
//   2 host         "step" spans (the whole step), "data" (filling the
//                  batch's microbatches), "log" (console and metrics),
//                  "checkpoint" (a save);
//   3 collectives (async)  the communication thread (plans with gradient
//                  buckets, under MpiComm with MPI_THREAD_MULTIPLE): one
//                  "bucket_all_reduce" per bucket and step, from the moment
//                  the thread began reducing it to the end (cat "comm";
//                  args those of its start instruction, plus queued_us,
//                  the time it waited behind earlier buckets). Overlap
//                  shows as such an event beginning before the compute
//                  lane's backward kernels end. Named only in traces of
//                  programs with buckets.
// Metadata events ("ph": "M") name the process "rank R" and the lanes.
// NOTE: a collective's duration includes the time it waits for the other
// ranks; a long all_reduce usually means another rank arrived late.
//
// With a device (`--device cuda`), the compute and collectives lanes hold
// the ops as the device ran them (Device::timings: CUDA events around each
// op, mapped onto the host's clock from the step's first event), and the
// async lane the buckets' reductions on the device's communication stream.
//
// Cost: nothing when tracing is off (the executor has a separate, untraced
// loop). When on, each kernel call appends (instruction, begin, end) to a
// vector reserved at open(); flushStep() formats the step's events (JSON
// fragments of every instruction are built once at open()) into the
// temporary file, outside the step's own time.
//
// Files are written atomically: open() creates a temporary file beside the
// target (FILE.tmp-<pid>) so that an unwritable path fails before any step
// runs; finish() completes and fsyncs it; commit() renames it onto the
// target. A Trace destroyed (or discard()ed) before commit() removes the
// temporary file: a failed run leaves no trace file.
//
// Times come from std::chrono::steady_clock; each rank's origin is its own
// start(). The trainer calls start() as the ranks leave an agreement (a
// collective), so their timelines line up to within its latency.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TRACE_H
#define LLAMAC_RUNTIME_EXEC_TRACE_H

#include "plan/PlanFormat.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace llamac {
namespace exec {

/// The tid of an event.
enum class TraceLane : int {
  Compute = 0,
  Collectives = 1,
  Host = 2,
  AsyncCollectives = 3,
};

/// The host-side events of the trainer.
enum class HostEvent : int32_t { Step, Data, Log, Checkpoint, Agree };

/// The trace file of `rank`: `path` itself when worldSize == 1, else `path`
/// with ".rank<rank>" before the file name's extension ("t.json" ->
/// "t.rank1.json", "out/trace" -> "out/trace.rank1").
std::string traceFilePath(const std::string &path, int rank, int worldSize);

class Trace {
public:
  using Clock = std::chrono::steady_clock;

  Trace() = default;
  Trace(const Trace &) = delete;
  Trace &operator=(const Trace &) = delete;
  /// discard()s an uncommitted trace.
  ~Trace();

  /// Starts a trace of `program` (which must outlive it) run as `rank` of
  /// `worldSize`, to be written to `path` (already rank-specific; see
  /// traceFilePath): creates the temporary file and writes the metadata
  /// events. `metadata` (a JSON object) becomes the file's "metadata",
  /// with rank and world_size added. Fails when `path` is a directory or the
  /// temporary file cannot be created.
  bool open(const std::string &path, const plan::Program &program, int rank,
            int worldSize, const nlohmann::json &metadata, std::string &error);
  bool enabled() const { return file_ != nullptr; }
  const std::string &path() const { return path_; }

  /// The run's start: ts 0.
  void start() { origin_ = Clock::now(); }
  /// The 1-based step of the events recorded from now on.
  void beginStep(int64_t step) { step_ = step; }

  /// A kernel call of instruction `instr` (index in program.instrs). No
  /// allocation while the step holds fewer events than instructions + 16.
  void kernel(int32_t instr, Clock::time_point begin, Clock::time_point end) {
    events_.push_back({instr, -1, step_, begin, end, {}, false});
  }
  /// A gradient bucket's all-reduce on the communication thread: posted by
  /// instruction `startInstr` (its bucket_all_reduce_start), reduced from
  /// `begin` to `end`. Recorded at the bucket's wait.
  void bucket(int32_t startInstr, Clock::time_point posted,
              Clock::time_point begin, Clock::time_point end) {
    events_.push_back({startInstr, -1, step_, begin, end, posted, true});
  }
  /// A host event (or the trainer's agreement); nothing when not enabled().
  /// `detail` (a checkpoint's path) goes into args.path.
  void host(HostEvent what, Clock::time_point begin, Clock::time_point end,
            const std::string &detail = std::string());

  /// Formats the events recorded since the last flush, in order of their
  /// start, into the temporary file (buffered; write errors surface in
  /// finish()). Nothing when not enabled().
  void flushStep();
  /// Flushes, ends the JSON object, fsyncs and closes the temporary file.
  /// True when not enabled().
  bool finish(std::string &error);
  /// Renames the finished temporary file onto path(). True when not
  /// enabled().
  bool commit(std::string &error);
  /// Closes and removes the temporary file, if any.
  void discard();

  /// The number of events written so far (metadata events excluded).
  int64_t numEvents() const { return written_; }

private:
  struct Event {
    int32_t what;   ///< >= 0: an instruction; < 0: -1 - HostEvent.
    int32_t detail; ///< Index in details_, or -1.
    int64_t step;
    Clock::time_point begin, end;
    Clock::time_point posted = {}; ///< Buckets: when the start posted it.
    bool bucket = false; ///< The communication thread's reduction of the
                         ///< bucket started by instruction `what`.
  };
  void append(const std::string &text);

  std::string path_, tmpPath_;
  std::FILE *file_ = nullptr;
  bool finished_ = false;
  int rank_ = 0;
  Clock::time_point origin_ = Clock::now();
  int64_t step_ = 0;
  std::vector<Event> events_;
  /// Per instruction: the event up to "ts", and its args after "step".
  std::vector<std::string> head_, tail_;
  std::vector<std::string> details_; ///< Of this step's host events.
  std::string metadata_;             ///< Dumped JSON object.
  int64_t batchBytes_ = 0;           ///< tokens + targets.
  std::string buffer_;               ///< Reused by flushStep().
  int64_t written_ = 0;
};

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TRACE_H
