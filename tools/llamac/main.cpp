//===- main.cpp - The llamac driver ----------------------------------------===//
//
//   llamac compile MODEL [flags] -o model.llx    compile a training plan
//   llamac run model.llx --data FILE --steps N   execute it
//   llamac train MODEL --data FILE --steps N     compile and run in one go
//   llamac inspect model.llx                     print a plan summary
//
//===----------------------------------------------------------------------===//
#include "TrainOptions.h"
#ifdef LLAMAC_HAVE_COMPILER
#include "Compile.h"
#endif

#include <CLI/CLI.hpp>

#include <iostream>

using namespace llamac;

int main(int argc, char **argv) {
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
  compileCmd->add_flag("--timing", compile.timing,
                       "Print compile time per phase");
#endif

  CLI11_PARSE(app, argc, argv);

#ifdef LLAMAC_HAVE_COMPILER
  if (compileCmd->parsed())
    return runCompile(compile);
#endif
  std::cerr << "llamac: unknown command\n";
  return 2;
}
