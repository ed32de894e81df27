//===- Trainer.cpp - The training loop of `llamac run` ---------------------===//
#include "exec/Trainer.h"

#include "exec/Checkpoint.h"
#include "exec/Executor.h"
#include "exec/Init.h"
#include "exec/PlanLoader.h"
#include "io/DataLoader.h"
#include "io/TokenFile.h"

#include <nlohmann/json.hpp>

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
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

std::string format(const char *fmt, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, value);
  return buf;
}

std::string mib(int64_t bytes) {
  return format("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

/// Checks that `exec`'s program is a training step the loop can drive and
/// finds its token buffers.
bool checkTrainingProgram(const Executor &exec, const LoadedPlan &plan,
                          std::string &error) {
  const TrainConfig &tc = plan.train;
  const std::string &src = plan.path;
  if (tc.microbatches != 1) {
    error = src + ": plan accumulates " + std::to_string(tc.microbatches) +
            " microbatches per step; not supported by this runtime yet";
    return false;
  }
  if (tc.globalBatchSize != tc.microBatchSize * plan.plan->dp()) {
    error = src + ": global_batch_size " +
            std::to_string(tc.globalBatchSize) +
            " != micro_batch_size " + std::to_string(tc.microBatchSize) +
            " * dp " + std::to_string(plan.plan->dp());
    return false;
  }
  for (const char *role : {"tokens", "targets", "step"}) {
    if (exec.findArgument(role) < 0) {
      error = src + ": program 0 has no '" + std::string(role) +
              "' argument; not a training step";
      return false;
    }
  }
  for (const char *role : {"tokens", "targets"}) {
    const plan::Tensor &t = exec.argumentTensor(exec.findArgument(role));
    if (numElements(t) != tc.microBatchSize * tc.seqLen) {
      error = src + ": program 0 argument '" + std::string(role) +
              "' has shape " + shapeString(t) + ", expected [" +
              std::to_string(tc.microBatchSize) + ", " +
              std::to_string(tc.seqLen) + "] (micro_batch_size, seq_len)";
      return false;
    }
  }
  for (const char *role : {"loss", "lr"}) {
    if (!exec.scalarResultPtr(role)) {
      error = src + ": program 0 has no '" + std::string(role) +
              "' result; not a training step";
      return false;
    }
  }
  return true;
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

} // namespace

int runTraining(const RunOptions &options, std::string &error) {
  // 1. Options.
  if (options.steps <= 0) {
    error = "--steps must be a positive number of steps, got " +
            std::to_string(options.steps);
    return 1;
  }
  if (options.dataPaths.empty()) {
    error = "no token data given (--data FILE)";
    return 1;
  }
  if (!checkCheckpointOptions(options, error))
    return 1;

  // 2. The plan.
  LoadedPlan plan;
  if (!loadPlan(options.planPath, plan, error))
    return 1;
  if (plan.worldSize() != 1) {
    error = options.planPath + ": plan has dp*tp*pp = " +
            std::to_string(plan.worldSize()) +
            " ranks; multi-rank plans need mpirun; not supported by this "
            "runtime yet";
    return 1;
  }
  const LlamaConfig &model = plan.model;
  const TrainConfig &tc = plan.train;
  Executor exec;
  if (!exec.init(plan.program(0), error)) {
    error = options.planPath + ": " + error;
    return 1;
  }
  if (!checkTrainingProgram(exec, plan, error))
    return 1;
  if (!checkPlanParameters(exec, model, error)) {
    error = options.planPath + ": " + error;
    return 1;
  }

  // 3. The data.
  io::TokenStream stream;
  if (!stream.open(options.dataPaths, error))
    return 1;
  if (stream.vocabSize() > static_cast<uint64_t>(model.vocabSize)) {
    error = options.dataPaths.front() + ": token data has vocab_size " +
            std::to_string(stream.vocabSize()) +
            ", larger than the model's vocab_size " +
            std::to_string(model.vocabSize);
    return 1;
  }
  io::DataLoader loader;
  if (!loader.init(stream, tc.globalBatchSize, tc.seqLen, error))
    return 1;

  // 4. Initial weights, or the checkpoint to resume from.
  TrainerState state;
  state.seed = options.seed;
  std::string resumedFrom;
  if (options.resume) {
    if (!resolveLatest(options.saveDir, resumedFrom, error) ||
        !loadCheckpoint(resumedFrom, exec, model, tc, state, error))
      return 1;
  } else if (!options.initPath.empty()) {
    if (!loadInitWeights(exec, model, options.initPath, error))
      return 1;
  } else {
    initializeParameters(exec, model, options.seed);
  }
  // Later checkpoints record the configuration they were trained with.
  state.globalBatchSize = tc.globalBatchSize;
  state.seqLen = tc.seqLen;
  state.trainConfigJson = tc.toJson();
  const int64_t firstStep = state.step;
  const bool log = !options.quiet;
  if (firstStep >= options.steps) {
    if (log) {
      std::printf("%s is at step %lld, --steps is %lld: nothing to do\n",
                  resumedFrom.c_str(), static_cast<long long>(firstStep),
                  static_cast<long long>(options.steps));
      std::fflush(stdout);
    }
    return 0;
  }

  // 5. The outputs, now that the input is known to be good.
  namespace fs = std::filesystem;
  bool createdSaveDir = false;
  if (!options.saveDir.empty()) {
    std::error_code ec;
    createdSaveDir = fs::create_directories(options.saveDir, ec);
    if (ec) {
      error = options.saveDir + ": cannot create --save-dir: " + ec.message();
      return 1;
    }
  }
  std::FILE *metrics = nullptr;
  if (!options.metricsPath.empty()) {
    metrics = std::fopen(options.metricsPath.c_str(), "w");
    if (!metrics) {
      error = options.metricsPath + ": cannot create metrics file: " +
              std::strerror(errno);
      if (createdSaveDir) {
        std::error_code ignored;
        fs::remove(options.saveDir, ignored);
      }
      return 1;
    }
  }
  struct Closer {
    std::FILE *f;
    ~Closer() {
      if (f)
        std::fclose(f);
    }
  } closer{metrics};

  // 6. The header.
  const int64_t tokensPerStep = tc.globalBatchSize * tc.seqLen;
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
    std::printf("layout dp=%d tp=%d pp=%d | precision %s | device cpu | "
                "%d thread%s\n",
                plan.plan->dp(), plan.plan->tp(), plan.plan->pp(),
                plan.plan->precision() ? plan.plan->precision()->c_str()
                                       : "fp32",
                omp_get_max_threads(), omp_get_max_threads() == 1 ? "" : "s");
    std::printf("memory: arena %s, parameters + optimizer state %s\n",
                mib(exec.arenaBytes()).c_str(),
                mib(exec.argumentBytesTotal()).c_str());
    std::printf("batch: global %lld x seq_len %lld = %s tokens/step (micro "
                "batch %lld)\n",
                static_cast<long long>(tc.globalBatchSize),
                static_cast<long long>(tc.seqLen),
                formatThousands(tokensPerStep).c_str(),
                static_cast<long long>(tc.microBatchSize));
    std::printf("FLOPs/token = 6N + 12*L*H*Q*T = %.4g (PaLM/torchtitan "
                "convention)\n",
                model.flopsPerToken(tc.seqLen));
    std::string init =
        options.resume ? "resumed from " + resumedFrom + " (step " +
                             std::to_string(firstStep) + ")"
        : options.initPath.empty()
            ? "random, seed " + std::to_string(options.seed)
            : options.initPath;
    std::printf("data: %s tokens in %zu file%s | init: %s\n",
                formatThousands(static_cast<int64_t>(stream.count())).c_str(),
                stream.numFiles(), stream.numFiles() == 1 ? "" : "s",
                init.c_str());
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
    std::fflush(stdout);
  }

  // 7. The loop.
  int32_t *tokens = static_cast<int32_t *>(exec.argument("tokens"));
  int32_t *targets = static_cast<int32_t *>(exec.argument("targets"));
  int64_t *step = static_cast<int64_t *>(exec.argument("step"));
  const float *loss = exec.scalarResultPtr("loss");
  const float *lr = exec.scalarResultPtr("lr");
  const float *gradNorm = exec.scalarResultPtr("grad_norm");
  ProgressBar bar(log && isatty(STDOUT_FILENO));
  using Clock = std::chrono::steady_clock;
  const SaveOptions saveOptions{kDefaultMaxShardBytes, options.keep};
  const auto start = Clock::now();
  for (int64_t s = firstStep; s < options.steps; ++s) {
    const auto t0 = Clock::now();
    if (!loader.fillBatch(s, /*dpRank=*/0, /*dp=*/1, /*microIndex=*/0,
                          tc.microBatchSize, tokens, targets, error))
      return 1;
    *step = s;
    exec.run();
    const double seconds =
        std::chrono::duration<double>(Clock::now() - t0).count();
    const double tokPerS = seconds > 0 ? tokensPerStep / seconds : 0.0;
    if (!std::isfinite(*loss)) {
      bar.clear();
      error = "step " + std::to_string(s + 1) + ": loss is " +
              (std::isnan(*loss) ? "nan" : "inf") +
              "; training diverged (try a lower learning rate)";
      return 1;
    }
    if (log) {
      bar.clear();
      std::string line = "step " + std::to_string(s + 1) + "/" +
                         std::to_string(options.steps) + " | loss " +
                         format("%.4f", *loss) + " | lr " +
                         format("%.2e", *lr);
      if (gradNorm)
        line += " | grad_norm " + format("%.3f", *gradNorm);
      line += " | " + formatThousands(static_cast<int64_t>(tokPerS)) +
              " tok/s";
      std::puts(line.c_str());
      double elapsed =
          std::chrono::duration<double>(Clock::now() - start).count();
      bar.show(s + 1, options.steps,
               elapsed / double(s + 1 - firstStep) *
                   double(options.steps - s - 1));
    }
    if (metrics) {
      nlohmann::json j = {{"step", s + 1},
                          {"loss", *loss},
                          {"lr", *lr},
                          {"grad_norm", nullptr},
                          {"tokens_per_s", tokPerS}};
      if (gradNorm)
        j["grad_norm"] = *gradNorm;
      std::string text = j.dump() + "\n";
      if (std::fputs(text.c_str(), metrics) < 0 || std::fflush(metrics) != 0) {
        error = options.metricsPath + ": cannot write metrics: " +
                std::strerror(errno);
        return 1;
      }
    }
    const int64_t done = s + 1;
    if (!options.saveDir.empty() &&
        (done == options.steps ||
         (options.saveEvery > 0 && done % options.saveEvery == 0))) {
      const auto t1 = Clock::now();
      state.step = done;
      std::string saved;
      if (!saveCheckpoint(options.saveDir, exec, model, state, saveOptions,
                          saved, error)) {
        bar.clear();
        error = "step " + std::to_string(done) +
                ": cannot save checkpoint: " + error;
        return 1;
      }
      if (log) {
        bar.clear();
        std::printf("saved %s (%.2f s)\n", saved.c_str(),
                    std::chrono::duration<double>(Clock::now() - t1).count());
        std::fflush(stdout);
      }
    }
  }
  bar.clear();
  if (log) {
    double total = std::chrono::duration<double>(Clock::now() - start).count();
    const int64_t ran = options.steps - firstStep;
    std::printf("done: %lld steps in %.1f s, final loss %.4f, %s tok/s\n",
                static_cast<long long>(ran), total, *loss,
                formatThousands(static_cast<int64_t>(
                                    total > 0 ? tokensPerStep * ran / total
                                              : 0.0))
                    .c_str());
    std::fflush(stdout);
  }
  if (metrics) {
    closer.f = nullptr;
    if (std::fclose(metrics) != 0) {
      error = options.metricsPath + ": cannot write metrics: " +
              std::strerror(errno);
      return 1;
    }
  }
  return 0;
}

} // namespace exec
} // namespace llamac
