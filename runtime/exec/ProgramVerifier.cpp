//===- ProgramVerifier.cpp - Semantic checks of one program ----------------===//
#include "exec/ProgramVerifier.h"

#include "comm/Comm.h"
#include "exec/KernelTable.h"
#include "exec/PlanLoader.h"

#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace llamac {
namespace exec {

using plan::DType;
using plan::Storage;

namespace {

/// Largest tensor the loader accepts (elements): keeps every byte count far
/// from int64 overflow.
constexpr int64_t kMaxElements = int64_t(1) << 40;

bool isArgumentRole(const std::string &role) {
  return role == "param" || role == "adam_m" || role == "adam_v" ||
         role == "step" || role == "tokens" || role == "targets" ||
         role == "loss_scale" || role == "inv_loss_scale";
}

bool isResultRole(const std::string &role) {
  return role == "loss" || role == "grad_norm" || role == "lr" ||
         role == "all_finite" || role == "new_param" || role == "new_adam_m" ||
         role == "new_adam_v";
}

bool isFloat(DType dt) {
  return dt == DType::F32 || dt == DType::BF16 || dt == DType::F16 ||
         dt == DType::F64;
}

/// What an operand of a kernel may be.
enum class Operand : uint8_t {
  Ids,      ///< i32 token ids
  Step,     ///< the i64 step counter
  F32,      ///< f32 only (the optimizer, norms, attention's lse)
  Compute,  ///< f32, bf16 or f16: low-precision storage, f32 compute
  AnyFloat, ///< f32, bf16, f16 or f64 (cast, all_finite)
  Bytes,    ///< any dtype: send and recv move bytes
};

bool accepts(Operand kind, DType dt) {
  switch (kind) {
  case Operand::Ids:
    return dt == DType::I32;
  case Operand::Step:
    return dt == DType::I64;
  case Operand::F32:
    return dt == DType::F32;
  case Operand::Compute:
    return dt == DType::F32 || dt == DType::BF16 || dt == DType::F16;
  case Operand::AnyFloat:
    return isFloat(dt);
  case Operand::Bytes:
    return true;
  }
  return false;
}

const char *expectedDtypes(Operand kind) {
  switch (kind) {
  case Operand::Ids:
    return "i32";
  case Operand::Step:
    return "i64";
  case Operand::F32:
    return "f32";
  case Operand::Compute:
    return "f32, bf16 or f16";
  case Operand::AnyFloat:
    return "f32, bf16, f16 or f64";
  case Operand::Bytes:
    return "any";
  }
  return "";
}

/// Operand `i` (an input when `isIn`) of `kernel`: ids are i32, the step
/// i64; the optimizer and the gradient norm run on f32 (fp32 master weights
/// and statistics), as do attention's lse and the scalars all_finite gives;
/// every other float operand of a compute kernel or collective may be
/// stored in 16 bits (the executor computes in f32).
Operand operandKind(Kernel kernel, bool isIn, int i) {
  switch (kernel) {
  case Kernel::Embedding:
  case Kernel::EmbeddingGrad:
  case Kernel::CrossEntropy:
  case Kernel::TargetLogit:
    return isIn && i == 1 ? Operand::Ids : Operand::Compute;
  case Kernel::CrossEntropyGrad:
  case Kernel::CrossEntropyGradFromStats:
    return isIn && i == 2 ? Operand::Ids : Operand::Compute;
  case Kernel::Attention:
    return !isIn && i == 1 ? Operand::F32 : Operand::Compute;
  case Kernel::AttentionGrad:
    return isIn && i == 5 ? Operand::F32 : Operand::Compute;
  case Kernel::LrSchedule:
    return isIn ? Operand::Step : Operand::F32;
  case Kernel::AdamW:
    return isIn && i == 5 ? Operand::Step : Operand::F32;
  case Kernel::GlobalNorm:
  case Kernel::SumSquares:
  case Kernel::ClipCoef:
    return Operand::F32;
  case Kernel::Cast:
    return Operand::AnyFloat;
  case Kernel::AllFinite:
    return isIn ? Operand::AnyFloat : Operand::F32;
  case Kernel::BucketAllReduceStart:
  case Kernel::BucketAllReduceWait:
    return Operand::F32; // one f32 span, reduced as an array
  case Kernel::Send:
  case Kernel::Recv:
    return Operand::Bytes;
  default:
    return Operand::Compute;
  }
}

const char *str(const flatbuffers::String *s) { return s ? s->c_str() : ""; }

/// Verifies one program; `where` ("plan.llx: program 0") prefixes errors.
class ProgramVerifier {
public:
  ProgramVerifier(const plan::Program &program, const comm::Grid &grid,
                  std::string where)
      : program_(program), grid_(grid), where_(std::move(where)) {}

  bool verify(std::string &error) {
    if (!verifyTensors(error) || !verifyArguments(error) ||
        !verifyStorage(error) || !verifyResults(error))
      return false;
    if (const auto *instrs = program_.instrs())
      for (flatbuffers::uoffset_t i = 0; i < instrs->size(); ++i)
        if (!verifyInstr(static_cast<int>(i), *instrs->Get(i), error) ||
            !trackBuckets(static_cast<int>(i), *instrs->Get(i), error))
          return false;
    return verifyBucketsWaited(error);
  }

private:
  int numTensors() const {
    return program_.tensors() ? program_.tensors()->size() : 0;
  }
  int numArguments() const {
    return program_.arguments() ? program_.arguments()->size() : 0;
  }
  const plan::Tensor &tensor(int i) const {
    return *program_.tensors()->Get(i);
  }
  std::string tensorDesc(int i) const {
    const plan::Tensor &t = tensor(i);
    std::string s = "tensor " + std::to_string(i);
    if (t.name() && t.name()->size())
      s += " '" + std::string(t.name()->c_str()) + "'";
    return s + " (" + dtypeName(t.dtype()) + " " + shapeString(t) + ")";
  }

