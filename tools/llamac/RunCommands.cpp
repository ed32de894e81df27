//===- RunCommands.cpp - llamac run / inspect ------------------------------===//
#include "RunCommands.h"

#include "exec/PlanLoader.h"

#include <cstdio>
#include <iostream>
#include <map>

using namespace llamac;

void llamac::addRunFlags(CLI::App &app, exec::RunOptions &o) {
  app.add_option("--data", o.dataPaths,
                 "Token files (or directories of *.tok shards), read as one "
                 "stream")
      ->required();
  app.add_option("--steps", o.steps,
                 "Optimizer steps to run (with --resume: the total, the "
                 "checkpoint's steps included)")
      ->required();
  app.add_option("--seed", o.seed, "Seed of the parameter initialisation");
  app.add_option("--metrics", o.metricsPath,
                 "Write one JSON object per step to this file (JSON Lines)");
  app.add_option("--init", o.initPath,
                 "Initial weights: an HF safetensors file or checkpoint "
                 "directory with HF tensor names");
  app.add_flag("-q,--quiet", o.quiet, "No per-step console output");
  app.add_option("--threads", o.threads,
                 "CPU threads per process (default: OMP_NUM_THREADS, else "
                 "all cores)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--save-dir", o.saveDir,
                 "Save checkpoints (HF-loadable directories DIR/step-<N> "
                 "with optimizer and trainer state) here, after the last "
                 "step and every --save-every steps");
  app.add_option("--save-every", o.saveEvery,
                 "Save a checkpoint every K steps (needs --save-dir)");
  app.add_option("--keep", o.keep,
                 "Keep only the K newest checkpoints (default: all)");
  app.add_flag("--resume", o.resume,
               "Continue from --save-dir's latest checkpoint; --steps is "
               "the total number of steps");
  app.add_option("--device", o.device,
                 "Where the kernels run: cpu (default) or cuda / cuda:N (one "
                 "GPU; single-rank plans)");
  app.add_flag("--tf32", o.tf32,
               "On CUDA: f32 GEMMs on TF32 tensor cores (default: exact f32)");
  app.add_flag("!--no-cuda-graphs", o.cudaGraphs,
               "On CUDA: launch every kernel of every step instead of "
               "replaying the step captured as a CUDA graph");
  app.add_option("--trace", o.tracePath,
                 "Write a Chrome/Perfetto trace (kernels, all_reduces, data, "
                 "steps, checkpoints) at the end of the run; with several "
                 "ranks each writes its own, FILE.rank<R>.json (.rank<R> "
                 "before the extension)");
}

int llamac::runInspect(const std::string &planPath) {
  exec::LoadedPlan loaded;
  std::string error;
  if (!exec::loadPlan(planPath, loaded, error)) {
    std::cerr << "llamac inspect: error: " << error << "\n";
    return 1;
  }
  const plan::Plan &p = *loaded.plan;
  const LlamaConfig &c = loaded.model;
  const exec::TrainConfig &t = loaded.train;
  std::printf("plan       %s (format %u)\n", planPath.c_str(),
              p.format_version());
  std::printf("model      %s: %s parameters, %lld layers, hidden %lld, "
              "%lld heads / %lld kv heads, vocab %lld%s\n",
              c.name.c_str(),
              exec::formatThousands(c.numParameters()).c_str(),
              (long long)c.numHiddenLayers, (long long)c.hiddenSize,
              (long long)c.numAttentionHeads, (long long)c.numKeyValueHeads,
              (long long)c.vocabSize, c.tieWordEmbeddings ? ", tied" : "");
  std::printf("layout     dp=%d tp=%d pp=%d, %d rank(s), precision %s\n",
              p.dp(), p.tp(), p.pp(), loaded.worldSize(),
              p.precision() ? p.precision()->c_str() : "fp32");
  std::printf("batch      global %lld x seq %lld, micro %lld, %lld "
              "microbatch(es)\n",
              (long long)t.globalBatchSize, (long long)t.seqLen,
              (long long)t.microBatchSize, (long long)t.microbatches);
  std::printf("optimizer  AdamW lr %g (min %g, warmup %lld, decay %lld), "
              "betas (%g, %g), eps %g, weight decay %g, clip norm %g, "
              "clip value %g\n",
              t.lr, t.minLr, (long long)t.warmupSteps,
              (long long)t.decaySteps, t.beta1, t.beta2, t.eps, t.weightDecay,
              t.clipGradNorm, t.clipGradValue);
  std::printf("flops      %.4g per token (6N + 12*L*H*Q*T)\n",
              c.flopsPerToken(t.seqLen));
  for (const plan::Program *prog : *p.programs()) {
    std::map<std::string, int64_t> bytesByRole;
    std::map<std::string, int> splitByAxes; // "dim 0 over tp" -> params
    static const char *kAxis[] = {"pp", "dp", "tp"};
    for (const plan::Argument *arg : *prog->arguments()) {
      const plan::Tensor *tensor = prog->tensors()->Get(arg->tensor());
      bytesByRole[arg->role()->str()] +=
          exec::numElements(*tensor) * exec::dtypeBytes(tensor->dtype());
      if (arg->shard_dim() >= 0 && arg->role()->str() == "param") {
        std::string key = "dim " + std::to_string(arg->shard_dim()) + " over ";
        if (arg->shard_axes())
          for (size_t i = 0; i < arg->shard_axes()->size(); ++i) {
            int64_t a = arg->shard_axes()->Get(i);
            key += std::string(i ? "+" : "") +
                   (a >= 0 && a < 3 ? kAxis[a] : "?");
          }
        ++splitByAxes[key];
      }
    }
    std::map<std::string, int> kernels;
    for (const plan::Instr *instr : *prog->instrs())
      ++kernels[instr->kernel()->str()];
    std::printf("rank %d     stage %d: %u tensors, %u instructions, arena "
                "%.2f MiB, GEMM workspace %.2f MiB\n",
                prog->rank(), prog->stage(), prog->tensors()->size(),
                prog->instrs()->size(), prog->arena_bytes() / 1048576.0,
                prog->workspace_bytes() / 1048576.0);
    for (auto &[role, bytes] : bytesByRole)
      std::printf("           %-8s %10.2f MiB\n", role.c_str(),
                  bytes / 1048576.0);
    if (!splitByAxes.empty()) {
      std::string split;
      for (auto &[key, count] : splitByAxes)
        split += (split.empty() ? "" : ", ") + std::to_string(count) +
                 " split on " + key;
      std::printf("           params:  %s (this rank holds one block)\n",
                  split.c_str());
    }
    std::string list;
    for (auto &[name, count] : kernels)
      list += (list.empty() ? "" : ", ") + name + " x" + std::to_string(count);
    std::printf("           kernels: %s\n", list.c_str());
  }
  return 0;
}
