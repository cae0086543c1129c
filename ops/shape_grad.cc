// Gradient builders of the shape op family (see ops/gradient.h).
//
// Most of these ops changed form between opsets (attributes that became
// inputs), so the gradients go through com.lasgd ops whose shapes are
// attributes (ReshapeTo, SliceGrad, PadGrad, GatherGrad, ConcatGrad of
// ops/backward_ops_ew.h) or through ops whose form is stable (Transpose,
// Concat with a non-negative axis).
#include <algorithm>

#include "ops/grad_util_ew.h"

namespace lasgd::ops {
namespace {

using grad_ew::Attribute;
using grad_ew::ConstantInputInts;
using grad_ew::NormalizedAxis;
using grad_ew::ReshapeTo;

// Reshape, Flatten, Squeeze, Unsqueeze: the gradient is dY viewed with the
// input's shape.
absl::Status ReshapeGradient(GradientContext& ctx) {
  if (ctx.NeedsGI(0)) ctx.SetGI(0, ReshapeTo(ctx, ctx.GO(0), ctx.shape(ctx.I(0))));
  return absl::OkStatus();
}

absl::Status TransposeGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const int64_t rank = static_cast<int64_t>(ctx.shape(ctx.I(0)).size());
  std::vector<int64_t> perm = ctx.node().GetInts("perm");
  if (perm.empty()) {
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int64_t>(perm.size()) != rank) return ctx.Error("perm does not match the rank");
  std::vector<int64_t> inverse(rank);
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t p = perm[i] < 0 ? perm[i] + rank : perm[i];
    if (p < 0 || p >= rank) return ctx.Error("perm is not a permutation");
    inverse[p] = i;
  }
  ctx.SetGI(0, ctx.Emit1("Transpose", {ctx.GO(0)}, {{"perm", Attribute::Ints(inverse)}}));
  return absl::OkStatus();
}

absl::Status ConcatGradient(GradientContext& ctx) {
  const Shape& out = ctx.shape(ctx.O(0));
  ASSIGN_OR_RETURN(int64_t axis, NormalizedAxis(ctx, ctx.node().GetInt("axis", 0),
                                                static_cast<int64_t>(out.size())));
  std::vector<int64_t> sizes;
  bool any = false;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    sizes.push_back(ctx.shape(ctx.I(i))[axis]);
    any = any || ctx.NeedsGI(i);
  }
  if (!any) return absl::OkStatus();
  std::vector<std::string> pieces =
      ctx.Emit("ConcatGrad", {ctx.GO(0)}, sizes.size(),
               {{"axis", Attribute::Int(axis)}, {"sizes", Attribute::Ints(sizes)}}, kLasgdDomain);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.NeedsGI(i)) ctx.SetGI(i, pieces[i]);
  }
  return absl::OkStatus();
}

// The output gradients concatenated back; outputs no gradient reached
// contribute zeros.
absl::Status SplitGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const Shape& in = ctx.shape(ctx.I(0));
  ASSIGN_OR_RETURN(int64_t axis, NormalizedAxis(ctx, ctx.node().GetInt("axis", 0),
                                                static_cast<int64_t>(in.size())));
  std::vector<std::string> parts;
  for (size_t o = 0; o < ctx.num_outputs(); ++o) {
    if (ctx.HasGO(o)) {
      parts.push_back(ctx.GO(o));
    } else {
      parts.push_back(ctx.Constant(Tensor::Allocate(ctx.dtype(ctx.I(0)), ctx.shape(ctx.O(o)))));
    }
  }
  ctx.SetGI(0, parts.size() == 1 ? parts[0]
                                 : ctx.Emit1("Concat", parts, {{"axis", Attribute::Int(axis)}}));
  return absl::OkStatus();
}

// The effective start and step per dim of a Slice (the spec's clamping rules,
// as in ops/shape_movement.cc).
absl::Status SliceGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const Shape& shape = ctx.shape(ctx.I(0));
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.node().GetInts("starts");
    ends = ctx.node().GetInts("ends");
    axes = ctx.node().GetInts("axes");
  } else {
    ASSIGN_OR_RETURN(starts, ConstantInputInts(ctx, 1, "starts"));
    ASSIGN_OR_RETURN(ends, ConstantInputInts(ctx, 2, "ends"));
    if (ctx.num_inputs() > 3 && !ctx.I(3).empty()) {
      ASSIGN_OR_RETURN(axes, ConstantInputInts(ctx, 3, "axes"));
    }
    if (ctx.num_inputs() > 4 && !ctx.I(4).empty()) {
      ASSIGN_OR_RETURN(steps, ConstantInputInts(ctx, 4, "steps"));
    }
  }
  if (axes.empty()) {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size()) {
    return ctx.Error("starts, ends, axes and steps differ in length");
  }
  std::vector<int64_t> start_of(rank, 0), step_of(rank, 1);
  for (size_t i = 0; i < starts.size(); ++i) {
    ASSIGN_OR_RETURN(int64_t axis, NormalizedAxis(ctx, axes[i], rank));
    const int64_t dim = shape[axis], step = steps[i];
    if (step == 0) return ctx.Error("a step is 0");
    int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
    if (dim == 0) {
      start = 0;
    } else {
      start =
          step > 0 ? std::clamp<int64_t>(start, 0, dim) : std::clamp<int64_t>(start, 0, dim - 1);
    }
    start_of[axis] = start;
    step_of[axis] = step;
  }
  ctx.SetGI(0, ctx.Emit1("SliceGrad", {ctx.GO(0)},
                         {{"shape", Attribute::Ints(shape)},
                          {"starts", Attribute::Ints(start_of)},
                          {"steps", Attribute::Ints(step_of)}},
                         kLasgdDomain));
  return absl::OkStatus();
}

