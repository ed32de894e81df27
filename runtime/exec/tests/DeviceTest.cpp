//===- DeviceTest.cpp - The executor's device protocol ---------------------===//
//
// The executor's side of exec/Device.h, checked without a GPU: a test
// device whose "device memory" is host memory it owns (so that a pointer
// mix-up between the host mirrors and the device buffers shows up as a
// wrong value, never a crash) and whose launch() runs the CPU kernels in
// f32. The bigram training step (BigramRun.h) then must give, step for
// step, exactly the CPU executor's losses, norms, learning rates and
// parameters; the device gets the state once and the per-step inputs
// every run; the host mirrors change only at syncToHost(); and a plan that
// does not fit, or a multi-rank job, is refused with the reason.
//
// What this cannot check is the CUDA code itself: that is the conformance
// suite's job (backends/cuda/tests/ConformanceTest.cpp) on a GPU.
//
//===----------------------------------------------------------------------===//
#include "exec/Device.h"
#include "exec/Executor.h"
#include "exec/tests/BigramRun.h"
#include "exec/tests/PlanTestUtil.h"
#include "exec/tests/SimulatedComm.h"
#include "llamac/runtime/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

namespace {

namespace k = llamac::kernels;

/// Float conversions with the CPU executor's own function (its f32 copies
/// of 16-bit operands use the same rounding).
bool castOnHost(const void *x, plan::DType from, void *y, plan::DType to,
                int64_t n, std::string &) {
  castTensor(x, from, y, to, n);
  return true;
}

/// An operand in f32: the op's own memory when it is f32, else a widened
/// copy (a GPU kernel widens in registers), rounded back by narrow().
struct Wide {
  std::vector<float> copy;
  float *data;
};
Wide widen(void *p, int64_t n, plan::DType t) {
  Wide w;
  if (t == plan::DType::F32) {
    w.data = static_cast<float *>(p);
    return w;
  }
  w.copy.resize(static_cast<size_t>(n));
  std::string ignored;
  castOnHost(p, t, w.copy.data(), plan::DType::F32, n, ignored);
  w.data = w.copy.data();
  return w;
}
void narrow(const Wide &w, void *p, int64_t n, plan::DType t) {
  std::string ignored;
  if (t != plan::DType::F32)
    castOnHost(w.data, plan::DType::F32, p, t, n, ignored);
}

/// Host memory behind the Device interface, with counters.
class TestDevice final : public Device {
public:
  std::string name() const override { return "test:0"; }
  int64_t freeBytes() const override { return free; }
  void *allocate(int64_t bytes, const std::string &, std::string &) override {
    // Zero-filled, as Device::allocate promises.
    void *p = std::malloc(static_cast<size_t>(std::max<int64_t>(bytes, 1)));
    std::memset(p, 0, static_cast<size_t>(std::max<int64_t>(bytes, 1)));
    blocks[p] = bytes;
    return p;
  }
  void release(void *p) override {
    blocks.erase(p);
    std::free(p);
  }
  bool upload(void *device, const void *host, int64_t bytes,
              std::string &) override {
    EXPECT_TRUE(isDevice(device)) << "upload to host memory";
    EXPECT_FALSE(isDevice(host)) << "upload from device memory";
    std::memcpy(device, host, static_cast<size_t>(bytes));
    uploaded += bytes;
    return true;
  }
  bool download(void *host, const void *device, int64_t bytes,
                std::string &) override {
    EXPECT_TRUE(isDevice(device)) << "download from host memory";
    std::memcpy(host, device, static_cast<size_t>(bytes));
    downloaded += bytes;
    return true;
  }
  bool copy(void *to, const void *from, int64_t bytes,
            std::string &) override {
    std::memcpy(to, from, static_cast<size_t>(bytes));
    return true;
  }
  bool convert(const void *x, plan::DType from, void *y, plan::DType to,
               int64_t n, std::string &error) override {
    EXPECT_TRUE(isDevice(x) && isDevice(y)) << "convert outside the device";
    ++conversions;
    return castOnHost(x, from, y, to, n, error);
  }
  bool connect(comm::Comm &, std::string &error) override {
    error = "the test device has no collectives";
    return false;
  }
  bool prepare(Op &op, const ListOperand *list, std::string &) override {
    if (op.listCount) {
      op.slot = static_cast<int32_t>(lists.size());
      lists.emplace_back(list, list + op.listCount);
    }
    ++prepared;
    return true;
  }
  bool beginProgram(int64_t bytes, std::string &) override {
    workspaceBytes = bytes;
    return true;
  }
  bool finishPrepare(std::string &) override {
    finished = true;
    return true;
  }
  bool launch(const Op &op, std::string &error) override;
  bool runStep(const std::function<bool(std::string &)> &enqueue,
               std::string &error) override {
    ++steps;
    return enqueue(error);
  }
  bool startTiming(std::string &error) override {
    error = "the test device does not time its ops";
    return false;
  }
  bool timings(std::vector<DeviceTiming> &, std::string &error) override {
    error = "the test device does not time its ops";
    return false;
  }

