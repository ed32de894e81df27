//===- Executor.h - Run one program of a plan ----------------------*- C++
//-*-===//
//
// An Executor owns the memory of one rank's Program and runs its
// instructions in order on the CPU backend (llamac::kernels::*<float>).
//
// Ownership: the executor owns the activation arena (arena_bytes, 64-byte
// aligned) and one buffer per Argument (parameters, optimizer moments, the
// step counter, token ids), all zero-filled at init() (buffers of 1 MiB and
// more are anonymous mappings, zeroed lazily by the OS, so that init() does
// not touch every page of a large arena). The Program (and so the LoadedPlan
// holding its bytes) must outlive the executor.
//
// Everything that can be decided once is decided in init(): kernel names are
// resolved to an enum, tensor indices to pointers, shapes to the integer
// sizes each kernel takes, attributes to numbers. run() is a loop over that
// table: no allocation, no string work, no checks (loadPlan() verified the
// program; init() assumes it).
//
// Scalars (loss, grad_norm, lr, clip coefficients) are f32 tensors of one
// element; `step` is an i64 scalar, the 0-based count of steps already taken.
//
// Low-precision storage (bf16, f16), f32 compute: the kernels run on f32.
// A bf16 or f16 operand of an instruction gets an f32 copy in a scratch
// buffer: each 16-bit input is widened into its copy (exactly) before the
// kernel, the kernel reads and writes the copies, and each 16-bit output is
// rounded from its copy to its storage type (nearest even; fp16 overflow
// gives inf) after it. An output written in place over a 16-bit input
// shares that input's copy, so the kernel works in place on f32. The
// copies' places are fixed at init(): the scratch buffer is the largest
// sum of copies any one instruction needs. Collectives on 16-bit tensors
// therefore reduce and gather in f32 (of the 16-bit values), and round
// once. `cast` converts between any two float dtypes (f32, bf16, f16, f64)
// itself, and `all_finite` reads its operands in their own dtype.
//
// Collectives (all_reduce, all_gather, reduce_scatter) go to the
// communicator given to init(): the ranks of the job (comm/Comm.h), each
// running its own program of the plan. Without one, the executor is alone
// (a LocalComm: reductions over one rank leave the data as it is). Kernels
// that depend on the rank's place in a group (all_slice, and embedding,
// target_logit, cross_entropy_grad_from_stats over a vocabulary shard) take
// it from the communicator's grid at init(). all_gather and reduce_scatter
// along a dimension other than the outermost go through one scratch buffer
// (the largest any of them needs), allocated at init().
//
// Gradient buckets (bucket_all_reduce_start / _wait): the start hands the
// bucket's span (its gradients, back to back in the arena) to
// Comm::allReduceStart and returns; the kernels after it run while the
// communicator reduces the span (MpiComm: on its communication thread); the
// wait blocks in Comm::allReduceWait. Buckets are started in program
// order, the same on every rank. A run that fails between a start and its
// wait leaves the bucket in flight: the destructor and init() wait for it
// before the memory goes (the trainer ends a multi-rank job instead).
//
// Pipeline stages (send / recv, plans with pp > 1): a send copies its
// tensor into a staging buffer of its own (one per send instruction,
// allocated at init()) and posts it with Comm::isend, so that it never
// waits for the receiving stage (a 1F1B schedule would deadlock on
// rendezvous sends) and the arena slot may be reused by the next
// instruction. The send's peer is the rank of stage `peer` with this rank's
// dp and tp coordinates on the communicator's grid. A staging buffer is
// reused only after its previous send completed, and run() waits for every
// send it posted before it returns, so no send outlives its step. A recv
// blocks (Comm::recv) until its tensor's bytes have arrived; a message of
// another size fails the run. Both move bytes, whatever the dtype.
//
// Sharded arguments (Plan.fbs shard_dim / shard_axes): the buffer holds
// this rank's block of the full tensor; argumentShard() says which, for
// the code that fills and saves arguments with full tensors (Init,
// Checkpoint).
//
// Tracing (exec/Trace.h): with setTrace(), run() records the start and end
// of every instruction, and at each bucket wait when the communication
// thread reduced the bucket; without, it runs a separate loop with no
// timing at all.
//
// Devices (exec/Device.h, `llamac run --device cuda`): with setDevice()
// before init(), the arena, the argument buffers and the scratch buffers
// are device memory, and the kernels run on the device. argument() still
// returns host memory: a mirror of each argument, so that the code that
// fills and reads arguments (Init, Checkpoint, the trainer's data and
// loss-scale writes) is the same for every backend. run() uploads the
// per-step arguments (every role but param, adam_m, adam_v) before the
// step, and the parameters and optimizer moments before the first step
// after init() (the initial weights or a checkpoint); syncToHost() brings
// those back (before a checkpoint is saved). Scalar results are downloaded
// after each run, so scalarResultPtr() is host memory too; tensorData() is
// device memory. An op whose float operands mix dtypes gets f32 copies on
// the device, as on the CPU; the others run natively in their dtype.
// In a job of several ranks the device joins the others at init()
// (Device::connect: NCCL on GPUs) and runs the collectives itself; the
// communicator given to init() serves the host side (the bootstrap,
// checkpoints, error agreement).
//
// NOTE: run() does not advance `step`; the caller (Trainer) sets it before
// each run.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_EXECUTOR_H
#define LLAMAC_RUNTIME_EXEC_EXECUTOR_H

