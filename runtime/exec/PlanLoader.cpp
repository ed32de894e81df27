//===- PlanLoader.cpp - Load and verify a plan file ------------------------===//
#include "exec/PlanLoader.h"

#include "exec/KernelTable.h"
#include "exec/ProgramVerifier.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sys/stat.h>
#include <utility>

namespace llamac {
namespace exec {

using plan::DType;
using plan::Storage;

//===----------------------------------------------------------------------===//
// Tensor helpers
//===----------------------------------------------------------------------===//

int64_t dtypeBytes(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::I1:
    return 1;
  }
  return 0;
}

std::string dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::I1:
    return "i1";
  }
  return "dtype(" + std::to_string(static_cast<int>(dtype)) + ")";
}

int64_t numElements(const plan::Tensor &tensor) {
  int64_t n = 1;
  if (const auto *shape = tensor.shape())
    for (int64_t d : *shape)
      n *= d;
  return n;
}

std::string shapeString(const plan::Tensor &tensor) {
  std::string s = "[";
  if (const auto *shape = tensor.shape())
    for (flatbuffers::uoffset_t i = 0; i < shape->size(); ++i)
      s += (i ? ", " : "") + std::to_string(shape->Get(i));
  return s + "]";
}

//===----------------------------------------------------------------------===//
// TrainConfig
//===----------------------------------------------------------------------===//

namespace {

using json = nlohmann::json;

bool readInt(const json &j, const char *field, int64_t &out, bool required,
             const std::string &source, std::string &error) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (!required)
      return true;
    error = source + ": missing required field '" + field + "'";
    return false;
  }
  if (!it->is_number_integer()) {
    error = source + ": field '" + field + "' must be an integer, got " +
            it->dump();
    return false;
  }
  out = it->get<int64_t>();
  return true;
}

bool readReal(const json &j, const char *field, double &out,
              const std::string &source, std::string &error) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null())
    return true;
  if (!it->is_number() || !std::isfinite(it->get<double>())) {
    error = source + ": field '" + field + "' must be a finite number, got " +
            it->dump();
    return false;
  }
  out = it->get<double>();
  return true;
}

/// The "loss_scale" object `j` into `out` (enabled); errors name the field
/// as "loss_scale.<name>".
bool readLossScale(const json &j, const std::string &source,
                   LossScaleConfig &out, std::string &error) {
  LossScaleConfig c;
  c.enabled = true;
  if (!j.is_object()) {
    error = source + ": field 'loss_scale' must be an object or null, got " +
            j.dump();
    return false;
  }
  static const char *const kFields[] = {"mode",
                                        "init",
                                        "growth_factor",
                                        "backoff_factor",
                                        "growth_interval",
                                        "hysteresis",
                                        "min_scale"};
  for (const auto &item : j.items()) {
    bool known = false;
    for (const char *f : kFields)
      known = known || item.key() == f;
    if (!known) {
      error = source + ": unknown field 'loss_scale." + item.key() +
              "' (expected mode, init, growth_factor, backoff_factor, "
              "growth_interval, hysteresis, min_scale)";
      return false;
    }
  }
  auto mode = j.find("mode");
  if (mode != j.end() && !mode->is_null()) {
    if (!mode->is_string() || (*mode != "dynamic" && *mode != "static")) {
      error = source +
              ": field 'loss_scale.mode' must be \"dynamic\" or "
              "\"static\", got " +
              mode->dump();
      return false;
    }
    c.dynamic = *mode == "dynamic";
  }
  const std::string prefix = source + ": field 'loss_scale.";
  auto real = [&](const char *field, double &value, const char *rule,
                  bool (*ok)(double)) {
    if (!readReal(j, field, value, source, error)) {
      error = prefix + field + "' must be a finite number, got " +
              j.at(field).dump();
      return false;
    }
    if (ok(value))
      return true;
    error =
        prefix + field + "' must be " + rule + ", got " + json(value).dump();
    return false;
  };
  auto integer = [&](const char *field, int64_t &value) {
    if (!readInt(j, field, value, false, source, error)) {
      error =
          prefix + field + "' must be an integer, got " + j.at(field).dump();
      return false;
    }
    if (value >= 1)
      return true;
    error = prefix + field + "' must be >= 1, got " + std::to_string(value);
    return false;
  };
  if (!real("init", c.init, "> 0", [](double v) { return v > 0; }) ||
      !real("growth_factor", c.growthFactor, "> 1",
            [](double v) { return v > 1; }) ||
      !real("backoff_factor", c.backoffFactor, "in (0, 1)",
            [](double v) { return v > 0 && v < 1; }) ||
      !real("min_scale", c.minScale, "> 0", [](double v) { return v > 0; }) ||
      !integer("growth_interval", c.growthInterval) ||
      !integer("hysteresis", c.hysteresis))
    return false;
  if (c.dynamic && c.minScale > c.init) {
    error = source + ": field 'loss_scale.min_scale' (" +
            json(c.minScale).dump() + ") must not exceed 'loss_scale.init' (" +
            json(c.init).dump() + ")";
    return false;
  }
  out = c;
  return true;
}

} // namespace

