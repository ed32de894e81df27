//===- LowerToLrt.cpp - llm -> lrt kernel calls (llm-lower-to-lrt) --------===//
//
// The runtime executes kernels named after the llm ops, so the lowering is
// one generic rewrite: op name -> kernel name, inherent attributes -> params.
// Only two ops need to say more about storage: reshape is a view and AdamW
// works in place.
//
//===----------------------------------------------------------------------===//
#include "dialects/lrt/LrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"

#define DEBUG_TYPE "llm-lower-to-lrt"

namespace llamac {
#define GEN_PASS_DEF_LLMLOWERTOLRT
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
struct LlmLowerToLrtPass
    : llamac::impl::LlmLowerToLrtBase<LlmLowerToLrtPass> {
  void runOnOperation() override;
};
} // namespace

/// The runtime's all_reduce kernel: the grid axes as a list and the
/// reduction by name (docs/plan-format.md).
static lrt::KernelOp lowerAllReduce(OpBuilder &b, shard::AllReduceOp op) {
  SmallVector<int64_t> axes(op.getGridAxes().begin(), op.getGridAxes().end());
  NamedAttribute params[] = {
      b.getNamedAttr("grid_axes", b.getDenseI64ArrayAttr(axes)),
      b.getNamedAttr("reduction", b.getStringAttr(shard::stringifyReductionKind(
                                      op.getReduction())))};
  return lrt::KernelOp::create(b, op.getLoc(), op->getResultTypes(),
                               b.getStringAttr("all_reduce"),
                               op->getOperands(), b.getDictionaryAttr(params),
                               /*inplace=*/nullptr, /*offsets=*/nullptr);
}

/// For each result, the operand whose storage it reuses (-1: none).
static SmallVector<int64_t> inplaceOperands(Operation *op) {
  // AdamW: (param, grad, m, v, lr, step) -> (param', m', v').
  if (isa<llm::AdamWOp>(op))
    return {0, 2, 3};
  return {};
}

void LlmLowerToLrtPass::runOnOperation() {
  func::FuncOp func = getOperation();
  OpBuilder builder(func.getContext());
  auto llmDialect = func.getContext()->getLoadedDialect<llm::LlmDialect>();

  SmallVector<Operation *> ops;
  for (Operation &op : func.getBody().getOps())
    ops.push_back(&op);
  for (Operation *op : ops) {
    if (isa<func::ReturnOp>(op))
      continue;
    if (auto allReduce = dyn_cast<shard::AllReduceOp>(op)) {
      builder.setInsertionPoint(op);
      lrt::KernelOp kernel = lowerAllReduce(builder, allReduce);
      op->replaceAllUsesWith(kernel->getResults());
      op->erase();
      continue;
    }
    if (op->getDialect() != llmDialect) {
      op->emitError("cannot lower op '")
          << op->getName()
          << "' to the runtime: only llm ops and shard.all_reduce have kernels";
      return signalPassFailure();
    }
    builder.setInsertionPoint(op);
    Operation *lowered;
    if (auto reshape = dyn_cast<llm::ReshapeOp>(op)) {
      lowered = lrt::ViewOp::create(builder, op->getLoc(),
                                    reshape.getType(), reshape.getX());
    } else {
      SmallVector<NamedAttribute> params;
      for (NamedAttribute attr : op->getAttrs())
        params.push_back(attr);
      auto kernel = lrt::KernelOp::create(
          builder, op->getLoc(), op->getResultTypes(),
          builder.getStringAttr(op->getName().stripDialect()),
          op->getOperands(), builder.getDictionaryAttr(params),
          /*inplace=*/nullptr, /*offsets=*/nullptr);
      if (SmallVector<int64_t> inplace = inplaceOperands(op); !inplace.empty())
        kernel.setInplace(inplace);
      lowered = kernel;
    }
    op->replaceAllUsesWith(lowered->getResults());
    op->erase();
  }
}
