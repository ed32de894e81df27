//===- PlanLoaderTest.cpp - Every loader diagnostic ------------------------===//
//
// A valid plan, then one test per way of breaking it; each checks that
// loading fails with the message that names the problem.
//
//===----------------------------------------------------------------------===//
#include "exec/Executor.h"
#include "exec/PlanLoader.h"
#include "exec/tests/PlanTestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>

using namespace llamac;
using namespace llamac::exec;
using namespace llamac::exec::test;

namespace {

/// linear + cross_entropy + lr_schedule + adamw over a few arguments.
ProgramDef validProgram() {
  ProgramDef p;
  int x = p.arg("param", "x", {2, 3, 4});
  int w = p.arg("param", "w", {5, 4});
  int m = p.arg("adam_m", "w", {5, 4});
  int v = p.arg("adam_v", "w", {5, 4});
  int targets = p.arg("targets", "", {2, 3}, DType::I32);
  int step = p.arg("step", "", {}, DType::I64);
  int logits = p.arena("logits", {2, 3, 5});
  int loss = p.arena("loss", {});
  int lr = p.arena("lr", {});
  p.instr("linear", {x, w}, {logits});
  p.instr("cross_entropy", {logits, targets}, {loss}, {I("normalizer", 6)});
  p.instr("lr_schedule", {step}, {lr},
          {R("lr", 1e-3), R("min_lr", 0.0), I("warmup_steps", 0),
           I("decay_steps", 0)});
  int dw = p.arena("dw", {5, 4});
  p.instr("adamw", {w, dw, m, v, lr, step}, {w, m, v},
          {R("beta1", 0.9), R("beta2", 0.95), R("eps", 1e-8),
           R("weight_decay", 0.0)});
  p.result("loss", loss);
  p.result("lr", lr);
  p.result("new_param", w, "w");
  return p;
}

PlanDef validPlan() { return singleProgram(validProgram()); }

/// Loads `def` and returns the error ("" when it loads).
std::string loadError(const PlanDef &def) {
  LoadedPlan plan;
  std::string error;
  if (loadDef(def, plan, error))
    return "";
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  return error;
}

std::string bytesError(std::vector<uint8_t> bytes) {
  LoadedPlan plan;
  std::string error;
  if (loadPlanFromBuffer(std::move(bytes), "test.llx", plan, error))
    return "";
  return error;
}

#define EXPECT_ERROR(expr, substring)                                          \
  do {                                                                         \
    std::string err_ = (expr);                                                 \
    EXPECT_NE(err_.find(substring), std::string::npos)                         \
        << "error: '" << err_ << "' lacks '" << (substring) << "'";            \
  } while (0)

} // namespace

TEST(PlanLoader, ValidPlanLoadsWithConfigs) {
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(validPlan(), plan, error)) << error;
  EXPECT_EQ(plan.worldSize(), 1);
  EXPECT_EQ(plan.plan->format_version(), plan::kPlanFormatVersion);
  EXPECT_EQ(plan.model.hiddenSize, 8);
  EXPECT_EQ(plan.model.numKeyValueHeads, 1);
  EXPECT_EQ(plan.model.vocabSize, 16);
  EXPECT_EQ(plan.train.seqLen, 8);
  EXPECT_EQ(plan.train.microBatchSize, 2);
  EXPECT_EQ(plan.train.warmupSteps, 2);
  EXPECT_DOUBLE_EQ(plan.train.lr, 0.01);
  EXPECT_DOUBLE_EQ(plan.train.clipGradNorm, 1.0);
  EXPECT_DOUBLE_EQ(plan.train.clipGradValue, 0.0); // null: off
  EXPECT_EQ(plan.program(0).instrs()->size(), 4u);
  EXPECT_EQ(plan.model.name, "custom");
  // The plan survives a move (it points into the owned bytes).
  LoadedPlan moved = std::move(plan);
  EXPECT_EQ(moved.program(0).instrs()->size(), 4u);
}

TEST(PlanLoader, ModelNamedAfterTheMatchingPreset) {
  LlamaConfig mini;
  ASSERT_TRUE(LlamaConfig::fromPreset("mini", mini));
  PlanDef def = validPlan();
  def.modelJson = mini.toJson();
  LoadedPlan plan;
  std::string error;
  ASSERT_TRUE(loadDef(def, plan, error)) << error;
  EXPECT_EQ(plan.model.name, "mini");
  EXPECT_TRUE(plan.model.tieWordEmbeddings);
}

TEST(PlanLoader, FileErrors) {
  TempDir dir;
  LoadedPlan plan;
  std::string error;
  EXPECT_FALSE(loadPlan(dir.file("missing.llx"), plan, error));
  EXPECT_NE(error.find("missing.llx: cannot open plan file"),
            std::string::npos)
      << error;
  EXPECT_FALSE(loadPlan(dir.path, plan, error));
  EXPECT_NE(error.find("is a directory"), std::string::npos) << error;
  writeBytes(dir.file("small.llx"), {1, 2, 3});
  EXPECT_FALSE(loadPlan(dir.file("small.llx"), plan, error));
  EXPECT_NE(error.find("too small (3 bytes)"), std::string::npos) << error;
  writeBytes(dir.file("good.llx"), buildPlan(validPlan()));
  EXPECT_TRUE(loadPlan(dir.file("good.llx"), plan, error)) << error;
  EXPECT_EQ(plan.path, dir.file("good.llx"));
}

TEST(PlanLoader, WrongIdentifierIsNotAPlan) {
  std::vector<uint8_t> bytes = buildPlan(validPlan());
  bytes[4] = 'X';
  EXPECT_ERROR(bytesError(bytes), "not a llamac plan (file identifier 'XLPX'");
  std::vector<uint8_t> text(64, 'a');
  EXPECT_ERROR(bytesError(text), "not a llamac plan");
}

TEST(PlanLoader, TruncatedPlanIsRejected) {
  std::vector<uint8_t> bytes = buildPlan(validPlan());
  for (size_t keep : {bytes.size() / 2, bytes.size() - 1, size_t(20)}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + keep);
    EXPECT_ERROR(bytesError(cut), "corrupted plan");
  }
}