  /// Whether p lies in memory this device allocated.
  bool isDevice(const void *p) const {
    const char *c = static_cast<const char *>(p);
    for (const auto &[base, bytes] : blocks) {
      const char *b = static_cast<const char *>(base);
      if (c >= b && c < b + std::max<int64_t>(bytes, 1))
        return true;
    }
    return false;
  }

  int64_t free = int64_t(1) << 40;
  int64_t workspaceBytes = -1; ///< As beginProgram() got it.
  int64_t uploaded = 0, downloaded = 0;
  int prepared = 0, steps = 0, launches = 0, conversions = 0;
  int native16 = 0; ///< Launches in 16-bit storage (no f32 copies).
  bool finished = false;
  std::map<void *, int64_t> blocks;
  std::vector<std::vector<ListOperand>> lists;
};

bool TestDevice::launch(const Op &op, std::string &error) {
  ++launches;
  for (void *p : op.in)
    EXPECT_TRUE(!p || isDevice(p)) << "instr " << op.instr << " reads host";
  for (void *p : op.out)
    EXPECT_TRUE(!p || isDevice(p)) << "instr " << op.instr << " writes host";
  if (op.dtype != plan::DType::F32) {
    // Native 16-bit storage: the kernels the mixed-precision bigram step
    // runs without f32 copies.
    ++native16;
    const int64_t *s = op.size;
    const plan::DType t = op.dtype;
    switch (op.kernel) {
    case Kernel::Linear: {
      Wide x = widen(op.in[0], s[0] * s[2], t), w = widen(op.in[1], s[1] * s[2], t);
      Wide y = widen(op.out[0], s[0] * s[1], t);
      k::linearFwd<float>(x.data, w.data, y.data, s[0], s[1], s[2]);
      narrow(y, op.out[0], s[0] * s[1], t);
      return true;
    }
    case Kernel::LinearGradInput: {
      Wide dy = widen(op.in[0], s[0] * s[1], t), w = widen(op.in[1], s[1] * s[2], t);
      Wide dx = widen(op.out[0], s[0] * s[2], t);
      k::linearBwdInput<float>(dy.data, w.data, dx.data, s[0], s[1], s[2]);
      narrow(dx, op.out[0], s[0] * s[2], t);
      return true;
    }
    case Kernel::CrossEntropy: {
      Wide logits = widen(op.in[0], s[0] * s[1], t);
      *static_cast<float *>(op.out[0]) = float(k::crossEntropyFwd<float>(
          logits.data, static_cast<const int32_t *>(op.in[1]), s[0], s[1],
          1.0 / double(op.attrs.integer[0])));
      return true;
    }
    default:
      error = "the test device has no 16-bit form of this kernel";
      return false;
    }
  }
  const int64_t *s = op.size;
  const double *r = op.attrs.real;
  const int64_t *iv = op.attrs.integer;
  auto f = [&](int i) { return static_cast<const float *>(op.in[i]); };
  auto ids = [&](int i) { return static_cast<const int32_t *>(op.in[i]); };
  auto o = [&](int i) { return static_cast<float *>(op.out[i]); };
  switch (op.kernel) {
  case Kernel::Embedding:
    k::embeddingFwd<float>(f(0), ids(1), o(0), s[0], s[1], s[2]);
    return true;
  case Kernel::EmbeddingGrad:
    k::embeddingBwd<float>(f(0), ids(1), o(0), s[0], s[1], s[2]);
    return true;
  case Kernel::RmsNorm:
    k::rmsNormFwd<float>(f(0), f(1), o(0), s[0], s[1], float(r[0]));
    return true;
  case Kernel::RmsNormGrad:
    k::rmsNormBwd<float>(f(0), f(1), f(2), o(0), o(1), s[0], s[1],
                         float(r[0]));
    return true;
  case Kernel::Linear:
    k::linearFwd<float>(f(0), f(1), o(0), s[0], s[1], s[2]);
    return true;
  case Kernel::LinearGradInput:
    k::linearBwdInput<float>(f(0), f(1), o(0), s[0], s[1], s[2]);
    return true;
  case Kernel::LinearGradWeight:
    k::linearBwdWeight<float>(f(0), f(1), o(0), s[0], s[1], s[2]);
    return true;
  case Kernel::CrossEntropy:
    *o(0) = float(k::crossEntropyFwd<float>(f(0), ids(1), s[0], s[1],
                                            1.0 / double(iv[0])));
    return true;
  case Kernel::CrossEntropyGrad:
    k::crossEntropyBwd<float>(f(1), ids(2), o(0), s[0], s[1],
                              1.0 / double(iv[0]), double(*f(0)));
    return true;
  case Kernel::Constant:
    k::fill<float>(o(0), s[0], float(r[0]));
    return true;
  case Kernel::GlobalNorm: {
    double sum = 0;
    for (const ListOperand &x : lists[op.slot]) {
      EXPECT_TRUE(isDevice(x.data));
      sum += k::sumSquares<float>(static_cast<const float *>(x.data), x.n);
    }
    *o(0) = float(std::sqrt(sum));
    return true;
  }
  case Kernel::ClipCoef:
    *o(0) = float(std::min(1.0, r[0] / (double(*f(0)) + 1e-6)));
    return true;
  case Kernel::LrSchedule:
    *o(0) = float(scheduledLearningRate(
        *static_cast<const int64_t *>(op.in[0]), r[0], r[1], iv[2], iv[3]));
    return true;
  case Kernel::Scale:
    k::scale<float>(f(0), o(0), s[0], double(*f(1)));
    return true;
  case Kernel::AdamW:
    if (op.in[6] && *f(6) == 0.0f)
      return true; // A skipped step.
    k::adamw<float>(o(0), f(1), o(1), o(2), s[0], double(*f(4)), r[0], r[1],
                    r[2], r[3], *static_cast<const int64_t *>(op.in[5]) + 1);
    return true;
  case Kernel::Cast:
    return castOnHost(op.in[0], static_cast<plan::DType>(s[1]), op.out[0],
                      static_cast<plan::DType>(s[2]), s[0], error);
  case Kernel::AllFinite: {
    bool finite = true;
    for (const ListOperand &x : lists[op.slot]) {
      Wide w = widen(const_cast<void *>(x.data), x.n, x.dtype);
      finite = finite && k::allFinite<float>(w.data, x.n);
    }
    *o(0) = finite ? 1.0f : 0.0f;
    return true;
  }
  default:
    error = "the test device has no kernel for this op";
    return false;
  }
}

struct Run {
  LoadedPlan plan;
  Executor exec;
};

/// The bigram plan's program on `device` (nullptr: the CPU backend), with
/// the same deterministic weights.
std::unique_ptr<Run> start(Device *device, std::string &error,
                           DType low = DType::F32) {
  auto run = std::make_unique<Run>();
  const std::string staticScale =
      R"({"mode": "static", "init": 1024, "growth_factor": 2,
          "backoff_factor": 0.5, "growth_interval": 1000, "hysteresis": 1,
          "min_scale": 1})";
  if (!loadDef(low == DType::F32 ? bigramPlan(1, kB)
                                 : lossScaledBigramPlan(low, staticScale),
               run->plan, error))
    return nullptr;
  run->exec.setDevice(device);
  if (!run->exec.init(run->plan.program(0), error))
    return nullptr;
  Executor &e = run->exec;
  for (int a = 0; a < e.numArguments(); ++a) {
    if (e.argumentInfo(a).role()->str() != "param")
      continue;
    float *x = static_cast<float *>(e.argument(a));
    for (int64_t i = 0; i < e.argumentBytes(a) / 4; ++i)
      x[i] = float(0.3 * std::sin(0.37 * double(i) + a));
  }
  return run;
}

