//===- Trainer.cpp - The training loop of `llamac run` ---------------------===//
#include "exec/Trainer.h"

#include "comm/Comm.h"
#include "exec/Checkpoint.h"
#include "exec/Executor.h"
#include "exec/Init.h"
#include "exec/LossScale.h"
#include "exec/PlanLoader.h"
#include "exec/Trace.h"
#include "io/DataLoader.h"
#include "io/TokenFile.h"
#include "llamac/runtime/Kernels.h"

#include <nlohmann/json.hpp>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace llamac {
namespace exec {

std::string formatThousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

namespace {

/// Dense bf16 peak of an H100 / H200 SXM (the MFU denominator on GPUs).
constexpr double kPeakFlops = 989e12;

std::string format(const char *fmt, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, value);
  return buf;
}

std::string mib(int64_t bytes) {
  return format("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

/// The token buffers of a training step: microbatch k's ids in tokens[k]
/// and targets[k] (the k-th `tokens` and the k-th `targets` argument, in
/// argument order: the compiler unrolls microbatches that way). A pipeline
/// stage may have only one of the two (the first stage the tokens, the
/// last the targets) or neither; `unused` takes the ids of the other.
struct BatchBuffers {
  std::vector<int32_t *> tokens, targets;
  std::vector<int32_t> unused;
};

/// Whether `program` has an argument with `role`.
bool hasArgument(const plan::Program &program, const char *role) {
  if (program.arguments())
    for (const plan::Argument *arg : *program.arguments())
      if (arg->role() && arg->role()->str() == role)
        return true;
  return false;
}

/// Checks that `exec`'s program (that of `rank`) is a training step the
/// loop can drive and finds its token buffers: `microbatches` pairs of
/// `tokens` / `targets` arguments of shape [micro_batch_size, seq_len].
bool checkTrainingProgram(Executor &exec, const LoadedPlan &plan, int rank,
                          BatchBuffers &batch, std::string &error) {
  const TrainConfig &tc = plan.train;
  const std::string src = plan.path + ": program " + std::to_string(rank);
  const int64_t m = tc.microbatches;
  if (tc.globalBatchSize != tc.microBatchSize * m * plan.plan->dp()) {
    error = plan.path + ": global_batch_size " +
            std::to_string(tc.globalBatchSize) + " != micro_batch_size " +
            std::to_string(tc.microBatchSize) + " * microbatches " +
            std::to_string(m) + " * dp " + std::to_string(plan.plan->dp());
    return false;
  }
  if (exec.findArgument("step") < 0) {
    error = src + " has no 'step' argument; not a training step";
    return false;
  }
  batch = BatchBuffers();
  for (int a = 0; a < exec.numArguments(); ++a) {
    const plan::Argument &arg = exec.argumentInfo(a);
    const std::string role = arg.role() ? arg.role()->str() : "";
    if (role != "tokens" && role != "targets")
      continue;
    std::vector<int32_t *> &list =
        role == "tokens" ? batch.tokens : batch.targets;
    const plan::Tensor &t = exec.argumentTensor(a);
    const bool shaped = t.shape() && t.shape()->size() == 2 &&
                        t.shape()->Get(0) == tc.microBatchSize &&
                        t.shape()->Get(1) == tc.seqLen;
    if (!shaped) {
      error = src + " argument " + std::to_string(a) + " ('" + role +
              "' of microbatch " + std::to_string(list.size()) +
              ") has shape " + shapeString(t) + ", expected [" +
              std::to_string(tc.microBatchSize) + ", " +
              std::to_string(tc.seqLen) + "] (micro_batch_size, seq_len)";
      return false;
    }
    list.push_back(static_cast<int32_t *>(exec.argument(a)));
  }
  // Each program has one `tokens` and one `targets` argument per
  // microbatch, or (a pipeline stage that does not read them) none; some
  // program of the plan has them.
  for (const char *role : {"tokens", "targets"}) {
    const size_t have = (std::string(role) == "tokens" ? batch.tokens
                                                       : batch.targets)
                            .size();
    if (have == 0) {
      bool somewhere = false;
      for (const plan::Program *program : *plan.plan->programs())
        somewhere = somewhere || hasArgument(*program, role);
      if (somewhere && plan.plan->pp() > 1)
        continue;
      error = (somewhere ? src : plan.path) + " has no '" + std::string(role) +
              "' argument" + (somewhere ? "" : " in any program") +
              "; not a training step";
      return false;
    }
    if (static_cast<int64_t>(have) != m) {
      error = src + " has " + std::to_string(have) + " '" + role +
              "' argument" + (have == 1 ? "" : "s") +
              ", expected one per microbatch: " + std::to_string(m) +
              " (the train config's microbatches)";
      return false;
    }
  }
  for (const char *role : {"loss", "lr"}) {
    if (!exec.scalarResultPtr(role)) {
      error = src + " has no '" + std::string(role) +
              "' result; not a training step";
      return false;
    }
  }
  if (batch.tokens.empty() != batch.targets.empty())
    batch.unused.resize(static_cast<size_t>(tc.microBatchSize * tc.seqLen));
  return true;
}

/// The plan's layout against the ranks of the job (DESIGN.md A4: world size
/// = dp * tp * pp), and what this runtime runs of it.
bool checkLayout(const LoadedPlan &plan, const comm::Comm &comm,
                 std::string &error) {
  const comm::Grid grid{plan.plan->pp(), plan.plan->dp(), plan.plan->tp()};
  const int need = grid.size(), have = comm.size();
  if (need == have)
    return true;
  auto ranks = [](int n) {
    return std::to_string(n) + (n == 1 ? " rank" : " ranks");
  };
  error = plan.path + ": plan needs " + ranks(need) + " (" + grid.toString() +
          "); launched with " + ranks(have) + ": ";
  if (need == 1) {
    error += "run it without mpirun (or with mpirun -np 1)";
  } else {
    error += "run it with mpirun -np " + std::to_string(need);
    if (!comm::mpiAvailable())
      error += " (this llamac was built without MPI: configure with "
               "-DLLAMAC_ENABLE_MPI=ON)";
  }
  return false;
}

/// The checkpoint flags, and that --save-dir can take this run's
/// checkpoints: without --resume it must not hold any (nothing is
/// overwritten).
bool checkCheckpointOptions(const RunOptions &o, std::string &error) {
  namespace fs = std::filesystem;
  if (o.saveEvery < 0) {
    error = "--save-every must be a positive number of steps, got " +
            std::to_string(o.saveEvery);
    return false;
  }
  if (o.keep < 0) {
    error = "--keep must be a positive number of checkpoints, got " +
            std::to_string(o.keep);
    return false;
  }
  if (o.saveDir.empty()) {
    const char *flag = o.resume           ? "--resume"
                       : o.saveEvery > 0 ? "--save-every"
                       : o.keep > 0      ? "--keep"
                                         : nullptr;
    if (flag) {
      error = std::string(flag) +
              " needs --save-dir DIR (the directory of the checkpoints)";
      return false;
    }
    return true;
  }
  if (o.resume && !o.initPath.empty()) {
    error = "--init and --resume exclude each other: a resumed run takes its "
            "weights from the checkpoint";
    return false;
  }
  std::error_code ec;
  if (fs::exists(o.saveDir, ec) && !fs::is_directory(o.saveDir, ec)) {
    error = o.saveDir + ": --save-dir exists and is not a directory";
    return false;
  }
  if (!o.resume) {
    std::vector<int64_t> steps = listCheckpoints(o.saveDir);
    if (!steps.empty() ||
        fs::exists(fs::path(o.saveDir) / kLatestName, ec)) {
      error = o.saveDir + ": --save-dir already holds checkpoints" +
              (steps.empty() ? std::string()
                             : " (newest " + checkpointName(steps.back()) +
                                   ")") +
              "; pass --resume to continue that run, or choose another "
              "directory";
      return false;
    }
  }
  return true;
}

/// A one-line progress bar on a terminal.
class ProgressBar {
public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void clear() {
    if (enabled_ && shown_) {
      std::fputs("\r\033[K", stdout);
      shown_ = false;
    }
  }
  void show(int64_t done, int64_t total, double secondsLeft) {
    if (!enabled_)
      return;
    constexpr int kWidth = 30;
    int filled = static_cast<int>(kWidth * done / total);
    std::string bar(filled, '=');
    bar.resize(kWidth, ' ');
    int64_t eta = static_cast<int64_t>(secondsLeft + 0.5);
    std::printf("\r[%s] %lld/%lld  ETA %02lld:%02lld:%02lld", bar.c_str(),
                static_cast<long long>(done), static_cast<long long>(total),
                static_cast<long long>(eta / 3600),
                static_cast<long long>(eta / 60 % 60),
                static_cast<long long>(eta % 60));
    std::fflush(stdout);
    shown_ = true;
  }

private:
  bool enabled_;
  bool shown_ = false;
};

/// --steps, --data and the checkpoint flags.
bool checkOptions(const RunOptions &options, std::string &error) {
  if (options.steps <= 0) {
    error = "--steps must be a positive number of steps, got " +
            std::to_string(options.steps);
    return false;
  }
  if (options.dataPaths.empty()) {
    error = "no token data given (--data FILE)";
    return false;
  }
  return checkCheckpointOptions(options, error);
}

/// Creates --save-dir and the --metrics file (rank 0). On failure nothing
/// is left behind.
bool openOutputs(const RunOptions &options, std::FILE *&metrics,
                 std::string &error) {
  namespace fs = std::filesystem;
  bool createdSaveDir = false;
  if (!options.saveDir.empty()) {
    std::error_code ec;
    createdSaveDir = fs::create_directories(options.saveDir, ec);
    if (ec) {
      error = options.saveDir + ": cannot create --save-dir: " + ec.message();
      return false;
    }
  }
  if (!options.metricsPath.empty()) {
    metrics = std::fopen(options.metricsPath.c_str(), "w");
    if (!metrics) {
      error = options.metricsPath +
              ": cannot create metrics file: " + std::strerror(errno);
      if (createdSaveDir) {
        std::error_code ignored;
        fs::remove(options.saveDir, ignored);
      }
      return false;
    }
  }
  return true;
}

} // namespace

int runTraining(const RunOptions &options, std::string &error) {
  comm::LocalComm alone;
  comm::Comm &comm = options.comm ? *options.comm : alone;
  const int rank = comm.rank();
  const bool root = rank == 0;
  const bool log = root && !options.quiet;

  // 1. Options, the plan and its layout, on every rank. Every rank learns
  // whether any failed before the first other collective, so that a failure
  // on one rank never leaves the others waiting (DESIGN.md A7).
  // One thread pool for the kernels and the GEMMs (see setNumThreads).
  kernels::setNumThreads(options.threads > 0 ? options.threads
                                             : omp_get_max_threads());

  LoadedPlan plan;
  bool ok = checkOptions(options, error) &&
            loadPlan(options.planPath, plan, error) &&
            checkLayout(plan, comm, error);
  if (comm.agreeOnFailure(!ok, error))
    return 1;

  // 2. The device grid; this rank's program; the data; the initial weights
  // (identical on every rank: the init is a function of seed and name) or
  // the checkpoint to resume from (every rank reads it).
  const LlamaConfig &model = plan.model;
  const TrainConfig &tc = plan.train;
  const comm::Grid grid{plan.plan->pp(), plan.plan->dp(), plan.plan->tp()};
  // The device outlives the executor that runs on it.
  std::unique_ptr<Device> device;
  Executor exec;
  BatchBuffers batch;
  io::TokenStream stream;
  io::DataLoader loader;
  TrainerState state;
  state.seed = options.seed;
  std::string resumedFrom;
  auto prepare = [&]() -> bool {
    if (!comm.setGrid(grid, error))
      return false;
    if (options.device != "cpu") {
      if (!(device = createDevice(options.device, options.tf32,
                                  options.cudaGraphs, error)))
        return false;
      exec.setDevice(device.get());
    }
    if (!exec.init(plan.program(rank), &comm, error)) {
      error = options.planPath + ": " + error;
      return false;
    }
    if (!checkTrainingProgram(exec, plan, rank, batch, error))
      return false;
    if (!checkPlanParameters(exec, *plan.plan, model, error)) {
      error = options.planPath + ": " + error;
      return false;
    }
    if (!stream.open(options.dataPaths, error))
      return false;
    if (stream.vocabSize() > static_cast<uint64_t>(model.vocabSize)) {
      error = options.dataPaths.front() + ": token data has vocab_size " +
              std::to_string(stream.vocabSize()) +
              ", larger than the model's vocab_size " +
              std::to_string(model.vocabSize);
      return false;
    }
    if (!loader.init(stream, tc.globalBatchSize, tc.seqLen, error))
      return false;
    if (options.resume)
      return resolveLatest(options.saveDir, resumedFrom, error) &&
             loadCheckpoint(resumedFrom, exec, *plan.plan, model, tc, state,
                            error);
    if (!options.initPath.empty())
      return loadInitWeights(exec, model, options.initPath, error);
    initializeParameters(exec, model, options.seed);
    return true;
  };
  ok = prepare();
  if (comm.agreeOnFailure(!ok, error))
    return 1;
  // Later checkpoints record the configuration they were trained with.
  state.globalBatchSize = tc.globalBatchSize;
  state.seqLen = tc.seqLen;
  state.trainConfigJson = tc.toJson();
  const int64_t firstStep = state.step;
  // Loss scaling (the loader checked that the plan's arguments, result and
  // configuration go together). A resumed dynamic scaler continues from the
  // checkpoint's state; a static one uses the configured scale.
  float *scaleArg = static_cast<float *>(exec.argument("loss_scale"));
  float *invScaleArg = static_cast<float *>(exec.argument("inv_loss_scale"));
  const float *allFinite = exec.scalarResultPtr("all_finite");
  const bool scaling = scaleArg != nullptr;
  const LossScaleConfig &scaleConfig = tc.lossScale;
  LossScaleState scaler = LossScaleState::initial(scaleConfig);
  const bool scalerResumed =
      scaling && state.hasLossScale && scaleConfig.dynamic;
  if (scalerResumed)
    scaler = state.lossScale;
  state.hasLossScale = scaling;
  // Iterations (the data position, `s` below) and optimizer steps (the
  // plan's `step` argument) differ by the steps loss scaling skipped.
  int64_t optimizerStep = state.optimizerStep;
  if (firstStep >= options.steps) {
    if (log) {
      std::printf("%s is at step %lld, --steps is %lld: nothing to do\n",
                  resumedFrom.c_str(), static_cast<long long>(firstStep),
                  static_cast<long long>(options.steps));
      std::fflush(stdout);
    }
    return 0;
  }

  // 3. The outputs, now that the input is known to be good on every rank.
  // Every rank creates its trace file (a temporary one until the end), and
  // the ranks agree on that before rank 0 creates anything: a bad --trace
  // path on any rank leaves no metrics file or --save-dir behind.
  const int64_t tokensPerStep = tc.globalBatchSize * tc.seqLen;
  Trace trace;
  if (!options.tracePath.empty()) {
    const nlohmann::json metadata = {
        {"plan", options.planPath},
        {"model", model.name},
        {"layout", grid.toString()},
        {"comm", comm.name()},
        {"threads", omp_get_max_threads()},
        {"first_step", firstStep + 1},
        {"steps", options.steps},
        {"tokens_per_step", tokensPerStep}};
    ok = trace.open(traceFilePath(options.tracePath, rank, comm.size()),
                    exec.program(), rank, comm.size(), metadata, error);
    if (comm.agreeOnFailure(!ok, error))
      return 1;
    exec.setTrace(&trace);
  }
  // Rank 0 writes the rest: after an all-reduced step every rank holds the
  // same loss, lr and grad_norm (the compiler makes them replicated), and
  // rank 0 gets the full parameters from CheckpointTensors::gather.
  std::FILE *metrics = nullptr;
  ok = !root || openOutputs(options, metrics, error);
  if (comm.agreeOnFailure(!ok, error))
    return 1;
  // The trace's time 0: the ranks have just left the same agreement.
  trace.start();
  struct Closer {
    std::FILE *f;
    ~Closer() {
      if (f)
        std::fclose(f);
    }
  } closer{metrics};

  // 4. The header.
  if (log) {
    std::printf("model %s: %s parameters, %lld layers, %lld heads, %lld kv "
                "heads, hidden %lld, vocab %lld\n",
                model.name.c_str(),
                formatThousands(model.numParameters()).c_str(),
                static_cast<long long>(model.numHiddenLayers),
                static_cast<long long>(model.numAttentionHeads),
                static_cast<long long>(model.numKeyValueHeads),
                static_cast<long long>(model.hiddenSize),
                static_cast<long long>(model.vocabSize));
    const int world = comm.size();
    const int threads = omp_get_max_threads();
    const std::string ranks =
        world == 1 ? "1 rank"
                   : std::to_string(world) + " ranks, " + comm.name();
    const std::string where =
        device ? device->name() +
                     (options.cudaGraphs ? ", CUDA graphs" : "") +
                     (options.tf32 ? ", TF32" : "")
               : "cpu | " + std::to_string(threads) + " thread" +
                     (threads == 1 ? "" : "s") +
                     (world == 1 ? "" : " per rank");
    std::printf("layout %s (%s) | precision %s | device %s\n",
                grid.toString().c_str(), ranks.c_str(),
                plan.plan->precision() ? plan.plan->precision()->c_str()
                                       : "fp32",
                where.c_str());
    const std::string scratch =
        exec.scratchBytes() > 0
            ? ", scratch " + mib(exec.scratchBytes())
            : std::string();
    std::printf("memory: arena %s, parameters + optimizer state %s%s%s\n",
                mib(exec.arenaBytes()).c_str(),
                mib(exec.argumentBytesTotal()).c_str(), scratch.c_str(),
                world == 1 ? "" : " per rank");
    const std::string accumulate =
        tc.microbatches == 1
            ? std::string()
            : " x " + std::to_string(tc.microbatches) +
                  " microbatches, gradients accumulated";
    std::printf("batch: global %lld x seq_len %lld = %s tokens/step (micro "
                "batch %lld%s%s)\n",
                static_cast<long long>(tc.globalBatchSize),
                static_cast<long long>(tc.seqLen),
                formatThousands(tokensPerStep).c_str(),
                static_cast<long long>(tc.microBatchSize),
                accumulate.c_str(), grid.dp == 1 ? "" : " per dp rank");
    std::printf("FLOPs/token = 6N + 12*L*H*Q*T = %.4g (PaLM/torchtitan "
                "convention)%s\n",
                model.flopsPerToken(tc.seqLen),
                device ? "; mfu against 989 TFLOP/s (H100/H200 dense bf16)"
                       : "");
    std::string init =
        options.resume
            ? "resumed from " + resumedFrom + " (step " +
                  std::to_string(firstStep) +
                  (optimizerStep != firstStep
                       ? ", optimizer step " + std::to_string(optimizerStep)
                       : std::string()) +
                  ")"
        : options.initPath.empty()
            ? "random, seed " + std::to_string(options.seed)
            : options.initPath;
    std::printf("data: %s tokens in %zu file%s | init: %s\n",
                formatThousands(static_cast<int64_t>(stream.count())).c_str(),
                stream.numFiles(), stream.numFiles() == 1 ? "" : "s",
                init.c_str());
    if (scaling) {
      std::string how =
          scaleConfig.dynamic
              ? "dynamic, scale " + format("%g", scaler.scale) +
                    (scalerResumed ? " (resumed)" : "") + ", x" +
                    format("%g", scaleConfig.growthFactor) + " after " +
                    std::to_string(scaleConfig.growthInterval) +
                    " finite steps, x" +
                    format("%g", scaleConfig.backoffFactor) + " after " +
                    std::to_string(scaleConfig.hysteresis) + " overflow" +
                    (scaleConfig.hysteresis == 1 ? "" : "s") + ", min " +
                    format("%g", scaleConfig.minScale)
              : "static, scale " + format("%g", scaler.scale);
      std::printf("loss scaling: %s; steps with inf/nan gradients are "
                  "skipped\n",
                  how.c_str());
    }
    if (exec.numBuckets() > 0 && world > 1)
      std::printf("gradient buckets: %d, all-reduced %s\n",
                  exec.numBuckets(),
                  comm.overlapsAllReduce()
                      ? "on a communication thread, overlapping the "
                        "backward pass"
                      : "at their waits (no overlap)");
    if (!options.saveDir.empty()) {
      std::string when =
          options.saveEvery > 0
              ? "every " + std::to_string(options.saveEvery) +
                    " steps and after the last"
              : "after the last step";
      if (options.keep > 0)
        when += ", keep the newest " + std::to_string(options.keep);
      std::printf("checkpoints: %s, %s\n", options.saveDir.c_str(),
                  when.c_str());
    }
    if (trace.enabled()) {
      const std::string last =
          traceFilePath(options.tracePath, world - 1, world);
      std::printf("trace: %s%s (Chrome trace event format, written at the "
                  "end)\n",
                  trace.path().c_str(),
                  world == 1 ? "" : (" .. " + last).c_str());
    }
    std::fflush(stdout);
  }

  // 5. The loop. Every rank runs its program on its slice of the global
  // batch (A3: dp rank r takes sequences [r*B/dp, (r+1)*B/dp), its
  // microbatch k the k-th consecutive slice of those); rank 0 logs, writes
  // metrics and saves checkpoints; then every rank learns whether any
  // failed, so that all stop together.
  int64_t *step = static_cast<int64_t *>(exec.argument("step"));
  const float *loss = exec.scalarResultPtr("loss");
  const float *lr = exec.scalarResultPtr("lr");
  const float *gradNorm = exec.scalarResultPtr("grad_norm");
  const int dpRank = grid.dpRank(rank);
  // Not under mpirun: it hands the ranks a pseudo-terminal even when its
  // own output goes to a file.
  ProgressBar bar(log && isatty(STDOUT_FILENO) && !comm::launchedByMpirun());
  using Clock = std::chrono::steady_clock;
  const SaveOptions saveOptions{kDefaultMaxShardBytes, options.keep};
  const auto start = Clock::now();
  int64_t skippedSteps = 0;
  for (int64_t s = firstStep; s < options.steps; ++s) {
    const auto t0 = Clock::now();
    trace.beginStep(s + 1);
    // A failure here leaves this rank out of step with the others' next
    // collective: it ends the job (with one rank, it is an ordinary error).
    bool ran = true;
    const size_t filled = std::max(batch.tokens.size(), batch.targets.size());
    for (size_t k = 0; ran && k < filled; ++k)
      ran = loader.fillBatch(
          s, dpRank, grid.dp, static_cast<int64_t>(k), tc.microBatchSize,
          batch.tokens.empty() ? batch.unused.data() : batch.tokens[k],
          batch.targets.empty() ? batch.unused.data() : batch.targets[k],
          error);
    trace.host(HostEvent::Data, t0, Clock::now());
    const double scaleUsed = scaler.scale;
    if (ran) {
      *step = optimizerStep;
      if (scaling) {
        *scaleArg = static_cast<float>(scaleUsed);
        *invScaleArg = static_cast<float>(1.0 / scaleUsed);
      }
      ran = exec.run(error);
    }
    if (!ran) {
      bar.clear();
      error = "step " + std::to_string(s + 1) + ": " + error;
      trace.discard(); // comm.abort() skips the destructors.
      if (comm.size() > 1)
        comm.abort(error, 1);
      return 1;
    }
    // The step's outcome: all_finite is the same on every rank (the
    // compiler reduces it over the job), so every rank skips the same
    // steps and keeps the same scaler.
    bool skipped = false;
    std::string badFinite;
    if (scaling) {
      const float finite = *allFinite;
      if (finite != 0.0f && finite != 1.0f)
        badFinite = "step " + std::to_string(s + 1) +
                    ": the plan's all_finite result is " +
                    format("%g", finite) + ", expected 1 or 0";
      skipped = finite != 1.0f;
      scaler.update(scaleConfig, !skipped);
    }
    if (skipped)
      ++skippedSteps;
    else
      ++optimizerStep;
    const double seconds =
        std::chrono::duration<double>(Clock::now() - t0).count();
    const double tokPerS = seconds > 0 ? tokensPerStep / seconds : 0.0;
    const double mfu = tokPerS * model.flopsPerToken(tc.seqLen) / kPeakFlops;
    // A checkpoint holds full tensors: every rank gathers its shards, here,
    // where the ranks are still in step (before anything only rank 0 does
    // can fail), and with pipeline stages each stage's first rank sends
    // its stage's to rank 0. Without shards or stages this is no
    // collective and costs nothing; with them, the full copies live until
    // the end of this step only.
    const int64_t done = s + 1;
    CheckpointTensors full;
    const bool saveNow =
        !options.saveDir.empty() &&
        (done == options.steps ||
         (options.saveEvery > 0 && done % options.saveEvery == 0));
    if (saveNow && !(exec.syncToHost(error) &&
                     full.gather(exec, *plan.plan, error))) {
      bar.clear();
      error = "step " + std::to_string(done) + ": " + error;
      trace.discard();
      if (comm.size() > 1)
        comm.abort(error, 1);
      return 1;
    }
    // A non-finite loss ends the run even with loss scaling: the forward
    // pass itself overflowed, which no scale fixes.
    ok = std::isfinite(*loss);
    if (!ok)
      error = "step " + std::to_string(s + 1) + ": loss is " +
              (std::isnan(*loss) ? "nan" : "inf") +
              "; training diverged (try a lower learning rate)";
    if (ok && !badFinite.empty()) {
      error = badFinite;
      ok = false;
    }
    const auto tLog = Clock::now();
    if (ok && log) {
      bar.clear();
      std::string line = "step " + std::to_string(s + 1) + "/" +
                         std::to_string(options.steps) + " | loss " +
                         format("%.4f", *loss) + " | lr " +
                         format("%.2e", *lr);
      if (gradNorm)
        line += " | grad_norm " + format("%.3f", *gradNorm);
      if (scaling)
        line += " | scale " + format("%g", scaleUsed) +
                (skipped ? " | skipped (inf/nan gradients)" : "");
      line += " | " + formatThousands(static_cast<int64_t>(tokPerS)) +
              " tok/s";
      if (device)
        line += " | mfu " + format("%.1f%%", 100.0 * mfu);
      std::puts(line.c_str());
      std::fflush(stdout);
      double elapsed =
          std::chrono::duration<double>(Clock::now() - start).count();
      bar.show(s + 1, options.steps,
               elapsed / double(s + 1 - firstStep) *
                   double(options.steps - s - 1));
    }
    if (ok && metrics) {
      nlohmann::json j = {{"step", s + 1},
                          {"loss", *loss},
                          {"lr", *lr},
                          {"grad_norm", nullptr},
                          {"tokens_per_s", tokPerS}};
      if (device)
        j["mfu"] = mfu;
      if (gradNorm)
        j["grad_norm"] = *gradNorm;
      if (scaling) {
        j["loss_scale"] = scaleUsed;
        j["skipped"] = skipped;
      }
      std::string text = j.dump() + "\n";
      if (std::fputs(text.c_str(), metrics) < 0 || std::fflush(metrics) != 0) {
        error = options.metricsPath + ": cannot write metrics: " +
                std::strerror(errno);
        ok = false;
      }
    }
    if (log || metrics)
      trace.host(HostEvent::Log, tLog, Clock::now());
    if (ok && root && saveNow) {
      const auto t1 = Clock::now();
      state.step = done;
      state.optimizerStep = optimizerStep;
      state.lossScale = scaler;
      std::string saved;
      if (!saveCheckpoint(options.saveDir, full, model, state, saveOptions,
                          saved, error)) {
        error = "step " + std::to_string(done) +
                ": cannot save checkpoint: " + error;
        ok = false;
      } else {
        trace.host(HostEvent::Checkpoint, t1, Clock::now(), saved);
      }
      if (ok && log) {
        bar.clear();
        std::printf("saved %s (%.2f s)\n", saved.c_str(),
                    std::chrono::duration<double>(Clock::now() - t1).count());
        std::fflush(stdout);
      }
    }
    const auto tAgree = Clock::now();
    const bool failed = comm.agreeOnFailure(!ok, error);
    const auto t2 = Clock::now();
    trace.host(HostEvent::Agree, tAgree, t2);
    trace.host(HostEvent::Step, t0, t2);
    if (failed) {
      bar.clear();
      return 1;
    }
    // Formatting the step's events is not part of the step.
    trace.flushStep();
  }
  bar.clear();
  if (log) {
    double total = std::chrono::duration<double>(Clock::now() - start).count();
    const int64_t ran = options.steps - firstStep;
    const std::string skips =
        scaling ? " (" + std::to_string(skippedSteps) + " skipped)" : "";
    std::printf(
        "done: %lld steps%s in %.1f s, final loss %.4f, %s tok/s\n",
        static_cast<long long>(ran), skips.c_str(), total, *loss,
        formatThousands(
            static_cast<int64_t>(total > 0 ? tokensPerStep * ran / total : 0.0))
            .c_str());
    std::fflush(stdout);
  }
  ok = true;
  if (metrics) {
    closer.f = nullptr;
    if (std::fclose(metrics) != 0) {
      error = options.metricsPath + ": cannot write metrics: " +
              std::strerror(errno);
      ok = false;
    }
  }
  // The trace: complete and durable on every rank before any is renamed
  // into place, so that a failure on one rank leaves no trace file at all.
  if (ok && !trace.finish(error))
    ok = false;
  if (comm.agreeOnFailure(!ok, error))
    return 1;
  if (options.tracePath.empty())
    return 0;
  ok = trace.commit(error);
  return comm.agreeOnFailure(!ok, error) ? 1 : 0;
}

} // namespace exec
} // namespace llamac
