#include "ops/evaluate_node.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace lasgd::ops {

absl::Status InferNode(const OpSchema& schema, InferenceContext& ctx) {
  const graph::Node& node = ctx.node();
  int n_in = 0;
  for (size_t i = 0; i < node.inputs.size(); ++i) n_in = node.inputs[i].empty() ? n_in : i + 1;
  if (static_cast<int>(node.inputs.size()) < schema.min_inputs || n_in > schema.max_inputs) {
    return ctx.Error(absl::StrCat("has ", node.inputs.size(), " inputs; ", node.op_type, " takes ",
                                  schema.min_inputs, " to ", schema.max_inputs));
  }
  if (static_cast<int>(node.outputs.size()) < schema.min_outputs ||
      static_cast<int>(node.outputs.size()) > schema.max_outputs) {
    return ctx.Error(absl::StrCat("has ", node.outputs.size(), " outputs; ", node.op_type,
                                  " produces ", schema.min_outputs, " to ", schema.max_outputs));
  }
  for (int i = 0; i < schema.min_inputs; ++i) {
    if (!node.HasInput(i)) return ctx.Error(absl::StrCat("required input ", i, " is missing"));
  }
  if (!schema.infer) return ctx.Error("has no shape function");
  RETURN_IF_ERROR(schema.infer(ctx));
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    if (node.HasOutput(i) && ctx.output_dtype(i) == DataType::kUndefined) {
      return ctx.Error(absl::StrCat("shape inference left output ", i, " ('", node.outputs[i],
                                    "') without a type"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildKernel(const OpSchema& schema,
                                                    const KernelBuildContext& ctx,
                                                    const std::string& only_kernel,
                                                    std::string* chosen,
                                                    std::vector<std::string>* refusals) {
  std::vector<std::string> reasons;
  for (const KernelCandidate& candidate : schema.kernels) {
    if (!only_kernel.empty() && candidate.name != only_kernel) continue;
    auto kernel = candidate.build(ctx);
    if (kernel.ok()) {
      if (chosen) *chosen = candidate.name;
      if (refusals) *refusals = reasons;
      return kernel;
    }
    reasons.push_back(absl::StrCat(candidate.name, ": ", kernel.status().message()));
  }
  if (refusals) *refusals = reasons;
  if (reasons.empty()) {
    return absl::UnimplementedError(
        absl::StrCat(ctx.node.Describe(), ": no kernel named '", only_kernel, "'"));
  }
  return absl::UnimplementedError(absl::StrCat(
      ctx.node.Describe(), ": no kernel accepts this node (", absl::StrJoin(reasons, "; "), ")"));
}

absl::StatusOr<std::vector<Tensor>> EvaluateNode(const graph::Node& node, int64_t opset,
                                                 const std::vector<Tensor>& inputs,
                                                 const EvaluateOptions& options) {
  ASSIGN_OR_RETURN(const OpSchema* schema, OpRegistry::Global().Find(node, opset));
  std::vector<const Tensor*> values;
  std::vector<DataType> dtypes;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    bool present = node.HasInput(i) && i < inputs.size() && inputs[i].defined();
    values.push_back(present ? &inputs[i] : nullptr);
    dtypes.push_back(present ? inputs[i].dtype() : DataType::kUndefined);
    shapes.push_back(present ? inputs[i].shape() : Shape{});
  }
  InferenceContext ictx(node, opset, values, dtypes, shapes);
  RETURN_IF_ERROR(InferNode(*schema, ictx));
  KernelBuildContext bctx{node, opset, dtypes, shapes, {}, {}, {}};
  std::vector<Tensor> outputs(node.outputs.size());
  std::vector<Tensor*> out_ptrs(node.outputs.size(), nullptr);
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    bctx.output_dtypes.push_back(ictx.output_dtype(i));
    bctx.output_shapes.push_back(ictx.output_shape(i));
    if (!node.HasOutput(i)) continue;
    outputs[i] = Tensor::Allocate(ictx.output_dtype(i), ictx.output_shape(i));
    out_ptrs[i] = &outputs[i];
  }
  ASSIGN_OR_RETURN(auto kernel, BuildKernel(*schema, bctx, options.kernel, nullptr, nullptr));
  KernelContext kctx(node, values, out_ptrs);
  RETURN_IF_ERROR(kernel->Run(kctx));
  return outputs;
}

}  // namespace lasgd::ops
