//===- RunCommands.h - llamac run / inspect ----------------------*- C++ -*-===//
//
// The commands that need only the runtime (they work in a build without the
// compiler).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_TOOLS_LLAMAC_RUNCOMMANDS_H
#define LLAMAC_TOOLS_LLAMAC_RUNCOMMANDS_H

#include "exec/Trainer.h"

#include <CLI/CLI.hpp>

namespace llamac {

/// Registers the flags shared by `run` and `train` (all but the plan).
void addRunFlags(CLI::App &app, exec::RunOptions &options);
/// Prints a plan summary: layout, programs, arguments, arena, parameters.
int runInspect(const std::string &planPath);

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_RUNCOMMANDS_H
