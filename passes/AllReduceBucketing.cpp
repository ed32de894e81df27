//===- AllReduceBucketing.cpp - llm-allreduce-bucketing -------------------===//
//
// See the pass description (Passes.td). Buckets are formed per set of grid
// axes, in ready order; a bucket's start goes right after its last producer
// and its wait right before its first reader.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "llm-allreduce-bucketing"

namespace llamac {
#define GEN_PASS_DEF_LLMALLREDUCEBUCKETING
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
struct LlmAllReduceBucketingPass
    : llamac::impl::LlmAllReduceBucketingBase<LlmAllReduceBucketingPass> {
  using Base::Base;
  void runOnOperation() override;
};

struct Candidate {
  shard::AllReduceOp reduce;
  Operation *producer;
  int64_t bytes;
};
} // namespace

static int64_t bytesOf(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  return t.getNumElements() * (t.getElementTypeBitWidth() / 8);
}

void LlmAllReduceBucketingPass::runOnOperation() {
  func::FuncOp func = getOperation();
  if (!(bucketCapMb > 0) || !(firstBucketMb > 0)) {
    func.emitError("bucket sizes must be positive, got bucket-cap-mb = ")
        << llm::formatNumber(bucketCapMb) << ", first-bucket-mb = "
        << llm::formatNumber(firstBucketMb);
    return signalPassFailure();
  }
  if (func.isExternal())
    return;
  Block &body = func.getBody().front();

  // 1. Bucketable reductions: fp32 gradient sums whose gradient is a fresh
  //    kernel result read by nothing else (it is overwritten in place while
  //    the bucket reduces).
  DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : body)
    position[&op] = index++;
  SmallVector<Candidate> candidates;
  for (auto reduce : body.getOps<shard::AllReduceOp>()) {
    Value g = reduce.getInput();
    Operation *producer = g.getDefiningOp();
    auto type = dyn_cast<RankedTensorType>(g.getType());
    if (!reduce->hasAttr(kGradReductionAttr) || !producer ||
        isa<llm::ReshapeOp>(producer) ||
        reduce.getReduction() != shard::ReductionKind::Sum || !type ||
        !type.getElementType().isF32() || !g.hasOneUse())
      continue;
    candidates.push_back({reduce, producer, bytesOf(g)});
  }
  // Ready order: when the gradient's producer runs.
  llvm::stable_sort(candidates, [&](const Candidate &a, const Candidate &b) {
    return position[a.producer] < position[b.producer];
  });

  // 2. Greedy packing per set of grid axes.
  const int64_t cap = static_cast<int64_t>(bucketCapMb * 1048576.0);
  const int64_t first = static_cast<int64_t>(firstBucketMb * 1048576.0);
  SmallVector<SmallVector<Candidate>> buckets;
  std::map<SmallVector<int16_t>, int64_t> open; // axes -> bucket index
  std::map<SmallVector<int16_t>, bool> seen;
  for (Candidate c : candidates) {
    SmallVector<int16_t> axes(c.reduce.getGridAxes());
    auto it = open.find(axes);
    int64_t limit = seen[axes] ? cap : first;
    if (it != open.end()) {
      int64_t used = 0;
      for (const Candidate &m : buckets[it->second])
        used += m.bytes;
      if (used + c.bytes <= limit) {
        buckets[it->second].push_back(c);
        continue;
      }
      seen[axes] = true; // the first bucket of these axes is closed
    }
    open[axes] = static_cast<int64_t>(buckets.size());
    buckets.push_back({c});
  }

  // 3. One start after the last producer, one wait before the first reader.
  OpBuilder b(func.getContext());
  for (auto [id, bucket] : llvm::enumerate(buckets)) {
    Operation *last = bucket.front().producer;
    SmallVector<Value> grads;
    SmallVector<Type> types;
    for (Candidate c : bucket) {
      if (last->isBeforeInBlock(c.producer))
        last = c.producer;
      grads.push_back(c.reduce.getInput());
      types.push_back(c.reduce.getType());
    }
    b.setInsertionPointAfter(last);
    auto reduce = bucket.front().reduce;
    auto start = dist::BucketAllReduceOp::create(
        b, reduce.getLoc(), types, grads,
        FlatSymbolRefAttr::get(reduce.getGridAttr().getAttr()),
        b.getDenseI16ArrayAttr(reduce.getGridAxes()),
        b.getI64IntegerAttr(static_cast<int64_t>(id)));
    Operation *firstReader = nullptr;
    for (Candidate c : bucket)
      for (Operation *user : c.reduce->getUsers())
        if (!firstReader || user->isBeforeInBlock(firstReader))
          firstReader = user;
    b.setInsertionPoint(firstReader ? firstReader : body.getTerminator());
    auto wait = dist::BucketWaitOp::create(
        b, reduce.getLoc(), types, start.getResults(),
        b.getI64IntegerAttr(static_cast<int64_t>(id)));
    for (auto [i, c] : llvm::enumerate(bucket)) {
      c.reduce.getResult().replaceAllUsesWith(wait.getResult(i));
      c.reduce->erase();
    }
  }
  LLVM_DEBUG(llvm::dbgs() << "llm-allreduce-bucketing: " << candidates.size()
                          << " gradients in " << buckets.size()
                          << " buckets\n");
}
