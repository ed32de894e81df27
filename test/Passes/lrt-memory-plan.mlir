// RUN: llamac-opt %s -split-input-file -lrt-memory-plan | FileCheck %s

// A chain a -> b -> c -> d of 1 KiB buffers: c reuses a's slot once a is
// dead, and d reuses b's. A kernel never overwrites its own input, so b does
// not take a's slot. Arena: 2 KiB.
// CHECK-LABEL: func @reuse_after_last_use
// CHECK-SAME: attributes {lrt.arena_bytes = 2048 : i64}
// CHECK: lrt.kernel "scale"{{.*}}offsets = array<i64: 0>
// CHECK: lrt.kernel "scale"{{.*}}offsets = array<i64: 1024>
// CHECK: lrt.kernel "scale"{{.*}}offsets = array<i64: 0>
// CHECK: lrt.kernel "scale"{{.*}}offsets = array<i64: 1024>
func.func @reuse_after_last_use(%x: tensor<256xf32>, %s: tensor<f32>) -> tensor<256xf32> {
  %a = lrt.kernel "scale"(%x, %s) {params = {}} : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  %b = lrt.kernel "scale"(%a, %s) {params = {}} : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  %c = lrt.kernel "scale"(%b, %s) {params = {}} : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  %d = lrt.kernel "scale"(%c, %s) {params = {}} : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  return %d : tensor<256xf32>
}

// -----

// A view keeps the buffer it views alive (a stays until n2 reads it through
// v); function results live to the end; sizes round up to 64 bytes. n2 may
// take b's slot because b died at n1.
// CHECK-LABEL: func @views_and_results
// CHECK-SAME: attributes {lrt.arena_bytes = 2112 : i64}
// CHECK: lrt.kernel "scale"{{.*}}offsets = array<i64: 0>
// CHECK: lrt.view
// CHECK: lrt.kernel "scale"{{.*}}offsets = array<i64: 1024>
// CHECK: lrt.kernel "global_norm"{{.*}}offsets = array<i64: 2048>
// CHECK: lrt.kernel "global_norm"{{.*}}offsets = array<i64: 1024>
func.func @views_and_results(%x: tensor<256xf32>, %s: tensor<f32>) -> (tensor<f32>, tensor<f32>) {
  %a = lrt.kernel "scale"(%x, %s) {params = {}} : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  %v = lrt.view %a : tensor<256xf32> to tensor<16x16xf32>
  %b = lrt.kernel "scale"(%x, %s) {params = {}} : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  %n1 = lrt.kernel "global_norm"(%b) {params = {}} : (tensor<256xf32>) -> tensor<f32>
  %n2 = lrt.kernel "global_norm"(%v) {params = {}} : (tensor<16x16xf32>) -> tensor<f32>
  return %n1, %n2 : tensor<f32>, tensor<f32>
}

// -----

// In-place results take no arena space.
// CHECK-LABEL: func @inplace
// CHECK-SAME: attributes {lrt.arena_bytes = 0 : i64}
// CHECK: offsets = array<i64: -1, -1, -1>
func.func @inplace(%p: tensor<16xf32>, %g: tensor<16xf32>, %lr: tensor<f32>, %s: tensor<i64>)
    -> (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>) {
  %p1, %m1, %v1 = lrt.kernel "adamw"(%p, %g, %p, %p, %lr, %s) {inplace = array<i64: 0, 2, 3>, params = {}} : (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<f32>, tensor<i64>) -> (tensor<16xf32>, tensor<16xf32>, tensor<16xf32>)
  return %p1, %m1, %v1 : tensor<16xf32>, tensor<16xf32>, tensor<16xf32>
}
