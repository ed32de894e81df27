// RUN: llamac-opt %s -split-input-file -llm-allreduce-bucketing="bucket-cap-mb=0.001 first-bucket-mb=0.0005" | FileCheck %s
// RUN: llamac-opt %s -split-input-file -llm-allreduce-bucketing | FileCheck %s --check-prefix=DEFAULT
// RUN: llamac-opt %s -split-input-file -llm-allreduce-bucketing -llm-lower-to-lrt -lrt-memory-plan | FileCheck %s --check-prefix=LAYOUT

// Gradients become ready in the order of their producers (g3 first, as the
// backward pass runs from the last layer). Sizes: g3 256 B, g2 1024 B,
// g1 2048 B, g0 512 B; first bucket <= 524 B (0.0005 MiB), then <= 1048 B
// (0.001 MiB); g1 is larger than the cap and gets a bucket of its own.
// Each bucket starts right after its last gradient's producer and is waited
// for right before the first reader (the optimizer's norm).
// CHECK-LABEL: func @step
// CHECK: %[[G3:.*]] = llm.scale %arg3
// CHECK-NEXT: %[[B0:.*]] = dist.bucket_all_reduce %[[G3]] on @world grid_axes = [1] bucket 0 : tensor<64xf32>
// CHECK-NEXT: %[[G2:.*]] = llm.scale %arg2
// CHECK-NEXT: %[[B1:.*]] = dist.bucket_all_reduce %[[G2]] on @world grid_axes = [1] bucket 1 : tensor<256xf32>
// CHECK-NEXT: %[[G1:.*]] = llm.scale %arg1
// CHECK-NEXT: %[[B2:.*]] = dist.bucket_all_reduce %[[G1]] on @world grid_axes = [1] bucket 2 : tensor<512xf32>
// CHECK-NEXT: %[[G0:.*]] = llm.scale %arg0
// CHECK-NEXT: %[[B3:.*]] = dist.bucket_all_reduce %[[G0]] on @world grid_axes = [1] bucket 3 : tensor<128xf32>
// CHECK-NEXT: %[[X:.*]] = llm.add %arg4, %arg4
// The loss (not a gradient) keeps its own all-reduce.
// CHECK-NEXT: shard.all_reduce %arg5
// CHECK-NEXT: dist.bucket_wait %[[B0]] bucket 0
// CHECK-NEXT: dist.bucket_wait %[[B1]] bucket 1
// CHECK-NEXT: dist.bucket_wait %[[B2]] bucket 2
// CHECK-NEXT: dist.bucket_wait %[[B3]] bucket 3
// CHECK-NEXT: llm.global_norm
// CHECK-NOT: shard.all_reduce

// With DDP's defaults (1 MiB first bucket) everything fits in one bucket,
// started after the last gradient.
// DEFAULT-LABEL: func @step
// DEFAULT: llm.scale %arg0
// DEFAULT-NEXT: dist.bucket_all_reduce %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} on @world grid_axes = [1] bucket 0 : tensor<64xf32>, tensor<256xf32>, tensor<512xf32>, tensor<128xf32>
// DEFAULT-NOT: dist.bucket_all_reduce

// The memory plan lays a bucket's gradients out back to back: the
// producers write into the bucket, the collectives run in place.
// With the default sizes (one bucket of 256 + 1024 + 2048 + 512 bytes) the
// four producers write at consecutive offsets of one region.
// LAYOUT-LABEL: func @step
// LAYOUT: lrt.kernel "scale"(%arg3, %arg6) {offsets = array<i64: [[#O:]]>
// LAYOUT-NEXT: lrt.kernel "scale"(%arg2, %arg6) {offsets = array<i64: [[#O+256]]>
// LAYOUT-NEXT: lrt.kernel "scale"(%arg1, %arg6) {offsets = array<i64: [[#O+1280]]>
// LAYOUT-NEXT: lrt.kernel "scale"(%arg0, %arg6) {offsets = array<i64: [[#O+3328]]>
// LAYOUT-NEXT: lrt.kernel "bucket_all_reduce_start"({{.*}}) {inplace = array<i64: 0, 1, 2, 3>, offsets = array<i64: -1, -1, -1, -1>, params = {bucket = 0 : i64, grid_axes = array<i64: 1>, reduction = "sum"}}
// LAYOUT: lrt.kernel "bucket_all_reduce_wait"({{.*}}) {inplace = array<i64: 0, 1, 2, 3>
shard.grid @world(shape = 1x2x1)
func.func @step(%a: tensor<128xf32>, %b: tensor<512xf32>, %c: tensor<256xf32>, %d: tensor<64xf32>,
                %x: tensor<8xf32>, %loss: tensor<f32>, %s: tensor<f32>) -> (tensor<f32>, tensor<8xf32>) {
  %g3 = llm.scale %d, %s : (tensor<64xf32>, tensor<f32>) -> tensor<64xf32>
  %g2 = llm.scale %c, %s : (tensor<256xf32>, tensor<f32>) -> tensor<256xf32>
  %g1 = llm.scale %b, %s : (tensor<512xf32>, tensor<f32>) -> tensor<512xf32>
  %g0 = llm.scale %a, %s : (tensor<128xf32>, tensor<f32>) -> tensor<128xf32>
  %y = llm.add %x, %x : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  %l = shard.all_reduce %loss on @world grid_axes = [1] : tensor<f32> -> tensor<f32>
  %r0 = shard.all_reduce %g0 on @world grid_axes = [1] {llm.grad = "a"} : tensor<128xf32> -> tensor<128xf32>
  %r1 = shard.all_reduce %g1 on @world grid_axes = [1] {llm.grad = "b"} : tensor<512xf32> -> tensor<512xf32>
  %r2 = shard.all_reduce %g2 on @world grid_axes = [1] {llm.grad = "c"} : tensor<256xf32> -> tensor<256xf32>
  %r3 = shard.all_reduce %g3 on @world grid_axes = [1] {llm.grad = "d"} : tensor<64xf32> -> tensor<64xf32>
  %n = llm.global_norm %r0, %r1, %r2, %r3 : (tensor<128xf32>, tensor<512xf32>, tensor<256xf32>, tensor<64xf32>) -> tensor<f32>
  %t = llm.add %l, %n : (tensor<f32>, tensor<f32>) -> tensor<f32>
  return %t, %y : tensor<f32>, tensor<8xf32>
}