TEST(PlanLoader, CorruptedOffsetsAreCaughtByTheVerifier) {
  std::vector<uint8_t> bytes = buildPlan(validPlan());
  std::vector<uint8_t> bad = bytes;
  bad[0] = 0xff; // Root table offset far past the end.
  bad[1] = 0xff;
  EXPECT_ERROR(bytesError(bad), "corrupted plan");
}

TEST(PlanLoader, EveryFlippedByteFailsCleanlyOrStillVerifies) {
  // No byte flip may crash the loader or make it accept a plan that breaks
  // the invariants the executor relies on; a flip in a number that stays
  // valid (a name, an attribute value) may load.
  std::vector<uint8_t> bytes = buildPlan(validPlan());
  int rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0xA5;
    LoadedPlan plan;
    std::string error;
    if (!loadPlanFromBuffer(std::move(bad), "flip.llx", plan, error)) {
      ++rejected;
      continue;
    }
    // What loads must run (values may be garbage, memory access may not).
    Executor exec;
    if (!exec.init(plan.program(0), error)) {
      EXPECT_NE(error.find("cannot allocate"), std::string::npos) << error;
      continue;
    }
    if (exec.arenaBytes() + exec.argumentBytesTotal() < (int64_t(1) << 24)) {
      EXPECT_TRUE(exec.run(error)) << error;
    }
  }
  EXPECT_GT(rejected, static_cast<int>(bytes.size() / 4));
}

TEST(PlanLoader, WrongFormatVersion) {
  PlanDef def = validPlan();
  def.version = plan::kPlanFormatVersion + 6;
  EXPECT_ERROR(loadError(def),
               "plan format version " +
                   std::to_string(plan::kPlanFormatVersion + 6) +
                   ", this runtime reads " +
                   std::to_string(plan::kPlanFormatVersion) + "; recompile");
}

TEST(PlanLoader, BadConfigs) {
  PlanDef def = validPlan();
  def.modelJson = R"({"hidden_size": 8})";
  EXPECT_ERROR(loadError(def), "missing required field 'intermediate_size'");
  def = validPlan();
  def.modelJson = "{not json";
  EXPECT_ERROR(loadError(def), "model_config_json: malformed JSON");
  def = validPlan();
  def.trainJson = R"({"seq_len": 8, "micro_batch_size": 0,
                      "global_batch_size": 2})";
  EXPECT_ERROR(loadError(def), "'micro_batch_size' must be positive, got 0");
  def = validPlan();
  def.trainJson = R"({"seq_len": "8"})";
  EXPECT_ERROR(loadError(def), "'seq_len' must be an integer");
}

TEST(PlanLoader, ProgramCountMustMatchLayout) {
  PlanDef def = validPlan();
  def.programs.clear();
  EXPECT_ERROR(loadError(def), "plan has no programs");
  def = validPlan();
  def.dp = 2;
  EXPECT_ERROR(loadError(def), "plan has 1 programs, expected dp*tp*pp = 2");
  def = validPlan();
  def.tp = 0;
  EXPECT_ERROR(loadError(def), "expected positive sizes");
  def = validPlan();
  def.programs[0].rank = 3;
  EXPECT_ERROR(loadError(def), "program 0: has rank 3, expected 0");
}

TEST(PlanLoader, TensorIndexOutOfRange) {
  PlanDef def = validPlan();
  def.programs[0].instrs[0].inputs[1] = 99;
  EXPECT_ERROR(loadError(def),
               "instr 0 'linear' (test): input 1: tensor index 99 out of "
               "range [0, 10)");
  def = validPlan();
  def.programs[0].instrs[1].outputs[0] = -1;
  EXPECT_ERROR(loadError(def), "output 0: tensor index -1 out of range");
  def = validPlan();
  def.programs[0].args[0].tensor = 42;
  EXPECT_ERROR(loadError(def), "argument 0 (param x): tensor index 42");
  def = validPlan();
  def.programs[0].results[0].tensor = 42;
  EXPECT_ERROR(loadError(def), "result 0 (loss): tensor index 42");
}

TEST(PlanLoader, ArenaOverflow) {
  PlanDef def = validPlan();
  def.programs[0].arenaBytes -= 1;
  EXPECT_ERROR(loadError(def), "overflows arena_bytes");
  def = validPlan();
  def.programs[0].tensors[6].offset = -64; // logits
  EXPECT_ERROR(loadError(def), "tensor 6 'logits' (f32 [2, 3, 5]) at arena "
                               "offset -64");
  def = validPlan();
  def.programs[0].tensors[6].offset = 2; // not a multiple of 4
  EXPECT_ERROR(loadError(def), "is not aligned to its element size");
}

TEST(PlanLoader, ArgumentStorage) {
  PlanDef def = validPlan();
  def.programs[0].tensors[0].offset = 17; // x's argument index
  EXPECT_ERROR(loadError(def), "must be stored in argument 0");
  def = validPlan();
  def.programs[0].view(0, {2, 3, 5}); // 30 floats over x's 24
  EXPECT_ERROR(loadError(def), "is larger than argument 0");
  def = validPlan();
  def.programs[0].args[0].role = "weights";
  EXPECT_ERROR(loadError(def), "argument 0 (weights x): unknown role 'weights'");
  def = validPlan();
  def.programs[0].args[0].param = "";
  EXPECT_ERROR(loadError(def), "role param needs the HF parameter name");
  def = validPlan();
  def.programs[0].arg("param", "x", {1});
  EXPECT_ERROR(loadError(def), "duplicate argument");
  def = validPlan();
  def.programs[0].tensors[5].dtype = DType::I32; // step
  EXPECT_ERROR(loadError(def), "argument 5 (step): tensor 5");
}

