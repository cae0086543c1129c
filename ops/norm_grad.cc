// Gradient builders of the norm op family (see ops/gradient.h): each emits
// one com.lasgd backward op (ops/norm_backward.cc) computing dX, dscale and
// dB together, since they share the same reductions.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/gradient.h"

namespace lasgd::ops {
namespace {

using graph::Attribute;

absl::Status NoGradientThrough(GradientContext& ctx, size_t first_output, const char* what) {
  for (size_t o = first_output; o < ctx.num_outputs(); ++o) {
    if (ctx.HasGO(o)) {
      return absl::UnimplementedError(absl::StrCat(ctx.node().Describe(), ": gradient: output ", o,
                                                   " (", what,
                                                   ") is used by the loss; only the gradient "
                                                   "through Y is supported"));
    }
  }
  return absl::OkStatus();
}

void SetGradients(GradientContext& ctx, const std::vector<std::string>& grads) {
  for (size_t i = 0; i < grads.size() && i < ctx.num_inputs(); ++i) {
    if (!ctx.I(i).empty() && ctx.NeedsGI(i)) ctx.SetGI(i, grads[i]);
  }
}

bool NeedsAny(GradientContext& ctx, size_t count) {
  for (size_t i = 0; i < count && i < ctx.num_inputs(); ++i) {
    if (!ctx.I(i).empty() && ctx.NeedsGI(i)) return true;
  }
  return false;
}

absl::Status BatchNormGradient(GradientContext& ctx) {
  const graph::Node& node = ctx.node();
  bool training;
  if (ctx.opset() >= 14) {
    training = node.GetInt("training_mode", 0) != 0;
  } else {
    training = false;
    for (size_t i = 1; i < node.outputs.size(); ++i) training |= node.HasOutput(i);
    // Opsets 7-13: outputs 3 and 4 are the batch statistics, which do depend
    // on X; the running statistics (1, 2) carry no gradient.
    RETURN_IF_ERROR(NoGradientThrough(ctx, 3, "the saved batch statistics"));
  }
  if (!ctx.HasGO(0) || !NeedsAny(ctx, 3)) return absl::OkStatus();
  std::map<std::string, Attribute> attrs = {
      {"epsilon", Attribute::Float(node.GetFloat("epsilon", 1e-5f))},
      {"training_mode", Attribute::Int(training ? 1 : 0)},
      {"spatial", Attribute::Int(ctx.opset() >= 9 || node.GetInt("spatial", 1) != 0 ? 1 : 0)}};
  std::vector<std::string> inputs = {ctx.GO(0), ctx.I(0), ctx.I(1)};
  if (!training) {
    inputs.push_back(ctx.I(3));
    inputs.push_back(ctx.I(4));
  }
  SetGradients(ctx, ctx.Emit("BatchNormGrad", inputs, 3, attrs, "com.lasgd"));
  return absl::OkStatus();
}

absl::Status LayerNormGradient(GradientContext& ctx) {
  RETURN_IF_ERROR(NoGradientThrough(ctx, 1, "Mean or InvStdDev"));
  if (!ctx.HasGO(0) || !NeedsAny(ctx, 3)) return absl::OkStatus();
  const graph::Node& node = ctx.node();
  std::map<std::string, Attribute> attrs = {
      {"axis", Attribute::Int(node.GetInt("axis", -1))},
      {"epsilon", Attribute::Float(node.GetFloat("epsilon", 1e-5f))}};
  std::vector<std::string> inputs = {ctx.GO(0), ctx.I(0), ctx.I(1)};
  const bool has_bias = ctx.num_inputs() > 2 && !ctx.I(2).empty();
  if (has_bias) inputs.push_back(ctx.I(2));
  SetGradients(ctx, ctx.Emit("LayerNormGrad", inputs, has_bias ? 3 : 2, attrs, "com.lasgd"));
  return absl::OkStatus();
}

absl::Status InstanceNormGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0) || !NeedsAny(ctx, 3)) return absl::OkStatus();
  std::map<std::string, Attribute> attrs = {
      {"epsilon", Attribute::Float(ctx.node().GetFloat("epsilon", 1e-5f))}};
  SetGradients(
      ctx, ctx.Emit("InstanceNormGrad", {ctx.GO(0), ctx.I(0), ctx.I(1)}, 3, attrs, "com.lasgd"));
  return absl::OkStatus();
}

}  // namespace

void RegisterNormGradients(GradientRegistry& registry) {
  registry.Register("", "BatchNormalization", BatchNormGradient);
  registry.Register("", "LayerNormalization", LayerNormGradient);
  registry.Register("", "InstanceNormalization", InstanceNormGradient);
}

}  // namespace lasgd::ops
