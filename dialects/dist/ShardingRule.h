//===- ShardingRule.h - Factor-based sharding rules -------------*- C++ -*-===//
//
// A sharding rule describes an op's iteration space as factors (OpenXLA
// Shardy's design). Every operand and result dimension is a list of factors,
// major to minor (a reshape's merged dimension has several; most have one).
// Sharding a factor over grid axes splits every dimension it is the major
// factor of. Kinds:
//  - PassThrough: may be sharded; where it is absent from a result, that
//    result becomes a partial sum over the factor's axes (a reduction).
//  - NeedReplication: never sharded (RMSNorm's hidden dimension, RoPE's
//    head dimension, attention's sequence dimension).
//  - Collective: may be sharded; the op's own partition() inserts the
//    collectives, so results are not left partial (vocab-parallel
//    cross-entropy, the global norm).
// `linear` ops (add, reshape, scale, all_reduce) keep partial sums: when all
// their `linearOperands` hold the same partial axes, so do the results.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_DIALECTS_DIST_SHARDINGRULE_H
#define LLAMAC_DIALECTS_DIST_SHARDINGRULE_H

#include "mlir/IR/Operation.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>

namespace llamac::dist {

class ShardingAttr;

enum class FactorKind : uint8_t { PassThrough, NeedReplication, Collective };

/// Factors of one tensor: per dimension, factor ids major to minor.
using TensorFactors = llvm::SmallVector<llvm::SmallVector<int, 1>, 4>;

struct ShardingRule {
  llvm::SmallVector<int64_t> factorSizes;
  llvm::SmallVector<FactorKind> kinds;
  llvm::SmallVector<TensorFactors> operands;
  llvm::SmallVector<TensorFactors> results;
  /// Partial sums on these operands pass through to every result.
  llvm::SmallVector<unsigned> linearOperands;

  int numFactors() const { return static_cast<int>(factorSizes.size()); }
  /// Adds a factor of `size`; returns its id.
  int factor(int64_t size, FactorKind kind = FactorKind::PassThrough) {
    factorSizes.push_back(size);
    kinds.push_back(kind);
    return numFactors() - 1;
  }
  /// Appends an operand / result whose dimension d has the single factor
  /// dims[d] (-1: a dimension no factor describes, always unsplit).
  void operand(llvm::ArrayRef<int> dims) { operands.push_back(single(dims)); }
  void result(llvm::ArrayRef<int> dims) { results.push_back(single(dims)); }
  /// A scalar (rank-0) operand or result.
  void scalarOperand() { operands.emplace_back(); }
  void scalarResult() { results.emplace_back(); }

  /// Whether `factor` is a dimension factor of result `r`.
  bool resultHasFactor(unsigned r, int factor) const;

private:
  static TensorFactors single(llvm::ArrayRef<int> dims);
};

/// The device grid the shardings refer to: `shard.grid @world`.
struct GridInfo {
  llvm::SmallVector<int64_t, 3> shape; ///< [pp, dp, tp]
  llvm::StringRef symbol = "world";
  /// Product of the extents of `axes`.
  int64_t size(llvm::ArrayRef<int16_t> axes) const;
};

/// Grid axis names: 0 = "pp", 1 = "dp", 2 = "tp".
llvm::StringRef axisName(int16_t axis);
/// Inverse of axisName; -1 for an unknown name.
int16_t axisIndex(llvm::StringRef name);

/// The local (per-rank) shape of a tensor of `shape` under `sharding`;
/// fails when an extent does not divide the dimension.
mlir::FailureOr<llvm::SmallVector<int64_t>>
localShape(llvm::ArrayRef<int64_t> shape, ShardingAttr sharding,
           const GridInfo &grid);
/// `type` with its local shape (the type itself when unsharded).
mlir::Type localType(mlir::Type type, ShardingAttr sharding,
                     const GridInfo &grid);

/// The default partition(): clones `op` with the local operands and result
/// types computed from `results`.
mlir::LogicalResult clonePartitioned(mlir::Operation *op,
                                     mlir::OpBuilder &builder,
                                     mlir::ValueRange localOperands,
                                     llvm::ArrayRef<ShardingAttr> results,
                                     const GridInfo &grid,
                                     llvm::SmallVectorImpl<mlir::Value> &out);

/// The rule of `op`: from ShardingRuleOpInterface, or the built-in rules of
/// upstream ops we use (shard.all_reduce: pass-through, linear). Ops with no
/// rule get none (std::nullopt): propagation treats them as a boundary whose
/// operands and results are replicated.
std::optional<ShardingRule> getShardingRule(mlir::Operation *op);

/// Attaches the built-in rules to upstream ops (shard.all_reduce).
void registerExternalShardingRules(mlir::DialectRegistry &registry);

} // namespace llamac::dist

#endif // LLAMAC_DIALECTS_DIST_SHARDINGRULE_H
