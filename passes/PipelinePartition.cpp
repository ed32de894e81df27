//===- PipelinePartition.cpp - Pipeline stages (llm-pipeline-partition) ---===//
//
// The single per-rank training step -> one function per pipeline stage, in
// the order of a pipeline schedule. See the pass description in Passes.td;
// the steps below follow it: microbatch and phase of every op, its unit
// (embedding, a layer, the head), the cost-balanced split of the units into
// stages, the transfers between stages, and each stage's function.
//
//===----------------------------------------------------------------------===//
#include "passes/PassUtils.h"
#include "passes/Passes.h"

#include "dialects/dist/DistDialect.h"
#include "dialects/llm/LlmOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringExtras.h"

#include <limits>
#include <map>

#define DEBUG_TYPE "llm-pipeline-partition"

namespace llamac {
#define GEN_PASS_DEF_LLMPIPELINEPARTITION
#include "passes/Passes.h.inc"
} // namespace llamac

using namespace mlir;
using namespace llamac;

namespace {
/// Grid axis of the pipeline (shard.grid @world is pp x dp x tp).
constexpr int16_t kPipelineAxis = 0;

enum class Phase { Step, Forward, Backward };

/// Unit numbers: 0 the embedding, 1..L the layers, L+1 the head. Two
/// special values: an op computed on every stage that needs it (constants,
/// the LR schedule, whatever only depends on such values), and a
/// whole-model reduction computed on every stage.
constexpr int kEverywhere = -1;
constexpr int kReduction = -2;

struct OpInfo {
  int microbatch = -1;
  Phase phase = Phase::Step;
  int unit = kEverywhere;
};

/// A task of a schedule: the ops of one microbatch's forward or backward.
struct Task {
  int microbatch;
  Phase phase;
};

struct LlmPipelinePartitionPass
    : llamac::impl::LlmPipelinePartitionBase<LlmPipelinePartitionPass> {
  using Base::Base;
  void runOnOperation() override;
};
} // namespace

/// The unit of an HF module name, or nullopt for another name ("loss", or
/// one made by a pass).
static std::optional<int> unitOfName(StringRef name, int layers) {
  if (name.starts_with("model.embed_tokens"))
    return 0;
  if (name.starts_with("model.norm") || name.starts_with("lm_head"))
    return layers + 1;
  if (name.consume_front("model.layers.")) {
    unsigned layer;
    if (!name.consumeInteger(10, layer) && int(layer) < layers)
      return int(layer) + 1;
  }
  return std::nullopt;
}

static std::optional<int> unitOfLoc(Location loc, int layers) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return unitOfName(name.getName().getValue(), layers);
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location l : fused.getLocations())
      if (std::optional<int> u = unitOfLoc(l, layers))
        return u;
  if (auto site = dyn_cast<CallSiteLoc>(loc))
    return unitOfLoc(site.getCallee(), layers);
  return std::nullopt;
}

static bool isWholeModelReduction(Operation *op) {
  return isa<llm::GlobalNormOp, llm::SumSquaresOp, llm::AllFiniteOp>(op);
}

/// Stage s's tasks in schedule order (M microbatches, P stages).
static SmallVector<Task> scheduleOf(StringRef schedule, int s, int P, int M) {
  SmallVector<Task> tasks;
  if (schedule == "gpipe") {
    for (int k = 0; k < M; ++k)
      tasks.push_back({k, Phase::Forward});
    for (int k = 0; k < M; ++k)
      tasks.push_back({k, Phase::Backward});
    return tasks;
  }
  int warmup = std::min(P - s - 1, M);
  for (int k = 0; k < warmup; ++k)
    tasks.push_back({k, Phase::Forward});
  for (int k = warmup; k < M; ++k) {
    tasks.push_back({k, Phase::Forward});
    tasks.push_back({k - warmup, Phase::Backward});
  }
  for (int k = M - warmup; k < M; ++k)
    tasks.push_back({k, Phase::Backward});
  return tasks;
}

namespace {
/// The split of units into stages and everything needed to build the
/// stages' functions.
class Partitioner {
public:
  Partitioner(ModuleOp module, func::FuncOp func, int pp, StringRef schedule)
      : module(module), func(func), P(pp), schedule(schedule) {}

