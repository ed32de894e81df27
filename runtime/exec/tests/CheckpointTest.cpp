//===- CheckpointTest.cpp - Checkpoint save, prune and resume -------------===//
//
// saveCheckpoint / loadCheckpoint on an executor's state (round trips,
// layout, shards, tied embeddings), and --save-dir / --keep / --resume
// through runTraining() with the bigram plan of BigramRun.h: exact resume,
// pruning, interrupted saves, and every resume error with its message and
// nothing changed on disk.
//
//===----------------------------------------------------------------------===//
#include "exec/Checkpoint.h"
#include "exec/Init.h"
#include "exec/Trainer.h"
#include "exec/tests/BigramRun.h"
#include "exec/tests/SimulatedComm.h"
#include "io/Safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
}

/// Every file under `dir` (relative path -> contents): "nothing changed".
std::map<std::string, std::string> snapshot(const std::string &dir) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->is_regular_file())
      files[fs::relative(it->path(), dir).string()] =
          readText(it->path().string());
  return files;
}

/// A loaded plan with its executor.
struct Loaded {
  LoadedPlan plan;
  Executor exec;
};

void load(const PlanDef &def, Loaded &out) {
  std::string error;
  ASSERT_TRUE(loadDef(def, out.plan, error)) << error;
  ASSERT_TRUE(out.exec.init(out.plan.program(0), error)) << error;
  ASSERT_TRUE(checkPlanParameters(out.exec, out.plan.model, error)) << error;
}

/// Random weights and distinct moments, so that a mixed-up tensor shows.
void fillState(Executor &exec, const LlamaConfig &config, int64_t step) {
  initializeParameters(exec, config, 7);
  for (int a = 0; a < exec.numArguments(); ++a) {
    std::string role = exec.argumentInfo(a).role()->str();
    if (role != "adam_m" && role != "adam_v")
      continue;
    float *data = static_cast<float *>(exec.argument(a));
    for (int64_t i = 0; i < exec.argumentBytes(a) / 4; ++i)
      data[i] = (role == "adam_m" ? 1e-3f : 1e-6f) * float(a * 1000 + i);
  }
  *static_cast<int64_t *>(exec.argument("step")) = step;
}

TrainerState stateAt(int64_t step, const LoadedPlan &plan) {
  TrainerState s;
  s.step = step;
  s.optimizerStep = step;
  s.globalBatchSize = plan.train.globalBatchSize;
  s.seqLen = plan.train.seqLen;
  s.seed = 99;
  s.trainConfigJson = plan.train.toJson();
  return s;
}

/// Same argument bytes (param, adam_m, adam_v, step) in both executors.
void expectSameState(const Executor &a, const Executor &b) {
  ASSERT_EQ(a.numArguments(), b.numArguments());
  for (int i = 0; i < a.numArguments(); ++i) {
    std::string role = a.argumentInfo(i).role()->str();
    if (role == "tokens" || role == "targets")
      continue;
    ASSERT_EQ(a.argumentBytes(i), b.argumentBytes(i));
    EXPECT_EQ(std::memcmp(a.argument(i), b.argument(i), a.argumentBytes(i)), 0)
        << role << " " << a.argumentInfo(i).param()->str();
  }
}

/// A program that only holds the training state of `modelJson`.
PlanDef stateOnlyPlan(const std::string &modelJson) {
  ProgramDef p;
  LlamaConfig c;
  std::string error;
  EXPECT_TRUE(LlamaConfig::fromJson(modelJson, "model", c, error)) << error;
  addAllParams(p, c, /*withMoments=*/true);
  p.arg("step", "", {}, DType::I64);
  PlanDef def = singleProgram(p);
  def.modelJson = modelJson;
  return def;
}

std::vector<std::string> tensorNames(const std::string &path) {
  io::SafetensorsFile f;
  std::string error;
  EXPECT_TRUE(f.open(path, error)) << error;
  std::vector<std::string> names;
  for (const io::TensorInfo &t : f.tensors()) {
    EXPECT_EQ(t.dtype, io::DType::F32) << t.name;
    names.push_back(t.name);
  }
  return names;
}

