//===- DistDialect.td - The dist sharding dialect ----------*- tablegen -*-===//
//
// Our sharding representation (DESIGN.md B, "Sharding"): a per-dimension
// assignment of device-grid axes plus partial-sum axes, open/closed
// dimensions and annotation priorities; the op interface through which every
// op states its factor-based sharding rule; and the one op users write to
// pin a tensor's sharding. Collectives are upstream `shard` ops.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_DIST_DIALECT
#define LLAMAC_DIST_DIALECT

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Dist_Dialect : Dialect {
  let name = "dist";
  let summary = "Tensor shardings over the device grid, and sharding rules";
  let description = [{
    The device grid is `shard.grid @world(shape = PP x DP x TP)` with axes
    named `pp`, `dp` and `tp` (DESIGN.md A4). A `#dist.sharding` says, for
    each dimension of a tensor, which grid axes split it (major to minor), and
    which axes hold *partial sums* of the tensor (each rank of the group has
    an addend; the full value is their sum). Dimensions are closed unless
    marked open (`?`): propagation may add axes to open dimensions only.
    User annotations carry a priority (`p0` strongest).

    Every op that can be sharded implements `ShardingRuleOpInterface`:
    a factor-based rule (as in OpenXLA Shardy) that maps each operand and
    result dimension to factors, and, where needed, its own local rewrite.
    `llm-sharding-propagation` and `llm-spmd-partition` use only that
    interface.
  }];
  let cppNamespace = "::llamac::dist";
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::shard::ShardDialect"];
}

class Dist_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Dist_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Dist_DimShardingAttr : Dist_Attr<"DimSharding", "dim"> {
  let summary = "The grid axes splitting one tensor dimension";
  let description = [{
    `axes` are grid axis indices (0 = pp, 1 = dp, 2 = tp), major first.
    `open` lets propagation add axes. Printed inside `#dist.sharding` as
    `{tp}`, `{}` or `{?}` (open).
  }];
  let parameters = (ins ArrayRefParameter<"int16_t">:$axes, "bool":$open);
  let assemblyFormat = "`<` `[` $axes `]` `,` $open `>`";
}

def Dist_ShardingAttr : Dist_Attr<"Sharding", "sharding"> {
  let summary = "The sharding of a tensor over the device grid";
  let description = [{
    ```mlir
    #dist.sharding<[{}, {tp} ]>              // columns split over tp
    #dist.sharding<[{}, {?}, {} ], p1>       // open dim 1, priority 1
    #dist.sharding<[{}, {}, {} ], partial = {tp}> // sums over tp pending
    ```
    `partial` axes are pending sum reductions. `priority` is -1 (none) for
    propagated shardings and >= 0 for user annotations (0 strongest).
  }];
  let parameters = (ins ArrayRefParameter<"DimShardingAttr">:$dims,
                        ArrayRefParameter<"int16_t">:$partial,
                        "int64_t":$priority);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Grid axes splitting dimension `d`.
    ::llvm::ArrayRef<int16_t> axes(unsigned d) const {
      return getDims()[d].getAxes();
    }
    /// Every axis that splits some dimension.
    ::llvm::SmallVector<int16_t> shardedAxes() const;
    /// Whether no dimension is split and nothing is partial.
    bool isReplicated() const;
    /// The same sharding without pending partial sums and without priority.
    ShardingAttr withoutPartial() const;
    /// Fully replicated, closed, of rank `rank`.
    static ShardingAttr replicated(::mlir::MLIRContext *ctx, unsigned rank);
    /// From per-dimension axes (closed), partial axes and a priority.
    static ShardingAttr get(::mlir::MLIRContext *ctx,
                            ::llvm::ArrayRef<::llvm::SmallVector<int16_t>> dims,
                            ::llvm::ArrayRef<int16_t> partial = {},
                            int64_t priority = -1);
  }];
}