bool TrainConfig::fromJson(const std::string &text, const std::string &source,
                           TrainConfig &out, std::string &error) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = source + ": expected a JSON object";
    return false;
  }
  TrainConfig c;
  if (!readInt(j, "seq_len", c.seqLen, true, source, error) ||
      !readInt(j, "micro_batch_size", c.microBatchSize, true, source, error) ||
      !readInt(j, "global_batch_size", c.globalBatchSize, true, source,
               error) ||
      !readInt(j, "microbatches", c.microbatches, false, source, error) ||
      !readReal(j, "lr", c.lr, source, error) ||
      !readReal(j, "min_lr", c.minLr, source, error) ||
      !readInt(j, "warmup_steps", c.warmupSteps, false, source, error) ||
      !readInt(j, "decay_steps", c.decaySteps, false, source, error) ||
      !readReal(j, "beta1", c.beta1, source, error) ||
      !readReal(j, "beta2", c.beta2, source, error) ||
      !readReal(j, "eps", c.eps, source, error) ||
      !readReal(j, "weight_decay", c.weightDecay, source, error) ||
      !readReal(j, "clip_grad_norm", c.clipGradNorm, source, error) ||
      !readReal(j, "clip_grad_value", c.clipGradValue, source, error))
    return false;
  auto positive = [&](const char *field, int64_t v) {
    if (v > 0)
      return true;
    error = source + ": field '" + field + "' must be positive, got " +
            std::to_string(v);
    return false;
  };
  if (!positive("seq_len", c.seqLen) ||
      !positive("micro_batch_size", c.microBatchSize) ||
      !positive("global_batch_size", c.globalBatchSize) ||
      !positive("microbatches", c.microbatches))
    return false;
  if (c.warmupSteps < 0 || c.decaySteps < 0) {
    error = source + ": warmup_steps and decay_steps must be >= 0, got " +
            std::to_string(c.warmupSteps) + " and " +
            std::to_string(c.decaySteps);
    return false;
  }
  auto precision = j.find("precision");
  if (precision != j.end() && !precision->is_null()) {
    if (!precision->is_string() ||
        (*precision != "fp32" && *precision != "bf16" &&
         *precision != "fp16")) {
      error = source +
              ": field 'precision' must be \"fp32\", \"bf16\" or \"fp16\", "
              "got " +
              precision->dump();
      return false;
    }
    c.precision = precision->get<std::string>();
  }
  auto lossScale = j.find("loss_scale");
  if (lossScale != j.end() && !lossScale->is_null() &&
      !readLossScale(*lossScale, source, c.lossScale, error))
    return false;
  out = c;
  return true;
}

std::string TrainConfig::toJson() const {
  json j = {{"seq_len", seqLen},
            {"micro_batch_size", microBatchSize},
            {"global_batch_size", globalBatchSize},
            {"microbatches", microbatches},
            {"lr", lr},
            {"min_lr", minLr},
            {"warmup_steps", warmupSteps},
            {"decay_steps", decaySteps},
            {"beta1", beta1},
            {"beta2", beta2},
            {"eps", eps},
            {"weight_decay", weightDecay},
            {"clip_grad_norm", clipGradNorm},
            {"clip_grad_value", clipGradValue}};
  if (!precision.empty())
    j["precision"] = precision;
  if (lossScale.enabled)
    j["loss_scale"] = {{"mode", lossScale.dynamic ? "dynamic" : "static"},
                       {"init", lossScale.init},
                       {"growth_factor", lossScale.growthFactor},
                       {"backoff_factor", lossScale.backoffFactor},
                       {"growth_interval", lossScale.growthInterval},
                       {"hysteresis", lossScale.hysteresis},
                       {"min_scale", lossScale.minScale}};
  return j.dump();
}

