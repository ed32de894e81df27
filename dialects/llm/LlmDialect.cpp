//===- LlmDialect.cpp - The llm dialect -----------------------------------===//
#include "dialects/llm/LlmDialect.h"
#include "dialects/llm/LlmOps.h"

using namespace mlir;
using namespace llamac::llm;

#include "dialects/llm/LlmDialect.cpp.inc"
#include "dialects/llm/LlmInterfaces.cpp.inc"

void LlmDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/llm/LlmOps.cpp.inc"
      >();
}
