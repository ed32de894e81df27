//===- TensorParallel.cpp - Default Megatron plan (llm-tensor-parallel) ---===//
//
// A sharding pass in the sense of docs/guides/writing-a-sharding-pass.md: it
// only annotates. Parameters are recognised by their HF names, so the plan
// applies to any LLaMA the frontend builds; the propagation derives every
// activation, gradient and optimizer-state sharding from these few lines.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/ADT/StringSet.h"

namespace llamac {
#define GEN_PASS_DEF_LLMTENSORPARALLEL
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using dist::ShardingAttr;

namespace {
struct LlmTensorParallelPass
    : llamac::impl::LlmTensorParallelBase<LlmTensorParallelPass> {
  using Base::Base;
  void runOnOperation() override;
  LogicalResult annotate(func::FuncOp func);
  LogicalResult checkDivisible(func::FuncOp func);
  LogicalResult constrainSequence(func::FuncOp func);
};
} // namespace

/// Priorities: the user's annotations are p0, this plan's parameters p1,
/// its sequence-parallel activations p2 (weaker than the weights, so a
/// column-parallel linear gathers its sequence-split input, as Megatron-SP).
static constexpr int64_t kPlanPriority = 1;
static constexpr int64_t kSequencePriority = 2;
static constexpr int16_t kTensorAxis = 2;

/// Which dimension of a parameter the Megatron plan splits over tp: 0 for
/// column-parallel and vocab-parallel weights, 1 for row-parallel ones, -1
/// for replicated ones (norms).
static int megatronSplitDim(StringRef name) {
  for (StringRef col : {".q_proj.weight", ".k_proj.weight", ".v_proj.weight",
                        ".gate_proj.weight", ".up_proj.weight"})
    if (name.ends_with(col))
      return 0;
  for (StringRef row : {".o_proj.weight", ".down_proj.weight"})
    if (name.ends_with(row))
      return 1;
  if (name == "model.embed_tokens.weight" || name == "lm_head.weight")
    return 0;
  return -1;
}

LogicalResult LlmTensorParallelPass::checkDivisible(func::FuncOp func) {
  int64_t n = tp;
  auto fail = [&](Operation *at, int64_t size, StringRef what,
                  StringRef field) {
    return at->emitError("tp = ")
           << n << " does not divide the " << what << " (" << field
           << " = " << size << ")";
  };
  // Attention heads, from the first forward attention.
  for (auto attn : func.getOps<llm::AttentionOp>()) {
    int64_t heads = attn.getQ().getType().getShape()[2];
    int64_t kv = attn.getK().getType().getShape()[2];
    if (heads % n)
      return fail(attn, heads, "attention heads", "num_attention_heads");
    if (kv % n)
      return fail(attn, kv,
                  "key-value heads; llamac does not replicate kv heads, "
                  "choose a tp that divides them",
                  "num_key_value_heads");
    break;
  }
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    StringRef name = argParamName(func, i);
    auto shape = cast<RankedTensorType>(func.getArgument(i).getType())
                     .getShape();
    if (name.ends_with(".gate_proj.weight") && shape[0] % n)
      return fail(func, shape[0], "intermediate size", "intermediate_size");
    if (name == "model.embed_tokens.weight" && shape[0] % n)
      return fail(func, shape[0], "vocabulary", "vocab_size");
  }
  if (sequenceParallel) {
    for (auto norm : func.getOps<llm::RmsNormOp>()) {
      auto shape = norm.getX().getType().getShape();
      if (shape.size() < 2 || shape[1] % n)
        return norm.emitError("sequence parallelism: tp = ")
               << n << " does not divide the sequence length ("
               << (shape.size() < 2 ? 0 : shape[1]) << ")";
      break;
    }
  }
  return success();
}

LogicalResult LlmTensorParallelPass::annotate(func::FuncOp func) {
  MLIRContext *ctx = func.getContext();
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    // Parameters only: their AdamW moments (same llm.param name) follow
    // them through propagation, so a user's override moves both.
    StringRef name = argParamName(func, i);
    auto role = func.getArgAttrOfType<StringAttr>(i, llm::kRoleAttr);
    if (name.empty() || (role && role.getValue() != "param") ||
        func.getArgAttr(i, dist::kShardingAttr))
      continue;
    auto type = cast<RankedTensorType>(func.getArgument(i).getType());
    SmallVector<SmallVector<int16_t>> dims(type.getRank());
    int split = megatronSplitDim(name);
    if (split >= 0 && split < type.getRank())
      dims[split].push_back(kTensorAxis);
    func.setArgAttr(i, dist::kShardingAttr,
                    ShardingAttr::get(ctx, dims, {}, kPlanPriority));
  }
  return success();
}

LogicalResult LlmTensorParallelPass::constrainSequence(func::FuncOp func) {
  // The residual stream is what every forward RMSNorm reads: split it along
  // the sequence. Uses in the backward pass see the same constrained value.
  SmallVector<Value> stream;
  for (auto norm : func.getOps<llm::RmsNormOp>())
    if (!llvm::is_contained(stream, norm.getX()))
      stream.push_back(norm.getX());
  OpBuilder b(func.getContext());
  for (Value x : stream) {
    auto type = cast<RankedTensorType>(x.getType());
    SmallVector<SmallVector<int16_t>> dims(type.getRank());
    dims[1].push_back(kTensorAxis);
    if (Operation *def = x.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(&func.getBody().front());
    auto constraint = dist::ConstraintOp::create(
        b, x.getLoc(), x,
        ShardingAttr::get(func.getContext(), dims, {}, kSequencePriority));
    x.replaceAllUsesExcept(constraint, constraint);
  }
  return success();
}

void LlmTensorParallelPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (dp < 1 || tp < 1 || pp < 1) {
    module.emitError("layout sizes must be positive, got dp = ")
        << dp << ", tp = " << tp << ", pp = " << pp;
    return signalPassFailure();
  }
  if (tp == 1)
    return;
  if (failed(getOrCreateWorldGrid(
          module, {pp.getValue(), dp.getValue(), tp.getValue()})))
    return signalPassFailure();
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    if (failed(checkDivisible(func)) || failed(annotate(func)) ||
        (sequenceParallel && failed(constrainSequence(func))))
      return signalPassFailure();
  }
}