namespace {

/// The preset whose hyper-parameters equal `config`, else "custom".
std::string presetNameOf(const LlamaConfig &config) {
  for (const std::string &name : LlamaConfig::presetNames()) {
    LlamaConfig p;
    if (!LlamaConfig::fromPreset(name, p))
      continue;
    if (p.hiddenSize == config.hiddenSize &&
        p.intermediateSize == config.intermediateSize &&
        p.numAttentionHeads == config.numAttentionHeads &&
        p.numKeyValueHeads == config.numKeyValueHeads &&
        p.numHiddenLayers == config.numHiddenLayers &&
        p.vocabSize == config.vocabSize && p.headDim == config.headDim &&
        p.tieWordEmbeddings == config.tieWordEmbeddings &&
        p.rmsNormEps == config.rmsNormEps && p.ropeTheta == config.ropeTheta)
      return name;
  }
  return "custom";
}

/// Whether `program` has an argument (`argument`) or a result with `role`.
bool hasRole(const plan::Program &program, bool argument, const char *role) {
  if (argument) {
    if (const auto *args = program.arguments())
      for (const plan::Argument *a : *args)
        if (a->role() && a->role()->str() == role)
          return true;
    return false;
  }
  if (const auto *results = program.results())
    for (const plan::Result *r : *results)
      if (r->role() && r->role()->str() == role)
        return true;
  return false;
}

/// Loss scaling is all or nothing: the scale and its inverse as arguments,
/// the finite check as a result, and the scaler's configuration.
bool checkLossScaling(const plan::Program &program, const TrainConfig &train,
                      const std::string &where, std::string &error) {
  const bool scale = hasRole(program, true, "loss_scale");
  const bool inverse = hasRole(program, true, "inv_loss_scale");
  if (!scale && !inverse) {
    if (!train.lossScale.enabled)
      return true;
    error = where + ": has no 'loss_scale' argument, but train_config_json "
                    "configures 'loss_scale' (the plan was compiled without "
                    "loss scaling)";
    return false;
  }
  const char *missing = !scale     ? "'loss_scale' argument"
                        : !inverse ? "'inv_loss_scale' argument"
                        : !hasRole(program, false, "all_finite")
                            ? "'all_finite' result"
                            : nullptr;
  if (missing) {
    error = where + ": has a '" +
            std::string(scale ? "loss_scale" : "inv_loss_scale") +
            "' argument but no " + missing +
            " (loss scaling needs the loss_scale and inv_loss_scale "
            "arguments and the all_finite result)";
    return false;
  }
  if (!train.lossScale.enabled) {
    error = where + ": has loss_scale arguments, but train_config_json has no "
                    "'loss_scale' object (mode, init, ...) to drive them";
    return false;
  }
  return true;
}

/// One gradient bucket as the ranks of its group must agree on it.
struct BucketPost {
  int64_t id;
  int64_t elements;
};

/// The bucket_all_reduce_start instructions of `program`, in program
/// order, by the mask of their grid axes (verified by verifyProgram).
std::vector<std::vector<BucketPost>> bucketPosts(const plan::Program &program) {
  std::vector<std::vector<BucketPost>> posts(comm::kNumAxisMasks);
  if (!program.instrs())
    return posts;
  for (const plan::Instr *instr : *program.instrs()) {
    const KernelSpec *spec = findKernel(instr->kernel()->c_str());
    if (spec->kernel != Kernel::BucketAllReduceStart)
      continue;
    AttrValues attrs;
    std::string ignored;
    resolveAttrs(*spec, *instr, attrs, ignored);
    comm::AxisMask mask = 0;
    comm::gridAxesMask(attrs.list[0]->data(), attrs.list[0]->size(), mask,
                       ignored);
    int64_t elements = 0;
    for (int32_t t : *instr->inputs())
      elements += numElements(*program.tensors()->Get(t));
    posts[mask].push_back({attrs.integer[2], elements});
  }
  return posts;
}

/// The ranks of a group reduce their buckets one by one in the order they
/// start them (the communication thread serves them in order): every rank
/// of a group must start the same number of buckets over its axes, of the
/// same sizes, in the same order, or the job would hang or mix up buckets.
bool checkBucketOrder(const plan::Plan &p, const std::string &source,
                      std::string &error) {
  const comm::Grid grid{p.pp(), p.dp(), p.tp()};
  std::vector<std::vector<std::vector<BucketPost>>> posts;
  for (const plan::Program *program : *p.programs())
    posts.push_back(bucketPosts(*program));
  auto axesOf = [](comm::AxisMask mask) {
    std::string s;
    for (int a = 0; a < comm::kGridAxes; ++a)
      if (mask & (1u << a))
        s += (s.empty() ? "" : ", ") + std::to_string(a);
    return "[" + s + "]";
  };
  for (int r = 0; r < grid.size(); ++r) {
    for (comm::AxisMask mask = 1; mask < comm::kNumAxisMasks; ++mask) {
      const int q = grid.groupRanks(r, mask).front(); // compared with r
      const std::vector<BucketPost> &mine = posts[r][mask],
                                    &first = posts[q][mask];
      const std::string pair = source + ": programs " + std::to_string(q) +
                               " and " + std::to_string(r) + " (one group " +
                               "over grid axes " + axesOf(mask) + ")";
      const char *rule = " (the ranks of a group must start the same "
                         "buckets in the same order)";
      if (mine.size() != first.size()) {
        error = pair + " start " + std::to_string(first.size()) + " and " +
                std::to_string(mine.size()) + " gradient buckets" + rule;
        return false;
      }
      for (size_t i = 0; i < mine.size(); ++i) {
        if (mine[i].elements == first[i].elements)
          continue;
        error = pair + " differ in their gradient bucket number " +
                std::to_string(i) + " over these axes: bucket " +
                std::to_string(first[i].id) + " of " +
                std::to_string(first[i].elements) + " elements and bucket " +
                std::to_string(mine[i].id) + " of " +
                std::to_string(mine[i].elements) + " elements" + rule;
        return false;
      }
    }
  }
  return true;
}

/// "plan.llx: program 0: instr 3 'send' (loc)".
std::string instrWhere(const std::string &source, int rank,
                       const plan::Instr &instr, int index) {
  return source + ": program " + std::to_string(rank) + ": instr " +
         std::to_string(index) + " '" + instr.kernel()->str() + "'" +
         (instr.loc() && instr.loc()->size() ? " (" + instr.loc()->str() + ")"
                                             : std::string());
}

/// One send or recv of a program: the other stage, the tag, the bytes.
struct Transfer {
  int instr;
  int64_t bytes;
};
/// A program's sends or recvs by (peer stage, tag).
using Transfers = std::map<std::pair<int64_t, int64_t>, Transfer>;

/// The sends and recvs of program `rank` (verified by verifyProgram); a
/// (peer, tag) given twice in one direction is an error: it names one
/// transfer.
bool collectTransfers(const plan::Program &program, const std::string &source,
                      int rank, Transfers &sends, Transfers &recvs,
                      std::string &error) {
  if (!program.instrs())
    return true;
  for (flatbuffers::uoffset_t i = 0; i < program.instrs()->size(); ++i) {
    const plan::Instr &instr = *program.instrs()->Get(i);
    const KernelSpec *spec = findKernel(instr.kernel()->c_str());
    const bool send = spec->kernel == Kernel::Send;
    if (!send && spec->kernel != Kernel::Recv)
      continue;
    AttrValues attrs;
    std::string ignored;
    resolveAttrs(*spec, instr, attrs, ignored);
    const plan::Tensor &t = *program.tensors()->Get(
        send ? instr.inputs()->Get(0) : instr.outputs()->Get(0));
    const auto key = std::make_pair(attrs.integer[0], attrs.integer[1]);
    Transfers &mine = send ? sends : recvs;
    auto [it, added] = mine.insert(
        {key, {static_cast<int>(i), numElements(t) * dtypeBytes(t.dtype())}});
    if (!added) {
      error = instrWhere(source, rank, instr, static_cast<int>(i)) + ": " +
              (send ? "sends to" : "receives from") + " stage " +
              std::to_string(key.first) + " with tag " +
              std::to_string(key.second) + ", as instr " +
              std::to_string(it->second.instr) +
              " does (a tag names one transfer between two stages in each "
              "direction)";
      return false;
    }
  }
  return true;
}

/// Pipeline stages (pp > 1): every program's stage is its rank's pp
/// coordinate; every send of rank (a, d, t) to stage b with tag g has
/// exactly one recv of rank (b, d, t) from stage a with tag g, of the same
/// bytes, and every recv such a send; a parameter (with its moments) lives
/// on one stage, and is sharded (if at all) within it.
bool checkStages(const plan::Plan &p, const std::string &source,
                 std::string &error) {
  const comm::Grid grid{p.pp(), p.dp(), p.tp()};
  const int world = grid.size();
  std::vector<Transfers> sends(world), recvs(world);
  for (int r = 0; r < world; ++r)
    if (!collectTransfers(*p.programs()->Get(r), source, r, sends[r], recvs[r],
                          error))
      return false;
  for (int r = 0; r < world; ++r) {
    const plan::Program &program = *p.programs()->Get(r);
    const std::array<int, comm::kGridAxes> at = grid.coords(r);
    for (const bool isSend : {true, false}) {
      for (const auto &[key, transfer] : isSend ? sends[r] : recvs[r]) {
        std::array<int, comm::kGridAxes> peerAt = at;
        peerAt[comm::kPipelineAxis] = static_cast<int>(key.first);
        const int q = grid.rankAt(peerAt);
        const Transfers &theirs = isSend ? recvs[q] : sends[q];
        auto match = theirs.find({at[comm::kPipelineAxis], key.second});
        const std::string where =
            instrWhere(source, r, *program.instrs()->Get(transfer.instr),
                       transfer.instr) +
            ": " + (isSend ? "sends " : "receives ") +
            std::to_string(transfer.bytes) + " bytes " +
            (isSend ? "to" : "from") + " stage " + std::to_string(key.first) +
            " with tag " + std::to_string(key.second) + ", but program " +
            std::to_string(q) + " (stage " + std::to_string(key.first) + ") ";
        if (match == theirs.end()) {
          error = where + "has no " + (isSend ? "recv" : "send") +
                  " with peer " + std::to_string(at[comm::kPipelineAxis]) +
                  " and tag " + std::to_string(key.second);
          return false;
        }
        if (match->second.bytes != transfer.bytes) {
          error = where + (isSend ? "receives " : "sends ") +
                  std::to_string(match->second.bytes) + " bytes in instr " +
                  std::to_string(match->second.instr) +
                  " (a transfer moves the same bytes on both sides)";
          return false;
        }
      }
    }
  }
  // Each parameter's state on one stage, not split over stages.
  std::map<std::string, std::pair<int, int>> owner; // name -> stage, program
  for (int r = 0; r < world; ++r) {
    const plan::Program &program = *p.programs()->Get(r);
    const int stage = program.stage();
    if (!program.arguments())
      continue;
    for (flatbuffers::uoffset_t a = 0; a < program.arguments()->size(); ++a) {
      const plan::Argument &arg = *program.arguments()->Get(a);
      const std::string role = arg.role()->str();
      if (role != "param" && role != "adam_m" && role != "adam_v")
        continue;
      const std::string where = source + ": program " + std::to_string(r) +
                                ": argument " + std::to_string(a) + " (" +
                                role + " " + arg.param()->str() + ")";
      if (grid.pp > 1 && arg.shard_axes())
        for (int64_t axis : *arg.shard_axes())
          if (axis == comm::kPipelineAxis) {
            error = where + ": is sharded over the pp grid axis 0; a "
                            "parameter lives on one pipeline stage (shard it "
                            "over dp or tp)";
            return false;
          }
      auto [it, added] = owner.insert({arg.param()->str(), {stage, r}});
      if (!added && it->second.first != stage) {
        error = where + ": parameter '" + arg.param()->str() +
                "' is on stage " + std::to_string(stage) + " and on stage " +
                std::to_string(it->second.first) + " (program " +
                std::to_string(it->second.second) +
                "); each parameter and its moments belong to one stage";
        return false;
      }
    }
  }
  return true;
}

/// Printable form of the 4 identifier bytes at `p`.
std::string identifierString(const uint8_t *p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      s += buf;
    }
  }
  return s;
}

} // namespace

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