  // 1. Each tensor: dtype, shape, size.
  bool verifyTensors(std::string &error) {
    if (program_.arena_bytes() < 0) {
      error = where_ + ": arena_bytes " +
              std::to_string(program_.arena_bytes()) + " is negative";
      return false;
    }
    if (program_.workspace_bytes() < 0) {
      error = where_ + ": workspace_bytes " +
              std::to_string(program_.workspace_bytes()) + " is negative";
      return false;
    }
    for (int i = 0; i < numTensors(); ++i) {
      const plan::Tensor *t = program_.tensors()->Get(i);
      std::string prefix = where_ + ": tensor " + std::to_string(i) +
                           (t->name() ? " '" + std::string(str(t->name())) +
                                            "'"
                                      : std::string());
      DType dt = t->dtype();
      if (dtypeBytes(dt) == 0) {
        error = prefix + ": unknown dtype " +
                std::to_string(static_cast<int>(dt));
        return false;
      }
      if (dt == DType::I1) {
        error = prefix + ": dtype " + dtypeName(dt) +
                " is not supported by the CPU backend (f32, bf16, f16, f64, "
                "i32, i64)";
        return false;
      }
      int64_t n = 1;
      if (const auto *shape = t->shape()) {
        for (int64_t d : *shape) {
          if (d < 1) {
            error = prefix + ": shape " + shapeString(*t) +
                    " has a dimension < 1";
            return false;
          }
          if (d > kMaxElements || n > kMaxElements / d) {
            error = prefix + ": shape " + shapeString(*t) +
                    " has more than 2^40 elements";
            return false;
          }
          n *= d;
        }
      }
      if (t->storage() != Storage::Arena && t->storage() != Storage::Argument) {
        error = prefix + ": unknown storage " +
                std::to_string(static_cast<int>(t->storage()));
        return false;
      }
    }
    return true;
  }

  // 2. Arguments: roles, dtypes, and that each owns its tensor's storage.
  bool verifyArguments(std::string &error) {
    std::set<std::pair<std::string, std::string>> seen;
    for (int a = 0; a < numArguments(); ++a) {
      const plan::Argument *arg = program_.arguments()->Get(a);
      std::string role = str(arg->role()), param = str(arg->param());
      std::string prefix = where_ + ": argument " + std::to_string(a) +
                           " (" + role + (param.empty() ? "" : " " + param) +
                           ")";
      if (!isArgumentRole(role)) {
        error = prefix + ": unknown role '" + role +
                "' (expected param, adam_m, adam_v, step, tokens, targets, "
                "loss_scale or inv_loss_scale)";
        return false;
      }
      bool isState = role == "param" || role == "adam_m" || role == "adam_v";
      if (isState && param.empty()) {
        error = prefix + ": role " + role + " needs the HF parameter name";
        return false;
      }
      // tokens and targets come once per microbatch (the compiler unrolls
      // gradient accumulation); every other argument once.
      const bool perMicrobatch = role == "tokens" || role == "targets";
      if (!perMicrobatch && !seen.insert({role, param}).second) {
        error = prefix + ": duplicate argument";
        return false;
      }
      int ti = arg->tensor();
      if (ti < 0 || ti >= numTensors()) {
        error = prefix + ": tensor index " + std::to_string(ti) +
                " out of range [0, " + std::to_string(numTensors()) + ")";
        return false;
      }
      const plan::Tensor &t = tensor(ti);
      if (t.storage() != Storage::Argument || t.offset() != a) {
        error = prefix + ": its " + tensorDesc(ti) +
                " must be stored in argument " + std::to_string(a);
        return false;
      }
      const bool isScale = role == "loss_scale" || role == "inv_loss_scale";
      DType want = isState || isScale ? DType::F32
                   : role == "step"   ? DType::I64
                                      : DType::I32;
      if (t.dtype() != want) {
        error = prefix + ": " + tensorDesc(ti) + " must be " + dtypeName(want);
        return false;
      }
      if ((role == "step" || isScale) && numElements(t) != 1) {
        error = prefix + ": " + tensorDesc(ti) + " must be a scalar";
        return false;
      }
      if (!verifySharding(*arg, isState, t, prefix, error))
        return false;
      argumentBytes_.push_back(numElements(t) * dtypeBytes(t.dtype()));
    }
    return true;
  }

  /// An argument's shard_dim and shard_axes (Plan.fbs): a block of the
  /// full tensor along a dimension it has, over ascending grid axes, for
  /// parameters and their moments only.
  bool verifySharding(const plan::Argument &arg, bool isState,
                      const plan::Tensor &t, const std::string &prefix,
                      std::string &error) {
    const int dim = arg.shard_dim();
    const auto *axes = arg.shard_axes();
    if (dim == -1) {
      if (axes && axes->size() > 0) {
        error = prefix + ": shard_axes without shard_dim (-1: not sharded)";
        return false;
      }
      return true;
    }
    if (!isState) {
      error = prefix + ": is sharded (shard_dim " + std::to_string(dim) +
              "); only param, adam_m and adam_v arguments can be";
      return false;
    }
    if (dim < 0 || dim >= rank(t)) {
      error = prefix + ": shard_dim " + std::to_string(dim) +
              " is not a dimension of its " + tensorDesc(arg.tensor()) +
              " (expected -1 or [0, " + std::to_string(rank(t)) + "))";
      return false;
    }
    std::vector<int64_t> list;
    if (axes)
      list.assign(axes->begin(), axes->end());
    comm::AxisMask mask;
    std::string why;
    if (!comm::ascendingGridAxesMask(list.data(), list.size(), mask, why)) {
      error = prefix + ": shard_axes = " + why;
      return false;
    }
    return true;
  }