/// Step `s`'s tokens and targets into the host arguments, the step, and
/// the loss scale when the plan has one.
void feed(Executor &e, int64_t s) {
  if (auto *scale = static_cast<float *>(e.argument("loss_scale"))) {
    *scale = 1024.0f;
    *static_cast<float *>(e.argument("inv_loss_scale")) = 1.0f / 1024.0f;
  }
  auto *tokens = static_cast<int32_t *>(e.argument("tokens"));
  auto *targets = static_cast<int32_t *>(e.argument("targets"));
  for (int64_t i = 0; i < kB * kT; ++i) {
    tokens[i] = static_cast<int32_t>((i * 7 + s * 3) % kV);
    targets[i] = static_cast<int32_t>((i * 5 + s + 1) % kV);
  }
  *static_cast<int64_t *>(e.argument("step")) = s;
}

} // namespace

TEST(Device, RunsTheStepExactlyAsTheCpuExecutor) {
  std::string error;
  TestDevice device;
  auto cpu = start(nullptr, error);
  ASSERT_TRUE(cpu) << error;
  auto dev = start(&device, error);
  ASSERT_TRUE(dev) << error;
  EXPECT_TRUE(device.finished);
  EXPECT_EQ(device.prepared, static_cast<int>(
                                 dev->plan.program(0).instrs()->size()));
  Executor &c = cpu->exec, &d = dev->exec;
  // Host mirrors: argument() is never device memory; the scalars are host.
  for (int a = 0; a < d.numArguments(); ++a)
    EXPECT_FALSE(device.isDevice(d.argument(a)));
  EXPECT_FALSE(device.isDevice(d.scalarResultPtr("loss")));

  const int64_t paramBytes = [&] {
    int64_t b = 0;
    for (int a = 0; a < d.numArguments(); ++a)
      if (d.argumentInfo(a).role()->str() != "tokens" &&
          d.argumentInfo(a).role()->str() != "targets" &&
          d.argumentInfo(a).role()->str() != "step")
        b += d.argumentBytes(a);
    return b;
  }();
  const int64_t perStep = d.argumentBytes(d.findArgument("tokens")) +
                          d.argumentBytes(d.findArgument("targets")) + 8;
  std::vector<float> initial(
      static_cast<const float *>(d.argument("param", "lm_head.weight")),
      static_cast<const float *>(d.argument("param", "lm_head.weight")) +
          kV * kD);
  for (int64_t s = 0; s < 4; ++s) {
    feed(c, s);
    feed(d, s);
    ASSERT_TRUE(c.run(error)) << error;
    ASSERT_TRUE(d.run(error)) << error;
    // Same kernels in the same order on the same values: bit for bit.
    for (const char *role : {"loss", "grad_norm", "lr"})
      EXPECT_EQ(c.scalarResult(role), d.scalarResult(role))
          << role << " at step " << s;
    // The state went up once; the per-step inputs every step.
    EXPECT_EQ(device.uploaded, paramBytes + (s + 1) * perStep);
  }
  EXPECT_EQ(device.steps, 4);
  // The host mirror of a parameter is the initial value until syncToHost.
  const float *head =
      static_cast<const float *>(d.argument("param", "lm_head.weight"));
  EXPECT_EQ(std::vector<float>(head, head + kV * kD), initial);
  ASSERT_TRUE(d.syncToHost(error)) << error;
  for (int a = 0; a < c.numArguments(); ++a) {
    const std::string role = c.argumentInfo(a).role()->str();
    if (role != "param" && role != "adam_m" && role != "adam_v")
      continue;
    EXPECT_EQ(std::memcmp(c.argument(a), d.argument(a),
                          static_cast<size_t>(c.argumentBytes(a))),
              0)
        << role << " " << c.argumentInfo(a).param()->str();
  }
  // A new init() starts over: state goes up again before the next step.
  ASSERT_TRUE(d.init(dev->plan.program(0), error)) << error;
  const int64_t before = device.uploaded;
  feed(d, 0);
  ASSERT_TRUE(d.run(error)) << error;
  EXPECT_EQ(device.uploaded - before, paramBytes + perStep);
}