bool loadPlanFromBuffer(std::vector<uint8_t> bytes, const std::string &source,
                        LoadedPlan &out, std::string &error) {
  // 1. The bytes.
  // Root offset (4) + file identifier (4) + the smallest table.
  constexpr size_t kMinBytes = 16;
  if (bytes.size() < kMinBytes) {
    error = source + ": file is too small (" + std::to_string(bytes.size()) +
            " bytes) to be a llamac plan";
    return false;
  }
  if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    error = source + ": file is too large (" + std::to_string(bytes.size()) +
            " bytes) to be a llamac plan (at most 2 GiB)";
    return false;
  }
  if (!plan::PlanBufferHasIdentifier(bytes.data())) {
    error = source + ": not a llamac plan (file identifier '" +
            identifierString(bytes.data() + 4) + "', expected '" +
            plan::PlanIdentifier() + "')";
    return false;
  }
  flatbuffers::Verifier::Options options;
  options.max_tables = 1u << 30; // A plan of a large model has many tables.
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), options);
  if (!plan::VerifyPlanBuffer(verifier)) {
    error = source + ": corrupted plan (FlatBuffers verification failed)";
    return false;
  }

  // 2. The header.
  const plan::Plan *p = plan::GetPlan(bytes.data());
  if (p->format_version() != plan::kPlanFormatVersion) {
    error = source + ": plan format version " +
            std::to_string(p->format_version()) + ", this runtime reads " +
            std::to_string(plan::kPlanFormatVersion) + "; recompile the plan";
    return false;
  }
  LoadedPlan result;
  if (!p->model_config_json()) {
    error = source + ": missing model_config_json";
    return false;
  }
  if (!LlamaConfig::fromJson(p->model_config_json()->str(),
                             source + ": model_config_json", result.model,
                             error))
    return false;
  // The config JSON carries no name; show the preset it matches.
  result.model.name = presetNameOf(result.model);
  if (!p->train_config_json()) {
    error = source + ": missing train_config_json";
    return false;
  }
  if (!TrainConfig::fromJson(p->train_config_json()->str(),
                             source + ": train_config_json", result.train,
                             error))
    return false;
  if (p->dp() < 1 || p->tp() < 1 || p->pp() < 1) {
    error = source + ": layout dp=" + std::to_string(p->dp()) +
            " tp=" + std::to_string(p->tp()) + " pp=" +
            std::to_string(p->pp()) + ", expected positive sizes";
    return false;
  }
  int64_t world = int64_t(p->dp()) * p->tp() * p->pp();
  int64_t programs = p->programs() ? p->programs()->size() : 0;
  if (programs == 0) {
    error = source + ": plan has no programs";
    return false;
  }
  if (programs != world) {
    error = source + ": plan has " + std::to_string(programs) +
            " programs, expected dp*tp*pp = " + std::to_string(world);
    return false;
  }

  // 3. Each program.
  for (int64_t r = 0; r < programs; ++r) {
    const plan::Program &program = *p->programs()->Get(r);
    std::string where = source + ": program " + std::to_string(r);
    if (program.rank() != r) {
      error = where + ": has rank " + std::to_string(program.rank()) +
              ", expected " + std::to_string(r) + " (programs in rank order)";
      return false;
    }
    const int64_t stage = r / (int64_t(p->dp()) * p->tp());
    if (program.stage() != stage) {
      error = where + ": has stage " + std::to_string(program.stage()) +
              ", expected " + std::to_string(stage) +
              " (the rank's pp coordinate: rank / (dp * tp))";
      return false;
    }
    if (!verifyProgram(program, comm::Grid{p->pp(), p->dp(), p->tp()}, where,
                       error) ||
        !checkLossScaling(program, result.train, where, error))
      return false;
  }
  if (!checkBucketOrder(*p, source, error) || !checkStages(*p, source, error))
    return false;
  // The precision is stated twice; they must agree.
  const std::string precision = p->precision() ? p->precision()->str() : "";
  if (!result.train.precision.empty() && !precision.empty() &&
      precision != result.train.precision) {
    error = source + ": precision is '" + precision +
            "' but train_config_json says '" + result.train.precision + "'";
    return false;
  }

  result.path = source;
  result.bytes = std::move(bytes);
  result.plan = plan::GetPlan(result.bytes.data());
  out = std::move(result);
  return true;
}

bool loadPlan(const std::string &path, LoadedPlan &out, std::string &error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = path + ": cannot open plan file: " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    error = path + ": is a directory, expected a plan file (.llx)";
    return false;
  }
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = path + ": cannot open plan file: " + std::strerror(errno);
    return false;
  }
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE)
      break; // Reported as "too large" below.
  }
  bool readError = std::ferror(f) != 0;
  int savedErrno = errno;
  std::fclose(f);
  if (readError) {
    error = path + ": cannot read plan file: " + std::strerror(savedErrno);
    return false;
  }
  return loadPlanFromBuffer(std::move(bytes), path, out, error);
}

} // namespace exec
} // namespace llamac
