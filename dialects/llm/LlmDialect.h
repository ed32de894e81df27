//===- LlmDialect.h - The llm dialect ----------------------------*- C++ -*-===//
#ifndef LLAMAC_DIALECTS_LLM_LLMDIALECT_H
#define LLAMAC_DIALECTS_LLM_LLMDIALECT_H

#include "mlir/IR/Dialect.h"

#include "dialects/llm/LlmDialect.h.inc"

#endif // LLAMAC_DIALECTS_LLM_LLMDIALECT_H
