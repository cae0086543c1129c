// Conv, ConvTranspose and com.lasgd FusedConv: schemas, shape inference and
// the geometry both kernel files share. Kernels live in conv_reference.cc and
// conv_onednn.cc.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/conv_util.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace conv_internal {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Reads an ints attribute with one value per spatial axis (or `count` values),
// each at least `min_value`; absent means `default_value` everywhere.
absl::StatusOr<std::vector<int64_t>> SpatialInts(const graph::Node& node, const std::string& name,
                                                 int64_t count, int64_t default_value,
                                                 int64_t min_value) {
  const graph::Attribute* attr = node.FindAttribute(name);
  if (attr == nullptr || (attr->kind == graph::Attribute::Kind::kInts && attr->ints.empty())) {
    return std::vector<int64_t>(count, default_value);
  }
  if (attr->kind != graph::Attribute::Kind::kInts) {
    return Invalid(
        absl::StrCat("attribute '", name, "' must be a list of ints, got ", attr->ToString()));
  }
  if (static_cast<int64_t>(attr->ints.size()) != count) {
    return Invalid(absl::StrCat("attribute '", name, "' has ", attr->ints.size(),
                                " values; expected ", count, " (", attr->ToString(), ")"));
  }
  for (int64_t v : attr->ints) {
    if (v < min_value) {
      return Invalid(absl::StrCat("attribute '", name, "' values must be >= ", min_value, ", got ",
                                  attr->ToString()));
    }
  }
  return attr->ints;
}

absl::StatusOr<std::string> AutoPad(const graph::Node& node) {
  std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" &&
      auto_pad != "VALID") {
    return Invalid(absl::StrCat("attribute 'auto_pad' must be NOTSET, SAME_UPPER, SAME_LOWER or ",
                                "VALID, got '", auto_pad, "'"));
  }
  return auto_pad;
}

// Checks X and W and fills the parts of the geometry common to Conv and
// ConvTranspose. `w_in_axis` is the axis of W holding input channels (1 for
// Conv: [M, C/group, k...]; 0 for ConvTranspose: [C, M/group, k...]).
absl::Status ResolveCommon(const graph::Node& node, const Shape& x, const Shape& w, bool transpose,
                           ConvGeometry* g) {
  if (x.size() < 3 || x.size() > 5) {
    return Invalid(absl::StrCat("input X must have rank 3 to 5 (N, C and 1 to 3 spatial axes), ",
                                "got shape ", ShapeToString(x)));
  }
  if (w.size() != x.size()) {
    return Invalid(absl::StrCat("weights W must have the rank of X (", x.size(), "), got shape ",
                                ShapeToString(w), " for X ", ShapeToString(x)));
  }
  const int64_t nsp = static_cast<int64_t>(x.size()) - 2;
  g->transpose = transpose;
  g->batch = x[0];
  g->in_channels = x[1];
  g->in_spatial.assign(x.begin() + 2, x.end());
  g->group = node.GetInt("group", 1);
  if (g->group < 1) return Invalid(absl::StrCat("attribute 'group' must be >= 1, got ", g->group));
  if (g->in_channels % g->group != 0) {
    return Invalid(absl::StrCat("input channels (", g->in_channels,
                                ") are not divisible by group (", g->group, ")"));
  }
  if (!transpose) {
    if (w[1] * g->group != g->in_channels) {
      return Invalid(absl::StrCat("W ", ShapeToString(w), " expects ", w[1] * g->group,
                                  " input channels (W[1] * group = ", w[1], " * ", g->group,
                                  "), but X ", ShapeToString(x), " has ", g->in_channels));
    }
    if (w[0] % g->group != 0) {
      return Invalid(absl::StrCat("output channels W[0] = ", w[0], " are not divisible by group (",
                                  g->group, ")"));
    }
    g->out_channels = w[0];
  } else {
    if (w[0] != g->in_channels) {
      return Invalid(absl::StrCat("W ", ShapeToString(w), " has ", w[0],
                                  " input channels (W[0]), but X ", ShapeToString(x), " has ",
                                  g->in_channels));
    }
    g->out_channels = w[1] * g->group;
  }
  g->kernel.assign(w.begin() + 2, w.end());
  for (int64_t k : g->kernel) {
    if (k < 1) return Invalid(absl::StrCat("W has an empty kernel: ", ShapeToString(w)));
  }
  for (int64_t d : x) {
    if (d < 1) return Invalid(absl::StrCat("X has an empty dimension: ", ShapeToString(x)));
  }
  if (node.FindAttribute("kernel_shape") != nullptr) {
    ASSIGN_OR_RETURN(std::vector<int64_t> ks, SpatialInts(node, "kernel_shape", nsp, 1, 1));
    if (ks != g->kernel) {
      return Invalid(absl::StrCat("attribute kernel_shape [", absl::StrJoin(ks, ","),
                                  "] does not match the spatial dims of W ", ShapeToString(w)));
    }
  }
  ASSIGN_OR_RETURN(g->strides, SpatialInts(node, "strides", nsp, 1, 1));
  ASSIGN_OR_RETURN(g->dilations, SpatialInts(node, "dilations", nsp, 1, 1));
  return absl::OkStatus();
}

}  // namespace

