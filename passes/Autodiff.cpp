//===- Autodiff.cpp - Reverse-mode differentiation (llm-autodiff) ---------===//
//
// Walks the function body backwards from the loss and asks each op for its
// gradient rule (GradientOpInterface). The pass itself knows no op.
//
// NOTE: only single-block functions are supported: a training step has no
// control flow.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/ADT/BitVector.h"

#include "mlir/Transforms/RegionUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "llm-autodiff"

namespace llamac {
#define GEN_PASS_DEF_LLMAUTODIFF
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using namespace llamac::llm;

namespace {

/// Gradient accumulator: a value used several times receives the sum of its
/// contributions, built with llm.add in the order they are produced.
class GradientMap {
public:
  explicit GradientMap(OpBuilder &b) : builder(b) {}

  void accumulate(Value v, Value grad, Location loc) {
    auto [it, inserted] = grads.try_emplace(v, grad);
    if (!inserted)
      it->second = AddOp::create(builder, loc, grad.getType(), it->second, grad);
  }
  Value lookup(Value v) const { return grads.lookup(v); }

private:
  OpBuilder &builder;
  DenseMap<Value, Value> grads;
};

struct LlmAutodiffPass : llamac::impl::LlmAutodiffBase<LlmAutodiffPass> {
  void runOnOperation() override;
};

} // namespace

/// Values that depend on some parameter: only those need gradients. Tokens,
/// targets and constants do not.
static DenseSet<Value> variedValues(Block &body, ArrayRef<Value> params) {
  DenseSet<Value> varied(params.begin(), params.end());
  for (Operation &op : body.without_terminator())
    if (llvm::any_of(op.getOperands(),
                     [&](Value v) { return varied.contains(v); }))
      varied.insert(op.getResults().begin(), op.getResults().end());
  return varied;
}

void LlmAutodiffPass::runOnOperation() {
  func::FuncOp func = getOperation();

  // 1. Find the loss. A function without one is not a training step. With
  //    loss scaling (llm-mixed-precision) the backward pass starts from the
  //    scaled loss, a result that exists only to seed it.
  int lossIndex = findResult(func, "loss");
  if (lossIndex < 0 || func.isExternal())
    return;
  int scaledIndex = findResult(func, "scaled_loss");
  if (scaledIndex >= 0)
    lossIndex = scaledIndex;
  if (!func.getBody().hasOneBlock()) {
    func.emitError("llm-autodiff supports single-block functions only");
    return signalPassFailure();
  }
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Value loss = ret.getOperand(lossIndex);
  auto lossType = dyn_cast<RankedTensorType>(loss.getType());
  if (!lossType || lossType.getRank() != 0 || !lossType.getElementType().isF32()) {
    func.emitError("the loss result must be tensor<f32>, got ")
        << loss.getType();
    return signalPassFailure();
  }

  // 2. Collect the parameters and what depends on them.
  SmallVector<Value> params;
  SmallVector<StringRef> paramNames;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i) {
    StringRef name = argParamName(func, i);
    if (name.empty())
      continue;
    params.push_back(func.getArgument(i));
    paramNames.push_back(name);
  }
  DenseSet<Value> varied = variedValues(body, params);
  LLVM_DEBUG(llvm::dbgs() << "llm-autodiff: " << params.size()
                          << " parameters\n");

  // 3. Seed d(loss)/d(loss) = 1 and visit ops in reverse program order.
  OpBuilder builder(ret);
  GradientMap grads(builder);
  grads.accumulate(loss,
                   ConstantOp::create(builder, ret.getLoc(), lossType,
                                      builder.getF64FloatAttr(1.0)),
                   ret.getLoc());

  SmallVector<Operation *> forward;
  for (Operation &op : body.without_terminator())
    forward.push_back(&op);
  DenseSet<Operation *> forwardOps(forward.begin(), forward.end());
  for (Operation *op : llvm::reverse(forward)) {
    SmallVector<Value> resultGrads;
    for (Value r : op->getResults())
      resultGrads.push_back(grads.lookup(r));
    bool reachesLoss = llvm::any_of(resultGrads, [](Value g) { return g; });
    bool dependsOnParams = llvm::any_of(
        op->getOperands(), [&](Value v) { return varied.contains(v); });
    if (!reachesLoss || !dependsOnParams)
      continue;

    auto rule = dyn_cast<GradientOpInterface>(op);
    if (!rule) {
      op->emitError("op '") << op->getName()
                            << "' has no gradient rule, but lies between a "
                               "parameter and the loss";
      return signalPassFailure();
    }
    SmallVector<Value> operandGrads;
    if (failed(rule.buildGradient(builder, resultGrads, operandGrads)))
      return signalPassFailure();
    for (auto [operand, grad] : llvm::zip(op->getOperands(), operandGrads))
      if (grad && varied.contains(operand))
        grads.accumulate(operand, grad, op->getLoc());
  }

  // 4. Return one gradient per parameter; a parameter that does not reach the
  //    loss has a zero gradient.
  SmallVector<Value> newOperands(ret.getOperands());
  unsigned firstGrad = func.getNumResults();
  for (auto [index, param] : llvm::enumerate(params)) {
    Value g = grads.lookup(param);
    if (!g)
      g = ConstantOp::create(builder, ret.getLoc(), param.getType(),
                             builder.getF64FloatAttr(0.0));
    newOperands.push_back(g);
    if (failed(func.insertResult(firstGrad + index, param.getType(),
                                 roleAttrs(builder, "grad",
                                           paramNames[index])))) {
      func.emitError("cannot add gradient results to the function");
      return signalPassFailure();
    }
  }
  ret->setOperands(newOperands);
  if (scaledIndex >= 0) {
    ret->eraseOperand(scaledIndex);
    llvm::BitVector erase(func.getNumResults());
    erase.set(scaledIndex);
    (void)func.eraseResults(erase);
  }

  // 5. Rules build the gradients of every operand; drop those that no
  //    parameter needs (e.g. the gradient of the first layer's input).
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
    if (!forwardOps.contains(&op) && isOpTriviallyDead(&op))
      op.erase();
}