TEST(PlanLoader, Results) {
  PlanDef def = validPlan();
  def.programs[0].results[0].role = "perplexity";
  EXPECT_ERROR(loadError(def), "unknown role 'perplexity'");
  def = validPlan();
  def.programs[0].results[0].tensor = 6; // logits, not a scalar
  EXPECT_ERROR(loadError(def), "result 0 (loss): tensor 6 'logits' (f32 "
                               "[2, 3, 5]) must be an f32 scalar");
  def = validPlan();
  def.programs[0].results[2].param = "x";
  EXPECT_ERROR(loadError(def), "result 2 (new_param x): tensor 1 'param w' "
                               "(f32 [5, 4]) must share the storage of "
                               "argument 0");
  def = validPlan();
  def.programs[0].results[2].param = "nothing";
  EXPECT_ERROR(loadError(def), "there is no param argument for 'nothing'");
}

TEST(PlanLoader, UnknownKernel) {
  PlanDef def = validPlan();
  def.programs[0].instrs[0].kernel = "matmul";
  EXPECT_ERROR(loadError(def),
               "instr 0 'matmul' (test): unknown kernel (expected one of "
               "embedding, ");
}

TEST(PlanLoader, WrongArity) {
  PlanDef def = validPlan();
  def.programs[0].instrs[0].inputs.push_back(0);
  EXPECT_ERROR(loadError(def), "instr 0 'linear' (test): has 3 inputs, "
                               "expected 2");
  def = validPlan();
  def.programs[0].instrs[3].outputs.pop_back();
  EXPECT_ERROR(loadError(def), "'adamw' (test): has 2 outputs, expected 3");
  def = validPlan();
  def.programs[0].instr("global_norm", {}, {7});
  EXPECT_ERROR(loadError(def), "has 0 inputs, expected at least 1");
}

TEST(PlanLoader, Attributes) {
  PlanDef def = validPlan();
  def.programs[0].instrs[1].attrs.clear();
  EXPECT_ERROR(loadError(def), "'cross_entropy' (test): missing attribute "
                               "'normalizer'");
  def = validPlan();
  def.programs[0].instrs[1].attrs.push_back(R("label_smoothing", 0.1));
  EXPECT_ERROR(loadError(def),
               "unknown attribute 'label_smoothing' (expected normalizer)");
  def = validPlan();
  def.programs[0].instrs[1].attrs[0].ival = 0;
  EXPECT_ERROR(loadError(def), "attribute 'normalizer' = 0, expected > 0");
  def = validPlan();
  def.programs[0].instrs[3].attrs[1].fval = 1.5;
  EXPECT_ERROR(loadError(def), "'beta2' = 1.500000, expected in [0, 1)");
  def = validPlan();
  def.programs[0].instrs[3].attrs[2].fval = std::nan("");
  EXPECT_ERROR(loadError(def), "attribute 'eps' must be finite");
}

TEST(PlanLoader, CpuBackendDtypes) {
  PlanDef def = validPlan();
  def.programs[0].tensors[6].dtype = DType::I1;
  EXPECT_ERROR(loadError(def), "tensor 6 'logits': dtype i1 is not "
                               "supported by the CPU backend (f32, bf16, "
                               "f16, f64, i32, i64)");
  // 16-bit logits load (computed in f32); f64 ones only feed cast and
  // all_finite.
  def = validPlan();
  def.programs[0].tensors[6].dtype = DType::BF16;
  EXPECT_EQ(loadError(def), "");
  def = validPlan();
  def.programs[0].tensors[6].dtype = DType::F64;
  EXPECT_ERROR(loadError(def), "instr 0 'linear' (test): output 0 tensor 6 "
                               "'logits' (f64 [2, 3, 5]): expected dtype "
                               "f32, bf16 or f16");
  def = validPlan();
  def.programs[0].tensors[6].dtype = static_cast<DType>(42);
  EXPECT_ERROR(loadError(def), "unknown dtype 42");
  def = validPlan();
  def.programs[0].tensors[4].dtype = DType::I64; // targets
  EXPECT_ERROR(loadError(def), "must be i32");
}

TEST(PlanLoader, ShapeChecks) {
  PlanDef def = validPlan();
  def.programs[0].tensors[1].shape = {5, 3}; // w: K 3 != x's 4
  def.programs[0].tensors[2].shape = {5, 3};
  def.programs[0].tensors[3].shape = {5, 3};
  EXPECT_ERROR(loadError(def), "instr 0 'linear' (test): input 0 tensor 0 "
                               "'param x' (f32 [2, 3, 4]): expected last "
                               "dimension K = 3");
  def = validPlan();
  def.programs[0].tensors[6].shape = {2, 3, 4}; // logits N 4 != 5
  EXPECT_ERROR(loadError(def), "expected last dimension N = 5");
  def = validPlan();
  def.programs[0].tensors[4].shape = {3, 3}; // 9 targets for 6 rows
  EXPECT_ERROR(loadError(def), "'cross_entropy' (test): input 1 tensor 4 "
                               "'targets ' (i32 [3, 3]): expected 6 elements");
  def = validPlan();
  def.programs[0].tensors[6].shape = {2, 0, 5};
  EXPECT_ERROR(loadError(def), "has a dimension < 1");
  def = validPlan();
  def.programs[0].tensors[6].shape = {1 << 30, 1 << 30, 1 << 30};
  EXPECT_ERROR(loadError(def), "more than 2^40 elements");
  def = validPlan();
  def.programs[0].instrs[3].outputs[1] = 3; // m' must alias m, not v
  EXPECT_ERROR(loadError(def), "expected the storage of input 2");
}

TEST(PlanLoader, OutputsMustNotOverlapInputs) {
  PlanDef def = validPlan();
  def.programs[0].instr("swiglu", {6, 6}, {6}); // over its own input
  EXPECT_ERROR(loadError(def), "instr 4 'swiglu' (test): output 0 tensor 6 "
                               "'logits' (f32 [2, 3, 5]) overlaps input 0 "
                               "tensor 6 'logits' (f32 [2, 3, 5]); 'swiglu' "
                               "cannot work in place");
  def = validPlan();
  ProgramDef &q = def.programs[0];
  int a = q.arena("a", {6});
  int b = q.view(a, {6});
  q.tensors[b].offset += 4; // b = a shifted by one element: a partial overlap
  q.arenaBytes += 64;
  q.instr("add", {a, a}, {a}); // exact in place: fine
  EXPECT_EQ(loadError(def), "");
  q.instr("add", {a, a}, {b});
  EXPECT_ERROR(loadError(def), "'add' cannot work in place");
  def = validPlan();
  def.programs[0].instrs[3].inputs[1] = 1; // adamw with g = p
  EXPECT_ERROR(loadError(def), "'adamw' (test): output 0 tensor 1 'param w' "
                               "(f32 [5, 4]) overlaps input 1");
}

