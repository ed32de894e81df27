//===- ExportPlan.h - lrt program -> plan file -------------------*- C++ -*-===//
//
// Serializes memory-planned lrt functions into the FlatBuffers plan the
// runtime executes (runtime/plan/Plan.fbs, docs/plan-format.md).
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_DIALECTS_LRT_EXPORTPLAN_H
#define LLAMAC_DIALECTS_LRT_EXPORTPLAN_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace llamac {

struct PlanMetadata {
  std::string modelConfigJson;
  std::string trainConfigJson;
  std::string precision = "fp32";
  int dp = 1, tp = 1, pp = 1;
  /// Program.workspace_bytes of every rank (a GPU's GEMM workspace).
  int64_t workspaceBytes = 0;
};

/// Serializes the `func.func`s of `module` into `bytes`: one per rank in rank
/// order, or a single one that every rank runs (SPMD). Fails with a diagnostic on IR the runtime cannot execute
/// (missing memory plan, unsupported element type, ...).
mlir::LogicalResult exportPlan(mlir::ModuleOp module, const PlanMetadata &meta,
                               std::string &bytes);

} // namespace llamac

#endif // LLAMAC_DIALECTS_LRT_EXPORTPLAN_H
