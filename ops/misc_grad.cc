// Gradient builders of the misc op family (see ops/gradient.h): Identity and
// Dropout.
#include "ops/grad_util_ew.h"

namespace lasgd::ops {
namespace {

using grad_ew::CastTo;

absl::Status IdentityGradient(GradientContext& ctx) {
  if (ctx.NeedsGI(0)) ctx.SetGI(0, ctx.GO(0));
  return absl::OkStatus();
}

// Training mode: Y = X * mask / (1 - ratio), so dX = dY * mask / (1 - ratio),
// reading the mask the forward node drew (the autodiff pass names output 1 of
// every Dropout that may train). Inference mode, and every Dropout before
// opset 12 (ops/misc.cc runs those as a copy), passes dY through.
absl::Status DropoutGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const bool has_training = ctx.opset() >= 12 && ctx.num_inputs() > 2 && !ctx.I(2).empty();
  const Tensor* training = has_training ? ctx.constant_value(ctx.I(2)) : nullptr;
  if (!has_training || (training != nullptr && training->GetAsDouble(0) == 0.0)) {
    ctx.SetGI(0, ctx.GO(0));
    return absl::OkStatus();
  }
  if (!ctx.node().HasOutput(1)) {
    return ctx.Error("a training-mode Dropout needs its mask output (output 1) for the gradient");
  }
  const DataType dtype = ctx.dtype(ctx.I(0));
  std::string scale;
  const bool has_ratio = ctx.num_inputs() > 1 && !ctx.I(1).empty();
  const Tensor* ratio = has_ratio ? ctx.constant_value(ctx.I(1)) : nullptr;
  if (!has_ratio || ratio != nullptr) {
    const double r = ratio != nullptr ? ratio->GetAsDouble(0) : 0.5;
    if (!(r >= 0.0 && r < 1.0)) return ctx.Error("ratio must be in [0, 1)");
    scale = ctx.ScalarConstant(1.0 / (1.0 - r), dtype);
  } else {
    const std::string one = ctx.ScalarConstant(1.0, dtype);
    scale = ctx.Emit1("Div", {one, ctx.Emit1("Sub", {one, CastTo(ctx, ctx.I(1), dtype)})});
  }
  if (training == nullptr) {
    // The mode is only known at run time; in inference mode the mask is all
    // true and the scale must be 1.
    scale = ctx.Emit1("Where", {ctx.I(2), scale, ctx.ScalarConstant(1.0, dtype)});
  }
  std::string masked = ctx.Emit1("Mul", {ctx.GO(0), CastTo(ctx, ctx.O(1), dtype)});
  // A [1]-shaped runtime scale may add a dim to a scalar input; view it back.
  ctx.SetGI(0, grad_ew::ReshapeTo(ctx, ctx.Emit1("Mul", {masked, scale}), ctx.shape(ctx.I(0))));
  return absl::OkStatus();
}

}  // namespace

void RegisterMiscGradients(GradientRegistry& registry) {
  registry.Register("", "Identity", IdentityGradient);
  registry.Register("", "Dropout", DropoutGradient);
}

}  // namespace lasgd::ops
