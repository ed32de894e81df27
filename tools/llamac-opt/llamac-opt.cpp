//===- llamac-opt.cpp - mlir-opt with the llamac dialects and passes ------===//
//
// The tool behind the lit suites: parses .mlir, runs any registered pass or
// pipeline, prints the result.
//
//===----------------------------------------------------------------------===//
#include "dialects/llm/LlmDialect.h"
#include "dialects/lrt/LrtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  llamac::registerLlamacDialects(registry);
  registry.insert<mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();
  llamac::registerLlamacPasses();
  llamac::registerTrainPipeline();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "llamac optimizer driver\n", registry));
}
