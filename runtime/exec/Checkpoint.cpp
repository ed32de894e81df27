//===- Checkpoint.cpp - Training checkpoints: save, prune, resume ---------===//
#include "exec/Checkpoint.h"

#include "comm/Comm.h"
#include "exec/Init.h"
#include "io/FileUtil.h"
#include "io/Safetensors.h"
#include "llamac/runtime/Kernels.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

namespace llamac {
namespace exec {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

std::string joinPath(const std::string &dir, const std::string &name) {
  if (dir.empty())
    return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string errnoText(int err) { return std::generic_category().message(err); }

/// Makes the entries of directory `dir` (creations, renames) durable.
bool fsyncDirectory(const std::string &dir, std::string &error) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = dir + ": cannot open directory to fsync it: " + errnoText(errno);
    return false;
  }
  // Some file systems do not support fsync on directories (EINVAL); there
  // the rename is as durable as it gets.
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) {
    error = dir + ": fsync failed: " + errnoText(err);
    return false;
  }
  return true;
}

/// Removes `path` (a file or a directory tree), if it exists.
bool removeTree(const std::string &path, std::string &error) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) {
    error = path + ": cannot remove: " + ec.message();
    return false;
  }
  return true;
}

/// Deletes checkpoint directory `dir`/`name` so that no crash can leave a
/// half-deleted directory under a checkpoint name: rename it to a .tmp-*
/// name first (which resume ignores and the next save cleans up), then
/// remove it.
bool retire(const std::string &dir, const std::string &name,
            std::string &error) {
  const std::string from = joinPath(dir, name);
  const std::string to =
      joinPath(dir, ".tmp-delete-" + name + "-" + std::to_string(::getpid()));
  if (!removeTree(to, error))
    return false;
  if (::rename(from.c_str(), to.c_str()) != 0) {
    error = from + ": cannot rename to " + to +
            " for deletion: " + errnoText(errno);
    return false;
  }
  return removeTree(to, error);
}

/// `text` for an error message: at most 40 characters, non-printable bytes
/// as '?'.
std::string printable(const std::string &text) {
  std::string out;
  for (char c : text.substr(0, 40))
    out += (c >= 32 && c < 127) ? c : '?';
  return text.size() > 40 ? out + "..." : out;
}

/// The AdamW moment arguments and their tensor-name suffixes in
/// optimizer.safetensors (the names of torch.optim.AdamW's state).
struct MomentRole {
  const char *role;
  const char *suffix;
};
constexpr MomentRole kMoments[] = {{"adam_m", ".exp_avg"},
                                   {"adam_v", ".exp_avg_sq"}};

/// One tensor the checkpoint holds: its name in the file, its full shape,
/// and where it is on this rank: the argument it loads into (-1: another
/// pipeline stage's), or the full tensor to save.
struct Slot {
  std::string name; ///< Tensor name in the file.
  std::vector<int64_t> shape;
  int argument = -1;
  const float *data = nullptr;
};

/// The weights and moments to save, in parameterSpecs order, from the full
/// tensors of `tensors` (this rank's and, on rank 0 of a pipeline, the
/// other stages').
bool collectSaveSlots(const CheckpointTensors &tensors,
                      const LlamaConfig &model, std::vector<Slot> &weights,
                      std::vector<Slot> &moments, std::string &error) {
  for (const ParamSpec &spec : parameterSpecs(model)) {
    const float *p = tensors.find("param", spec.name);
    if (!p) {
      error = "plan has no parameter '" + spec.name + "'";
      return false;
    }
    weights.push_back({spec.name, spec.shape, -1, p});
    for (const MomentRole &m : kMoments)
      if (const float *q = tensors.find(m.role, spec.name))
        moments.push_back({spec.name + m.suffix, spec.shape, -1, q});
  }
  return true;
}

/// Whether some program of `plan` has argument (`role`, `param`).
bool planHasArgument(const plan::Plan &plan, const std::string &role,
                     const std::string &param) {
  for (const plan::Program *program : *plan.programs())
    if (program->arguments())
      for (const plan::Argument *arg : *program->arguments())
        if (arg->role()->str() == role && arg->param() &&
            arg->param()->str() == param)
          return true;
  return false;
}

