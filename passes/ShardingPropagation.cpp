//===- ShardingPropagation.cpp - llm-sharding-propagation -----------------===//
//
// Fixpoint propagation over factor rules (OpenXLA Shardy's design, our own
// implementation; see the pass description in Passes.td for the rules).
//
// State: for every tensor value, per dimension, the grid axes proposed for
// it and the priority of the annotation they came from (unset = no
// proposal yet). Each op visit decides its factors from that state and
// writes the decision back into the unset or weaker dimensions of its
// operands and results. Priorities only get stronger and axes change only
// with them, so the sweeps terminate.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "llvm/ADT/SmallBitVector.h"
#include "llvm/Support/Debug.h"

#include <limits>

#define DEBUG_TYPE "llm-sharding-propagation"

namespace llamac {
#define GEN_PASS_DEF_LLMSHARDINGPROPAGATION
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;
using dist::FactorKind;
using dist::GridInfo;
using dist::ShardingAttr;
using dist::ShardingRule;

namespace {

constexpr int64_t kUnset = std::numeric_limits<int64_t>::max();

struct DimState {
  SmallVector<int16_t> axes;
  int64_t priority = kUnset;
  bool closed = false;
  bool annotated = false; ///< Set by an annotation, not by propagation.
};
using ValueState = SmallVector<DimState, 4>;

/// One factor's decision at one op.
struct FactorChoice {
  SmallVector<int16_t> axes;
  int64_t priority = kUnset;
  int64_t bytes = 0;
};

struct Propagator {
  const GridInfo &grid;
  DenseMap<Value, ValueState> state;
  bool changed = false;

  explicit Propagator(const GridInfo &g) : grid(g) {}

  ValueState &of(Value v) {
    auto it = state.find(v);
    if (it != state.end())
      return it->second;
    ValueState s(cast<RankedTensorType>(v.getType()).getRank());
    return state.try_emplace(v, std::move(s)).first->second;
  }

  static int64_t bytesOf(Value v) {
    auto t = cast<RankedTensorType>(v.getType());
    return t.getNumElements() *
           std::max<int64_t>(1, t.getElementTypeBitWidth() / 8);
  }

  /// The tensors of an op in rule order: operands, then results.
  static SmallVector<Value> tensors(Operation *op) {
    SmallVector<Value> all(op->getOperands());
    llvm::append_range(all, op->getResults());
    return all;
  }
  static SmallVector<const dist::TensorFactors *>
  factorLists(const ShardingRule &rule) {
    SmallVector<const dist::TensorFactors *> all;
    for (const auto &t : rule.operands)
      all.push_back(&t);
    for (const auto &t : rule.results)
      all.push_back(&t);
    return all;
  }

