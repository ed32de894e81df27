//===- LlmCost.cpp - Cost estimates of the llm ops ------------------------===//
//
// FLOP counts for CostModelOpInterface, on the types as they are (per rank
// after partitioning). Matmuls count 2 flops per multiply-add; causal
// attention counts the matmul work of the lower triangle (S(S+1)/2 scores
// per head), its backward pass 2.5x that (the flash-attention recompute of
// the scores plus four gradient products). Normalisations, the loss and
// the optimizer use small per-element constants: they matter for bytes,
// not flops.
//
//===----------------------------------------------------------------------===//
#include "dialects/llm/LlmOps.h"

using namespace mlir;
using namespace llamac::llm;

static int64_t numel(Value v) {
  return cast<RankedTensorType>(v.getType()).getNumElements();
}
static ArrayRef<int64_t> dims(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

int64_t llamac::llm::elementwiseFlops(Operation *op) {
  int64_t most = 0;
  for (Value r : op->getResults())
    if (isa<RankedTensorType>(r.getType()))
      most = std::max(most, numel(r));
  return most;
}

double llamac::llm::estimateSeconds(Operation *op) {
  constexpr double kPeakFlops = 100e12, kPeakBytesPerSecond = 2e12;
  auto cost = dyn_cast<CostModelOpInterface>(op);
  if (!cost)
    return 0;
  return std::max(double(cost.estimateFlops()) / kPeakFlops,
                  double(cost.estimateBytes()) / kPeakBytesPerSecond);
}

int64_t llamac::llm::typeBytes(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape())
    return 0;
  return t.getNumElements() *
         std::max<int64_t>(1, t.getElementTypeBitWidth() / 8);
}

int64_t llamac::llm::tensorBytes(Operation *op) {
  auto bytes = [](Value v) { return typeBytes(v.getType()); };
  int64_t total = 0;
  for (Value v : op->getOperands())
    total += bytes(v);
  for (Value v : op->getResults())
    total += bytes(v);
  return total;
}

/// 2 * M * N * K for y[M, N] = x[M, K] w[N, K]^T and its two gradients.
static int64_t matmulFlops(Value rowsOf, int64_t n, int64_t k,
                           int64_t lastDim) {
  return 2 * (numel(rowsOf) / lastDim) * n * k;
}

int64_t LinearOp::estimateFlops() {
  auto w = dims(getWeight());
  return matmulFlops(getX(), w[0], w[1], w[1]);
}
int64_t LinearGradInputOp::estimateFlops() {
  auto w = dims(getWeight());
  return matmulFlops(getGrad(), w[0], w[1], w[0]);
}
int64_t LinearGradWeightOp::estimateFlops() {
  auto w = dims(getResult());
  return matmulFlops(getGrad(), w[0], w[1], w[0]);
}

/// QK^T and PV over the causal lower triangle: 2 * 2 * B * H * Dh *
/// S(S+1)/2 flops.
static int64_t causalAttentionFlops(Value q) {
  auto s = dims(q); // [B, S, H, Dh]
  return 2 * s[0] * s[2] * s[3] * s[1] * (s[1] + 1);
}
int64_t AttentionOp::estimateFlops() { return causalAttentionFlops(getQ()); }
int64_t AttentionGradOp::estimateFlops() {
  return causalAttentionFlops(getQ()) * 5 / 2;
}

int64_t RmsNormOp::estimateFlops() { return 4 * numel(getX()); }
int64_t RmsNormGradOp::estimateFlops() { return 8 * numel(getX()); }
int64_t RopeOp::estimateFlops() { return 3 * numel(getX()); }
int64_t RopeGradOp::estimateFlops() { return 3 * numel(getGrad()); }
int64_t SwigluOp::estimateFlops() { return 5 * numel(getGate()); }
int64_t SwigluGradOp::estimateFlops() { return 10 * numel(getGate()); }
int64_t CrossEntropyOp::estimateFlops() { return 4 * numel(getLogits()); }
int64_t CrossEntropyGradOp::estimateFlops() { return 4 * numel(getLogits()); }
int64_t AdamWOp::estimateFlops() { return 12 * numel(getParam()); }

// A reshape is a view of its operand: no work, no data moved.
int64_t ReshapeOp::estimateFlops() { return 0; }
int64_t ReshapeOp::estimateBytes() { return 0; }
