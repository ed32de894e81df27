//===- Init.cpp - Initial parameter values ---------------------------------===//
#include "exec/Init.h"

#include "exec/PlanLoader.h"
#include "io/Safetensors.h"
#include "llamac/runtime/Kernels.h"

#include <cmath>
#include <cstring>
#include <map>
#include <set>

namespace llamac {
namespace exec {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// The counter-th 64 random bits of stream `key`.
uint64_t mix(uint64_t key, uint64_t counter) {
  return splitmix64(key ^ splitmix64(counter));
}

/// A pair of independent standard normals from counter pair `j`.
void normalPair(uint64_t key, uint64_t j, double &z0, double &z1) {
  constexpr double kInv53 = 1.0 / 9007199254740992.0; // 2^-53
  // u1 in (0, 1] keeps log() finite; u2 in [0, 1).
  double u1 = (static_cast<double>(mix(key, 2 * j) >> 11) + 1.0) * kInv53;
  double u2 = static_cast<double>(mix(key, 2 * j + 1) >> 11) * kInv53;
  double r = std::sqrt(-2.0 * std::log(u1));
  double a = 2.0 * M_PI * u2;
  z0 = r * std::cos(a);
  z1 = r * std::sin(a);
}

/// Zeroes the optimizer moments and the step counter.
void resetOptimizerState(Executor &exec) {
  for (int a = 0; a < exec.numArguments(); ++a) {
    std::string role = exec.argumentInfo(a).role()->str();
    if (role == "adam_m" || role == "adam_v" || role == "step")
      std::memset(exec.argument(a), 0, exec.argumentBytes(a));
  }
}

bool isParam(const Executor &exec, int a) {
  return exec.argumentInfo(a).role()->str() == "param";
}

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

} // namespace

static bool checkPlanParameters(const Executor &exec, const plan::Plan *plan,
                                const LlamaConfig &config, std::string &error);

uint64_t hashName(const std::string &name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void fillNormal(uint64_t seed, const std::string &name, double stddev,
                int64_t begin, int64_t count, float *out) {
  if (count <= 0)
    return;
  const uint64_t key = splitmix64(seed ^ splitmix64(hashName(name)));
  const int64_t end = begin + count;
  // Whole pairs covering [begin, end); each element is written by exactly
  // one iteration, so the result does not depend on the thread count.
  const int64_t firstPair = begin / 2, lastPair = (end - 1) / 2;
#pragma omp parallel for schedule(static) if (count >= 65536)
  for (int64_t j = firstPair; j <= lastPair; ++j) {
    double z[2];
    normalPair(key, static_cast<uint64_t>(j), z[0], z[1]);
    for (int64_t e = 2 * j; e < 2 * j + 2; ++e)
      if (e >= begin && e < end)
        out[e - begin] = static_cast<float>(stddev * z[e - 2 * j]);
  }
}

bool checkPlanParameters(const Executor &exec, const LlamaConfig &config,
                         std::string &error) {
  return checkPlanParameters(exec, nullptr, config, error);
}

bool checkPlanParameters(const Executor &exec, const plan::Plan &plan,
                         const LlamaConfig &config, std::string &error) {
  return checkPlanParameters(exec, &plan, config, error);
}

static bool checkPlanParameters(const Executor &exec, const plan::Plan *plan,
                                const LlamaConfig &config, std::string &error) {
  std::map<std::string, std::vector<int64_t>> expected;
  for (const ParamSpec &spec : parameterSpecs(config))
    expected[spec.name] = spec.shape;
  std::set<std::string> seen;
  for (int a = 0; a < exec.numArguments(); ++a) {
    const std::string role = exec.argumentInfo(a).role()->str();
    if (role != "param" && role != "adam_m" && role != "adam_v")
      continue;
    const bool param = role == "param";
    std::string name = exec.argumentInfo(a).param()->str();
    auto it = expected.find(name);
    if (it == expected.end()) {
      error = "plan " + (param ? "parameter" : role + " argument of") + " '" +
              name + "' is not a parameter of model " + config.name;
      return false;
    }
    // Checkpoints and --init files hold full tensors: a shard is checked
    // by the shape of the tensor it is a block of.
    const Executor::Shard &shard = exec.argumentShard(a);
    if (shard.fullShape != it->second) {
      error = "plan " + (param ? "parameter" : role + " argument of") + " '" +
              name + "' has shape " + io::formatShape(shard.fullShape) +
              (shard.split()
                   ? " (its " + std::to_string(shard.count) + " shards of " +
                         shapeString(exec.argumentTensor(a)) + " put together)"
                   : std::string()) +
              ", model " + config.name + " expects " +
              io::formatShape(it->second);
      return false;
    }
    if (param)
      seen.insert(name);
  }
  // The other stages' parameters (with pp = 1 every program has them all).
  if (plan && plan->pp() > 1)
    for (const plan::Program *program : *plan->programs())
      if (program->arguments())
        for (const plan::Argument *arg : *program->arguments())
          if (arg->role()->str() == "param") {
            if (!expected.count(arg->param()->str())) {
              error = "plan parameter '" + arg->param()->str() +
                      "' (program " + std::to_string(program->rank()) +
                      ", stage " + std::to_string(program->stage()) +
                      ") is not a parameter of model " + config.name;
              return false;
            }
            seen.insert(arg->param()->str());
          }
  for (const auto &entry : expected) {
    if (!seen.count(entry.first)) {
      error = "plan has no parameter '" + entry.first + "' of model " +
              config.name +
              (plan && plan->pp() > 1 ? " on any of its " +
                                            std::to_string(plan->pp()) +
                                            " pipeline stages"
                                      : std::string());
      return false;
    }
  }
  return true;
}

bool loadFullTensor(Executor &exec, int a,
                    const std::function<bool(float *full)> &read) {
  const Executor::Shard &shard = exec.argumentShard(a);
  float *data = static_cast<float *>(exec.argument(a));
  if (!shard.split())
    return read(data);
  std::vector<float> full(static_cast<size_t>(product(shard.fullShape)));
  if (!read(full.data()))
    return false;
  kernels::sliceBlock<float>(full.data(), data, shard.outer, shard.size,
                             shard.inner, shard.count, shard.index);
  return true;
}

void initializeParameters(Executor &exec, const LlamaConfig &config,
                          uint64_t seed) {
  for (int a = 0; a < exec.numArguments(); ++a) {
    if (!isParam(exec, a))
      continue;
    const plan::Tensor &t = exec.argumentTensor(a);
    float *data = static_cast<float *>(exec.argument(a));
    int64_t n = numElements(t);
    if (t.shape() && t.shape()->size() >= 2) {
      // The block's elements of the full tensor, one contiguous run per
      // outer index ([outer, count * size, inner] around the shard
      // dimension); a whole tensor is a single run. Each element is a
      // function of its index in the full tensor, so a shard draws the
      // values the unsharded run has there.
      const Executor::Shard &sh = exec.argumentShard(a);
      const int64_t run = sh.size * sh.inner;
      const std::string name = exec.argumentInfo(a).param()->str();
      for (int64_t o = 0; o < sh.outer; ++o)
        fillNormal(seed, name, config.initializerRange,
                   (o * sh.count + sh.index) * run, run, data + o * run);
    } else {
      for (int64_t i = 0; i < n; ++i)
        data[i] = 1.0f;
    }
  }
  resetOptimizerState(exec);
}

bool loadInitWeights(Executor &exec, const LlamaConfig &config,
                     const std::string &path, std::string &error) {
  io::SafetensorsCheckpoint ckpt;
  if (!ckpt.open(path, error))
    return false;

  // 1. Every parameter present with its shape.
  std::set<std::string> wanted;
  for (const ParamSpec &spec : parameterSpecs(config)) {
    wanted.insert(spec.name);
    const io::TensorInfo *info = ckpt.find(spec.name);
    if (!info) {
      error = path + ": missing tensor '" + spec.name + "' (expected shape " +
              io::formatShape(spec.shape) + ")";
      return false;
    }
    if (info->shape != spec.shape) {
      error = path + ": tensor '" + spec.name + "' has shape " +
              io::formatShape(info->shape) + ", expected " +
              io::formatShape(spec.shape);
      return false;
    }
  }

  // 2. Nothing else, except what Hugging Face itself ignores.
  std::vector<std::string> extra;
  for (const std::string &name : ckpt.names()) {
    if (wanted.count(name))
      continue;
    if (config.tieWordEmbeddings && name == "lm_head.weight")
      continue;
    const std::string suffix = "rotary_emb.inv_freq";
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      continue;
    extra.push_back(name);
  }
  if (!extra.empty()) {
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 5; ++i)
      list += (i ? ", '" : "'") + extra[i] + "'";
    if (extra.size() > 5)
      list += " and " + std::to_string(extra.size() - 5) + " more";
    error = path + ": unexpected tensor" + (extra.size() > 1 ? "s " : " ") +
            list + " (not a parameter of model " + config.name + ")";
    return false;
  }

  // 3. The values: full tensors, of which a shard takes its block.
  for (int a = 0; a < exec.numArguments(); ++a) {
    if (!isParam(exec, a))
      continue;
    const std::string name = exec.argumentInfo(a).param()->str();
    const std::vector<int64_t> &shape = exec.argumentShard(a).fullShape;
    if (!loadFullTensor(exec, a, [&](float *full) {
          return ckpt.readAsFloat(name, shape, full, error);
        }))
      return false;
  }
  resetOptimizerState(exec);
  return true;
}

} // namespace exec
} // namespace llamac
