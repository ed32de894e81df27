//===- SpmdPartition.cpp - Per-rank program (llm-spmd-partition) ----------===//
//
// After propagation every op says what it needs of its operands
// (`dist.operands`) and what its results are (`dist.sharding`). This pass
// walks the function once in program order: it reshards each operand whose
// current sharding differs from the need (collectives, cached per value and
// target so that several users share one), rebuilds the op through its
// partition() rule with local types, and finally rewrites the signature to
// local shapes.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "llm-spmd-partition"

namespace llamac {
#define GEN_PASS_DEF_LLMSPMDPARTITION
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using dist::GridInfo;
using dist::ShardingAttr;

namespace {

struct Partitioner {
  const GridInfo &grid;
  OpBuilder b;
  /// The sharding of every local value.
  DenseMap<Value, ShardingAttr> sharding;
  /// Reshards already built: (value, target) -> resharded value.
  DenseMap<std::pair<Value, Attribute>, Value> reshards;

  Partitioner(const GridInfo &g, MLIRContext *ctx) : grid(g), b(ctx) {}

  ShardingAttr shardingOf(Value v) {
    auto it = sharding.find(v);
    if (it != sharding.end())
      return it->second;
    return ShardingAttr::replicated(
        v.getContext(), cast<RankedTensorType>(v.getType()).getRank());
  }

  FailureOr<Value> reshard(Location loc, Value v, ShardingAttr to);
  RankedTensorType typeFor(Value v, ArrayRef<int64_t> localShape) {
    return RankedTensorType::get(
        localShape, cast<RankedTensorType>(v.getType()).getElementType());
  }
};

} // namespace

/// Axes as upstream shard ops take them.
static SmallVector<shard::GridAxis> gridAxes(ArrayRef<int16_t> axes) {
  return SmallVector<shard::GridAxis>(axes.begin(), axes.end());
}

FailureOr<Value> Partitioner::reshard(Location loc, Value v, ShardingAttr to) {
  ShardingAttr from = shardingOf(v);
  // Compare without priorities.
  auto key = std::make_pair(v, Attribute(to));
  if (from == to)
    return v;
  if (auto it = reshards.find(key); it != reshards.end())
    return it->second;

  MLIRContext *ctx = v.getContext();
  unsigned rank = from.getDims().size();
  SmallVector<SmallVector<int16_t>> cur;
  for (unsigned d = 0; d < rank; ++d)
    cur.emplace_back(from.axes(d).begin(), from.axes(d).end());
  SmallVector<int64_t> shape(cast<RankedTensorType>(v.getType()).getShape());
  Value x = v;

  // 1. Pending sums. Where the target splits a dimension over a partial axis
  //    (right after the axes already splitting it), reduce-scatter there;
  //    reduce the rest with one all-reduce.
  SmallVector<int16_t> pending;
  for (int16_t a : from.getPartial())
    if (!llvm::is_contained(to.getPartial(), a))
      pending.push_back(a);
  for (unsigned d = 0; d < rank && !pending.empty(); ++d) {
    ArrayRef<int16_t> want = to.axes(d);
    if (want.size() <= cur[d].size() ||
        ArrayRef<int16_t>(cur[d]) != want.take_front(cur[d].size()))
      continue;
    SmallVector<int16_t> scatter;
    for (int16_t a : want.drop_front(cur[d].size())) {
      if (!llvm::is_contained(pending, a))
        break;
      scatter.push_back(a);
    }
    if (scatter.empty())
      continue;
    int64_t n = grid.size(scatter);
    if (shape[d] % n)
      return emitError(loc, "cannot reduce-scatter dimension ")
             << d << " of size " << shape[d] << " over " << n << " ranks";
    shape[d] /= n;
    x = shard::ReduceScatterOp::create(
        b, loc, typeFor(v, shape), grid.symbol, gridAxes(scatter), x,
        shard::ReductionKind::Sum, APInt(64, d));
    llvm::append_range(cur[d], scatter);
    llvm::erase_if(pending,
                   [&](int16_t a) { return llvm::is_contained(scatter, a); });
  }
  if (!pending.empty()) {
    llvm::sort(pending);
    x = shard::AllReduceOp::create(b, loc, x.getType(), grid.symbol,
                                   gridAxes(pending), x,
                                   shard::ReductionKind::Sum);
  }

  // 2. Split dimensions: gather what the target does not keep (all
  //    dimensions first, so an axis is never on two at once), then slice.
  SmallVector<unsigned> common(rank);
  for (unsigned d = 0; d < rank; ++d) {
    ArrayRef<int16_t> want = to.axes(d);
    unsigned k = 0;
    while (k < cur[d].size() && k < want.size() && cur[d][k] == want[k])
      ++k;
    common[d] = k;
    if (k == cur[d].size())
      continue;
    SmallVector<int16_t> gather(cur[d].begin() + k, cur[d].end());
    shape[d] *= grid.size(gather);
    x = shard::AllGatherOp::create(b, loc, typeFor(v, shape), grid.symbol,
                                   gridAxes(gather), x, APInt(64, d));
    cur[d].resize(k);
  }
  for (unsigned d = 0; d < rank; ++d) {
    ArrayRef<int16_t> want = to.axes(d);
    if (common[d] == want.size())
      continue;
    SmallVector<int16_t> slice(want.begin() + common[d], want.end());
    int64_t n = grid.size(slice);
    if (shape[d] % n)
      return emitError(loc, "cannot split dimension ")
             << d << " of size " << shape[d] << " over " << n << " ranks";
    shape[d] /= n;
    x = shard::AllSliceOp::create(b, loc, typeFor(v, shape), x, grid.symbol,
                                  gridAxes(slice), d);
  }
  (void)ctx;
  sharding[x] = to;
  reshards[key] = x;
  return x;
}

namespace {
struct LlmSpmdPartitionPass
    : llamac::impl::LlmSpmdPartitionBase<LlmSpmdPartitionPass> {
  void runOnOperation() override;
  LogicalResult partition(func::FuncOp func, const GridInfo &grid);
};
} // namespace

static SmallVector<ShardingAttr> shardingList(Operation *op, StringRef name) {
  SmallVector<ShardingAttr> out;
  if (auto list = op->getAttrOfType<ArrayAttr>(name))
    for (Attribute a : list)
      out.push_back(cast<ShardingAttr>(a));
  return out;
}

LogicalResult LlmSpmdPartitionPass::partition(func::FuncOp func,
                                              const GridInfo &grid) {
  Partitioner p(grid, func.getContext());
  Block &body = func.getBody().front();

  // 1. Arguments become local.
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    BlockArgument arg = body.getArgument(i);
    auto attr = func.getArgAttrOfType<ShardingAttr>(i, dist::kShardingAttr);
    if (!attr)
      continue;
    Type local = dist::localType(arg.getType(), attr, grid);
    if (!local)
      return func.emitError("argument ")
             << i << " of type " << arg.getType()
             << " does not split evenly over " << attr;
    arg.setType(local);
    p.sharding[arg] = attr;
  }