/// The weights and moments a checkpoint of the plan's model holds, in
/// parameterSpecs order, with the arguments of `exec` they load into: the
/// whole model's parameters, and the moments of every program of `plan`
/// (of `exec` alone without a plan). Without a plan every parameter must
/// be an argument of `exec`.
bool collectLoadSlots(const Executor &exec, const plan::Plan *plan,
                      const LlamaConfig &model, std::vector<Slot> &weights,
                      std::vector<Slot> &moments, std::string &error) {
  for (const ParamSpec &spec : parameterSpecs(model)) {
    int a = exec.findArgument("param", spec.name);
    if (a < 0 && !plan) {
      error = "plan has no parameter '" + spec.name + "'";
      return false;
    }
    weights.push_back({spec.name, spec.shape, a});
    for (const MomentRole &m : kMoments) {
      int b = exec.findArgument(m.role, spec.name);
      if (b >= 0 || (plan && planHasArgument(*plan, m.role, spec.name)))
        moments.push_back({spec.name + m.suffix, spec.shape, b});
    }
  }
  return true;
}

std::vector<io::TensorRef> tensorRefs(const std::vector<Slot> &slots) {
  std::vector<io::TensorRef> refs;
  for (const Slot &s : slots)
    refs.push_back({s.name, io::DType::F32, s.shape, s.data});
  return refs;
}

/// A param, adam_m or adam_v tensor of a stage, as the checkpoint transfer
/// moves it: the key and the full shape on the plan's grid.
struct StageTensor {
  std::string param, role;
  std::vector<int64_t> fullShape;
  bool operator<(const StageTensor &o) const {
    return std::tie(param, role) < std::tie(o.param, o.role);
  }
};

/// The state tensors of `program` sorted by (HF name, role): the order in
/// which a stage's first rank sends them to rank 0 (both compute it from
/// the plan).
std::vector<StageTensor> stageTensors(const plan::Program &program,
                                      const comm::Grid &grid) {
  std::vector<StageTensor> out;
  if (!program.arguments())
    return out;
  for (const plan::Argument *arg : *program.arguments()) {
    const std::string role = arg->role()->str();
    if (role != "param" && role != "adam_m" && role != "adam_v")
      continue;
    const plan::Tensor &t = *program.tensors()->Get(arg->tensor());
    StageTensor st{arg->param()->str(), role, {}};
    if (t.shape())
      st.fullShape.assign(t.shape()->begin(), t.shape()->end());
    if (arg->shard_dim() >= 0 && arg->shard_axes()) {
      comm::AxisMask mask = 0;
      std::string ignored; // Verified by the loader.
      comm::ascendingGridAxesMask(arg->shard_axes()->data(),
                                  arg->shard_axes()->size(), mask, ignored);
      st.fullShape[arg->shard_dim()] *= grid.groupSize(mask);
    }
    out.push_back(std::move(st));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool isStateRole(const std::string &role) {
  return role == "param" || role == "adam_m" || role == "adam_v";
}

/// Checks that `file` (whose tensors are `names`) holds exactly `slots`, as
/// F32 tensors of their shapes.
template <typename File>
bool checkTensors(const File &file, const std::vector<std::string> &names,
                  const std::string &source, const std::vector<Slot> &slots,
                  std::string &error) {
  std::set<std::string> wanted;
  for (const Slot &s : slots) {
    wanted.insert(s.name);
    const io::TensorInfo *info = file.find(s.name);
    if (!info) {
      error = source + ": missing tensor '" + s.name + "' (expected F32 " +
              io::formatShape(s.shape) + ")";
      return false;
    }
    if (info->shape != s.shape) {
      error = source + ": tensor '" + s.name + "' has shape " +
              io::formatShape(info->shape) + ", expected " +
              io::formatShape(s.shape);
      return false;
    }
    if (info->dtype != io::DType::F32) {
      error = source + ": tensor '" + s.name + "' has dtype " +
              io::dtypeName(info->dtype) +
              ", expected F32 (checkpoints hold fp32 master weights)";
      return false;
    }
  }
  for (const std::string &name : names) {
    if (!wanted.count(name)) {
      error = source + ": unexpected tensor '" + name +
              "' (not part of the plan's model and optimizer)";
      return false;
    }
  }
  return true;
}

std::string jsonNumber(double v) { return json(v).dump(); }

/// The first model field where the checkpoint's config differs from the
/// plan's, as "field is X in the checkpoint but Y in the plan's model".
bool compareModels(const LlamaConfig &ckpt, const LlamaConfig &plan,
                   const std::string &source, std::string &error) {
  auto fail = [&](const char *field, const std::string &a,
                  const std::string &b) {
    error = source + ": " + field + " is " + a + " in the checkpoint but " + b +
            " in the plan's model; the checkpoint is of another model";
    return false;
  };
  const std::pair<const char *, std::pair<int64_t, int64_t>> ints[] = {
      {"hidden_size", {ckpt.hiddenSize, plan.hiddenSize}},
      {"intermediate_size", {ckpt.intermediateSize, plan.intermediateSize}},
      {"num_attention_heads", {ckpt.numAttentionHeads, plan.numAttentionHeads}},
      {"num_key_value_heads", {ckpt.numKeyValueHeads, plan.numKeyValueHeads}},
      {"num_hidden_layers", {ckpt.numHiddenLayers, plan.numHiddenLayers}},
      {"vocab_size", {ckpt.vocabSize, plan.vocabSize}},
      {"head_dim", {ckpt.headDim, plan.headDim}},
      {"max_position_embeddings",
       {ckpt.maxPositionEmbeddings, plan.maxPositionEmbeddings}}};
  for (const auto &[field, values] : ints)
    if (values.first != values.second)
      return fail(field, std::to_string(values.first),
                  std::to_string(values.second));
  const std::pair<const char *, std::pair<double, double>> reals[] = {
      {"rms_norm_eps", {ckpt.rmsNormEps, plan.rmsNormEps}},
      {"rope_theta", {ckpt.ropeTheta, plan.ropeTheta}}};
  for (const auto &[field, values] : reals)
    if (values.first != values.second)
      return fail(field, jsonNumber(values.first), jsonNumber(values.second));
  if (ckpt.tieWordEmbeddings != plan.tieWordEmbeddings)
    return fail("tie_word_embeddings",
                ckpt.tieWordEmbeddings ? "true" : "false",
                plan.tieWordEmbeddings ? "true" : "false");
  return true;
}

/// Reads an integer field of trainer_state.json.
bool readInt(const json &j, const char *field, int64_t minimum,
             const std::string &source, int64_t &out, std::string &error) {
  auto it = j.find(field);
  if (it == j.end()) {
    error = source + ": missing field '" + field + "'";
    return false;
  }
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)) ||
      it->get<int64_t>() < minimum) {
    error = source + ": field '" + field +
            "' must be an integer >= " + std::to_string(minimum) + ", got " +
            it->dump();
    return false;
  }
  out = it->get<int64_t>();
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Names and trainer state
//===----------------------------------------------------------------------===//

