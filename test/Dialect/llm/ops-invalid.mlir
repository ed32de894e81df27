// RUN: llamac-opt %s -split-input-file -verify-diagnostics

// Every verifier diagnostic of the llm dialect, one case each.

func.func @dynamic_shape(%x: tensor<?x64xf32>, %w: tensor<64xf32>) {
  // expected-error@+1 {{requires statically shaped tensors}}
  %0 = llm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  return
}

// -----

func.func @embedding_table_rank(%t: tensor<100xf32>, %ids: tensor<2x8xi32>) {
  // expected-error@+1 {{table must be [vocab, hidden], got rank 1}}
  %0 = llm.embedding %t, %ids : (tensor<100xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  return
}

// -----

func.func @embedding_result_shape(%t: tensor<100x64xf32>, %ids: tensor<2x8xi32>) {
  // expected-error@+1 {{result must have shape 2x8x64, got 2x8x32}}
  %0 = llm.embedding %t, %ids : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return
}

// -----

func.func @embedding_result_type(%t: tensor<100x64xf32>, %ids: tensor<2x8xi32>) {
  // expected-error@+1 {{result element type must match the table's 'f32'}}
  %0 = llm.embedding %t, %ids : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xbf16>
  return
}

// -----

func.func @embedding_ids_type(%t: tensor<100x64xf32>, %ids: tensor<2x8xi64>) {
  // expected-error@+1 {{operand #1 must be ranked tensor of 32-bit signless integer values}}
  %0 = llm.embedding %t, %ids : (tensor<100x64xf32>, tensor<2x8xi64>) -> tensor<2x8x64xf32>
  return
}

// -----

func.func @rms_norm_scalar(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error@+1 {{input must have rank >= 1}}
  %0 = llm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<f32>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<2x64xf32>, %w: tensor<32xf32>) {
  // expected-error@+1 {{weight must have shape 64, got 32}}
  %0 = llm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x64xf32>, tensor<32xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @rms_norm_result(%x: tensor<2x64xf32>, %w: tensor<64xf32>) {
  // expected-error@+1 {{result must have type 'tensor<2x64xf32>', got 'tensor<2x32xf32>'}}
  %0 = llm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x64xf32>, tensor<64xf32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<2x64xf32>, %w: tensor<64xf32>) {
  // expected-error@+1 {{attribute 'eps' must be positive, got 0}}
  %0 = llm.rms_norm %x, %w {eps = 0.0 : f64} : (tensor<2x64xf32>, tensor<64xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x64xf32>, %w: tensor<64xf32>) {
  // expected-error@+1 {{weight must be [out, in], got rank 1}}
  %0 = llm.linear %x, %w : (tensor<2x64xf32>, tensor<64xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @linear_in_features(%x: tensor<2x64xf32>, %w: tensor<32x48xf32>) {
  // expected-error@+1 {{input feature size 64 does not match weight in-features 48}}
  %0 = llm.linear %x, %w : (tensor<2x64xf32>, tensor<32x48xf32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @linear_dtypes(%x: tensor<2x64xf32>, %w: tensor<32x64xbf16>) {
  // expected-error@+1 {{input and weight element types differ: 'f32' vs 'bf16'}}
  %0 = llm.linear %x, %w : (tensor<2x64xf32>, tensor<32x64xbf16>) -> tensor<2x32xf32>
  return
}

// -----

func.func @linear_result_shape(%x: tensor<2x64xf32>, %w: tensor<32x64xf32>) {
  // expected-error@+1 {{result must have shape 2x32, got 2x64}}
  %0 = llm.linear %x, %w : (tensor<2x64xf32>, tensor<32x64xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @linear_result_dtype(%x: tensor<2x64xf32>, %w: tensor<32x64xf32>) {
  // expected-error@+1 {{result element type must be the input's or f32}}
  %0 = llm.linear %x, %w : (tensor<2x64xf32>, tensor<32x64xf32>) -> tensor<2x32xbf16>
  return
}

// -----

func.func @rope_rank(%x: tensor<2x8x64xf32>) {
  // expected-error@+1 {{input must be [batch, seq, heads, head_dim], got rank 3}}
  %0 = llm.rope %x {theta = 1.0e4 : f64} : (tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return
}

// -----

func.func @rope_odd_head_dim(%x: tensor<2x8x4x15xf32>) {
  // expected-error@+1 {{head_dim must be even, got 15}}
  %0 = llm.rope %x {theta = 1.0e4 : f64} : (tensor<2x8x4x15xf32>) -> tensor<2x8x4x15xf32>
  return
}

// -----

func.func @rope_theta(%x: tensor<2x8x4x16xf32>) {
  // expected-error@+1 {{attribute 'theta' must be positive, got -1}}
  %0 = llm.rope %x {theta = -1.0 : f64} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32>
  return
}

// -----

func.func @rope_grad_result(%x: tensor<2x8x4x16xf32>) {
  // expected-error@+1 {{result must have type 'tensor<2x8x4x16xf32>'}}
  %0 = llm.rope_grad %x {theta = 1.0e4 : f64} : (tensor<2x8x4x16xf32>) -> tensor<2x8x4x8xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<8x4x16xf32>, %k: tensor<1x8x2x16xf32>) {
  // expected-error@+1 {{q, k and v must be [batch, seq, heads, head_dim]}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.25 : f64} : (tensor<8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>) -> (tensor<8x4x16xf32>, tensor<1x4x8xf32>)
  return
}

// -----

func.func @attention_v_type(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x4x16xf32>) {
  // expected-error@+1 {{v must have type 'tensor<1x8x2x16xf32>'}}
  %0:2 = llm.attention %q, %k, %v {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4x16xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x4x8xf32>)
  return
}

// -----

func.func @attention_seq_mismatch(%q: tensor<1x8x4x16xf32>, %k: tensor<1x4x2x16xf32>) {
  // expected-error@+1 {{k shape 1x4x2x16 is not compatible with q shape 1x8x4x16}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x4x2x16xf32>, tensor<1x4x2x16xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x4x8xf32>)
  return
}

// -----

func.func @attention_dtype(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xbf16>) {
  // expected-error@+1 {{q and k element types differ}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xbf16>, tensor<1x8x2x16xbf16>) -> (tensor<1x8x4x16xf32>, tensor<1x4x8xf32>)
  return
}

// -----

func.func @attention_gqa_groups(%q: tensor<1x8x6x16xf32>, %k: tensor<1x8x4x16xf32>) {
  // expected-error@+1 {{number of query heads 6 is not a multiple of kv heads 4}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.25 : f64} : (tensor<1x8x6x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>) -> (tensor<1x8x6x16xf32>, tensor<1x6x8xf32>)
  return
}

// -----

func.func @attention_lse_shape(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>) {
  // expected-error@+1 {{lse must have shape 1x4x8, got 1x8x4}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @attention_scale(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>) {
  // expected-error@+1 {{attribute 'scale' must be positive, got 0}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.0 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x4x8xf32>)
  return
}

// -----

func.func @attention_output(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>) {
  // expected-error@+1 {{output must have type 'tensor<1x8x4x16xf32>'}}
  %0:2 = llm.attention %q, %k, %k {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>) -> (tensor<1x8x4x8xf32>, tensor<1x4x8xf32>)
  return
}

// -----

func.func @attention_grad_dk(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>, %lse: tensor<1x4x8xf32>) {
  // expected-error@+1 {{dk must have type 'tensor<1x8x2x16xf32>'}}
  %0:3 = llm.attention_grad %q, %q, %k, %k, %q, %lse {scale = 0.25 : f64} : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4x16xf32>, tensor<1x4x8xf32>) -> (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>)
  return
}

// -----

func.func @swiglu_up(%g: tensor<8x64xf32>, %u: tensor<8x32xf32>) {
  // expected-error@+1 {{up must have type 'tensor<8x64xf32>'}}
  %0 = llm.swiglu %g, %u : (tensor<8x64xf32>, tensor<8x32xf32>) -> tensor<8x64xf32>
  return
}

// -----

func.func @swiglu_grad_dup(%g: tensor<8x64xf32>, %d: tensor<8x32xf32>) {
  // expected-error@+1 {{dup must have type 'tensor<8x64xf32>'}}
  %0:2 = llm.swiglu_grad %g, %g, %g : (tensor<8x64xf32>, tensor<8x64xf32>, tensor<8x64xf32>) -> (tensor<8x64xf32>, tensor<8x32xf32>)
  return
}

// -----

func.func @add_types(%a: tensor<8x64xf32>, %b: tensor<8x32xf32>) {
  // expected-error@+1 {{rhs must have type 'tensor<8x64xf32>'}}
  %0 = llm.add %a, %b : (tensor<8x64xf32>, tensor<8x32xf32>) -> tensor<8x64xf32>
  return
}

// -----

func.func @reshape_count(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{cannot reshape 512 elements into 8x4x15 (480 elements)}}
  %0 = llm.reshape %x : (tensor<8x64xf32>) -> tensor<8x4x15xf32>
  return
}

// -----

func.func @reshape_dtype(%x: tensor<8x64xf32>) {
  // expected-error@+1 {{reshape cannot change the element type}}
  %0 = llm.reshape %x : (tensor<8x64xf32>) -> tensor<8x4x16xbf16>
  return
}

// -----

func.func @cross_entropy_rank(%l: tensor<100xf32>, %t: tensor<i32>) {
  // expected-error@+1 {{logits must have rank >= 2, got 1}}
  %0 = llm.cross_entropy %l, %t {normalizer = 1 : i64} : (tensor<100xf32>, tensor<i32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_targets(%l: tensor<2x8x100xf32>, %t: tensor<2x4xi32>) {
  // expected-error@+1 {{targets must have shape 2x8, got 2x4}}
  %0 = llm.cross_entropy %l, %t {normalizer = 16 : i64} : (tensor<2x8x100xf32>, tensor<2x4xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_normalizer(%l: tensor<2x8x100xf32>, %t: tensor<2x8xi32>) {
  // expected-error@+1 {{attribute 'normalizer' must be positive, got 0}}
  %0 = llm.cross_entropy %l, %t {normalizer = 0 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_grad_result(%one: tensor<f32>, %l: tensor<2x8x100xf32>, %t: tensor<2x8xi32>) {
  // expected-error@+1 {{result must have type 'tensor<2x8x100xf32>'}}
  %0 = llm.cross_entropy_grad %one, %l, %t {normalizer = 16 : i64} : (tensor<f32>, tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<2x8x50xf32>
  return
}

// -----

func.func @embedding_grad_rank(%d: tensor<2x8x64xf32>, %ids: tensor<2x8xi32>) {
  // expected-error@+1 {{result must be [vocab, hidden], got rank 1}}
  %0 = llm.embedding_grad %d, %ids : (tensor<2x8x64xf32>, tensor<2x8xi32>) -> tensor<6400xf32>
  return
}

// -----

func.func @embedding_grad_shape(%d: tensor<2x8x64xf32>, %ids: tensor<2x4xi32>) {
  // expected-error@+1 {{gradient must have shape 2x4x64, got 2x8x64}}
  %0 = llm.embedding_grad %d, %ids : (tensor<2x8x64xf32>, tensor<2x4xi32>) -> tensor<100x64xf32>
  return
}

// -----

func.func @rms_norm_grad_dweight(%d: tensor<2x64xf32>, %w: tensor<64xf32>) {
  // expected-error@+1 {{dweight must have type 'tensor<64xf32>'}}
  %0:2 = llm.rms_norm_grad %d, %d, %w {eps = 1.0e-5 : f64} : (tensor<2x64xf32>, tensor<2x64xf32>, tensor<64xf32>) -> (tensor<2x64xf32>, tensor<2x64xf32>)
  return
}

// -----

func.func @rms_norm_grad_scalar(%d: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error@+1 {{input must have rank >= 1}}
  %0:2 = llm.rms_norm_grad %d, %d, %w {eps = 1.0e-5 : f64} : (tensor<f32>, tensor<f32>, tensor<1xf32>) -> (tensor<f32>, tensor<1xf32>)
  return
}

// -----

func.func @linear_grad_input_weight(%d: tensor<2x32xf32>, %w: tensor<32xf32>) {
  // expected-error@+1 {{weight must be [out, in], got rank 1}}
  %0 = llm.linear_grad_input %d, %w : (tensor<2x32xf32>, tensor<32xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @linear_grad_input_features(%d: tensor<2x16xf32>, %w: tensor<32x64xf32>) {
  // expected-error@+1 {{gradient feature size does not match weight out-features 32}}
  %0 = llm.linear_grad_input %d, %w : (tensor<2x16xf32>, tensor<32x64xf32>) -> tensor<2x64xf32>
  return
}

// -----

func.func @linear_grad_weight_leading(%d: tensor<2x32xf32>, %x: tensor<4x64xf32>) {
  // expected-error@+1 {{gradient shape 2x32 and input shape 4x64 must agree on all but the last dimension}}
  %0 = llm.linear_grad_weight %d, %x : (tensor<2x32xf32>, tensor<4x64xf32>) -> tensor<32x64xf32>
  return
}

// -----

func.func @linear_grad_weight_result(%d: tensor<2x32xf32>, %x: tensor<2x64xf32>) {
  // expected-error@+1 {{result must have shape 32x64, got 64x32}}
  %0 = llm.linear_grad_weight %d, %x : (tensor<2x32xf32>, tensor<2x64xf32>) -> tensor<64x32xf32>
  return
}

// -----

func.func @adamw_grad_shape(%p: tensor<4x4xf32>, %g: tensor<16xf32>, %m: tensor<4x4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error@+1 {{gradient shape 16 does not match parameter shape 4x4}}
  %0:3 = llm.adamw %p, %g, %m, %m, %lr, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<4x4xf32>, tensor<16xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_moment_type(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xbf16>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error@+1 {{exp_avg must have type 'tensor<4x4xf32>'}}
  %0:3 = llm.adamw %p, %g, %m, %m, %lr, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xbf16>, tensor<4x4xbf16>, tensor<f32>, tensor<i64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_beta(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error@+1 {{attribute 'beta1' must be in [0, 1), got 1}}
  %0:3 = llm.adamw %p, %g, %m, %m, %lr, %s {beta1 = 1.0 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_eps(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error@+1 {{attribute 'eps' must be non-negative, got -1}}
  %0:3 = llm.adamw %p, %g, %m, %m, %lr, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = -1.0 : f64, weight_decay = 0.0 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @adamw_weight_decay(%p: tensor<4x4xf32>, %g: tensor<4x4xf32>, %m: tensor<4x4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error@+1 {{attribute 'weight_decay' must be non-negative, got -0.1}}
  %0:3 = llm.adamw %p, %g, %m, %m, %lr, %s {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, weight_decay = -0.1 : f64} : (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<f32>, tensor<i64>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @global_norm_empty() {
  // expected-error@+1 {{requires at least one operand}}
  %0 = llm.global_norm : () -> tensor<f32>
  return
}

// -----

func.func @all_finite_empty() {
  // expected-error@+1 {{requires at least one operand}}
  %0 = llm.all_finite : () -> tensor<f32>
  return
}

// -----

func.func @clip_coef_max_norm(%n: tensor<f32>) {
  // expected-error@+1 {{attribute 'max_norm' must be positive, got 0}}
  %0 = llm.clip_coef %n {max_norm = 0.0 : f64} : (tensor<f32>) -> tensor<f32>
  return
}

// -----

func.func @clip_by_value_limit(%g: tensor<8xf32>) {
  // expected-error@+1 {{attribute 'limit' must be positive, got -1}}
  %0 = llm.clip_by_value %g {limit = -1.0 : f64} : (tensor<8xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @scale_result(%g: tensor<8xf32>, %s: tensor<f32>) {
  // expected-error@+1 {{result must have type 'tensor<8xf32>'}}
  %0 = llm.scale %g, %s : (tensor<8xf32>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @cast_shape(%g: tensor<8xf32>) {
  // expected-error@+1 {{result must have shape 8, got 4}}
  %0 = llm.cast %g : (tensor<8xf32>) -> tensor<4xbf16>
  return
}

// -----

func.func @lr_negative(%s: tensor<i64>) {
  // expected-error@+1 {{learning rates must be non-negative, got lr = -1, min_lr = 0}}
  %0 = llm.lr_schedule %s {lr = -1.0 : f64, min_lr = 0.0 : f64, warmup_steps = 0 : i64, decay_steps = 0 : i64} : (tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @lr_steps_negative(%s: tensor<i64>) {
  // expected-error@+1 {{step counts must be non-negative, got warmup_steps = -2, decay_steps = 0}}
  %0 = llm.lr_schedule %s {lr = 1.0 : f64, min_lr = 0.0 : f64, warmup_steps = -2 : i64, decay_steps = 0 : i64} : (tensor<i64>) -> tensor<f32>
  return
}

// -----

func.func @lr_decay_before_warmup(%s: tensor<i64>) {
  // expected-error@+1 {{decay_steps 5 must exceed warmup_steps 10 (or be 0 for no decay)}}
  %0 = llm.lr_schedule %s {lr = 1.0 : f64, min_lr = 0.0 : f64, warmup_steps = 10 : i64, decay_steps = 5 : i64} : (tensor<i64>) -> tensor<f32>
  return
}