  LogicalResult analyze(StringRef split);
  LogicalResult build();

private:
  LogicalResult classify();
  LogicalResult chooseStages(StringRef split);
  int stageOfUnit(int unit) const {
    if (unit == 0)
      return 0;
    if (unit == L + 1)
      return P - 1;
    return stageOfLayer[unit - 1];
  }
  /// The stage of an op of the step (kEverywhere / kReduction as is).
  int stageOf(Operation *op) const {
    int unit = info.lookup(op).unit;
    return unit < 0 ? unit : stageOfUnit(unit);
  }
  /// The stage of a value: its producer's, or for a parameter (or Adam
  /// moment) argument its owner's; other arguments are everywhere.
  int stageOfValue(Value v) const {
    if (Operation *def = v.getDefiningOp())
      return stageOf(def);
    auto arg = cast<BlockArgument>(v);
    std::optional<int> unit =
        unitOfName(argParamName(func, arg.getArgNumber()), L);
    return unit ? stageOfUnit(*unit) : kEverywhere;
  }
  LogicalResult buildStage(int s);

  ModuleOp module;
  func::FuncOp func;
  int P;
  StringRef schedule;
  int L = 0; ///< Transformer layers.
  int M = 1; ///< Microbatches.
  llvm::DenseMap<Operation *, OpInfo> info;
  llvm::DenseMap<Value, int> argMicrobatch;
  SmallVector<int> stageOfLayer;
  /// Per unit: roofline seconds of one step, parameter memory (bytes).
  SmallVector<double> time, memory;
  SmallVector<Operation *> order; ///< The step's ops in program order.
  /// The ops of each (microbatch, phase), in program order.
  std::map<std::pair<int, Phase>, SmallVector<Operation *>> opsOf;
  /// Transfers: (value, receiving stage) -> tag (numbered in program
  /// order); and by value, the (receiving stage, tag) of each send.
  llvm::DenseMap<std::pair<Value, int>, int64_t> transfers;
  llvm::DenseMap<Value, SmallVector<std::pair<int, int64_t>>> sendsOf;
};
} // namespace

/// Microbatch, phase and unit of every op.
LogicalResult Partitioner::classify() {
  Block &body = func.getBody().front();
  // Layers: from the parameter names.
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    StringRef name = argParamName(func, i);
    if (name.consume_front("model.layers.")) {
      unsigned layer;
      if (!name.consumeInteger(10, layer))
        L = std::max(L, int(layer) + 1);
    }
  }
  // Microbatch k's data: the k-th tokens and the k-th targets argument.
  int tokens = 0, targets = 0;
  for (BlockArgument arg : func.getArguments()) {
    auto role = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  llm::kRoleAttr);
    if (role && role.getValue() == "tokens")
      argMicrobatch[arg] = tokens++;
    else if (role && role.getValue() == "targets")
      argMicrobatch[arg] = targets++;
  }
  M = std::max(1, tokens);
  if (tokens != targets || tokens == 0)
    return func.emitError("pipeline parallelism needs one tokens and one "
                          "targets argument per microbatch, got ")
           << tokens << " and " << targets;

  // Microbatch: the latest one an op depends on.
  for (Operation &op : body.without_terminator()) {
    order.push_back(&op);
    OpInfo &i = info[&op];
    for (Value v : op.getOperands()) {
      if (auto it = argMicrobatch.find(v); it != argMicrobatch.end())
        i.microbatch = std::max(i.microbatch, it->second);
      else if (Operation *def = v.getDefiningOp())
        i.microbatch = std::max(i.microbatch, info[def].microbatch);
    }
  }
  // Forward: what the loss depends on; backward: the rest that depends on a
  // microbatch (the optimizer depends on the last one).
  int lossIndex = findResult(func, "loss");
  if (lossIndex < 0)
    return func.emitError("has no loss result; not a training step");
  llvm::SmallPtrSet<Operation *, 32> forward;
  SmallVector<Operation *> work;
  if (Operation *def =
          body.getTerminator()->getOperand(lossIndex).getDefiningOp())
    work.push_back(def);
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    if (!forward.insert(op).second)
      continue;
    for (Value v : op->getOperands())
      if (Operation *def = v.getDefiningOp())
        work.push_back(def);
  }
  for (Operation *op : order) {
    OpInfo &i = info[op];
    i.phase = i.microbatch < 0      ? Phase::Step
              : forward.count(op) ? Phase::Forward
                                  : Phase::Backward;
    opsOf[{i.microbatch, i.phase}].push_back(op);
  }

  // Units.
  for (Operation *op : order) {
    OpInfo &i = info[op];
    if (isWholeModelReduction(op)) {
      i.unit = kReduction;
      continue;
    }
    if (isa<llm::ConstantOp>(op))
      continue; // everywhere
    if (i.microbatch >= 0)
      if (std::optional<int> u = unitOfLoc(op->getLoc(), L)) {
        i.unit = *u;
        continue;
      }
    bool fromParam = false;
    for (Value v : op->getOperands()) {
      auto arg = dyn_cast<BlockArgument>(v);
      if (!arg)
        continue;
      StringRef name = argParamName(func, arg.getArgNumber());
      if (name.empty())
        continue;
      std::optional<int> u = unitOfName(name, L);
      if (!u)
        return op->emitError("parameter '")
               << name << "' belongs to no pipeline unit (embedding, "
               << "model.layers.N, model.norm or lm_head)";
      i.unit = *u;
      fromParam = true;
      break;
    }
    if (fromParam)
      continue;
    int unit = kEverywhere;
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (!def || info[def].unit == kEverywhere ||
          info[def].unit == kReduction)
        continue;
      int u = info[def].unit;
      if (unit == kEverywhere)
        unit = u;
      else
        unit = i.phase == Phase::Forward ? std::max(unit, u)
                                         : std::min(unit, u);
    }
    i.unit = unit;
  }
  return success();
}

