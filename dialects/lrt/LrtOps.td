//===- LrtOps.td - The lrt runtime-level dialect ------------*- tablegen -*-===//

#ifndef LLAMAC_LRT_OPS
#define LLAMAC_LRT_OPS

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"

def Lrt_Dialect : Dialect {
  let name = "lrt";
  let summary = "Runtime-level ops: backend-neutral kernel calls over buffers";
  let description = [{
    The last IR before the plan file. Each `lrt.kernel` names a runtime kernel
    (the llm op it came from); `lrt.view` reinterprets a buffer without moving
    data. After `lrt-memory-plan`, every kernel result carries its byte offset
    in the rank's activation arena (`offsets`) and the function carries
    `lrt.arena_bytes`. Results listed in `inplace` reuse the storage of an
    operand (AdamW updates parameters and moments in place).
  }];
  let cppNamespace = "::llamac::lrt";
}

def Lrt_KernelOp : Op<Lrt_Dialect, "kernel", [Pure]> {
  let summary = "Call a backend-neutral runtime kernel";
  let description = [{
    `kernel` is the kernel name (docs/plan-format.md); `params` its attributes.
    `inplace`, when present, gives for each result the index of the operand
    whose storage it reuses (-1: a fresh arena buffer).

    ```mlir
    %y = lrt.kernel "rms_norm"(%x, %w) {params = {eps = 1.0e-05 : f64}}
        : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$kernel, Variadic<AnyRankedTensor>:$inputs,
                   DictionaryAttr:$params,
                   OptionalAttr<DenseI64ArrayAttr>:$inplace,
                   OptionalAttr<DenseI64ArrayAttr>:$offsets);
  let results = (outs Variadic<AnyRankedTensor>:$outputs);
  let assemblyFormat = [{
    $kernel `(` $inputs `)` attr-dict `:` functional-type($inputs, $outputs)
  }];
  let hasVerifier = 1;
}

def Lrt_ViewOp : Op<Lrt_Dialect, "view", [Pure]> {
  let summary = "Reinterpret a buffer with another shape (no data movement)";
  let description = [{
    ```mlir
    %q4 = lrt.view %q : tensor<2x8x64xf32> to tensor<2x8x4x16xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$source);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$source attr-dict `:` type($source) `to` type($result)";
  let hasVerifier = 1;
}

#endif // LLAMAC_LRT_OPS
