//===- LlamaConfig.cpp - LLaMA model configuration ------------------------===//
#include "model/LlamaConfig.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

using json = nlohmann::json;

namespace llamac {
namespace {

struct Preset {
  const char *name;
  int64_t hidden, intermediate, heads, kvHeads, layers, vocab, maxPos;
  double eps, theta;
  bool tied;
};

// Published sizes of the LLaMA families, plus small sizes for tests, the
// default run and the benchmarks.
const Preset kPresets[] = {
    {"llama-7b", 4096, 11008, 32, 32, 32, 32000, 2048, 1e-6, 1e4, false},
    {"llama-13b", 5120, 13824, 40, 40, 40, 32000, 2048, 1e-6, 1e4, false},
    {"llama-33b", 6656, 17920, 52, 52, 60, 32000, 2048, 1e-6, 1e4, false},
    {"llama-65b", 8192, 22016, 64, 64, 80, 32000, 2048, 1e-5, 1e4, false},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 1e-5, 1e4, false},
    {"llama2-13b", 5120, 13824, 40, 40, 40, 32000, 4096, 1e-5, 1e4, false},
    {"llama2-70b", 8192, 28672, 64, 8, 80, 32000, 4096, 1e-5, 1e4, false},
    {"llama3-8b", 4096, 14336, 32, 8, 32, 128256, 8192, 1e-5, 5e5, false},
    {"llama3-70b", 8192, 28672, 64, 8, 80, 128256, 8192, 1e-5, 5e5, false},
    {"llama3-405b", 16384, 53248, 128, 8, 126, 128256, 8192, 1e-5, 5e5, false},
    {"tinyllama-1.1b", 2048, 5632, 32, 4, 22, 32000, 2048, 1e-5, 1e4, false},
    // Benchmark size of issue #4: hidden 256, 4 layers, 8 heads, 4 kv heads.
    {"small", 256, 688, 8, 4, 4, 4096, 1024, 1e-5, 1e4, false},
    // Default run on the embedded corpus.
    {"mini", 128, 344, 4, 2, 4, 512, 512, 1e-5, 1e4, true},
    // Unit and lit tests: two layers, GQA.
    {"tiny", 64, 172, 4, 2, 2, 256, 256, 1e-5, 1e4, false},
};

std::string describe(const json &v) { return v.dump(); }

/// Reads an optional positive integer field.
bool readInt(const json &j, const char *field, int64_t &out, bool required,
             const std::string &source, std::string &error) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (required) {
      error = source + ": missing required field '" + field + "'";
      return false;
    }
    return true;
  }
  if (!it->is_number_integer()) {
    error = source + ": field '" + field + "' must be an integer, got " +
            describe(*it);
    return false;
  }
  out = it->get<int64_t>();
  return true;
}

bool readDouble(const json &j, const char *field, double &out,
                const std::string &source, std::string &error) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null())
    return true;
  if (!it->is_number()) {
    error = source + ": field '" + field + "' must be a number, got " +
            describe(*it);
    return false;
  }
  out = it->get<double>();
  return true;
}

bool readBool(const json &j, const char *field, bool &out,
              const std::string &source, std::string &error) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null())
    return true;
  if (!it->is_boolean()) {
    error = source + ": field '" + field + "' must be true or false, got " +
            describe(*it);
    return false;
  }
  out = it->get<bool>();
  return true;
}

/// Fields that change the math and are not implemented: reject them rather
/// than train a different model than the user asked for.
bool rejectUnsupported(const json &j, const std::string &source,
                       std::string &error) {
  auto fail = [&](const char *field, const std::string &why) {
    error = source + ": field '" + field + "' = " + describe(j.at(field)) +
            " is not supported: " + why;
    return false;
  };
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    return fail("rope_scaling", "llamac implements plain RoPE only");
  if (j.contains("attention_bias") && j["attention_bias"] != false)
    return fail("attention_bias", "llamac's attention projections have no bias");
  if (j.contains("mlp_bias") && j["mlp_bias"] != false)
    return fail("mlp_bias", "llamac's MLP projections have no bias");
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    return fail("hidden_act", "LLaMA uses \"silu\"");
  if (j.contains("attention_dropout") && j["attention_dropout"].is_number() &&
      j["attention_dropout"].get<double>() != 0.0)
    return fail("attention_dropout", "dropout is not implemented");
  if (j.contains("model_type") && j["model_type"] != "llama")
    return fail("model_type", "expected \"llama\"");
  return true;
}

} // namespace