/// validPlan() with an all_reduce of the gradient dw (tensor 9), in place,
/// as instruction 4; `attrs` replaces its attributes when given.
static PlanDef allReducePlan(std::optional<std::vector<AttrDef>> attrs = {}) {
  PlanDef def = validPlan();
  def.programs[0].instr(
      "all_reduce", {9}, {9},
      attrs ? *attrs
            : std::vector<AttrDef>{L("grid_axes", {1}), S("reduction", "sum")});
  return def;
}

TEST(PlanLoader, AllReduceForms) {
  EXPECT_EQ(loadError(allReducePlan()), "");
  for (const char *reduction : {"sum", "max", "min"})
    EXPECT_EQ(loadError(allReducePlan(std::vector<AttrDef>{
                  L("grid_axes", {2, 1, 0}), S("reduction", reduction)})),
              "");
  // Into a fresh buffer, e.g. the loss into another scalar.
  PlanDef def = validPlan();
  ProgramDef &p = def.programs[0];
  int total = p.arena("total_loss", {});
  p.instr("all_reduce", {7}, {total},
          {L("grid_axes", {1}), S("reduction", "sum")});
  EXPECT_EQ(loadError(def), "");
}

TEST(PlanLoader, AllReduceAttributes) {
  using Attrs = std::vector<AttrDef>;
  EXPECT_ERROR(loadError(allReducePlan(Attrs{S("reduction", "sum")})),
               "instr 4 'all_reduce' (test): missing attribute 'grid_axes'");
  EXPECT_ERROR(loadError(allReducePlan(Attrs{L("grid_axes", {1})})),
               "instr 4 'all_reduce' (test): missing attribute 'reduction'");
  EXPECT_ERROR(
      loadError(
          allReducePlan(Attrs{L("grid_axes", {}), S("reduction", "sum")})),
      "instr 4 'all_reduce' (test): attribute 'grid_axes' = [] is empty, "
      "expected at least one axis (0 = pp, 1 = dp, 2 = tp)");
  EXPECT_ERROR(
      loadError(allReducePlan(Attrs{I("grid_axes", 1), S("reduction", "sum")})),
      "attribute 'grid_axes' = [] is empty");
  EXPECT_ERROR(loadError(allReducePlan(
                   Attrs{L("grid_axes", {1, 3}), S("reduction", "sum")})),
               "attribute 'grid_axes' = [1, 3]: axis 3 is out of range [0, 3) "
               "(0 = pp, 1 = dp, 2 = tp)");
  EXPECT_ERROR(loadError(allReducePlan(
                   Attrs{L("grid_axes", {-1}), S("reduction", "sum")})),
               "attribute 'grid_axes' = [-1]: axis -1 is out of range");
  EXPECT_ERROR(loadError(allReducePlan(
                   Attrs{L("grid_axes", {1, 1}), S("reduction", "sum")})),
               "attribute 'grid_axes' = [1, 1]: axis 1 is repeated");
  EXPECT_ERROR(loadError(allReducePlan(
                   Attrs{L("grid_axes", {1}), S("reduction", "avg")})),
               "instr 4 'all_reduce' (test): attribute 'reduction' = 'avg', "
               "expected sum, max or min");
  EXPECT_ERROR(
      loadError(allReducePlan(Attrs{L("grid_axes", {1}), R("reduction", 1.0)})),
      "attribute 'reduction' = '', expected sum, max or min");
  EXPECT_ERROR(loadError(allReducePlan(Attrs{
                   L("grid_axes", {1}), S("reduction", "sum"), I("root", 0)})),
               "unknown attribute 'root' (expected grid_axes, reduction)");
  EXPECT_ERROR(
      loadError(allReducePlan(Attrs{L("grid_axes", {1}), L("grid_axes", {2}),
                                    S("reduction", "sum")})),
      "attribute 'grid_axes' given twice");
}

TEST(PlanLoader, AllReduceOperands) {
  PlanDef def = allReducePlan();
  def.programs[0].instrs[4].inputs.push_back(7);
  EXPECT_ERROR(loadError(def),
               "instr 4 'all_reduce' (test): has 2 inputs, expected 1");
  def = allReducePlan();
  def.programs[0].instrs[4].inputs = {4}; // the i32 targets
  def.programs[0].instrs[4].outputs = {4};
  EXPECT_ERROR(loadError(def), "input 0 tensor 4 'targets ' (i32 [2, 3]): "
                               "expected dtype f32");
  def = allReducePlan();
  def.programs[0].instrs[4].outputs = {6}; // logits [2, 3, 5], not [5, 4]
  EXPECT_ERROR(loadError(def), "'all_reduce' (test): output 0 tensor 6 "
                               "'logits' (f32 [2, 3, 5]): expected 20 "
                               "elements");
  // A partial overlap of input and output.
  def = allReducePlan();
  ProgramDef &q = def.programs[0];
  int shifted = q.view(9, {5, 4});
  q.tensors[shifted].offset += 4;
  q.arenaBytes += 64;
  q.instrs[4].outputs = {shifted};
  EXPECT_ERROR(loadError(def), "'all_reduce' cannot work in place");
}

TEST(PlanLoader, ProgramsAreInRankOrder) {
  PlanDef def = validPlan();
  def.dp = 2;
  def.programs.push_back(validProgram());
  def.programs[1].rank = 1;
  EXPECT_EQ(loadError(def), "");
  def.programs[0].rank = 1;
  def.programs[1].rank = 0;
  EXPECT_ERROR(loadError(def), "test.llx: program 0: has rank 1, expected 0 "
                               "(programs in rank order)");
  def.programs[0].rank = 0;
  def.programs[1].rank = 2;
  EXPECT_ERROR(loadError(def), "program 1: has rank 2, expected 1");
}

