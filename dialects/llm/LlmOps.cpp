//===- LlmOps.cpp - Verifiers of the llm ops -------------------------------===//
//
// Each verifier states the op's shape and dtype rules. Messages name the
// values involved so that a user can fix the IR without reading this file.
//
//===----------------------------------------------------------------------===//
#include "dialects/llm/LlmOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace llamac::llm;

#define GET_OP_CLASSES
#include "dialects/llm/LlmOps.cpp.inc"

std::string llamac::llm::formatNumber(double v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

static RankedTensorType tensorOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Prints a shape as `2x8x64` for diagnostics.
static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::interleave(shape, os, "x");
  if (shape.empty())
    os << "scalar";
  return s;
}

/// Memory planning needs every size at compile time, so all llm tensors are
/// statically shaped.
static LogicalResult verifyStatic(Operation *op) {
  for (Type t : llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes()))
    if (auto rt = dyn_cast<RankedTensorType>(t); rt && !rt.hasStaticShape())
      return op->emitOpError("requires statically shaped tensors, got ") << t;
  return success();
}

static LogicalResult expectShape(Operation *op, StringRef what, Value v,
                                 ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> got = tensorOf(v).getShape();
  if (got != expected)
    return op->emitOpError() << what << " must have shape "
                             << shapeStr(expected) << ", got "
                             << shapeStr(got);
  return success();
}

static LogicalResult expectSameType(Operation *op, StringRef what, Value v,
                                    Type expected) {
  if (v.getType() != expected)
    return op->emitOpError() << what << " must have type " << expected
                             << ", got " << v.getType();
  return success();
}

static LogicalResult expectPositive(Operation *op, StringRef name, double v) {
  if (!(v > 0))
    return op->emitOpError() << "attribute '" << name
                             << "' must be positive, got " << formatNumber(v);
  return success();
}

static SmallVector<int64_t> appendDim(ArrayRef<int64_t> shape, int64_t d) {
  SmallVector<int64_t> r(shape);
  r.push_back(d);
  return r;
}

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto table = tensorOf(getTable());
  if (table.getRank() != 2)
    return emitOpError("table must be [vocab, hidden], got rank ")
           << table.getRank();
  if (failed(expectShape(*this, "result", getResult(),
                         appendDim(tensorOf(getIds()).getShape(),
                                   table.getDimSize(1)))))
    return failure();
  if (tensorOf(getResult()).getElementType() != table.getElementType())
    return emitOpError("result element type must match the table's ")
           << table.getElementType();
  return success();
}

LogicalResult RmsNormOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto x = tensorOf(getX());
  if (x.getRank() < 1)
    return emitOpError("input must have rank >= 1");
  if (failed(expectShape(*this, "weight", getWeight(), {x.getShape().back()})) ||
      failed(expectSameType(*this, "result", getResult(), x)))
    return failure();
  return expectPositive(*this, "eps", getEps().convertToDouble());
}

/// Linear-layer result element types: the input's, or f32 when a
/// low-precision GEMM accumulates and writes in fp32.
static bool isLinearResultElementType(Type result, Type input) {
  return result == input || result.isF32();
}

LogicalResult LinearOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto x = tensorOf(getX());
  auto w = tensorOf(getWeight());
  if (w.getRank() != 2)
    return emitOpError("weight must be [out, in], got rank ") << w.getRank();
  if (x.getRank() < 1 || x.getShape().back() != w.getDimSize(1))
    return emitOpError("input feature size ")
           << (x.getRank() ? x.getShape().back() : 0)
           << " does not match weight in-features " << w.getDimSize(1);
  if (x.getElementType() != w.getElementType())
    return emitOpError("input and weight element types differ: ")
           << x.getElementType() << " vs " << w.getElementType();
  SmallVector<int64_t> expected(x.getShape().drop_back());
  expected.push_back(w.getDimSize(0));
  if (failed(expectShape(*this, "result", getResult(), expected)))
    return failure();
  if (!isLinearResultElementType(tensorOf(getResult()).getElementType(),
                                 x.getElementType()))
    return emitOpError("result element type must be the input's or f32");
  return success();
}

