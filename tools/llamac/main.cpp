//===- main.cpp - The llamac driver
//----------------------------------------===//
//
//   llamac compile MODEL [flags] -o model.llx    compile a training plan
//   llamac run model.llx --data FILE --steps N   execute it
//   llamac train MODEL --data FILE --steps N     compile and run in one go
//   llamac inspect model.llx                     print a plan summary
//   llamac tokenizer train / data prepare / data info
//
// run and train are one rank each of `mpirun -np N llamac run ...`: the
// process's communicator (MPI under mpirun, alone otherwise) lives for the
// whole command, so MPI_Finalize runs on every rank before exit.
//
//===----------------------------------------------------------------------===//
#include "DataCommands.h"
#include "RunCommands.h"
#include "TrainOptions.h"
#include "comm/Comm.h"
#include "exec/Device.h"
#ifdef LLAMAC_HAVE_COMPILER
#include "Compile.h"
#endif

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <unistd.h>

using namespace llamac;

/// "<command>: error: <error>" on stderr in one write, so that the lines of
/// the ranks of an mpirun job do not interleave.
static void reportError(const char *command, const std::string &error) {
  std::string line = std::string(command) + ": error: " + error + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

/// libgomp's threads spin up to GOMP_SPINCOUNT (default 300,000) iterations
/// at every barrier before sleeping. A training step has hundreds of
/// parallel regions, so on a machine with any other load the spinning
/// threads steal the cores the working threads need: measured on 2 cores
/// with one busy process, `mini` fell from ~8,800 to ~430 tokens/s. A short
/// spin keeps the idle-machine speed and degrades gracefully under load
/// (docs/performance.md). libgomp reads the variable when it loads, before
/// main, so the process re-executes itself once with it set; a user's own
/// OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone.
/// The job's communicator: NCCL for a launch without mpirun
/// (LLAMAC_WORLD_SIZE / WORLD_SIZE, GPUs only), else MPI under mpirun, else
/// this process alone.
static std::unique_ptr<comm::Comm> createJobComm(const std::string &device,
                                                 std::string &error) {
  if (!comm::envLaunchRequested())
    return comm::createComm(error);
  comm::EnvLaunch launch;
  if (!comm::readEnvLaunch(launch, error))
    return nullptr;
  if (device == "cpu") {
    error = "a launch without mpirun (" +
            std::string(std::getenv("LLAMAC_WORLD_SIZE") ? "LLAMAC_WORLD_SIZE"
                                                          : "WORLD_SIZE") +
            ") connects GPUs through NCCL: add --device cuda (CPU jobs of "
            "several ranks run under mpirun)";
    return nullptr;
  }
  return exec::createLaunchComm(launch, device, error);
}

static void boundOpenMPSpinning(char **argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT"))
    return;
  setenv("GOMP_SPINCOUNT", "3000", 1);
  execv("/proc/self/exe", argv);
  // exec failed: carry on with libgomp's defaults.
}

int main(int argc, char **argv) {
  boundOpenMPSpinning(argv);
  CLI::App app{"llamac: compile and run LLaMA training plans"};
  app.require_subcommand(1);

#ifdef LLAMAC_HAVE_COMPILER
  CompileOptions compile;
  CLI::App *compileCmd =
      app.add_subcommand("compile", "Compile a LLaMA config into a training "
                                    "plan (or print its IR with --emit)");
  compile.train.addFlags(*compileCmd);
  compileCmd->add_option("--emit", compile.emit,
                         "What to produce: forward (graph as built), llm "
                         "(after the training pipeline), lrt (after "
                         "lowering and memory planning), plan (the .llx file)")
      ->check(CLI::IsMember({"forward", "llm", "lrt", "plan"}));
  compileCmd->add_option("-o,--output", compile.output,
                         "Output file (default: stdout for IR; required for "
                         "--emit=plan)");
  compileCmd->add_flag("--report", compile.report,
                       "Print per-rank parameter, gradient, optimizer and "
                       "arena bytes and every collective of a step");
  compileCmd->add_option("--schedule-svg", compile.scheduleSvg,
                         "With --pp > 1: draw the pipeline schedule (stages "
                         "as rows, microbatches' forward and backward as "
                         "boxes, cost-model times) into this SVG file");
  compileCmd->add_flag("--timing", compile.timing,
                       "Print compile time per phase");

  CompileOptions trainCompile;
  exec::RunOptions trainRun;
  CLI::App *trainCmd = app.add_subcommand(
      "train", "Compile a model and train it in one go (compile + run)");
  trainCompile.train.addFlags(*trainCmd);
  addRunFlags(*trainCmd, trainRun);
#endif

  exec::RunOptions run;
  CLI::App *runCmd =
      app.add_subcommand("run", "Train with a compiled plan (.llx)");
  runCmd->add_option("plan", run.planPath, "Plan file from llamac compile")
      ->required();
  addRunFlags(*runCmd, run);

  std::string inspectPath;
  CLI::App *inspectCmd =
      app.add_subcommand("inspect", "Print a summary of a plan file");
  inspectCmd->add_option("plan", inspectPath, "Plan file")->required();

  addDataCommands(app);

  CLI11_PARSE(app, argc, argv);

  std::string error;
#ifdef LLAMAC_HAVE_COMPILER
  if (compileCmd->parsed())
    return runCompile(compile);
  if (trainCmd->parsed()) {
    std::unique_ptr<comm::Comm> comm = createJobComm(trainRun.device, error);
    if (!comm) {
      reportError("llamac train", error);
      return 1;
    }
    trainRun.comm = comm.get();
    // The plan goes to a private temporary file (one per rank), removed
    // afterwards.
    char path[] = "/tmp/llamac-train-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
      std::cerr << "llamac train: error: cannot create a temporary plan file\n";
      return 1;
    }
    close(fd);
    trainCompile.output = path;
    trainCompile.quiet = true;
    int rc = runCompile(trainCompile);
    if (rc == 0) {
      trainRun.planPath = path;
      rc = exec::runTraining(trainRun, error);
      if (rc != 0)
        reportError("llamac train", error);
    }
    std::remove(path);
    return rc;
  }
#endif
  if (runCmd->parsed()) {
    std::unique_ptr<comm::Comm> comm = createJobComm(run.device, error);
    if (!comm) {
      reportError("llamac run", error);
      return 1;
    }
    run.comm = comm.get();
    int rc = exec::runTraining(run, error);
    if (rc != 0)
      reportError("llamac run", error);
    return rc;
  }
  if (inspectCmd->parsed())
    return runInspect(inspectPath);
  int exitCode = 0;
  if (runDataCommands(exitCode))
    return exitCode;
  std::cerr << "llamac: unknown command\n";
  return 2;
}