bool LlamaConfig::fromJson(const std::string &text, const std::string &source,
                           LlamaConfig &out, std::string &error) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    error = source + ": malformed JSON";
    return false;
  }
  if (!j.is_object()) {
    error = source + ": expected a JSON object, got " + describe(j);
    return false;
  }
  if (!rejectUnsupported(j, source, error))
    return false;
  LlamaConfig c;
  c.name = source;
  if (!readInt(j, "hidden_size", c.hiddenSize, true, source, error) ||
      !readInt(j, "intermediate_size", c.intermediateSize, true, source,
               error) ||
      !readInt(j, "num_attention_heads", c.numAttentionHeads, true, source,
               error) ||
      !readInt(j, "num_hidden_layers", c.numHiddenLayers, true, source,
               error) ||
      !readInt(j, "vocab_size", c.vocabSize, true, source, error))
    return false;
  c.numKeyValueHeads = c.numAttentionHeads;
  if (!readInt(j, "num_key_value_heads", c.numKeyValueHeads, false, source,
               error) ||
      !readInt(j, "head_dim", c.headDim, false, source, error) ||
      !readInt(j, "max_position_embeddings", c.maxPositionEmbeddings, false,
               source, error) ||
      !readDouble(j, "rms_norm_eps", c.rmsNormEps, source, error) ||
      !readDouble(j, "rope_theta", c.ropeTheta, source, error) ||
      !readDouble(j, "initializer_range", c.initializerRange, source, error) ||
      !readBool(j, "tie_word_embeddings", c.tieWordEmbeddings, source, error))
    return false;
  bool explicitHeadDim = c.headDim != 0;
  if (!explicitHeadDim && c.numAttentionHeads > 0) {
    if (c.hiddenSize % c.numAttentionHeads != 0) {
      error = source + ": hidden_size " + std::to_string(c.hiddenSize) +
              " is not divisible by num_attention_heads " +
              std::to_string(c.numAttentionHeads);
      return false;
    }
    c.headDim = c.hiddenSize / c.numAttentionHeads;
  }
  if (!c.validate(error)) {
    error = source + ": " + error;
    return false;
  }
  out = c;
  return true;
}

