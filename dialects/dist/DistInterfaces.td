//===- DistInterfaces.td - Sharding rule op interface ------*- tablegen -*-===//
#ifndef LLAMAC_DIST_INTERFACES
#define LLAMAC_DIST_INTERFACES

include "mlir/IR/OpBase.td"

def Dist_ShardingRuleOpInterface : OpInterface<"ShardingRuleOpInterface"> {
  let cppNamespace = "::llamac::dist";
  let description = [{
    How an op shards: a factor-based rule (dialects/dist/ShardingRule.h).
    Each operand and result dimension maps to factors; a factor sharded over
    some grid axes splits every dimension it appears in. A factor absent from
    a result is a reduction for that result: when it is sharded, the result
    holds partial sums. Factors can be marked need-replication (never
    sharded) or collective (sharded, with the op's own `partition` inserting
    the communication, e.g. the vocab-parallel cross-entropy).

    `partition` builds the op's per-rank computation from local operands
    already resharded to what the rule asked for. The default clones the op
    with local result types; ops whose local math depends on the rank
    (embedding rows, vocabulary offsets) or that need collectives override it.
  }];
  let methods = [
    InterfaceMethod<
      /*desc=*/"The op's factor-based sharding rule.",
      /*retTy=*/"::llamac::dist::ShardingRule",
      /*methodName=*/"getShardingRule">,
    InterfaceMethod<
      /*desc=*/[{Builds the per-rank op(s) from local operands. `operands`
        and `results` are the shardings the partitioner chose; results are
        the local values replacing the op's results, of the local types.}],
      /*retTy=*/"::mlir::LogicalResult",
      /*methodName=*/"partition",
      /*args=*/(ins "::mlir::OpBuilder &":$builder,
                    "::mlir::ValueRange":$localOperands,
                    "::llvm::ArrayRef<::llamac::dist::ShardingAttr>":$operands,
                    "::llvm::ArrayRef<::llamac::dist::ShardingAttr>":$results,
                    "const ::llamac::dist::GridInfo &":$grid,
                    "::llvm::SmallVectorImpl<::mlir::Value> &":$localResults),
      /*methodBody=*/"",
      /*defaultImplementation=*/[{
        return ::llamac::dist::clonePartitioned($_op, builder, localOperands,
                                                results, grid, localResults);
      }]>
  ];
}

#endif // LLAMAC_DIST_INTERFACES
