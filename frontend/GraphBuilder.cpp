//===- GraphBuilder.cpp - LLaMA config -> llm training graph --------------===//
#include "frontend/GraphBuilder.h"

#include "dialects/llm/LlmOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <cmath>

using namespace mlir;
using namespace llamac;
using namespace llamac::llm;

namespace {

/// Emits one op after another into @train_step; names each op's location
/// after the HF module it implements, so IR dumps and traces read like the
/// model.
class Emitter {
public:
  Emitter(MLIRContext &ctx, const LlamaConfig &c, const GraphShape &s)
      : b(&ctx), config(c), shape(s), f32(b.getF32Type()) {}

  OwningOpRef<ModuleOp> build();

private:
  RankedTensorType t(ArrayRef<int64_t> dims, Type elt = {}) {
    return RankedTensorType::get(dims, elt ? elt : f32);
  }
  Location at(const std::string &name) {
    return NameLoc::get(b.getStringAttr(name));
  }
  Value param(const std::string &name) { return params.lookup(name); }
  Value linear(Value x, const std::string &w, int64_t out);
  Value attentionBlock(Value h, const std::string &prefix);
  Value mlpBlock(Value h, const std::string &prefix);

  OpBuilder b;
  const LlamaConfig &config;
  const GraphShape &shape;
  Type f32;
  llvm::StringMap<Value> params;
};

} // namespace

Value Emitter::linear(Value x, const std::string &w, int64_t out) {
  auto in = cast<RankedTensorType>(x.getType());
  SmallVector<int64_t> dims(in.getShape().drop_back());
  dims.push_back(out);
  return LinearOp::create(b, at(w), t(dims), x, param(w + ".weight"));
}

Value Emitter::attentionBlock(Value h, const std::string &p) {
  int64_t B = shape.batch, T = shape.seqLen, D = config.hiddenSize;
  int64_t H = config.numAttentionHeads, KV = config.numKeyValueHeads;
  int64_t Q = config.headDim;
  Value n = RmsNormOp::create(b, at(p + "input_layernorm"), t({B, T, D}), h,
                              param(p + "input_layernorm.weight"),
                              b.getF64FloatAttr(config.rmsNormEps));
  std::string a = p + "self_attn.";
  Value q = linear(n, a + "q_proj", H * Q);
  Value k = linear(n, a + "k_proj", KV * Q);
  Value v = linear(n, a + "v_proj", KV * Q);
  q = ReshapeOp::create(b, at(a + "q_proj"), t({B, T, H, Q}), q);
  k = ReshapeOp::create(b, at(a + "k_proj"), t({B, T, KV, Q}), k);
  v = ReshapeOp::create(b, at(a + "v_proj"), t({B, T, KV, Q}), v);
  auto theta = b.getF64FloatAttr(config.ropeTheta);
  auto zero = b.getI64IntegerAttr(0);
  q = RopeOp::create(b, at(a + "rotary_emb"), q.getType(), q, theta, zero);
  k = RopeOp::create(b, at(a + "rotary_emb"), k.getType(), k, theta, zero);
  auto attn = AttentionOp::create(
      b, at(a + "attn"), TypeRange{t({B, T, H, Q}), t({B, H, T})}, q, k, v,
      b.getF64FloatAttr(1.0 / std::sqrt(double(Q))));
  Value o = ReshapeOp::create(b, at(a + "attn"), t({B, T, H * Q}),
                              attn.getOut());
  o = linear(o, a + "o_proj", D);
  return AddOp::create(b, at(p + "residual"), h.getType(), h, o);
}

Value Emitter::mlpBlock(Value h, const std::string &p) {
  int64_t B = shape.batch, T = shape.seqLen, D = config.hiddenSize;
  Value n = RmsNormOp::create(b, at(p + "post_attention_layernorm"),
                              t({B, T, D}), h,
                              param(p + "post_attention_layernorm.weight"),
                              b.getF64FloatAttr(config.rmsNormEps));
  std::string m = p + "mlp.";
  Value gate = linear(n, m + "gate_proj", config.intermediateSize);
  Value up = linear(n, m + "up_proj", config.intermediateSize);
  Value s = SwigluOp::create(b, at(m + "act_fn"), gate.getType(), gate, up);
  Value down = linear(s, m + "down_proj", D);
  return AddOp::create(b, at(p + "residual"), h.getType(), h, down);
}

OwningOpRef<ModuleOp> Emitter::build() {
  int64_t B = shape.batch, T = shape.seqLen, D = config.hiddenSize;
  int64_t V = config.vocabSize;
  OwningOpRef<ModuleOp> module = ModuleOp::create(b.getUnknownLoc());
  module->getOperation()->setAttr("llm.model",
                                  b.getStringAttr(config.name));

  // 1. Signature: parameters in canonical order, then tokens and targets.
  std::vector<ParamSpec> specs = parameterSpecs(config);
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  for (const ParamSpec &s : specs) {
    argTypes.push_back(t(s.shape));
    argAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(kParamAttr, b.getStringAttr(s.name)),
         b.getNamedAttr(kRoleAttr, b.getStringAttr("param"))}));
  }
  auto ids = t({B, T}, b.getI32Type());
  for (const char *role : {"tokens", "targets"}) {
    argTypes.push_back(ids);
    argAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr(kRoleAttr, b.getStringAttr(role))}));
  }
  auto funcType = b.getFunctionType(argTypes, {t({})});
  b.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(b, b.getUnknownLoc(), "train_step",
                                   funcType);
  func.setAllArgAttrs(argAttrs);
  func.setResultAttrs(0, b.getDictionaryAttr(
                             {b.getNamedAttr(kRoleAttr, b.getStringAttr("loss"))}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  for (auto [i, s] : llvm::enumerate(specs))
    params[s.name] = entry->getArgument(i);
  Value tokens = entry->getArgument(specs.size());
  Value targets = entry->getArgument(specs.size() + 1);

  // 2. Embedding, decoder layers, final norm.
  Value h = EmbeddingOp::create(b, at("model.embed_tokens"), t({B, T, D}),
                                param("model.embed_tokens.weight"), tokens,
                                /*shard_axes=*/nullptr);
  for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    h = attentionBlock(h, p);
    h = mlpBlock(h, p);
  }
  h = RmsNormOp::create(b, at("model.norm"), t({B, T, D}), h,
                        param("model.norm.weight"),
                        b.getF64FloatAttr(config.rmsNormEps));

  // 3. LM head (the embedding when tied) and the mean cross-entropy.
  Value head = config.tieWordEmbeddings ? param("model.embed_tokens.weight")
                                        : param("lm_head.weight");
  Value logits =
      LinearOp::create(b, at("lm_head"), t({B, T, V}), h, head);
  Value loss = CrossEntropyOp::create(
      b, at("loss"), t({}), logits, targets,
      b.getI64IntegerAttr(shape.globalTokens ? shape.globalTokens : B * T));
  func::ReturnOp::create(b, at("loss"), loss);
  return module;
}

OwningOpRef<ModuleOp> llamac::buildForwardGraph(MLIRContext &ctx,
                                                const LlamaConfig &config,
                                                const GraphShape &shape) {
  return Emitter(ctx, config, shape).build();
}