/// Stage boundaries: user-given or cost-balanced.
LogicalResult Partitioner::chooseStages(StringRef split) {
  if (L < P)
    return func.emitError("cannot split ")
           << L << " transformer layer" << (L == 1 ? "" : "s") << " into "
           << P << " pipeline stages: each stage needs at least one layer";
  if (M < P)
    func.emitWarning("")
        << M << " microbatch" << (M == 1 ? "" : "es") << " for " << P
        << " pipeline stages: stages idle most of the step (use at least "
        << P << " microbatches, e.g. a smaller --micro-batch-size)";

  // Costs of the units (time) and the memory of their parameters
  // (weights, gradients, Adam moments: arguments, counted with the
  // gradient as one more copy of the weight).
  time.assign(L + 2, 0);
  memory.assign(L + 2, 0);
  for (Operation *op : order) {
    int unit = info[op].unit;
    if (unit >= 0)
      time[unit] += llm::estimateSeconds(op);
  }
  for (BlockArgument arg : func.getArguments()) {
    StringRef name = argParamName(func, arg.getArgNumber());
    if (std::optional<int> u = unitOfName(name, L)) {
      auto role = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                    llm::kRoleAttr);
      int copies = role && role.getValue() == "param" ? 2 : 1;
      memory[*u] += double(copies * llm::typeBytes(arg.getType()));
    }
  }
  SmallVector<int> firsts; // first layer of stages 1..P-1
  if (!split.empty()) {
    SmallVector<StringRef> parts;
    split.split(parts, ',');
    if (int(parts.size()) != P - 1)
      return func.emitError("pipeline split '")
             << split << "' lists " << parts.size() << " boundar"
             << (parts.size() == 1 ? "y" : "ies") << "; " << P
             << " stages need " << P - 1
             << " (the first layer of stages 1.." << P - 1 << ")";
    int prev = 0;
    for (StringRef part : parts) {
      int layer;
      if (part.trim().getAsInteger(10, layer))
        return func.emitError("pipeline split '")
               << split << "': '" << part << "' is not a layer number";
      if (layer <= prev || layer >= L)
        return func.emitError("pipeline split '")
               << split << "': boundaries must increase strictly within [1, "
               << L - 1 << "] so that every stage has a layer, got " << layer;
      firsts.push_back(layer);
      prev = layer;
    }
  } else {
    // best[j][k]: the first k layers in j stages, the slowest stage as
    // (time, memory), compared lexicographically (time within 1e-9).
    using Cost = std::pair<double, double>;
    auto worse = [](Cost a, Cost b) {
      if (std::abs(a.first - b.first) > 1e-9 * std::max(a.first, b.first))
        return a.first > b.first;
      return a.second > b.second;
    };
    auto maxOf = [&](Cost a, Cost b) {
      return Cost{std::max(a.first, b.first), std::max(a.second, b.second)};
    };
    auto stageCost = [&](int first, int end, bool isFirst, bool isLast) {
      Cost c{0, 0};
      for (int l = first; l < end; ++l)
        c.first += time[l + 1], c.second += memory[l + 1];
      if (isFirst)
        c.first += time[0], c.second += memory[0];
      if (isLast)
        c.first += time[L + 1], c.second += memory[L + 1];
      return c;
    };
    const Cost inf{std::numeric_limits<double>::infinity(), 0};
    SmallVector<SmallVector<Cost>> best(P + 1, SmallVector<Cost>(L + 1, inf));
    SmallVector<SmallVector<int>> from(P + 1, SmallVector<int>(L + 1, -1));
    best[0][0] = {0, 0};
    for (int j = 1; j <= P; ++j)
      for (int k = j; k <= L; ++k)
        for (int i = j - 1; i < k; ++i) {
          if (best[j - 1][i].first == inf.first)
            continue;
          Cost c = maxOf(best[j - 1][i], stageCost(i, k, j == 1, j == P));
          if (from[j][k] < 0 || worse(best[j][k], c)) {
            best[j][k] = c;
            from[j][k] = i;
          }
        }
    for (int j = P, k = L; j > 1; --j) {
      k = from[j][k];
      firsts.insert(firsts.begin(), k);
    }
  }
  stageOfLayer.assign(L, 0);
  for (int l = 0, s = 0; l < L; ++l) {
    while (s < P - 1 && l >= firsts[s])
      ++s;
    stageOfLayer[l] = s;
  }
  return success();
}

