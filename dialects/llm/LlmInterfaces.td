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

#endif // LLAMAC_LLM_INTERFACES