#include "exec/Device.h"
#include "exec/KernelTable.h"
#include "plan/PlanFormat.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llamac {
namespace comm {
class Comm;
} // namespace comm

namespace exec {

class Trace;

/// The learning rate of 0-based step `step` (docs/plan-format.md,
/// DESIGN.md A2), computed in double: linear warmup `lr * (s+1) / warmup`
/// for s < warmup, then cosine from lr to minLr until decaySteps, then
/// minLr; decaySteps = 0 means constant lr after the warmup.
double scheduledLearningRate(int64_t step, double lr, double minLr,
                             int64_t warmupSteps, int64_t decaySteps);

/// y = x converted from `from` to `to` (f32, bf16, f16, f64) on the CPU,
/// rounding to nearest even; the same dtype is a copy.
void castTensor(const void *x, plan::DType from, void *y, plan::DType to,
                int64_t n);

class Executor {
public:
  Executor() = default;
  Executor(Executor &&) = default;
  /// Not move-assignable: the memory of buckets in flight must outlive
  /// their reduction (the destructor waits for it first).
  Executor &operator=(Executor &&) = delete;
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;
  /// Waits for the buckets a failed run left in flight, then frees.
  ~Executor();

  /// Prepares `program` (verified by loadPlan) for execution: allocates and
  /// zeroes the arena and the argument buffers, resolves every instruction.
  /// `comm` (not owned; must outlive the executor) runs the collectives;
  /// nullptr means a single rank. Fails (with a message naming the buffer
  /// and its size) when memory cannot be allocated, when the program has
  /// collectives, sharded arguments or kernels over shards and `comm` has
  /// no device grid covering its world (Comm::setGrid), or when the group
  /// sizes of that grid do not fit the program's block shapes (a plan run
  /// on another grid than its own).
  bool init(const plan::Program &program, comm::Comm *comm, std::string &error);
  /// init() for a single rank.
  bool init(const plan::Program &program, std::string &error) {
    return init(program, nullptr, error);
  }

  /// Runs the next init()'s program on `device` (not owned; must outlive
  /// the executor); nullptr: the CPU backend.
  void setDevice(Device *device) { device_ = device; }
  Device *device() const { return device_; }
  /// With a device: copies the parameters and optimizer moments from the
  /// device into their host buffers (argument()). Without one: nothing.
  bool syncToHost(std::string &error);

  /// Executes the instructions in order, then waits for the sends it
  /// posted. Fails only when a collective or a transfer fails ("instr 12
  /// 'all_reduce' (loc): <the communicator's error>"); the ranks of the job
  /// are then out of step, and the caller ends the job.
  bool run(std::string &error);

  /// The number of gradient buckets (bucket_all_reduce_start instructions).
  int numBuckets() const { return static_cast<int>(buckets_.size()); }

  /// Records every instruction run() executes into `trace` (not owned; must
  /// outlive the runs, or be reset with nullptr); nullptr: no tracing.
  void setTrace(Trace *trace) { trace_ = trace; }