std::string checkpointName(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

bool parseCheckpointName(const std::string &name, int64_t &step) {
  const std::string prefix = "step-";
  if (name.compare(0, prefix.size(), prefix) != 0 ||
      name.size() == prefix.size() || name.size() > prefix.size() + 18)
    return false;
  int64_t value = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9')
      return false;
    value = value * 10 + (name[i] - '0');
  }
  step = value;
  return true;
}

std::vector<int64_t> listCheckpoints(const std::string &dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    int64_t step;
    std::error_code typeEc;
    if (parseCheckpointName(it->path().filename().string(), step) &&
        it->is_directory(typeEc))
      steps.push_back(step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::string TrainerState::toJson() const {
  json train =
      json::parse(trainConfigJson, nullptr, /*allow_exceptions=*/false);
  if (train.is_discarded())
    train = nullptr;
  ordered_json j;
  j["format_version"] = kCheckpointFormatVersion;
  j["step"] = step;
  // A3: the sequences of step s are a pure function of s, B and T.
  j["data_position"] = step;
  j["optimizer_step"] = optimizerStep;
  j["global_batch_size"] = globalBatchSize;
  j["seq_len"] = seqLen;
  j["seed"] = seed;
  if (hasLossScale) {
    ordered_json scaler;
    scaler["scale"] = lossScale.scale;
    scaler["growth_tracker"] = lossScale.growthTracker;
    scaler["hysteresis"] = lossScale.hysteresis;
    j["loss_scale"] = scaler;
  } else {
    j["loss_scale"] = nullptr;
  }
  j["train_config"] = train;
  return j.dump(2) + "\n";
}

bool TrainerState::fromJson(const std::string &text, const std::string &source,
                            TrainerState &out, std::string &error) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = source + ": malformed JSON, expected a trainer state object";
    return false;
  }
  TrainerState s;
  int64_t version = 0, position = 0;
  if (!readInt(j, "format_version", 0, source, version, error))
    return false;
  if (version != kCheckpointFormatVersion) {
    error = source + ": checkpoint format_version " + std::to_string(version) +
            " is not supported (this llamac reads version " +
            std::to_string(kCheckpointFormatVersion) + ")";
    return false;
  }
  if (!readInt(j, "step", 0, source, s.step, error) ||
      !readInt(j, "data_position", 0, source, position, error) ||
      !readInt(j, "global_batch_size", 1, source, s.globalBatchSize, error) ||
      !readInt(j, "seq_len", 1, source, s.seqLen, error))
    return false;
  if (position != s.step) {
    error = source + ": data_position " + std::to_string(position) +
            " != step " + std::to_string(s.step) +
            " (the data order is a function of the step)";
    return false;
  }
  auto seed = j.find("seed");
  if (seed == j.end() || !seed->is_number_unsigned()) {
    error = source + ": field 'seed' must be a non-negative integer, got " +
            (seed == j.end() ? std::string("nothing") : seed->dump());
    return false;
  }
  s.seed = seed->get<uint64_t>();
  s.optimizerStep = s.step;
  if (j.contains("optimizer_step")) {
    if (!readInt(j, "optimizer_step", 0, source, s.optimizerStep, error))
      return false;
    if (s.optimizerStep > s.step) {
      error = source + ": optimizer_step " + std::to_string(s.optimizerStep) +
              " > step " + std::to_string(s.step) +
              " (steps skipped by loss scaling make it smaller, never larger)";
      return false;
    }
  }
  auto scaler = j.find("loss_scale");
  if (scaler != j.end() && !scaler->is_null()) {
    const std::string field = source + ": field 'loss_scale";
    if (!scaler->is_object()) {
      error = field + "' must be an object or null, got " + scaler->dump();
      return false;
    }
    auto scale = scaler->find("scale");
    if (scale == scaler->end() || !scale->is_number() ||
        !(scale->get<double>() > 0) || !std::isfinite(scale->get<double>())) {
      error = field + ".scale' must be a finite number > 0, got " +
              (scale == scaler->end() ? std::string("nothing") : scale->dump());
      return false;
    }
    s.hasLossScale = true;
    s.lossScale.scale = scale->get<double>();
    const std::pair<const char *, int64_t *> counters[] = {
        {"growth_tracker", &s.lossScale.growthTracker},
        {"hysteresis", &s.lossScale.hysteresis}};
    for (const auto &[name, value] : counters) {
      const int64_t minimum = 0; // a spent hysteresis counter is 0
      auto it = scaler->find(name);
      if (it == scaler->end() || !it->is_number_integer() ||
          it->get<int64_t>() < minimum) {
        error = field + "." + name +
                "' must be an integer >= " + std::to_string(minimum) +
                ", got " +
                (it == scaler->end() ? std::string("nothing") : it->dump());
        return false;
      }
      *value = it->get<int64_t>();
    }
  }
  auto train = j.find("train_config");
  if (train != j.end() && train->is_object())
    s.trainConfigJson = train->dump();
  out = s;
  return true;
}