  // 3. Every tensor lies inside its arena or argument buffer.
  bool verifyStorage(std::string &error) {
    for (int i = 0; i < numTensors(); ++i) {
      const plan::Tensor &t = tensor(i);
      int64_t bytes = numElements(t) * dtypeBytes(t.dtype());
      int64_t off = t.offset();
      if (t.storage() == Storage::Arena) {
        int64_t arena = program_.arena_bytes();
        if (off < 0 || off > arena || bytes > arena - off) {
          error = where_ + ": " + tensorDesc(i) + " at arena offset " +
                  std::to_string(off) + " (" + std::to_string(bytes) +
                  " bytes) overflows arena_bytes " + std::to_string(arena);
          return false;
        }
        if (off % dtypeBytes(t.dtype()) != 0) {
          error = where_ + ": " + tensorDesc(i) + " at arena offset " +
                  std::to_string(off) + " is not aligned to its element size";
          return false;
        }
      } else {
        if (off < 0 || off >= numArguments()) {
          error = where_ + ": " + tensorDesc(i) + ": argument index " +
                  std::to_string(off) + " out of range [0, " +
                  std::to_string(numArguments()) + ")";
          return false;
        }
        if (bytes > argumentBytes_[off]) {
          error = where_ + ": " + tensorDesc(i) + " (" +
                  std::to_string(bytes) + " bytes) is larger than argument " +
                  std::to_string(off) + " (" +
                  std::to_string(argumentBytes_[off]) + " bytes)";
          return false;
        }
      }
    }
    return true;
  }

  // 4. Results: roles; scalars are f32; new_* alias their argument.
  bool verifyResults(std::string &error) {
    if (!program_.results())
      return true;
    for (flatbuffers::uoffset_t r = 0; r < program_.results()->size(); ++r) {
      const plan::Result *res = program_.results()->Get(r);
      std::string role = str(res->role()), param = str(res->param());
      std::string prefix = where_ + ": result " + std::to_string(r) + " (" +
                           role + (param.empty() ? "" : " " + param) + ")";
      if (!isResultRole(role)) {
        error = prefix + ": unknown role '" + role +
                "' (expected loss, grad_norm, lr, all_finite, new_param, "
                "new_adam_m or new_adam_v)";
        return false;
      }
      int ti = res->tensor();
      if (ti < 0 || ti >= numTensors()) {
        error = prefix + ": tensor index " + std::to_string(ti) +
                " out of range [0, " + std::to_string(numTensors()) + ")";
        return false;
      }
      const plan::Tensor &t = tensor(ti);
      if (role == "loss" || role == "grad_norm" || role == "lr" ||
          role == "all_finite") {
        if (t.dtype() != DType::F32 || numElements(t) != 1) {
          error = prefix + ": " + tensorDesc(ti) + " must be an f32 scalar";
          return false;
        }
        continue;
      }
      std::string argRole = role.substr(4); // new_param -> param
      int owner = -1;
      for (int a = 0; a < numArguments(); ++a) {
        const plan::Argument *arg = program_.arguments()->Get(a);
        if (argRole == str(arg->role()) && param == str(arg->param()))
          owner = a;
      }
      if (owner < 0) {
        error = prefix + ": there is no " + argRole + " argument for '" +
                param + "'";
        return false;
      }
      // Updated state is either written in place (AdamW on the whole
      // tensor) or, when it is computed elsewhere (ZeRO-1 all-gathers the
      // updated weight into the arena), copied back by the executor after
      // the step: then it must have the argument's shape and dtype.
      const plan::Tensor &argT = tensor(program_.arguments()->Get(owner)->tensor());
      bool inPlace = t.storage() == Storage::Argument && t.offset() == owner;
      bool copyBack = t.storage() == Storage::Arena &&
                      t.dtype() == argT.dtype() &&
                      numElements(t) == numElements(argT) &&
                      t.shape()->size() == argT.shape()->size();
      for (flatbuffers::uoffset_t d = 0; copyBack && d < t.shape()->size(); ++d)
        copyBack = t.shape()->Get(d) == argT.shape()->Get(d);
      if (!inPlace && !copyBack) {
        error = prefix + ": " + tensorDesc(ti) +
                " must share the storage of argument " + std::to_string(owner) +
                " or be an arena tensor of its shape and dtype";
        return false;
      }
    }
    return true;
  }

  /// "plan.llx: program 0: instr 3 'linear' (model.layers.0.mlp)".
  std::string instrPrefix(int index, const plan::Instr &instr) const {
    return where_ + ": instr " + std::to_string(index) + " '" +
           str(instr.kernel()) + "'" +
           (instr.loc() && instr.loc()->size()
                ? " (" + std::string(instr.loc()->c_str()) + ")"
                : std::string());
  }