TEST(PlanLoader, TrainConfigDefaultsAndRoundTrip) {
  TrainConfig c;
  std::string error;
  ASSERT_TRUE(TrainConfig::fromJson(
      R"({"seq_len": 16, "micro_batch_size": 1, "global_batch_size": 4})",
      "t", c, error))
      << error;
  EXPECT_EQ(c.microbatches, 1);
  EXPECT_DOUBLE_EQ(c.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.eps, 1e-8);
  TrainConfig back;
  ASSERT_TRUE(TrainConfig::fromJson(c.toJson(), "t", back, error)) << error;
  EXPECT_EQ(back.globalBatchSize, 4);
  EXPECT_FALSE(TrainConfig::fromJson(R"({"seq_len": 1, "micro_batch_size": 1,
      "global_batch_size": 1, "warmup_steps": -1})",
                                     "t", c, error));
  EXPECT_NE(error.find("warmup_steps and decay_steps must be >= 0"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Tensor parallelism: sharded arguments and the kernels over shards
//===----------------------------------------------------------------------===//

namespace {

/// One program of `validProgram` per rank of a tp = `tp` plan, with `edit`
/// applied to each.
template <typename F> PlanDef tensorParallelPlan(int tp, F edit) {
  PlanDef def;
  def.tp = tp;
  for (int r = 0; r < tp; ++r) {
    ProgramDef p = validProgram();
    p.rank = r;
    edit(p);
    def.programs.push_back(p);
  }
  return def;
}

} // namespace

TEST(PlanLoader, ShardedArguments) {
  // A valid shard: w [5, 4] as [5, 2] blocks over tp along dim 1, with its
  // moments.
  auto shardW = [](int dim, std::vector<int64_t> axes) {
    return [=](ProgramDef &p) {
      for (int a : {1, 2, 3}) {
        p.args[a].shardDim = dim;
        p.args[a].shardAxes = axes;
      }
    };
  };
  EXPECT_EQ(loadError(tensorParallelPlan(1, shardW(1, {2}))), "");
  EXPECT_EQ(loadError(tensorParallelPlan(1, shardW(0, {1, 2}))), "");
  EXPECT_ERROR(loadError(tensorParallelPlan(1, shardW(2, {2}))),
               "program 0: argument 1 (param w): shard_dim 2 is not a "
               "dimension of its tensor 1 'param w' (f32 [5, 4]) (expected -1 "
               "or [0, 2))");
  EXPECT_ERROR(loadError(tensorParallelPlan(1, shardW(-2, {2}))),
               "argument 1 (param w): shard_dim -2 is not a dimension");
  EXPECT_ERROR(loadError(tensorParallelPlan(1, shardW(0, {2, 1}))),
               "argument 1 (param w): shard_axes = [2, 1]: axes must be "
               "ascending");
  EXPECT_ERROR(loadError(tensorParallelPlan(1, shardW(0, {}))),
               "argument 1 (param w): shard_axes = [] is empty");
  EXPECT_ERROR(loadError(tensorParallelPlan(1, shardW(0, {3}))),
               "shard_axes = [3]: axis 3 is out of range");
  EXPECT_ERROR(loadError(tensorParallelPlan(1, shardW(-1, {2}))),
               "argument 1 (param w): shard_axes without shard_dim (-1: not "
               "sharded)");
  EXPECT_ERROR(loadError(tensorParallelPlan(1,
                                            [](ProgramDef &p) {
                                              p.args[4].shardDim = 0;
                                              p.args[4].shardAxes = {2};
                                            })),
               "argument 4 (targets): is sharded (shard_dim 0); only param, "
               "adam_m and adam_v arguments can be");
}

namespace {

/// x [2, 4, 3] -> y [2, 8, 3] along dim 1 over tp (G = tp = 2), or with
/// other attributes and shapes.
PlanDef blocksPlan(const std::string &kernel, std::vector<int64_t> xShape,
                   std::vector<int64_t> yShape, std::vector<AttrDef> attrs,
                   int tp = 2) {
  return tensorParallelPlan(tp, [&](ProgramDef &p) {
    int x = p.arena("x", xShape);
    int y = p.arena("y", yShape);
    p.instr(kernel, {x}, {y}, attrs);
  });
}

} // namespace

TEST(PlanLoader, GatherScatterAndSliceShapes) {
  using Attrs = std::vector<AttrDef>;
  const Attrs tp1 = {L("grid_axes", {2}), I("dim", 1)};
  const Attrs sum1 = {L("grid_axes", {2}), I("dim", 1), S("reduction", "sum")};
  EXPECT_EQ(loadError(blocksPlan("all_gather", {2, 4, 3}, {2, 8, 3}, tp1)), "");
  EXPECT_EQ(loadError(blocksPlan("reduce_scatter", {2, 8, 3}, {2, 4, 3}, sum1)),
            "");
  EXPECT_EQ(loadError(blocksPlan("all_slice", {2, 8, 3}, {2, 4, 3}, tp1)), "");
  // G is the size of the group on the plan's grid: 1 over dp here.
  EXPECT_EQ(loadError(blocksPlan("all_gather", {2, 4, 3}, {2, 4, 3},
                                 {L("grid_axes", {1}), I("dim", 1)})),
            "");
  EXPECT_ERROR(
      loadError(blocksPlan("all_gather", {2, 4, 3}, {2, 4, 3}, tp1)),
      "instr 4 'all_gather' (test): output 0 tensor 11 'y' (f32 [2, 4, 3]): "
      "expected shape [2, 8, 3] (dim 1 times 2, the ranks of the group over "
      "grid axes [2] on the grid dp=1 tp=2 pp=1)");
  EXPECT_ERROR(loadError(blocksPlan("all_gather", {2, 4, 3}, {4, 4, 3}, tp1)),
               "expected shape [2, 8, 3]");
  EXPECT_ERROR(
      loadError(blocksPlan("reduce_scatter", {2, 8, 3}, {2, 8, 3}, sum1)),
      "'reduce_scatter' (test): input 0 tensor 10 'x' (f32 [2, 8, 3]): "
      "expected shape [2, 16, 3]");
  EXPECT_ERROR(loadError(blocksPlan("all_slice", {2, 8, 3}, {2, 4}, tp1)),
               "input 0 tensor 10 'x' (f32 [2, 8, 3]): expected shape [2, 8]");
  EXPECT_ERROR(loadError(blocksPlan("all_gather", {2, 4, 3}, {2, 8, 3},
                                    {L("grid_axes", {2}), I("dim", 3)})),
               "'all_gather' (test): attribute 'dim' = 3 is not a dimension "
               "of input 0 tensor 10 'x' (f32 [2, 4, 3])");
  EXPECT_ERROR(loadError(blocksPlan("all_gather", {2, 4, 3}, {2, 8, 3},
                                    {L("grid_axes", {2})})),
               "missing attribute 'dim'");
  EXPECT_ERROR(loadError(blocksPlan("all_gather", {2, 4, 3}, {2, 8, 3},
                                    {L("grid_axes", {2, 1}), I("dim", 1)})),
               "attribute 'grid_axes' = [2, 1]: axes must be ascending");
  EXPECT_ERROR(
      loadError(blocksPlan("reduce_scatter", {2, 8, 3}, {2, 4, 3}, tp1)),
      "missing attribute 'reduction'");
  EXPECT_ERROR(loadError(blocksPlan(
                   "reduce_scatter", {2, 8, 3}, {2, 4, 3},
                   {L("grid_axes", {2}), I("dim", 1), S("reduction", "prod")})),
               "attribute 'reduction' = 'prod', expected sum, max or min");
  // Not in place, even exactly.
  PlanDef def = tensorParallelPlan(1, [](ProgramDef &p) {
    int x = p.arena("x", {2, 4, 3});
    p.instr("all_gather", {x}, {x}, {L("grid_axes", {2}), I("dim", 1)});
  });
  EXPECT_ERROR(loadError(def), "'all_gather' cannot work in place");
}

TEST(PlanLoader, VocabShardKernels) {
  // logits [2, 3, 5] is tensor 6, targets [2, 3] i32 tensor 4.
  auto plan = [](auto build) {
    return tensorParallelPlan(2, [&](ProgramDef &p) { build(p); });
  };
  auto stats = [](ProgramDef &p, std::vector<int64_t> rowsShape) {
    int mx = p.arena("mx", rowsShape);
    int se = p.arena("se", rowsShape);
    int tl = p.arena("tl", rowsShape);
    int loss = p.arena("ce", {});
    int one = p.arena("one", {});
    int dl = p.arena("dl", {2, 3, 5});
    p.instr("row_max", {6}, {mx});
    p.instr("row_sum_exp", {6, mx}, {se});
    p.instr("target_logit", {6, 4}, {tl}, {L("shard_axes", {2})});
    p.instr("cross_entropy_from_stats", {mx, se, tl}, {loss},
            {I("normalizer", 6)});
    p.instr("cross_entropy_grad_from_stats", {one, 6, 4, mx, se}, {dl},
            {I("normalizer", 6), L("shard_axes", {2})});
  };
  EXPECT_EQ(loadError(plan([&](ProgramDef &p) { stats(p, {2, 3}); })), "");
  EXPECT_EQ(loadError(plan([&](ProgramDef &p) { stats(p, {6}); })), "");
  EXPECT_ERROR(loadError(plan([&](ProgramDef &p) {
                 stats(p, {2, 4});
               })),
               "instr 4 'row_max' (test): output 0 tensor 10 'mx' (f32 [2, "
               "4]): expected 6 elements");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int t = p.arena("t", {2, 3});
                 p.instr("target_logit", {6, 4}, {t}, {L("shard_axes", {})});
               })),
               "'target_logit' (test): attribute 'shard_axes' = [] is empty");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int t = p.arena("t", {2, 3});
                 p.instr("target_logit", {6, 6}, {t});
               })),
               "'target_logit' (test): input 1 tensor 6 'logits' (f32 [2, 3, "
               "5]): expected dtype i32");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int t = p.arena("t", {2, 3});
                 int loss = p.arena("ce", {});
                 p.instr("cross_entropy_from_stats", {t, t, t}, {loss},
                         {I("normalizer", 0)});
               })),
               "attribute 'normalizer' = 0, expected > 0");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int t = p.arena("t", {2, 3});
                 int one = p.arena("one", {});
                 int dl = p.arena("dl", {2, 3, 5});
                 p.instr("cross_entropy_grad_from_stats", {one, 6, 4, t, t},
                         {dl}, {I("normalizer", 6), L("shard_axes", {2, 2})});
               })),
               "attribute 'shard_axes' = [2, 2]: axis 2 is repeated");
  // Embedding: an optional shard_axes, checked when given.
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int table = p.arena("table", {8, 4});
                 int e = p.arena("e", {2, 3, 4});
                 p.instr("embedding", {table, 4}, {e}, {L("shard_axes", {3})});
               })),
               "'embedding' (test): attribute 'shard_axes' = [3]: axis 3 is "
               "out of range");
  EXPECT_EQ(loadError(plan([](ProgramDef &p) {
              int table = p.arena("table", {8, 4});
              int e = p.arena("e", {2, 3, 4});
              p.instr("embedding", {table, 4}, {e}, {L("shard_axes", {1, 2})});
              p.instr("embedding_grad", {e, 4}, {table});
            })),
            "");
}

