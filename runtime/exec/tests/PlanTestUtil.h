//===- PlanTestUtil.h - Small plans built in C++ for tests ---------*- C++ -*-===//
//
// ProgramDef collects tensors, arguments, results and instructions the way
// the compiler's serializer would, and buildPlan() turns a PlanDef into plan
// bytes with the FlatBuffers builder. Fields are public so that tests can
// break a valid plan in one place.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_TESTS_PLANTESTUTIL_H
#define LLAMAC_RUNTIME_EXEC_TESTS_PLANTESTUTIL_H

#include "exec/PlanLoader.h"
#include "model/LlamaConfig.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace llamac {
namespace exec {
namespace test {

using plan::DType;
using plan::Storage;

struct TensorDef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Storage storage = Storage::Arena;
  int64_t offset = 0;
};
struct ArgDef {
  std::string role, param;
  int tensor;
  int shardDim = -1;              ///< Arguments only.
  std::vector<int64_t> shardAxes; ///< Arguments only.
};
struct AttrDef {
  std::string name;
  int64_t ival = 0;
  double fval = 0.0;
  std::optional<std::vector<int64_t>> ints; ///< Absent unless set.
  std::optional<std::string> str;           ///< Absent unless set.
};
/// A real-valued attribute.
inline AttrDef R(const std::string &name, double v) { return {name, 0, v}; }
/// An integer attribute.
inline AttrDef I(const std::string &name, int64_t v) { return {name, v, 0.0}; }
/// An integer-list attribute (all_reduce grid_axes).
inline AttrDef L(const std::string &name, std::vector<int64_t> v) {
  return {name, 0, 0.0, std::move(v), std::nullopt};
}
/// A string attribute (all_reduce reduction).
inline AttrDef S(const std::string &name, std::string v) {
  return {name, 0, 0.0, std::nullopt, std::move(v)};
}

struct InstrDef {
  std::string kernel;
  std::vector<int> inputs, outputs;
  std::vector<AttrDef> attrs;
  std::string loc;
  int microbatch = -1;
  plan::Phase phase = plan::Phase::None;
};

inline int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

struct ProgramDef {
  int rank = 0;
  int stage = 0; ///< The pp coordinate (rank / (dp * tp)).
  std::vector<TensorDef> tensors;
  std::vector<ArgDef> args, results;
  std::vector<InstrDef> instrs;
  int64_t arenaBytes = 0;
  int64_t workspaceBytes = 0;

