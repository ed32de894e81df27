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
/// Bytes of a ranked tensor type (at least one per element); 0 otherwise.
int64_t typeBytes(mlir::Type type);
/// The roofline time of one execution of `op` on a nominal accelerator
/// (100 TFLOP/s, 2 TB/s): max(flops / peak, bytes / bandwidth) from
/// CostModelOpInterface; 0 for ops without it. Pipeline-stage balancing
/// and the schedule picture use it (only the ratio of the two peaks
/// matters there).
double estimateSeconds(mlir::Operation *op);
} // namespace llamac::llm

#include "dialects/llm/LlmInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/llm/LlmOps.h.inc"

namespace llamac::llm {
/// Attribute names used on @train_step arguments and results.
inline constexpr llvm::StringLiteral kParamAttr = "llm.param";
inline constexpr llvm::StringLiteral kRoleAttr = "llm.role";
/// Pipeline schedule position of an op (llm-pipeline-partition): its
/// microbatch (i64) and phase ("forward" or "backward"); and the pipeline
/// stage (i64) of a stage's function.
inline constexpr llvm::StringLiteral kMicrobatchAttr = "llm.microbatch";
inline constexpr llvm::StringLiteral kPhaseAttr = "llm.phase";
inline constexpr llvm::StringLiteral kStageAttr = "llm.stage";
/// On the module after llm-pipeline-partition: {schedule, microbatches,
/// layers, first_layers (of each stage), unit_seconds (the cost model's
/// roofline time of the embedding, each layer and the head)}.
inline constexpr llvm::StringLiteral kPipelineAttr = "llm.pipeline";
/// A double as diagnostics show it: `0.1`, not `1.000000e-01`.
std::string formatNumber(double v);
} // namespace llamac::llm

#endif // LLAMAC_DIALECTS_LLM_LLMOPS_H