/// A run of the bigram plan that saves to `ckpt` in its directory.
struct CheckpointRun : BigramRun {
  std::string ckpt = dir.file("ckpt");
  CheckpointRun() { options.saveDir = ckpt; }
  std::string step(int64_t s) const { return ckpt + "/" + checkpointName(s); }
  std::string latest() const { return readText(ckpt + "/latest"); }
};

} // namespace

TEST(Checkpoint, Names) {
  EXPECT_EQ(checkpointName(0), "step-00000000");
  EXPECT_EQ(checkpointName(1234), "step-00001234");
  EXPECT_EQ(checkpointName(123456789), "step-123456789");
  int64_t s = -1;
  EXPECT_TRUE(parseCheckpointName("step-00000010", s));
  EXPECT_EQ(s, 10);
  EXPECT_TRUE(parseCheckpointName("step-123456789", s));
  EXPECT_EQ(s, 123456789);
  for (const char *bad : {"step-", "step-1a", "latest", ".tmp-step-00000001-7",
                          "step-00000001.tmp", "Step-00000001"})
    EXPECT_FALSE(parseCheckpointName(bad, s)) << bad;
}

TEST(Checkpoint, SaveLoadRoundTrip) {
  TempDir dir;
  Loaded a;
  ASSERT_NO_FATAL_FAILURE(load(singleProgram(bigramProgram()), a));
  const LlamaConfig &config = a.plan.model;
  fillState(a.exec, config, 7);
  std::string saved, error;
  ASSERT_TRUE(saveCheckpoint(dir.path, a.exec, config, stateAt(7, a.plan),
                             SaveOptions(), saved, error))
      << error;
  EXPECT_EQ(saved, dir.file("step-00000007"));
  EXPECT_EQ(readText(dir.file("latest")), "step-00000007\n");

  // The layout: HF weights, moments with torch's names, the state.
  std::vector<std::string> params, moments;
  for (const ParamSpec &spec : parameterSpecs(config)) {
    params.push_back(spec.name);
    moments.push_back(spec.name + ".exp_avg");
    moments.push_back(spec.name + ".exp_avg_sq");
  }
  EXPECT_EQ(tensorNames(saved + "/model.safetensors"), params);
  EXPECT_EQ(tensorNames(saved + "/optimizer.safetensors"), moments);
  EXPECT_FALSE(fs::exists(saved + "/model.safetensors.index.json"));
  LlamaConfig reread;
  ASSERT_TRUE(LlamaConfig::fromFile(saved + "/config.json", reread, error))
      << error;
  EXPECT_EQ(reread.toJson(), config.toJson());
  json state = json::parse(readText(saved + "/trainer_state.json"));
  EXPECT_EQ(state["format_version"], kCheckpointFormatVersion);
  EXPECT_EQ(state["step"], 7);
  EXPECT_EQ(state["data_position"], 7);
  EXPECT_EQ(state["global_batch_size"], kB);
  EXPECT_EQ(state["seq_len"], kT);
  EXPECT_EQ(state["seed"], 99);
  EXPECT_TRUE(state["loss_scale"].is_null());
  EXPECT_EQ(state["train_config"]["lr"], 0.01);
  std::vector<std::string> entries;
  for (const auto &e : fs::directory_iterator(dir.path))
    entries.push_back(e.path().filename().string());
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"latest", "step-00000007"}));

  // Back into a fresh executor: the same bytes.
  Loaded b;
  ASSERT_NO_FATAL_FAILURE(load(singleProgram(bigramProgram()), b));
  TrainerState loaded;
  ASSERT_TRUE(
      loadCheckpoint(saved, b.exec, config, b.plan.train, loaded, error))
      << error;
  expectSameState(a.exec, b.exec);
  EXPECT_EQ(loaded.step, 7);
  EXPECT_EQ(loaded.seed, 99u);
  EXPECT_EQ(loaded.globalBatchSize, kB);
  EXPECT_EQ(loaded.seqLen, kT);
  EXPECT_EQ(json::parse(loaded.trainConfigJson),
            json::parse(a.plan.train.toJson()));
}

