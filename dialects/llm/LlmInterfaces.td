//===- LlmInterfaces.td - Op interfaces of the llm dialect -*- tablegen -*-===//

#ifndef LLAMAC_LLM_INTERFACES
#define LLAMAC_LLM_INTERFACES

include "mlir/IR/OpBase.td"

def LlmGradientOpInterface : OpInterface<"GradientOpInterface"> {
  let cppNamespace = "::llamac::llm";
  let description = [{
    The reverse-mode gradient (vector-Jacobian product) rule of an op.

    Given the gradients of the op's results (a null Value for a result that
    does not reach the loss), the op builds, at the builder's insertion point,
    the gradients of its operands. Operands that are not differentiable
    (token ids, targets) get a null Value.

    The autodiff pass calls only this interface: adding a differentiable op
    means implementing this rule, never editing the pass.
  }];
  let methods = [
    InterfaceMethod<
      /*desc=*/"Build operand gradients from result gradients.",
      /*retTy=*/"::mlir::LogicalResult",
      /*methodName=*/"buildGradient",
      /*args=*/(ins "::mlir::OpBuilder &":$builder,
                    "::llvm::ArrayRef<::mlir::Value>":$resultGrads,
                    "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

def LlmCostModelOpInterface : OpInterface<"CostModelOpInterface"> {
  let cppNamespace = "::llamac::llm";
  let description = [{
    What an op costs: the floating-point operations it performs and the
    bytes it reads and writes, for its operand and result types as they are
    (per rank after partitioning). The same estimates feed `llamac compile
    --report` and pipeline-stage balancing. The defaults count one flop per
    result element and every operand and result byte once; ops whose cost
    is not elementwise (matmuls, attention, normalisations, the loss, the
    optimizer) override the flop count.
  }];
  let methods = [
    InterfaceMethod<
      /*desc=*/"Floating-point operations of one execution.",
      /*retTy=*/"int64_t", /*methodName=*/"estimateFlops", /*args=*/(ins),
      /*methodBody=*/"",
      /*defaultImplementation=*/[{
        return ::llamac::llm::elementwiseFlops($_op);
      }]>,
    InterfaceMethod<
      /*desc=*/"Bytes read and written (each operand and result once).",
      /*retTy=*/"int64_t", /*methodName=*/"estimateBytes", /*args=*/(ins),
      /*methodBody=*/"",
      /*defaultImplementation=*/[{
        return ::llamac::llm::tensorBytes($_op);
      }]>
  ];
}

#endif // LLAMAC_LLM_INTERFACES
