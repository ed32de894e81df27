//===- Optimizer.cpp - LR schedule, clipping and AdamW (llm-optimizer) ----===//
//
// Turns "loss + gradients" into a full training step in torch.optim.AdamW /
// clip_grad_norm_ semantics (DESIGN.md A2).
//
// NOTE: the grad_norm result is always the pre-clip norm, also when clipping
// is off, because the metrics report it every step.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/ADT/BitVector.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "llm-optimizer"

namespace llamac {
#define GEN_PASS_DEF_LLMOPTIMIZER
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using namespace llamac::llm;

namespace {
struct LlmOptimizerPass : llamac::impl::LlmOptimizerBase<LlmOptimizerPass> {
  using Base::Base;
  void runOnOperation() override;
  LogicalResult verifyOptions(func::FuncOp func);
};

struct GradResult {
  unsigned resultIndex;
  Value param;
  StringRef name;
};
} // namespace

LogicalResult LlmOptimizerPass::verifyOptions(func::FuncOp func) {
  if (clipGradNorm < 0 || clipGradValue < 0)
    return func.emitError("clipping thresholds must be non-negative, got "
                          "clip-grad-norm = ")
           << llm::formatNumber(clipGradNorm)
           << ", clip-grad-value = " << llm::formatNumber(clipGradValue);
  if (clipGradNorm > 0 && clipGradValue > 0)
    return func.emitError("clip-grad-norm and clip-grad-value are mutually "
                          "exclusive; choose one clipping mode");
  return success();
}

void LlmOptimizerPass::runOnOperation() {
  func::FuncOp func = getOperation();

  // 1. Find the gradients. Without any, there is nothing to optimize.
  llvm::StringMap<Value> paramByName;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
    if (StringRef name = argParamName(func, i); !name.empty())
      paramByName[name] = func.getArgument(i);
  SmallVector<GradResult> gradResults;
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
    if (resultRole(func, i) != "grad")
      continue;
    auto name = func.getResultAttrOfType<StringAttr>(i, kParamAttr);
    Value param = name ? paramByName.lookup(name.getValue()) : Value();
    if (!param) {
      func.emitError("gradient result #")
          << i << " names no parameter argument of the function";
      return signalPassFailure();
    }
    gradResults.push_back({i, param, name.getValue()});
  }
  if (gradResults.empty())
    return;
  if (failed(verifyOptions(func)))
    return signalPassFailure();

  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  OpBuilder builder(ret);
  Location loc = ret.getLoc();

  // 2. Optimizer state arguments: moments per parameter, then the step.
  SmallVector<Value> expAvg, expAvgSq;
  for (StringRef role : {"adam_m", "adam_v"}) {
    for (const GradResult &g : gradResults) {
      unsigned index = func.getNumArguments();
      (void)func.insertArgument(index, g.param.getType(),
                                roleAttrs(builder, role, g.name), loc);
      (role == StringRef("adam_m") ? expAvg : expAvgSq)
          .push_back(func.getArgument(index));
    }
  }
  auto stepType = RankedTensorType::get({}, builder.getI64Type());
  (void)func.insertArgument(func.getNumArguments(), stepType,
                            roleAttrs(builder, "step"), loc);
  Value step = func.getArguments().back();

  // 3. Learning rate of this step.
  auto f32Scalar = RankedTensorType::get({}, builder.getF32Type());
  Value lrValue = LrScheduleOp::create(
      builder, loc, f32Scalar, step, builder.getF64FloatAttr(lr),
      builder.getF64FloatAttr(minLr), builder.getI64IntegerAttr(warmupSteps),
      builder.getI64IntegerAttr(decaySteps));

  // 4. With loss scaling (llm-mixed-precision's loss_scale arguments): the
  //    gradients are unscaled first, then checked; a step with an inf or NaN
  //    anywhere is skipped by AdamW's `apply` flag. Then the pre-clip global
  //    norm of the unscaled gradients and the chosen clipping.
  SmallVector<Value> grads;
  for (const GradResult &g : gradResults)
    grads.push_back(ret.getOperand(g.resultIndex));
  Value invScale, finite;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
    if (auto role = func.getArgAttrOfType<StringAttr>(i, kRoleAttr))
      if (role.getValue() == "inv_loss_scale")
        invScale = func.getArgument(i);
  if (invScale) {
    for (Value &g : grads)
      g = ScaleOp::create(builder, loc, g.getType(), g, invScale);
    finite = AllFiniteOp::create(builder, loc, f32Scalar, grads);
  }
  Value norm = GlobalNormOp::create(builder, loc, f32Scalar, grads);
  if (clipGradNorm > 0) {
    Value coef = ClipCoefOp::create(builder, loc, f32Scalar, norm,
                                    builder.getF64FloatAttr(clipGradNorm));
    for (Value &g : grads)
      g = ScaleOp::create(builder, loc, g.getType(), g, coef);
  } else if (clipGradValue > 0) {
    for (Value &g : grads)
      g = ClipByValueOp::create(builder, loc, g.getType(), g,
                                builder.getF64FloatAttr(clipGradValue));
  }

  // 5. AdamW per parameter; no weight decay on vectors (norm weights).
  SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
  for (auto [i, g] : llvm::enumerate(gradResults)) {
    auto type = cast<RankedTensorType>(g.param.getType());
    double decay = type.getRank() >= 2 ? weightDecay.getValue() : 0.0;
    auto update = AdamWOp::create(
        builder, loc, TypeRange{type, type, type}, g.param, grads[i],
        expAvg[i], expAvgSq[i], lrValue, step, finite,
        builder.getF64FloatAttr(beta1),
        builder.getF64FloatAttr(beta2), builder.getF64FloatAttr(eps),
        builder.getF64FloatAttr(decay));
    newParams.push_back(update.getNewParam());
    newExpAvg.push_back(update.getNewExpAvg());
    newExpAvgSq.push_back(update.getNewExpAvgSq());
  }

  // 6. Replace the gradient results by the new state, then norm and lr.
  llvm::BitVector erase(func.getNumResults());
  SmallVector<Value> operands;
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i) {
    if (resultRole(func, i) == "grad")
      erase.set(i);
    else
      operands.push_back(ret.getOperand(i));
  }
  (void)func.eraseResults(erase);
  auto append = [&](Value v, DictionaryAttr attrs) {
    (void)func.insertResult(func.getNumResults(), v.getType(), attrs);
    operands.push_back(v);
  };
  for (auto [i, g] : llvm::enumerate(gradResults))
    append(newParams[i], roleAttrs(builder, "new_param", g.name));
  for (auto [i, g] : llvm::enumerate(gradResults))
    append(newExpAvg[i], roleAttrs(builder, "new_adam_m", g.name));
  for (auto [i, g] : llvm::enumerate(gradResults))
    append(newExpAvgSq[i], roleAttrs(builder, "new_adam_v", g.name));
  append(norm, roleAttrs(builder, "grad_norm"));
  append(lrValue, roleAttrs(builder, "lr"));
  if (finite)
    append(finite, roleAttrs(builder, "all_finite"));
  ret->setOperands(operands);
  LLVM_DEBUG(llvm::dbgs() << "llm-optimizer: " << gradResults.size()
                          << " AdamW updates\n");
}