absl::Status GatherGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const Shape& shape = ctx.shape(ctx.I(0));
  ASSIGN_OR_RETURN(int64_t axis, NormalizedAxis(ctx, ctx.node().GetInt("axis", 0),
                                                static_cast<int64_t>(shape.size())));
  ctx.SetGI(0, ctx.Emit1("GatherGrad", {ctx.GO(0), ctx.I(1)},
                         {{"shape", Attribute::Ints(shape)}, {"axis", Attribute::Int(axis)}},
                         kLasgdDomain));
  return absl::OkStatus();
}

absl::Status ExpandGradient(GradientContext& ctx) {
  if (ctx.NeedsGI(0)) {
    ctx.SetGI(0, ctx.ReduceToShape(ctx.GO(0), ctx.shape(ctx.O(0)), ctx.shape(ctx.I(0))));
  }
  return absl::OkStatus();
}

// Output dim d holds repeats[d] copies of input dim d: view dY as
// [r0, d0, r1, d1, ...] and sum the r axes away.
absl::Status TileGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const Shape& in = ctx.shape(ctx.I(0));
  const Shape& out = ctx.shape(ctx.O(0));
  if (in == out) {
    ctx.SetGI(0, ctx.GO(0));
    return absl::OkStatus();
  }
  Shape interleaved, kept;
  for (size_t d = 0; d < in.size(); ++d) {
    if (in[d] == 0 || out[d] % in[d] != 0) {
      // Nothing to sum over an empty dim; the gradient is empty too.
      ctx.SetGI(0, ctx.Constant(Tensor::Allocate(ctx.dtype(ctx.I(0)), in)));
      return absl::OkStatus();
    }
    interleaved.push_back(out[d] / in[d]);
    interleaved.push_back(in[d]);
    kept.push_back(1);
    kept.push_back(in[d]);
  }
  std::string g = ReshapeTo(ctx, ctx.GO(0), interleaved);
  g = ctx.ReduceToShape(g, interleaved, kept);
  ctx.SetGI(0, ReshapeTo(ctx, g, in));
  return absl::OkStatus();
}

// Per-dim pads (begin..., end...) from the attribute (< 11) or the inputs
// (pads from 11, axes from 18).
absl::StatusOr<std::vector<int64_t>> FullPads(GradientContext& ctx, int64_t rank) {
  std::vector<int64_t> pads, axes;
  if (ctx.opset() < 11) {
    pads = ctx.node().GetInts("pads");
  } else {
    ASSIGN_OR_RETURN(pads, ConstantInputInts(ctx, 1, "pads"));
    if (ctx.opset() >= 18 && ctx.num_inputs() > 3 && !ctx.I(3).empty()) {
      ASSIGN_OR_RETURN(axes, ConstantInputInts(ctx, 3, "axes"));
    }
  }
  if (axes.empty()) {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  const size_t n = axes.size();
  if (pads.size() != 2 * n) return ctx.Error("pads does not have 2 entries per axis");
  std::vector<int64_t> full(2 * rank, 0);
  for (size_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(int64_t axis, NormalizedAxis(ctx, axes[i], rank));
    full[axis] = pads[i];
    full[rank + axis] = pads[n + i];
  }
  return full;
}

// Constant mode: input element i sits at padded position i + begin, so the
// gradient is the window of dY starting at begin (positions a negative pad
// cropped get zeros). Other modes sum every copy back with PadGrad.
absl::Status PadGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const Shape& in = ctx.shape(ctx.I(0));
  const int64_t rank = static_cast<int64_t>(in.size());
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, FullPads(ctx, rank));
  const std::string mode = ctx.node().GetString("mode", "constant");
  if (mode == "constant") {
    std::vector<int64_t> starts(rank), steps(rank, 1);
    for (int64_t d = 0; d < rank; ++d) starts[d] = -pads[d];
    ctx.SetGI(0, ctx.Emit1("SliceGrad", {ctx.GO(0)},
                           {{"shape", Attribute::Ints(in)},
                            {"starts", Attribute::Ints(starts)},
                            {"steps", Attribute::Ints(steps)}},
                           kLasgdDomain));
  } else {
    ctx.SetGI(0, ctx.Emit1("PadGrad", {ctx.GO(0)},
                           {{"shape", Attribute::Ints(in)},
                            {"pads", Attribute::Ints(pads)},
                            {"mode", Attribute::String(mode)}},
                           kLasgdDomain));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterShapeGradients(GradientRegistry& registry) {
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}) {
    registry.Register("", op, ReshapeGradient);
  }
  registry.Register("", "Transpose", TransposeGradient);
  registry.Register("", "Concat", ConcatGradient);
  registry.Register("", "Split", SplitGradient);
  registry.Register("", "Slice", SliceGradient);
  registry.Register("", "Gather", GatherGradient);
  registry.Register("", "Expand", ExpandGradient);
  registry.Register("", "Tile", TileGradient);
  registry.Register("", "Pad", PadGradient);
}

}  // namespace lasgd::ops