  // 2. Ops in program order.
  SmallVector<Operation *> ops;
  for (Operation &op : body)
    ops.push_back(&op);
  for (Operation *op : ops) {
    p.b.setInsertionPoint(op);
    SmallVector<ShardingAttr> needs = shardingList(op, dist::kOperandsAttr);
    SmallVector<ShardingAttr> results = shardingList(op, dist::kShardingAttr);
    if (needs.size() != op->getNumOperands() && !needs.empty())
      return op->emitError("has ")
             << needs.size() << " operand shardings for "
             << op->getNumOperands() << " operands";
    if (needs.empty() && !isa<func::ReturnOp>(op) &&
        op->getNumOperands() > 0)
      return op->emitError("has no `dist.operands`: run "
                           "llm-sharding-propagation first");
    SmallVector<Value> local;
    for (auto [i, operand] : llvm::enumerate(op->getOperands())) {
      FailureOr<Value> v = p.reshard(op->getLoc(), operand, needs[i]);
      if (failed(v))
        return failure();
      local.push_back(*v);
    }

    if (auto constraint = dyn_cast<dist::ConstraintOp>(op)) {
      constraint.getResult().replaceAllUsesWith(local[0]);
      op->erase();
      continue;
    }
    if (auto partial = dyn_cast<dist::PartialOp>(op)) {
      // The same local values, now known to be addends.
      p.sharding[local[0]] = results[0];
      partial.getResult().replaceAllUsesWith(local[0]);
      op->erase();
      continue;
    }
    if (isa<func::ReturnOp>(op)) {
      op->setOperands(local);
      op->removeAttr(dist::kOperandsAttr);
      continue;
    }
    SmallVector<Value> out;
    LogicalResult built =
        isa<dist::ShardingRuleOpInterface>(op)
            ? cast<dist::ShardingRuleOpInterface>(op).partition(
                  p.b, local, needs, results, grid, out)
            : dist::clonePartitioned(op, p.b, local, results, grid, out);
    if (failed(built))
      return failure();
    for (auto [old, now, s] : llvm::zip(op->getResults(), out, results)) {
      p.sharding[now] = s;
      old.replaceAllUsesWith(now);
    }
    op->erase();
  }

  // 3. The signature follows the body.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  func.setFunctionType(FunctionType::get(
      func.getContext(), body.getArgumentTypes(), ret.getOperandTypes()));
  return success();
}

void LlmSpmdPartitionPass::runOnOperation() {
  ModuleOp module = getOperation();
  bool annotated = false;
  module.walk([&](Operation *op) {
    if (op->hasAttr(dist::kOperandsAttr))
      annotated = true;
  });
  if (!annotated)
    return;
  FailureOr<GridInfo> grid = getWorldGridInfo(module);
  if (failed(grid))
    return signalPassFailure();
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal() && failed(partition(func, *grid)))
      return signalPassFailure();
}
