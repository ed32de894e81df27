//===- Passes.td - llamac compiler passes ------------------*- tablegen -*-===//

#ifndef LLAMAC_PASSES
#define LLAMAC_PASSES

include "mlir/Pass/PassBase.td"

def LlmAutodiff : Pass<"llm-autodiff", "::mlir::func::FuncOp"> {
  let summary = "Reverse-mode differentiation of the loss w.r.t. parameters";
  let description = [{
    Differentiates the function result marked `llm.role = "loss"` with respect
    to every argument marked `llm.param`, and appends one result per parameter
    holding its gradient (`llm.role = "grad"`, `llm.param = <name>`), in
    argument order.

    Gradients are built by each op's `GradientOpInterface` rule, visited in
    reverse program order; a value used several times (fan-out, e.g. a tied
    embedding used by the lookup and the LM head) accumulates its gradient
    contributions with `llm.add`. An op on the path from a parameter to the
    loss without a rule is an error naming the op.

    Before:
    ```mlir
    func.func @f(%w: tensor<4x8xf32> {llm.param = "w"}, %x: tensor<2x8xf32>)
        -> (tensor<f32> {llm.role = "loss"}) { ... }
    ```
    After:
    ```mlir
    func.func @f(%w: tensor<4x8xf32> {llm.param = "w"}, %x: tensor<2x8xf32>)
        -> (tensor<f32> {llm.role = "loss"},
            tensor<4x8xf32> {llm.param = "w", llm.role = "grad"}) { ... }
    ```
    Functions without a loss result are left alone.
  }];
  let dependentDialects = ["::llamac::llm::LlmDialect"];
}

def LlmMixedPrecision : Pass<"llm-mixed-precision", "::mlir::func::FuncOp"> {
  let summary = "BF16/FP16 compute with fp32 master weights; loss scaling";
  let description = [{
    Runs on the forward graph, before `llm-autodiff`:

    - every fp32 parameter gets one `llm.cast` to the compute type at the
      top of the step (once per step, not once per use); the fp32 argument
      stays the master weight that AdamW updates;
    - every op that reads a low-precision tensor produces low-precision
      results: matmuls and attention read bf16/fp16 and accumulate in fp32
      inside their kernels, RMSNorm keeps its statistics in fp32,
      attention's log-sum-exp and the cross-entropy loss stay fp32;
    - autodiff then derives the backward pass in the same precisions, and
      each cast's gradient casts back, so parameter gradients (and their
      data-parallel reduction and the optimizer) are fp32.

    With `loss-scale`, the step gets two fp32 scalar arguments,
    `llm.role = "loss_scale"` and `"inv_loss_scale"` (written by the runtime
    each step), and a result `"scaled_loss"` = loss x scale from which
    `llm-autodiff` starts the backward pass. `llm-optimizer` then unscales
    the gradients, checks them (`llm.all_finite`) and skips the step through
    AdamW's `apply` flag.
  }];
  let options = [
    Option<"precision", "precision", "std::string", "\"bf16\"",
           "Compute precision: fp32, bf16 or fp16">,
    Option<"lossScale", "loss-scale", "bool", "false",
           "Scale the loss before backward (loss_scale arguments)">,
  ];
  let dependentDialects = ["::llamac::llm::LlmDialect"];
}

