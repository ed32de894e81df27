//===- LlamaConfig.h - LLaMA model configuration -----------------*- C++ -*-===//
//
// The model hyper-parameters of a Hugging Face `LlamaConfig` (DESIGN.md A1),
// parsed from config.json or taken from a built-in preset. Shared by the
// compiler (graph building) and the runtime (checkpoints, --init checks), so
// it depends on nothing but nlohmann::json.
//
// Fields that would change the math and that llamac does not implement
// (rope_scaling, attention_bias, mlp_bias, a hidden_act other than silu,
// attention dropout) are rejected with an error naming the field, never
// ignored.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_MODEL_LLAMACONFIG_H
#define LLAMAC_RUNTIME_MODEL_LLAMACONFIG_H

#include <cstdint>
#include <string>
#include <vector>

namespace llamac {

struct LlamaConfig {
  std::string name = "custom";
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0;
  int64_t numHiddenLayers = 0;
  int64_t vocabSize = 0;
  int64_t headDim = 0; ///< hidden_size / heads unless config.json says so.
  int64_t maxPositionEmbeddings = 2048;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  double initializerRange = 0.02;
  bool tieWordEmbeddings = false;

  /// Parses HF config.json text. On failure returns false and sets `error` to
  /// one line naming the field, the value and what was expected.
  static bool fromJson(const std::string &text, const std::string &source,
                       LlamaConfig &out, std::string &error);
  /// Reads and parses a config.json file.
  static bool fromFile(const std::string &path, LlamaConfig &out,
                       std::string &error);
  /// A built-in preset by name (see presetNames()).
  static bool fromPreset(const std::string &name, LlamaConfig &out);
  /// A preset name or a path to config.json.
  static bool load(const std::string &nameOrPath, LlamaConfig &out,
                   std::string &error);
  static std::vector<std::string> presetNames();

  /// Checks sizes and divisibility; sets `error` on failure.
  bool validate(std::string &error) const;
  /// HF config.json text for checkpoints (model_type "llama").
  std::string toJson() const;

  int64_t qSize() const { return numAttentionHeads * headDim; }
  int64_t kvSize() const { return numKeyValueHeads * headDim; }
  /// Parameters of one decoder layer.
  int64_t layerParameters() const;
  /// All parameters, counting a tied embedding once.
  int64_t numParameters() const;
  /// Parameters excluding the token embedding (the LM head counts when it
  /// is not tied): the N of the 6N FLOPs/token convention.
  int64_t nonEmbeddingParameters() const;
  /// Training FLOPs per token: 6N + 12 * L * H * Q * T (DESIGN.md A6).
  double flopsPerToken(int64_t seqLen) const;
};

/// One parameter tensor with its HF name and shape, in the canonical order
/// used by the plan, the checkpoints and --init.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const;
};
std::vector<ParamSpec> parameterSpecs(const LlamaConfig &config);

} // namespace llamac

#endif // LLAMAC_RUNTIME_MODEL_LLAMACONFIG_H