TEST(PlanLoader, SumSquaresAndSqrt) {
  auto plan = [](auto build) {
    return tensorParallelPlan(1, [&](ProgramDef &p) { build(p); });
  };
  EXPECT_EQ(loadError(plan([](ProgramDef &p) {
              int s = p.arena("s", {});
              p.instr("sum_squares", {0, 1, 6}, {s});
              p.instr("sqrt", {s}, {s}); // in place
            })),
            "");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int s = p.arena("s", {});
                 p.instr("sum_squares", {}, {s});
               })),
               "'sum_squares' (test): has 0 inputs, expected at least 1");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int s = p.arena("s", {2});
                 p.instr("sum_squares", {0}, {s});
               })),
               "'sum_squares' (test): output 0 tensor 10 's' (f32 [2]): "
               "expected 1 elements");
  EXPECT_ERROR(loadError(plan([](ProgramDef &p) {
                 int s = p.arena("s", {});
                 p.instr("sqrt", {6}, {s});
               })),
               "'sqrt' (test): input 0 tensor 6 'logits' (f32 [2, 3, 5]): "
               "expected 1 elements");
}

//===----------------------------------------------------------------------===//
// Pipeline stages: Program.stage, send / recv and their pairing, parameters
// on one stage
//===----------------------------------------------------------------------===//