def LlmOptimizer : Pass<"llm-optimizer", "::mlir::func::FuncOp"> {
  let summary = "Insert the LR schedule, gradient clipping and AdamW";
  let description = [{
    Consumes the gradient results produced by `llm-autodiff` and turns the
    function into a full training step:

    1. adds the optimizer-state arguments: `exp_avg` / `exp_avg_sq` per
       parameter (`llm.role = "adam_m"` / `"adam_v"`) and the 0-based step
       (`llm.role = "step"`);
    2. computes the learning rate with `llm.lr_schedule`;
    3. computes the pre-clip global gradient norm (`llm.global_norm`) and, when
       enabled, clips by global norm (`llm.clip_coef` + `llm.scale`, exactly
       `torch.nn.utils.clip_grad_norm_`) or by value (`llm.clip_by_value`);
    4. updates every parameter with `llm.adamw`; weight decay applies only to
       parameters of rank >= 2;
    5. replaces the gradient results by the new parameters and moments
       (`llm.role = "new_param" | "new_adam_m" | "new_adam_v"`) and appends the
       global norm (`"grad_norm"`) and learning rate (`"lr"`).

    ```mlir
    // after: one llm.adamw per parameter
    %lr = llm.lr_schedule %step {...} : (tensor<i64>) -> tensor<f32>
    %n = llm.global_norm %gw : (tensor<4x8xf32>) -> tensor<f32>
    %c = llm.clip_coef %n {max_norm = 1.0 : f64} : (tensor<f32>) -> tensor<f32>
    %g = llm.scale %gw, %c : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
    %p, %m, %v = llm.adamw %w, %g, %m0, %v0, %lr, %step {...} : ...
    ```
  }];
  let options = [
    Option<"lr", "lr", "double", "3.0e-4", "Peak learning rate">,
    Option<"minLr", "min-lr", "double", "0.0", "Final learning rate of the cosine decay">,
    Option<"warmupSteps", "warmup-steps", "int64_t", "0", "Linear warmup steps">,
    Option<"decaySteps", "decay-steps", "int64_t", "0", "Step where cosine decay ends (0: no decay)">,
    Option<"beta1", "beta1", "double", "0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", "0.95", "AdamW beta2">,
    Option<"eps", "eps", "double", "1.0e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", "0.0", "Decoupled weight decay (rank >= 2 parameters)">,
    Option<"clipGradNorm", "clip-grad-norm", "double", "0.0", "Clip by global L2 norm (0: off)">,
    Option<"clipGradValue", "clip-grad-value", "double", "0.0", "Clip each gradient element to [-v, v] (0: off)">,
  ];
  let dependentDialects = ["::llamac::llm::LlmDialect"];
}

def LlmGradAccumulation : Pass<"llm-grad-accumulation", "::mlir::func::FuncOp"> {
  let summary = "Several microbatches per step: unrolled, gradients summed";
  let description = [{
    Runs after `llm-autodiff`, before `llm-grad-allreduce`: the step's
    forward and backward pass is repeated for `microbatches` microbatches,
    one after the other, each on its own `tokens` / `targets` arguments (the
    k-th pair of those arguments holds microbatch k, DESIGN.md A3). The
    losses (each normalised by the global token count) and the gradients are
    summed locally in fp32, so the data-parallel reduction and the optimizer
    run once per step. Because microbatch k's backward pass ends before
    microbatch k + 1's forward pass starts, the memory planner reuses one
    microbatch's activation memory for the next.
  }];
  let options = [
    Option<"microbatches", "microbatches", "int64_t", "1",
           "Microbatches per step">,
  ];
  let dependentDialects = ["::llamac::llm::LlmDialect"];
}

def LlmGradAllReduce : Pass<"llm-grad-allreduce", "::mlir::ModuleOp"> {
  let summary = "Sum gradients and the loss over the data-parallel grid axis";
  let description = [{
    Makes a per-rank training step data parallel. Each data-parallel rank
    computes the loss of its slice of the global batch, already divided by
    the global token count (`normalizer`), so the global loss and gradients
    are the SUM of the ranks' partial values. The pass declares the device
    grid `@world` of shape `pp x dp x tp` (upstream `shard.grid`; axis 1 is
    data parallel, rank order DESIGN.md A4) and replaces every `grad` and
    `loss` result by a `shard.all_reduce` over axis 1. It runs between
    llm-autodiff and llm-optimizer, so clipping and AdamW see the global
    gradients and every rank makes the same update.

    ```mlir
    shard.grid @world(shape = 1x2x1)
    func.func @train_step(...) {
      ...
      %g = shard.all_reduce %dw on @world grid_axes = [1] : tensor<8x8xf32> -> tensor<8x8xf32>
      return %loss, %g : ...
    }
    ```
    With `dp = 1` there is nothing to reduce and the module is unchanged.

    NOTE: no bucketing or overlap yet: one all-reduce per gradient, placed
    at the end of the backward pass.
  }];
  let options = [
    Option<"dp", "dp", "int64_t", "1", "Data-parallel size">,
    Option<"tp", "tp", "int64_t", "1", "Tensor-parallel size (grid shape)">,
    Option<"pp", "pp", "int64_t", "1", "Pipeline-parallel size (grid shape)">,
    Option<"reduceDtype", "reduce-dtype", "std::string", "\"fp32\"",
           "Precision of the gradient reduction: fp32 (default), or bf16 / "
           "fp16 (the gradient is cast down for the all-reduce, then back)">,
    Option<"zero", "zero", "int64_t", "0",
           "ZeRO stage: 1 leaves gradients as pending sums (dist.partial) "
           "for llm-zero to reduce-scatter onto the optimizer's shards">,
  ];
  let dependentDialects = ["::mlir::shard::ShardDialect",
                           "::llamac::dist::DistDialect"];
}

