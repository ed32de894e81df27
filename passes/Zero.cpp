//===- Zero.cpp - ZeRO-1 optimizer-state sharding (llm-zero) --------------===//
//
// ZeRO stage 1 as a sharding pass: only the moments are annotated; the
// reduce-scatter of the gradients, the sliced AdamW and the all-gather of
// the updated weights all follow from llm-sharding-propagation and
// llm-spmd-partition.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

namespace llamac {
#define GEN_PASS_DEF_LLMZERO
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
struct LlmZeroPass : llamac::impl::LlmZeroBase<LlmZeroPass> {
  using Base::Base;
  void runOnOperation() override;
};
} // namespace

static constexpr int16_t kDataAxis = 1;

void LlmZeroPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (dp < 2) {
    module.emitError("ZeRO needs data parallelism, got dp = ") << dp;
    return signalPassFailure();
  }
  if (tp > 1) {
    module.emitError("ZeRO together with tensor parallelism (tp = ")
        << tp << ") is not supported yet; use --zero 0 or --tp 1";
    return signalPassFailure();
  }
  for (auto func : module.getOps<func::FuncOp>()) {
    int split = 0, whole = 0;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto role = func.getArgAttrOfType<StringAttr>(i, llm::kRoleAttr);
      auto type = cast<RankedTensorType>(func.getArgument(i).getType());
      // The weights stay whole on every rank (priority 1: the moments'
      // split wins at AdamW, which then reads a local slice of the weight).
      if (role && role.getValue() == "param" &&
          !func.getArgAttr(i, dist::kShardingAttr)) {
        SmallVector<SmallVector<int16_t>> dims(type.getRank());
        func.setArgAttr(i, dist::kShardingAttr,
                        dist::ShardingAttr::get(&getContext(), dims, {}, 1));
        continue;
      }
      if (!role || (role.getValue() != "adam_m" && role.getValue() != "adam_v"))
        continue;
      if (type.getRank() == 0 || type.getDimSize(0) % dp != 0) {
        ++whole;
        continue;
      }
      SmallVector<SmallVector<int16_t>> dims(type.getRank());
      dims[0].push_back(kDataAxis);
      func.setArgAttr(i, dist::kShardingAttr,
                      dist::ShardingAttr::get(&getContext(), dims, {}, 0));
      ++split;
    }
    (void)split;
    (void)whole;
  }
}
