// Gradient builders of the pool op family (see ops/gradient.h).
//
// MaxPool / AveragePool emit com.lasgd MaxPoolGrad / AveragePoolGrad with the
// forward attributes and the model's opset (which decides what the
// attributes mean). The global pools are the same ops with one window
// covering every spatial axis.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/gradient.h"

namespace lasgd::ops {
namespace {

using graph::Attribute;

absl::Status PoolGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0) || !ctx.NeedsGI(0)) return absl::OkStatus();
  const bool max = ctx.node().op_type == "MaxPool";
  auto attrs = ctx.node().attributes;
  attrs["opset"] = Attribute::Int(ctx.opset());
  if (max) {
    ctx.SetGI(0, ctx.Emit1("MaxPoolGrad", {ctx.I(0), ctx.GO(0)}, attrs, "com.lasgd"));
  } else {
    attrs["input_shape"] = Attribute::Ints(ctx.shape(ctx.I(0)));
    ctx.SetGI(0, ctx.Emit1("AveragePoolGrad", {ctx.GO(0)}, attrs, "com.lasgd"));
  }
  return absl::OkStatus();
}

absl::Status GlobalPoolGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0) || !ctx.NeedsGI(0)) return absl::OkStatus();
  const Shape& x = ctx.shape(ctx.I(0));
  if (x.size() == 2) {
    // No spatial axes: the pool is the identity.
    ctx.SetGI(0, ctx.GO(0));
    return absl::OkStatus();
  }
  if (x.size() > 5) {
    return absl::UnimplementedError(absl::StrCat(
        ctx.node().Describe(), ": gradient: global pooling over more than 3 spatial axes (X ",
        ShapeToString(x), ") is not supported"));
  }
  std::map<std::string, Attribute> attrs = {
      {"kernel_shape", Attribute::Ints(Shape(x.begin() + 2, x.end()))},
      // The defaults (no padding, stride 1) mean the same at every opset.
      {"opset", Attribute::Int(ctx.opset())}};
  if (ctx.node().op_type == "GlobalMaxPool") {
    ctx.SetGI(0, ctx.Emit1("MaxPoolGrad", {ctx.I(0), ctx.GO(0)}, attrs, "com.lasgd"));
  } else {
    attrs["input_shape"] = Attribute::Ints(x);
    ctx.SetGI(0, ctx.Emit1("AveragePoolGrad", {ctx.GO(0)}, attrs, "com.lasgd"));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterPoolGradients(GradientRegistry& registry) {
  registry.Register("", "MaxPool", PoolGradient);
  registry.Register("", "AveragePool", PoolGradient);
  registry.Register("", "GlobalMaxPool", GlobalPoolGradient);
  registry.Register("", "GlobalAveragePool", GlobalPoolGradient);
}

}  // namespace lasgd::ops
