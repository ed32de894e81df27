//===- DataCommands.h - llamac tokenizer/data subcommands -------*- C++ -*-===//
//
//   llamac tokenizer train TEXT... --vocab-size N -o tok.model
//   llamac data prepare --tokenizer tok.model TEXT... -o data.tok
//   llamac data info FILE
//
// Thin CLI wrappers over runtime/data/Tokenizer.h. Errors are printed as
// "llamac <cmd>: error: <message>" on stderr with exit status 1.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_TOOLS_LLAMAC_DATACOMMANDS_H
#define LLAMAC_TOOLS_LLAMAC_DATACOMMANDS_H

#include <CLI/CLI.hpp>

namespace llamac {

/// Registers the `tokenizer` and `data` subcommands (and theirs) on `app`.
/// Call once, before parsing.
void addDataCommands(CLI::App &app);

/// After parsing: runs the data command that was parsed, sets `exitCode`
/// (0 or 1) and returns true; returns false when none was.
bool runDataCommands(int &exitCode);

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_DATACOMMANDS_H
