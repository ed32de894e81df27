// RUN: llamac-opt %s -split-input-file -verify-diagnostics

func.func @inplace_arity(%x: tensor<4xf32>) {
  // expected-error@+1 {{'inplace' has 2 entries for 1 results}}
  %y = lrt.kernel "scale"(%x) {inplace = array<i64: 0, 0>, params = {}} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @inplace_operand(%x: tensor<4xf32>) {
  // expected-error@+1 {{'inplace' entry 0 names operand 3 of 1}}
  %y = lrt.kernel "scale"(%x) {inplace = array<i64: 3>, params = {}} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @inplace_type(%x: tensor<8xf32>) {
  // expected-error@+1 {{result #0 reuses operand #0 of a different type}}
  %y = lrt.kernel "scale"(%x) {inplace = array<i64: 0>, params = {}} : (tensor<8xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @offsets_arity(%x: tensor<4xf32>) {
  // expected-error@+1 {{'offsets' has 0 entries for 1 results}}
  %y = lrt.kernel "scale"(%x) {offsets = array<i64>, params = {}} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @offsets_alignment(%x: tensor<4xf32>) {
  // expected-error@+1 {{arena offset 8 is not 64-byte aligned}}
  %y = lrt.kernel "scale"(%x) {offsets = array<i64: 8>, params = {}} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @no_name(%x: tensor<4xf32>) {
  // expected-error@+1 {{requires a kernel name}}
  %y = lrt.kernel ""(%x) {params = {}} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @bad_view(%x: tensor<4xf32>) {
  // expected-error@+1 {{cannot view 'tensor<4xf32>' as 'tensor<5xf32>': element type and count must match}}
  %y = lrt.view %x : tensor<4xf32> to tensor<5xf32>
  return
}
