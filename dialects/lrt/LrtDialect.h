//===- LrtDialect.h - The lrt runtime-level dialect --------------*- C++ -*-===//
#ifndef LLAMAC_DIALECTS_LRT_LRTDIALECT_H
#define LLAMAC_DIALECTS_LRT_LRTDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/lrt/LrtDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/lrt/LrtOps.h.inc"

namespace llamac::lrt {
/// Function attribute set by lrt-memory-plan: the arena size in bytes.
inline constexpr llvm::StringLiteral kArenaBytesAttr = "lrt.arena_bytes";
/// Byte alignment of every arena buffer.
inline constexpr int64_t kArenaAlignment = 64;
/// Bytes of a statically shaped tensor.
int64_t tensorBytes(mlir::RankedTensorType type);
} // namespace llamac::lrt

#endif // LLAMAC_DIALECTS_LRT_LRTDIALECT_H