TEST(Checkpoint, ShardedWeights) {
  TempDir dir;
  Loaded a;
  ASSERT_NO_FATAL_FAILURE(load(singleProgram(bigramProgram()), a));
  fillState(a.exec, a.plan.model, 3);
  SaveOptions options;
  options.maxShardBytes = 1024;
  std::string saved, error;
  ASSERT_TRUE(saveCheckpoint(dir.path, a.exec, a.plan.model, stateAt(3, a.plan),
                             options, saved, error))
      << error;
  EXPECT_FALSE(fs::exists(saved + "/model.safetensors"));
  json index = json::parse(readText(saved + "/model.safetensors.index.json"));
  EXPECT_EQ(index["weight_map"].size(), parameterSpecs(a.plan.model).size());
  std::set<std::string> shards;
  for (const auto &entry : index["weight_map"].items())
    shards.insert(entry.value().get<std::string>());
  EXPECT_GT(shards.size(), 1u);
  for (const std::string &shard : shards)
    EXPECT_TRUE(fs::exists(saved + "/" + shard)) << shard;
  Loaded b;
  ASSERT_NO_FATAL_FAILURE(load(singleProgram(bigramProgram()), b));
  TrainerState loaded;
  ASSERT_TRUE(
      loadCheckpoint(saved, b.exec, a.plan.model, b.plan.train, loaded, error))
      << error;
  expectSameState(a.exec, b.exec);
}

TEST(Checkpoint, TiedEmbeddingsHaveNoLmHead) {
  TempDir dir;
  Loaded a;
  ASSERT_NO_FATAL_FAILURE(load(stateOnlyPlan(tinyModelJson(true)), a));
  fillState(a.exec, a.plan.model, 1);
  std::string saved, error;
  ASSERT_TRUE(saveCheckpoint(dir.path, a.exec, a.plan.model, stateAt(1, a.plan),
                             SaveOptions(), saved, error))
      << error;
  std::vector<std::string> names = tensorNames(saved + "/model.safetensors");
  EXPECT_EQ(names.size(), parameterSpecs(a.plan.model).size());
  EXPECT_EQ(std::count(names.begin(), names.end(), "lm_head.weight"), 0);
  EXPECT_EQ(
      json::parse(readText(saved + "/config.json"))["tie_word_embeddings"],
      true);
  Loaded b;
  ASSERT_NO_FATAL_FAILURE(load(stateOnlyPlan(tinyModelJson(true)), b));
  TrainerState loaded;
  ASSERT_TRUE(
      loadCheckpoint(saved, b.exec, b.plan.model, b.plan.train, loaded, error))
      << error;
  expectSameState(a.exec, b.exec);

  // An untied plan does not take it.
  Loaded c;
  ASSERT_NO_FATAL_FAILURE(load(stateOnlyPlan(tinyModelJson(false)), c));
  EXPECT_FALSE(
      loadCheckpoint(saved, c.exec, c.plan.model, c.plan.train, loaded, error));
  EXPECT_NE(error.find("config.json: tie_word_embeddings is true in the "
                       "checkpoint but false in the plan's model"),
            std::string::npos)
      << error;
}