def LlmTensorParallel : Pass<"llm-tensor-parallel", "::mlir::ModuleOp"> {
  let summary = "Annotate the default Megatron tensor-parallel plan";
  let description = [{
    A sharding pass: it only writes `#dist.sharding` annotations (priority 1)
    and, with `sequence-parallel`, `dist.constraint` ops (priority 2);
    `llm-sharding-propagation` and `llm-spmd-partition` do the rest.

    - q/k/v/gate/up projections are column-parallel (weight dim 0 over tp),
      o/down projections row-parallel (weight dim 1 over tp);
    - attention heads (query and key-value) follow from the column split;
    - the embedding and the LM head are vocab-parallel (dim 0 over tp);
    - norm weights are replicated;
    - with `sequence-parallel`, every RMSNorm input (the residual stream) is
      split over tp along the sequence (Megatron-SP).

    Parameters that already carry a `dist.sharding` (the user's, priority
    0) are left alone. `tp` must divide the attention heads, the key-value
    heads, the intermediate size and the vocabulary; otherwise the pass
    fails with an error naming which. Declares `shard.grid @world` of shape
    pp x dp x tp.
  }];
  let options = [
    Option<"dp", "dp", "int64_t", "1", "Data-parallel size (grid shape)">,
    Option<"tp", "tp", "int64_t", "1", "Tensor-parallel size">,
    Option<"pp", "pp", "int64_t", "1", "Pipeline-parallel size (grid shape)">,
    Option<"sequenceParallel", "sequence-parallel", "bool", "false",
           "Split norms and residuals along the sequence (Megatron-SP)">,
  ];
  let dependentDialects = ["::llamac::dist::DistDialect",
                           "::mlir::shard::ShardDialect"];
}

