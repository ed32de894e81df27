//===- Report.h - llamac compile --report -------------------------*- C++ -*-===//
#ifndef LLAMAC_TOOLS_LLAMAC_REPORT_H
#define LLAMAC_TOOLS_LLAMAC_REPORT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <string>

namespace llamac {

/// Prints, for the lowered (lrt, memory-planned) per-rank program `func` of
/// a [pp, dp, tp] = `grid` layout: the parameter, gradient, optimizer-state
/// and arena bytes of a rank, every collective of one step (kind, group,
/// tensor, bytes, and the bytes a rank sends with ring algorithms), and the
/// step's totals. Every rank runs the same program (SPMD), so one table
/// holds for all of them.
void printReport(mlir::func::FuncOp func, const std::string &model,
                 const std::array<int64_t, 3> &grid, llvm::raw_ostream &os);

} // namespace llamac

#endif // LLAMAC_TOOLS_LLAMAC_REPORT_H