TEST(Checkpoint, ResumeIsExact) {
  CheckpointRun straight;
  straight.options.saveDir.clear();
  straight.options.steps = 10;
  std::string error;
  ASSERT_EQ(runTraining(straight.options, error), 0) << error;
  std::vector<json> all = straight.metrics();
  ASSERT_EQ(all.size(), 10u);

  CheckpointRun f;
  f.options.steps = 4;
  f.options.saveEvery = 3;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  EXPECT_EQ(listCheckpoints(f.ckpt), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(f.latest(), "step-00000004\n");
  f.options.steps = 10;
  f.options.saveEvery = 0;
  f.options.resume = true;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  std::vector<json> resumed = f.metrics();
  ASSERT_EQ(resumed.size(), 6u);
  for (size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i]["step"], all[i + 4]["step"]);
    for (const char *key : {"loss", "grad_norm", "lr"})
      EXPECT_EQ(resumed[i][key].get<double>(), all[i + 4][key].get<double>())
          << key << " at step " << i + 5;
  }
  EXPECT_EQ(listCheckpoints(f.ckpt), (std::vector<int64_t>{3, 4, 10}));

  // Already there: a note, exit code 0, no output touched.
  fs::remove(f.options.metricsPath);
  auto before = snapshot(f.ckpt);
  f.options.quiet = false;
  testing::internal::CaptureStdout();
  int rc = runTraining(f.options, error);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << error;
  EXPECT_NE(out.find("step-00000010 is at step 10, --steps is 10: nothing "
                     "to do"),
            std::string::npos)
      << out;
  EXPECT_FALSE(f.metricsExist());
  EXPECT_EQ(snapshot(f.ckpt), before);
}