def Dist_ConstraintOp : Op<Dist_Dialect, "constraint",
    [Pure, SameOperandsAndResultType]> {
  let summary = "Pin the sharding of a tensor";
  let description = [{
    The result is the operand, with the given sharding: propagation treats
    it as an annotation of that priority, and `llm-spmd-partition` reshards
    the operand to it (inserting collectives) and then removes the op.

    ```mlir
    %h1 = dist.constraint %h <[{}, {tp}, {} ], p2> : tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, Dist_ShardingAttr:$sharding);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input custom<ShardingBody>($sharding) attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Dist_BucketAllReduceOp : Op<Dist_Dialect, "bucket_all_reduce",
    [SameVariadicOperandSize, AllTypesMatch<["inputs", "results"]>]> {
  let summary = "Start the sum all-reduce of a bucket of gradients";
  let description = [{
    Data-parallel gradient buckets (`llm-allreduce-bucketing`): the operands
    are laid out back to back in one arena region (the bucket buffer; each
    gradient is a view into it, written there by its producer), and one
    all-reduce of the whole region starts here, asynchronously, on the
    collectives' own thread. The results are the operands, reduced once the
    matching `dist.bucket_wait` returns; nothing may read them before.

    ```mlir
    %r:2 = dist.bucket_all_reduce %g0, %g1 on @world grid_axes = [1] bucket 0
        : tensor<64xf32>, tensor<64x64xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs,
                   FlatSymbolRefAttr:$grid, DenseI16ArrayAttr:$grid_axes,
                   I64Attr:$bucket);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $inputs `on` $grid `grid_axes` `=` $grid_axes `bucket` $bucket attr-dict
    `:` type($inputs)
  }];
  let hasVerifier = 1;
}

def Dist_BucketWaitOp : Op<Dist_Dialect, "bucket_wait",
    [AllTypesMatch<["inputs", "results"]>]> {
  let summary = "Wait for a bucket's all-reduce";
  let description = [{
    Placed right before the first reader of any of the bucket's gradients
    (the optimizer), so that the backward pass after the bucket's last
    producer overlaps its communication.

    ```mlir
    %w:2 = dist.bucket_wait %r#0, %r#1 bucket 0 : tensor<64xf32>, tensor<64x64xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs, I64Attr:$bucket);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = "$inputs `bucket` $bucket attr-dict `:` type($inputs)";
}

def Dist_PartialOp : Op<Dist_Dialect, "partial",
    [Pure, SameOperandsAndResultType]> {
  let summary = "Declare a tensor to be one addend of a sum over grid axes";
  let description = [{
    The result is the operand, seen as this rank's addend of a sum over
    `grid_axes` that is still pending: `llm-sharding-propagation` gives it
    those partial axes, and `llm-spmd-partition` reduces them where a user
    needs them, as an all-reduce, or as a reduce-scatter where the user
    wants the tensor split over the same axes (ZeRO-1: data-parallel
    gradients reduce-scattered onto the optimizer's shards).

    ```mlir
    %g1 = dist.partial %g over [1] : tensor<64x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, DenseI16ArrayAttr:$grid_axes);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `over` $grid_axes attr-dict `:` type($result)";
}

def Dist_SendOp : Op<Dist_Dialect, "send"> {
  let summary = "Send a tensor to another pipeline stage";
  let description = [{
    Sends `input` to the rank with the same data- and tensor-parallel
    coordinates on pipeline stage `peer` (a coordinate of grid axis 0), where
    a `dist.recv` with this stage as its peer and the same `tag` receives
    it. `llm-pipeline-partition` inserts the pairs: activations cross a
    stage boundary forward, their gradients backward. The send does not
    wait for the receiver (the runtime stages the data), so any schedule
    whose receives follow their sends in every stage's order is free of
    deadlocks; upstream `shard.send`/`shard.recv` have no tag and need a
    placeholder operand for the receive, hence these two ops.

    ```mlir
    dist.send %h to 1 tag 3 : tensor<1x16x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$peer, I64Attr:$tag);
  let assemblyFormat = "$input `to` $peer `tag` $tag attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Dist_RecvOp : Op<Dist_Dialect, "recv"> {
  let summary = "Receive a tensor from another pipeline stage";
  let description = [{
    Receives the tensor that stage `peer` sends with `dist.send` and the same
    `tag`; blocks until it has arrived. The result type must equal the sent
    tensor's type.

    ```mlir
    %h = dist.recv from 0 tag 3 : tensor<1x16x64xf32>
    ```
  }];
  let arguments = (ins I64Attr:$peer, I64Attr:$tag);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "`from` $peer `tag` $tag attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // LLAMAC_DIST_DIALECT
