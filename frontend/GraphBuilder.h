//===- GraphBuilder.h - LLaMA config -> llm training graph ------*- C++ -*-===//
//
// Emits `func.func @train_step` in the llm dialect: the forward pass of HF
// LlamaForCausalLM and the mean cross-entropy loss, with every parameter an
// argument tagged `llm.param = "<HF name>"`. The passes (llm-autodiff,
// llm-optimizer, ...) turn it into a full training step.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_FRONTEND_GRAPHBUILDER_H
#define LLAMAC_FRONTEND_GRAPHBUILDER_H

#include "model/LlamaConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace llamac {

struct GraphShape {
  int64_t batch = 1;  ///< Sequences per step on this program (micro batch).
  int64_t seqLen = 0; ///< Tokens per sequence.
  /// Target tokens of the global batch: the loss normalizer (DESIGN.md A1).
  int64_t globalTokens = 0;
};

/// Builds the forward + loss graph. The context must have the llm and func
/// dialects loaded.
mlir::OwningOpRef<mlir::ModuleOp> buildForwardGraph(mlir::MLIRContext &ctx,
                                                    const LlamaConfig &config,
                                                    const GraphShape &shape);

} // namespace llamac

#endif // LLAMAC_FRONTEND_GRAPHBUILDER_H
