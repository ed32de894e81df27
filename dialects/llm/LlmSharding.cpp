//===- LlmSharding.cpp - Sharding rules of the llm ops --------------------===//
//
// Each op states its factor-based sharding rule (dialects/dist/
// ShardingRule.h); the propagation and partition passes never name an op.
// Ops whose per-rank math depends on the rank (the vocab-parallel embedding
// and cross-entropy) or that need collectives of their own (the global norm)
// also implement partition().
//
//===----------------------------------------------------------------------===//
#include "dialects/llm/LlmOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace llamac;
using namespace llamac::llm;
using dist::FactorKind;
using dist::GridInfo;
using dist::ShardingAttr;
using dist::ShardingRule;

static ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

/// One pass-through factor per dimension of `v`.
static SmallVector<int> factorsFor(ShardingRule &rule, Value v) {
  SmallVector<int> dims;
  for (int64_t size : shapeOf(v))
    dims.push_back(rule.factor(size));
  return dims;
}

/// Every operand and result has the shape of operand 0 (scalars excepted)
/// and dimension d of all of them is one factor.
static ShardingRule elementwise(Operation *op,
                                ArrayRef<unsigned> linearOperands = {}) {
  ShardingRule rule;
  SmallVector<int> dims = factorsFor(rule, op->getOperand(0));
  for (Value v : op->getOperands()) {
    if (shapeOf(v).empty() && !dims.empty())
      rule.scalarOperand();
    else
      rule.operand(dims);
  }
  for (Value v : op->getResults()) {
    if (shapeOf(v).empty() && !dims.empty())
      rule.scalarResult();
    else
      rule.result(dims);
  }
  rule.linearOperands.assign(linearOperands.begin(), linearOperands.end());
  return rule;
}

/// Scalars in, scalars out: nothing to shard.
static ShardingRule scalarRule(Operation *op) {
  ShardingRule rule;
  for (unsigned i = 0; i < op->getNumOperands(); ++i)
    rule.scalarOperand();
  for (unsigned i = 0; i < op->getNumResults(); ++i)
    rule.scalarResult();
  return rule;
}

/// Leading dimensions of `v` (all but the last) as factors.
static SmallVector<int> leadFactors(ShardingRule &rule, Value v) {
  SmallVector<int> dims;
  for (int64_t size : shapeOf(v).drop_back())
    dims.push_back(rule.factor(size));
  return dims;
}

