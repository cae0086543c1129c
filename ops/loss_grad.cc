// Gradient builders of the loss op family (see ops/gradient.h): the gradient
// w.r.t. the scores / input only (labels and class weights are constants of
// the loss), computed by com.lasgd backward ops (ops/loss_backward.cc).
#include <string>
#include <vector>

#include "ops/gradient.h"

namespace lasgd::ops {
namespace {

using graph::Attribute;

std::vector<std::string> TrimTrailingEmpty(std::vector<std::string> inputs) {
  while (!inputs.empty() && inputs.back().empty()) inputs.pop_back();
  return inputs;
}

const std::string& OptionalInput(GradientContext& ctx, size_t i) {
  static const std::string kNone;
  return i < ctx.num_inputs() ? ctx.I(i) : kNone;
}

absl::Status SoftmaxCrossEntropyGradient(GradientContext& ctx) {
  const bool has_log_prob_grad = ctx.num_outputs() > 1 && ctx.HasGO(1);
  if (!ctx.NeedsGI(0) || (!ctx.HasGO(0) && !has_log_prob_grad)) return absl::OkStatus();
  std::vector<std::string> inputs = {ctx.GO(0), ctx.I(0), ctx.I(1), OptionalInput(ctx, 2),
                                     has_log_prob_grad ? ctx.GO(1) : std::string()};
  ctx.SetGI(0, ctx.Emit1("SoftmaxCrossEntropyLossGrad", TrimTrailingEmpty(inputs),
                         ctx.node().attributes, "com.lasgd"));
  return absl::OkStatus();
}

absl::Status NegativeLogLikelihoodGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0) || !ctx.HasGO(0)) return absl::OkStatus();
  auto attrs = ctx.node().attributes;
  attrs["input_shape"] = Attribute::Ints(ctx.shape(ctx.I(0)));
  std::vector<std::string> inputs = {ctx.GO(0), ctx.I(1), OptionalInput(ctx, 2)};
  ctx.SetGI(
      0, ctx.Emit1("NegativeLogLikelihoodLossGrad", TrimTrailingEmpty(inputs), attrs, "com.lasgd"));
  return absl::OkStatus();
}

}  // namespace

void RegisterLossGradients(GradientRegistry& registry) {
  registry.Register("", "SoftmaxCrossEntropyLoss", SoftmaxCrossEntropyGradient);
  registry.Register("", "NegativeLogLikelihoodLoss", NegativeLogLikelihoodGradient);
}

}  // namespace lasgd::ops
