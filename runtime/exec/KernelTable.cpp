//===- KernelTable.cpp - The kernels a plan may call -----------------------===//
#include "exec/KernelTable.h"

#include <cstring>

namespace llamac {
namespace exec {
namespace {

constexpr AttrKind I = AttrKind::Int;
constexpr AttrKind R = AttrKind::Real;
constexpr AttrKind L = AttrKind::IntList;
constexpr AttrKind S = AttrKind::String;

// docs/plan-format.md, "Kernels". Attribute kinds follow the llm op
// definitions (I64Attr -> Int, F64Attr -> Real) and the shard collectives'
// (grid axes -> IntList, reduction kind -> String). Every IntList attribute
// (grid_axes, shard_axes) is a list of grid axes; every String attribute
// is a reduction; `bucket` (Int) names a gradient bucket.
const KernelSpec kKernels[] = {
    // shard_axes: the table is a vocabulary shard (docs/plan-format.md).
    {"embedding", Kernel::Embedding, 2, 1, 1, {{"shard_axes", L, false, 0}}},
    {"embedding_grad",
     Kernel::EmbeddingGrad,
     2,
     1,
     1,
     {{"shard_axes", L, false, 0}}},
    {"rms_norm", Kernel::RmsNorm, 2, 1, 1, {{"eps", R, true, 0}}},
    {"rms_norm_grad", Kernel::RmsNormGrad, 3, 2, 1, {{"eps", R, true, 0}}},
    {"linear", Kernel::Linear, 2, 1, 0, {}},
    {"linear_grad_input", Kernel::LinearGradInput, 2, 1, 0, {}},
    {"linear_grad_weight", Kernel::LinearGradWeight, 2, 1, 0, {}},
    {"rope",
     Kernel::Rope,
     1,
     1,
     2,
     {{"theta", R, true, 0}, {"pos_offset", I, false, 0}}},
    {"rope_grad",
     Kernel::RopeGrad,
     1,
     1,
     2,
     {{"theta", R, true, 0}, {"pos_offset", I, false, 0}}},
    {"attention", Kernel::Attention, 3, 2, 1, {{"scale", R, true, 0}}},
    {"attention_grad", Kernel::AttentionGrad, 6, 3, 1, {{"scale", R, true, 0}}},
    {"swiglu", Kernel::Swiglu, 2, 1, 0, {}},
    {"swiglu_grad", Kernel::SwigluGrad, 3, 2, 0, {}},
    {"add", Kernel::Add, 2, 1, 0, {}},
    {"cross_entropy",
     Kernel::CrossEntropy,
     2,
     1,
     1,
     {{"normalizer", I, true, 0}}},
    {"cross_entropy_grad",
     Kernel::CrossEntropyGrad,
     3,
     1,
     1,
     {{"normalizer", I, true, 0}}},
    {"constant", Kernel::Constant, 0, 1, 1, {{"value", R, true, 0}}},
    {"global_norm", Kernel::GlobalNorm, -1, 1, 0, {}},
    {"clip_coef", Kernel::ClipCoef, 1, 1, 1, {{"max_norm", R, true, 0}}},
    {"scale", Kernel::Scale, 2, 1, 0, {}},
    {"clip_by_value", Kernel::ClipByValue, 1, 1, 1, {{"limit", R, true, 0}}},
    {"lr_schedule",
     Kernel::LrSchedule,
     1,
     1,
     4,
     {{"lr", R, true, 0},
      {"min_lr", R, true, 0},
      {"warmup_steps", I, true, 0},
      {"decay_steps", I, true, 0}}},
    // A 7th input, `apply`, skips the update when it is 0.
    {"adamw",
     Kernel::AdamW,
     6,
     3,
     4,
     {{"beta1", R, true, 0},
      {"beta2", R, true, 0},
      {"eps", R, true, 0},
      {"weight_decay", R, true, 0}},
     /*optionalInputs=*/1},
    {"all_reduce",
     Kernel::AllReduce,
     1,
     1,
     2,
     {{"grid_axes", L, true, 0}, {"reduction", S, true, 0}}},
    {"all_gather",
     Kernel::AllGather,
     1,
     1,
     2,
     {{"grid_axes", L, true, 0}, {"dim", I, true, 0}}},
    {"reduce_scatter",
     Kernel::ReduceScatter,
     1,
     1,
     3,
     {{"grid_axes", L, true, 0},
      {"dim", I, true, 0},
      {"reduction", S, true, 0}}},
    {"all_slice",
     Kernel::AllSlice,
     1,
     1,
     2,
     {{"grid_axes", L, true, 0}, {"dim", I, true, 0}}},
    {"row_max", Kernel::RowMax, 1, 1, 0, {}},
    {"row_sum_exp", Kernel::RowSumExp, 2, 1, 0, {}},
    {"target_logit",
     Kernel::TargetLogit,
     2,
     1,
     1,
     {{"shard_axes", L, false, 0}}},
    {"cross_entropy_from_stats",
     Kernel::CrossEntropyFromStats,
     3,
     1,
     1,
     {{"normalizer", I, true, 0}}},
    {"cross_entropy_grad_from_stats",
     Kernel::CrossEntropyGradFromStats,
     5,
     1,
     2,
     {{"normalizer", I, true, 0}, {"shard_axes", L, false, 0}}},
    {"sum_squares", Kernel::SumSquares, -1, 1, 0, {}},
    {"sqrt", Kernel::Sqrt, 1, 1, 0, {}},
    {"cast", Kernel::Cast, 1, 1, 0, {}},
    {"all_finite", Kernel::AllFinite, -1, 1, 0, {}},
    // Gradient buckets: g_1..g_n (one contiguous f32 span) -> the same
    // tensors, in place; the all-reduce runs between start and wait.
    {"bucket_all_reduce_start",
     Kernel::BucketAllReduceStart,
     -1,
     -1,
     3,
     {{"grid_axes", L, true, 0},
      {"reduction", S, true, 0},
      {"bucket", I, true, 0}}},
    {"bucket_all_reduce_wait",
     Kernel::BucketAllReduceWait,
     -1,
     -1,
     1,
     {{"bucket", I, true, 0}}},
    // Pipeline stages: x goes to the same (dp, tp) rank of stage `peer`,
    // whose recv with this stage as its peer and the same tag takes it.
    {"send",
     Kernel::Send,
     1,
     0,
     2,
     {{"peer", I, true, 0}, {"tag", I, true, 0}}},
    {"recv",
     Kernel::Recv,
     0,
     1,
     2,
     {{"peer", I, true, 0}, {"tag", I, true, 0}}},
};

} // namespace

const KernelSpec *findKernel(const char *name) {
  if (!name)
    return nullptr;
  for (const KernelSpec &spec : kKernels)
    if (std::strcmp(spec.name, name) == 0)
      return &spec;
  return nullptr;
}

std::string kernelNames() {
  std::string names;
  for (const KernelSpec &spec : kKernels)
    names += (names.empty() ? "" : ", ") + std::string(spec.name);
  return names;
}

bool resolveAttrs(const KernelSpec &spec, const plan::Instr &instr,
                  AttrValues &out, std::string &why) {
  bool seen[kMaxAttrs] = {};
  for (int a = 0; a < spec.numAttrs; ++a) {
    out.real[a] = spec.attrs[a].fallback;
    out.integer[a] = static_cast<int64_t>(spec.attrs[a].fallback);
  }
  if (const auto *attrs = instr.attrs()) {
    for (const plan::Attr *attr : *attrs) {
      const char *name = attr->name() ? attr->name()->c_str() : "";
      int index = -1;
      for (int a = 0; a < spec.numAttrs; ++a)
        if (std::strcmp(spec.attrs[a].name, name) == 0)
          index = a;
      if (index < 0) {
        std::string expected;
        for (int a = 0; a < spec.numAttrs; ++a)
          expected += (a ? ", " : "") + std::string(spec.attrs[a].name);
        why = "unknown attribute '" + std::string(name) + "' (expected " +
              (expected.empty() ? "none" : expected) + ")";
        return false;
      }
      if (seen[index]) {
        why = "attribute '" + std::string(name) + "' given twice";
        return false;
      }
      seen[index] = true;
      out.present[index] = true;
      out.real[index] = attr->fval();
      out.integer[index] = attr->ival();
      out.list[index] = attr->ints();
      out.text[index] = attr->str();
    }
  }
  for (int a = 0; a < spec.numAttrs; ++a) {
    if (spec.attrs[a].required && !seen[a]) {
      why = "missing attribute '" + std::string(spec.attrs[a].name) + "'";
      return false;
    }
  }
  return true;
}

} // namespace exec
} // namespace llamac
