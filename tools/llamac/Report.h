//===- Report.h - llamac compile --report -------------------------*- C++ -*-===//
#ifndef LLAMAC_TOOLS_LLAMAC_REPORT_H
#define LLAMAC_TOOLS_LLAMAC_REPORT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <map>
#include <string>

namespace llamac {

/// Compute of one step of one rank, from CostModelOpInterface on the
/// training step (llm ops, per-rank shapes), by op name.
struct CostSummary {
  struct Entry {
    int64_t count = 0, flops = 0, bytes = 0;
  };
  std::map<std::string, Entry> byOp;
  /// 6N + 12LHQT per token (DESIGN A6) times the rank's tokens per step.
  double modelFlops = 0;
};
/// Bytes one rank holds: parameters, gradients (the AdamW inputs),
/// optimizer state (AdamW moments) and the activation arena, of a lowered,
/// memory-planned program.
struct RankMemory {
  int64_t params = 0, grads = 0, moments = 0, arena = 0;
};
RankMemory rankMemory(mlir::func::FuncOp func);

/// Sums the estimates of every op of `func`.
CostSummary summarizeCosts(mlir::func::FuncOp func, double modelFlops);

/// Prints, for the lowered (lrt, memory-planned) per-rank program `func` of
/// a [pp, dp, tp] = `grid` layout: the parameter, gradient, optimizer-state
/// and arena bytes of a rank, every collective of one step (kind, group,
/// tensor, bytes, and the bytes a rank sends with ring algorithms), and the
/// step's totals. Every rank runs the same program (SPMD), so one table
/// holds for all of them.
void printReport(mlir::func::FuncOp func, const std::string &model,
                 const std::array<int64_t, 3> &grid, const CostSummary &costs,
                 llvm::raw_ostream &os);

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_REPORT_H
