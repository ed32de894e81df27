//===- ExampleReplicateVocab.cpp - A sharding pass, worked example --------===//
//
// The example of docs/guides/writing-a-sharding-pass.md, kept in-tree and
// tested (test/Passes/llm-example-replicate-vocab.mlir). A sharding pass
// only says what it wants; llm-sharding-propagation and llm-spmd-partition
// derive everything else.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

namespace llamac {
#define GEN_PASS_DEF_LLMEXAMPLEREPLICATEVOCAB
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
struct LlmExampleReplicateVocabPass
    : llamac::impl::LlmExampleReplicateVocabBase<LlmExampleReplicateVocabPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      for (unsigned i = 0; i < func.getNumArguments(); ++i) {
        // 1. Find the tensors by their HF names (the parameters only, not
        //    their AdamW moments, which follow their parameter).
        StringRef name = argParamName(func, i);
        auto role = func.getArgAttrOfType<StringAttr>(i, llm::kRoleAttr);
        if ((name != "model.embed_tokens.weight" && name != "lm_head.weight") ||
            (role && role.getValue() != "param"))
          continue;
        // 2. Say what we want: every dimension whole, closed, priority 0.
        auto type = cast<RankedTensorType>(func.getArgument(i).getType());
        SmallVector<SmallVector<int16_t>> dims(type.getRank());
        func.setArgAttr(i, dist::kShardingAttr,
                        dist::ShardingAttr::get(&getContext(), dims,
                                                /*partial=*/{},
                                                /*priority=*/0));
      }
    }
  }
};
} // namespace
