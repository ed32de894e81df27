//===- Executor.cpp - Run one program of a plan ----------------------------===//
#include "exec/Executor.h"

#include "comm/Comm.h"
#include "exec/PlanLoader.h"
#include "exec/Trace.h"
#include "llamac/runtime/Kernels.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sys/mman.h>

namespace llamac {
namespace exec {

namespace k = llamac::kernels;
using plan::DType;
using plan::Storage;

namespace {

bool isLowPrecision(DType dtype) {
  return dtype == DType::BF16 || dtype == DType::F16;
}

} // namespace

void castTensor(const void *x, DType from, void *y, DType to, int64_t n) {
  if (from == to) {
    std::memcpy(y, x, static_cast<size_t>(n * dtypeBytes(from)));
    return;
  }
  const auto *f32 = static_cast<const float *>(x);
  const auto *f64 = static_cast<const double *>(x);
  const auto *u16 = static_cast<const uint16_t *>(x);
  auto *yF32 = static_cast<float *>(y);
  auto *yF64 = static_cast<double *>(y);
  auto *yU16 = static_cast<uint16_t *>(y);
  switch (from) {
  case DType::F32:
    if (to == DType::BF16)
      k::castF32ToBf16(f32, yU16, n);
    else if (to == DType::F16)
      k::castF32ToF16(f32, yU16, n);
    else
      k::castF32ToF64(f32, yF64, n);
    return;
  case DType::BF16:
    if (to == DType::F32)
      k::castBf16ToF32(u16, yF32, n);
    else if (to == DType::F16)
      k::castBf16ToF16(u16, yU16, n);
    else
      k::castBf16ToF64(u16, yF64, n);
    return;
  case DType::F16:
    if (to == DType::F32)
      k::castF16ToF32(u16, yF32, n);
    else if (to == DType::BF16)
      k::castF16ToBf16(u16, yU16, n);
    else
      k::castF16ToF64(u16, yF64, n);
    return;
  case DType::F64:
    if (to == DType::F32)
      k::castF64ToF32(f64, yF32, n);
    else if (to == DType::BF16)
      k::castF64ToBf16(f64, yU16, n);
    else
      k::castF64ToF16(f64, yU16, n);
    return;
  default: // Not a float dtype: the verifier rejects it.
    return;
  }
}

double scheduledLearningRate(int64_t step, double lr, double minLr,
                             int64_t warmupSteps, int64_t decaySteps) {
  const double s = static_cast<double>(step);
  if (warmupSteps > 0 && step < warmupSteps)
    return lr * (s + 1.0) / static_cast<double>(warmupSteps);
  if (decaySteps == 0)
    return lr;
  if (step < decaySteps) {
    // Here warmupSteps <= step < decaySteps, so the span is positive.
    const double progress = (s - static_cast<double>(warmupSteps)) /
                            static_cast<double>(decaySteps - warmupSteps);
    return minLr + 0.5 * (lr - minLr) * (1.0 + std::cos(M_PI * progress));
  }
  return minLr;
}

void Executor::Release::operator()(void *p) const {
  if (mappedBytes)
    ::munmap(p, mappedBytes);
  else
    std::free(p);
}

void *Executor::allocate(int64_t bytes, const std::string &what,
                         std::string &error) {
  constexpr size_t kAlign = 64;
  constexpr size_t kMapThreshold = size_t(1) << 20;
  size_t rounded = (static_cast<size_t>(bytes) + kAlign - 1) / kAlign * kAlign;
  void *p = nullptr;
  bool ok;
  if (rounded >= kMapThreshold) {
    // Page-aligned and zero-filled on first touch.
    p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ok = p != MAP_FAILED;
  } else {
    ok = posix_memalign(&p, kAlign, rounded) == 0 && p;
    if (ok)
      std::memset(p, 0, rounded);
  }
  if (!ok) {
    error = "cannot allocate " + std::to_string(bytes) + " bytes (" +
            std::to_string(bytes >> 20) + " MiB) for " + what;
    return nullptr;
  }
  allocations_.emplace_back(p, Release{rounded >= kMapThreshold ? rounded : 0});
  return p;
}

void *Executor::tensorPointer(int index) const {
  const plan::Tensor &t = *program_->tensors()->Get(index);
  if (t.storage() == Storage::Arena)
    return static_cast<char *>(arena_) + t.offset();
  return device_ ? deviceArguments_[t.offset()] : arguments_[t.offset()].data;
}

void Executor::releaseDeviceMemory() {
  for (void *p : deviceAllocations_)
    device_->release(p);
  deviceAllocations_.clear();
  deviceArguments_.clear();
  stateArgument_.clear();
}

bool Executor::syncToHost(std::string &error) {
  if (!device_ || !stateOnDevice_)
    return true;
  for (int a = 0; a < numArguments(); ++a)
    if (stateArgument_[a] &&
        !device_->download(arguments_[a].data, deviceArguments_[a],
                           arguments_[a].bytes, error))
      return false;
  return true;
}

/// The communicator of executors that are given none: one rank alone.
static comm::Comm &singleRank() {
  static comm::LocalComm local;
  return local;
}

Executor::~Executor() {
  drainBuckets();
  std::string ignored; // A failed run already has its error.
  waitSends(ignored);
  if (device_)
    releaseDeviceMemory();
}

bool Executor::waitSends(std::string &error) {
  bool ok = true;
  for (StagedSend &send : sends_) {
    if (!send.inFlight)
      continue;
    send.inFlight = false;
    std::string why;
    if (!comm_->waitSend(send.ticket, why) && ok) {
      error = instrError(ops_[send.op], why);
      ok = false;
    }
  }
  return ok;
}

bool Executor::resolveTransfer(Op &op, const plan::Tensor &t,
                               std::string &error) {
  // s: bytes, the peer's world rank, tag, staging buffer (send).
  int64_t *s = op.size;
  const int64_t stage = op.attrs.integer[0];
  s[0] = numElements(t) * dtypeBytes(t.dtype());
  s[2] = op.attrs.integer[1];
  if (!comm_->hasPointToPoint() || !comm_->hasGrid()) {
    error = instrError(op, "the communicator (" + std::string(comm_->name()) +
                               ", " + std::to_string(comm_->size()) +
                               " ranks) has no point-to-point transfers "
                               "between pipeline stages" +
                               (comm_->hasPointToPoint()
                                    ? " (no device grid)"
                                    : " (a pipeline plan runs under mpirun)"));
    return false;
  }
  const comm::Grid &grid = comm_->grid();
  std::array<int, comm::kGridAxes> at = grid.coords(comm_->rank());
  if (stage < 0 || stage >= grid.pp || stage == at[comm::kPipelineAxis]) {
    error = instrError(op, "peer stage " + std::to_string(stage) +
                               " is not another stage of the "
                               "communicator's grid " +
                               grid.toString() + " (this rank is on stage " +
                               std::to_string(at[comm::kPipelineAxis]) + ")");
    return false;
  }
  at[comm::kPipelineAxis] = static_cast<int>(stage);
  s[1] = grid.rankAt(at);
  if (op.kernel == Kernel::Send) {
    StagedSend send;
    send.op = static_cast<int32_t>(ops_.size());
    const std::string what = "the staging buffer of instr " +
                             std::to_string(op.instr) + " 'send'";
    if (s[0] > 0 && !(send.staging = memory(s[0], what, error)))
      return false;
    op.scratch = send.staging; // A device sends from it too.
    s[3] = static_cast<int64_t>(sends_.size());
    sends_.push_back(send);
  }
  return true;
}

void Executor::drainBuckets() {
  for (Bucket &b : buckets_) {
    if (!b.inFlight)
      continue;
    b.inFlight = false;
    std::string ignored; // The run already failed with its own error.
    comm_->allReduceWait(b.ticket, nullptr, ignored);
  }
}

bool Executor::init(const plan::Program &program, comm::Comm *comm,
                    std::string &error) {
  drainBuckets(); // Before the memory of a previous init() goes.
  if (comm_) {
    std::string ignored;
    waitSends(ignored);
  }
  sends_.clear();
  if (device_)
    releaseDeviceMemory();
  stateOnDevice_ = false;
  hostResults_.clear();
  program_ = &program;
  comm_ = comm ? comm : &singleRank();
  arenaBytes_ = program.arena_bytes();
  arguments_.clear();
  allocations_.clear();
  ops_.clear();
  listOperands_.clear();
  conversions_.clear();
  conversionScratch_ = nullptr;
  conversionBytes_ = 0;
  groupAxes_.clear();
  shards_.clear();
  buckets_.clear();
  scratch_ = nullptr;
  scratchBytes_ = 0;

  // 1. Memory: the arena and one buffer per argument (with a device: in
  // device memory, and a host mirror of each argument).
  int numArgs = program.arguments() ? program.arguments()->size() : 0;
  if (device_ && !prepareDevice(program, numArgs, error))
    return false;
  arena_ = nullptr;
  if (arenaBytes_ > 0 &&
      !(arena_ = memory(arenaBytes_, "the activation arena", error)))
    return false;
  for (int a = 0; a < numArgs; ++a) {
    const plan::Argument &arg = *program.arguments()->Get(a);
    const plan::Tensor &t = *program.tensors()->Get(arg.tensor());
    Buffer buf;
    buf.bytes = numElements(t) * dtypeBytes(t.dtype());
    std::string what = "argument " + std::to_string(a) + " (" +
                       arg.role()->str() +
                       (arg.param() ? " " + arg.param()->str() : "") + ")";
    if (!(buf.data = allocate(buf.bytes, what, error)))
      return false;
    arguments_.push_back(buf);
    if (device_) {
      void *d = memory(buf.bytes, what, error);
      if (!d)
        return false;
      deviceArguments_.push_back(d);
      // The state the program updates (uploaded once, not every step).
      const std::string role = arg.role() ? arg.role()->str() : "";
      stateArgument_.push_back(role == "param" || role == "adam_m" ||
                               role == "adam_v");
    }
    // Where this rank's block lies in the full tensor.
    Shard shard;
    if (t.shape()) // Absent for a scalar.
      shard.fullShape.assign(t.shape()->begin(), t.shape()->end());
    shard.size = numElements(t); // A whole tensor: one block, one run.
    if (arg.shard_dim() >= 0) {
      if (!comm_->hasGrid()) {
        error = what + " is sharded, but the communicator (" +
                std::string(comm_->name()) + ", " +
                std::to_string(comm_->size()) + " ranks) has no device grid";
        return false;
      }
      shard.dim = arg.shard_dim();
      shard.axes.assign(arg.shard_axes()->begin(), arg.shard_axes()->end());
      comm::AxisMask mask = 0;
      std::string ignored; // Verified by the loader.
      comm::ascendingGridAxesMask(shard.axes, mask, ignored);
      comm::Comm::GroupPosition pos = comm_->groupPosition(mask);
      shard.index = pos.index;
      shard.count = pos.size;
      for (int i = 0; i < static_cast<int>(shard.fullShape.size()); ++i) {
        int64_t d = shard.fullShape[i];
        if (i < shard.dim)
          shard.outer *= d;
        else if (i == shard.dim)
          shard.size = d;
        else
          shard.inner *= d;
      }
      shard.fullShape[shard.dim] *= shard.count;
    }
    shards_.push_back(std::move(shard));
  }

  // Updated state that lives in the arena goes back into its argument
  // (the verifier checked shapes and dtypes).
  copyBacks_.clear();
  if (program.results()) {
    for (const plan::Result *res : *program.results()) {
      std::string role = res->role() ? res->role()->str() : "";
      if (role.rfind("new_", 0) != 0)
        continue;
      const plan::Tensor &t = *program.tensors()->Get(res->tensor());
      if (t.storage() != Storage::Arena)
        continue;
      int owner = findArgument(role.substr(4),
                               res->param() ? res->param()->str() : "");
      if (owner >= 0)
        copyBacks_.push_back({tensorPointer(res->tensor()),
                              device_ ? deviceArguments_[owner]
                                      : arguments_[owner].data,
                              static_cast<size_t>(arguments_[owner].bytes)});
    }
  }

  // 2. Instructions: kernel enum, operand pointers, sizes, attributes.
  if (!program.instrs())
    return true;
  ops_.reserve(program.instrs()->size());
  for (flatbuffers::uoffset_t index = 0; index < program.instrs()->size();
       ++index) {
    const plan::Instr *instr = program.instrs()->Get(index);
    const KernelSpec *spec = findKernel(instr->kernel()->c_str());
    Op op;
    op.kernel = spec->kernel;
    op.instr = static_cast<int32_t>(index);
    std::string why;
    resolveAttrs(*spec, *instr, op.attrs, why); // Verified by the loader.
    auto inT = [&](int i) -> const plan::Tensor & {
      return *program.tensors()->Get(instr->inputs()->Get(i));
    };
    auto outT = [&](int i) -> const plan::Tensor & {
      return *program.tensors()->Get(instr->outputs()->Get(i));
    };
    auto dim = [](const plan::Tensor &t, int i) {
      int r = static_cast<int>(t.shape()->size());
      return t.shape()->Get(i < 0 ? r + i : i);
    };
    int nin = instr->inputs() ? instr->inputs()->size() : 0;
    if (op.kernel == Kernel::GlobalNorm || op.kernel == Kernel::SumSquares ||
        op.kernel == Kernel::AllFinite) {
      op.listBegin = static_cast<int32_t>(listOperands_.size());
      op.listCount = nin;
      for (int i = 0; i < nin; ++i)
        listOperands_.push_back({tensorPointer(instr->inputs()->Get(i)),
                                 numElements(inT(i)), inT(i).dtype()});
    } else if (op.kernel == Kernel::BucketAllReduceStart ||
               op.kernel == Kernel::BucketAllReduceWait) {
      // One contiguous f32 span, in place (verified): its start and size.
      op.in[0] = op.out[0] = tensorPointer(instr->inputs()->Get(0));
      for (int i = 0; i < nin; ++i)
        op.size[0] += numElements(inT(i));
    } else {
      for (int i = 0; i < nin; ++i)
        op.in[i] = tensorPointer(instr->inputs()->Get(i));
    }
    for (int o = 0; o < spec->numOutputs; ++o)
      op.out[o] = tensorPointer(instr->outputs()->Get(o));

    int64_t *s = op.size;
    switch (op.kernel) {
    case Kernel::Embedding: // n, d, v, first row, sharded
      s[0] = numElements(inT(1));
      s[1] = dim(inT(0), 1);
      s[2] = dim(inT(0), 0);
      s[4] = op.attrs.present[0];
      if (!shardBegin(op, 0, s[2], s[3], error))
        return false;
      break;
    case Kernel::EmbeddingGrad: // n, d, v, first row, sharded
      s[0] = numElements(inT(1));
      s[1] = dim(outT(0), 1);
      s[2] = dim(outT(0), 0);
      s[4] = op.attrs.present[0];
      if (!shardBegin(op, 0, s[2], s[3], error))
        return false;
      break;
    case Kernel::RmsNorm: // rows, d
      s[1] = dim(inT(1), 0);
      s[0] = numElements(inT(0)) / s[1];
      break;
    case Kernel::RmsNormGrad: // rows, d
      s[1] = dim(inT(2), 0);
      s[0] = numElements(inT(1)) / s[1];
      break;
    case Kernel::Linear:          // m, n, k from w [N, K]
    case Kernel::LinearGradInput: // m, n, k from w [N, K]
      s[1] = dim(inT(1), 0);
      s[2] = dim(inT(1), 1);
      s[0] = op.kernel == Kernel::Linear ? numElements(inT(0)) / s[2]
                                         : numElements(inT(0)) / s[1];
      break;
    case Kernel::LinearGradWeight: // m, n, k from dw [N, K]
      s[1] = dim(outT(0), 0);
      s[2] = dim(outT(0), 1);
      s[0] = numElements(inT(1)) / s[2];
      break;
    case Kernel::Rope:
    case Kernel::RopeGrad: // b, s, h, dh
      for (int i = 0; i < 4; ++i)
        s[i] = dim(inT(0), i);
      break;
    case Kernel::Attention:
    case Kernel::AttentionGrad: { // b, s, h, kv, dh
      int q = op.kernel == Kernel::Attention ? 0 : 1;
      s[0] = dim(inT(q), 0);
      s[1] = dim(inT(q), 1);
      s[2] = dim(inT(q), 2);
      s[3] = dim(inT(q + 1), 2);
      s[4] = dim(inT(q), 3);
      break;
    }
    case Kernel::CrossEntropy:
    case Kernel::CrossEntropyGrad: { // rows, v
      int l = op.kernel == Kernel::CrossEntropy ? 0 : 1;
      s[1] = dim(inT(l), -1);
      s[0] = numElements(inT(l)) / s[1];
      break;
    }
    case Kernel::Constant: // n
      s[0] = numElements(outT(0));
      break;
    case Kernel::Swiglu:
    case Kernel::SwigluGrad:
    case Kernel::Add:
    case Kernel::Scale:
    case Kernel::ClipByValue:
    case Kernel::AdamW: // n
      s[0] = numElements(inT(op.kernel == Kernel::SwigluGrad ? 1 : 0));
      break;
    case Kernel::AllReduce: { // n, axes index, reduction
      s[0] = numElements(inT(0));
      s[1] = static_cast<int64_t>(groupAxes_.size());
      comm::Reduction reduction = comm::Reduction::Sum;
      comm::parseReduction(op.attrs.text[1]->str(), reduction); // Verified.
      s[2] = static_cast<int64_t>(reduction);
      groupAxes_.emplace_back(op.attrs.list[0]->begin(),
                              op.attrs.list[0]->end());
      comm::gridAxesMask(groupAxes_.back(), op.groupMask, why); // Verified.
      if (!comm_->hasGrid()) {
        error =
            instrError(op, "the communicator (" + std::string(comm_->name()) +
                               ", " + std::to_string(comm_->size()) +
                               " ranks) has no device grid");
        return false;
      }
      break;
    }
    case Kernel::AllGather:
    case Kernel::ReduceScatter:
    case Kernel::AllSlice:
      if (!resolveBlocks(op, inT(0), outT(0), error))
        return false;
      break;
    case Kernel::BucketAllReduceStart: { // n, axes index, reduction, bucket
      s[1] = static_cast<int64_t>(groupAxes_.size());
      comm::Reduction reduction = comm::Reduction::Sum;
      comm::parseReduction(op.attrs.text[1]->str(), reduction); // Verified.
      s[2] = static_cast<int64_t>(reduction);
      groupAxes_.emplace_back(op.attrs.list[0]->begin(),
                              op.attrs.list[0]->end());
      comm::gridAxesMask(groupAxes_.back(), op.groupMask, why); // Verified.
      if (!comm_->hasGrid()) {
        error =
            instrError(op, "the communicator (" + std::string(comm_->name()) +
                               ", " + std::to_string(comm_->size()) +
                               " ranks) has no device grid");
        return false;
      }
      s[3] = static_cast<int64_t>(buckets_.size());
      buckets_.push_back({op.attrs.integer[2], op.instr});
      break;
    }
    case Kernel::BucketAllReduceWait: // n, -, -, bucket
      // The verifier matched it with an earlier start.
      for (size_t b = 0; b < buckets_.size(); ++b)
        if (buckets_[b].id == op.attrs.integer[0])
          s[3] = static_cast<int64_t>(b);
      break;
    case Kernel::RowMax:
    case Kernel::RowSumExp:
    case Kernel::TargetLogit: // rows, v, first column
      s[1] = dim(inT(0), -1);
      s[0] = numElements(inT(0)) / s[1];
      if (op.kernel == Kernel::TargetLogit &&
          !shardBegin(op, 0, s[1], s[2], error))
        return false;
      break;
    case Kernel::CrossEntropyFromStats: // rows
      s[0] = numElements(inT(0));
      break;
    case Kernel::CrossEntropyGradFromStats: // rows, v, first column
      s[1] = dim(inT(1), -1);
      s[0] = numElements(inT(1)) / s[1];
      if (!shardBegin(op, 1, s[1], s[2], error))
        return false;
      break;
    case Kernel::Cast: // n, from, to
      s[0] = numElements(inT(0));
      s[1] = static_cast<int64_t>(inT(0).dtype());
      s[2] = static_cast<int64_t>(outT(0).dtype());
      break;
    case Kernel::Send:
    case Kernel::Recv:
      if (!resolveTransfer(op, op.kernel == Kernel::Send ? inT(0) : outT(0),
                           error))
        return false;
      break;
    case Kernel::GlobalNorm:
    case Kernel::SumSquares:
    case Kernel::AllFinite:
    case Kernel::Sqrt:
    case Kernel::ClipCoef:
    case Kernel::LrSchedule:
      break;
    }
    planConversions(op, *instr);
    ops_.push_back(op);
  }
  if (scratchBytes_ > 0 &&
      !(scratch_ =
            memory(scratchBytes_,
                   "the all_gather / reduce_scatter scratch buffer", error)))
    return false;

  for (Op &op : ops_)
    if ((op.kernel == Kernel::AllGather || op.kernel == Kernel::ReduceScatter) &&
        op.size[3] > 1 && op.size[2] > 1)
      op.scratch = scratch_;

  // 3. The f32 copies of 16-bit operands: one buffer that every instruction
  // reuses, and the operand pointers into it.
  if (conversionBytes_ > 0) {
    if (!(conversionScratch_ = memory(
              conversionBytes_, "the f32 copies of bf16/f16 operands", error)))
      return false;
    char *base = static_cast<char *>(conversionScratch_);
    for (Op &op : ops_) {
      for (int32_t c = 0; c < op.widenCount + op.narrowCount; ++c) {
        Conversion &conv = conversions_[op.convBegin + c];
        void *copy = base + conv.offset;
        if (c < op.widenCount) {
          conv.to = copy;
          op.in[conv.operand] = copy;
        } else {
          conv.from = copy;
          op.out[conv.operand] = copy;
        }
      }
    }
  }
  // 4. The device's own resolution (its scratch, operand lists) and the
  // host copies of the scalar results.
  if (device_) {
    for (Op &op : ops_)
      if (!device_->prepare(op, listOperands_.data() + op.listBegin, error)) {
        error = instrError(op, error);
        return false;
      }
    if (!device_->finishPrepare(error))
      return false;
    hostResults_.assign(program.results() ? program.results()->size() : 0,
                        std::numeric_limits<float>::quiet_NaN());
  }
  return true;
}

void *Executor::memory(int64_t bytes, const std::string &what,
                       std::string &error) {
  if (!device_)
    return allocate(bytes, what, error);
  void *p = device_->allocate(bytes, what, error);
  if (p)
    deviceAllocations_.push_back(p);
  return p;
}

bool Executor::prepareDevice(const plan::Program &program, int numArgs,
                               std::string &error) {
  if (comm_->size() > 1 && !device_->connect(*comm_, error)) {
    error = device_->name() + " cannot run this job of " +
            std::to_string(comm_->size()) + " ranks: " + error;
    return false;
  }
  int64_t args = 0;
  for (int a = 0; a < numArgs; ++a) {
    const plan::Tensor &t =
        *program.tensors()->Get(program.arguments()->Get(a)->tensor());
    args += numElements(t) * dtypeBytes(t.dtype());
  }
  const int64_t need =
      program.arena_bytes() + args + program.workspace_bytes();
  const int64_t free = device_->freeBytes();
  if (free >= 0 && need > free) {
    auto mib = [](int64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20); };
    error = "out of device memory: the plan needs " + mib(need) +
            " MiB (activation arena " + mib(program.arena_bytes()) +
            " MiB, parameters and optimizer state " + mib(args) +
            " MiB, GEMM workspace " + mib(program.workspace_bytes()) +
            " MiB, before scratch) but " + device_->name() + " has " +
            mib(free) + " MiB free";
    return false;
  }
  return device_->beginProgram(program.workspace_bytes(), error);
}

void Executor::planConversions(Op &op, const plan::Instr &instr) {
  // cast and all_finite read their operands as they are; the f32-only
  // kernels have none in 16 bits (verified).
  if (op.kernel == Kernel::Cast || op.kernel == Kernel::AllFinite ||
      op.kernel == Kernel::GlobalNorm || op.kernel == Kernel::SumSquares ||
      op.kernel == Kernel::BucketAllReduceStart ||
      op.kernel == Kernel::BucketAllReduceWait || op.kernel == Kernel::Send ||
      op.kernel == Kernel::Recv)
    return; // send and recv move bytes, whatever the dtype.
  const auto &tensors = *program_->tensors();
  if (device_ && uniformOperands(op, instr))
    return; // The device runs it in its one dtype (op.dtype).
  auto bytesOf = [](int64_t n) { return (n * 4 + 63) / 64 * 64; };
  int64_t used = 0;
  op.convBegin = static_cast<int32_t>(conversions_.size());
  const int nin = instr.inputs() ? instr.inputs()->size() : 0;
  for (int i = 0; i < nin; ++i) {
    const plan::Tensor &t = *tensors.Get(instr.inputs()->Get(i));
    if (!isLowPrecision(t.dtype()))
      continue;
    Conversion c;
    c.from = op.in[i];
    c.n = numElements(t);
    c.dtype = t.dtype();
    c.operand = i;
    c.offset = used;
    used += bytesOf(c.n);
    conversions_.push_back(c);
    ++op.widenCount;
  }
  const int nout = instr.outputs()->size();
  for (int o = 0; o < nout; ++o) {
    const plan::Tensor &t = *tensors.Get(instr.outputs()->Get(o));
    if (!isLowPrecision(t.dtype()))
      continue;
    Conversion c;
    c.to = op.out[o];
    c.n = numElements(t);
    c.dtype = t.dtype();
    c.operand = o;
    c.offset = -1;
    // In place over an input (the verifier allows only the exact same
    // elements): the kernel updates that input's copy.
    for (int32_t w = 0; w < op.widenCount; ++w) {
      const Conversion &in = conversions_[op.convBegin + w];
      if (in.from == c.to && in.dtype == c.dtype && in.n == c.n)
        c.offset = in.offset;
    }
    if (c.offset < 0) {
      c.offset = used;
      used += bytesOf(c.n);
    }
    conversions_.push_back(c);
    ++op.narrowCount;
  }
  conversionBytes_ = std::max(conversionBytes_, used);
}

bool Executor::uniformOperands(Op &op, const plan::Instr &instr) const {
  // The float tensors but those f32 by contract.
  const auto &tensors = *program_->tensors();
  bool found = false;
  DType common = DType::F32;
  auto visit = [&](const flatbuffers::Vector<int32_t> *list, bool outputs) {
    const int n = list ? static_cast<int>(list->size()) : 0;
    for (int i = 0; i < n; ++i) {
      const plan::Tensor &t = *tensors.Get(list->Get(i));
      const DType d = t.dtype();
      if (d != DType::F32 && !isLowPrecision(d))
        continue; // Ids, the step counter.
      // The operands that are f32 whatever the storage type: attention's
      // lse, and the scalars (loss, dloss, scale's factor).
      const Kernel k = op.kernel;
      const bool f32Operand =
          (k == Kernel::Attention && outputs && i == 1) ||
          (k == Kernel::AttentionGrad && !outputs && i == 5) ||
          ((k == Kernel::CrossEntropy || k == Kernel::CrossEntropyFromStats) &&
           outputs && i == 0) ||
          ((k == Kernel::CrossEntropyGrad ||
            k == Kernel::CrossEntropyGradFromStats) &&
           !outputs && i == 0) ||
          (k == Kernel::Scale && !outputs && i == 1);
      if (f32Operand) {
        if (d != DType::F32)
          return false; // Given f32 copies, as the device kernels read f32.
        continue;
      }
      if (found && d != common)
        return false;
      found = true;
      common = d;
    }
    return true;
  };
  if (!visit(instr.inputs(), false) || !visit(instr.outputs(), true))
    return false;
  // Reductions over ranks add the f32 values and round once (the plan
  // format's contract); NCCL would add in 16 bits.
  if ((op.kernel == Kernel::AllReduce || op.kernel == Kernel::ReduceScatter) &&
      isLowPrecision(common))
    return false;
  op.dtype = common;
  return true;
}

void Executor::convertOperands(const Op &op, bool before) const {
  const int32_t begin = op.convBegin + (before ? 0 : op.widenCount);
  const int32_t end = begin + (before ? op.widenCount : op.narrowCount);
  for (int32_t i = begin; i < end; ++i) {
    const Conversion &c = conversions_[i];
    if (before) {
      const auto *x = static_cast<const uint16_t *>(c.from);
      auto *y = static_cast<float *>(c.to);
      if (c.dtype == DType::BF16)
        k::castBf16ToF32(x, y, c.n);
      else
        k::castF16ToF32(x, y, c.n);
    } else {
      const auto *x = static_cast<const float *>(c.from);
      auto *y = static_cast<uint16_t *>(c.to);
      if (c.dtype == DType::BF16)
        k::castF32ToBf16(x, y, c.n);
      else
        k::castF32ToF16(x, y, c.n);
    }
  }
}

bool Executor::shardBegin(const Op &op, int attr, int64_t rows, int64_t &begin,
                          std::string &error) {
  begin = 0;
  if (!op.attrs.present[attr])
    return true;
  if (!comm_->hasGrid()) {
    error = instrError(op, "the communicator (" + std::string(comm_->name()) +
                               ", " + std::to_string(comm_->size()) +
                               " ranks) has no device grid to place the "
                               "vocabulary shard");
    return false;
  }
  std::vector<int64_t> axes(op.attrs.list[attr]->begin(),
                            op.attrs.list[attr]->end());
  comm::AxisMask mask = 0;
  std::string ignored; // Verified by the loader.
  comm::ascendingGridAxesMask(axes.data(), axes.size(), mask, ignored);
  begin = comm_->groupPosition(mask).index * rows;
  return true;
}

bool Executor::resolveBlocks(Op &op, const plan::Tensor &x,
                             const plan::Tensor &y, std::string &error) {
  // s: count, axes index, G, outer, d, inner, and the reduction
  // (reduce_scatter) or the group index (all_slice). d is the block's
  // extent along `dim`: x's for all_gather, y's otherwise.
  int64_t *s = op.size;
  const bool gather = op.kernel == Kernel::AllGather;
  const plan::Tensor &block = gather ? x : y, &whole = gather ? y : x;
  const int axis = static_cast<int>(op.attrs.integer[1]);
  if (!comm_->hasGrid()) {
    error = instrError(op, "the communicator (" + std::string(comm_->name()) +
                               ", " + std::to_string(comm_->size()) +
                               " ranks) has no device grid");
    return false;
  }
  std::vector<int> axes(op.attrs.list[0]->begin(), op.attrs.list[0]->end());
  comm::AxisMask mask = 0;
  std::string ignored; // Verified by the loader.
  comm::ascendingGridAxesMask(axes, mask, ignored);
  const comm::Comm::GroupPosition pos = comm_->groupPosition(mask);
  s[0] = numElements(block);
  s[1] = static_cast<int64_t>(groupAxes_.size());
  s[2] = pos.size;
  s[3] = s[5] = 1;
  for (int i = 0; i < static_cast<int>(block.shape()->size()); ++i) {
    const int64_t d = block.shape()->Get(i);
    if (i < axis)
      s[3] *= d;
    else if (i == axis)
      s[4] = d;
    else
      s[5] *= d;
  }
  // The loader checked the shapes against the plan's grid; the
  // communicator's grid must give the same group size, or the buffers would
  // be overrun.
  if (whole.shape()->Get(axis) != pos.size * s[4]) {
    error = instrError(op, "dim " + std::to_string(axis) + " is " +
                               std::to_string(whole.shape()->Get(axis)) +
                               " for " + std::to_string(s[4]) +
                               " per rank, but the group over these "
                               "grid axes has " +
                               std::to_string(pos.size) +
                               " ranks on the communicator's grid " +
                               comm_->grid().toString());
    return false;
  }
  if (op.kernel == Kernel::ReduceScatter) {
    comm::Reduction reduction = comm::Reduction::Sum;
    comm::parseReduction(op.attrs.text[2]->str(), reduction); // Verified.
    s[6] = static_cast<int64_t>(reduction);
  } else if (op.kernel == Kernel::AllSlice) {
    s[6] = pos.index;
  }
  op.groupMask = mask;
  groupAxes_.push_back(std::move(axes));
  // Blocks of an inner dimension are strided: they are packed into (or
  // unpacked from) the scratch buffer around the collective.
  if (op.kernel != Kernel::AllSlice && s[3] > 1 && pos.size > 1)
    scratchBytes_ = std::max(scratchBytes_, pos.size * s[0] * 4);
  return true;
}

std::string Executor::instrError(const Op &op, const std::string &why) const {
  const plan::Instr &instr = *program_->instrs()->Get(op.instr);
  std::string loc = instr.loc() && instr.loc()->size()
                        ? " (" + instr.loc()->str() + ")"
                        : std::string();
  return "instr " + std::to_string(op.instr) + " '" + instr.kernel()->str() +
         "'" + loc + ": " + why;
}

template <bool kTraced> bool Executor::runOps(std::string &error) {
  for (const Op &op : ops_) {
    [[maybe_unused]] Trace::Clock::time_point begin;
    if constexpr (kTraced)
      begin = Trace::Clock::now();
    const int64_t *s = op.size;
    const double *r = op.attrs.real;
    const int64_t *iv = op.attrs.integer;
    auto f = [&](int i) { return static_cast<const float *>(op.in[i]); };
    auto ids = [&](int i) { return static_cast<const int32_t *>(op.in[i]); };
    auto o = [&](int i) { return static_cast<float *>(op.out[i]); };
    if (op.widenCount)
      convertOperands(op, /*before=*/true);
    switch (op.kernel) {
    case Kernel::Embedding:
      if (s[4])
        k::embeddingShardFwd<float>(f(0), ids(1), o(0), s[0], s[1], s[2], s[3]);
      else
        k::embeddingFwd<float>(f(0), ids(1), o(0), s[0], s[1], s[2]);
      break;
    case Kernel::EmbeddingGrad:
      if (s[4])
        k::embeddingShardBwd<float>(f(0), ids(1), o(0), s[0], s[1], s[2], s[3]);
      else
        k::embeddingBwd<float>(f(0), ids(1), o(0), s[0], s[1], s[2]);
      break;
    case Kernel::RmsNorm:
      k::rmsNormFwd<float>(f(0), f(1), o(0), s[0], s[1],
                           static_cast<float>(r[0]));
      break;
    case Kernel::RmsNormGrad:
      k::rmsNormBwd<float>(f(0), f(1), f(2), o(0), o(1), s[0], s[1],
                           static_cast<float>(r[0]));
      break;
    case Kernel::Linear:
      k::linearFwd<float>(f(0), f(1), o(0), s[0], s[1], s[2]);
      break;
    case Kernel::LinearGradInput:
      k::linearBwdInput<float>(f(0), f(1), o(0), s[0], s[1], s[2]);
      break;
    case Kernel::LinearGradWeight:
      k::linearBwdWeight<float>(f(0), f(1), o(0), s[0], s[1], s[2]);
      break;
    case Kernel::Rope:
    case Kernel::RopeGrad:
      k::rope<float>(f(0), o(0), s[0], s[1], s[2], s[3],
                     static_cast<float>(r[0]), iv[1],
                     /*inverse=*/op.kernel == Kernel::RopeGrad);
      break;
    case Kernel::Attention:
      k::attentionFwd<float>(f(0), f(1), f(2), o(0), o(1), s[0], s[1], s[2],
                             s[3], s[4], static_cast<float>(r[0]));
      break;
    case Kernel::AttentionGrad:
      k::attentionBwd<float>(f(0), f(1), f(2), f(3), f(4), f(5), o(0), o(1),
                             o(2), s[0], s[1], s[2], s[3], s[4],
                             static_cast<float>(r[0]));
      break;
    case Kernel::Swiglu:
      k::swigluFwd<float>(f(0), f(1), o(0), s[0]);
      break;
    case Kernel::SwigluGrad:
      k::swigluBwd<float>(f(0), f(1), f(2), o(0), o(1), s[0]);
      break;
    case Kernel::Add:
      k::add<float>(f(0), f(1), o(0), s[0]);
      break;
    case Kernel::CrossEntropy:
      *o(0) = static_cast<float>(k::crossEntropyFwd<float>(
          f(0), ids(1), s[0], s[1], 1.0 / static_cast<double>(iv[0])));
      break;
    case Kernel::CrossEntropyGrad:
      k::crossEntropyBwd<float>(f(1), ids(2), o(0), s[0], s[1],
                                1.0 / static_cast<double>(iv[0]),
                                static_cast<double>(*f(0)));
      break;
    case Kernel::Constant:
      k::fill<float>(o(0), s[0], static_cast<float>(r[0]));
      break;
    case Kernel::GlobalNorm:
      *o(0) = static_cast<float>(std::sqrt(sumOfSquares(op)));
      break;
    case Kernel::SumSquares:
      *o(0) = static_cast<float>(sumOfSquares(op));
      break;
    case Kernel::Sqrt:
      *o(0) = static_cast<float>(std::sqrt(static_cast<double>(*f(0))));
      break;
    case Kernel::RowMax:
      k::rowMaxes<float>(f(0), o(0), s[0], s[1]);
      break;
    case Kernel::RowSumExp:
      k::rowSumExp<float>(f(0), f(1), o(0), s[0], s[1]);
      break;
    case Kernel::TargetLogit:
      k::targetLogits<float>(f(0), ids(1), o(0), s[0], s[1], s[2]);
      break;
    case Kernel::CrossEntropyFromStats:
      *o(0) = static_cast<float>(k::crossEntropyFromStats<float>(
          f(0), f(1), f(2), s[0], 1.0 / static_cast<double>(iv[0])));
      break;
    case Kernel::CrossEntropyGradFromStats:
      k::crossEntropyBwdFromStats<float>(
          f(1), ids(2), f(3), f(4), o(0), s[0], s[1], s[2],
          1.0 / static_cast<double>(iv[0]), static_cast<double>(*f(0)));
      break;
    case Kernel::ClipCoef: {
      // torch.nn.utils.clip_grad_norm_: max_norm / (total_norm + 1e-6),
      // clamped to 1.
      double coef = r[0] / (static_cast<double>(*f(0)) + 1e-6);
      *o(0) = static_cast<float>(std::min(1.0, coef));
      break;
    }
    case Kernel::Scale:
      k::scale<float>(f(0), o(0), s[0], static_cast<double>(*f(1)));
      break;
    case Kernel::ClipByValue:
      k::clipByValue<float>(f(0), o(0), s[0], r[0]);
      break;
    case Kernel::LrSchedule: {
      int64_t step = *static_cast<const int64_t *>(op.in[0]);
      *o(0) = static_cast<float>(
          scheduledLearningRate(step, r[0], r[1], iv[2], iv[3]));
      break;
    }
    case Kernel::AdamW: {
      // A skipped step (apply == 0: the loss-scaled gradients overflowed)
      // leaves p, m, v as they are.
      if (op.in[6] && *f(6) == 0.0f)
        break;
      // Outputs share the storage of p, m, v: the update is in place.
      int64_t step = *static_cast<const int64_t *>(op.in[5]);
      k::adamw<float>(o(0), f(1), o(1), o(2), s[0],
                      static_cast<double>(*f(4)), r[0], r[1], r[2], r[3],
                      step + 1);
      break;
    }
    case Kernel::AllReduce: {
      // In place on the output: copy first when it is a fresh buffer (the
      // verifier allows only exact aliasing or none).
      if (op.out[0] != op.in[0])
        std::memcpy(op.out[0], op.in[0], static_cast<size_t>(s[0]) * 4);
      std::string why;
      if (!comm_->allReduce(op.out[0], s[0], comm::DType::F32,
                            static_cast<comm::Reduction>(s[2]),
                            groupAxes_[s[1]], why)) {
        error = instrError(op, why);
        return false;
      }
      break;
    }
    case Kernel::AllGather: {
      // s: count, axes, G, outer, d, inner (resolveBlocks). The gathered
      // blocks, one after the other, are already the concatenation along
      // `dim` when the dimensions before it have extent 1 (outer == 1);
      // otherwise they are unpacked.
      const bool packed = s[3] > 1 && s[2] > 1;
      float *recv = packed ? static_cast<float *>(scratch_) : o(0);
      std::string why;
      if (!comm_->allGather(f(0), recv, s[0], comm::DType::F32,
                            groupAxes_[s[1]], why)) {
        error = instrError(op, why);
        return false;
      }
      if (packed)
        k::concatBlocks<float>(recv, o(0), s[2], s[3], s[4], s[5]);
      break;
    }
    case Kernel::ReduceScatter: {
      const bool packed = s[3] > 1 && s[2] > 1;
      const float *send = f(0);
      if (packed) {
        k::splitBlocks<float>(f(0), static_cast<float *>(scratch_), s[2], s[3],
                              s[4], s[5]);
        send = static_cast<const float *>(scratch_);
      }
      std::string why;
      if (!comm_->reduceScatter(send, o(0), s[0], comm::DType::F32,
                                static_cast<comm::Reduction>(s[6]),
                                groupAxes_[s[1]], why)) {
        error = instrError(op, why);
        return false;
      }
      break;
    }
    case Kernel::AllSlice:
      k::sliceBlock<float>(f(0), o(0), s[3], s[4], s[5], s[2], s[6]);
      break;
    case Kernel::Cast:
      castTensor(op.in[0], static_cast<DType>(s[1]), op.out[0],
                 static_cast<DType>(s[2]), s[0]);
      break;
    case Kernel::AllFinite:
      *o(0) = operandsFinite(op) ? 1.0f : 0.0f;
      break;
    case Kernel::BucketAllReduceStart: {
      // Returns at once; the span is reduced while the kernels up to the
      // wait run (nothing between touches it: verified).
      Bucket &b = buckets_[s[3]];
      std::string why;
      comm::Ticket ticket = comm::kNoTicket;
      if (!comm_->allReduceStart(op.out[0], s[0], comm::DType::F32,
                                 static_cast<comm::Reduction>(s[2]),
                                 groupAxes_[s[1]], ticket, why)) {
        error = instrError(op, why);
        return false;
      }
      b.ticket = ticket;
      b.inFlight = true;
      break;
    }
    case Kernel::Send: {
      // s: bytes, peer rank, tag, staging buffer. The staging buffer is
      // free once its previous send (an earlier step's) completed.
      StagedSend &send = sends_[s[3]];
      std::string why;
      if (send.inFlight) {
        send.inFlight = false;
        if (!comm_->waitSend(send.ticket, why)) {
          error = instrError(op, why);
          return false;
        }
      }
      if (s[0] > 0)
        std::memcpy(send.staging, op.in[0], static_cast<size_t>(s[0]));
      comm::SendTicket ticket = comm::kNoSend;
      if (!comm_->isend(send.staging, s[0], static_cast<int>(s[1]),
                        static_cast<int>(s[2]), ticket, why)) {
        error = instrError(op, why);
        return false;
      }
      send.ticket = ticket;
      send.inFlight = true;
      break;
    }
    case Kernel::Recv: {
      std::string why;
      if (!comm_->recv(op.out[0], s[0], static_cast<int>(s[1]),
                       static_cast<int>(s[2]), why)) {
        error = instrError(op, why);
        return false;
      }
      break;
    }
    case Kernel::BucketAllReduceWait: {
      Bucket &b = buckets_[s[3]];
      b.inFlight = false;
      comm::AsyncTiming timing;
      std::string why;
      if (!comm_->allReduceWait(b.ticket, kTraced ? &timing : nullptr, why)) {
        error = instrError(op, why);
        return false;
      }
      if constexpr (kTraced)
        if (timing.threaded)
          trace_->bucket(b.start, timing.posted, timing.begin, timing.end);
      break;
    }
    }
    if (op.narrowCount)
      convertOperands(op, /*before=*/false);
    if constexpr (kTraced)
      trace_->kernel(op.instr, begin, Trace::Clock::now());
  }
  return true;
}

double Executor::sumOfSquares(const Op &op) const {
  // Operand by operand, in order: a fixed summation order.
  double sum = 0.0;
  for (int32_t i = 0; i < op.listCount; ++i) {
    const ListOperand &g = listOperands_[op.listBegin + i];
    sum += k::sumSquares<float>(static_cast<const float *>(g.data), g.n);
  }
  return sum;
}

bool Executor::operandsFinite(const Op &op) const {
  for (int32_t i = 0; i < op.listCount; ++i) {
    const ListOperand &x = listOperands_[op.listBegin + i];
    bool finite = true;
    switch (x.dtype) {
    case DType::F32:
      finite = k::allFinite<float>(static_cast<const float *>(x.data), x.n);
      break;
    case DType::F64:
      finite = k::allFinite<double>(static_cast<const double *>(x.data), x.n);
      break;
    case DType::BF16:
      finite = k::allFiniteBf16(static_cast<const uint16_t *>(x.data), x.n);
      break;
    case DType::F16:
      finite = k::allFiniteF16(static_cast<const uint16_t *>(x.data), x.n);
      break;
    default: // Not a float dtype: the verifier rejects it.
      break;
    }
    if (!finite)
      return false;
  }
  return true;
}

bool Executor::runOnDevice(std::string &error) {
  // Per-step inputs every run; the state once after init().
  for (int a = 0; a < numArguments(); ++a)
    if ((!stateOnDevice_ || !stateArgument_[a]) &&
        !device_->upload(deviceArguments_[a], arguments_[a].data,
                         arguments_[a].bytes, error))
      return false;
  stateOnDevice_ = true;
  if (trace_ && !deviceTiming_) {
    if (!device_->startTiming(error))
      return false;
    deviceTiming_ = true;
  }
  auto enqueue = [this](std::string &err) -> bool {
    for (const Op &op : ops_) {
      std::string why;
      bool ok = true;
      const int32_t end = op.convBegin + op.widenCount + op.narrowCount;
      for (int32_t c = op.convBegin; ok && c < op.convBegin + op.widenCount;
           ++c)
        ok = device_->convert(conversions_[c].from, conversions_[c].dtype,
                              conversions_[c].to, DType::F32,
                              conversions_[c].n, why);
      ok = ok && device_->launch(op, why);
      for (int32_t c = op.convBegin + op.widenCount; ok && c < end; ++c)
        ok = device_->convert(conversions_[c].from, DType::F32,
                              conversions_[c].to, conversions_[c].dtype,
                              conversions_[c].n, why);
      if (!ok) {
        err = instrError(op, why);
        return false;
      }
    }
    for (const CopyBack &c : copyBacks_)
      if (!device_->copy(c.to, c.from, static_cast<int64_t>(c.bytes), err))
        return false;
    return true;
  };
  if (!device_->runStep(enqueue, error))
    return false;
  if (trace_) {
    if (!device_->timings(deviceTimings_, error))
      return false;
    for (const DeviceTiming &t : deviceTimings_) {
      if (t.bucket)
        trace_->bucket(t.instr, t.begin, t.begin, t.end);
      else
        trace_->kernel(t.instr, t.begin, t.end);
    }
  }
  // The scalar results (loss, grad_norm, lr, all_finite) for the host.
  const auto &results = *program_->results();
  for (flatbuffers::uoffset_t r = 0; r < results.size(); ++r) {
    const plan::Tensor &t = *program_->tensors()->Get(results.Get(r)->tensor());
    if (t.dtype() == DType::F32 && numElements(t) == 1 &&
        !device_->download(&hostResults_[r], tensorPointer(results.Get(r)->tensor()),
                           4, error))
      return false;
  }
  return true;
}

bool Executor::run(std::string &error) {
  if (device_)
    return runOnDevice(error);
  // Decided once per run, not per instruction.
  if (!(trace_ ? runOps<true>(error) : runOps<false>(error)))
    return false;
  // No send outlives its step (its receiver has it, or will, before the
  // next step's sends reuse the staging buffers).
  if (!sends_.empty() && !waitSends(error))
    return false;
  for (const CopyBack &c : copyBacks_)
    std::memcpy(c.to, c.from, c.bytes);
  return true;
}

int64_t Executor::argumentBytesTotal() const {
  int64_t total = 0;
  for (const Buffer &b : arguments_)
    total += b.bytes;
  return total;
}

const plan::Argument &Executor::argumentInfo(int index) const {
  return *program_->arguments()->Get(index);
}

const plan::Tensor &Executor::argumentTensor(int index) const {
  return *program_->tensors()->Get(argumentInfo(index).tensor());
}

int Executor::findArgument(const std::string &role,
                           const std::string &param) const {
  for (int a = 0; a < numArguments(); ++a) {
    const plan::Argument &arg = argumentInfo(a);
    if (arg.role() && role == arg.role()->c_str() &&
        param == (arg.param() ? arg.param()->c_str() : ""))
      return a;
  }
  return -1;
}

void *Executor::argument(const std::string &role, const std::string &param) {
  int a = findArgument(role, param);
  return a < 0 ? nullptr : arguments_[a].data;
}

int Executor::findResult(const std::string &role,
                         const std::string &param) const {
  if (!program_ || !program_->results())
    return -1;
  const auto &results = *program_->results();
  for (flatbuffers::uoffset_t r = 0; r < results.size(); ++r) {
    const plan::Result &res = *results.Get(r);
    if (res.role() && role == res.role()->c_str() &&
        param == (res.param() ? res.param()->c_str() : ""))
      return static_cast<int>(r);
  }
  return -1;
}

const float *Executor::scalarResultPtr(const std::string &role) const {
  int r = findResult(role);
  if (r < 0)
    return nullptr;
  if (device_)
    return &hostResults_[r];
  return static_cast<const float *>(
      tensorPointer(program_->results()->Get(r)->tensor()));
}

float Executor::scalarResult(const std::string &role) const {
  const float *p = scalarResultPtr(role);
  return p ? *p : std::numeric_limits<float>::quiet_NaN();
}

void *Executor::tensorData(int index) { return tensorPointer(index); }

} // namespace exec
} // namespace llamac