TEST(Device, ReleasesItsMemory) {
  std::string error;
  TestDevice device;
  {
    auto dev = start(&device, error);
    ASSERT_TRUE(dev) << error;
    EXPECT_FALSE(device.blocks.empty());
  }
  EXPECT_TRUE(device.blocks.empty());
}

TEST(Device, RefusesAPlanThatDoesNotFit) {
  std::string error;
  TestDevice device;
  device.free = 1000; // Bytes: less than the bigram plan's parameters.
  auto dev = start(&device, error);
  EXPECT_FALSE(dev);
  EXPECT_NE(error.find("out of device memory: the plan needs"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("but test:0 has 1 MiB free"), std::string::npos)
      << error;
  EXPECT_TRUE(device.blocks.empty()) << "nothing allocated";
}

TEST(Device, GetsThePlansWorkspaceAndCountsIt) {
  // Program.workspace_bytes reaches the device (once, before the ops are
  // prepared) and is part of the memory the plan needs.
  PlanDef def = bigramPlan(1, kB);
  def.programs[0].workspaceBytes = int64_t(3) << 20;
  std::string error;
  {
    LoadedPlan plan;
    ASSERT_TRUE(loadDef(def, plan, error)) << error;
    TestDevice device;
    Executor exec;
    exec.setDevice(&device);
    ASSERT_TRUE(exec.init(plan.program(0), error)) << error;
    EXPECT_EQ(device.workspaceBytes, int64_t(3) << 20);
  }
  LoadedPlan plan;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  TestDevice device;
  device.free = int64_t(3) << 20; // The workspace fits; the rest does not.
  Executor exec;
  exec.setDevice(&device);
  EXPECT_FALSE(exec.init(plan.program(0), error));
  EXPECT_NE(error.find("GEMM workspace 3 MiB, before scratch) but test:0 "
                       "has 3 MiB free"),
            std::string::npos)
      << error;
  EXPECT_EQ(device.workspaceBytes, -1) << "refused before reserving it";
}

TEST(Device, RefusesMultiRankJobs) {
  // Two simulated ranks: the device must connect to the other rank, and
  // says why it cannot.
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(bigramPlan(2, kB), plan, error)) << error;
  TestDevice device;
  Executor exec;
  exec.setDevice(&device);
  SimulatedComm rank0(comm::Grid{1, 2, 1}, 0);
  EXPECT_FALSE(exec.init(plan.program(0), &rank0, error));
  EXPECT_EQ(error, "test:0 cannot run this job of 2 ranks: the test device "
                   "has no collectives");
  EXPECT_TRUE(device.blocks.empty()) << "nothing allocated";
}