LogicalResult Partitioner::analyze(StringRef split) {
  if (failed(classify()) || failed(chooseStages(split)))
    return failure();
  // Transfers: every use on a stage of a value produced on another one.
  int64_t tag = 0;
  for (Operation *op : order) {
    int s = stageOf(op);
    if (s < 0)
      continue;
    for (Value v : op->getOperands()) {
      int t = stageOfValue(v);
      if (t < 0 || t == s || transfers.count({v, s}))
        continue;
      if (tag >= dist::kMaxTransferTag)
        return op->emitError("more than ")
               << dist::kMaxTransferTag
               << " values cross pipeline stages in one step";
      sendsOf[v].push_back({s, tag});
      transfers[{v, s}] = tag++;
    }
  }
  // The ops that must run on every stage must only read values of every
  // stage.
  for (Operation *op : order)
    if (stageOf(op) == kEverywhere)
      for (Value v : op->getOperands())
        if (stageOfValue(v) >= 0)
          return op->emitError("reads a value of pipeline stage ")
                 << stageOfValue(v)
                 << " but belongs to no stage (its location names no layer "
                    "and it uses no parameter)";
  return success();
}

static StringRef phaseName(Phase p) {
  return p == Phase::Forward ? "forward" : "backward";
}

/// Records the schedule position of `op` (for the plan's traces and the
/// report).
static void markTask(Operation *op, int microbatch, Phase phase) {
  if (microbatch < 0)
    return;
  Builder b(op->getContext());
  op->setAttr(llm::kMicrobatchAttr, b.getI64IntegerAttr(microbatch));
  op->setAttr(llm::kPhaseAttr, b.getStringAttr(phaseName(phase)));
}

