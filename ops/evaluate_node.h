// Evaluates one node eagerly on concrete tensors: infer its output shapes,
// allocate them, pick a kernel, run it. Constant folding and the op tests use
// this; the executor does the same work once per plan instead of per call.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "ops/op_registry.h"
#include "runtime/tensor.h"

namespace lasgd::ops {

struct EvaluateOptions {
  // Run this kernel candidate only ("reference", "onednn"); empty = first that accepts.
  std::string kernel;
};

// `inputs[i]` may be an undefined Tensor for an omitted optional input.
absl::StatusOr<std::vector<Tensor>> EvaluateNode(const graph::Node& node, int64_t opset,
                                                 const std::vector<Tensor>& inputs,
                                                 const EvaluateOptions& options = {});

// Runs the schema's shape function on the inputs' types, shapes and values.
absl::Status InferNode(const OpSchema& schema, InferenceContext& ctx);

// Builds the first kernel candidate that accepts the node (or exactly
// `only_kernel`); `chosen` receives its name and `refusals` why earlier ones declined.
absl::StatusOr<std::unique_ptr<Kernel>> BuildKernel(const OpSchema& schema,
                                                    const KernelBuildContext& ctx,
                                                    const std::string& only_kernel,
                                                    std::string* chosen,
                                                    std::vector<std::string>* refusals);

}  // namespace lasgd::ops
