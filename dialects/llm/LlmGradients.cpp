//===- LlmGradients.cpp - Gradient rules of the llm ops -------------------===//
//
// Each differentiable op builds its operand gradients from its result
// gradients (GradientOpInterface). The autodiff pass only calls these rules.
// A rule returns null for operands that are not differentiable (ids, targets)
// and does nothing when none of its results reaches the loss.
//
//===----------------------------------------------------------------------===//
#include "dialects/llm/LlmOps.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace llamac::llm;

LogicalResult EmbeddingOp::buildGradient(OpBuilder &b,
                                         ArrayRef<Value> resultGrads,
                                         SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(getNumOperands(), Value());
  if (!resultGrads[0])
    return success();
  operandGrads[0] = EmbeddingGradOp::create(
      b, getLoc(), getTable().getType(), resultGrads[0], getIds(),
      getShardAxesAttr());
  return success();
}

LogicalResult RmsNormOp::buildGradient(OpBuilder &b,
                                       ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(getNumOperands(), Value());
  if (!resultGrads[0])
    return success();
  auto grad = RmsNormGradOp::create(
      b, getLoc(), getX().getType(), getWeight().getType(), resultGrads[0],
      getX(), getWeight(), getEpsAttr());
  operandGrads[0] = grad.getDx();
  operandGrads[1] = grad.getDweight();
  return success();
}

LogicalResult LinearOp::buildGradient(OpBuilder &b, ArrayRef<Value> resultGrads,
                                      SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(getNumOperands(), Value());
  if (!resultGrads[0])
    return success();
  operandGrads[0] = LinearGradInputOp::create(
      b, getLoc(), getX().getType(), resultGrads[0], getWeight());
  operandGrads[1] = LinearGradWeightOp::create(
      b, getLoc(), getWeight().getType(), resultGrads[0], getX());
  return success();
}

LogicalResult RopeOp::buildGradient(OpBuilder &b, ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(1, Value());
  if (!resultGrads[0])
    return success();
  operandGrads[0] =
      RopeGradOp::create(b, getLoc(), getX().getType(), resultGrads[0],
                         getThetaAttr(), getPosOffsetAttr());
  return success();
}

// The rotation is orthogonal, so the gradient of the inverse rotation is the
// forward rotation.
LogicalResult RopeGradOp::buildGradient(OpBuilder &b,
                                        ArrayRef<Value> resultGrads,
                                        SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(1, Value());
  if (!resultGrads[0])
    return success();
  operandGrads[0] =
      RopeOp::create(b, getLoc(), getGrad().getType(), resultGrads[0],
                     getThetaAttr(), getPosOffsetAttr());
  return success();
}

// The log-sum-exp result only feeds the backward pass; only the output's
// gradient matters.
LogicalResult AttentionOp::buildGradient(OpBuilder &b,
                                         ArrayRef<Value> resultGrads,
                                         SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(getNumOperands(), Value());
  if (resultGrads[1])
    return emitOpError("cannot differentiate through the log-sum-exp result");
  if (!resultGrads[0])
    return success();
  auto grad = AttentionGradOp::create(
      b, getLoc(), getQ().getType(), getK().getType(), getV().getType(),
      resultGrads[0], getQ(), getK(), getV(), getOut(), getLse(),
      getScaleAttr());
  operandGrads[0] = grad.getDq();
  operandGrads[1] = grad.getDk();
  operandGrads[2] = grad.getDv();
  return success();
}

LogicalResult SwigluOp::buildGradient(OpBuilder &b, ArrayRef<Value> resultGrads,
                                      SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(getNumOperands(), Value());
  if (!resultGrads[0])
    return success();
  auto grad = SwigluGradOp::create(b, getLoc(), getGate().getType(),
                                   getUp().getType(), resultGrads[0], getGate(),
                                   getUp());
  operandGrads[0] = grad.getDgate();
  operandGrads[1] = grad.getDup();
  return success();
}

LogicalResult AddOp::buildGradient(OpBuilder &, ArrayRef<Value> resultGrads,
                                   SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(2, resultGrads[0]);
  return success();
}

LogicalResult ReshapeOp::buildGradient(OpBuilder &b,
                                       ArrayRef<Value> resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(1, Value());
  if (!resultGrads[0])
    return success();
  operandGrads[0] =
      ReshapeOp::create(b, getLoc(), getX().getType(), resultGrads[0]);
  return success();
}

LogicalResult CrossEntropyOp::buildGradient(
    OpBuilder &b, ArrayRef<Value> resultGrads,
    SmallVectorImpl<Value> &operandGrads) {
  operandGrads.assign(getNumOperands(), Value());
  if (!resultGrads[0])
    return success();
  operandGrads[0] = CrossEntropyGradOp::create(
      b, getLoc(), getLogits().getType(), resultGrads[0], getLogits(),
      getTargets(), getNormalizerAttr());
  return success();
}

LogicalResult CastOp::buildGradient(OpBuilder &b, ArrayRef<Value> resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  // The identity, read back in the operand's precision.
  operandGrads.assign(1, Value());
  if (resultGrads[0])
    operandGrads[0] =
        CastOp::create(b, getLoc(), getX().getType(), resultGrads[0]);
  return success();
}

LogicalResult ScaleOp::buildGradient(OpBuilder &b, ArrayRef<Value> resultGrads,
                                     SmallVectorImpl<Value> &operandGrads) {
  // d(x * s)/dx = s. The factor is a run-time constant (a clip coefficient,
  // a loss scale), never a parameter: it gets no gradient.
  operandGrads.assign(2, Value());
  if (resultGrads[0])
    operandGrads[0] = ScaleOp::create(b, getLoc(), getX().getType(),
                                      resultGrads[0], getFactor());
  return success();
}
