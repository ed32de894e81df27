//===- ShardingRule.cpp - Factor-based sharding rules ---------------------===//
#include "dialects/dist/ShardingRule.h"
#include "dialects/dist/DistDialect.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace llamac::dist;

TensorFactors ShardingRule::single(ArrayRef<int> dims) {
  TensorFactors t;
  for (int f : dims) {
    t.emplace_back();
    if (f >= 0)
      t.back().push_back(f);
  }
  return t;
}

bool ShardingRule::resultHasFactor(unsigned r, int factor) const {
  for (const auto &dim : results[r])
    if (llvm::is_contained(dim, factor))
      return true;
  return false;
}

int64_t GridInfo::size(ArrayRef<int16_t> axes) const {
  int64_t n = 1;
  for (int16_t a : axes)
    n *= shape[a];
  return n;
}

StringRef llamac::dist::axisName(int16_t axis) {
  switch (axis) {
  case 0:
    return "pp";
  case 1:
    return "dp";
  case 2:
    return "tp";
  }
  return "?";
}

int16_t llamac::dist::axisIndex(StringRef name) {
  return llvm::StringSwitch<int16_t>(name)
      .Case("pp", 0)
      .Case("dp", 1)
      .Case("tp", 2)
      .Default(-1);
}

FailureOr<SmallVector<int64_t>>
llamac::dist::localShape(ArrayRef<int64_t> shape, ShardingAttr sharding,
                         const GridInfo &grid) {
  SmallVector<int64_t> local(shape);
  if (!sharding)
    return local;
  for (auto [d, dim] : llvm::enumerate(sharding.getDims())) {
    int64_t n = grid.size(dim.getAxes());
    if (d >= local.size() || local[d] % n != 0)
      return failure();
    local[d] /= n;
  }
  return local;
}

Type llamac::dist::localType(Type type, ShardingAttr sharding,
                             const GridInfo &grid) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !sharding)
    return type;
  FailureOr<SmallVector<int64_t>> shape =
      localShape(tensor.getShape(), sharding, grid);
  if (failed(shape))
    return {};
  return RankedTensorType::get(*shape, tensor.getElementType());
}

LogicalResult llamac::dist::clonePartitioned(Operation *op, OpBuilder &builder,
                                             ValueRange localOperands,
                                             ArrayRef<ShardingAttr> results,
                                             const GridInfo &grid,
                                             SmallVectorImpl<Value> &out) {
  SmallVector<Type> types;
  for (auto [i, type] : llvm::enumerate(op->getResultTypes())) {
    Type local = localType(type, i < results.size() ? results[i]
                                                    : ShardingAttr(),
                           grid);
    if (!local)
      return op->emitError("result ") << i << " of type " << type
                                      << " does not divide evenly over its "
                                         "sharding";
    types.push_back(local);
  }
  OperationState state(op->getLoc(), op->getName());
  state.addOperands(localOperands);
  state.addTypes(types);
  for (NamedAttribute attr : op->getAttrs())
    if (attr.getName() != kShardingAttr && attr.getName() != kOperandsAttr)
      state.addAttribute(attr.getName(), attr.getValue());
  Operation *clone = builder.create(state);
  llvm::append_range(out, clone->getResults());
  return success();
}

namespace {
/// shard.all_reduce: every dimension passes through; partial sums on other
/// axes survive it (a sum of sums).
struct AllReduceShardingModel
    : public ShardingRuleOpInterface::ExternalModel<AllReduceShardingModel,
                                                    shard::AllReduceOp> {
  ShardingRule getShardingRule(Operation *op) const {
    ShardingRule rule;
    auto type = cast<RankedTensorType>(op->getOperand(0).getType());
    SmallVector<int> dims;
    for (int64_t size : type.getShape())
      dims.push_back(rule.factor(size));
    rule.operand(dims);
    rule.result(dims);
    rule.linearOperands = {0};
    return rule;
  }
};
} // namespace

std::optional<ShardingRule> llamac::dist::getShardingRule(Operation *op) {
  if (auto iface = dyn_cast<ShardingRuleOpInterface>(op))
    return iface.getShardingRule();
  return std::nullopt;
}

void llamac::dist::registerExternalShardingRules(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, shard::ShardDialect *) {
    shard::AllReduceOp::attachInterface<AllReduceShardingModel>(*ctx);
  });
}