TEST(Device, MixedPrecisionRunsNativeAndWithF32Copies) {
  // The loss-scaled bf16 / f16 bigram step: linear, linear_grad_input and
  // cross_entropy have one 16-bit dtype and run natively on the device;
  // linear_grad_weight (16-bit inputs, f32 gradient), rms_norm_grad (a
  // 16-bit dy with f32 x and w) and cross_entropy_grad (a 16-bit seed in
  // the f32 scalar's place) get f32 copies from the executor, as on the
  // CPU. Either way each 16-bit value is widened exactly and each 16-bit
  // output rounded once, so the device run equals the CPU executor's bit
  // for bit.
  for (DType low : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(low == DType::BF16 ? "bf16" : "f16");
    std::string error;
    TestDevice device;
    auto cpu = start(nullptr, error, low);
    ASSERT_TRUE(cpu) << error;
    auto dev = start(&device, error, low);
    ASSERT_TRUE(dev) << error;
    Executor &c = cpu->exec, &d = dev->exec;
    for (int64_t s = 0; s < 3; ++s) {
      feed(c, s);
      feed(d, s);
      ASSERT_TRUE(c.run(error)) << error;
      ASSERT_TRUE(d.run(error)) << error;
      for (const char *role : {"loss", "grad_norm", "lr", "all_finite"})
        EXPECT_EQ(c.scalarResult(role), d.scalarResult(role))
            << role << " at step " << s;
    }
    EXPECT_EQ(device.native16, 3 * 3) << "linear, linear_grad_input, "
                                         "cross_entropy per step";
    EXPECT_GT(device.conversions, 0);
    ASSERT_TRUE(d.syncToHost(error)) << error;
    for (const char *name : {"model.embed_tokens.weight", "lm_head.weight"})
      EXPECT_EQ(std::memcmp(c.argument("param", name), d.argument("param", name),
                            static_cast<size_t>(c.argumentBytes(
                                c.findArgument("param", name)))),
                0)
          << name;
  }
}