LogicalResult Partitioner::buildStage(int s) {
  MLIRContext *ctx = func.getContext();
  OpBuilder mb(module.getBody(), Block::iterator(func));
  auto stageFunc = func::FuncOp::create(
      mb, func.getLoc(), (func.getName() + "_stage" + Twine(s)).str(),
      FunctionType::get(ctx, func.getArgumentTypes(), {}));
  stageFunc->setAttr(llm::kStageAttr, mb.getI64IntegerAttr(s));
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    stageFunc.setArgAttrs(i, func.getArgAttrDict(i));
  Block *block = stageFunc.addEntryBlock();
  OpBuilder b = OpBuilder::atBlockEnd(block);
  IRMapping map;
  llvm::DenseMap<Value, Value> received; // another stage's values, by recv
  for (auto [from, to] : llvm::zip(func.getArguments(), block->getArguments()))
    map.map(from, to);

  auto f32 = RankedTensorType::get({}, Float32Type::get(ctx));
  auto constant = [&](Location loc, Type type, double value) -> Value {
    return llm::ConstantOp::create(b, loc, type, b.getF64FloatAttr(value));
  };
  auto allReduce = [&](Location loc, Value x, shard::ReductionKind kind) {
    return shard::AllReduceOp::create(b, loc, x.getType(), kWorldGrid,
                                      ArrayRef<int16_t>{kPipelineAxis}, x,
                                      kind)
        .getResult();
  };

  // Values of this stage: mapped, received or (ops of every stage)
  // computed here on first use.
  std::function<Value(Value, Task)> valueOf = [&](Value v, Task at) -> Value {
    int t = stageOfValue(v);
    if (t == s || (isa<BlockArgument>(v) && t == kEverywhere))
      return map.lookup(v);
    if (Value got = received.lookup(v))
      return got;
    if (Value mapped = map.lookupOrNull(v); mapped && !isa<BlockArgument>(v))
      return mapped;
    Operation *def = v.getDefiningOp();
    if (t == kEverywhere) {
      for (Value operand : def->getOperands())
        valueOf(operand, at);
      Operation *clone = b.clone(*def, map);
      (void)clone;
      return map.lookup(v);
    }
    assert(t >= 0 && t != s && "a value of this stage is defined before use");
    Location loc = def ? def->getLoc() : func.getLoc();
    auto recv = dist::RecvOp::create(b, loc, v.getType(), t,
                                     transfers.lookup({v, s}));
    markTask(recv, at.microbatch, at.phase);
    received[v] = recv.getResult();
    return recv.getResult();
  };

  auto emit = [&](Operation *op, Task at) {
    const OpInfo &i = info.lookup(op);
    if (i.unit == kReduction) {
      // This stage's share, then the sum (min) over the pipeline axis.
      SmallVector<Value> local;
      for (Value v : op->getOperands()) {
        int t = stageOfValue(v);
        if (t == s || (t == kEverywhere && s == 0))
          local.push_back(valueOf(v, at));
      }
      Location loc = op->getLoc();
      Value result;
      if (isa<llm::AllFiniteOp>(op)) {
        Value mine = local.empty()
                         ? constant(loc, f32, 1.0)
                         : llm::AllFiniteOp::create(b, loc, f32, local)
                               .getResult();
        result = allReduce(loc, mine, shard::ReductionKind::Min);
      } else {
        Value mine = local.empty()
                         ? constant(loc, f32, 0.0)
                         : llm::SumSquaresOp::create(b, loc, f32, local)
                               .getResult();
        result = allReduce(loc, mine, shard::ReductionKind::Sum);
        if (isa<llm::GlobalNormOp>(op))
          result = llm::SqrtOp::create(b, loc, f32, result);
      }
      map.map(op->getResult(0), result);
      return;
    }
    SmallVector<Value> operands;
    for (Value v : op->getOperands())
      operands.push_back(valueOf(v, at));
    Operation *clone = b.clone(*op, map);
    clone->setOperands(operands);
    markTask(clone, i.microbatch, i.phase);
    for (Value r : op->getResults())
      for (auto [to, tag] : sendsOf.lookup(r)) {
        auto send =
            dist::SendOp::create(b, op->getLoc(), map.lookup(r), to, tag);
        markTask(send, i.microbatch, i.phase);
      }
  };

  // 0. Parameters another stage reads (a tied embedding's weight).
  for (BlockArgument arg : func.getArguments())
    if (stageOfValue(arg) == s)
      for (auto [to, tag] : sendsOf.lookup(arg))
        dist::SendOp::create(b, func.getLoc(), map.lookup(arg), to, tag);
  // 1. Per-step ops (parameter casts), 2. the schedule's tasks. The
  //    whole-model reductions come in the last backward task, in program
  //    order, on every stage alike.
  SmallVector<Task> tasks{{-1, Phase::Step}};
  tasks.append(scheduleOf(schedule, s, P, M));
  for (Task task : tasks)
    for (Operation *op : opsOf[{task.microbatch, task.phase}]) {
      int t = stageOf(op);
      if (t == s || (t == kReduction && task.phase != Phase::Step))
        emit(op, task);
    }

  // 3. Results: the loss summed over the pipeline axis (only the last
  //    stage has it), step-wide scalars, and this stage's updates.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  SmallVector<Value> results;
  SmallVector<DictionaryAttr> resultAttrs;
  Task end{M - 1, Phase::Backward};
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    StringRef role = resultRole(func, i);
    int t = stageOfValue(v);
    Value mine;
    if (role == "loss") {
      Value local = t == s || t == kEverywhere
                        ? valueOf(v, end)
                        : constant(ret.getLoc(), v.getType(), 0.0);
      mine = allReduce(ret.getLoc(), local, shard::ReductionKind::Sum);
    } else if (t == s || t == kEverywhere || t == kReduction) {
      mine = valueOf(v, end);
    } else if (role.starts_with("new_")) {
      continue; // another stage's parameter
    } else {
      return func.emitError("result #")
             << i << " ('" << role << "') is computed on pipeline stage " << t
             << " only; every stage must report it";
    }
    results.push_back(mine);
    resultAttrs.push_back(func.getResultAttrDict(i));
  }
  func::ReturnOp::create(b, ret.getLoc(), results);
  stageFunc.setType(FunctionType::get(ctx, func.getArgumentTypes(),
                                      ValueRange(results).getTypes()));
  for (auto [i, attrs] : llvm::enumerate(resultAttrs))
    if (attrs)
      stageFunc.setResultAttrs(i, attrs);

  // 4. Only the arguments this stage reads.
  llvm::BitVector unused(stageFunc.getNumArguments());
  for (BlockArgument arg : stageFunc.getArguments())
    if (arg.use_empty())
      unused.set(arg.getArgNumber());
  if (failed(stageFunc.eraseArguments(unused)))
    return failure();
  return success();
}