TEST(Checkpoint, ConsoleLines) {
  CheckpointRun f;
  f.options.steps = 2;
  f.options.saveEvery = 1;
  f.options.keep = 1;
  f.options.quiet = false;
  std::string error;
  testing::internal::CaptureStdout();
  int rc = runTraining(f.options, error);
  std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << error;
  EXPECT_NE(out.find("checkpoints: " + f.ckpt +
                     ", every 1 steps and after the last, keep the newest 1"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("saved " + f.step(1) + " ("), std::string::npos) << out;
  EXPECT_NE(out.find("saved " + f.step(2) + " ("), std::string::npos) << out;

  f.options.steps = 3;
  f.options.resume = true;
  testing::internal::CaptureStdout();
  rc = runTraining(f.options, error);
  out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << error;
  EXPECT_NE(out.find("init: resumed from " + f.step(2) + " (step 2)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("step 3/3 | loss "), std::string::npos) << out;
  EXPECT_EQ(out.find("step 2/3"), std::string::npos) << out;
  EXPECT_NE(out.find("done: 1 steps in "), std::string::npos) << out;
}

TEST(Checkpoint, KeepPrunesOldest) {
  CheckpointRun f;
  f.options.steps = 5;
  f.options.saveEvery = 1;
  f.options.keep = 2;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  EXPECT_EQ(listCheckpoints(f.ckpt), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(f.latest(), "step-00000005\n");
  std::vector<std::string> entries;
  for (const auto &e : fs::directory_iterator(f.ckpt))
    entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries.size(), 3u) << "no leftovers besides latest";

  // keep 1 keeps only the checkpoint just written.
  f.options.steps = 7;
  f.options.keep = 1;
  f.options.resume = true;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  EXPECT_EQ(listCheckpoints(f.ckpt), (std::vector<int64_t>{7}));
}

TEST(Checkpoint, InterruptedSaveLeavesPrevious) {
  CheckpointRun f;
  f.options.steps = 2;
  std::string error;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;

  // A save of step 3 killed while writing, a pointer update killed before
  // its rename, a pruning killed while deleting.
  const std::string tmp = f.ckpt + "/.tmp-step-00000003-4242";
  fs::create_directory(tmp);
  std::string weights = readText(f.step(2) + "/model.safetensors");
  writeText(tmp + "/model.safetensors.tmp.4242",
            weights.substr(0, weights.size() / 2));
  writeText(tmp + "/config.json", "{\"hidden_");
  writeText(f.ckpt + "/latest.tmp.4242", "step-00000003\n");
  fs::create_directory(f.ckpt + "/.tmp-delete-step-00000001-4242");
  writeText(f.ckpt + "/.tmp-delete-step-00000001-4242/model.safetensors", "x");

  std::string path;
  ASSERT_TRUE(resolveLatest(f.ckpt, path, error)) << error;
  EXPECT_EQ(path, f.step(2));
  EXPECT_EQ(listCheckpoints(f.ckpt), (std::vector<int64_t>{2}));

  // The resume continues from step 2; its save cleans up.
  f.options.steps = 3;
  f.options.resume = true;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  EXPECT_EQ(f.latest(), "step-00000003\n");
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(f.ckpt + "/latest.tmp.4242"));
  EXPECT_FALSE(fs::exists(f.ckpt + "/.tmp-delete-step-00000001-4242"));
  EXPECT_EQ(f.metrics().front()["step"], 3);

  // Killed after publishing step-4 but before moving `latest`: resume goes
  // back to step 3 and replaces the unpublished step-4 with its own.
  fs::copy(f.step(3), f.step(4));
  std::string stale = readText(f.step(4) + "/trainer_state.json");
  f.options.steps = 4;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  EXPECT_EQ(f.metrics().front()["step"], 4);
  EXPECT_EQ(f.latest(), "step-00000004\n");
  EXPECT_NE(readText(f.step(4) + "/trainer_state.json"), stale);
  EXPECT_EQ(json::parse(readText(f.step(4) + "/trainer_state.json"))["step"],
            4);
}

TEST(Checkpoint, BadCheckpointFlags) {
  CheckpointRun f;
  std::string error;
  f.options.steps = 2;
  ASSERT_EQ(runTraining(f.options, error), 0) << error;
  fs::remove(f.options.metricsPath);
  const auto before = snapshot(f.ckpt);

  // A directory with checkpoints is not overwritten by a fresh run.
  f.expectFailure("ckpt: --save-dir already holds checkpoints (newest "
                  "step-00000002); pass --resume to continue that run");
  f.options.initPath = f.dir.file("init.safetensors");
  f.options.resume = true;
  f.expectFailure("--init and --resume exclude each other");
  f.options.initPath.clear();
  f.options.saveDir.clear();
  f.expectFailure("--resume needs --save-dir DIR");
  f.options.resume = false;
  f.options.saveEvery = 2;
  f.expectFailure("--save-every needs --save-dir DIR");
  f.options.saveEvery = 0;
  f.options.keep = 3;
  f.expectFailure("--keep needs --save-dir DIR");
  f.options.saveDir = f.dir.file("fresh");
  f.options.keep = -1;
  f.expectFailure("--keep must be a positive number of checkpoints, got -1");
  f.options.keep = 0;
  f.options.saveEvery = -2;
  f.expectFailure("--save-every must be a positive number of steps, got -2");
  f.options.saveEvery = 0;
  f.options.saveDir = f.options.planPath;
  f.expectFailure("plan.llx: --save-dir exists and is not a directory");
  // A metrics file that cannot be created leaves no new --save-dir behind.
  f.options.saveDir = f.dir.file("fresh");
  f.options.metricsPath = f.dir.file("no/such/dir/metrics.jsonl");
  f.expectFailure("metrics.jsonl: cannot create metrics file");
  EXPECT_FALSE(fs::exists(f.dir.file("fresh")));
  EXPECT_EQ(snapshot(f.ckpt), before);
}

/// Rewrites field `key` of the JSON file at `path`.
void editJson(const std::string &path, const std::string &key,
              const json &value) {
  json j = json::parse(readText(path));
  j[key] = value;
  writeText(path, j.dump());
}

/// Keeps the first half of the file at `path`.
void truncateHalf(const std::string &path) {
  std::string bytes = readText(path);
  writeText(path, bytes.substr(0, bytes.size() / 2));
}

TEST(Checkpoint, ResumeErrors) {
  CheckpointRun good;
  good.options.steps = 2;
  std::string error;
  ASSERT_EQ(runTraining(good.options, error), 0) << error;

  // Each case: a copy of the good save directory, broken in one place. The
  // resume fails with `message`, writes no metrics and changes nothing.
  auto expectResumeError =
      [&](const std::string &message,
          const std::function<void(const std::string &dir,
                                   const std::string &step)> &breakIt) {
        CheckpointRun f;
        fs::copy(good.ckpt, f.ckpt, fs::copy_options::recursive);
        breakIt(f.ckpt, f.step(2));
        const auto before = snapshot(f.ckpt);
        f.options.steps = 4;
        f.options.resume = true;
        f.expectFailure(message);
        EXPECT_EQ(snapshot(f.ckpt), before) << message;
      };
  using S = const std::string &;

  // The pointer.
  expectResumeError(
      "ckpt/latest: malformed checkpoint pointer 'garbage?', "
      "expected 'step-<N>'",
      [](S dir, S) { writeText(dir + "/latest", "garbage\x01"); });
  expectResumeError("ckpt/step-00000009: checkpoint named by", [](S dir, S) {
    writeText(dir + "/latest", "step-00000009\n");
  });
  // The trainer state.
  expectResumeError("step-00000002/trainer_state.json: malformed JSON",
                    [](S, S step) {
                      writeText(step + "/trainer_state.json", "{\"step\": ");
                    });
  expectResumeError("trainer_state.json: cannot open", [](S, S step) {
    fs::remove(step + "/trainer_state.json");
  });
  expectResumeError("trainer_state.json: checkpoint format_version 2 is not "
                    "supported (this llamac reads version 1)",
                    [](S, S step) {
                      editJson(step + "/trainer_state.json", "format_version",
                               2);
                    });
  expectResumeError(
      "trainer_state.json: field 'step' must be an integer >= "
      "0, got \"2\"",
      [](S, S step) { editJson(step + "/trainer_state.json", "step", "2"); });
  expectResumeError(
      "trainer_state.json: data_position 5 != step 2", [](S, S step) {
        editJson(step + "/trainer_state.json", "data_position", 5);
      });
  expectResumeError("trainer_state.json: step 3 does not match the "
                    "checkpoint's name step-00000002",
                    [](S, S step) {
                      editJson(step + "/trainer_state.json", "step", 3);
                      editJson(step + "/trainer_state.json", "data_position",
                               3);
                    });
  expectResumeError("trainer_state.json: global_batch_size is 4 in the "
                    "checkpoint but 2 in the plan",
                    [](S, S step) {
                      editJson(step + "/trainer_state.json",
                               "global_batch_size", 4);
                    });
  expectResumeError(
      "trainer_state.json: seq_len is 16 in the checkpoint but "
      "8 in the plan",
      [](S, S step) { editJson(step + "/trainer_state.json", "seq_len", 16); });
  // The model.
  expectResumeError(
      "step-00000002/config.json: hidden_size is 16 in the "
      "checkpoint but 8 in the plan's model",
      [](S, S step) { editJson(step + "/config.json", "hidden_size", 16); });
  expectResumeError(
      "config.json: rope_theta is 500000.0 in the checkpoint "
      "but 10000.0 in the plan's model",
      [](S, S step) { editJson(step + "/config.json", "rope_theta", 5e5); });
  expectResumeError("config.json: field 'rope_scaling'", [](S, S step) {
    editJson(step + "/config.json", "rope_scaling", json{{"type", "linear"}});
  });
  // The tensors.
  expectResumeError("step-00000002/model.safetensors", [](S, S step) {
    truncateHalf(step + "/model.safetensors");
  });
  expectResumeError("step-00000002: checkpoint directory contains neither "
                    "model.safetensors nor model.safetensors.index.json",
                    [](S, S step) { fs::remove(step + "/model.safetensors"); });
  expectResumeError("step-00000002/optimizer.safetensors", [](S, S step) {
    truncateHalf(step + "/optimizer.safetensors");
  });
  expectResumeError("optimizer.safetensors: missing tensor "
                    "'lm_head.weight.exp_avg_sq' (expected F32 [16, 8])",
                    [](S, S step) {
                      const std::string path = step + "/optimizer.safetensors";
                      io::SafetensorsFile f;
                      std::string error;
                      ASSERT_TRUE(f.open(path, error)) << error;
                      std::vector<io::TensorRef> refs;
                      for (const io::TensorInfo &t : f.tensors())
                        if (t.name != "lm_head.weight.exp_avg_sq")
                          refs.push_back({t.name, t.dtype, t.shape, f.data(t)});
                      ASSERT_TRUE(io::writeSafetensors(path, refs, error))
                          << error;
                    });
  expectResumeError(
      "model.safetensors: tensor 'model.norm.weight' has dtype "
      "F64, expected F32",
      [](S, S step) {
        const std::string path = step + "/model.safetensors";
        io::SafetensorsFile f;
        std::string error;
        ASSERT_TRUE(f.open(path, error)) << error;
        std::vector<io::TensorRef> refs;
        std::vector<double> wide(kD, 1.0);
        for (const io::TensorInfo &t : f.tensors())
          refs.push_back(
              t.name == "model.norm.weight"
                  ? io::TensorRef{t.name, io::DType::F64, t.shape, wide.data()}
                  : io::TensorRef{t.name, t.dtype, t.shape, f.data(t)});
        ASSERT_TRUE(io::writeSafetensors(path, refs, error)) << error;
      });
  expectResumeError(
      "model.safetensors: unexpected tensor 'extra.weight'", [](S, S step) {
        const std::string path = step + "/model.safetensors";
        io::SafetensorsFile f;
        std::string error;
        ASSERT_TRUE(f.open(path, error)) << error;
        std::vector<io::TensorRef> refs;
        float one = 1.0f;
        for (const io::TensorInfo &t : f.tensors())
          refs.push_back({t.name, t.dtype, t.shape, f.data(t)});
        refs.push_back({"extra.weight", io::DType::F32, {1}, &one});
        ASSERT_TRUE(io::writeSafetensors(path, refs, error)) << error;
      });

  expectResumeError("ckpt/latest: no checkpoint to resume from (no such "
                    "file; step-00000002 was never published: the first save "
                    "was interrupted; remove ",
                    [](S dir, S) { fs::remove(dir + "/latest"); });

  // No save directory at all: the error, and it is not created.
  CheckpointRun f;
  f.options.resume = true;
  f.options.steps = 2;
  f.expectFailure("ckpt/latest: no checkpoint to resume from (no such file; "
                  "--resume continues a run that saved checkpoints to this "
                  "--save-dir)");
  EXPECT_FALSE(fs::exists(f.ckpt));
}

//===----------------------------------------------------------------------===//
// Sharded state (tensor parallelism)
//===----------------------------------------------------------------------===//

namespace {

/// Rank `rank` of a tp = `tp` plan that only holds the tiny model's
/// training state, split as addAllParamsSharded does, on a communicator
/// that stands for that rank.
struct ShardedState {
  LoadedPlan plan;
  SimulatedComm comm;
  Executor exec;
  ShardedState(int tp, int rank) : comm(comm::Grid{1, 1, tp}, rank) {}
};

std::unique_ptr<ShardedState> shardedState(int tp, int rank) {
  PlanDef def;
  def.tp = tp;
  for (int r = 0; r < tp; ++r) {
    ProgramDef p;
    p.rank = r;
    addAllParamsSharded(p, tinyConfig(), tp, /*withMoments=*/true);
    p.arg("step", "", {}, DType::I64);
    def.programs.push_back(p);
  }
  auto s = std::make_unique<ShardedState>(tp, rank);
  std::string error;
  if (!loadDef(def, s->plan, error) ||
      !s->exec.init(s->plan.program(rank), &s->comm, error) ||
      !checkPlanParameters(s->exec, s->plan.model, error)) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  return s;
}

/// The values of argument `a` of `exec`.
std::vector<float> values(const Executor &exec, int a) {
  const float *p = static_cast<const float *>(exec.argument(a));
  return std::vector<float>(p, p + exec.argumentBytes(a) / 4);
}

} // namespace

TEST(Checkpoint, ResumeIntoShardsTakesTheirBlocks) {
  // A checkpoint of full tensors (a single-rank save) resumes on every
  // rank of tp = 2 and tp = 4: each argument gets its block.
  TempDir dir;
  Loaded whole;
  ASSERT_NO_FATAL_FAILURE(load(stateOnlyPlan(tinyModelJson()), whole));
  fillState(whole.exec, whole.plan.model, 4);
  std::string saved, error;
  ASSERT_TRUE(saveCheckpoint(dir.path, whole.exec, whole.plan.model,
                             stateAt(4, whole.plan), SaveOptions(), saved,
                             error))
      << error;
  for (int tp : {2, 4}) {
    for (int rank = 0; rank < tp; ++rank) {
      auto s = shardedState(tp, rank);
      ASSERT_TRUE(s);
      TrainerState loaded;
      ASSERT_TRUE(loadCheckpoint(saved, s->exec, s->plan.model, s->plan.train,
                                 loaded, error))
          << error;
      EXPECT_EQ(*static_cast<int64_t *>(s->exec.argument("step")), 4);
      for (const ParamSpec &spec : parameterSpecs(tinyConfig())) {
        const int dim = tensorParallelDim(spec);
        for (const char *role : {"param", "adam_m", "adam_v"}) {
          std::vector<float> full =
              values(whole.exec, whole.exec.findArgument(role, spec.name));
          EXPECT_EQ(values(s->exec, s->exec.findArgument(role, spec.name)),
                    dim < 0 ? full : blockOf(full, spec.shape, dim, tp, rank))
              << role << " " << spec.name << " on rank " << rank << " of "
              << tp;
        }
      }
    }
  }
}

TEST(Checkpoint, GatherPutsTheBlocksTogether) {
  // Rank 1 of tp = 2 on a SimulatedComm: member m's block of every sharded
  // tensor is rank 1's plus 1000 (m - 1). The full tensor is those blocks
  // concatenated along the shard dimension (reordered for dim 1).
  auto s = shardedState(2, 1);
  ASSERT_TRUE(s);
  fillState(s->exec, s->plan.model, 2);
  CheckpointTensors tensors;
  std::string error;
  ASSERT_TRUE(tensors.gather(s->exec, error)) << error;
  int gathered = 0;
  for (const ParamSpec &spec : parameterSpecs(tinyConfig())) {
    const int dim = tensorParallelDim(spec);
    for (const char *role : {"param", "adam_m", "adam_v"}) {
      const int a = s->exec.findArgument(role, spec.name);
      std::vector<float> mine = values(s->exec, a);
      std::vector<float> full(tensors.full(a), tensors.full(a) + spec.numel());
      if (dim < 0) {
        EXPECT_EQ(tensors.full(a), s->exec.argument(a)) << "whole: no copy";
        continue;
      }
      ++gathered;
      for (int m = 0; m < 2; ++m) {
        std::vector<float> expected = mine;
        for (float &x : expected)
          x += SimulatedComm::kPeerOffset * float(m - 1);
        EXPECT_EQ(blockOf(full, spec.shape, dim, 2, m), expected)
            << role << " " << spec.name << " block " << m;
      }
    }
  }
  // Every sharded tensor once, in the order of (name, role): the same on
  // every rank.
  EXPECT_EQ(static_cast<int>(s->comm.calls.size()), gathered);
  EXPECT_EQ(s->comm.calls.front(), "all_gather 64 [2]"); // lm_head [8, 8]
}

TEST(Checkpoint, SavingShardsNeedsTheWholeGroup) {
  TempDir dir;
  auto s = shardedState(2, 0);
  ASSERT_TRUE(s);
  std::string saved, error;
  EXPECT_FALSE(saveCheckpoint(dir.path, s->exec, s->plan.model,
                              stateAt(1, s->plan), SaveOptions(), saved,
                              error));
  EXPECT_EQ(error, "param 'model.embed_tokens.weight' is split over 2 ranks: "
                   "its full "
                   "tensor must be gathered on every rank first "
                   "(CheckpointTensors::gather)");
  EXPECT_TRUE(fs::is_empty(dir.path));
}
