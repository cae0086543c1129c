// Chooses, once per plan, which values are stored in oneDNN's channel-blocked
// layout (ops/onednn_layout.h) instead of plain row-major, so that chains of
// oneDNN kernels (conv -> pool -> conv ...) pass tensors without reordering
// them into plain NCHW and back between every op.
//
// The rule is local and conservative: a value is blocked iff the executor
// says it may be (float32, rank 4, an intermediate: not a graph input, output
// or initializer), its producer writes that output blocked natively, and it
// has readers, every one of which reads that input blocked natively
// (ops::Kernel::AcceptsBlockedLayout). Everything else stays plain, so a
// kernel that knows nothing about layouts never sees a blocked tensor.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ops/op_registry.h"

namespace lasgd::runtime {

// One step of a plan as the layout planner sees it.
struct LayoutStep {
  ops::Kernel* kernel = nullptr;
  std::vector<int> inputs;   // value id per node input, -1 = omitted
  std::vector<int> outputs;  // value id per node output, -1 = omitted
};

struct LayoutPlan {
  std::vector<bool> blocked;  // per value id
  // Per step, per input / output: whether it is stored blocked.
  std::vector<std::vector<bool>> step_inputs, step_outputs;
  int blocked_values = 0;
  // Layout conversions that no longer run: per blocked value, the producer's
  // reorder to plain and each reader's reorder back.
  int reorders_avoided = 0;
};

// `eligible[v]`: whether value v may be stored blocked at all.
LayoutPlan PlanLayouts(const std::vector<LayoutStep>& steps, const std::vector<bool>& eligible);

// Tells every kernel that has a blocked input or output how its tensors are
// stored (Kernel::UseBlockedLayouts); an error names the step.
absl::Status ApplyLayouts(const std::vector<LayoutStep>& steps, const LayoutPlan& plan,
                          const std::vector<std::string>& step_names);

}  // namespace lasgd::runtime