//===----------------------------------------------------------------------===//
// Full tensors
//===----------------------------------------------------------------------===//

bool CheckpointTensors::gather(const Executor &exec, std::string &error) {
  exec_ = &exec;
  received_.clear();
  gathered_.resize(exec.numArguments());
  // Every rank of a group must gather the same tensor at the same time:
  // go by (HF name, role), which the ranks share, not by argument index.
  std::vector<std::pair<std::pair<std::string, std::string>, int>> order;
  for (int a = 0; a < exec.numArguments(); ++a) {
    const plan::Argument &arg = exec.argumentInfo(a);
    if (isStateRole(arg.role()->str()) && exec.argumentShard(a).split())
      order.push_back({{arg.param()->str(), arg.role()->str()}, a});
    else
      gathered_[a].clear();
  }
  std::sort(order.begin(), order.end());
  for (const auto &entry : order) {
    const int a = entry.second;
    const Executor::Shard &sh = exec.argumentShard(a);
    const int64_t n = sh.outer * sh.size * sh.inner;
    std::vector<float> &full = gathered_[a];
    full.resize(static_cast<size_t>(n * sh.count));
    // The gathered blocks follow one another; they are the full tensor
    // only when the dimensions before the shard dimension have extent 1.
    const bool reorder = sh.outer > 1;
    float *recv = full.data();
    if (reorder) {
      blocks_.resize(full.size());
      recv = blocks_.data();
    }
    std::string why;
    if (!exec.comm().allGather(exec.argument(a), recv, n, comm::DType::F32,
                               sh.axes, why)) {
      error = "gathering the shards of " + entry.first.second + " '" +
              entry.first.first + "': " + why;
      return false;
    }
    if (reorder)
      kernels::concatBlocks<float>(recv, full.data(), sh.count, sh.outer,
                                   sh.size, sh.inner);
  }
  return true;
}