/// Shared by rope and rope_grad.
static LogicalResult verifyRope(Operation *op, Value x, Value result,
                                double theta) {
  if (failed(verifyStatic(op)))
    return failure();
  auto t = tensorOf(x);
  if (t.getRank() != 4)
    return op->emitOpError("input must be [batch, seq, heads, head_dim], got "
                           "rank ")
           << t.getRank();
  if (t.getDimSize(3) % 2 != 0)
    return op->emitOpError("head_dim must be even, got ") << t.getDimSize(3);
  if (failed(expectSameType(op, "result", result, t)))
    return failure();
  return expectPositive(op, "theta", theta);
}

LogicalResult RopeOp::verify() {
  return verifyRope(*this, getX(), getResult(), getTheta().convertToDouble());
}

LogicalResult RopeGradOp::verify() {
  return verifyRope(*this, getGrad(), getResult(),
                    getTheta().convertToDouble());
}

/// Shared by attention and attention_grad: q [B,S,H,D], k and v [B,S,KV,D].
static LogicalResult verifyAttentionOperands(Operation *op, Value q, Value k,
                                             Value v, Value lse,
                                             double scale) {
  if (failed(verifyStatic(op)))
    return failure();
  auto qt = tensorOf(q), kt = tensorOf(k);
  if (qt.getRank() != 4 || kt.getRank() != 4)
    return op->emitOpError(
        "q, k and v must be [batch, seq, heads, head_dim]");
  if (failed(expectSameType(op, "v", v, kt)))
    return failure();
  if (qt.getDimSize(0) != kt.getDimSize(0) ||
      qt.getDimSize(1) != kt.getDimSize(1) ||
      qt.getDimSize(3) != kt.getDimSize(3))
    return op->emitOpError("k shape ")
           << shapeStr(kt.getShape()) << " is not compatible with q shape "
           << shapeStr(qt.getShape());
  if (qt.getElementType() != kt.getElementType())
    return op->emitOpError("q and k element types differ");
  int64_t heads = qt.getDimSize(2), kvHeads = kt.getDimSize(2);
  if (kvHeads == 0 || heads % kvHeads != 0)
    return op->emitOpError("number of query heads ")
           << heads << " is not a multiple of kv heads " << kvHeads;
  if (failed(expectShape(op, "lse", lse,
                         {qt.getDimSize(0), heads, qt.getDimSize(1)})))
    return failure();
  return expectPositive(op, "scale", scale);
}

LogicalResult AttentionOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQ(), getK(), getV(), getLse(),
                                     getScale().convertToDouble())))
    return failure();
  return expectSameType(*this, "output", getOut(), getQ().getType());
}

LogicalResult SwigluOp::verify() {
  if (failed(verifyStatic(*this)) ||
      failed(expectSameType(*this, "up", getUp(), getGate().getType())) ||
      failed(expectSameType(*this, "result", getResult(), getGate().getType())))
    return failure();
  return success();
}

LogicalResult AddOp::verify() {
  if (failed(verifyStatic(*this)) ||
      failed(expectSameType(*this, "rhs", getRhs(), getLhs().getType())) ||
      failed(expectSameType(*this, "result", getResult(), getLhs().getType())))
    return failure();
  return success();
}

LogicalResult ReshapeOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto in = tensorOf(getX()), out = tensorOf(getResult());
  if (in.getNumElements() != out.getNumElements())
    return emitOpError("cannot reshape ")
           << in.getNumElements() << " elements into "
           << shapeStr(out.getShape()) << " (" << out.getNumElements()
           << " elements)";
  if (in.getElementType() != out.getElementType())
    return emitOpError("reshape cannot change the element type");
  return success();
}

static LogicalResult verifyLogitsTargets(Operation *op, Value logits,
                                         Value targets, int64_t normalizer) {
  if (failed(verifyStatic(op)))
    return failure();
  auto l = tensorOf(logits);
  if (l.getRank() < 2)
    return op->emitOpError("logits must have rank >= 2, got ") << l.getRank();
  if (failed(expectShape(op, "targets", targets, l.getShape().drop_back())))
    return failure();
  if (normalizer <= 0)
    return op->emitOpError("attribute 'normalizer' must be positive, got ")
           << normalizer;
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  return verifyLogitsTargets(*this, getLogits(), getTargets(),
                             getNormalizer());
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingGradOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto r = tensorOf(getResult());
  if (r.getRank() != 2)
    return emitOpError("result must be [vocab, hidden], got rank ")
           << r.getRank();
  if (failed(expectShape(*this, "gradient", getGrad(),
                         appendDim(tensorOf(getIds()).getShape(),
                                   r.getDimSize(1)))))
    return failure();
  return success();
}

