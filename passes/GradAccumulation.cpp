//===- GradAccumulation.cpp - llm-grad-accumulation -----------------------===//
//
// Microbatching by unrolling: the straight-line step is cloned once per
// extra microbatch with its own token arguments, and the clones' losses and
// gradients are added. Clones of ops that do not depend on the tokens (the
// compute copies of the weights, constants) are identical and CSE merges
// them, so weights are still cast once per step.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "mlir/IR/IRMapping.h"

namespace llamac {
#define GEN_PASS_DEF_LLMGRADACCUMULATION
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using namespace llamac::llm;

namespace {
struct LlmGradAccumulationPass
    : llamac::impl::LlmGradAccumulationBase<LlmGradAccumulationPass> {
  using Base::Base;
  void runOnOperation() override;
};
} // namespace

void LlmGradAccumulationPass::runOnOperation() {
  func::FuncOp func = getOperation();
  if (func.isExternal() || findResult(func, "loss") < 0)
    return;
  if (microbatches < 1) {
    func.emitError("microbatches must be positive, got ") << microbatches;
    return signalPassFailure();
  }
  if (microbatches == 1)
    return;
  // 1. The data arguments of microbatch 0, and what is summed: the loss and
  //    the gradients.
  SmallVector<unsigned> data;
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (auto role = func.getArgAttrOfType<StringAttr>(i, kRoleAttr))
      if (role.getValue() == "tokens" || role.getValue() == "targets")
        data.push_back(i);
  if (data.empty()) {
    func.emitError("microbatching needs `tokens` / `targets` arguments");
    return signalPassFailure();
  }
  SmallVector<unsigned> summed;
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    StringRef role = resultRole(func, i);
    if (role == "loss" || role == "grad")
      summed.push_back(i);
    else if (!role.empty()) {
      func.emitError("llm-grad-accumulation runs right after llm-autodiff; "
                     "result ")
          << i << " has role '" << role << "'";
      return signalPassFailure();
    }
  }

  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<Operation *> step;
  for (Operation &op : body.without_terminator())
    step.push_back(&op);
  SmallVector<Value> totals(ret.getOperands());
  OpBuilder b(ret);

  // 2. Microbatches 1 .. M-1: new data arguments, a clone of the step, the
  //    running sums.
  for (int64_t k = 1; k < microbatches; ++k) {
    IRMapping map;
    for (unsigned i : data) {
      BlockArgument arg = func.getArgument(i);
      unsigned index = func.getNumArguments();
      (void)func.insertArgument(index, arg.getType(), func.getArgAttrDict(i),
                                arg.getLoc());
      map.map(arg, func.getArgument(index));
    }
    for (Operation *op : step)
      b.clone(*op, map);
    for (unsigned r : summed) {
      Value mine = map.lookup(ret.getOperand(r));
      totals[r] = AddOp::create(b, ret.getLoc(), totals[r].getType(),
                                totals[r], mine);
    }
  }
  ret->setOperands(totals);
}
