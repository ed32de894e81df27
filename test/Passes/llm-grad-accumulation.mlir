// RUN: llamac-opt %s -split-input-file -llm-grad-accumulation="microbatches=3" | FileCheck %s
// RUN: llamac-opt %s -split-input-file -llm-grad-accumulation="microbatches=3" -cse | FileCheck %s --check-prefix=CSE
// RUN: llamac-opt %s -split-input-file -llm-grad-accumulation="microbatches=3" -llm-grad-allreduce="dp=2" | FileCheck %s --check-prefix=DP

// Three microbatches: two more token/target argument pairs, the step cloned
// for each in order (microbatch 1's backward before microbatch 2's
// forward), loss and gradients summed; one reduction per step after that.
// CHECK-LABEL: func @step
// CHECK-SAME: %arg3: tensor<2x4xi32> {llm.role = "tokens"}, %arg4: tensor<2x4xi32> {llm.role = "targets"}, %arg5: tensor<2x4xi32> {llm.role = "tokens"}, %arg6: tensor<2x4xi32> {llm.role = "targets"}
// CHECK: %[[E0:.*]] = llm.embedding %arg0, %arg1
// CHECK: %[[L0:.*]] = llm.cross_entropy {{.*}}, %arg2
// CHECK: %[[G0:.*]] = llm.embedding_grad {{.*}}, %arg1
// CHECK: llm.embedding %arg0, %arg3
// CHECK: %[[L1:.*]] = llm.cross_entropy {{.*}}, %arg4
// CHECK: %[[G1:.*]] = llm.embedding_grad {{.*}}, %arg3
// CHECK: %[[SL1:.*]] = llm.add %[[L0]], %[[L1]]
// CHECK: %[[SG1:.*]] = llm.add %[[G0]], %[[G1]]
// CHECK: llm.embedding %arg0, %arg5
// CHECK: %[[L2:.*]] = llm.cross_entropy {{.*}}, %arg6
// CHECK: %[[G2:.*]] = llm.embedding_grad {{.*}}, %arg5
// CHECK: %[[SL2:.*]] = llm.add %[[SL1]], %[[L2]]
// CHECK: %[[SG2:.*]] = llm.add %[[SG1]], %[[G2]]
// CHECK: return %[[SL2]], %[[SG2]]

// Clones that do not read the tokens (the seed constant) are shared.
// CSE-LABEL: func @step
// CSE-COUNT-1: llm.constant
// CSE-NOT: llm.constant

// DP-LABEL: func @step
// DP-COUNT-2: shard.all_reduce
// DP-NOT: shard.all_reduce
func.func @step(%emb: tensor<16x8xf32> {llm.param = "e"}, %ids: tensor<2x4xi32> {llm.role = "tokens"},
                %targets: tensor<2x4xi32> {llm.role = "targets"})
    -> (tensor<f32> {llm.role = "loss"}, tensor<16x8xf32> {llm.param = "e", llm.role = "grad"}) {
  %h = llm.embedding %emb, %ids : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %logits = llm.linear %h, %emb : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %logits, %targets {normalizer = 24 : i64} : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
  %one = llm.constant {value = 1.0 : f64} : () -> tensor<f32>
  %dl = llm.cross_entropy_grad %one, %logits, %targets {normalizer = 24 : i64} : (tensor<f32>, tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<2x4x16xf32>
  %dh = llm.linear_grad_input %dl, %emb : (tensor<2x4x16xf32>, tensor<16x8xf32>) -> tensor<2x4x8xf32>
  %dw = llm.embedding_grad %dh, %ids : (tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<16x8xf32>
  return %loss, %dw : tensor<f32>, tensor<16x8xf32>
}