bool CheckpointTensors::gather(const Executor &exec, const plan::Plan &plan,
                               std::string &error) {
  if (!gather(exec, error))
    return false;
  if (plan.pp() <= 1)
    return true;
  // Stage by stage, the first rank of stage s (dp 0, tp 0) sends its full
  // tensors to rank 0 in stageTensors order; rank 0 knows the order and
  // the shapes from the plan. Ranks that are neither send nor receive.
  const comm::Grid grid{plan.pp(), plan.dp(), plan.tp()};
  comm::Comm &c = exec.comm();
  const int rank = c.rank();
  for (int s = 1; s < grid.pp; ++s) {
    const int first = grid.rankAt({s, 0, 0});
    if (rank != 0 && rank != first)
      continue;
    const std::vector<StageTensor> tensors =
        stageTensors(*plan.programs()->Get(first), grid);
    for (const StageTensor &t : tensors) {
      int64_t n = 1;
      for (int64_t d : t.fullShape)
        n *= d;
      std::string why;
      bool ok;
      if (rank == 0) {
        std::vector<float> &full = received_[{t.role, t.param}];
        full.resize(static_cast<size_t>(n));
        ok = c.recv(full.data(), n * 4, first, kCheckpointTag, why);
      } else {
        const float *data = find(t.role, t.param);
        ok = data != nullptr;
        if (!ok)
          why = "this rank has no such argument";
        else
          ok = c.send(data, n * 4, 0, kCheckpointTag, why);
      }
      if (!ok) {
        error = "moving " + t.role + " '" + t.param + "' of stage " +
                std::to_string(s) + " from rank " + std::to_string(first) +
                " to rank 0 for the checkpoint: " + why;
        return false;
      }
    }
  }
  return true;
}

const float *CheckpointTensors::full(int a) const {
  if (!gathered_[a].empty())
    return gathered_[a].data();
  return static_cast<const float *>(exec_->argument(a));
}

const float *CheckpointTensors::find(const std::string &role,
                                     const std::string &param) const {
  const int a = exec_->findArgument(role, param);
  if (a >= 0)
    return full(a);
  auto it = received_.find({role, param});
  return it == received_.end() ? nullptr : it->second.data();
}

//===----------------------------------------------------------------------===//
// Saving
//===----------------------------------------------------------------------===//

bool saveCheckpoint(const std::string &dir, const Executor &exec,
                    const LlamaConfig &model, const TrainerState &state,
                    const SaveOptions &options, std::string &savedPath,
                    std::string &error) {
  for (int a = 0; a < exec.numArguments(); ++a) {
    if (exec.argumentShard(a).split()) {
      const plan::Argument &arg = exec.argumentInfo(a);
      error = arg.role()->str() + " '" + arg.param()->str() + "' is split " +
              "over " + std::to_string(exec.argumentShard(a).count) +
              " ranks: its full tensor must be gathered on every rank first "
              "(CheckpointTensors::gather)";
      return false;
    }
  }
  CheckpointTensors tensors;
  if (!tensors.gather(exec, error)) // No collective: nothing is split.
    return false;
  return saveCheckpoint(dir, tensors, model, state, options, savedPath, error);
}