  const plan::Program &program() const { return *program_; }
  int64_t arenaBytes() const { return arenaBytes_; }
  /// Sum of all argument buffer sizes.
  int64_t argumentBytesTotal() const;
  /// Bytes of the scratch buffers: the f32 copies of 16-bit operands and
  /// the blocks of all_gather / reduce_scatter.
  int64_t scratchBytes() const { return conversionBytes_ + scratchBytes_; }

  int numArguments() const { return static_cast<int>(arguments_.size()); }
  /// The buffer of argument `index` (its tensor's dtype, row-major).
  void *argument(int index) { return arguments_[index].data; }
  const void *argument(int index) const { return arguments_[index].data; }
  int64_t argumentBytes(int index) const { return arguments_[index].bytes; }
  const plan::Argument &argumentInfo(int index) const;
  const plan::Tensor &argumentTensor(int index) const;
  /// How argument `index` is split over the ranks (Plan.fbs shard_dim,
  /// shard_axes), on the communicator's grid. The full tensor, viewed as
  /// [outer, count * size, inner] around dimension `dim`, is split into
  /// `count` blocks along its middle dimension; the buffer holds block
  /// `index` (kernels::sliceBlock). A whole argument has dim = -1,
  /// count = 1, outer = inner = 1 and size = its element count; a sharded
  /// one whose group is one rank has count = 1 too.
  struct Shard {
    int dim = -1;
    std::vector<int> axes;
    int index = 0, count = 1;
    int64_t outer = 1, size = 1, inner = 1;
    std::vector<int64_t> fullShape; ///< The local shape when count = 1.
    /// Whether the buffer holds less than the full tensor.
    bool split() const { return count > 1; }
  };
  const Shard &argumentShard(int index) const { return shards_[index]; }
  /// The communicator of init() (a LocalComm when it was given none).
  comm::Comm &comm() const { return *comm_; }

  /// Index of the argument with `role` (and HF name `param` for param,
  /// adam_m, adam_v), or -1.
  int findArgument(const std::string &role,
                   const std::string &param = std::string()) const;
  /// The buffer of that argument, or nullptr.
  void *argument(const std::string &role,
                 const std::string &param = std::string());

  /// Index into Program.results of the result with `role` (and `param`), or
  /// -1.
  int findResult(const std::string &role,
                 const std::string &param = std::string()) const;
  /// Pointer to the f32 value of a scalar result (loss, grad_norm, lr), or
  /// nullptr when the program has none. Stable for the executor's life.
  const float *scalarResultPtr(const std::string &role) const;
  /// The value of a scalar result after run(); NaN when there is none.
  float scalarResult(const std::string &role) const;

  /// The memory of tensor `index` (in the arena or an argument buffer).
  void *tensorData(int index);

private:
  struct Buffer {
    void *data = nullptr;
    int64_t bytes = 0;
  };
  /// Releases a buffer from allocate(): free() or munmap().
  struct Release {
    size_t mappedBytes = 0; ///< 0: from posix_memalign.
    void operator()(void *p) const;
  };
  /// A 16-bit operand's f32 copy: widened from the tensor (`from`) into
  /// the copy (`to`) before the kernel, or rounded from the copy into the
  /// tensor after it.
  struct Conversion {
    void *from = nullptr, *to = nullptr;
    int64_t n = 0;
    plan::DType dtype; ///< The tensor's (bf16 or f16).
    int32_t operand;   ///< Input or output index in the Op.
    int64_t offset;    ///< Of the copy in conversionScratch_.
  };

  /// A gradient bucket: its start's instruction and the all-reduce in
  /// flight between its start and its wait.
  struct Bucket {
    int64_t id;
    int32_t start;
    uint64_t ticket = 0; ///< comm::Ticket
    bool inFlight = false;
  };
  /// Waits for every bucket in flight (after a failed run), ignoring
  /// errors.
  void drainBuckets();

  /// A send instruction's staging buffer and its transfer in flight.
  struct StagedSend {
    void *staging = nullptr;
    int32_t op = 0;       ///< Index in ops_, for errors.
    uint64_t ticket = 0;  ///< comm::SendTicket
    bool inFlight = false;
  };
  /// Waits for every send in flight, in program order; the first error
  /// goes to `error` (the others are still waited for).
  bool waitSends(std::string &error);
  /// Resolves a send's or recv's sizes: bytes, the peer's world rank, the
  /// tag (and for a send its staging buffer's index).
  bool resolveTransfer(Op &op, const plan::Tensor &t, std::string &error);