Shape ConvGeometry::OutputShape() const {
  Shape shape = {batch, out_channels};
  shape.insert(shape.end(), out_spatial.begin(), out_spatial.end());
  return shape;
}

absl::StatusOr<ConvGeometry> ResolveConvGeometry(const graph::Node& node, const Shape& x,
                                                 const Shape& w) {
  ConvGeometry g;
  RETURN_IF_ERROR(ResolveCommon(node, x, w, /*transpose=*/false, &g));
  const int64_t nsp = g.spatial_rank();
  ASSIGN_OR_RETURN(std::string auto_pad, AutoPad(node));
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, SpatialInts(node, "pads", 2 * nsp, 0, 0));
  g.pads_begin.assign(nsp, 0);
  g.pads_end.assign(nsp, 0);
  g.out_spatial.assign(nsp, 0);
  for (int64_t i = 0; i < nsp; ++i) {
    const int64_t in = g.in_spatial[i], s = g.strides[i];
    const int64_t window = (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      g.out_spatial[i] = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (g.out_spatial[i] - 1) * s + window - in);
      // An odd total puts the extra pixel at the end for SAME_UPPER.
      g.pads_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pads_end[i] = total - g.pads_begin[i];
    } else {
      if (auto_pad == "NOTSET") {
        g.pads_begin[i] = pads[i];
        g.pads_end[i] = pads[nsp + i];
      }
      int64_t span = in + g.pads_begin[i] + g.pads_end[i] - window;
      if (span < 0) {
        return Invalid(absl::StrCat("spatial axis ", i, ": the dilated kernel (", window,
                                    ") is larger than the padded input (",
                                    in + g.pads_begin[i] + g.pads_end[i], ") for X ",
                                    ShapeToString(x), " and W ", ShapeToString(w)));
      }
      g.out_spatial[i] = span / s + 1;
    }
  }
  return g;
}

absl::StatusOr<ConvGeometry> ResolveConvTransposeGeometry(const graph::Node& node, const Shape& x,
                                                          const Shape& w) {
  ConvGeometry g;
  RETURN_IF_ERROR(ResolveCommon(node, x, w, /*transpose=*/true, &g));
  const int64_t nsp = g.spatial_rank();
  ASSIGN_OR_RETURN(std::string auto_pad, AutoPad(node));
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, SpatialInts(node, "pads", 2 * nsp, 0, 0));
  ASSIGN_OR_RETURN(g.output_padding, SpatialInts(node, "output_padding", nsp, 0, 0));
  for (int64_t i = 0; i < nsp; ++i) {
    if (g.output_padding[i] >= std::max(g.strides[i], g.dilations[i])) {
      return Invalid(absl::StrCat("output_padding[", i, "] = ", g.output_padding[i],
                                  " must be smaller than the stride (", g.strides[i],
                                  ") or the dilation (", g.dilations[i], ")"));
    }
  }
  // output_shape may list only the spatial dims (the spec) or, in some
  // exporters' models, the full N, C, spatial shape.
  std::vector<int64_t> output_shape = node.GetInts("output_shape");
  if (output_shape.size() == x.size())
    output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  if (!output_shape.empty() && static_cast<int64_t>(output_shape.size()) != nsp) {
    return Invalid(absl::StrCat("attribute 'output_shape' has ", output_shape.size(),
                                " values; expected ", nsp, " (one per spatial axis)"));
  }
  for (int64_t v : output_shape) {
    if (v < 1) {
      return Invalid(absl::StrCat("attribute 'output_shape' values must be >= 1, got [",
                                  absl::StrJoin(output_shape, ","), "]"));
    }
  }
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  g.pads_begin.assign(nsp, 0);
  g.pads_end.assign(nsp, 0);
  g.out_spatial.assign(nsp, 0);
  for (int64_t i = 0; i < nsp; ++i) {
    const int64_t in = g.in_spatial[i], s = g.strides[i];
    const int64_t window = (g.kernel[i] - 1) * g.dilations[i] + 1;
    const int64_t full = s * (in - 1) + g.output_padding[i] + window;
    if (!output_shape.empty() || same) {
      // The spec: pads come from the requested size; SAME_UPPER puts the odd
      // pixel at the end, everything else at the start. Python's floor
      // division keeps a negative total (output larger than `full`) exact.
      g.out_spatial[i] = !output_shape.empty() ? output_shape[i] : in * s;
      const int64_t total = full - g.out_spatial[i];
      if (auto_pad == "SAME_UPPER") {
        g.pads_begin[i] = FloorDiv(total, 2);
        g.pads_end[i] = total - FloorDiv(total, 2);
      } else {
        g.pads_begin[i] = total - FloorDiv(total, 2);
        g.pads_end[i] = FloorDiv(total, 2);
      }
    } else {
      if (auto_pad == "NOTSET") {
        g.pads_begin[i] = pads[i];
        g.pads_end[i] = pads[nsp + i];
      }
      g.out_spatial[i] = full - g.pads_begin[i] - g.pads_end[i];
      if (g.out_spatial[i] < 1) {
        return Invalid(absl::StrCat("spatial axis ", i, ": pads (", g.pads_begin[i], ", ",
                                    g.pads_end[i], ") leave an empty output for X ",
                                    ShapeToString(x), " and W ", ShapeToString(w)));
      }
    }
  }
  return g;
}

