//===- ExportPlan.cpp - lrt program -> plan file --------------------------===//
#include "dialects/lrt/ExportPlan.h"
#include "dialects/dist/DistDialect.h"
#include "dialects/llm/LlmOps.h"
#include "dialects/lrt/LrtDialect.h"

#include "plan/PlanFormat.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace llamac;
namespace fb = flatbuffers;

namespace {

/// Builds one Program table: numbers tensors as they are defined and
/// records where each one's storage lives.
class ProgramWriter {
public:
  ProgramWriter(fb::FlatBufferBuilder &b, func::FuncOp f) : fbb(b), func(f) {}
  FailureOr<fb::Offset<plan::Program>> write(int rank, int stage,
                                             int64_t workspaceBytes);

private:
  struct Storage {
    plan::Storage kind;
    int64_t offset;
  };
  FailureOr<int> addTensor(Value v, Storage storage, StringRef name);
  fb::Offset<fb::Vector<int32_t>> indices(ValueRange values);

  fb::FlatBufferBuilder &fbb;
  func::FuncOp func;
  DenseMap<Value, int> tensorIndex;
  DenseMap<Value, Storage> storageOf;
  std::vector<fb::Offset<plan::Tensor>> tensors;
};

} // namespace

static FailureOr<plan::DType> dtypeOf(Type t) {
  if (t.isF32())
    return plan::DType::F32;
  if (t.isF64())
    return plan::DType::F64;
  if (t.isBF16())
    return plan::DType::BF16;
  if (t.isF16())
    return plan::DType::F16;
  if (t.isInteger(32))
    return plan::DType::I32;
  if (t.isInteger(64))
    return plan::DType::I64;
  if (t.isInteger(1))
    return plan::DType::I1;
  return failure();
}

static std::string locName(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  return "";
}

FailureOr<int> ProgramWriter::addTensor(Value v, Storage storage,
                                        StringRef name) {
  auto type = cast<RankedTensorType>(v.getType());
  FailureOr<plan::DType> dtype = dtypeOf(type.getElementType());
  if (failed(dtype)) {
    emitError(v.getLoc(), "the plan cannot hold element type ")
        << type.getElementType();
    return failure();
  }
  std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
  int index = tensors.size();
  tensors.push_back(plan::CreateTensorDirect(fbb, name.str().c_str(), *dtype,
                                             &shape, storage.kind,
                                             storage.offset));
  tensorIndex[v] = index;
  storageOf[v] = storage;
  return index;
}

fb::Offset<fb::Vector<int32_t>> ProgramWriter::indices(ValueRange values) {
  std::vector<int32_t> ids;
  for (Value v : values)
    ids.push_back(tensorIndex.lookup(v));
  return fbb.CreateVector(ids);
}

static std::string stringAttr(DictionaryAttr attrs, StringRef name) {
  if (!attrs)
    return "";
  if (auto s = attrs.getAs<StringAttr>(name))
    return s.getValue().str();
  return "";
}