namespace {

/// A pp x dp plan (tp = 1): stage 0 sends an f32 [2, 4] activation to
/// stage 1 (tag 0) and stage 1 sends its gradient back (tag 1); stage 0
/// owns param "a", stage 1 param "b".
PlanDef pipelinePlan(int pp = 2, int dp = 1) {
  PlanDef def;
  def.pp = pp;
  def.dp = dp;
  for (int s = 0; s < pp; ++s) {
    for (int d = 0; d < dp; ++d) {
      ProgramDef p;
      p.rank = s * dp + d;
      p.stage = s;
      p.arg("param", s == 0 ? "a" : "b" + std::to_string(s), {4});
      int x = p.arena("x", {2, 4});
      int g = p.arena("g", {2, 4});
      if (s == 0) {
        p.instr("constant", {}, {x}, {R("value", 1.0)});
        p.instr("send", {x}, {}, {I("peer", 1), I("tag", 0)});
        p.instr("recv", {}, {g}, {I("peer", 1), I("tag", 1)});
      } else if (s == 1) {
        p.instr("recv", {}, {x}, {I("peer", 0), I("tag", 0)});
        p.instr("add", {x, x}, {g});
        p.instr("send", {g}, {}, {I("peer", 0), I("tag", 1)});
      }
      if (p.instrs.size() > 1) { // Stages beyond 1 exchange nothing.
        p.instrs[1].microbatch = 0;
        p.instrs[1].phase = plan::Phase::Forward;
      }
      def.programs.push_back(p);
    }
  }
  return def;
}

/// The instruction of program `r` with `kernel` (the first one).
InstrDef &instrOf(PlanDef &def, int r, const std::string &kernel) {
  for (InstrDef &in : def.programs[r].instrs)
    if (in.kernel == kernel)
      return in;
  ADD_FAILURE() << "program " << r << " has no " << kernel;
  return def.programs[r].instrs[0];
}

} // namespace

TEST(PlanLoader, PipelineStagesLoad) {
  EXPECT_EQ(loadError(pipelinePlan()), "");
  EXPECT_EQ(loadError(pipelinePlan(2, 2)), "");
  // send and recv move bytes: any dtype, the same bytes on both sides
  // (stage 1 takes stage 0's f32 [2, 4] as i32 and sends back a bf16
  // [4, 4]).
  PlanDef def = pipelinePlan();
  ProgramDef &p = def.programs[1];
  p.tensors[instrOf(def, 1, "recv").outputs[0]].dtype = DType::I32;
  p.instrs.erase(p.instrs.begin() + 1); // the add
  instrOf(def, 1, "send").inputs = {p.arena("h", {4, 4}, DType::BF16)};
  EXPECT_EQ(loadError(def), "");
}

TEST(PlanLoader, ProgramStageIsTheRanksPipelineCoordinate) {
  PlanDef def = pipelinePlan(2, 2);
  def.programs[2].stage = 0;
  EXPECT_ERROR(loadError(def), "test.llx: program 2: has stage 0, expected 1 "
                               "(the rank's pp coordinate: rank / (dp * tp))");
  def = validPlan();
  def.programs[0].stage = 1;
  EXPECT_ERROR(loadError(def), "program 0: has stage 1, expected 0");
}

TEST(PlanLoader, SendAndRecvOperandsAndAttributes) {
  PlanDef def = pipelinePlan();
  instrOf(def, 0, "send").outputs = {0};
  EXPECT_ERROR(loadError(def), "program 0: instr 1 'send' (test): has 1 "
                               "outputs, expected 0");
  def = pipelinePlan();
  instrOf(def, 0, "send").inputs.clear();
  EXPECT_ERROR(loadError(def), "instr 1 'send' (test): has 0 inputs, "
                               "expected 1");
  def = pipelinePlan();
  instrOf(def, 0, "recv").inputs = {1};
  EXPECT_ERROR(loadError(def), "instr 2 'recv' (test): has 1 inputs, "
                               "expected 0");
  def = pipelinePlan();
  instrOf(def, 1, "recv").outputs.clear();
  EXPECT_ERROR(loadError(def), "program 1: instr 0 'recv' (test): has 0 "
                               "outputs, expected 1");
  def = pipelinePlan();
  instrOf(def, 0, "send").attrs = {I("peer", 1)};
  EXPECT_ERROR(loadError(def), "instr 1 'send' (test): missing attribute "
                               "'tag'");
  def = pipelinePlan();
  instrOf(def, 0, "send").attrs = {I("peer", 0), I("tag", 0)};
  EXPECT_ERROR(loadError(def),
               "program 0: instr 1 'send' (test): attribute 'peer' = 0, "
               "expected another pipeline stage than this program's stage "
               "0, in [0, 2) (pp = 2)");
  def = pipelinePlan();
  instrOf(def, 1, "recv").attrs = {I("peer", 2), I("tag", 0)};
  EXPECT_ERROR(loadError(def), "program 1: instr 0 'recv' (test): attribute "
                               "'peer' = 2, expected another pipeline stage");
  def = pipelinePlan();
  instrOf(def, 1, "recv").attrs = {I("peer", -1), I("tag", 0)};
  EXPECT_ERROR(loadError(def), "attribute 'peer' = -1");
  def = pipelinePlan();
  instrOf(def, 0, "send").attrs = {I("peer", 1), I("tag", 32768)};
  EXPECT_ERROR(loadError(def), "instr 1 'send' (test): attribute 'tag' = "
                               "32768, expected [0, 32767]");
  def = pipelinePlan();
  instrOf(def, 0, "recv").attrs = {I("peer", 1), I("tag", -1)};
  EXPECT_ERROR(loadError(def), "attribute 'tag' = -1, expected [0, 32767]");
  // Without pipeline stages there is no peer.
  def = validPlan();
  int t = def.programs[0].arena("t", {4});
  def.programs[0].instr("send", {t}, {}, {I("peer", 0), I("tag", 0)});
  EXPECT_ERROR(loadError(def), "attribute 'peer' = 0, expected another "
                               "pipeline stage than this program's stage 0, "
                               "in [0, 1) (pp = 1)");
}