bool LlamaConfig::fromFile(const std::string &path, LlamaConfig &out,
                           std::string &error) {
  std::ifstream in(path);
  if (!in) {
    error = path + ": cannot open config file";
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return fromJson(ss.str(), path, out, error);
}

bool LlamaConfig::fromPreset(const std::string &name, LlamaConfig &out) {
  for (const Preset &p : kPresets) {
    if (name != p.name)
      continue;
    LlamaConfig c;
    c.name = p.name;
    c.hiddenSize = p.hidden;
    c.intermediateSize = p.intermediate;
    c.numAttentionHeads = p.heads;
    c.numKeyValueHeads = p.kvHeads;
    c.numHiddenLayers = p.layers;
    c.vocabSize = p.vocab;
    c.headDim = p.hidden / p.heads;
    c.maxPositionEmbeddings = p.maxPos;
    c.rmsNormEps = p.eps;
    c.ropeTheta = p.theta;
    c.tieWordEmbeddings = p.tied;
    out = c;
    return true;
  }
  return false;
}

bool LlamaConfig::load(const std::string &nameOrPath, LlamaConfig &out,
                       std::string &error) {
  if (fromPreset(nameOrPath, out))
    return true;
  std::ifstream probe(nameOrPath);
  if (!probe) {
    std::string names;
    for (const std::string &n : presetNames())
      names += (names.empty() ? "" : ", ") + n;
    error = "'" + nameOrPath +
            "' is neither a preset nor a readable config.json (presets: " +
            names + ")";
    return false;
  }
  return fromFile(nameOrPath, out, error);
}

std::vector<std::string> LlamaConfig::presetNames() {
  std::vector<std::string> names;
  for (const Preset &p : kPresets)
    names.push_back(p.name);
  return names;
}

bool LlamaConfig::validate(std::string &error) const {
  auto positive = [&](const char *field, int64_t v) {
    if (v > 0)
      return true;
    error = std::string("field '") + field + "' must be positive, got " +
            std::to_string(v);
    return false;
  };
  if (!positive("hidden_size", hiddenSize) ||
      !positive("intermediate_size", intermediateSize) ||
      !positive("num_attention_heads", numAttentionHeads) ||
      !positive("num_key_value_heads", numKeyValueHeads) ||
      !positive("num_hidden_layers", numHiddenLayers) ||
      !positive("vocab_size", vocabSize) || !positive("head_dim", headDim) ||
      !positive("max_position_embeddings", maxPositionEmbeddings))
    return false;
  if (numAttentionHeads % numKeyValueHeads != 0) {
    error = "num_attention_heads " + std::to_string(numAttentionHeads) +
            " is not divisible by num_key_value_heads " +
            std::to_string(numKeyValueHeads);
    return false;
  }
  if (headDim % 2 != 0) {
    error = "head_dim " + std::to_string(headDim) +
            " must be even for rotary embeddings";
    return false;
  }
  if (vocabSize > INT32_MAX) {
    error = "vocab_size " + std::to_string(vocabSize) +
            " does not fit 32-bit token ids";
    return false;
  }
  if (!(rmsNormEps > 0) || !(ropeTheta > 0) || !(initializerRange > 0) ||
      !std::isfinite(rmsNormEps) || !std::isfinite(ropeTheta)) {
    error = "rms_norm_eps, rope_theta and initializer_range must be positive "
            "and finite";
    return false;
  }
  return true;
}

std::string LlamaConfig::toJson() const {
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"hidden_size", hiddenSize},
            {"intermediate_size", intermediateSize},
            {"num_attention_heads", numAttentionHeads},
            {"num_key_value_heads", numKeyValueHeads},
            {"num_hidden_layers", numHiddenLayers},
            {"vocab_size", vocabSize},
            {"head_dim", headDim},
            {"max_position_embeddings", maxPositionEmbeddings},
            {"rms_norm_eps", rmsNormEps},
            {"rope_theta", ropeTheta},
            {"initializer_range", initializerRange},
            {"tie_word_embeddings", tieWordEmbeddings},
            {"hidden_act", "silu"},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"rope_scaling", nullptr},
            {"torch_dtype", "float32"}};
  return j.dump(2) + "\n";
}

int64_t LlamaConfig::layerParameters() const {
  int64_t attn = hiddenSize * qSize() * 2 + hiddenSize * kvSize() * 2;
  int64_t mlp = 3 * hiddenSize * intermediateSize;
  return attn + mlp + 2 * hiddenSize;
}

int64_t LlamaConfig::numParameters() const {
  int64_t embed = vocabSize * hiddenSize;
  return embed + (tieWordEmbeddings ? 0 : embed) +
         numHiddenLayers * layerParameters() + hiddenSize;
}

int64_t LlamaConfig::nonEmbeddingParameters() const {
  return numParameters() - vocabSize * hiddenSize;
}

double LlamaConfig::flopsPerToken(int64_t seqLen) const {
  return 6.0 * double(nonEmbeddingParameters()) +
         12.0 * double(numHiddenLayers) * double(numAttentionHeads) *
             double(headDim) * double(seqLen);
}

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::vector<ParamSpec> parameterSpecs(const LlamaConfig &c) {
  std::vector<ParamSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {c.vocabSize, c.hiddenSize}});
  for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {c.hiddenSize}});
    specs.push_back({p + "self_attn.q_proj.weight", {c.qSize(), c.hiddenSize}});
    specs.push_back({p + "self_attn.k_proj.weight", {c.kvSize(), c.hiddenSize}});
    specs.push_back({p + "self_attn.v_proj.weight", {c.kvSize(), c.hiddenSize}});
    specs.push_back({p + "self_attn.o_proj.weight", {c.hiddenSize, c.qSize()}});
    specs.push_back({p + "post_attention_layernorm.weight", {c.hiddenSize}});
    specs.push_back(
        {p + "mlp.gate_proj.weight", {c.intermediateSize, c.hiddenSize}});
    specs.push_back(
        {p + "mlp.up_proj.weight", {c.intermediateSize, c.hiddenSize}});
    specs.push_back(
        {p + "mlp.down_proj.weight", {c.hiddenSize, c.intermediateSize}});
  }
  specs.push_back({"model.norm.weight", {c.hiddenSize}});
  if (!c.tieWordEmbeddings)
    specs.push_back({"lm_head.weight", {c.vocabSize, c.hiddenSize}});
  return specs;
}

} // namespace llamac
