//===- DistDialect.h - The dist sharding dialect -----------------*- C++ -*-===//
#ifndef LLAMAC_DIALECTS_DIST_DISTDIALECT_H
#define LLAMAC_DIALECTS_DIST_DISTDIALECT_H

#include "dialects/dist/ShardingRule.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/dist/DistDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/dist/DistAttrs.h.inc"

#include "dialects/dist/DistInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/dist/DistOps.h.inc"

namespace llamac::dist {
/// Attribute names: the sharding of a function argument or of an op's
/// results (an array, one per result), and what an op needs of its operands.
inline constexpr llvm::StringLiteral kShardingAttr = "dist.sharding";
inline constexpr llvm::StringLiteral kOperandsAttr = "dist.operands";
/// Tags of dist.send / dist.recv pairs are below this (MPI_TAG_UB >= 32767).
inline constexpr int64_t kMaxTransferTag = 32767;
} // namespace llamac::dist

#endif // LLAMAC_DIALECTS_DIST_DISTDIALECT_H
