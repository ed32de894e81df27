//===- Device.h - Where an executor's kernels run ------------------*- C++ -*-===//
//
// The executor (exec/Executor.h) resolves a program once into Ops: kernel,
// operand pointers, sizes, attributes. Without a Device it runs them on the
// CPU backend itself. With one (`llamac run --device cuda`), the arena,
// the arguments and every scratch buffer are device memory from
// Device::allocate, and each Op goes to Device::launch; the executor keeps
// what is backend-neutral (resolution, the f32 copies of mixed-precision
// operands, host mirrors of the arguments, the per-step uploads).
//
// A Device is not thread-safe; one executor uses it at a time. It must
// outlive the executors that use it.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_DEVICE_H
#define LLAMAC_RUNTIME_EXEC_DEVICE_H

#include "exec/KernelTable.h"
#include "plan/PlanFormat.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace llamac {
namespace comm {
class Comm;
struct EnvLaunch;
} // namespace comm

namespace exec {

/// One resolved instruction (Executor::init).
struct Op {
  Kernel kernel;
  void *in[7] = {};
  void *out[3] = {};
  int64_t size[7] = {}; ///< Kernel-specific sizes, see Executor::init().
  AttrValues attrs;
  /// The storage type of the op's float tensors on a device: their one
  /// dtype, or F32 when the executor gives the kernel f32 copies (mixed
  /// dtypes). Scalars, attention's lse and the optimizer are f32.
  plan::DType dtype = plan::DType::F32;
  /// Operands of global_norm, sum_squares, all_finite in the executor's
  /// list. (The bucket kernels keep their span in in[0] / out[0].)
  int32_t listBegin = 0, listCount = 0;
  /// The executor's conversions [convBegin, + widenCount) run before the
  /// kernel, the next narrowCount after it.
  int32_t convBegin = 0, widenCount = 0, narrowCount = 0;
  int32_t instr = 0; ///< Index in Program.instrs, for errors.
  int32_t slot = -1; ///< The device's own data for this op (Device::prepare).
  /// The grid axes of a collective's group (comm::AxisMask), or 0.
  uint32_t groupMask = 0;
  /// all_gather / reduce_scatter along an inner dimension: the blocks'
  /// scratch buffer (the executor's); send: its staging buffer (s[0]
  /// bytes, the sent data's copy); else nullptr.
  void *scratch = nullptr;
};

/// When a device ran an op (--trace; Device::timings), on the host's clock.
struct DeviceTiming {
  int32_t instr = 0;   ///< Op::instr.
  bool bucket = false; ///< A gradient bucket's reduction (its start's instr).
  std::chrono::steady_clock::time_point begin, end;
};

/// An operand of a variadic kernel (global_norm, sum_squares, all_finite).
struct ListOperand {
  const void *data;
  int64_t n;
  plan::DType dtype;
};

class Device {
public:
  virtual ~Device() = default;

  /// "cuda:0 (NVIDIA H200, 139 GiB)".
  virtual std::string name() const = 0;
  /// Free device memory in bytes, or -1 when unknown.
  virtual int64_t freeBytes() const = 0;

  /// Zero-filled device memory; nullptr with `error` naming `what`, the
  /// size and the free memory.
  virtual void *allocate(int64_t bytes, const std::string &what,
                         std::string &error) = 0;
  virtual void release(void *p) = 0;

  /// Host to device, ordered before the kernels launched after it.
  virtual bool upload(void *device, const void *host, int64_t bytes,
                      std::string &error) = 0;
  /// Device to host, after every kernel launched before it; complete on
  /// return.
  virtual bool download(void *host, const void *device, int64_t bytes,
                        std::string &error) = 0;
  /// Device to device, on the kernels' stream.
  virtual bool copy(void *to, const void *from, int64_t bytes,
                    std::string &error) = 0;
  /// y = x converted between float dtypes (the f32 copies of 16-bit
  /// operands), on the kernels' stream.
  virtual bool convert(const void *x, plan::DType from, void *y,
                       plan::DType to, int64_t n, std::string &error) = 0;

  /// Joins the other ranks of `comm` (a job of several ranks, one device
  /// each) for the collectives of the program; every rank calls it, at
  /// init(), before any prepare(). False with `error` when the device
  /// cannot communicate.
  virtual bool connect(comm::Comm &comm, std::string &error) = 0;

  /// Called at init for each op, in program order, after the op is
  /// resolved: the device sizes its scratch, uploads the op's operand
  /// lists, and may set op.slot. False with `error` for what it cannot run.
  virtual bool prepare(Op &op, const ListOperand *list,
                       std::string &error) = 0;
  /// A new program (Executor::init, before its prepare() calls): the
  /// device forgets what it prepared for an earlier one (a captured graph,
  /// operand lists) and takes the plan's workspace for its GEMM library
  /// (Program.workspace_bytes; 0: none), keeping the largest it was given.
  virtual bool beginProgram(int64_t workspaceBytes, std::string &error) = 0;
  /// After the last prepare(): allocates the scratch.
  virtual bool finishPrepare(std::string &error) = 0;
  /// Enqueues op's kernel(s). No host synchronization.
  virtual bool launch(const Op &op, std::string &error) = 0;
  /// One training step: `enqueue` launches every op of the program. The
  /// device may run it directly, or capture it once (after warm-up) into
  /// a graph and replay that on later steps; when this returns the step
  /// has completed.
  virtual bool runStep(const std::function<bool(std::string &)> &enqueue,
                       std::string &error) = 0;

  /// --trace: from now on the device times every op it runs (a device may
  /// then run each step as it is enqueued, without replaying a graph).
  /// False with `error` where it cannot.
  virtual bool startTiming(std::string &error) = 0;
  /// The ops of the last runStep() (startTiming() before it), in launch
  /// order, each when it ran on the device.
  virtual bool timings(std::vector<DeviceTiming> &out, std::string &error) = 0;
};

/// The device named `spec` ("cuda", "cuda:N"); nullptr with `error` when
/// there is no such device (no GPU, no driver, or a build without CUDA).
std::unique_ptr<Device> createDevice(const std::string &spec, bool tf32,
                                     bool graphs, std::string &error);

/// The host communicator of a launch without mpirun (comm::EnvLaunch): NCCL
/// on the GPU `spec` names ("cuda": the node-local rank's). nullptr with
/// `error` when there is no such GPU, the build lacks CUDA or NCCL, or the
/// bootstrap fails.
std::unique_ptr<comm::Comm> createLaunchComm(const comm::EnvLaunch &launch,
                                             const std::string &spec,
                                             std::string &error);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_DEVICE_H