LogicalResult RmsNormGradOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto x = tensorOf(getX());
  if (x.getRank() < 1)
    return emitOpError("input must have rank >= 1");
  if (failed(expectSameType(*this, "gradient", getGrad(), x)) ||
      failed(expectShape(*this, "weight", getWeight(), {x.getShape().back()})) ||
      failed(expectSameType(*this, "dx", getDx(), x)) ||
      failed(expectSameType(*this, "dweight", getDweight(),
                            getWeight().getType())))
    return failure();
  return expectPositive(*this, "eps", getEps().convertToDouble());
}

LogicalResult LinearGradInputOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto dy = tensorOf(getGrad()), w = tensorOf(getWeight());
  if (w.getRank() != 2)
    return emitOpError("weight must be [out, in], got rank ") << w.getRank();
  if (dy.getRank() < 1 || dy.getShape().back() != w.getDimSize(0))
    return emitOpError("gradient feature size does not match weight "
                       "out-features ")
           << w.getDimSize(0);
  SmallVector<int64_t> expected(dy.getShape().drop_back());
  expected.push_back(w.getDimSize(1));
  return expectShape(*this, "result", getResult(), expected);
}

LogicalResult LinearGradWeightOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto dy = tensorOf(getGrad()), x = tensorOf(getX());
  if (dy.getRank() < 1 || dy.getRank() != x.getRank() ||
      dy.getShape().drop_back() != x.getShape().drop_back())
    return emitOpError("gradient shape ")
           << shapeStr(dy.getShape())
           << " and input shape " << shapeStr(x.getShape())
           << " must agree on all but the last dimension";
  return expectShape(*this, "result", getResult(),
                     {dy.getShape().back(), x.getShape().back()});
}

LogicalResult AttentionGradOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQ(), getK(), getV(), getLse(),
                                     getScale().convertToDouble())))
    return failure();
  Type q = getQ().getType(), k = getK().getType();
  if (failed(expectSameType(*this, "gradient", getGrad(), q)) ||
      failed(expectSameType(*this, "output", getOut(), q)) ||
      failed(expectSameType(*this, "dq", getDq(), q)) ||
      failed(expectSameType(*this, "dk", getDk(), k)) ||
      failed(expectSameType(*this, "dv", getDv(), k)))
    return failure();
  return success();
}

LogicalResult SwigluGradOp::verify() {
  Type t = getGate().getType();
  if (failed(verifyStatic(*this)) ||
      failed(expectSameType(*this, "gradient", getGrad(), t)) ||
      failed(expectSameType(*this, "up", getUp(), t)) ||
      failed(expectSameType(*this, "dgate", getDgate(), t)) ||
      failed(expectSameType(*this, "dup", getDup(), t)))
    return failure();
  return success();
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(verifyLogitsTargets(*this, getLogits(), getTargets(),
                                 getNormalizer())))
    return failure();
  return expectSameType(*this, "result", getResult(), getLogits().getType());
}

//===----------------------------------------------------------------------===//
// Training ops
//===----------------------------------------------------------------------===//

LogicalResult ConstantOp::verify() { return verifyStatic(*this); }

LogicalResult AdamWOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  Type p = getParam().getType();
  if (tensorOf(getGrad()).getShape() != tensorOf(getParam()).getShape())
    return emitOpError("gradient shape ")
           << shapeStr(tensorOf(getGrad()).getShape())
           << " does not match parameter shape "
           << shapeStr(tensorOf(getParam()).getShape());
  if (failed(expectSameType(*this, "exp_avg", getExpAvg(), p)) ||
      failed(expectSameType(*this, "exp_avg_sq", getExpAvgSq(), p)) ||
      failed(expectSameType(*this, "new_param", getNewParam(), p)) ||
      failed(expectSameType(*this, "new_exp_avg", getNewExpAvg(), p)) ||
      failed(expectSameType(*this, "new_exp_avg_sq", getNewExpAvgSq(), p)))
    return failure();
  for (auto [name, beta] : {std::pair<StringRef, double>{"beta1", getBeta1().convertToDouble()},
                            {"beta2", getBeta2().convertToDouble()}})
    if (!(beta >= 0 && beta < 1))
      return emitOpError() << "attribute '" << name
                           << "' must be in [0, 1), got " << formatNumber(beta);
  if (!(getEps().convertToDouble() >= 0))
    return emitOpError("attribute 'eps' must be non-negative, got ")
           << formatNumber(getEps().convertToDouble());
  if (!(getWeightDecay().convertToDouble() >= 0))
    return emitOpError("attribute 'weight_decay' must be non-negative, got ")
           << formatNumber(getWeightDecay().convertToDouble());
  return success();
}

