//===- LlmOps.h - Operations of the llm dialect ------------------*- C++ -*-===//
#ifndef LLAMAC_DIALECTS_LLM_LLMOPS_H
#define LLAMAC_DIALECTS_LLM_LLMOPS_H

#include "dialects/dist/DistDialect.h"
#include "dialects/llm/LlmDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <string>

namespace llamac::llm {
/// CostModelOpInterface defaults: one flop per result element; every
/// operand and result tensor's bytes once.
int64_t elementwiseFlops(mlir::Operation *op);
int64_t tensorBytes(mlir::Operation *op);
} // namespace llamac::llm

#include "dialects/llm/LlmInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/llm/LlmOps.h.inc"

namespace llamac::llm {
/// Attribute names used on @train_step arguments and results.
inline constexpr llvm::StringLiteral kParamAttr = "llm.param";
inline constexpr llvm::StringLiteral kRoleAttr = "llm.role";
/// A double as diagnostics show it: `0.1`, not `1.000000e-01`.
std::string formatNumber(double v);
} // namespace llamac::llm

#endif // LLAMAC_DIALECTS_LLM_LLMOPS_H
