// Gradient builders of the conv op family (see ops/gradient.h).
//
// Conv:          dX = ConvGradInput(dY, W), dW (and dB) = ConvGradWeight(X, dY),
//                both com.lasgd ops carrying the forward attributes.
// ConvTranspose: the adjoint of a transposed convolution is a convolution, so
//                dX = Conv(dY, W) and dW = ConvGradWeight(dY, X) with the
//                roles of input and output swapped and explicit pads.
// dB is dY summed over every axis but the channels.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/conv_util.h"
#include "ops/gradient.h"

namespace lasgd::ops {
namespace {

using graph::Attribute;

// dY [N, M, spatial...] summed to the bias's shape [M].
std::string BiasGradient(GradientContext& ctx, const std::string& dy, const Shape& y_shape) {
  Shape per_channel(y_shape.size() - 1, 1);
  per_channel[0] = y_shape[1];
  std::string reduced = ctx.ReduceToShape(dy, y_shape, per_channel);
  return ctx.Emit1("Reshape", {reduced, ctx.Constant(Tensor::FromInt64s({y_shape[1]}, {1}))});
}

// The forward node's attributes without kernel_shape (the backward ops take
// the kernel from W or from an explicit kernel_shape).
std::map<std::string, Attribute> ConvAttributes(const graph::Node& node) {
  std::map<std::string, Attribute> attrs;
  for (const char* name : {"auto_pad", "pads", "strides", "dilations", "group"}) {
    if (const Attribute* a = node.FindAttribute(name)) attrs[name] = *a;
  }
  return attrs;
}

absl::Status ConvGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0)) return absl::OkStatus();
  const std::string& dy = ctx.GO(0);
  const Shape& x_shape = ctx.shape(ctx.I(0));
  const Shape& w_shape = ctx.shape(ctx.I(1));
  const bool has_bias = ctx.num_inputs() > 2 && !ctx.I(2).empty();
  if (ctx.NeedsGI(0)) {
    auto attrs = ConvAttributes(ctx.node());
    attrs["input_shape"] = Attribute::Ints(x_shape);
    ctx.SetGI(0, ctx.Emit1("ConvGradInput", {dy, ctx.I(1)}, attrs, "com.lasgd"));
  }
  const bool need_bias = has_bias && ctx.NeedsGI(2);
  if (ctx.NeedsGI(1)) {
    auto attrs = ConvAttributes(ctx.node());
    attrs["kernel_shape"] = Attribute::Ints(Shape(w_shape.begin() + 2, w_shape.end()));
    // oneDNN sums the bias gradient in the same pass over dY.
    std::vector<std::string> outs =
        ctx.Emit("ConvGradWeight", {ctx.I(0), dy}, need_bias ? 2 : 1, attrs, "com.lasgd");
    ctx.SetGI(1, outs[0]);
    if (need_bias) ctx.SetGI(2, outs[1]);
  } else if (need_bias) {
    ctx.SetGI(2, BiasGradient(ctx, dy, ctx.shape(ctx.O(0))));
  }
  return absl::OkStatus();
}

absl::Status ConvTransposeGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0)) return absl::OkStatus();
  const std::string& dy = ctx.GO(0);
  const Shape& x_shape = ctx.shape(ctx.I(0));
  const Shape& w_shape = ctx.shape(ctx.I(1));
  const Shape& y_shape = ctx.shape(ctx.O(0));
  auto geometry = conv_internal::ResolveConvTransposeGeometry(ctx.node(), x_shape, w_shape);
  if (!geometry.ok()) return ctx.Error(std::string(geometry.status().message()));
  const conv_internal::ConvGeometry& g = *geometry;
  // The convolution of dY (sized like Y) back to X's size: the same strides,
  // dilations and start pads; at the end, output_padding added pixels that no
  // input reaches, and any end pad within one stride yields the same size.
  std::vector<int64_t> pads(2 * g.spatial_rank());
  for (int64_t i = 0; i < g.spatial_rank(); ++i) {
    const int64_t end = std::max<int64_t>(0, g.pads_end[i] - g.output_padding[i]);
    if (g.pads_begin[i] < 0 || end > g.pads_end[i] - g.output_padding[i] + g.strides[i] - 1) {
      return absl::UnimplementedError(absl::StrCat(
          ctx.node().Describe(),
          ": gradient: an output_shape larger than the natural output (negative padding) is not "
          "supported"));
    }
    pads[i] = g.pads_begin[i];
    pads[g.spatial_rank() + i] = end;
  }
  std::map<std::string, Attribute> attrs = {{"strides", Attribute::Ints(g.strides)},
                                            {"dilations", Attribute::Ints(g.dilations)},
                                            {"group", Attribute::Int(g.group)},
                                            {"pads", Attribute::Ints(pads)}};
  if (ctx.NeedsGI(0)) {
    auto conv_attrs = attrs;
    conv_attrs["kernel_shape"] = Attribute::Ints(g.kernel);
    ctx.SetGI(0, ctx.Emit1("Conv", {dy, ctx.I(1)}, conv_attrs));
  }
  if (ctx.NeedsGI(1)) {
    auto grad_attrs = attrs;
    grad_attrs["kernel_shape"] = Attribute::Ints(g.kernel);
    ctx.SetGI(1, ctx.Emit1("ConvGradWeight", {dy, ctx.I(0)}, grad_attrs, "com.lasgd"));
  }
  if (ctx.num_inputs() > 2 && !ctx.I(2).empty() && ctx.NeedsGI(2)) {
    ctx.SetGI(2, BiasGradient(ctx, dy, y_shape));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterConvGradients(GradientRegistry& registry) {
  registry.Register("", "Conv", ConvGradient);
  registry.Register("", "ConvTranspose", ConvTransposeGradient);
}

}  // namespace lasgd::ops
