// RUN: llamac-opt %s --allow-unregistered-dialect | llamac-opt --allow-unregistered-dialect | FileCheck %s

// The sharding attribute and dist.constraint round-trip.
// CHECK-LABEL: func @roundtrip
// CHECK-SAME: dist.sharding = #dist.sharding<[{tp}, {}], p1>
// CHECK-SAME: dist.sharding = #dist.sharding<[{}, {dp, tp}]>
// CHECK: dist.constraint %{{.*}} <[{}, {tp}, {?}], p2> : tensor<2x8x16xf32>
// CHECK: dist.constraint %{{.*}} <[{}, {}, {tp, ?}]> : tensor<2x8x16xf32>
// CHECK: "test.sink"() {s = #dist.sharding<[{}, {}, {}], partial = {tp}>}
shard.grid @world(shape = 1x2x2)
func.func @roundtrip(%w: tensor<16x8xf32> {dist.sharding = #dist.sharding<[{tp}, {}], p1>},
                     %v: tensor<8x16xf32> {dist.sharding = #dist.sharding<[{}, {dp, tp}]>},
                     %x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
  %0 = dist.constraint %x <[{}, {tp}, {?}], p2> : tensor<2x8x16xf32>
  %1 = dist.constraint %0 <[{}, {}, {tp, ?}]> : tensor<2x8x16xf32>
  "test.sink"() {s = #dist.sharding<[{}, {}, {}], partial = {tp}>} : () -> ()
  return %1 : tensor<2x8x16xf32>
}
