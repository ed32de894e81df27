//===- LlmOps.td - Operations of the llm dialect -----------*- tablegen -*-===//

#ifndef LLAMAC_LLM_OPS
#define LLAMAC_LLM_OPS

include "LlmDialect.td"
include "LlmInterfaces.td"
include "dialects/dist/DistInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"

def Llm_FloatTensor : RankedTensorOf<[F64, F32, BF16, F16]>;
def Llm_IdTensor : RankedTensorOf<[I32]>;
def Llm_Scalar : 0DTensorOf<[F32]>;
def Llm_Step : 0DTensorOf<[I64]>;

// `costs` lists the CostModelOpInterface methods the op implements itself
// (LlmCost.cpp); the others use the interface's defaults.
class Llm_PureOp<string mnemonic, list<Trait> traits = [],
                 list<string> costs = []>
    : Llm_Op<mnemonic, !listconcat(traits, [Pure,
        DeclareOpInterfaceMethods<LlmCostModelOpInterface, costs>])> {
  let hasVerifier = 1;
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}

// Ops with a sharding rule (dialects/llm/LlmSharding.cpp); the second form
// also brings its own partition() (local math that depends on the rank, or
// collectives of its own).
defvar ShardRule = DeclareOpInterfaceMethods<Dist_ShardingRuleOpInterface>;
defvar ShardRuleAndPartition =
    DeclareOpInterfaceMethods<Dist_ShardingRuleOpInterface, ["partition"]>;

class Llm_DiffOp<string mnemonic, list<Trait> traits = [],
                 list<string> costs = []>
    : Llm_PureOp<mnemonic, !listconcat(traits,
        [DeclareOpInterfaceMethods<LlmGradientOpInterface>]), costs>;

//===----------------------------------------------------------------------===//
// Model ops
//===----------------------------------------------------------------------===//