  // 5. One instruction: kernel, arity, indices, attributes, dtypes, shapes.
  bool verifyInstr(int index, const plan::Instr &instr, std::string &error) {
    std::string kernel = str(instr.kernel());
    std::string prefix = instrPrefix(index, instr);
    const KernelSpec *spec = findKernel(kernel.c_str());
    if (!spec) {
      error = prefix + ": unknown kernel (expected one of " + kernelNames() +
              ")";
      return false;
    }
    int nin = instr.inputs() ? instr.inputs()->size() : 0;
    int nout = instr.outputs() ? instr.outputs()->size() : 0;
    const int most = spec->numInputs + spec->optionalInputs;
    if (spec->numInputs >= 0 ? nin < spec->numInputs || nin > most : nin < 1) {
      error = prefix + ": has " + std::to_string(nin) + " inputs, expected " +
              (spec->numInputs < 0         ? std::string("at least 1")
               : spec->optionalInputs == 0 ? std::to_string(spec->numInputs)
                                           : std::to_string(spec->numInputs) +
                                                 " or " + std::to_string(most));
      return false;
    }
    if (spec->numOutputs >= 0 ? nout != spec->numOutputs : nout != nin) {
      error = prefix + ": has " + std::to_string(nout) + " outputs, expected " +
              (spec->numOutputs >= 0
                   ? std::to_string(spec->numOutputs)
                   : std::to_string(nin) + " (one per input, in place)");
      return false;
    }
    ins_.clear();
    outs_.clear();
    for (int i = 0; i < nin + nout; ++i) {
      bool isIn = i < nin;
      int ti = isIn ? instr.inputs()->Get(i) : instr.outputs()->Get(i - nin);
      if (ti < 0 || ti >= numTensors()) {
        error = prefix + ": " + (isIn ? "input " : "output ") +
                std::to_string(isIn ? i : i - nin) + ": tensor index " +
                std::to_string(ti) + " out of range [0, " +
                std::to_string(numTensors()) + ")";
        return false;
      }
      (isIn ? ins_ : outs_).push_back(ti);
    }
    // Where it sits in a pipeline schedule (traces only).
    if (instr.microbatch() < -1) {
      error = prefix + ": microbatch " + std::to_string(instr.microbatch()) +
              ", expected -1 (the whole step) or a microbatch >= 0";
      return false;
    }
    if (instr.phase() != plan::Phase::None &&
        instr.phase() != plan::Phase::Forward &&
        instr.phase() != plan::Phase::Backward) {
      error = prefix + ": unknown phase " +
              std::to_string(static_cast<int>(instr.phase())) +
              " (expected 0 = none, 1 = forward, 2 = backward)";
      return false;
    }
    AttrValues attrs;
    std::string why;
    if (!resolveAttrs(*spec, instr, attrs, why) ||
        !checkAttrs(*spec, attrs, why) || !checkOperands(*spec, attrs, why)) {
      error = prefix + ": " + why;
      return false;
    }
    return true;
  }

  static bool checkAttrs(const KernelSpec &spec, const AttrValues &attrs,
                         std::string &why) {
    for (int a = 0; a < spec.numAttrs; ++a) {
      const AttrSpec &as = spec.attrs[a];
      std::string name = as.name;
      if (as.kind == AttrKind::IntList) {
        // grid_axes and shard_axes (the only lists): axes of the [pp, dp,
        // tp] grid. Ascending where they number blocks; an all_reduce's
        // order does not matter. An absent optional list is not sharded.
        if (!as.required && !attrs.present[a])
          continue;
        std::vector<int64_t> axes;
        if (const auto *list = attrs.list[a])
          axes.assign(list->begin(), list->end());
        comm::AxisMask mask;
        std::string reason;
        bool ok =
            spec.kernel == Kernel::AllReduce ||
                    spec.kernel == Kernel::BucketAllReduceStart
                ? comm::gridAxesMask(axes.data(), axes.size(), mask, reason)
                : comm::ascendingGridAxesMask(axes.data(), axes.size(), mask,
                                              reason);
        if (!ok) {
          why = "attribute '" + name + "' = " + reason;
          return false;
        }
        continue;
      }
      if (as.kind == AttrKind::String) {
        // reduction (the only string): sum, max or min.
        std::string value = attrs.text[a] ? attrs.text[a]->str() : "";
        comm::Reduction reduction;
        if (!comm::parseReduction(value, reduction)) {
          why = "attribute '" + name + "' = '" + value +
                "', expected sum, max or min";
          return false;
        }
        continue;
      }
      if (as.kind == AttrKind::Real && !std::isfinite(attrs.real[a])) {
        why = "attribute '" + name + "' must be finite";
        return false;
      }
      double r = attrs.real[a];
      int64_t i = attrs.integer[a];
      bool ok = true;
      const char *expected = "";
      if (name == "eps" || name == "weight_decay" || name == "lr" ||
          name == "min_lr" || name == "limit") {
        ok = r >= 0;
        expected = ">= 0";
      } else if (name == "max_norm" || name == "theta") {
        ok = r > 0;
        expected = "> 0";
      } else if (name == "beta1" || name == "beta2") {
        ok = r >= 0 && r < 1;
        expected = "in [0, 1)";
      } else if (name == "normalizer") {
        ok = i > 0;
        expected = "> 0";
      } else if (name == "warmup_steps" || name == "decay_steps" ||
                 name == "pos_offset" || name == "bucket") {
        ok = i >= 0;
        expected = ">= 0";
      }
      if (!ok) {
        why = "attribute '" + name + "' = " +
              (as.kind == AttrKind::Real ? std::to_string(r)
                                         : std::to_string(i)) +
              ", expected " + expected;
        return false;
      }
    }
    return true;
  }

  // Operand checks. `in(i)` / `out(i)` are tensors; failures name them.
  const plan::Tensor &in(int i) const { return tensor(ins_[i]); }
  const plan::Tensor &out(int i) const { return tensor(outs_[i]); }
  std::string inDesc(int i) const {
    return "input " + std::to_string(i) + " " + tensorDesc(ins_[i]);
  }
  std::string outDesc(int i) const {
    return "output " + std::to_string(i) + " " + tensorDesc(outs_[i]);
  }
  static int rank(const plan::Tensor &t) {
    return t.shape() ? static_cast<int>(t.shape()->size()) : 0;
  }
  /// Dimension `i` (negative: from the end). Precondition: in range.
  static int64_t dim(const plan::Tensor &t, int i) {
    int r = rank(t);
    return t.shape()->Get(i < 0 ? r + i : i);
  }

  /// The bytes a tensor occupies: (storage key, begin, end); the key is -1
  /// for the arena, else the argument index.
  struct Extent {
    int64_t key, begin, end;
  };
  static Extent extent(const plan::Tensor &t) {
    int64_t bytes = numElements(t) * dtypeBytes(t.dtype());
    if (t.storage() == Storage::Arena)
      return {-1, t.offset(), t.offset() + bytes};
    return {t.offset(), 0, bytes};
  }