  /// A new tensor in the arena (64-byte aligned); returns its index.
  int arena(const std::string &name, const std::vector<int64_t> &shape,
            DType dtype = DType::F32) {
    int64_t offset = (arenaBytes + 63) / 64 * 64;
    arenaBytes = offset + numel(shape) * dtypeBytes(dtype);
    tensors.push_back({name, dtype, shape, Storage::Arena, offset});
    return static_cast<int>(tensors.size()) - 1;
  }
  /// A new argument with its tensor; returns the tensor index.
  int arg(const std::string &role, const std::string &param,
          const std::vector<int64_t> &shape, DType dtype = DType::F32) {
    int a = static_cast<int>(args.size());
    tensors.push_back({role + " " + param, dtype, shape, Storage::Argument, a});
    int t = static_cast<int>(tensors.size()) - 1;
    args.push_back({role, param, t});
    return t;
  }
  /// A sharded state argument: `shape` is the local block's shape.
  int shardedArg(const std::string &role, const std::string &param,
                 const std::vector<int64_t> &shape, int shardDim,
                 std::vector<int64_t> shardAxes) {
    int t = arg(role, param, shape);
    args.back().shardDim = shardDim;
    args.back().shardAxes = std::move(shardAxes);
    return t;
  }
  /// A new arena tensor at `elementOffset` f32 elements into arena tensor
  /// `region` (tensors laid out back to back, as the compiler lays out a
  /// gradient bucket); returns its index.
  int within(int region, int64_t elementOffset, const std::string &name,
             const std::vector<int64_t> &shape) {
    tensors.push_back({name, DType::F32, shape, Storage::Arena,
                       tensors[region].offset + elementOffset * 4});
    return static_cast<int>(tensors.size()) - 1;
  }
  /// Another tensor over the storage of tensor `of` (a reshape).
  int view(int of, const std::vector<int64_t> &shape) {
    TensorDef t = tensors[of];
    t.shape = shape;
    tensors.push_back(t);
    return static_cast<int>(tensors.size()) - 1;
  }
  void instr(const std::string &kernel, std::vector<int> ins,
             std::vector<int> outs, std::vector<AttrDef> attrs = {}) {
    instrs.push_back({kernel, std::move(ins), std::move(outs),
                      std::move(attrs), "test"});
  }
  void result(const std::string &role, int tensor,
              const std::string &param = "") {
    results.push_back({role, param, tensor});
  }
};

/// HF config.json of a tiny model: hidden 8, 2 heads of 4, 1 kv head,
/// 1 layer, vocab 16.
inline std::string tinyModelJson(bool tied = false) {
  return std::string(R"({"hidden_size": 8, "intermediate_size": 16,
    "num_attention_heads": 2, "num_key_value_heads": 1,
    "num_hidden_layers": 1, "vocab_size": 16, "rms_norm_eps": 1e-5,
    "initializer_range": 0.02, "tie_word_embeddings": )") +
         (tied ? "true" : "false") + "}";
}

inline std::string tinyTrainJson(int64_t seqLen = 8, int64_t micro = 2,
                                 int64_t global = 2, int64_t microbatches = 1) {
  return R"({"seq_len": )" + std::to_string(seqLen) +
         R"(, "micro_batch_size": )" + std::to_string(micro) +
         R"(, "global_batch_size": )" + std::to_string(global) +
         R"(, "microbatches": )" + std::to_string(microbatches) +
         R"(, "lr": 0.01, "min_lr": 0.001,
           "warmup_steps": 2, "decay_steps": 20, "beta1": 0.9,
           "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
           "clip_grad_norm": 1.0, "clip_grad_value": null})";
}

struct PlanDef {
  uint32_t version = plan::kPlanFormatVersion;
  std::string modelJson = tinyModelJson();
  std::string trainJson = tinyTrainJson();
  int dp = 1, tp = 1, pp = 1;
  std::string precision = "fp32";
  std::vector<ProgramDef> programs;
};

inline std::vector<uint8_t> buildPlan(const PlanDef &def) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::Program>> programs;
  for (const ProgramDef &p : def.programs) {
    std::vector<flatbuffers::Offset<plan::Tensor>> tensors;
    for (const TensorDef &t : p.tensors)
      tensors.push_back(plan::CreateTensorDirect(
          fbb, t.name.c_str(), t.dtype, &t.shape, t.storage, t.offset));
    std::vector<flatbuffers::Offset<plan::Argument>> args;
    for (const ArgDef &a : p.args)
      args.push_back(plan::CreateArgumentDirect(
          fbb, a.role.c_str(), a.param.c_str(), a.tensor, a.shardDim,
          a.shardAxes.empty() ? nullptr : &a.shardAxes));
    std::vector<flatbuffers::Offset<plan::Result>> results;
    for (const ArgDef &r : p.results)
      results.push_back(plan::CreateResultDirect(fbb, r.role.c_str(),
                                                 r.param.c_str(), r.tensor));
    std::vector<flatbuffers::Offset<plan::Instr>> instrs;
    for (const InstrDef &in : p.instrs) {
      std::vector<flatbuffers::Offset<plan::Attr>> attrs;
      for (const AttrDef &a : in.attrs)
        attrs.push_back(plan::CreateAttrDirect(
            fbb, a.name.c_str(), a.ival, a.fval, a.ints ? &*a.ints : nullptr,
            a.str ? a.str->c_str() : nullptr));
      instrs.push_back(plan::CreateInstrDirect(
          fbb, in.kernel.c_str(), &in.inputs, &in.outputs, &attrs,
          in.loc.c_str(), in.microbatch, in.phase));
    }
    programs.push_back(plan::CreateProgramDirect(fbb, p.rank, p.stage, &tensors,
                                                 &args, &results, &instrs,
                                                 p.arenaBytes,
                                                 p.workspaceBytes));
  }
  auto root = plan::CreatePlanDirect(
      fbb, def.version, def.modelJson.c_str(), def.trainJson.c_str(), def.dp,
      def.tp, def.pp, def.precision.c_str(), &programs);
  plan::FinishPlanBuffer(fbb, root);
  return std::vector<uint8_t>(fbb.GetBufferPointer(),
                              fbb.GetBufferPointer() + fbb.GetSize());
}

