//===- LrtDialect.cpp - The lrt runtime-level dialect ---------------------===//
#include "dialects/lrt/LrtDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace llamac::lrt;

#include "dialects/lrt/LrtDialect.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/lrt/LrtOps.cpp.inc"

void LrtDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/lrt/LrtOps.cpp.inc"
      >();
}

int64_t llamac::lrt::tensorBytes(RankedTensorType type) {
  int64_t bits = type.getElementType().getIntOrFloatBitWidth();
  return type.getNumElements() * std::max<int64_t>(bits / 8, 1);
}

LogicalResult KernelOp::verify() {
  if (getKernel().empty())
    return emitOpError("requires a kernel name");
  if (auto inplace = getInplace()) {
    if (inplace->size() != getNumResults())
      return emitOpError("'inplace' has ")
             << inplace->size() << " entries for " << getNumResults()
             << " results";
    for (auto [i, operand] : llvm::enumerate(*inplace)) {
      if (operand < -1 || operand >= int64_t(getNumOperands()))
        return emitOpError("'inplace' entry ")
               << i << " names operand " << operand << " of "
               << getNumOperands();
      if (operand >= 0 &&
          getOperand(operand).getType() != getResult(i).getType())
        return emitOpError("result #")
               << i << " reuses operand #" << operand
               << " of a different type";
    }
  }
  if (auto offsets = getOffsets()) {
    if (offsets->size() != getNumResults())
      return emitOpError("'offsets' has ")
             << offsets->size() << " entries for " << getNumResults()
             << " results";
    for (int64_t offset : *offsets)
      if (offset < -1 || (offset >= 0 && offset % kArenaAlignment != 0))
        return emitOpError("arena offset ")
               << offset << " is not " << kArenaAlignment
               << "-byte aligned";
  }
  return success();
}

LogicalResult ViewOp::verify() {
  auto in = cast<RankedTensorType>(getSource().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (in.getElementType() != out.getElementType() ||
      !in.hasStaticShape() || !out.hasStaticShape() ||
      in.getNumElements() != out.getNumElements())
    return emitOpError("cannot view ")
           << in << " as " << out
           << ": element type and count must match";
  return success();
}