  /// Outputs must not overlap inputs or each other (a memory-planner bug
  /// would otherwise give silent garbage), except where a kernel works in
  /// place: add, scale, clip_by_value, sqrt and all_reduce may write over
  /// an input exactly, adamw must write p, m, v over themselves and the
  /// bucket kernels each gradient over itself.
  bool checkAliasing(const KernelSpec &spec, std::string &why) {
    for (size_t o = 0; o < outs_.size(); ++o) {
      Extent eo = extent(out(o));
      auto overlaps = [&](const Extent &e) {
        return e.key == eo.key && e.begin < eo.end && eo.begin < e.end;
      };
      for (size_t i = 0; i < ins_.size(); ++i) {
        Extent ei = extent(in(i));
        if (!overlaps(ei))
          continue;
        // In place means the same elements: same bytes and dtype.
        bool exact = ei.begin == eo.begin && ei.end == eo.end &&
                     in(i).dtype() == out(o).dtype();
        bool inPlace = false;
        switch (spec.kernel) {
        case Kernel::Add:
        case Kernel::Scale:
        case Kernel::ClipByValue:
        case Kernel::AllReduce:
        case Kernel::Sqrt:
          inPlace = exact && (spec.kernel != Kernel::Scale || i == 0);
          break;
        case Kernel::AdamW:
          inPlace = exact && ((o == 0 && i == 0) || (o == 1 && i == 2) ||
                              (o == 2 && i == 3));
          break;
        case Kernel::BucketAllReduceStart:
        case Kernel::BucketAllReduceWait:
          inPlace = exact && o == i;
          break;
        default:
          break;
        }
        if (!inPlace) {
          why = outDesc(o) + " overlaps " + inDesc(i) + "; '" + spec.name +
                "' cannot work in place";
          return false;
        }
      }
      for (size_t p = 0; p < o; ++p) {
        if (overlaps(extent(out(p)))) {
          why = outDesc(o) + " overlaps " + outDesc(p);
          return false;
        }
      }
    }
    return true;
  }

  bool checkOperands(const KernelSpec &spec, const AttrValues &attrs,
                     std::string &why) {
    if (!checkShapes(spec, attrs, why))
      return false;
    return checkAliasing(spec, why);
  }

  /// all_gather, reduce_scatter, all_slice: `dim` is a dimension of both
  /// operands, which agree elsewhere, and the larger one's `dim` is G times
  /// the smaller one's, G = the size of the group over grid_axes on the
  /// plan's grid (`gathered`: the output is the larger one).
  bool checkBlocks(const AttrValues &attrs, bool gathered, std::string &why) {
    std::vector<int64_t> axes(attrs.list[0]->begin(), attrs.list[0]->end());
    comm::AxisMask mask = 0;
    std::string ignored;
    comm::ascendingGridAxesMask(axes.data(), axes.size(), mask, ignored);
    const int64_t g = grid_.groupSize(mask);
    const int64_t d = attrs.integer[1];
    const plan::Tensor &x = in(0), &y = out(0);
    if (d < 0 || d >= rank(x)) {
      why = "attribute 'dim' = " + std::to_string(d) +
            " is not a dimension of " + inDesc(0);
      return false;
    }
    const plan::Tensor &whole = gathered ? y : x, &block = gathered ? x : y;
    const std::string wholeDesc = gathered ? outDesc(0) : inDesc(0);
    bool ok = rank(whole) == rank(block);
    for (int i = 0; ok && i < rank(block); ++i)
      ok = dim(whole, i) == (i == d ? g * dim(block, i) : dim(block, i));
    if (!ok) {
      std::string expected = "[";
      for (int i = 0; i < rank(block); ++i)
        expected += (i ? ", " : "") +
                    std::to_string(i == d ? g * dim(block, i) : dim(block, i));
      why = wholeDesc + ": expected shape " + expected + "] (dim " +
            std::to_string(d) + " times " + std::to_string(g) +
            ", the ranks of the group over grid axes " + shapeList(axes) +
            " on the grid " + grid_.toString() + ")";
      return false;
    }
    return true;
  }

  static std::string shapeList(const std::vector<int64_t> &v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i)
      s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
  }

