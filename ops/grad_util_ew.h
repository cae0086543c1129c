// Small helpers shared by the gradient builders of the elementwise,
// activation, shape, reduce and misc families (ops/*_grad.cc): emitting the
// com.lasgd movement ops of ops/backward_ops_ew.h and reading attributes.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/backward_ops_ew.h"
#include "ops/gradient.h"

namespace lasgd::ops::grad_ew {

using graph::Attribute;

// `value` viewed with `shape` (same element count); no node when it already has it.
inline std::string ReshapeTo(GradientContext& ctx, const std::string& value, const Shape& shape) {
  if (ctx.shape(value) == shape) return value;
  return ctx.Emit1("ReshapeTo", {value}, {{"shape", Attribute::Ints(shape)}}, kLasgdDomain);
}

// `value` broadcast to `shape`; no node when it already has it.
inline std::string ExpandTo(GradientContext& ctx, const std::string& value, const Shape& shape) {
  if (ctx.shape(value) == shape) return value;
  return ctx.Emit1("ExpandTo", {value}, {{"shape", Attribute::Ints(shape)}}, kLasgdDomain);
}

// The gradient of a broadcasting op's input i from `grad`, shaped like the
// op's output 0.
inline std::string ReduceToInput(GradientContext& ctx, const std::string& grad, size_t i) {
  return ctx.ReduceToShape(grad, ctx.shape(grad), ctx.shape(ctx.I(i)));
}

// Cast to `dtype` (the ai.onnx Cast, whose form is the same from opset 6 on);
// no node when `value` already has it.
inline std::string CastTo(GradientContext& ctx, const std::string& value, DataType dtype) {
  if (ctx.dtype(value) == dtype) return value;
  return ctx.Emit1("Cast", {value}, {{"to", Attribute::Int(static_cast<int64_t>(dtype))}});
}

// A float attribute of the forward node (ints accepted, as exporters write
// them), or an error naming the node.
inline absl::StatusOr<float> FloatAttribute(const GradientContext& ctx, const std::string& name,
                                            float default_value) {
  const Attribute* a = ctx.node().FindAttribute(name);
  if (a == nullptr) return default_value;
  if (a->kind == Attribute::Kind::kFloat) return a->f;
  if (a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  return ctx.Error(absl::StrCat("attribute '", name, "' must be a float, got ", a->ToString()));
}

// The integer values of input i, which must be a compile-time constant
// (shape inference already required that for ops whose shapes depend on it).
inline absl::StatusOr<std::vector<int64_t>> ConstantInputInts(const GradientContext& ctx, size_t i,
                                                              const std::string& what) {
  const Tensor* t = ctx.constant_value(ctx.I(i));
  if (t == nullptr) {
    return ctx.Error(absl::StrCat("input ", i, " ('", what, "') must be a compile-time constant"));
  }
  auto v = t->ToInt64Vector();
  if (!v.ok()) return ctx.Error(absl::StrCat("input ", i, " ('", what, "') must be integer"));
  return v;
}

// A non-negative axis, or an error.
inline absl::StatusOr<int64_t> NormalizedAxis(const GradientContext& ctx, int64_t axis,
                                              int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return ctx.Error(absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace lasgd::ops::grad_ew
