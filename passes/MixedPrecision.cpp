//===- MixedPrecision.cpp - llm-mixed-precision ---------------------------===//
//
// Cast placement on the forward graph; autodiff derives the rest (see the
// pass description). The only ops that keep fp32 results while reading
// low-precision tensors are those whose result type is fp32 by definition:
// the loss (llm.cross_entropy) and attention's log-sum-exp.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "llm-mixed-precision"

namespace llamac {
#define GEN_PASS_DEF_LLMMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using namespace llamac::llm;

namespace {
struct LlmMixedPrecisionPass
    : llamac::impl::LlmMixedPrecisionBase<LlmMixedPrecisionPass> {
  using Base::Base;
  void runOnOperation() override;
};
} // namespace

static bool isLow(Type type, Type low) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && t.getElementType() == low;
}

/// Whether result `r` of `op` is fp32 by the op's definition.
static bool alwaysF32(Operation *op, unsigned r) {
  return isa<CrossEntropyOp>(op) || (isa<AttentionOp>(op) && r == 1);
}

void LlmMixedPrecisionPass::runOnOperation() {
  func::FuncOp func = getOperation();
  if (func.isExternal() || findResult(func, "loss") < 0)
    return;
  Builder b(func.getContext());
  Type low;
  if (precision == "bf16")
    low = b.getBF16Type();
  else if (precision == "fp16")
    low = b.getF16Type();
  else if (precision != "fp32") {
    func.emitError("precision must be fp32, bf16 or fp16, got '")
        << precision << "'";
    return signalPassFailure();
  }
  Block &body = func.getBody().front();
  OpBuilder builder = OpBuilder::atBlockBegin(&body);

  if (low) {
    // 1. One compute copy of each fp32 parameter, made once per step.
    int casts = 0;
    for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i) {
      BlockArgument param = func.getArgument(i);
      auto type = dyn_cast<RankedTensorType>(param.getType());
      if (argParamName(func, i).empty() || !type ||
          !type.getElementType().isF32() || param.use_empty())
        continue;
      Value copy = CastOp::create(builder, param.getLoc(),
                                  type.clone(low), param);
      param.replaceAllUsesExcept(copy, copy.getDefiningOp());
      ++casts;
    }
    // 2. Low precision flows forward through every op that reads it; an
    //    op that also reads fp32 tensors (an fp32 activation input of the
    //    step) reads them cast, so each op sees one precision. fp32 scalars
    //    (scale factors) stay fp32.
    for (Operation &op : body.without_terminator()) {
      if (isa<CastOp>(op) ||
          llvm::none_of(op.getOperandTypes(),
                        [&](Type t) { return isLow(t, low); }))
        continue;
      builder.setInsertionPoint(&op);
      for (OpOperand &operand : op.getOpOperands()) {
        auto type = dyn_cast<RankedTensorType>(operand.get().getType());
        if (type && type.getRank() > 0 && type.getElementType().isF32())
          operand.set(CastOp::create(builder, op.getLoc(), type.clone(low),
                                     operand.get()));
      }
      for (OpResult r : op.getResults()) {
        auto type = dyn_cast<RankedTensorType>(r.getType());
        if (type && type.getElementType().isF32() &&
            !alwaysF32(&op, r.getResultNumber()))
          r.setType(type.clone(low));
      }
    }
    LLVM_DEBUG(llvm::dbgs() << "llm-mixed-precision: " << casts
                            << " parameter casts to " << low << "\n");
  }

  // 3. Loss scaling: the backward pass starts from loss x scale.
  if (lossScale) {
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    Location loc = func.getLoc();
    for (StringRef role : {"loss_scale", "inv_loss_scale"})
      (void)func.insertArgument(func.getNumArguments(), scalar,
                                roleAttrs(b, role), loc);
    Value scale = func.getArgument(func.getNumArguments() - 2);
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(findResult(func, "loss"));
    builder.setInsertionPoint(ret);
    Value scaled = ScaleOp::create(builder, loss.getLoc(), scalar, loss, scale);
    (void)func.insertResult(func.getNumResults(), scalar,
                            roleAttrs(b, "scaled_loss"));
    SmallVector<Value> operands(ret.getOperands());
    operands.push_back(scaled);
    ret->setOperands(operands);
  }
}
