//===- MemoryPlan.cpp - Liveness-based arena planning (lrt-memory-plan) ---===//
//
// Intervals are [definition, last use] in program order. Buffers are placed
// first-fit in a list of live blocks sorted by offset. This is the classic
// greedy heuristic (not optimal, but within a few percent on LLaMA steps
// because activations are freed in LIFO order during backward).
//
//===----------------------------------------------------------------------===//
#include "dialects/lrt/LrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Debug.h"
#include "llvm/Support/MathExtras.h"

#include <map>

#define DEBUG_TYPE "lrt-memory-plan"

namespace llamac {
#define GEN_PASS_DEF_LRTMEMORYPLAN
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
struct LrtMemoryPlanPass : llamac::impl::LrtMemoryPlanBase<LrtMemoryPlanPass> {
  void runOnOperation() override;
};

/// Live blocks of the arena, ordered by offset.
class Arena {
public:
  int64_t allocate(int64_t bytes) {
    bytes = llvm::alignTo(bytes, lrt::kArenaAlignment);
    int64_t offset = 0;
    for (auto [start, size] : live) {
      if (start - offset >= bytes)
        break;
      offset = std::max(offset, start + size);
    }
    live.emplace(offset, bytes);
    peak = std::max(peak, offset + bytes);
    return offset;
  }
  void release(int64_t offset) { live.erase(live.find(offset)); }
  int64_t peakBytes() const { return peak; }

private:
  std::multimap<int64_t, int64_t> live;
  int64_t peak = 0;
};
} // namespace

/// The value whose storage `v` uses: through views and in-place results,
/// down to a fresh kernel result or a function argument.
static Value storageRoot(Value v) {
  while (true) {
    if (auto view = v.getDefiningOp<lrt::ViewOp>()) {
      v = view.getSource();
      continue;
    }
    auto kernel = v.getDefiningOp<lrt::KernelOp>();
    std::optional<ArrayRef<int64_t>> inplace =
        kernel ? kernel.getInplace() : std::nullopt;
    unsigned i = kernel ? cast<OpResult>(v).getResultNumber() : 0;
    if (!inplace || i >= inplace->size() || (*inplace)[i] < 0)
      return v;
    v = kernel.getOperand((*inplace)[i]);
  }
}

/// Gradient buckets: the operands of a bucket_all_reduce_start, laid out
/// back to back (no padding: the runtime reduces the region as one array).
struct BucketLayout {
  SmallVector<Value> members; ///< storage roots, in bucket order
  int64_t bytes = 0;
};

void LrtMemoryPlanPass::runOnOperation() {
  func::FuncOp func = getOperation();
  Block &body = func.getBody().front();

  // 1. Program order and the last use of each storage root.
  DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : body)
    position[&op] = index++;
  int64_t end = index;
  DenseMap<Value, int64_t> lastUse;
  for (Operation &op : body) {
    for (Value operand : op.getOperands()) {
      Value root = storageRoot(operand);
      int64_t at = isa<func::ReturnOp>(op) ? end : position[&op];
      lastUse[root] = std::max(lastUse.lookup(root), at);
    }
  }

  // 2. Buckets: each member's offset inside its bucket, and the bucket's
  //    lifetime (its members' longest).
  SmallVector<BucketLayout> buckets;
  DenseMap<Value, std::pair<int64_t, int64_t>> inBucket; // root -> (id, at)
  for (auto kernel : body.getOps<lrt::KernelOp>()) {
    if (kernel.getKernel() != "bucket_all_reduce_start")
      continue;
    BucketLayout layout;
    for (Value operand : kernel.getOperands()) {
      Value root = storageRoot(operand);
      auto producer = root.getDefiningOp<lrt::KernelOp>();
      if (!producer || inBucket.count(root) ||
          llvm::is_contained(layout.members, root)) {
        kernel.emitError("bucket operands must be distinct fresh kernel "
                         "results (gradients written into the bucket)");
        return signalPassFailure();
      }
      inBucket[root] = {static_cast<int64_t>(buckets.size()), layout.bytes};
      layout.members.push_back(root);
      layout.bytes += lrt::tensorBytes(cast<RankedTensorType>(root.getType()));
    }
    buckets.push_back(layout);
  }
  SmallVector<int64_t> bucketOffset(buckets.size(), -1);

  // 3. Place each kernel's fresh results after releasing what died before
  //    it. Buffers last used by this kernel stay live while it runs. A
  //    bucket's region is placed with its first member and lives until its
  //    last member dies.
  Arena arena;
  std::multimap<int64_t, Value> dying; // last use -> root
  DenseMap<Value, int64_t> offsetOf;
  for (Operation &op : body) {
    auto kernel = dyn_cast<lrt::KernelOp>(op);
    if (!kernel)
      continue;
    int64_t at = position[&op];
    while (!dying.empty() && dying.begin()->first < at) {
      arena.release(offsetOf[dying.begin()->second]);
      dying.erase(dying.begin());
    }
    std::optional<ArrayRef<int64_t>> inplace = kernel.getInplace();
    // In-place updates are only sound when nothing reads the old value
    // afterwards.
    for (int64_t operandIndex : inplace.value_or(ArrayRef<int64_t>{})) {
      if (operandIndex < 0)
        continue;
      Value old = kernel.getOperand(operandIndex);
      for (Operation *user : old.getUsers()) {
        if (user != kernel && position[user] > at) {
          user->emitError("reads operand #")
              << operandIndex << " of the in-place '" << kernel.getKernel()
              << "' kernel after it was overwritten";
          return signalPassFailure();
        }
      }
    }
    SmallVector<int64_t> offsets;
    for (auto [i, result] : llvm::enumerate(kernel.getResults())) {
      if (inplace && (*inplace)[i] >= 0) {
        offsets.push_back(-1);
        continue;
      }
      auto type = cast<RankedTensorType>(result.getType());
      if (auto it = inBucket.find(result); it != inBucket.end()) {
        auto [id, inner] = it->second;
        if (bucketOffset[id] < 0) {
          bucketOffset[id] = arena.allocate(buckets[id].bytes);
          int64_t until = at;
          for (Value m : buckets[id].members)
            until = std::max(until, lastUse.lookup(m));
          offsetOf[result] = bucketOffset[id];
          dying.emplace(until, result);
        }
        offsets.push_back(bucketOffset[id] + inner);
        continue;
      }
      int64_t offset = arena.allocate(lrt::tensorBytes(type));
      offsetOf[result] = offset;
      offsets.push_back(offset);
      // An unused result still needs room while its kernel writes it.
      dying.emplace(std::max(lastUse.lookup(result), at), result);
    }
    kernel.setOffsets(offsets);
  }

  func->setAttr(lrt::kArenaBytesAttr,
                Builder(func.getContext()).getI64IntegerAttr(arena.peakBytes()));
  LLVM_DEBUG(llvm::dbgs() << "lrt-memory-plan: arena " << arena.peakBytes()
                          << " bytes\n");
}