def LlmExampleReplicateVocab
    : Pass<"llm-example-replicate-vocab", "::mlir::ModuleOp"> {
  let summary = "Example sharding pass: keep the embedding and LM head whole";
  let description = [{
    The worked example of docs/guides/writing-a-sharding-pass.md. It
    annotates `model.embed_tokens.weight` and `lm_head.weight` as
    replicated, at priority 0 (a user's word), so that
    `llm-tensor-parallel` leaves them alone and the loss is computed on
    whole logits: worthwhile when the vocabulary is small and the
    vocab-parallel loss's three reductions per step cost more than the
    memory they save. Runs before `llm-tensor-parallel`.
  }];
  let dependentDialects = ["::llamac::dist::DistDialect"];
}

def LlmZero : Pass<"llm-zero", "::mlir::ModuleOp"> {
  let summary = "ZeRO-1: split the AdamW moments over the data-parallel axis";
  let description = [{
    A sharding pass, after `llm-optimizer` (and `llm-grad-allreduce` with
    `zero=1`, which leaves the gradients as pending sums): every `adam_m` /
    `adam_v` argument whose first dimension divides by `dp` is annotated
    split over `dp` on that dimension (priority 0). Propagation then runs
    AdamW on that shard: the gradient is reduce-scattered onto it, the fp32
    master weight is sliced (locally), and the updated weight all-gathered.
    Optimizer-state memory per rank drops by dp; moments that do not divide
    stay whole (their gradients are all-reduced). Tensor parallelism
    together with ZeRO is not supported yet (an error).
  }];
  let options = [
    Option<"dp", "dp", "int64_t", "1", "Data-parallel size">,
    Option<"tp", "tp", "int64_t", "1", "Tensor-parallel size">,
  ];
  let dependentDialects = ["::llamac::dist::DistDialect"];
}

def LlmShardingPropagation : Pass<"llm-sharding-propagation", "::mlir::ModuleOp"> {
  let summary = "Propagate shardings through the whole training step";
  let description = [{
    A fixpoint over forward, backward and optimizer ops, from the
    `#dist.sharding` annotations of function arguments and `dist.constraint`
    ops, through each op's factor rule (`ShardingRuleOpInterface`).

    For each op and each factor, the candidate shardings are those of the
    operand and result dimensions the factor describes. The strongest
    priority wins (p0 first; propagated shardings inherit the priority of
    the annotation they came from). Among equal priorities, the sharding of
    the largest tensor wins, so the smaller tensor is the one resharded
    (the conflict rule). A factor that would reuse a grid axis already taken
    by a stronger factor of the same op stays unsplit. Shardings then flow
    into open or unannotated dimensions; closed ones keep theirs. Sweeps
    alternate forward and backward until nothing changes.

    The result is written on every op: `dist.sharding` (its results, with
    partial sums where a split factor is reduced away, kept through linear
    ops such as `llm.add`) and `dist.operands` (what it needs of its
    operands). Function arguments get their final `dist.sharding`. A module
    without any annotation is left unchanged.
  }];
  let dependentDialects = ["::llamac::dist::DistDialect"];
}

def LlmSpmdPartition : Pass<"llm-spmd-partition", "::mlir::ModuleOp"> {
  let summary = "Rewrite to per-rank shapes and insert the collectives";
  let description = [{
    Runs after `llm-sharding-propagation`. Every tensor gets its local
    (per-rank) shape, each op is rebuilt by its `partition()` rule, and
    wherever a value's sharding differs from what its user needs, the
    resharding collectives are inserted (upstream `shard` ops on `@world`):

    - partial -> replicated: `shard.all_reduce` (sum);
    - partial -> split: `shard.reduce_scatter` along the split dimension;
    - split -> replicated: `shard.all_gather`;
    - replicated -> split: `shard.all_slice` (local, no communication).

    `dist.constraint` ops are removed. Function arguments keep their
    `dist.sharding` so that the runtime knows which block of each full
    parameter a rank holds.
  }];
  let dependentDialects = ["::mlir::shard::ShardDialect"];
}

def LlmPipelinePartition
    : Pass<"llm-pipeline-partition", "::mlir::ModuleOp"> {
  let summary = "Split the training step into pipeline stages and schedule them";
  let description = [{
    Runs after `llm-spmd-partition` (per-rank shapes, every tensor- and
    data-parallel collective in place) on the single `@train_step`, whose
    microbatches `llm-grad-accumulation` has unrolled. It replaces that
    function with `pp` functions `@train_step_stage<s>` (attribute
    `llm.stage`), one per pipeline stage:

    - **Units.** The model is cut only between transformer layers. Every op
      belongs to a unit: the embedding, layer N, or the head (final norm,
      LM head, loss), from its location (the HF module the frontend names)
      for forward and backward ops, from its parameter for the rest
      (parameter casts, the optimizer), and otherwise from its operands.
    - **Balance.** A unit's cost is the roofline time of its ops from
      `CostModelOpInterface` (all microbatches, forward, backward and
      optimizer: max(flops / 100 TFLOP/s, bytes / 2 TB/s) per op). The
      stages are contiguous runs of at least one layer, the first with the
      embedding and the last with the head; the split minimises the slowest
      stage (dynamic programming, ties broken by the smaller largest stage
      memory: parameters, gradients and optimizer state). `split` fixes the
      first layer of stages 1..pp-1 instead.
    - **Transfers.** A value used on another stage than its producer's
      crosses with a `dist.send` / `dist.recv` pair (one per value and
      receiving stage; tags unique in the step): activations forward,
      their gradients backward, and for a tied embedding the weight forward
      and the LM head's gradient back to its owner, where the gradients are
      summed.
    - **Whole-model reductions.** `llm.global_norm`, `llm.sum_squares` and
      `llm.all_finite` take the gradients of every stage: each stage reduces
      its own and a `shard.all_reduce` over the pipeline axis (grid axis 0)
      combines them (sum, then sqrt for the norm; min for all_finite), so
      clipping and the loss-scale skip cover the whole model. The `loss`
      result is summed over the pipeline axis (zero on all but the last
      stage) so that every rank reports it.
    - **Schedules.** Each op gets a microbatch and a phase (forward: what the
      loss depends on; backward: the rest that depends on the microbatch;
      the optimizer ends the last backward), recorded as `llm.microbatch` /
      `llm.phase`. Stage s runs its ops in the order of `schedule`: `gpipe`
      (all forwards, then all backwards) or `1f1b` (min(pp - s - 1, M)
      warm-up forwards, then one forward and one backward alternately, then
      the remaining backwards), so at most pp - s microbatches' activations
      are alive on stage s under 1F1B, against M under GPipe.

    Errors: more stages than layers, fewer microbatches than stages, an
    invalid `split`, an op whose unit cannot be decided.
  }];
  let options = [
    Option<"pp", "pp", "int64_t", "1", "Pipeline stages">,
    Option<"dp", "dp", "int64_t", "1", "Data-parallel size (grid shape)">,
    Option<"tp", "tp", "int64_t", "1", "Tensor-parallel size (grid shape)">,
    Option<"schedule", "schedule", "std::string", "\"1f1b\"",
           "Pipeline schedule: gpipe or 1f1b">,
    Option<"split", "split", "std::string", "\"\"",
           "First layer of stages 1..pp-1, comma-separated (empty: balance by cost)">,
  ];
  let dependentDialects = ["::llamac::dist::DistDialect",
                           "::mlir::shard::ShardDialect"];
}

def LlmAllReduceBucketing
    : Pass<"llm-allreduce-bucketing", "::mlir::func::FuncOp"> {
  let summary = "Pack data-parallel gradient all-reduces into buckets";
  let description = [{
    Runs last in the training pipeline, on per-rank shapes. The gradient
    all-reduces of `llm-grad-allreduce` are grouped, in the order their
    gradients become ready during the backward pass (the program position of
    each gradient's producer), into buckets of at most `bucket-cap-mb` MiB,
    the first one of at most `first-bucket-mb` (PyTorch DDP's defaults:
    25 and 1); a gradient larger than the cap gets a bucket of its own.

    Each bucket becomes one `dist.bucket_all_reduce`, placed right after the
    producer of its last gradient so that it overlaps the rest of the
    backward pass, and one `dist.bucket_wait` right before the first reader
    of any of its gradients. `lrt-memory-plan` lays a bucket's gradients out
    back to back, so each gradient is written by its producer straight into
    the bucket buffer (no copy). A gradient read by anything but its
    all-reduce stays unbucketed.
  }];
  let options = [
    Option<"bucketCapMb", "bucket-cap-mb", "double", "25.0",
           "Largest bucket, in MiB">,
    Option<"firstBucketMb", "first-bucket-mb", "double", "1.0",
           "Largest first bucket, in MiB (it starts the earliest)">,
  ];
  let dependentDialects = ["::llamac::dist::DistDialect"];
}

def LlmLowerToLrt : Pass<"llm-lower-to-lrt", "::mlir::func::FuncOp"> {
  let summary = "Lower llm ops to backend-neutral lrt kernel calls";
  let description = [{
    Every llm op becomes an `lrt.kernel` named after it, carrying the op's
    attributes as `params`; `llm.reshape` becomes `lrt.view` (no data
    movement); `llm.adamw` updates its parameter and moments in place
    (`inplace = array<i64: 0, 2, 3>`).

    ```mlir
    // before
    %y = llm.rms_norm %x, %w {eps = 1.0e-05 : f64} : (...) -> tensor<2x8x64xf32>
    // after
    %y = lrt.kernel "rms_norm"(%x, %w) {params = {eps = 1.0e-05 : f64}} : (...) -> tensor<2x8x64xf32>
    ```
    Ops of other dialects are an error naming the op.
  }];
  let dependentDialects = ["::llamac::lrt::LrtDialect"];
}

def LrtMemoryPlan : Pass<"lrt-memory-plan", "::mlir::func::FuncOp"> {
  let summary = "Assign arena offsets to every intermediate by liveness";
  let description = [{
    Computes the live range of every kernel result (a view extends the range
    of the buffer it views; function results live to the end), then assigns
    64-byte aligned offsets in program order, first fit, reusing the space of
    buffers whose last use has passed. A kernel never writes over one of its
    own inputs. Records each result's offset in `offsets` (-1 for in-place
    results) and the peak in the function attribute `lrt.arena_bytes`: the
    compiler knows the activation memory before anything runs.

    ```mlir
    func.func @train_step(...) attributes {lrt.arena_bytes = 4096 : i64} {
      %y = lrt.kernel "rms_norm"(%x, %w) {offsets = array<i64: 0>, ...}
    ```
  }];
}

#endif // LLAMAC_PASSES