LogicalResult Partitioner::build() {
  // What the split and the schedule were, for the report and the picture.
  Builder b(module.getContext());
  SmallVector<int64_t> firstLayers;
  for (int l = 0; l < L; ++l)
    if (l == 0 || stageOfLayer[l] != stageOfLayer[l - 1])
      firstLayers.push_back(l);
  module->setAttr(
      llm::kPipelineAttr,
      b.getDictionaryAttr(
          {b.getNamedAttr("schedule", b.getStringAttr(schedule)),
           b.getNamedAttr("microbatches", b.getI64IntegerAttr(M)),
           b.getNamedAttr("layers", b.getI64IntegerAttr(L)),
           b.getNamedAttr("first_layers", b.getDenseI64ArrayAttr(firstLayers)),
           b.getNamedAttr("unit_seconds", b.getF64ArrayAttr(time))}));
  for (int s = 0; s < P; ++s)
    if (failed(buildStage(s)))
      return failure();
  func.erase();
  return success();
}

void LlmPipelinePartitionPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (pp < 1) {
    module.emitError("pipeline stages must be positive, got ") << pp;
    return signalPassFailure();
  }
  if (schedule != "gpipe" && schedule != "1f1b") {
    module.emitError("unknown pipeline schedule '")
        << schedule << "': expected gpipe or 1f1b";
    return signalPassFailure();
  }
  if (pp == 1)
    return;
  SmallVector<func::FuncOp> funcs;
  for (auto f : module.getOps<func::FuncOp>())
    if (!f.isExternal())
      funcs.push_back(f);
  if (funcs.size() != 1 || !funcs.front().getBody().hasOneBlock()) {
    module.emitError("pipeline partitioning needs exactly one training step "
                     "function with one block, got ")
        << funcs.size() << " functions";
    return signalPassFailure();
  }
  if (failed(getOrCreateWorldGrid(
          module, {pp.getValue(), dp.getValue(), tp.getValue()})))
    return signalPassFailure();
  Partitioner partitioner(module, funcs.front(), pp, schedule);
  if (failed(partitioner.analyze(split)) || failed(partitioner.build()))
    return signalPassFailure();
}