bool saveCheckpoint(const std::string &dir, const CheckpointTensors &tensors,
                    const LlamaConfig &model, const TrainerState &state,
                    const SaveOptions &options, std::string &savedPath,
                    std::string &error) {
  const std::string name = checkpointName(state.step);
  const std::string finalPath = joinPath(dir, name);
  const std::string tmp =
      joinPath(dir, ".tmp-" + name + "-" + std::to_string(::getpid()));
  std::vector<Slot> weights, moments;
  if (!collectSaveSlots(tensors, model, weights, moments, error))
    return false;

  // 1. Everything into the temporary directory. The guard removes it on
  // any failure below, leaving DIR as it was.
  if (!removeTree(tmp, error))
    return false;
  std::error_code ec;
  fs::create_directory(tmp, ec);
  if (ec) {
    error = tmp + ": cannot create checkpoint directory: " + ec.message();
    return false;
  }
  struct Guard {
    std::string path;
    ~Guard() {
      if (!path.empty()) {
        std::error_code ignored;
        fs::remove_all(path, ignored);
      }
    }
  } guard{tmp};
  if (!io::writeSharded(tmp, tensorRefs(weights),
                        options.maxShardBytes, error) ||
      !io::writeSafetensors(joinPath(tmp, kOptimizerName),
                            tensorRefs(moments), error) ||
      !io::detail::writeFileAtomic(joinPath(tmp, kConfigName), model.toJson(),
                                   error) ||
      !io::detail::writeFileAtomic(joinPath(tmp, kTrainerStateName),
                                   state.toJson(), error) ||
      !fsyncDirectory(tmp, error))
    return false;

  // 2. Publish it under its name. A directory already there is the complete
  // but never published save of a run that crashed before step 3 (resume
  // then went back to the previous checkpoint and recomputed this step);
  // `latest` cannot name it, or this step would not be saved again.
  std::string latestText;
  std::string ignored;
  if (io::detail::readFile(joinPath(dir, kLatestName), latestText, ignored) &&
      latestText == name + "\n") {
    error = finalPath + ": checkpoint already exists and is the latest one";
    return false;
  }
  if (fs::exists(finalPath, ec) && !retire(dir, name, error))
    return false;
  if (::rename(tmp.c_str(), finalPath.c_str()) != 0) {
    error =
        finalPath + ": cannot rename " + tmp + " onto it: " + errnoText(errno);
    return false;
  }
  guard.path.clear();
  if (!fsyncDirectory(dir, error))
    return false;

  // 3. The pointer (temporary file, fsync, rename, fsync of DIR).
  if (!io::detail::writeFileAtomic(joinPath(dir, kLatestName), name + "\n",
                                   error))
    return false;
  savedPath = finalPath;

  // 4. Pruning, oldest first, never the new checkpoint; then the leftovers
  // of interrupted saves and prunings.
  if (options.keep > 0) {
    std::vector<int64_t> steps = listCheckpoints(dir);
    size_t count = steps.size();
    for (int64_t step : steps) {
      if (count <= static_cast<size_t>(options.keep))
        break;
      if (step == state.step)
        continue;
      if (!retire(dir, checkpointName(step), error))
        return false;
      --count;
    }
  }
  std::vector<std::string> leftovers;
  std::error_code listEc;
  for (fs::directory_iterator it(dir, listEc), end; !listEc && it != end;
       it.increment(listEc)) {
    const std::string entry = it->path().filename().string();
    if (entry.rfind(".tmp-", 0) == 0 ||
        entry.rfind(std::string(kLatestName) + ".tmp", 0) == 0)
      leftovers.push_back(joinPath(dir, entry));
  }
  for (const std::string &path : leftovers)
    if (!removeTree(path, error))
      return false;
  return fsyncDirectory(dir, error);
}

//===----------------------------------------------------------------------===//
// Resuming
//===----------------------------------------------------------------------===//

static bool loadCheckpoint(const std::string &path, Executor &exec,
                           const plan::Plan *plan, const LlamaConfig &model,
                           const TrainConfig &train, TrainerState &state,
                           std::string &error);

bool resolveLatest(const std::string &dir, std::string &checkpointPath,
                   std::string &error) {
  const std::string pointer = joinPath(dir, kLatestName);
  std::error_code ec;
  if (!fs::exists(pointer, ec)) {
    std::vector<int64_t> steps = listCheckpoints(dir);
    error = pointer + ": no checkpoint to resume from (no such file; " +
            (steps.empty() ? std::string("--resume continues a run that saved "
                                         "checkpoints to this --save-dir)")
                           : checkpointName(steps.back()) +
                                 " was never published: the first save was "
                                 "interrupted; remove " +
                                 dir + " to start afresh)");
    return false;
  }
  std::string text;
  if (!io::detail::readFile(pointer, text, error))
    return false;
  std::string name = text;
  while (!name.empty() &&
         (name.back() == '\n' || name.back() == '\r' || name.back() == ' '))
    name.pop_back();
  int64_t step;
  if (!parseCheckpointName(name, step)) {
    error = pointer + ": malformed checkpoint pointer '" + printable(name) +
            "', expected 'step-<N>'";
    return false;
  }
  checkpointPath = joinPath(dir, name);
  if (!fs::is_directory(checkpointPath, ec)) {
    error = checkpointPath + ": checkpoint named by " + pointer + " is missing";
    return false;
  }
  return true;
}