TEST(PlanLoader, InstructionMicrobatchAndPhase) {
  PlanDef def = pipelinePlan();
  def.programs[0].instrs[0].microbatch = -2;
  EXPECT_ERROR(loadError(def), "program 0: instr 0 'constant' (test): "
                               "microbatch -2, expected -1 (the whole step) "
                               "or a microbatch >= 0");
  def = pipelinePlan();
  def.programs[0].instrs[0].phase = static_cast<plan::Phase>(3);
  EXPECT_ERROR(loadError(def), "instr 0 'constant' (test): unknown phase 3 "
                               "(expected 0 = none, 1 = forward, 2 = "
                               "backward)");
}

TEST(PlanLoader, EverySendHasItsRecv) {
  // A send without its recv.
  PlanDef def = pipelinePlan();
  auto &recvs = def.programs[1].instrs;
  recvs.erase(recvs.begin());
  recvs.insert(recvs.begin(), {"constant", {}, {1}, {R("value", 1.0)}, ""});
  EXPECT_ERROR(loadError(def),
               "test.llx: program 0: instr 1 'send' (test): sends 32 bytes "
               "to stage 1 with tag 0, but program 1 (stage 1) has no recv "
               "with peer 0 and tag 0");
  // A recv without its send (the tag differs).
  def = pipelinePlan();
  instrOf(def, 1, "send").attrs = {I("peer", 0), I("tag", 5)};
  EXPECT_ERROR(loadError(def),
               "program 0: instr 2 'recv' (test): receives 32 bytes from "
               "stage 1 with tag 1, but program 1 (stage 1) has no send with "
               "peer 0 and tag 1");
  // Sizes differ.
  def = pipelinePlan();
  def.programs[1].tensors[instrOf(def, 1, "recv").outputs[0]].shape = {2, 2};
  instrOf(def, 1, "add").outputs = {def.programs[1].arena("g4", {2, 2})};
  EXPECT_ERROR(loadError(def),
               "program 0: instr 1 'send' (test): sends 32 bytes to stage 1 "
               "with tag 0, but program 1 (stage 1) receives 16 bytes in "
               "instr 0 (a transfer moves the same bytes on both sides)");
  // The wrong peer: with three stages, stage 0 sends to stage 2, but stage
  // 1 expects it.
  def = pipelinePlan(3);
  instrOf(def, 0, "send").attrs = {I("peer", 2), I("tag", 0)};
  EXPECT_ERROR(loadError(def),
               "program 0: instr 1 'send' (test): sends 32 bytes to stage 2 "
               "with tag 0, but program 2 (stage 2) has no recv with peer 0 "
               "and tag 0");
  // The partner is the rank with the same dp coordinate: rank 3 (stage 1,
  // dp 1) lacks the recv of rank 1's send.
  def = pipelinePlan(2, 2);
  instrOf(def, 3, "recv").attrs = {I("peer", 0), I("tag", 9)};
  EXPECT_ERROR(loadError(def),
               "program 1: instr 1 'send' (test): sends 32 bytes to stage 1 "
               "with tag 0, but program 3 (stage 1) has no recv with peer 0 "
               "and tag 0");
}

TEST(PlanLoader, ATagNamesOneTransferPerDirection) {
  PlanDef def = pipelinePlan();
  ProgramDef &p = def.programs[0];
  p.instr("send", {p.instrs[0].outputs[0]}, {}, {I("peer", 1), I("tag", 0)});
  EXPECT_ERROR(loadError(def),
               "program 0: instr 3 'send' (test): sends to stage 1 with tag "
               "0, as instr 1 does (a tag names one transfer between two "
               "stages in each direction)");
  def = pipelinePlan();
  ProgramDef &q = def.programs[1];
  q.instr("recv", {}, {q.arena("y", {2, 4})}, {I("peer", 0), I("tag", 0)});
  EXPECT_ERROR(loadError(def), "program 1: instr 3 'recv' (test): receives "
                               "from stage 0 with tag 0, as instr 0 does");
}

TEST(PlanLoader, AParameterBelongsToOneStage) {
  PlanDef def = pipelinePlan();
  def.programs[1].arg("param", "a", {4});
  EXPECT_ERROR(loadError(def),
               "test.llx: program 1: argument 1 (param a): parameter 'a' is "
               "on stage 1 and on stage 0 (program 0); each parameter and its "
               "moments belong to one stage");
  def = pipelinePlan();
  def.programs[1].arg("adam_m", "a", {4});
  EXPECT_ERROR(loadError(def), "program 1: argument 1 (adam_m a): parameter "
                               "'a' is on stage 1 and on stage 0");
  // Replicas within a stage share them.
  def = pipelinePlan(2, 2);
  EXPECT_EQ(loadError(def), "");
  // Sharded within the stage only.
  def = pipelinePlan(2, 2);
  for (int r : {0, 1})
    def.programs[r].args[0] = {"param", "a", 0, 0, {0}};
  for (int r : {0, 1})
    def.programs[r].tensors[0].shape = {2};
  EXPECT_ERROR(loadError(def),
               "program 0: argument 0 (param a): is sharded over the pp grid "
               "axis 0; a parameter lives on one pipeline stage");
  for (int r : {0, 1})
    def.programs[r].args[0] = {"param", "a", 0, 0, {1}};
  EXPECT_EQ(loadError(def), "");
}
