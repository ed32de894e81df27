//===- PassUtils.h - Helpers shared by llamac passes -------------*- C++ -*-===//
//
// Reading and writing the `llm.role` / `llm.param` attributes that tell what
// each argument and result of a training step is.
//
//===----------------------------------------------------------------------===//
#ifndef LLAMAC_PASSES_PASSUTILS_H
#define LLAMAC_PASSES_PASSUTILS_H

#include "dialects/llm/LlmOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"


namespace llamac {

/// The `llm.role` of result `i`, or "" when it has none.
inline llvm::StringRef resultRole(mlir::func::FuncOp f, unsigned i) {
  if (auto a = f.getResultAttrOfType<mlir::StringAttr>(i, llm::kRoleAttr))
    return a.getValue();
  return "";
}

/// The `llm.param` name of result `i`, or "".
inline llvm::StringRef resultParam(mlir::func::FuncOp f, unsigned i) {
  if (auto a = f.getResultAttrOfType<mlir::StringAttr>(i, llm::kParamAttr))
    return a.getValue();
  return "";
}

/// On a data-parallel gradient all-reduce: the parameter it reduces.
inline constexpr llvm::StringLiteral kGradReductionAttr = "llm.grad";

/// The `llm.param` name of argument `i`, or "" when it is not a parameter.
inline llvm::StringRef argParamName(mlir::func::FuncOp f, unsigned i) {
  if (auto a = f.getArgAttrOfType<mlir::StringAttr>(i, llm::kParamAttr))
    return a.getValue();
  return "";
}

/// An attribute dictionary {llm.role = role[, llm.param = param]}.
inline mlir::DictionaryAttr roleAttrs(mlir::Builder &b, llvm::StringRef role,
                                      llvm::StringRef param = "") {
  llvm::SmallVector<mlir::NamedAttribute> attrs;
  if (!param.empty())
    attrs.push_back(b.getNamedAttr(llm::kParamAttr, b.getStringAttr(param)));
  attrs.push_back(b.getNamedAttr(llm::kRoleAttr, b.getStringAttr(role)));
  return b.getDictionaryAttr(attrs);
}

/// The index of the first result with `role`, or -1.
inline int findResult(mlir::func::FuncOp f, llvm::StringRef role) {
  for (unsigned i = 0, e = f.getNumResults(); i < e; ++i)
    if (resultRole(f, i) == role)
      return i;
  return -1;
}

} // namespace llamac

#endif // LLAMAC_PASSES_PASSUTILS_H