  bool checkShapes(const KernelSpec &spec, const AttrValues &attrs,
                   std::string &why) {
    // Every operand's dtype (operandKind).
    auto checkDtype = [&](bool isIn, int i) {
      const Operand kind = operandKind(spec.kernel, isIn, i);
      const DType dt = isIn ? in(i).dtype() : out(i).dtype();
      if (accepts(kind, dt))
        return true;
      why = (isIn ? inDesc(i) : outDesc(i)) + ": expected dtype " +
            expectedDtypes(kind);
      if (spec.kernel == Kernel::BucketAllReduceStart ||
          spec.kernel == Kernel::BucketAllReduceWait)
        why += " (a gradient bucket is one f32 span)";
      else if (kind == Operand::F32 && isFloat(dt))
        why += std::string(" ('") + spec.name +
               "' runs on f32 only: fp32 master weights, optimizer state "
               "and statistics)";
      return false;
    };
    for (size_t i = 0; i < ins_.size(); ++i)
      if (!checkDtype(true, static_cast<int>(i)))
        return false;
    for (size_t i = 0; i < outs_.size(); ++i)
      if (!checkDtype(false, static_cast<int>(i)))
        return false;

    auto fail = [&](const std::string &what, const std::string &expected) {
      why = what + ": expected " + expected;
      return false;
    };
    auto minRank = [&](bool isIn, int i, int r) {
      const plan::Tensor &t = isIn ? in(i) : out(i);
      if (rank(t) >= r)
        return true;
      return fail(isIn ? inDesc(i) : outDesc(i),
                  "rank >= " + std::to_string(r));
    };
    auto exactRank = [&](bool isIn, int i, int r) {
      const plan::Tensor &t = isIn ? in(i) : out(i);
      if (rank(t) == r)
        return true;
      return fail(isIn ? inDesc(i) : outDesc(i), "rank " + std::to_string(r));
    };
    auto numel = [&](bool isIn, int i, int64_t n) {
      const plan::Tensor &t = isIn ? in(i) : out(i);
      if (numElements(t) == n)
        return true;
      return fail(isIn ? inDesc(i) : outDesc(i),
                  std::to_string(n) + " elements");
    };
    auto lastDim = [&](bool isIn, int i, int64_t d, const char *what) {
      const plan::Tensor &t = isIn ? in(i) : out(i);
      if (rank(t) >= 1 && dim(t, -1) == d)
        return true;
      return fail(isIn ? inDesc(i) : outDesc(i),
                  std::string("last dimension ") + what + " = " +
                      std::to_string(d));
    };
    auto sameStorage = [&](int o, int i) {
      if (out(o).storage() == in(i).storage() &&
          out(o).offset() == in(i).offset() &&
          numElements(out(o)) == numElements(in(i)))
        return true;
      return fail(outDesc(o), "the storage of " + inDesc(i) +
                                  " (updated in place)");
    };
    const bool I = true, O = false;
    // Collectives keep the dtype (a 16-bit one travels as f32).
    auto sameDtype = [&]() {
      if (out(0).dtype() == in(0).dtype())
        return true;
      return fail(outDesc(0), std::string("dtype ") +
                                  dtypeName(in(0).dtype()) + " (" +
                                  inDesc(0) + "'s)");
    };

    switch (spec.kernel) {
    case Kernel::Embedding: {
      if (!exactRank(I, 0, 2))
        return false;
      int64_t d = dim(in(0), 1);
      return lastDim(O, 0, d, "D") &&
             numel(O, 0, numElements(in(1)) * d);
    }
    case Kernel::EmbeddingGrad: {
      if (!exactRank(O, 0, 2))
        return false;
      int64_t d = dim(out(0), 1);
      return lastDim(I, 0, d, "D") && numel(I, 0, numElements(in(1)) * d);
    }
    case Kernel::RmsNorm: {
      if (!exactRank(I, 1, 1))
        return false;
      int64_t d = dim(in(1), 0);
      return lastDim(I, 0, d, "D") && numel(O, 0, numElements(in(0)));
    }
    case Kernel::RmsNormGrad: {
      if (!exactRank(I, 2, 1))
        return false;
      int64_t d = dim(in(2), 0), n = numElements(in(1));
      return lastDim(I, 1, d, "D") && numel(I, 0, n) && numel(O, 0, n) &&
             numel(O, 1, d);
    }
    case Kernel::Linear: {
      if (!exactRank(I, 1, 2))
        return false;
      int64_t n = dim(in(1), 0), k = dim(in(1), 1);
      if (!lastDim(I, 0, k, "K") || !lastDim(O, 0, n, "N"))
        return false;
      return numel(O, 0, numElements(in(0)) / k * n);
    }
    case Kernel::LinearGradInput: {
      if (!exactRank(I, 1, 2))
        return false;
      int64_t n = dim(in(1), 0), k = dim(in(1), 1);
      if (!lastDim(I, 0, n, "N") || !lastDim(O, 0, k, "K"))
        return false;
      return numel(O, 0, numElements(in(0)) / n * k);
    }
    case Kernel::LinearGradWeight: {
      if (!exactRank(O, 0, 2))
        return false;
      int64_t n = dim(out(0), 0), k = dim(out(0), 1);
      if (!lastDim(I, 0, n, "N") || !lastDim(I, 1, k, "K"))
        return false;
      return numel(I, 1, numElements(in(0)) / n * k);
    }
    case Kernel::Rope:
    case Kernel::RopeGrad: {
      if (!exactRank(I, 0, 4))
        return false;
      if (dim(in(0), 3) % 2 != 0)
        return fail(inDesc(0), "an even head dimension");
      return numel(O, 0, numElements(in(0)));
    }
    case Kernel::Attention:
    case Kernel::AttentionGrad: {
      // attention: q, k, v -> out, lse; attention_grad: dout, q, k, v, out,
      // lse -> dq, dk, dv.
      int q = spec.kernel == Kernel::Attention ? 0 : 1;
      if (!exactRank(I, q, 4) || !exactRank(I, q + 1, 4) ||
          !exactRank(I, q + 2, 4))
        return false;
      int64_t b = dim(in(q), 0), s = dim(in(q), 1), h = dim(in(q), 2),
              dh = dim(in(q), 3);
      const plan::Tensor &k = in(q + 1);
      if (dim(k, 0) != b || dim(k, 1) != s || dim(k, 3) != dh)
        return fail(inDesc(q + 1), "[B, S, KV, Dh] matching q " +
                                       shapeString(in(q)));
      int64_t kv = dim(k, 2);
      if (h % kv != 0)
        return fail(inDesc(q + 1), "kv heads dividing the " +
                                       std::to_string(h) + " query heads");
      if (!numel(I, q + 2, numElements(k)))
        return false;
      int64_t nq = numElements(in(q)), nk = numElements(k);
      if (spec.kernel == Kernel::Attention)
        return numel(O, 0, nq) && numel(O, 1, b * h * s);
      return numel(I, 0, nq) && numel(I, 4, nq) && numel(I, 5, b * h * s) &&
             numel(O, 0, nq) && numel(O, 1, nk) && numel(O, 2, nk);
    }
    case Kernel::Swiglu:
    case Kernel::Add: {
      int64_t n = numElements(in(0));
      return numel(I, 1, n) && numel(O, 0, n);
    }
    case Kernel::SwigluGrad: {
      int64_t n = numElements(in(0));
      return numel(I, 1, n) && numel(I, 2, n) && numel(O, 0, n) &&
             numel(O, 1, n);
    }
    case Kernel::CrossEntropy:
    case Kernel::CrossEntropyGrad: {
      int l = spec.kernel == Kernel::CrossEntropy ? 0 : 1;
      if (!minRank(I, l, 1))
        return false;
      int64_t v = dim(in(l), -1), rows = numElements(in(l)) / v;
      if (!numel(I, l + 1, rows))
        return false;
      if (spec.kernel == Kernel::CrossEntropy)
        return numel(O, 0, 1);
      return numel(I, 0, 1) && numel(O, 0, numElements(in(l)));
    }
    case Kernel::AllGather:
      return sameDtype() && checkBlocks(attrs, /*gathered=*/true, why);
    case Kernel::ReduceScatter:
    case Kernel::AllSlice:
      return sameDtype() && checkBlocks(attrs, /*gathered=*/false, why);
    case Kernel::RowMax:
    case Kernel::RowSumExp:
    case Kernel::TargetLogit: {
      // logits [..., V] (and max [...] or targets [...]) -> out [...].
      if (!minRank(I, 0, 1))
        return false;
      int64_t rows = numElements(in(0)) / dim(in(0), -1);
      if (spec.kernel != Kernel::RowMax && !numel(I, 1, rows))
        return false;
      return numel(O, 0, rows);
    }
    case Kernel::CrossEntropyFromStats: {
      int64_t rows = numElements(in(0));
      return numel(I, 1, rows) && numel(I, 2, rows) && numel(O, 0, 1);
    }
    case Kernel::CrossEntropyGradFromStats: {
      // dloss, logits [..., V], targets, max, sumexp -> dlogits.
      if (!minRank(I, 1, 1))
        return false;
      int64_t v = dim(in(1), -1), rows = numElements(in(1)) / v;
      return numel(I, 0, 1) && numel(I, 2, rows) && numel(I, 3, rows) &&
             numel(I, 4, rows) && numel(O, 0, numElements(in(1)));
    }
    case Kernel::SumSquares:
      return numel(O, 0, 1);
    case Kernel::Sqrt:
      return numel(I, 0, 1) && numel(O, 0, 1);
    case Kernel::Constant:
      return true;
    case Kernel::GlobalNorm:
      return numel(O, 0, 1);
    case Kernel::ClipCoef:
      return numel(I, 0, 1) && numel(O, 0, 1);
    case Kernel::Scale:
      return numel(I, 1, 1) && numel(O, 0, numElements(in(0)));
    case Kernel::ClipByValue:
      return numel(O, 0, numElements(in(0)));
    case Kernel::LrSchedule:
      return numel(I, 0, 1) && numel(O, 0, 1);
    case Kernel::AllReduce:
      return sameDtype() && numel(O, 0, numElements(in(0)));
    case Kernel::AdamW: {
      int64_t n = numElements(in(0));
      return numel(I, 1, n) && numel(I, 2, n) && numel(I, 3, n) &&
             numel(I, 4, 1) && numel(I, 5, 1) &&
             (ins_.size() < 7 || numel(I, 6, 1)) && sameStorage(0, 0) &&
             sameStorage(1, 2) && sameStorage(2, 3);
    }
    case Kernel::Cast: {
      // Same shape (a reshape would be a view, not a cast).
      bool same = rank(in(0)) == rank(out(0));
      for (int i = 0; same && i < rank(in(0)); ++i)
        same = dim(in(0), i) == dim(out(0), i);
      if (!same)
        return fail(outDesc(0), "the shape of " + inDesc(0));
      return true;
    }
    case Kernel::AllFinite:
      return numel(O, 0, 1);
    case Kernel::BucketAllReduceStart:
    case Kernel::BucketAllReduceWait:
      return checkBucketOperands(spec, why);
    case Kernel::Send:
    case Kernel::Recv:
      return checkTransfer(attrs, why);
    }
    return true;
  }