  SmallVector<FactorChoice> decide(Operation *op, const ShardingRule &rule);
  void visit(Operation *op);
  void seed(Value v, ShardingAttr attr);
};

} // namespace

void Propagator::seed(Value v, ShardingAttr attr) {
  ValueState &s = of(v);
  int64_t priority = attr.getPriority() < 0 ? 0 : attr.getPriority();
  for (auto [d, dim] : llvm::enumerate(attr.getDims())) {
    s[d].axes.assign(dim.getAxes().begin(), dim.getAxes().end());
    s[d].priority = priority;
    s[d].closed = !dim.getOpen();
    s[d].annotated = true;
  }
}

/// Two user annotations (priority 0) that give one factor of an op
/// different axes cannot both hold: the user said two contradictory
/// things. (Weaker annotations, such as the --tp plan's, are resolved by
/// the conflict rule instead.)
static LogicalResult checkUserConflicts(Operation *op, const ShardingRule &rule,
                                        Propagator &p) {
  SmallVector<Value> values = Propagator::tensors(op);
  SmallVector<const dist::TensorFactors *> lists =
      Propagator::factorLists(rule);
  SmallVector<std::pair<int, const DimState *>> first(rule.numFactors(),
                                                      {-1, nullptr});
  for (auto [t, v] : llvm::enumerate(values)) {
    if (!isa<RankedTensorType>(v.getType()) || !p.state.count(v))
      continue;
    const ValueState &s = p.of(v);
    for (auto [d, factors] : llvm::enumerate(*lists[t])) {
      if (factors.empty() || d >= s.size() || !s[d].annotated ||
          s[d].priority != 0)
        continue;
      auto &seen = first[factors.front()];
      if (!seen.second) {
        seen = {static_cast<int>(t), &s[d]};
        continue;
      }
      if (seen.second->axes == s[d].axes)
        continue;
      auto name = [&](int index) {
        unsigned n = op->getNumOperands();
        return index < static_cast<int>(n)
                   ? "operand " + std::to_string(index)
                   : "result " + std::to_string(index - n);
      };
      auto axes = [](ArrayRef<int16_t> list) {
        std::string out = "{";
        for (auto [i, a] : llvm::enumerate(list))
          out += (i ? ", " : "") + dist::axisName(a).str();
        return out + "}";
      };
      return op->emitError("conflicting user annotations (priority 0): ")
             << name(seen.first) << " splits a dimension over "
             << axes(seen.second->axes) << " but " << name(t)
             << " splits the same dimension over " << axes(s[d].axes)
             << "; give one of them a weaker priority (p1 or more)";
    }
  }
  return success();
}

SmallVector<FactorChoice> Propagator::decide(Operation *op,
                                             const ShardingRule &rule) {
  SmallVector<FactorChoice> choice(rule.numFactors());
  SmallVector<Value> values = tensors(op);
  SmallVector<const dist::TensorFactors *> lists = factorLists(rule);
  // 1. Per factor: the strongest proposal; among equals, the largest tensor
  //    (so that the smaller one is resharded).
  for (auto [t, v] : llvm::enumerate(values)) {
    if (!isa<RankedTensorType>(v.getType()))
      continue;
    const ValueState &s = of(v);
    int64_t bytes = bytesOf(v);
    for (auto [d, factors] : llvm::enumerate(*lists[t])) {
      if (factors.empty() || d >= s.size() || s[d].priority == kUnset)
        continue;
      FactorChoice &c = choice[factors.front()];
      if (s[d].priority < c.priority ||
          (s[d].priority == c.priority && bytes > c.bytes)) {
        c.axes = s[d].axes;
        c.priority = s[d].priority;
        c.bytes = bytes;
      }
    }
  }
  // 2. Kinds and axis conflicts: strongest factors claim their axes first;
  //    a factor that cannot be split (kind, size) or whose axes are taken
  //    by a factor it meets stays whole and proposes nothing. Two factors
  //    meet when a tensor has both, or when one is reduced away from a
  //    result the other splits (an axis cannot split a tensor and be a
  //    pending sum of it at once). Factors that never meet (the separate
  //    inputs of llm.global_norm) may use the same axes.
  int n = rule.numFactors();
  std::vector<llvm::SmallBitVector> in(lists.size(),
                                       llvm::SmallBitVector(n));
  for (auto [t, list] : llvm::enumerate(lists))
    for (const auto &factors : *list)
      for (int f : factors)
        in[t].set(f);
  auto meet = [&](int a, int b) {
    for (auto [t, bits] : llvm::enumerate(in)) {
      if (bits.test(a) && bits.test(b))
        return true;
      bool result = t >= rule.operands.size();
      if (result && ((bits.test(a) && !bits.test(b) &&
                      rule.kinds[b] == FactorKind::PassThrough) ||
                     (bits.test(b) && !bits.test(a) &&
                      rule.kinds[a] == FactorKind::PassThrough)))
        return true;
    }
    return false;
  };
  SmallVector<int> order(n);
  for (int f = 0; f < n; ++f)
    order[f] = f;
  llvm::stable_sort(order, [&](int a, int b) {
    if (choice[a].priority != choice[b].priority)
      return choice[a].priority < choice[b].priority;
    return choice[a].bytes > choice[b].bytes;
  });
  SmallVector<int> claimed;
  for (int f : order) {
    FactorChoice &c = choice[f];
    bool ok = rule.kinds[f] != FactorKind::NeedReplication &&
              rule.factorSizes[f] % grid.size(c.axes) == 0 &&
              llvm::none_of(claimed, [&](int g) {
                return meet(f, g) &&
                       llvm::any_of(c.axes, [&](int16_t a) {
                         return llvm::is_contained(choice[g].axes, a);
                       });
              });
    if (!ok) {
      c.axes.clear();
      c.priority = kUnset;
      continue;
    }
    if (!c.axes.empty())
      claimed.push_back(f);
  }
  return choice;
}

void Propagator::visit(Operation *op) {
  // A pending sum is declared, not derived: nothing flows through it, so
  // the sharding its users want never reaches the producer of the addends
  // (ZeRO's gradients are computed whole, then reduce-scattered).
  if (isa<dist::PartialOp>(op))
    return;
  std::optional<ShardingRule> rule = dist::getShardingRule(op);
  if (isa<dist::ConstraintOp>(op)) {
    // Shardings flow through as through an elementwise op.
    ShardingRule r;
    SmallVector<int> dims;
    for (int64_t size :
         cast<RankedTensorType>(op->getResult(0).getType()).getShape())
      dims.push_back(r.factor(size));
    r.operand(dims);
    r.result(dims);
    rule = r;
  }
  if (!rule)
    return;
  SmallVector<FactorChoice> choice = decide(op, *rule);
  SmallVector<Value> values = tensors(op);
  SmallVector<const dist::TensorFactors *> lists = factorLists(*rule);
  for (auto [t, v] : llvm::enumerate(values)) {
    if (!isa<RankedTensorType>(v.getType()))
      continue;
    ValueState &s = of(v);
    for (auto [d, factors] : llvm::enumerate(*lists[t])) {
      if (factors.empty() || d >= s.size())
        continue;
      const FactorChoice &c = choice[factors.front()];
      if (c.priority == kUnset || s[d].closed || c.priority >= s[d].priority)
        continue;
      s[d].axes = c.axes;
      s[d].priority = c.priority;
      changed = true;
    }
  }
}

/// The final sharding of an op from the converged state: what it needs of
/// its operands, and what its results are (with partial sums).
static void finalize(Operation *op, Propagator &p,
                     DenseMap<Value, ShardingAttr> &final) {
  MLIRContext *ctx = op->getContext();
  auto replicatedOf = [&](Value v) {
    auto t = cast<RankedTensorType>(v.getType());
    return ShardingAttr::replicated(ctx, t.getRank());
  };
  auto current = [&](Value v) {
    auto it = final.find(v);
    return it != final.end() ? it->second : replicatedOf(v);
  };
  SmallVector<Attribute> operands, results;

  if (auto constraint = dyn_cast<dist::ConstraintOp>(op)) {
    ShardingAttr s = constraint.getSharding().withoutPartial();
    operands.push_back(s);
    results.push_back(s);
    final[constraint.getResult()] = s;
  } else if (auto partial = dyn_cast<dist::PartialOp>(op)) {
    // No communication: the operand as it is, with more pending sums.
    ShardingAttr in = current(partial.getInput());
    SmallVector<int16_t> axes(in.getPartial());
    for (int16_t a : partial.getGridAxes())
      if (!llvm::is_contained(axes, a))
        axes.push_back(a);
    llvm::sort(axes);
    SmallVector<SmallVector<int16_t>> dims;
    for (unsigned d = 0; d < in.getDims().size(); ++d)
      dims.emplace_back(in.axes(d).begin(), in.axes(d).end());
    auto out = ShardingAttr::get(ctx, dims, axes);
    operands.push_back(in);
    results.push_back(out);
    final[partial.getResult()] = out;
  } else if (isa<func::ReturnOp>(op)) {
    for (Value v : op->getOperands())
      operands.push_back(current(v).withoutPartial());
  } else if (std::optional<ShardingRule> rule = dist::getShardingRule(op)) {
    SmallVector<FactorChoice> choice = p.decide(op, *rule);
    auto dimsOf = [&](const dist::TensorFactors &factors) {
      SmallVector<SmallVector<int16_t>> dims;
      for (const auto &f : factors)
        dims.push_back(f.empty() ? SmallVector<int16_t>()
                                 : choice[f.front()].axes);
      return dims;
    };
    // Partial sums that linear operands all carry pass through.
    SmallVector<int16_t> linearPartial;
    bool linear = !rule->linearOperands.empty();
    for (unsigned i : rule->linearOperands) {
      ArrayRef<int16_t> partial = current(op->getOperand(i)).getPartial();
      if (i == rule->linearOperands.front())
        linearPartial.assign(partial.begin(), partial.end());
      else if (ArrayRef<int16_t>(linearPartial) != partial)
        linear = false;
    }
    if (linearPartial.empty())
      linear = false;
    // Partial-sum deferral: when every linear operand holds the same
    // pending sums, the op runs on the partial values and its result stays
    // partial, so one reduction later replaces one per operand (the three
    // q/k/v input gradients are added before their single all-reduce or
    // reduce-scatter). Factors split over those axes stay whole here.
    if (linear)
      for (FactorChoice &c : choice)
        if (llvm::any_of(c.axes, [&](int16_t a) {
              return llvm::is_contained(linearPartial, a);
            }))
          c.axes.clear();
    for (auto [i, factors] : llvm::enumerate(rule->operands)) {
      bool keep = linear && llvm::is_contained(rule->linearOperands, i);
      operands.push_back(ShardingAttr::get(
          ctx, dimsOf(factors), keep ? ArrayRef<int16_t>(linearPartial)
                                     : ArrayRef<int16_t>()));
    }
    for (auto [r, factors] : llvm::enumerate(rule->results)) {
      SmallVector<int16_t> partial;
      if (linear)
        partial = linearPartial;
      for (int f = 0; f < rule->numFactors(); ++f)
        if (rule->kinds[f] == FactorKind::PassThrough &&
            !rule->resultHasFactor(r, f))
          llvm::append_range(partial, choice[f].axes);
      llvm::sort(partial);
      auto s = ShardingAttr::get(ctx, dimsOf(factors), partial);
      results.push_back(s);
      final[op->getResult(r)] = s;
    }
  } else {
    // No rule: a boundary that sees whole tensors.
    for (Value v : op->getOperands())
      if (isa<RankedTensorType>(v.getType()))
        operands.push_back(replicatedOf(v));
    for (Value v : op->getResults())
      if (isa<RankedTensorType>(v.getType())) {
        results.push_back(replicatedOf(v));
        final[v] = cast<ShardingAttr>(results.back());
      }
  }
  op->setAttr(dist::kOperandsAttr, ArrayAttr::get(ctx, operands));
  if (!results.empty())
    op->setAttr(dist::kShardingAttr, ArrayAttr::get(ctx, results));
}

/// Whether `module` asks for any sharding.
static bool hasAnnotations(ModuleOp module) {
  bool any = false;
  module.walk([&](Operation *op) {
    if (isa<dist::ConstraintOp, dist::PartialOp>(op))
      any = true;
    if (auto func = dyn_cast<func::FuncOp>(op))
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        if (func.getArgAttr(i, dist::kShardingAttr))
          any = true;
  });
  return any;
}

/// The grid of `module` as the rules see it.
FailureOr<GridInfo> llamac::getWorldGridInfo(ModuleOp module) {
  auto grid = module.lookupSymbol<shard::GridOp>(kWorldGrid);
  if (!grid)
    return module.emitError("sharding annotations need the device grid "
                            "`shard.grid @world(shape = PPxDPxTP)`"),
           failure();
  if (grid.getShape().size() != 3)
    return grid.emitError("grid @world must have 3 axes (pp, dp, tp), got ")
               << grid.getShape().size(),
           failure();
  GridInfo info;
  info.shape.assign(grid.getShape().begin(), grid.getShape().end());
  info.symbol = kWorldGrid;
  return info;
}

namespace {
struct LlmShardingPropagationPass
    : llamac::impl::LlmShardingPropagationBase<LlmShardingPropagationPass> {
  void runOnOperation() override;
};
} // namespace

void LlmShardingPropagationPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (!hasAnnotations(module))
    return;
  FailureOr<GridInfo> grid = getWorldGridInfo(module);
  if (failed(grid))
    return signalPassFailure();

  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    Propagator p(*grid);
    // 1. Seeds: annotated arguments and constraints.
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto attr = func.getArgAttrOfType<ShardingAttr>(i, dist::kShardingAttr);
      if (!attr)
        continue;
      auto type = cast<RankedTensorType>(func.getArgument(i).getType());
      if (attr.getDims().size() != static_cast<size_t>(type.getRank()) ||
          !attr.getPartial().empty()) {
        func.emitError("argument ")
            << i << " (" << argParamName(func, i) << "): sharding " << attr
            << " does not fit its type " << type
            << " (one entry per dimension, no partial sums)";
        return signalPassFailure();
      }
      if (failed(dist::localShape(type.getShape(), attr, *grid))) {
        func.emitError("argument ")
            << i << " (" << argParamName(func, i) << "): " << type
            << " does not split evenly over " << attr;
        return signalPassFailure();
      }
      p.seed(func.getArgument(i), attr);
    }
    SmallVector<Operation *> ops;
    for (Operation &op : func.getBody().front())
      ops.push_back(&op);
    for (Operation *op : ops)
      if (auto c = dyn_cast<dist::ConstraintOp>(op))
        p.seed(c.getResult(), c.getSharding());

    for (Operation *op : ops)
      if (std::optional<ShardingRule> rule = dist::getShardingRule(op))
        if (failed(checkUserConflicts(op, *rule, p)))
          return signalPassFailure();

    // 2. Sweeps, forward then backward, until nothing changes.
    int sweeps = 0;
    do {
      p.changed = false;
      for (Operation *op : ops)
        p.visit(op);
      for (Operation *op : llvm::reverse(ops))
        p.visit(op);
      ++sweeps;
    } while (p.changed && sweeps < 64);
    LLVM_DEBUG(llvm::dbgs() << "llm-sharding-propagation: " << sweeps
                            << " sweeps\n");

    // 3. Final shardings, in program order (partial sums flow forward).
    DenseMap<Value, ShardingAttr> final;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      Value arg = func.getArgument(i);
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type)
        continue;
      // Only state the runtime keeps per rank is stored split; token ids and
      // the step count are whole on every rank (users slice them).
      SmallVector<SmallVector<int16_t>> dims(type.getRank());
      auto role = func.getArgAttrOfType<StringAttr>(i, llm::kRoleAttr);
      bool splittable =
          !argParamName(func, i).empty() ||
          (role && (role.getValue() == "adam_m" || role.getValue() == "adam_v"));
      const ValueState &s = p.of(arg);
      if (splittable)
        for (auto [d, dim] : llvm::enumerate(s))
          dims[d] = dim.axes;
      auto attr = ShardingAttr::get(func.getContext(), dims);
      final[arg] = attr;
      func.setArgAttr(i, dist::kShardingAttr, attr);
    }
    for (Operation *op : ops)
      finalize(op, p, final);

    // 4. Updated state goes back into its argument's buffer: a new_param /
    //    new_adam_m / new_adam_v result must come back with the sharding of
    //    the argument it replaces (ZeRO's sliced AdamW: an all-gather).
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    SmallVector<Attribute> needs(
        ret->getAttrOfType<ArrayAttr>(dist::kOperandsAttr).getValue());
    for (unsigned r = 0; r < func.getNumResults(); ++r) {
      StringRef role = resultRole(func, r);
      if (!role.consume_front("new_"))
        continue;
      StringRef param = resultParam(func, r);
      for (unsigned i = 0; i < func.getNumArguments(); ++i) {
        auto argRole = func.getArgAttrOfType<StringAttr>(i, llm::kRoleAttr);
        if (argParamName(func, i) == param && argRole &&
            argRole.getValue() == role)
          if (auto s = func.getArgAttrOfType<ShardingAttr>(
                  i, dist::kShardingAttr))
            needs[r] = s;
      }
    }
    ret->setAttr(dist::kOperandsAttr, ArrayAttr::get(func.getContext(), needs));
  }
}
