// RUN: llamac-opt %s -split-input-file -llm-tensor-parallel="tp=4" -verify-diagnostics

// tp must divide the query heads, the kv heads (llamac does not replicate
// kv heads), the intermediate size and the vocabulary; with sequence
// parallelism also the sequence length.
func.func @kv_heads(%q: tensor<2x4x4x4xf32>, %k: tensor<2x4x2x4xf32>) {
  // expected-error@+1 {{tp = 4 does not divide the key-value heads; llamac does not replicate kv heads, choose a tp that divides them (num_key_value_heads = 2)}}
  %o, %lse = llm.attention %q, %k, %k {scale = 0.5 : f64} : (tensor<2x4x4x4xf32>, tensor<2x4x2x4xf32>, tensor<2x4x2x4xf32>) -> (tensor<2x4x4x4xf32>, tensor<2x4x4xf32>)
  return
}

// -----

func.func @heads(%q: tensor<2x4x6x4xf32>, %k: tensor<2x4x6x4xf32>) {
  // expected-error@+1 {{tp = 4 does not divide the attention heads (num_attention_heads = 6)}}
  %o, %lse = llm.attention %q, %k, %k {scale = 0.5 : f64} : (tensor<2x4x6x4xf32>, tensor<2x4x6x4xf32>, tensor<2x4x6x4xf32>) -> (tensor<2x4x6x4xf32>, tensor<2x6x4xf32>)
  return
}

// -----

// expected-error@+1 {{tp = 4 does not divide the intermediate size (intermediate_size = 6)}}
func.func @intermediate(%w: tensor<6x16xf32> {llm.param = "model.layers.0.mlp.gate_proj.weight"}) { return }

// -----

// expected-error@+1 {{tp = 4 does not divide the vocabulary (vocab_size = 30)}}
func.func @vocab(%w: tensor<30x16xf32> {llm.param = "model.embed_tokens.weight"}) { return }