bool loadCheckpoint(const std::string &path, Executor &exec,
                    const LlamaConfig &model, const TrainConfig &train,
                    TrainerState &state, std::string &error) {
  return loadCheckpoint(path, exec, nullptr, model, train, state, error);
}

bool loadCheckpoint(const std::string &path, Executor &exec,
                    const plan::Plan &plan, const LlamaConfig &model,
                    const TrainConfig &train, TrainerState &state,
                    std::string &error) {
  return loadCheckpoint(path, exec, &plan, model, train, state, error);
}

static bool loadCheckpoint(const std::string &path, Executor &exec,
                           const plan::Plan *plan, const LlamaConfig &model,
                           const TrainConfig &train, TrainerState &state,
                           std::string &error) {
  // 1. The trainer state, and that it continues this plan's data order.
  const std::string statePath = joinPath(path, kTrainerStateName);
  std::string text;
  TrainerState loaded;
  if (!io::detail::readFile(statePath, text, error) ||
      !TrainerState::fromJson(text, statePath, loaded, error))
    return false;
  int64_t named;
  std::string base = fs::path(path).filename().string();
  if (base.empty())
    base = fs::path(path).parent_path().filename().string();
  if (parseCheckpointName(base, named) && named != loaded.step) {
    error = statePath + ": step " + std::to_string(loaded.step) +
            " does not match the checkpoint's name " + base;
    return false;
  }
  const std::pair<const char *, std::pair<int64_t, int64_t>> batch[] = {
      {"global_batch_size", {loaded.globalBatchSize, train.globalBatchSize}},
      {"seq_len", {loaded.seqLen, train.seqLen}}};
  for (const auto &[field, values] : batch) {
    if (values.first != values.second) {
      error = statePath + ": " + field + " is " + std::to_string(values.first) +
              " in the checkpoint but " + std::to_string(values.second) +
              " in the plan; resuming would read other sequences than the "
              "interrupted run (recompile the plan with " +
              std::to_string(values.first) + ")";
      return false;
    }
  }

  // 2. The model.
  LlamaConfig saved;
  const std::string configPath = joinPath(path, kConfigName);
  if (!LlamaConfig::fromFile(configPath, saved, error) ||
      !compareModels(saved, model, configPath, error))
    return false;

  // 3. Both tensor files, completely, before anything is copied.
  std::vector<Slot> weights, moments;
  if (!collectLoadSlots(exec, plan, model, weights, moments, error))
    return false;
  io::SafetensorsCheckpoint weightFile;
  if (!weightFile.open(path, error))
    return false;
  // open() prefers model.safetensors to an index; errors name that file.
  std::error_code ec;
  std::string weightSource = joinPath(path, io::kSafetensorsSingleName);
  if (!fs::exists(weightSource, ec))
    weightSource = joinPath(path, io::kSafetensorsIndexName);
  if (!checkTensors(weightFile, weightFile.names(), weightSource, weights,
                    error))
    return false;
  io::SafetensorsFile optimizer;
  const std::string optimizerPath = joinPath(path, kOptimizerName);
  if (!optimizer.open(optimizerPath, error))
    return false;
  std::vector<std::string> optimizerNames;
  for (const io::TensorInfo &t : optimizer.tensors())
    optimizerNames.push_back(t.name);
  if (!checkTensors(optimizer, optimizerNames, optimizerPath, moments, error))
    return false;

  // 4. The values (F32 to F32: a copy, so the resume is exact); a shard
  // takes its block of the full tensor.
  // Only this rank's: another stage's tensors are that stage's to load.
  for (const Slot &s : weights)
    if (s.argument >= 0 && !loadFullTensor(exec, s.argument, [&](float *full) {
          return weightFile.readAsFloat(s.name, full, error);
        }))
      return false;
  for (const Slot &s : moments)
    if (s.argument >= 0 && !loadFullTensor(exec, s.argument, [&](float *full) {
          return optimizer.readAsFloat(s.name, full, error);
        }))
      return false;
  if (int64_t *step = static_cast<int64_t *>(exec.argument("step")))
    *step = loaded.optimizerStep;
  state = loaded;
  return true;
}

} // namespace exec
} // namespace llamac