  /// run()'s loop; kTraced records each instruction into trace_.
  template <bool kTraced> bool runOps(std::string &error);
  /// The sum of the squares of op's operands (global_norm, sum_squares).
  double sumOfSquares(const Op &op) const;
  /// Whether every element of op's operands is finite (all_finite).
  bool operandsFinite(const Op &op) const;
  /// Plans the f32 copies of op's 16-bit operands (their offsets in the
  /// conversion scratch; pointers are set once it exists).
  void planConversions(Op &op, const plan::Instr &instr);
  /// Widens (before) or rounds (after) op's 16-bit operands.
  void convertOperands(const Op &op, bool before) const;
  /// Resolves the sizes of all_gather, reduce_scatter and all_slice and
  /// checks them against the communicator's group; false with `error`.
  bool resolveBlocks(Op &op, const plan::Tensor &x, const plan::Tensor &y,
                     std::string &error);
  /// The first row of this rank's vocabulary shard of `rows` rows: 0
  /// without the optional shard_axes attribute `attr`, else group index *
  /// rows. False with `error` when there is no grid.
  bool shardBegin(const Op &op, int attr, int64_t rows, int64_t &begin,
                  std::string &error);

  void *allocate(int64_t bytes, const std::string &what, std::string &error);
  /// allocate() on the CPU; Device::allocate with a device.
  void *memory(int64_t bytes, const std::string &what, std::string &error);
  /// With a device: connects it to the other ranks (a job of several),
  /// and checks that the arena and the arguments fit.
  bool prepareDevice(const plan::Program &program, int numArgs,
                     std::string &error);
  /// Whether op's float tensors (not its scalars or lse) share one dtype;
  /// it is then op.dtype. Devices run such ops without f32 copies.
  bool uniformOperands(Op &op, const plan::Instr &instr) const;
  void *tensorPointer(int index) const;

  /// The error of instruction op.instr: "instr 3 'all_reduce' (loc): why".
  std::string instrError(const Op &op, const std::string &why) const;

  /// Device runs: run()'s loop, uploads and downloads.
  bool runOnDevice(std::string &error);

  const plan::Program *program_ = nullptr;
  comm::Comm *comm_ = nullptr;
  Device *device_ = nullptr;
  /// Device memory of this init(), released by device_.
  std::vector<void *> deviceAllocations_;
  void releaseDeviceMemory();
  /// With a device: the device buffer of each argument (arguments_ holds
  /// the host mirrors).
  std::vector<void *> deviceArguments_;
  /// With a device: whether each argument is state the program updates
  /// (param, adam_m, adam_v) rather than a per-step input.
  std::vector<bool> stateArgument_;
  /// Whether the device holds the current parameters and moments.
  bool stateOnDevice_ = false;
  /// With a device: host copies of the scalar results, by Result index.
  std::vector<float> hostResults_;
  Trace *trace_ = nullptr;
  /// With a device and a trace: the device times its ops (startTiming()).
  bool deviceTiming_ = false;
  std::vector<DeviceTiming> deviceTimings_;
  int64_t arenaBytes_ = 0;
  void *arena_ = nullptr;
  std::vector<Buffer> arguments_;
  /// Updated state computed in the arena (ZeRO-1's all-gathered weights):
  /// copied into its argument after each run.
  struct CopyBack {
    const void *from;
    void *to;
    size_t bytes;
  };
  std::vector<CopyBack> copyBacks_;
  std::vector<std::unique_ptr<void, Release>> allocations_;
  std::vector<Op> ops_;
  std::vector<ListOperand> listOperands_;
  std::vector<Conversion> conversions_;
  void *conversionScratch_ = nullptr; ///< f32 copies of 16-bit operands.
  int64_t conversionBytes_ = 0;
  /// Grid axes of the collectives (all_reduce, all_gather, reduce_scatter).
  std::vector<std::vector<int>> groupAxes_;
  std::vector<Shard> shards_;   ///< Per argument.
  std::vector<Bucket> buckets_; ///< In program order of their starts.
  std::vector<StagedSend> sends_; ///< In program order.
  void *scratch_ = nullptr;     ///< all_gather / reduce_scatter blocks.
  int64_t scratchBytes_ = 0;
};

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_EXECUTOR_H