def Llm_EmbeddingOp : Llm_DiffOp<"embedding", [ShardRuleAndPartition]> {
  let summary = "Token embedding lookup";
  let description = [{
    `result[b, t, :] = table[ids[b, t], :]`. The table is `[vocab, hidden]`.

    After `llm-spmd-partition` of a vocab-parallel embedding, `shard_axes`
    names the grid axes splitting the vocabulary: the local table holds rows
    `[i * V_local, (i + 1) * V_local)` (i = this rank's index in the group
    over those axes) and ids outside that range give zero rows, to be summed
    over the group.

    ```mlir
    %h = llm.embedding %table, %ids
        : (tensor<32000x4096xf32>, tensor<2x128xi32>) -> tensor<2x128x4096xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$table, Llm_IdTensor:$ids,
                   OptionalAttr<DenseI64ArrayAttr>:$shard_axes);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_RmsNormOp : Llm_DiffOp<"rms_norm", [ShardRule], ["estimateFlops"]> {
  let summary = "RMSNorm over the last dimension, statistics in fp32";
  let description = [{
    `result = weight * x * rsqrt(mean(x^2, -1) + eps)` (HF `LlamaRMSNorm`).

    ```mlir
    %y = llm.rms_norm %x, %w {eps = 1.0e-05 : f64}
        : (tensor<2x128x4096xf32>, tensor<4096xf32>) -> tensor<2x128x4096xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x, Llm_FloatTensor:$weight, F64Attr:$eps);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_LinearOp : Llm_DiffOp<"linear", [ShardRule], ["estimateFlops"]> {
  let summary = "Linear layer without bias, HF weight layout [out, in]";
  let description = [{
    `result[..., n] = sum_k x[..., k] * weight[n, k]`
    (`torch.nn.functional.linear`).

    ```mlir
    %q = llm.linear %x, %wq
        : (tensor<2x128x4096xf32>, tensor<4096x4096xf32>) -> tensor<2x128x4096xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x, Llm_FloatTensor:$weight);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_RopeOp : Llm_DiffOp<"rope", [ShardRule], ["estimateFlops"]> {
  let summary = "Rotary position embedding, HF rotate_half layout";
  let description = [{
    Rotates each head of `x : [batch, seq, heads, head_dim]` by the angle
    `(pos_offset + s) * theta^(-2i/head_dim)`, pairing element `i` with
    `i + head_dim/2` (HF `rotate_half`).

    ```mlir
    %qr = llm.rope %q {theta = 1.0e+04 : f64}
        : (tensor<2x128x32x128xf32>) -> tensor<2x128x32x128xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x, F64Attr:$theta,
                   DefaultValuedAttr<I64Attr, "0">:$pos_offset);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_AttentionOp : Llm_DiffOp<"attention", [ShardRule], ["estimateFlops"]> {
  let summary = "Causal grouped-query scaled dot-product attention";
  let description = [{
    `q : [batch, seq, heads, head_dim]`, `k, v : [batch, seq, kv_heads,
    head_dim]`; query head `h` attends with kv head `h / (heads / kv_heads)`.
    Scores are `scale * q.k` over keys `j <= i`. Returns the output, shaped
    like `q`, and the fp32 log-sum-exp of each score row `[batch, heads, seq]`,
    which the gradient reuses.

    ```mlir
    %o, %lse = llm.attention %q, %k, %v {scale = 0.125 : f64}
        : (tensor<1x16x8x64xf32>, tensor<1x16x2x64xf32>, tensor<1x16x2x64xf32>)
        -> (tensor<1x16x8x64xf32>, tensor<1x8x16xf32>)
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$q, Llm_FloatTensor:$k,
                   Llm_FloatTensor:$v, F64Attr:$scale);
  let results = (outs Llm_FloatTensor:$out, RankedTensorOf<[F32]>:$lse);
}

def Llm_SwigluOp : Llm_DiffOp<"swiglu", [ShardRule], ["estimateFlops"]> {
  let summary = "SwiGLU gate: silu(gate) * up";
  let description = [{
    ```mlir
    %h = llm.swiglu %g, %u
        : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$gate, Llm_FloatTensor:$up);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_AddOp : Llm_DiffOp<"add", [Commutative, ShardRule]> {
  let summary = "Elementwise addition of two tensors of one type";
  let description = [{
    ```mlir
    %r = llm.add %x, %y
        : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$lhs, Llm_FloatTensor:$rhs);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_ReshapeOp : Llm_DiffOp<"reshape", [ShardRule], ["estimateFlops", "estimateBytes"]> {
  let summary = "Row-major reshape to a type with the same element count";
  let description = [{
    ```mlir
    %h = llm.reshape %x : (tensor<2x8x64xf32>) -> tensor<2x8x4x16xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_CrossEntropyOp : Llm_DiffOp<"cross_entropy", [ShardRuleAndPartition], ["estimateFlops"]> {
  let summary = "Cross-entropy of logits against targets, as a fp32 scalar";
  let description = [{
    `result = (sum over rows of logsumexp(logits) - logits[target]) /
    normalizer`. `normalizer` is the number of target tokens in the global
    batch, so that the losses of data-parallel ranks and microbatches add up
    to the global mean.

    ```mlir
    %loss = llm.cross_entropy %logits, %targets {normalizer = 256 : i64}
        : (tensor<2x128x32000xf32>, tensor<2x128xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$logits, Llm_IdTensor:$targets,
                   I64Attr:$normalizer);
  let results = (outs Llm_Scalar:$loss);
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

def Llm_EmbeddingGradOp : Llm_PureOp<"embedding_grad", [ShardRuleAndPartition]> {
  let summary = "Gradient of the embedding table (scatter-add of rows)";
  let description = [{
    `result[v, :] = sum over (b, t) with ids[b, t] == v of grad[b, t, :]`.
    The result type gives the vocabulary size. With `shard_axes` (see
    `llm.embedding`), the result holds this rank's rows of the table gradient
    and only ids in that range contribute.

    ```mlir
    %dt = llm.embedding_grad %dh, %ids
        : (tensor<2x8x64xf32>, tensor<2x8xi32>) -> tensor<100x64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, Llm_IdTensor:$ids,
                   OptionalAttr<DenseI64ArrayAttr>:$shard_axes);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_RmsNormGradOp : Llm_PureOp<"rms_norm_grad", [ShardRule], ["estimateFlops"]> {
  let summary = "Gradient of RMSNorm with respect to its input and weight";
  let description = [{
    ```mlir
    %dx, %dw = llm.rms_norm_grad %dy, %x, %w {eps = 1.0e-05 : f64}
        : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<64xf32>)
        -> (tensor<2x8x64xf32>, tensor<64xf32>)
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, Llm_FloatTensor:$x,
                   Llm_FloatTensor:$weight, F64Attr:$eps);
  let results = (outs Llm_FloatTensor:$dx, Llm_FloatTensor:$dweight);
}

def Llm_LinearGradInputOp : Llm_PureOp<"linear_grad_input", [ShardRule], ["estimateFlops"]> {
  let summary = "Gradient of a linear layer with respect to its input";
  let description = [{
    `result[..., k] = sum_n grad[..., n] * weight[n, k]`.

    ```mlir
    %dx = llm.linear_grad_input %dy, %w
        : (tensor<2x8x32xf32>, tensor<32x64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, Llm_FloatTensor:$weight);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_LinearGradWeightOp : Llm_PureOp<"linear_grad_weight", [ShardRule], ["estimateFlops"]> {
  let summary = "Gradient of a linear layer with respect to its weight";
  let description = [{
    `result[n, k] = sum over leading dims of grad[..., n] * x[..., k]`.

    ```mlir
    %dw = llm.linear_grad_weight %dy, %x
        : (tensor<2x8x32xf32>, tensor<2x8x64xf32>) -> tensor<32x64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, Llm_FloatTensor:$x);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_RopeGradOp : Llm_DiffOp<"rope_grad", [ShardRule], ["estimateFlops"]> {
  let summary = "Gradient of RoPE: the inverse rotation";
  let description = [{
    Applies the transpose of the rotation of `llm.rope` with the same
    attributes. Its own gradient is `llm.rope`.

    ```mlir
    %dq = llm.rope_grad %dqr {theta = 1.0e+04 : f64}
        : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, F64Attr:$theta,
                   DefaultValuedAttr<I64Attr, "0">:$pos_offset);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_AttentionGradOp : Llm_PureOp<"attention_grad", [ShardRule], ["estimateFlops"]> {
  let summary = "Gradient of causal GQA attention";
  let description = [{
    Takes the output gradient, the forward inputs, the forward output and its
    log-sum-exp; returns the gradients of q, k and v. Kv-head gradients sum
    over the query heads of their group.

    ```mlir
    %dq, %dk, %dv = llm.attention_grad %do, %q, %k, %v, %o, %lse {scale = 0.25 : f64}
        : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>,
           tensor<1x8x2x16xf32>, tensor<1x8x4x16xf32>, tensor<1x4x8xf32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>)
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, Llm_FloatTensor:$q,
                   Llm_FloatTensor:$k, Llm_FloatTensor:$v,
                   Llm_FloatTensor:$out, RankedTensorOf<[F32]>:$lse,
                   F64Attr:$scale);
  let results = (outs Llm_FloatTensor:$dq, Llm_FloatTensor:$dk,
                      Llm_FloatTensor:$dv);
}

def Llm_SwigluGradOp : Llm_PureOp<"swiglu_grad", [ShardRule], ["estimateFlops"]> {
  let summary = "Gradient of SwiGLU with respect to gate and up";
  let description = [{
    ```mlir
    %dg, %du = llm.swiglu_grad %dy, %g, %u
        : (tensor<8x64xf32>, tensor<8x64xf32>, tensor<8x64xf32>)
        -> (tensor<8x64xf32>, tensor<8x64xf32>)
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$grad, Llm_FloatTensor:$gate,
                   Llm_FloatTensor:$up);
  let results = (outs Llm_FloatTensor:$dgate, Llm_FloatTensor:$dup);
}

def Llm_CrossEntropyGradOp : Llm_PureOp<"cross_entropy_grad", [ShardRuleAndPartition], ["estimateFlops"]> {
  let summary = "Gradient of cross-entropy with respect to the logits";
  let description = [{
    `result = grad * (softmax(logits) - onehot(targets)) / normalizer`.

    ```mlir
    %dl = llm.cross_entropy_grad %one, %logits, %targets {normalizer = 16 : i64}
        : (tensor<f32>, tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<2x8x100xf32>
    ```
  }];
  let arguments = (ins Llm_Scalar:$grad, Llm_FloatTensor:$logits,
                   Llm_IdTensor:$targets, I64Attr:$normalizer);
  let results = (outs Llm_FloatTensor:$result);
}

//===----------------------------------------------------------------------===//
// Training ops
//===----------------------------------------------------------------------===//

def Llm_ConstantOp : Llm_PureOp<"constant", [ConstantLike, ShardRule]> {
  let summary = "A tensor filled with one value";
  let description = [{
    ```mlir
    %one = llm.constant {value = 1.0 : f64} : () -> tensor<f32>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_AdamWOp : Llm_PureOp<"adamw", [ShardRule], ["estimateFlops"]> {
  let summary = "One AdamW update in torch.optim.AdamW semantics";
  let description = [{
    Decoupled weight decay `p *= 1 - lr * weight_decay`, then the bias-
    corrected Adam step with `eps` added after the square root. `step` is the
    0-based count of steps already taken; the update uses `step + 1` for the
    bias corrections. Returns the new parameter and moments.

    With the optional `apply` operand (a fp32 scalar, the global finite check
    of loss scaling), a zero `apply` skips the step: parameter and moments
    come back unchanged.

    ```mlir
    %p1, %m1, %v1 = llm.adamw %p, %g, %m, %v, %lr, %step
        {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64,
         weight_decay = 0.1 : f64}
        : (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>,
           tensor<64x64xf32>, tensor<f32>, tensor<i64>)
        -> (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$param, Llm_FloatTensor:$grad,
                   Llm_FloatTensor:$exp_avg, Llm_FloatTensor:$exp_avg_sq,
                   Llm_Scalar:$lr, Llm_Step:$step,
                   Optional<Llm_Scalar>:$apply, F64Attr:$beta1,
                   F64Attr:$beta2, F64Attr:$eps, F64Attr:$weight_decay);
  let results = (outs Llm_FloatTensor:$new_param, Llm_FloatTensor:$new_exp_avg,
                      Llm_FloatTensor:$new_exp_avg_sq);
}

def Llm_GlobalNormOp : Llm_PureOp<"global_norm", [ShardRuleAndPartition]> {
  let summary = "L2 norm over all elements of all operands, as fp32";
  let description = [{
    `sqrt(sum over tensors of sum(x^2))`, the total norm of
    `torch.nn.utils.clip_grad_norm_`.

    ```mlir
    %n = llm.global_norm %g0, %g1 : (tensor<64xf32>, tensor<8x64xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Llm_FloatTensor>:$inputs);
  let results = (outs Llm_Scalar:$result);
}

def Llm_ClipCoefOp : Llm_PureOp<"clip_coef", [ShardRule]> {
  let summary = "Clipping coefficient of clip_grad_norm_";
  let description = [{
    `result = min(1, max_norm / (norm + 1e-6))`.

    ```mlir
    %c = llm.clip_coef %norm {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Llm_Scalar:$norm, F64Attr:$max_norm);
  let results = (outs Llm_Scalar:$result);
}

def Llm_ScaleOp : Llm_DiffOp<"scale", [ShardRule]> {
  let summary = "Multiply a tensor by a fp32 scalar tensor";
  let description = [{
    ```mlir
    %g1 = llm.scale %g, %c : (tensor<64xf32>, tensor<f32>) -> tensor<64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x, Llm_Scalar:$factor);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_ClipByValueOp : Llm_PureOp<"clip_by_value", [ShardRule]> {
  let summary = "Clamp every element to [-limit, limit]";
  let description = [{
    ```mlir
    %g1 = llm.clip_by_value %g {limit = 1.0 : f64} : (tensor<64xf32>) -> tensor<64xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x, F64Attr:$limit);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_CastOp : Llm_DiffOp<"cast", [ShardRule]> {
  let summary = "Convert to another float element type (round to nearest even)";
  let description = [{
    Its gradient is the cast of the incoming gradient back to the operand's
    type: the fp32 gradient of a weight's bf16 compute copy.

    ```mlir
    %w16 = llm.cast %w : (tensor<64x64xf32>) -> tensor<64x64xbf16>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$x);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_AllFiniteOp : Llm_PureOp<"all_finite", [ShardRuleAndPartition]> {
  let summary = "1.0 when every element of every operand is finite, else 0.0";
  let description = [{
    The overflow check of loss scaling, as a fp32 flag so that it feeds
    `llm.adamw`'s `apply` and reduces with a min all-reduce. Partitioned, each
    rank checks its blocks and one min all-reduce over the whole grid gives
    every rank the same answer.

    ```mlir
    %ok = llm.all_finite %g0, %g1 : (tensor<64xf32>, tensor<8x64xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Llm_FloatTensor>:$inputs);
  let results = (outs Llm_Scalar:$result);
}

def Llm_LrScheduleOp : Llm_PureOp<"lr_schedule", [ShardRule]> {
  let summary = "Learning rate of a step: linear warmup then cosine decay";
  let description = [{
    For 0-based step `s`: `lr * (s + 1) / warmup_steps` while
    `s < warmup_steps`; then cosine from `lr` to `min_lr` until
    `decay_steps`; then `min_lr`. `decay_steps = 0` means no decay (constant
    after warmup).

    ```mlir
    %lr = llm.lr_schedule %step {lr = 3.0e-04 : f64, min_lr = 3.0e-05 : f64,
                                 warmup_steps = 10 : i64, decay_steps = 100 : i64}
        : (tensor<i64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Llm_Step:$step, F64Attr:$lr, F64Attr:$min_lr,
                   I64Attr:$warmup_steps, I64Attr:$decay_steps);
  let results = (outs Llm_Scalar:$result);
}

//===----------------------------------------------------------------------===//
// Ops of the partitioned program (created by llm-spmd-partition)
//===----------------------------------------------------------------------===//

def Llm_RowMaxOp : Llm_PureOp<"row_max"> {
  let summary = "Maximum over the last dimension";
  let description = [{
    First step of the vocab-parallel cross-entropy: the local maximum of each
    row of logits, to be max-reduced over the vocabulary's grid axes.

    ```mlir
    %m = llm.row_max %logits : (tensor<2x8x50xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$logits);
  let results = (outs RankedTensorOf<[F32]>:$result);
}

def Llm_RowSumExpOp : Llm_PureOp<"row_sum_exp"> {
  let summary = "Sum over the last dimension of exp(x - max)";
  let description = [{
    `result[r] = sum_j exp(logits[r, j] - max[r])`: the local part of the
    softmax denominator, to be sum-reduced over the vocabulary's grid axes.

    ```mlir
    %s = llm.row_sum_exp %logits, %m
        : (tensor<2x8x50xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$logits, RankedTensorOf<[F32]>:$max);
  let results = (outs RankedTensorOf<[F32]>:$result);
}

def Llm_TargetLogitOp : Llm_PureOp<"target_logit"> {
  let summary = "The logit of each row's target (masked to a vocab shard)";
  let description = [{
    `result[r] = logits[r, targets[r] - offset]` when the target falls in
    this rank's vocabulary range `[offset, offset + V_local)`, else 0, with
    `offset = i * V_local` (i = this rank's index over `shard_axes`; 0 when
    absent). Sum-reduced over those axes, it is the target logit.

    ```mlir
    %t = llm.target_logit %logits, %targets {shard_axes = array<i64: 2>}
        : (tensor<2x8x50xf32>, tensor<2x8xi32>) -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Llm_FloatTensor:$logits, Llm_IdTensor:$targets,
                   OptionalAttr<DenseI64ArrayAttr>:$shard_axes);
  let results = (outs RankedTensorOf<[F32]>:$result);
}

def Llm_CrossEntropyFromStatsOp : Llm_PureOp<"cross_entropy_from_stats"> {
  let summary = "Cross-entropy from row max, sum of exponentials and target logit";
  let description = [{
    `result = sum_r (log(sumexp[r]) + max[r] - target[r]) / normalizer`.

    ```mlir
    %loss = llm.cross_entropy_from_stats %m, %s, %t {normalizer = 16 : i64}
        : (tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$max, RankedTensorOf<[F32]>:$sumexp,
                   RankedTensorOf<[F32]>:$target, I64Attr:$normalizer);
  let results = (outs Llm_Scalar:$loss);
}

def Llm_CrossEntropyGradFromStatsOp
    : Llm_PureOp<"cross_entropy_grad_from_stats"> {
  let summary = "Gradient of the vocab-parallel cross-entropy";
  let description = [{
    `result = grad / normalizer * (exp(logits - max) / sumexp -
    onehot(targets - offset))` on this rank's vocabulary shard (offset as in
    `llm.target_logit`).

    ```mlir
    %dl = llm.cross_entropy_grad_from_stats %one, %logits, %targets, %m, %s
        {normalizer = 16 : i64, shard_axes = array<i64: 2>}
        : (tensor<f32>, tensor<2x8x50xf32>, tensor<2x8xi32>, tensor<2x8xf32>,
           tensor<2x8xf32>) -> tensor<2x8x50xf32>
    ```
  }];
  let arguments = (ins Llm_Scalar:$grad, Llm_FloatTensor:$logits,
                   Llm_IdTensor:$targets, RankedTensorOf<[F32]>:$max,
                   RankedTensorOf<[F32]>:$sumexp, I64Attr:$normalizer,
                   OptionalAttr<DenseI64ArrayAttr>:$shard_axes);
  let results = (outs Llm_FloatTensor:$result);
}

def Llm_SumSquaresOp : Llm_PureOp<"sum_squares"> {
  let summary = "Sum of squares over all elements of all operands, as fp32";
  let description = [{
    The global norm of tensors with different shardings is the square root of
    the sum of per-sharding-group sums of squares, each reduced over the axes
    its group is split on.

    ```mlir
    %s = llm.sum_squares %g0, %g1 : (tensor<32x64xf32>, tensor<64xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Llm_FloatTensor>:$inputs);
  let results = (outs Llm_Scalar:$result);
}

def Llm_SqrtOp : Llm_PureOp<"sqrt"> {
  let summary = "Square root of a fp32 scalar";
  let description = [{
    ```mlir
    %n = llm.sqrt %s : (tensor<f32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Llm_Scalar:$x);
  let results = (outs Llm_Scalar:$result);
}

#endif // LLAMAC_LLM_OPS
