//===- GradAllReduce.cpp - Data-parallel gradient sums (llm-grad-allreduce) ===//
//
// The loss normalizer is the global token count, so the ranks' partial
// losses and gradients add up to the global ones: one sum all-reduce over
// the data-parallel axis per gradient, and one for the reported loss.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "llm-grad-allreduce"

namespace llamac {
#define GEN_PASS_DEF_LLMGRADALLREDUCE
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
struct LlmGradAllReducePass
    : llamac::impl::LlmGradAllReduceBase<LlmGradAllReducePass> {
  using Base::Base;
  void runOnOperation() override;
};
} // namespace

/// The grid axis of data parallelism in the [pp, dp, tp] grid.
static constexpr int16_t kDataParallelAxis = 1;

FailureOr<shard::GridOp> llamac::getOrCreateWorldGrid(ModuleOp module,
                                                     ArrayRef<int64_t> shape) {
  if (auto grid = module.lookupSymbol<shard::GridOp>(kWorldGrid)) {
    if (grid.getShape() != shape)
      return grid.emitError("grid @world has shape ")
             << llvm::make_range(grid.getShape().begin(),
                                 grid.getShape().end())
             << " but the layout needs pp x dp x tp";
    return grid;
  }
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  return shard::GridOp::create(b, module.getLoc(), kWorldGrid, shape);
}

void LlmGradAllReducePass::runOnOperation() {
  ModuleOp module = getOperation();
  if (dp < 1 || tp < 1 || pp < 1) {
    module.emitError("layout sizes must be positive, got dp = ")
        << dp << ", tp = " << tp << ", pp = " << pp;
    return signalPassFailure();
  }
  Type reduceLow;
  if (reduceDtype == "bf16")
    reduceLow = BFloat16Type::get(&getContext());
  else if (reduceDtype == "fp16")
    reduceLow = Float16Type::get(&getContext());
  else if (reduceDtype != "fp32") {
    module.emitError("reduce-dtype must be fp32, bf16 or fp16, got '")
        << reduceDtype << "'";
    return signalPassFailure();
  }
  // 1. Gradients are already complete on a single data-parallel rank.
  if (dp == 1)
    return;
  FailureOr<shard::GridOp> grid =
      getOrCreateWorldGrid(module, {pp.getValue(), dp.getValue(), tp.getValue()});
  if (failed(grid))
    return signalPassFailure();

  // 2. Sum every gradient and the loss over the data-parallel axis.
  int reduced = 0;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal() || findResult(func, "loss") < 0)
      continue;
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    OpBuilder b(ret);
    for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
      StringRef role = resultRole(func, i);
      if (role != "grad" && role != "loss")
        continue;
      Value partial = ret.getOperand(i);
      if (zero >= 1 && role == "grad") {
        // ZeRO: the reduction is left to the partitioner, which
        // reduce-scatters it onto the optimizer's shards.
        ret.setOperand(i, dist::PartialOp::create(
                              b, partial.getLoc(), partial,
                              b.getDenseI16ArrayAttr({kDataParallelAxis})));
        ++reduced;
        continue;
      }
      // Optional low-precision reduction: the all-reduce moves and sums
      // bf16/fp16 data, the gradient comes back to its fp32 type after.
      Type wire = partial.getType();
      if (role == "grad" && reduceLow) {
        auto t = cast<RankedTensorType>(partial.getType());
        wire = t.clone(reduceLow);
        partial = llm::CastOp::create(b, partial.getLoc(), wire, partial);
      }
      auto sum = shard::AllReduceOp::create(
          b, partial.getLoc(), wire, kWorldGrid,
          ArrayRef<int16_t>{kDataParallelAxis}, partial,
          shard::ReductionKind::Sum);
      // Gradient reductions may be bucketed (llm-allreduce-bucketing).
      if (role == "grad")
        sum->setAttr(kGradReductionAttr,
                     StringAttr::get(&getContext(), resultParam(func, i)));
      Value result = sum;
      if (wire != ret.getOperand(i).getType())
        result = llm::CastOp::create(b, sum.getLoc(),
                                     ret.getOperand(i).getType(), sum);
      ret.setOperand(i, result);
      ++reduced;
    }
  }
  LLVM_DEBUG(llvm::dbgs() << "llm-grad-allreduce: " << reduced
                          << " all-reduces over dp = " << dp << "\n");
}
