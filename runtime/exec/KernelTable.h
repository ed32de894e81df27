//===- KernelTable.h - The kernels a plan may call ----------------*- C++ -*-===//
//
// One table, shared by the loader (arity and attribute checks) and the
// executor (name -> Kernel resolution), of the kernels of
// docs/plan-format.md: name, number of inputs and outputs, attributes.
// Internal to LlamacExec.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_RUNTIME_EXEC_KERNELTABLE_H
#define LLAMAC_RUNTIME_EXEC_KERNELTABLE_H

#include "plan/PlanFormat.h"

#include <cstdint>
#include <string>

namespace llamac {
namespace exec {

enum class Kernel : uint8_t {
  Embedding,
  EmbeddingGrad,
  RmsNorm,
  RmsNormGrad,
  Linear,
  LinearGradInput,
  LinearGradWeight,
  Rope,
  RopeGrad,
  Attention,
  AttentionGrad,
  Swiglu,
  SwigluGrad,
  Add,
  CrossEntropy,
  CrossEntropyGrad,
  Constant,
  GlobalNorm,
  ClipCoef,
  Scale,
  ClipByValue,
  LrSchedule,
  AdamW,
  AllReduce,
  AllGather,
  ReduceScatter,
  AllSlice,
  RowMax,
  RowSumExp,
  TargetLogit,
  CrossEntropyFromStats,
  CrossEntropyGradFromStats,
  SumSquares,
  Sqrt,
  Cast,
  AllFinite,
  BucketAllReduceStart,
  BucketAllReduceWait,
  Send,
  Recv,
};

/// Where an attribute's value is in plan::Attr: Int in `ival`, Real in
/// `fval`, IntList in `ints`, String in `str`.
enum class AttrKind : uint8_t { Int, Real, IntList, String };

struct AttrSpec {
  const char *name;
  AttrKind kind;
  bool required;
  double fallback; ///< Value of an absent optional Int or Real attribute.
};

constexpr int kMaxAttrs = 4;

struct KernelSpec {
  const char *name;
  Kernel kernel;
  /// -1: one or more (global_norm, sum_squares, all_finite, the bucket
  /// kernels).
  int numInputs;
  /// -1: as many as inputs (the bucket kernels, in place).
  int numOutputs;
  int numAttrs;
  AttrSpec attrs[kMaxAttrs];
  /// Trailing inputs that may be left out (adamw's `apply`): an instruction
  /// has numInputs .. numInputs + optionalInputs inputs.
  int optionalInputs = 0;
};

/// The spec of kernel `name`, or nullptr when there is none.
const KernelSpec *findKernel(const char *name);
/// Comma-separated kernel names, for "expected one of" messages.
std::string kernelNames();

/// An instruction's attribute values, in the order of KernelSpec::attrs.
/// Lists and strings point into the plan's bytes (nullptr when absent), so
/// the plan must outlive the values.
struct AttrValues {
  double real[kMaxAttrs] = {};
  int64_t integer[kMaxAttrs] = {};
  const flatbuffers::Vector<int64_t> *list[kMaxAttrs] = {};
  const flatbuffers::String *text[kMaxAttrs] = {};
  /// Whether the instruction gives the attribute (optional ones may be
  /// absent; an absent optional list, such as shard_axes, changes the
  /// kernel's meaning).
  bool present[kMaxAttrs] = {};
};

/// Reads `instr`'s attributes for `spec`: every required attribute present,
/// no unknown or repeated name. On failure `why` says which.
bool resolveAttrs(const KernelSpec &spec, const plan::Instr &instr,
                  AttrValues &out, std::string &why);

} // namespace exec
} // namespace llamac

#endif // LLAMAC_RUNTIME_EXEC_KERNELTABLE_H