  /// send / recv: `peer` another stage of the plan's grid, `tag` in [0,
  /// comm::kMaxTag]. (Whether the peer stage has the matching recv / send
  /// is checked across programs by the loader.)
  bool checkTransfer(const AttrValues &attrs, std::string &why) {
    const int64_t peer = attrs.integer[0], tag = attrs.integer[1];
    if (peer < 0 || peer >= grid_.pp || peer == program_.stage()) {
      why = "attribute 'peer' = " + std::to_string(peer) +
            ", expected another pipeline stage than this program's stage " +
            std::to_string(program_.stage()) + ", in [0, " +
            std::to_string(grid_.pp) + ") (pp = " + std::to_string(grid_.pp) +
            ")";
      return false;
    }
    if (tag < 0 || tag > comm::kMaxTag) {
      why = "attribute 'tag' = " + std::to_string(tag) + ", expected [0, " +
            std::to_string(comm::kMaxTag) + "]";
      return false;
    }
    return true;
  }

  /// A bucket's gradients lie in the arena back to back (the start's
  /// inputs: offset(g_{i+1}) = offset(g_i) + bytes(g_i), one f32 span the
  /// communicator reduces as an array), and each output is its input, in
  /// place. Whether the wait's tensors are its start's: trackBuckets().
  bool checkBucketOperands(const KernelSpec &spec, std::string &why) {
    for (size_t i = 0; i < ins_.size(); ++i) {
      const plan::Tensor &t = in(static_cast<int>(i));
      if (t.storage() != Storage::Arena) {
        why = inDesc(static_cast<int>(i)) +
              ": expected a tensor in the arena (a bucket's gradients are "
              "activations)";
        return false;
      }
      if (spec.kernel == Kernel::BucketAllReduceStart && i > 0) {
        const Extent prev = extent(in(static_cast<int>(i) - 1));
        if (t.offset() != prev.end) {
          why = inDesc(static_cast<int>(i)) + " at arena offset " +
                std::to_string(t.offset()) + ", expected " +
                std::to_string(prev.end) + " (right after input " +
                std::to_string(i - 1) +
                ": a bucket's gradients are one contiguous span)";
          return false;
        }
      }
      const Extent ei = extent(t), eo = extent(out(static_cast<int>(i)));
      if (out(static_cast<int>(i)).storage() != Storage::Arena ||
          eo.begin != ei.begin || eo.end != ei.end) {
        why = outDesc(static_cast<int>(i)) + ": expected the storage of " +
              inDesc(static_cast<int>(i)) + " (the bucket works in place)";
        return false;
      }
    }
    return true;
  }