FailureOr<fb::Offset<plan::Program>>
ProgramWriter::write(int rank, int stage, int64_t workspaceBytes) {
  auto arenaBytes = func->getAttrOfType<IntegerAttr>(lrt::kArenaBytesAttr);
  if (!arenaBytes)
    return func.emitError("has no memory plan; run lrt-memory-plan first");

  // 1. Arguments: persistent buffers owned by the runtime.
  std::vector<fb::Offset<plan::Argument>> arguments;
  for (BlockArgument arg : func.getArguments()) {
    DictionaryAttr attrs = func.getArgAttrDict(arg.getArgNumber());
    std::string role = stringAttr(attrs, "llm.role");
    std::string param = stringAttr(attrs, "llm.param");
    if (role.empty())
      return func.emitError("argument #")
             << arg.getArgNumber() << " has no llm.role";
    FailureOr<int> t = addTensor(
        arg, {plan::Storage::Argument, int64_t(arg.getArgNumber())},
        param.empty() ? role : param);
    if (failed(t))
      return failure();
    // A split argument holds one block of the full tensor (the runtime
    // initialises, loads and saves full tensors block by block).
    int32_t shardDim = -1;
    std::vector<int64_t> shardAxes;
    if (auto sharding = attrs ? attrs.getAs<dist::ShardingAttr>(
                                    dist::kShardingAttr)
                              : dist::ShardingAttr()) {
      if (!sharding.getPartial().empty())
        return func.emitError("argument #")
               << arg.getArgNumber() << " holds partial sums " << sharding;
      for (auto [d, dim] : llvm::enumerate(sharding.getDims())) {
        if (dim.getAxes().empty())
          continue;
        if (shardDim >= 0)
          return func.emitError("argument #")
                 << arg.getArgNumber() << " (" << param
                 << ") is split along more than one dimension " << sharding
                 << "; the runtime keeps one split dimension per tensor";
        shardDim = static_cast<int32_t>(d);
        shardAxes.assign(dim.getAxes().begin(), dim.getAxes().end());
      }
    }
    arguments.push_back(plan::CreateArgumentDirect(
        fbb, role.c_str(), param.c_str(), *t, shardDim,
        shardAxes.empty() ? nullptr : &shardAxes));
  }

  // 2. Instructions in program order.
  std::vector<fb::Offset<plan::Instr>> instrs;
  for (Operation &op : func.getBody().front()) {
    if (auto view = dyn_cast<lrt::ViewOp>(op)) {
      if (failed(addTensor(view, storageOf.lookup(view.getSource()),
                           locName(view.getLoc()))))
        return failure();
      continue;
    }
    if (isa<func::ReturnOp>(op))
      continue;
    auto kernel = dyn_cast<lrt::KernelOp>(op);
    if (!kernel)
      return op.emitError("cannot export op '")
             << op.getName() << "' to a plan; lower to lrt first";
    auto offsets = kernel.getOffsets();
    if (!offsets)
      return kernel.emitError("has no arena offsets; run lrt-memory-plan");
    std::optional<ArrayRef<int64_t>> inplace = kernel.getInplace();
    for (auto [i, result] : llvm::enumerate(kernel.getResults())) {
      Storage storage{plan::Storage::Arena, (*offsets)[i]};
      if (inplace && (*inplace)[i] >= 0)
        storage = storageOf.lookup(kernel.getOperand((*inplace)[i]));
      if (failed(addTensor(result, storage, locName(kernel.getLoc()))))
        return failure();
    }
    std::vector<fb::Offset<plan::Attr>> attrs;
    for (NamedAttribute attr : kernel.getParams()) {
      int64_t ival = 0;
      double fval = 0;
      std::vector<int64_t> ints;
      std::string str;
      if (auto i = dyn_cast<IntegerAttr>(attr.getValue()))
        ival = i.getInt(), fval = double(ival);
      else if (auto f = dyn_cast<FloatAttr>(attr.getValue()))
        fval = f.getValueAsDouble();
      else if (auto list = dyn_cast<DenseI64ArrayAttr>(attr.getValue()))
        ints.assign(list.asArrayRef().begin(), list.asArrayRef().end());
      else if (auto s = dyn_cast<StringAttr>(attr.getValue()))
        str = s.getValue().str();
      else
        return kernel.emitError("parameter '")
               << attr.getName()
               << "' is not an integer, float, integer list or string";
      attrs.push_back(plan::CreateAttrDirect(fbb, attr.getName().str().c_str(),
                                             ival, fval, &ints, str.c_str()));
    }
    // The pipeline schedule position, where llm-pipeline-partition set it.
    int32_t microbatch = -1;
    plan::Phase phase = plan::Phase::None;
    if (auto mb = kernel->getAttrOfType<IntegerAttr>(llm::kMicrobatchAttr))
      microbatch = static_cast<int32_t>(mb.getInt());
    if (auto p = kernel->getAttrOfType<StringAttr>(llm::kPhaseAttr))
      phase = p.getValue() == "forward" ? plan::Phase::Forward
                                        : plan::Phase::Backward;
    instrs.push_back(plan::CreateInstr(
        fbb, fbb.CreateString(kernel.getKernel().str()),
        indices(kernel.getInputs()), indices(kernel.getResults()),
        fbb.CreateVector(attrs), fbb.CreateString(locName(kernel.getLoc())),
        microbatch, phase));
  }

  // 3. Results.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  std::vector<fb::Offset<plan::Result>> results;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    DictionaryAttr attrs = func.getResultAttrDict(i);
    std::string role = stringAttr(attrs, "llm.role");
    if (role.empty())
      return func.emitError("result #") << i << " has no llm.role";
    if (!tensorIndex.count(v))
      return func.emitError("result #") << i << " is not computed by a kernel";
    results.push_back(plan::CreateResultDirect(
        fbb, role.c_str(), stringAttr(attrs, "llm.param").c_str(),
        tensorIndex.lookup(v)));
  }
  return plan::CreateProgram(fbb, rank, stage,
                             fbb.CreateVector(tensors),
                             fbb.CreateVector(arguments),
                             fbb.CreateVector(results),
                             fbb.CreateVector(instrs), arenaBytes.getInt(),
                             workspaceBytes);
}

LogicalResult llamac::exportPlan(ModuleOp module, const PlanMetadata &meta,
                                 std::string &bytes) {
  fb::FlatBufferBuilder fbb(1 << 16);
  // A single function is the SPMD program of every rank; with pipeline
  // stages, one function per stage (llm.stage) is the SPMD program of the
  // stage's dp x tp ranks (rank = (stage * dp + d) * tp + t, DESIGN A4).
  SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
  int worldSize = meta.dp * meta.tp * meta.pp;
  if (funcs.empty())
    return module.emitError("contains no function to export");
  SmallVector<func::FuncOp> stages(meta.pp);
  if (funcs.size() == 1 && meta.pp == 1) {
    stages[0] = funcs.front();
  } else {
    for (func::FuncOp f : funcs) {
      auto stage = f->getAttrOfType<IntegerAttr>(llm::kStageAttr);
      if (!stage || stage.getInt() < 0 || stage.getInt() >= meta.pp ||
          stages[stage.getInt()])
        return f.emitError("expected one function per pipeline stage "
                           "0..")
               << meta.pp - 1 << " (attribute " << llm::kStageAttr << ")";
      stages[stage.getInt()] = f;
    }
    for (auto [s, f] : llvm::enumerate(stages))
      if (!f)
        return module.emitError("has no function for pipeline stage ") << s;
  }
  std::vector<fb::Offset<plan::Program>> programs;
  for (int rank = 0; rank < worldSize; ++rank) {
    int stage = rank / (meta.dp * meta.tp);
    FailureOr<fb::Offset<plan::Program>> program =
        ProgramWriter(fbb, stages[stage])
            .write(rank, stage, meta.workspaceBytes);
    if (failed(program))
      return failure();
    programs.push_back(*program);
  }
  auto root = plan::CreatePlanDirect(
      fbb, plan::kPlanFormatVersion, meta.modelConfigJson.c_str(),
      meta.trainConfigJson.c_str(), meta.dp, meta.tp, meta.pp,
      meta.precision.c_str(), &programs);
  plan::FinishPlanBuffer(fbb, root);
  bytes.assign(reinterpret_cast<const char *>(fbb.GetBufferPointer()),
               fbb.GetSize());
  return success();
}
