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

/// The runtime's collective kernels (docs/plan-format.md): the grid axes as
/// a list, the reduction by name, the split dimension as `dim`.
static lrt::KernelOp lowerCollective(OpBuilder &b, Operation *op) {
  SmallVector<NamedAttribute> params;
  auto axesOf = [&](ArrayRef<shard::GridAxis> axes) {
    SmallVector<int64_t> list(axes.begin(), axes.end());
    params.push_back(
        b.getNamedAttr("grid_axes", b.getDenseI64ArrayAttr(list)));
  };
  auto reductionOf = [&](shard::ReductionKind kind) {
    params.push_back(b.getNamedAttr(
        "reduction", b.getStringAttr(shard::stringifyReductionKind(kind))));
  };
  auto dimOf = [&](const APInt &dim) {
    params.push_back(b.getNamedAttr(
        "dim", b.getI64IntegerAttr(static_cast<int64_t>(dim.getZExtValue()))));
  };
  StringRef kernel;
  if (auto ar = dyn_cast<shard::AllReduceOp>(op)) {
    kernel = "all_reduce";
    axesOf(ar.getGridAxes());
    reductionOf(ar.getReduction());
  } else if (auto ag = dyn_cast<shard::AllGatherOp>(op)) {
    kernel = "all_gather";
    axesOf(ag.getGridAxes());
    dimOf(ag.getGatherAxis());
  } else if (auto rs = dyn_cast<shard::ReduceScatterOp>(op)) {
    kernel = "reduce_scatter";
    axesOf(rs.getGridAxes());
    reductionOf(rs.getReduction());
    dimOf(rs.getScatterAxis());
  } else {
    auto sl = cast<shard::AllSliceOp>(op);
    kernel = "all_slice";
    axesOf(sl.getGridAxes());
    dimOf(sl.getSliceAxis());
  }
  return lrt::KernelOp::create(b, op->getLoc(), op->getResultTypes(),
                               b.getStringAttr(kernel), op->getOperands(),
                               b.getDictionaryAttr(params),
                               /*inplace=*/nullptr, /*offsets=*/nullptr);
}

/// The pipeline schedule position (llm.microbatch, llm.phase) stays on the
/// kernel call, for the plan's instructions.
static void copyScheduleAttrs(Operation *from, Operation *to) {
  for (StringRef name : {llm::kMicrobatchAttr, llm::kPhaseAttr})
    if (Attribute a = from->getAttr(name))
      to->setAttr(name, a);
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
    if (isa<shard::AllReduceOp, shard::AllGatherOp, shard::ReduceScatterOp,
            shard::AllSliceOp>(op)) {
      builder.setInsertionPoint(op);
      lrt::KernelOp kernel = lowerCollective(builder, op);
      copyScheduleAttrs(op, kernel);
      op->replaceAllUsesWith(kernel->getResults());
      op->erase();
      continue;
    }
    if (isa<dist::SendOp, dist::RecvOp>(op)) {
      // Point to point between pipeline stages: the peer stage and the tag.
      builder.setInsertionPoint(op);
      SmallVector<NamedAttribute> params{
          builder.getNamedAttr("peer", op->getAttr("peer")),
          builder.getNamedAttr("tag", op->getAttr("tag"))};
      auto kernel = lrt::KernelOp::create(
          builder, op->getLoc(), op->getResultTypes(),
          builder.getStringAttr(isa<dist::SendOp>(op) ? "send" : "recv"),
          op->getOperands(), builder.getDictionaryAttr(params),
          /*inplace=*/nullptr, /*offsets=*/nullptr);
      copyScheduleAttrs(op, kernel);
      op->replaceAllUsesWith(kernel->getResults());
      op->erase();
      continue;
    }
    if (isa<dist::BucketAllReduceOp, dist::BucketWaitOp>(op)) {
      // Both work in place on the bucket's gradients (one arena region, see
      // lrt-memory-plan).
      builder.setInsertionPoint(op);
      SmallVector<NamedAttribute> params;
      StringRef name = "bucket_all_reduce_wait";
      if (auto start = dyn_cast<dist::BucketAllReduceOp>(op)) {
        name = "bucket_all_reduce_start";
        SmallVector<int64_t> axes(start.getGridAxes().begin(),
                                  start.getGridAxes().end());
        params.push_back(builder.getNamedAttr(
            "grid_axes", builder.getDenseI64ArrayAttr(axes)));
        params.push_back(
            builder.getNamedAttr("reduction", builder.getStringAttr("sum")));
      }
      params.push_back(
          builder.getNamedAttr("bucket", op->getAttr("bucket")));
      auto kernel = lrt::KernelOp::create(
          builder, op->getLoc(), op->getResultTypes(),
          builder.getStringAttr(name), op->getOperands(),
          builder.getDictionaryAttr(params), /*inplace=*/nullptr,
          /*offsets=*/nullptr);
      SmallVector<int64_t> inplace;
      for (unsigned i = 0; i < op->getNumResults(); ++i)
        inplace.push_back(i);
      kernel.setInplace(inplace);
      op->replaceAllUsesWith(kernel->getResults());
      op->erase();
      continue;
    }
    if (op->getDialect() != llmDialect) {
      op->emitError("cannot lower op '")
          << op->getName()
          << "' to the runtime: only llm ops, shard.all_reduce, all_gather, "
             "reduce_scatter, all_slice and dist bucket ops have kernels";
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
        if (!attr.getName().getValue().starts_with("dist.") &&
            attr.getName() != llm::kMicrobatchAttr &&
            attr.getName() != llm::kPhaseAttr)
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
    copyScheduleAttrs(op, lowered);
    op->replaceAllUsesWith(lowered->getResults());
    op->erase();
  }
}