inline PlanDef singleProgram(const ProgramDef &program) {
  PlanDef def;
  def.programs.push_back(program);
  return def;
}

/// Loads `def`, failing the calling test on error.
inline bool loadDef(const PlanDef &def, LoadedPlan &out, std::string &error) {
  return loadPlanFromBuffer(buildPlan(def), "test.llx", out, error);
}

inline void writeBytes(const std::string &path,
                       const std::vector<uint8_t> &bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char *>(bytes.data()),
          static_cast<std::streamsize>(bytes.size()));
}

/// A fresh directory under /tmp, removed by the destructor.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/llamac-exec-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string &name) const { return path + "/" + name; }
};

/// A program with a `param` argument for every parameter of `config` (and
/// adam moments when `withMoments`); returns the tensor index by name.
inline std::vector<int> addAllParams(ProgramDef &p, const LlamaConfig &config,
                                     bool withMoments) {
  std::vector<int> ids;
  for (const ParamSpec &spec : parameterSpecs(config)) {
    ids.push_back(p.arg("param", spec.name, spec.shape));
    if (withMoments) {
      p.arg("adam_m", spec.name, spec.shape);
      p.arg("adam_v", spec.name, spec.shape);
    }
  }
  return ids;
}

/// The dimension a Megatron-style tensor-parallel plan splits parameter
/// `spec` along: dim 0 (the output) of the column-parallel matrices (q, k,
/// v, gate, up; the embedding and lm_head over the vocabulary), dim 1 (the
/// input) of the row-parallel o_proj and down_proj; -1 for the norm
/// weights, which stay whole.
inline int tensorParallelDim(const ParamSpec &spec) {
  if (spec.shape.size() < 2)
    return -1;
  const bool rowParallel = spec.name.find("o_proj") != std::string::npos ||
                           spec.name.find("down_proj") != std::string::npos;
  return rowParallel ? 1 : 0;
}

/// addAllParams for a program of a plan with `tp` tensor-parallel ranks:
/// every parameter (and its moments) split along tensorParallelDim over the
/// tp grid axis.
inline void addAllParamsSharded(ProgramDef &p, const LlamaConfig &config,
                                int tp, bool withMoments) {
  for (const ParamSpec &spec : parameterSpecs(config)) {
    const int dim = tensorParallelDim(spec);
    std::vector<int64_t> shape = spec.shape;
    for (const char *role : {"param", "adam_m", "adam_v"}) {
      if (!withMoments && std::string(role) != "param")
        continue;
      if (dim < 0) {
        p.arg(role, spec.name, shape);
      } else {
        std::vector<int64_t> local = shape;
        local[dim] /= tp;
        p.shardedArg(role, spec.name, local, dim, {2});
      }
    }
  }
}

/// Block `index` of the `count` blocks that `full` (of shape `shape`) is
/// split into along `dim`, by the index formula (independent of
/// kernels::sliceBlock).
inline std::vector<float> blockOf(const std::vector<float> &full,
                                  const std::vector<int64_t> &shape, int dim,
                                  int count, int index) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i)
    outer *= shape[i];
  for (size_t i = dim + 1; i < shape.size(); ++i)
    inner *= shape[i];
  const int64_t d = shape[dim] / count;
  std::vector<float> out;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = index * d; j < (index + 1) * d; ++j)
      for (int64_t k = 0; k < inner; ++k)
        out.push_back(full[(o * shape[dim] + j) * inner + k]);
  return out;
}

} // namespace test
} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_TESTS_PLANTESTUTIL_H