absl::StatusOr<ConvEpilogue> ResolveEpilogue(const graph::Node& node, size_t num_inputs) {
  ConvEpilogue e;
  if (node.op_type != "FusedConv") return e;
  e.has_residual = node.HasInput(3) && num_inputs > 3;
  std::string activation = node.GetString("activation", "");
  if (activation == "Relu") {
    e.activation = ConvEpilogue::Activation::kRelu;
  } else if (activation == "Clip") {
    e.activation = ConvEpilogue::Activation::kClip;
    e.clip_min = node.GetFloat("clip_min", -std::numeric_limits<float>::infinity());
    e.clip_max = node.GetFloat("clip_max", std::numeric_limits<float>::infinity());
    if (std::isnan(e.clip_min) || std::isnan(e.clip_max) || e.clip_min > e.clip_max) {
      return Invalid(absl::StrCat("Clip activation needs clip_min <= clip_max, got ", e.clip_min,
                                  " and ", e.clip_max));
    }
  } else if (!activation.empty()) {
    return Invalid(absl::StrCat("attribute 'activation' must be \"\", \"Relu\" or \"Clip\", got \"",
                                activation, "\""));
  }
  return e;
}

}  // namespace conv_internal

namespace {

using conv_internal::ConvGeometry;

absl::Status CheckDtypes(InferenceContext& ctx, size_t num_inputs) {
  DataType dtype = ctx.input_dtype(0);
  if (!IsFloatingPoint(dtype)) {
    return ctx.Error(
        absl::StrCat("input X must be a floating-point tensor, got ", DataTypeName(dtype)));
  }
  static const char* kNames[] = {"X", "W", "B", "Z"};
  for (size_t i = 1; i < num_inputs; ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input_dtype(i) != dtype) {
      return ctx.Error(absl::StrCat("input ", kNames[i], " has dtype ",
                                    DataTypeName(ctx.input_dtype(i)), " but X has ",
                                    DataTypeName(dtype)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBias(InferenceContext& ctx, const ConvGeometry& g) {
  if (!ctx.has_input(2)) return absl::OkStatus();
  const Shape& b = ctx.input_shape(2);
  if (b.size() != 1 || b[0] != g.out_channels) {
    return ctx.Error(absl::StrCat("bias B must have shape [", g.out_channels,
                                  "] (one value per output channel), got ", ShapeToString(b)));
  }
  return absl::OkStatus();
}

absl::Status InferConv(InferenceContext& ctx) {
  const size_t n_in = ctx.num_inputs();
  RETURN_IF_ERROR(CheckDtypes(ctx, std::min<size_t>(n_in, 4)));
  auto g = conv_internal::ResolveConvGeometry(ctx.node(), ctx.input_shape(0), ctx.input_shape(1));
  if (!g.ok()) return ctx.Error(std::string(g.status().message()));
  RETURN_IF_ERROR(CheckBias(ctx, *g));
  Shape out = g->OutputShape();
  if (ctx.node().op_type == "FusedConv") {
    auto epilogue = conv_internal::ResolveEpilogue(ctx.node(), n_in);
    if (!epilogue.ok()) return ctx.Error(std::string(epilogue.status().message()));
    if (epilogue->has_residual && ctx.input_shape(3) != out) {
      return ctx.Error(absl::StrCat("residual input Z must have the output shape ",
                                    ShapeToString(out), ", got ",
                                    ShapeToString(ctx.input_shape(3))));
    }
  }
  ctx.set_output(0, ctx.input_dtype(0), out);
  return absl::OkStatus();
}

absl::Status InferConvTranspose(InferenceContext& ctx) {
  RETURN_IF_ERROR(CheckDtypes(ctx, std::min<size_t>(ctx.num_inputs(), 3)));
  auto g = conv_internal::ResolveConvTransposeGeometry(ctx.node(), ctx.input_shape(0),
                                                       ctx.input_shape(1));
  if (!g.ok()) return ctx.Error(std::string(g.status().message()));
  RETURN_IF_ERROR(CheckBias(ctx, *g));
  ctx.set_output(0, ctx.input_dtype(0), g->OutputShape());
  return absl::OkStatus();
}

int64_t Product(Shape::const_iterator begin, Shape::const_iterator end) {
  int64_t p = 1;
  for (auto it = begin; it != end; ++it) p *= *it;
  return p;
}

double ConvFlops(const graph::Node& node, const std::vector<Shape>& inputs,
                 const std::vector<Shape>& outputs) {
  if (inputs.size() < 2 || outputs.empty() || inputs[0].size() < 3 || outputs[0].size() < 3 ||
      inputs[1].size() != inputs[0].size()) {
    return 0;
  }
  const Shape &x = inputs[0], &w = inputs[1], &y = outputs[0];
  const int64_t group = std::max<int64_t>(1, node.GetInt("group", 1));
  double flops = 2.0 * y[0] * y[1] * Product(y.begin() + 2, y.end()) * (x[1] / group) *
                 Product(w.begin() + 2, w.end());
  // FusedConv's residual add and activation.
  if (node.op_type == "FusedConv") {
    flops += static_cast<double>(NumElements(y)) * (node.HasInput(3) ? 1 : 0);
    flops +=
        static_cast<double>(NumElements(y)) * (node.GetString("activation", "").empty() ? 0 : 1);
  }
  return flops;
}

double ConvTransposeFlops(const graph::Node& node, const std::vector<Shape>& inputs,
                          const std::vector<Shape>& outputs) {
  if (inputs.size() < 2 || outputs.empty() || inputs[0].size() < 3 || outputs[0].size() < 3 ||
      inputs[1].size() != inputs[0].size()) {
    return 0;
  }
  const Shape &x = inputs[0], &w = inputs[1], &y = outputs[0];
  const int64_t group = std::max<int64_t>(1, node.GetInt("group", 1));
  return 2.0 * x[0] * x[1] * Product(x.begin() + 2, x.end()) * (y[1] / group) *
         Product(w.begin() + 2, w.end());
}

}  // namespace

void RegisterConvOps(OpRegistry& registry) {
  // Conv-1 and Conv-11 compute the same thing (11 only reworded the spec), so
  // one schema covers every opset we support.
  {
    OpSchema s;
    s.op_type = "Conv";
    s.min_opset = 7;
    s.max_opset = 21;
    s.min_inputs = 2;
    s.max_inputs = 3;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferConv;
    s.flops = ConvFlops;
    s.kernels = {{"onednn", conv_internal::BuildOnednnConv},
                 {"reference", conv_internal::BuildReferenceConv}};
    registry.Register(std::move(s));
  }
  {
    OpSchema s;
    s.op_type = "ConvTranspose";
    s.min_opset = 7;
    s.max_opset = 21;
    s.min_inputs = 2;
    s.max_inputs = 3;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferConvTranspose;
    s.flops = ConvTransposeFlops;
    s.kernels = {{"onednn", conv_internal::BuildOnednnConvTranspose},
                 {"reference", conv_internal::BuildReferenceConvTranspose}};
    registry.Register(std::move(s));
  }
  {
    // activation(Conv(X, W, B) + Z), produced by the fusion pass
    // (graph/passes/fuse_conv.cc) from Conv [-> Add] [-> Relu | Clip] chains.
    // Attributes: Conv's, plus activation ("", "Relu" or "Clip") and, for
    // Clip, clip_min / clip_max (default -inf / +inf). Z is optional. The
    // opset range is generous because the com.lasgd domain is versioned by us.
    OpSchema s;
    s.domain = "com.lasgd";
    s.op_type = "FusedConv";
    s.min_opset = 1;
    s.max_opset = 21;
    s.min_inputs = 2;
    s.max_inputs = 4;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferConv;
    s.flops = ConvFlops;
    s.kernels = {{"onednn", conv_internal::BuildOnednnConv},
                 {"reference", conv_internal::BuildReferenceConv}};
    registry.Register(std::move(s));
  }
}

}  // namespace lasgd::ops