static SmallVector<int> with(ArrayRef<int> dims, int last) {
  SmallVector<int> out(dims);
  out.push_back(last);
  return out;
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

ShardingRule EmbeddingOp::getShardingRule() {
  // result[b, t, d] = sum_v onehot(ids[b, t])[v] * table[v, d]: the
  // vocabulary is a reduction factor (vocab-parallel embedding).
  ShardingRule rule;
  auto table = shapeOf(getTable());
  int v = rule.factor(table[0]), d = rule.factor(table[1]);
  SmallVector<int> lead = factorsFor(rule, getIds());
  rule.operand({v, d});
  rule.operand(lead);
  rule.result(with(lead, d));
  return rule;
}

/// The grid axes of a vocab-parallel table or logits dimension, as the
/// kernels' `shard_axes`; null when that dimension is not split.
static DenseI64ArrayAttr shardAxesAttr(Builder &b, ArrayRef<int16_t> axes) {
  if (axes.empty())
    return {};
  SmallVector<int64_t> list(axes.begin(), axes.end());
  return b.getDenseI64ArrayAttr(list);
}

/// The default partition, plus `shard_axes` naming the axes that split the
/// vocabulary (the local table's rows), when they do.
static LogicalResult cloneWithVocabAxes(Operation *op, OpBuilder &b,
                                        ValueRange local,
                                        ArrayRef<ShardingAttr> results,
                                        const GridInfo &grid,
                                        ArrayRef<int16_t> vocabAxes,
                                        SmallVectorImpl<Value> &out) {
  if (failed(dist::clonePartitioned(op, b, local, results, grid, out)))
    return failure();
  if (DenseI64ArrayAttr axes = shardAxesAttr(b, vocabAxes))
    out.back().getDefiningOp()->setAttr("shard_axes", axes);
  return success();
}

LogicalResult EmbeddingOp::partition(OpBuilder &b, ValueRange local,
                                     ArrayRef<ShardingAttr> operands,
                                     ArrayRef<ShardingAttr> results,
                                     const GridInfo &grid,
                                     SmallVectorImpl<Value> &out) {
  return cloneWithVocabAxes(*this, b, local, results, grid,
                            operands[0].axes(0), out);
}

ShardingRule RmsNormOp::getShardingRule() {
  // Statistics over the hidden dimension: it cannot be split.
  ShardingRule rule;
  SmallVector<int> lead = leadFactors(rule, getX());
  int d = rule.factor(shapeOf(getX()).back(), FactorKind::NeedReplication);
  rule.operand(with(lead, d));
  rule.operand({d});
  rule.result(with(lead, d));
  return rule;
}

ShardingRule LinearOp::getShardingRule() {
  // y[..., n] = sum_k x[..., k] w[n, k]: column-parallel splits n,
  // row-parallel splits k (then y is a partial sum).
  ShardingRule rule;
  SmallVector<int> lead = leadFactors(rule, getX());
  auto w = shapeOf(getWeight());
  int n = rule.factor(w[0]), k = rule.factor(w[1]);
  rule.operand(with(lead, k));
  rule.operand({n, k});
  rule.result(with(lead, n));
  return rule;
}

/// [B, S, H, Dh]: the sequence and the head dimension stay whole (RoPE's
/// angles depend on the position, its rotation pairs the two head halves).
static ShardingRule ropeRule(Value x) {
  ShardingRule rule;
  auto s = shapeOf(x);
  SmallVector<int> dims = {
      rule.factor(s[0]), rule.factor(s[1], FactorKind::NeedReplication),
      rule.factor(s[2]), rule.factor(s[3], FactorKind::NeedReplication)};
  rule.operand(dims);
  rule.result(dims);
  return rule;
}

ShardingRule RopeOp::getShardingRule() { return ropeRule(getX()); }
ShardingRule RopeGradOp::getShardingRule() { return ropeRule(getGrad()); }

/// Causal GQA attention over q [B, S, H, Dh], k/v [B, S, KV, Dh]. The query
/// heads are (kv head, group member), kv head major: splitting the kv heads
/// splits the query heads the same way, so tensor parallelism keeps each
/// query head with its kv head. The sequences (causal mask) and the head
/// dimension stay whole.
struct AttentionFactors {
  int b, s, kvh, g, dh;
};
static AttentionFactors attentionFactors(ShardingRule &rule, Value q,
                                         Value k) {
  auto qs = shapeOf(q), ks = shapeOf(k);
  AttentionFactors f;
  f.b = rule.factor(qs[0]);
  f.s = rule.factor(qs[1], FactorKind::NeedReplication);
  f.kvh = rule.factor(ks[2]);
  f.g = rule.factor(qs[2] / ks[2], FactorKind::NeedReplication);
  f.dh = rule.factor(qs[3], FactorKind::NeedReplication);
  return f;
}
static dist::TensorFactors queryLike(const AttentionFactors &f) {
  return {{f.b}, {f.s}, {f.kvh, f.g}, {f.dh}};
}
static dist::TensorFactors keyLike(const AttentionFactors &f) {
  return {{f.b}, {f.s}, {f.kvh}, {f.dh}};
}
static dist::TensorFactors lseLike(const AttentionFactors &f) {
  return {{f.b}, {f.kvh, f.g}, {f.s}};
}

ShardingRule AttentionOp::getShardingRule() {
  ShardingRule rule;
  AttentionFactors f = attentionFactors(rule, getQ(), getK());
  rule.operands = {queryLike(f), keyLike(f), keyLike(f)};
  rule.results = {queryLike(f), lseLike(f)};
  return rule;
}

ShardingRule AttentionGradOp::getShardingRule() {
  // (grad, q, k, v, out, lse) -> (dq, dk, dv)
  ShardingRule rule;
  AttentionFactors f = attentionFactors(rule, getQ(), getK());
  rule.operands = {queryLike(f), queryLike(f), keyLike(f),
                   keyLike(f),   queryLike(f), lseLike(f)};
  rule.results = {queryLike(f), keyLike(f), keyLike(f)};
  return rule;
}

ShardingRule SwigluOp::getShardingRule() { return elementwise(*this); }

ShardingRule AddOp::getShardingRule() {
  // A sum of partial sums is a partial sum: no reduction needed yet.
  return elementwise(*this, /*linearOperands=*/{0, 1});
}

ShardingRule ReshapeOp::getShardingRule() {
  // Pair up runs of dimensions with equal products. A dimension that merges
  // several is split only through its major factor; the minor ones stay
  // whole (a split minor factor would not be a contiguous block).
  ShardingRule rule;
  auto in = shapeOf(getX()), out = shapeOf(getResult());
  dist::TensorFactors inF(in.size()), outF(out.size());
  size_t i = 0, j = 0;
  auto group = [&](ArrayRef<int64_t> fine, size_t &fi, dist::TensorFactors &
                   fineF, dist::TensorFactors::value_type &coarse,
                   int64_t target) {
    int64_t product = 1;
    bool major = true;
    while (fi < fine.size() && product < target) {
      int f = rule.factor(fine[fi], major ? FactorKind::PassThrough
                                          : FactorKind::NeedReplication);
      major = false;
      fineF[fi].push_back(f);
      coarse.push_back(f);
      product *= fine[fi++];
    }
    return product == target;
  };
  bool clean = true;
  while (clean && (i < in.size() || j < out.size())) {
    if (i < in.size() && in[i] == 1) {
      ++i;
    } else if (j < out.size() && out[j] == 1) {
      ++j;
    } else if (i < in.size() && j < out.size() && in[i] == out[j]) {
      int f = rule.factor(in[i]);
      inF[i++].push_back(f);
      outF[j++].push_back(f);
    } else if (i < in.size() && j < out.size() && in[i] > out[j]) {
      auto &coarse = inF[i];
      clean = group(out, j, outF, coarse, in[i]);
      ++i;
    } else if (i < in.size() && j < out.size()) {
      auto &coarse = outF[j];
      clean = group(in, i, inF, coarse, out[j]);
      ++j;
    } else {
      clean = false;
    }
  }
  if (!clean) {
    // No dimension-wise correspondence: keep everything whole.
    rule = ShardingRule();
    inF.assign(in.size(), {});
    outF.assign(out.size(), {});
    for (size_t d = 0; d < in.size(); ++d)
      inF[d] = {rule.factor(in[d], FactorKind::NeedReplication)};
    for (size_t d = 0; d < out.size(); ++d)
      outF[d] = {rule.factor(out[d], FactorKind::NeedReplication)};
  }
  rule.operands = {inF};
  rule.results = {outF};
  rule.linearOperands = {0};
  return rule;
}

/// Logits [..., V] with targets [...]: rows pass through, the vocabulary is
/// a collective factor (vocab-parallel cross-entropy).
static ShardingRule crossEntropyRule(Value logits, bool withGrad) {
  ShardingRule rule;
  if (withGrad)
    rule.scalarOperand();
  SmallVector<int> lead = leadFactors(rule, logits);
  int v = rule.factor(shapeOf(logits).back(), FactorKind::Collective);
  rule.operand(with(lead, v));
  rule.operand(lead);
  if (withGrad)
    rule.result(with(lead, v));
  else
    rule.scalarResult();
  return rule;
}

ShardingRule CrossEntropyOp::getShardingRule() {
  return crossEntropyRule(getLogits(), /*withGrad=*/false);
}

/// The softmax statistics of vocab-split logits: the global row maximum and
/// sum of exp(x - max), each one all-reduce over the vocabulary's axes.
/// Forward and backward build the same ops, which CSE then shares.
static std::pair<Value, Value> softmaxStats(OpBuilder &b, Location loc,
                                            Value logits,
                                            ArrayRef<int16_t> axes,
                                            const GridInfo &grid) {
  auto rows = RankedTensorType::get(shapeOf(logits).drop_back(),
                                    b.getF32Type());
  Value max = RowMaxOp::create(b, loc, rows, logits);
  max = shard::AllReduceOp::create(b, loc, rows, grid.symbol, axes, max,
                                   shard::ReductionKind::Max);
  Value sum = RowSumExpOp::create(b, loc, rows, logits, max);
  sum = shard::AllReduceOp::create(b, loc, rows, grid.symbol, axes, sum,
                                   shard::ReductionKind::Sum);
  return {max, sum};
}

LogicalResult CrossEntropyOp::partition(OpBuilder &b, ValueRange local,
                                        ArrayRef<ShardingAttr> operands,
                                        ArrayRef<ShardingAttr> results,
                                        const GridInfo &grid,
                                        SmallVectorImpl<Value> &out) {
  ArrayRef<int16_t> axes = operands[0].axes(operands[0].getDims().size() - 1);
  if (axes.empty())
    return dist::clonePartitioned(*this, b, local, results, grid, out);
  // Megatron's vocab-parallel cross-entropy: max, sum-exp and the target
  // logit each reduced over the vocabulary's axes; never the full logits.
  Location loc = getLoc();
  Value logits = local[0], targets = local[1];
  auto [max, sum] = softmaxStats(b, loc, logits, axes, grid);
  Value target = TargetLogitOp::create(b, loc, max.getType(), logits, targets,
                                       shardAxesAttr(b, axes));
  target = shard::AllReduceOp::create(b, loc, max.getType(), grid.symbol,
                                      axes, target, shard::ReductionKind::Sum);
  out.push_back(CrossEntropyFromStatsOp::create(b, loc, getType(), max, sum,
                                                target, getNormalizerAttr()));
  return success();
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

ShardingRule EmbeddingGradOp::getShardingRule() {
  // dtable[v, d] = sum_{b,t} onehot(ids)[v] * grad[b, t, d]: the rows of the
  // batch reduce, the vocabulary passes through to the result.
  ShardingRule rule;
  auto table = shapeOf(getResult());
  int v = rule.factor(table[0]), d = rule.factor(table[1]);
  SmallVector<int> lead = factorsFor(rule, getIds());
  rule.operand(with(lead, d));
  rule.operand(lead);
  rule.result({v, d});
  return rule;
}

LogicalResult EmbeddingGradOp::partition(OpBuilder &b, ValueRange local,
                                         ArrayRef<ShardingAttr> operands,
                                         ArrayRef<ShardingAttr> results,
                                         const GridInfo &grid,
                                         SmallVectorImpl<Value> &out) {
  return cloneWithVocabAxes(*this, b, local, results, grid,
                            results[0].axes(0), out);
}

ShardingRule RmsNormGradOp::getShardingRule() {
  // (grad, x, w) -> (dx, dw): dw sums over the rows.
  ShardingRule rule;
  SmallVector<int> lead = leadFactors(rule, getX());
  int d = rule.factor(shapeOf(getX()).back(), FactorKind::NeedReplication);
  rule.operand(with(lead, d));
  rule.operand(with(lead, d));
  rule.operand({d});
  rule.result(with(lead, d));
  rule.result({d});
  return rule;
}

ShardingRule LinearGradInputOp::getShardingRule() {
  // dx[..., k] = sum_n grad[..., n] w[n, k]
  ShardingRule rule;
  SmallVector<int> lead = leadFactors(rule, getGrad());
  auto w = shapeOf(getWeight());
  int n = rule.factor(w[0]), k = rule.factor(w[1]);
  rule.operand(with(lead, n));
  rule.operand({n, k});
  rule.result(with(lead, k));
  return rule;
}

ShardingRule LinearGradWeightOp::getShardingRule() {
  // dw[n, k] = sum_rows grad[r, n] x[r, k]
  ShardingRule rule;
  SmallVector<int> lead = leadFactors(rule, getGrad());
  auto w = shapeOf(getResult());
  int n = rule.factor(w[0]), k = rule.factor(w[1]);
  rule.operand(with(lead, n));
  rule.operand(with(lead, k));
  rule.result({n, k});
  return rule;
}

ShardingRule SwigluGradOp::getShardingRule() { return elementwise(*this); }

ShardingRule CrossEntropyGradOp::getShardingRule() {
  return crossEntropyRule(getLogits(), /*withGrad=*/true);
}

LogicalResult CrossEntropyGradOp::partition(OpBuilder &b, ValueRange local,
                                            ArrayRef<ShardingAttr> operands,
                                            ArrayRef<ShardingAttr> results,
                                            const GridInfo &grid,
                                            SmallVectorImpl<Value> &out) {
  ArrayRef<int16_t> axes = operands[1].axes(operands[1].getDims().size() - 1);
  if (axes.empty())
    return dist::clonePartitioned(*this, b, local, results, grid, out);
  Location loc = getLoc();
  Value grad = local[0], logits = local[1], targets = local[2];
  auto [max, sum] = softmaxStats(b, loc, logits, axes, grid);
  out.push_back(CrossEntropyGradFromStatsOp::create(
      b, loc, logits.getType(), grad, logits, targets, max, sum,
      getNormalizerAttr(), shardAxesAttr(b, axes)));
  return success();
}

//===----------------------------------------------------------------------===//
// Training ops
//===----------------------------------------------------------------------===//

ShardingRule ConstantOp::getShardingRule() {
  ShardingRule rule;
  rule.result(factorsFor(rule, getResult()));
  return rule;
}

ShardingRule AdamWOp::getShardingRule() {
  // Parameter, gradient and moments are updated element by element.
  ShardingRule rule;
  SmallVector<int> dims = factorsFor(rule, getParam());
  for (int i = 0; i < 4; ++i)
    rule.operand(dims);
  rule.scalarOperand(); // lr
  rule.scalarOperand(); // step
  if (getApply())
    rule.scalarOperand(); // apply
  for (int i = 0; i < 3; ++i)
    rule.result(dims);
  return rule;
}

/// Reductions of all their inputs to one scalar (the global norm, the finite
/// check): every input is read as it is split, and the op's partition()
/// combines the ranks' parts.
static ShardingRule scalarReductionRule(ValueRange inputs) {
  ShardingRule rule;
  for (Value v : inputs) {
    SmallVector<int> dims;
    for (int64_t size : shapeOf(v))
      dims.push_back(rule.factor(size, FactorKind::Collective));
    rule.operand(dims);
  }
  rule.scalarResult();
  return rule;
}

ShardingRule GlobalNormOp::getShardingRule() {
  return scalarReductionRule(getInputs());
}

LogicalResult GlobalNormOp::partition(OpBuilder &b, ValueRange local,
                                      ArrayRef<ShardingAttr> operands,
                                      ArrayRef<ShardingAttr> results,
                                      const GridInfo &grid,
                                      SmallVectorImpl<Value> &out) {
  // Tensors split over the same axes share one sum of squares and one
  // all-reduce; replicated tensors are counted once, locally.
  SmallVector<std::pair<SmallVector<int16_t>, SmallVector<Value>>> groups;
  for (auto [value, sharding] : llvm::zip(local, operands)) {
    SmallVector<int16_t> axes = sharding.shardedAxes();
    llvm::sort(axes);
    auto it = llvm::find_if(groups, [&](auto &g) { return g.first == axes; });
    if (it == groups.end()) {
      groups.push_back({axes, {}});
      it = std::prev(groups.end());
    }
    it->second.push_back(value);
  }
  if (groups.size() == 1 && groups.front().first.empty())
    return dist::clonePartitioned(*this, b, local, results, grid, out);
  Location loc = getLoc();
  Type scalar = getType();
  Value total;
  for (auto &[axes, values] : groups) {
    Value sum = SumSquaresOp::create(b, loc, scalar, values);
    if (!axes.empty())
      sum = shard::AllReduceOp::create(b, loc, scalar, grid.symbol, axes, sum,
                                       shard::ReductionKind::Sum);
    total = total ? AddOp::create(b, loc, scalar, total, sum).getResult()
                  : sum;
  }
  out.push_back(SqrtOp::create(b, loc, scalar, total));
  return success();
}

ShardingRule AllFiniteOp::getShardingRule() {
  return scalarReductionRule(getInputs());
}

LogicalResult AllFiniteOp::partition(OpBuilder &b, ValueRange local,
                                     ArrayRef<ShardingAttr> operands,
                                     ArrayRef<ShardingAttr> results,
                                     const GridInfo &grid,
                                     SmallVectorImpl<Value> &out) {
  // Each rank checks its blocks; one min all-reduce over every grid axis
  // that has more than one rank gives all ranks the same verdict, so they
  // all skip the same steps.
  if (failed(dist::clonePartitioned(*this, b, local, results, grid, out)))
    return failure();
  SmallVector<int16_t> axes;
  for (auto [a, extent] : llvm::enumerate(grid.shape))
    if (extent > 1)
      axes.push_back(static_cast<int16_t>(a));
  if (!axes.empty())
    out.back() = shard::AllReduceOp::create(b, getLoc(), getType(),
                                            grid.symbol, axes, out.back(),
                                            shard::ReductionKind::Min);
  return success();
}

ShardingRule ClipCoefOp::getShardingRule() { return scalarRule(*this); }
ShardingRule LrScheduleOp::getShardingRule() { return scalarRule(*this); }

ShardingRule ScaleOp::getShardingRule() {
  // x * s is linear in x, but partial sums do not pass through: the scaled
  // tensors are gradients whose unscaled values the global norm reduces
  // anyway, so reducing before the scale shares that one reduction.
  return elementwise(*this);
}

ShardingRule ClipByValueOp::getShardingRule() { return elementwise(*this); }
ShardingRule CastOp::getShardingRule() { return elementwise(*this); }
