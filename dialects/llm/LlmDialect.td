//===- LlmDialect.td - The llm training-graph dialect ------*- tablegen -*-===//

#ifndef LLAMAC_LLM_DIALECT
#define LLAMAC_LLM_DIALECT

include "mlir/IR/OpBase.td"

def Llm_Dialect : Dialect {
  let name = "llm";
  let summary = "Tensor-level ops of a LLaMA training step";
  let description = [{
    The `llm` dialect describes one training step of a LLaMA model at the
    level of tensors: the forward pass (embedding, RMSNorm, linear layers,
    RoPE, causal grouped-query attention, SwiGLU, cross-entropy), the gradient
    of each of those ops, and the training ops (AdamW, global norm, clipping,
    casts, scaling, the all-finite check, the learning-rate schedule).

    Semantics follow Hugging Face `LlamaForCausalLM`. Every op verifies its
    shape and dtype rules. Differentiable ops implement
    `LlmGradientOpInterface`, so the autodiff pass never needs to know an op.

    Function arguments and results carry their role in the training step as
    attributes: `llm.param = "<HF tensor name>"` for parameters,
    `llm.role = "tokens" | "targets" | "adam_m" | "adam_v" | "step" | ...`.
  }];
  let cppNamespace = "::llamac::llm";
  let useDefaultAttributePrinterParser = 0;
}

class Llm_Op<string mnemonic, list<Trait> traits = []>
    : Op<Llm_Dialect, mnemonic, traits>;

#endif // LLAMAC_LLM_DIALECT