static LogicalResult verifyNonEmpty(Operation *op) {
  if (op->getNumOperands() == 0)
    return op->emitOpError("requires at least one operand");
  return verifyStatic(op);
}

LogicalResult GlobalNormOp::verify() { return verifyNonEmpty(*this); }
LogicalResult AllFiniteOp::verify() { return verifyNonEmpty(*this); }

LogicalResult ClipCoefOp::verify() {
  return expectPositive(*this, "max_norm", getMaxNorm().convertToDouble());
}

LogicalResult ScaleOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  return expectSameType(*this, "result", getResult(), getX().getType());
}

LogicalResult ClipByValueOp::verify() {
  if (failed(verifyStatic(*this)) ||
      failed(expectSameType(*this, "result", getResult(), getX().getType())))
    return failure();
  return expectPositive(*this, "limit", getLimit().convertToDouble());
}

LogicalResult CastOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  return expectShape(*this, "result", getResult(),
                     tensorOf(getX()).getShape());
}

LogicalResult LrScheduleOp::verify() {
  double lr = getLr().convertToDouble(), minLr = getMinLr().convertToDouble();
  int64_t warmup = getWarmupSteps(), decay = getDecaySteps();
  if (!(lr >= 0) || !(minLr >= 0))
    return emitOpError("learning rates must be non-negative, got lr = ")
           << formatNumber(lr) << ", min_lr = " << formatNumber(minLr);
  if (warmup < 0 || decay < 0)
    return emitOpError("step counts must be non-negative, got warmup_steps = ")
           << warmup << ", decay_steps = " << decay;
  if (decay != 0 && decay <= warmup)
    return emitOpError("decay_steps ")
           << decay << " must exceed warmup_steps " << warmup
           << " (or be 0 for no decay)";
  return success();
}

//===----------------------------------------------------------------------===//
// Ops of the partitioned program
//===----------------------------------------------------------------------===//

/// Row statistics are [rows...] = the logits' shape without the last dim.
static LogicalResult expectRowShape(Operation *op, StringRef what, Value v,
                                    Value logits) {
  return expectShape(op, what, v, tensorOf(logits).getShape().drop_back());
}

LogicalResult RowMaxOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  if (tensorOf(getLogits()).getRank() < 1)
    return emitOpError("logits must have rank >= 1");
  return expectRowShape(*this, "result", getResult(), getLogits());
}

LogicalResult RowSumExpOp::verify() {
  if (failed(verifyStatic(*this)) ||
      failed(expectRowShape(*this, "max", getMax(), getLogits())))
    return failure();
  return expectRowShape(*this, "result", getResult(), getLogits());
}

LogicalResult TargetLogitOp::verify() {
  if (failed(verifyLogitsTargets(*this, getLogits(), getTargets(), 1)))
    return failure();
  return expectRowShape(*this, "result", getResult(), getLogits());
}

LogicalResult CrossEntropyFromStatsOp::verify() {
  if (failed(verifyStatic(*this)))
    return failure();
  auto rows = tensorOf(getMax()).getShape();
  if (failed(expectShape(*this, "sumexp", getSumexp(), rows)) ||
      failed(expectShape(*this, "target", getTarget(), rows)))
    return failure();
  if (getNormalizer() <= 0)
    return emitOpError("attribute 'normalizer' must be positive, got ")
           << getNormalizer();
  return success();
}

LogicalResult CrossEntropyGradFromStatsOp::verify() {
  if (failed(verifyLogitsTargets(*this, getLogits(), getTargets(),
                                 getNormalizer())) ||
      failed(expectRowShape(*this, "max", getMax(), getLogits())) ||
      failed(expectRowShape(*this, "sumexp", getSumexp(), getLogits())))
    return failure();
  return expectSameType(*this, "result", getResult(), getLogits().getType());
}

LogicalResult SumSquaresOp::verify() { return verifyNonEmpty(*this); }
LogicalResult SqrtOp::verify() { return success(); }