  /// A gradient bucket between its start and its wait.
  struct InFlight {
    int64_t id;
    int start;                   ///< The start's instruction.
    int64_t begin, end;          ///< The span, arena bytes.
    std::vector<Extent> members; ///< The start's inputs.
  };

  /// Every bucket_all_reduce_start has exactly one later
  /// bucket_all_reduce_wait with its bucket id and its tensors (their
  /// extents: the compiler may give the wait's operands other tensor
  /// entries over the same storage), ids are unique, buckets in flight do
  /// not overlap, and no other instruction touches a bucket in flight
  /// (the communication thread is reducing it). Called after verifyInstr
  /// accepted `instr`, whose operands are still in ins_ / outs_.
  bool trackBuckets(int index, const plan::Instr &instr, std::string &error) {
    const KernelSpec &spec = *findKernel(str(instr.kernel()));
    const bool start = spec.kernel == Kernel::BucketAllReduceStart;
    const bool wait = spec.kernel == Kernel::BucketAllReduceWait;
    auto fail = [&](const std::string &why) {
      error = instrPrefix(index, instr) + ": " + why;
      return false;
    };
    auto bucketName = [](int64_t id) { return "bucket " + std::to_string(id); };
    if (!start && !wait) {
      // Nothing may touch a span while its all-reduce is in flight.
      for (const InFlight &b : inFlight_) {
        for (size_t k = 0; k < ins_.size() + outs_.size(); ++k) {
          const bool isIn = k < ins_.size();
          const int i = static_cast<int>(isIn ? k : k - ins_.size());
          const Extent e = extent(isIn ? in(i) : out(i));
          if (e.key == -1 && e.begin < b.end && b.begin < e.end)
            return fail((isIn ? inDesc(i) : outDesc(i)) + " lies in " +
                        bucketName(b.id) +
                        ", whose all-reduce is in flight (started by instr " +
                        std::to_string(b.start) + ", not yet waited for)");
        }
      }
      return true;
    }
    AttrValues attrs;
    std::string ignored; // Verified by verifyInstr.
    resolveAttrs(spec, instr, attrs, ignored);
    const int64_t id = attrs.integer[start ? 2 : 0];
    std::vector<Extent> members;
    for (int i = 0; i < static_cast<int>(ins_.size()); ++i)
      members.push_back(extent(in(i)));
    auto open = inFlight_.begin();
    while (open != inFlight_.end() && open->id != id)
      ++open;
    if (start) {
      if (auto it = startedBy_.find(id); it != startedBy_.end())
        return fail(bucketName(id) + " is already started by instr " +
                    std::to_string(it->second) +
                    " (bucket ids are unique in a program)");
      const int64_t begin = members.front().begin, end = members.back().end;
      for (const InFlight &b : inFlight_)
        if (begin < b.end && b.begin < end)
          return fail(bucketName(id) + " (arena bytes [" +
                      std::to_string(begin) + ", " + std::to_string(end) +
                      ")) overlaps " + bucketName(b.id) +
                      ", whose all-reduce is in flight (started by instr " +
                      std::to_string(b.start) + ")");
      startedBy_[id] = index;
      inFlight_.push_back({id, index, begin, end, std::move(members)});
      return true;
    }
    if (open == inFlight_.end()) {
      auto it = startedBy_.find(id);
      if (it == startedBy_.end())
        return fail("waits for " + bucketName(id) +
                    ", which no earlier bucket_all_reduce_start starts");
      return fail(
          bucketName(id) + " (started by instr " + std::to_string(it->second) +
          ") is already waited for by instr " + std::to_string(waitedBy_[id]));
    }
    bool same = open->members.size() == members.size();
    for (size_t i = 0; same && i < members.size(); ++i)
      same = open->members[i].begin == members[i].begin &&
             open->members[i].end == members[i].end;
    if (!same) {
      std::string mine, theirs;
      for (const Extent &e : members)
        mine += (mine.empty() ? "" : ", ") + std::to_string(e.begin) + "+" +
                std::to_string(e.end - e.begin);
      for (const Extent &e : open->members)
        theirs += (theirs.empty() ? "" : ", ") + std::to_string(e.begin) + "+" +
                  std::to_string(e.end - e.begin);
      return fail("its inputs (arena offset+bytes: " + mine +
                  ") are not the tensors of " + bucketName(id) +
                  "'s start, instr " + std::to_string(open->start) + " (" +
                  theirs + ")");
    }
    waitedBy_[id] = index;
    inFlight_.erase(open);
    return true;
  }

  /// After the last instruction: no bucket left in flight.
  bool verifyBucketsWaited(std::string &error) {
    if (inFlight_.empty())
      return true;
    const InFlight &b = inFlight_.front();
    error = instrPrefix(b.start, *program_.instrs()->Get(b.start)) +
            ": bucket " + std::to_string(b.id) +
            " is never waited for (expected a later bucket_all_reduce_wait "
            "with bucket " +
            std::to_string(b.id) + ")";
    return false;
  }

  const plan::Program &program_;
  comm::Grid grid_;
  std::string where_;
  std::vector<int64_t> argumentBytes_;
  std::vector<int> ins_, outs_;
  /// Gradient buckets (trackBuckets): started and not yet waited for, and
  /// the instruction that started / waited for each id.
  std::vector<InFlight> inFlight_;
  std::map<int64_t, int> startedBy_, waitedBy_;
};

} // namespace

bool verifyProgram(const plan::Program &program, const comm::Grid &grid,
                   const std::string &where, std::string &error) {
  return ProgramVerifier(program, grid, where).verify(error);
}

} // namespace exec
} // namespace llamac
