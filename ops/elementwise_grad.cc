// Gradient builders of the elementwise op family (see ops/gradient.h).
//
// Broadcasting ops sum their gradient back to each operand's shape with
// ReduceToShape. Emitted ai.onnx ops (Mul, Div, Neg, Equal, Cast, Where, Pow,
// Log, ...) keep one form over every opset a model may use; the rest are
// com.lasgd ops from ops/backward_ops_ew.h.
#include <limits>

#include "ops/grad_util_ew.h"

namespace lasgd::ops {
namespace {

using grad_ew::Attribute;
using grad_ew::CastTo;
using grad_ew::ReduceToInput;

// d(A + B) and d(A - B).
absl::Status AddSubGradient(GradientContext& ctx, bool subtract) {
  for (size_t i = 0; i < 2; ++i) {
    if (!ctx.NeedsGI(i)) continue;
    std::string g = ReduceToInput(ctx, ctx.GO(0), i);
    if (subtract && i == 1) g = ctx.Emit1("Neg", {g});
    ctx.SetGI(i, g);
  }
  return absl::OkStatus();
}

absl::Status MulGradient(GradientContext& ctx) {
  for (size_t i = 0; i < 2; ++i) {
    if (!ctx.NeedsGI(i)) continue;
    ctx.SetGI(i, ReduceToInput(ctx, ctx.Emit1("Mul", {ctx.GO(0), ctx.I(1 - i)}), i));
  }
  return absl::OkStatus();
}

// dA = dY / B; dB = -dY * A / B^2 = -dY * Y / B.
absl::Status DivGradient(GradientContext& ctx) {
  if (ctx.NeedsGI(0)) ctx.SetGI(0, ReduceToInput(ctx, ctx.Emit1("Div", {ctx.GO(0), ctx.I(1)}), 0));
  if (ctx.NeedsGI(1)) {
    std::string g = ctx.Emit1("Div", {ctx.Emit1("Mul", {ctx.GO(0), ctx.O(0)}), ctx.I(1)});
    ctx.SetGI(1, ctx.Emit1("Neg", {ReduceToInput(ctx, g, 1)}));
  }
  return absl::OkStatus();
}

// dA = dY * B * A^(B - 1); dB = dY * Y * log(A). From opset 12 the exponent
// may have another dtype (an integer, or another float type).
absl::Status PowGradient(GradientContext& ctx) {
  const DataType a_type = ctx.dtype(ctx.I(0));
  if (ctx.NeedsGI(0)) {
    std::string b = CastTo(ctx, ctx.I(1), a_type);
    std::string b_minus_1 = ctx.Emit1("Sub", {b, ctx.ScalarConstant(1.0, a_type)});
    std::string power = ctx.Emit1("Pow", {ctx.I(0), b_minus_1});
    std::string g = ctx.Emit1("Mul", {ctx.GO(0), ctx.Emit1("Mul", {b, power})});
    ctx.SetGI(0, ReduceToInput(ctx, g, 0));
  }
  if (ctx.NeedsGI(1)) {
    std::string g =
        ctx.Emit1("Mul", {ctx.Emit1("Mul", {ctx.GO(0), ctx.O(0)}), ctx.Emit1("Log", {ctx.I(0)})});
    ctx.SetGI(1, CastTo(ctx, ReduceToInput(ctx, g, 1), ctx.dtype(ctx.I(1))));
  }
  return absl::OkStatus();
}

// An op whose gradient is one expression of dY and the forward values.
using UnaryFn = std::function<std::string(GradientContext&)>;

GradientFn Unary(UnaryFn fn) {
  return [fn](GradientContext& ctx) -> absl::Status {
    if (ctx.NeedsGI(0)) ctx.SetGI(0, fn(ctx));
    return absl::OkStatus();
  };
}

// A com.lasgd pointwise backward op taking (dY, X).
GradientFn PointwiseOfInput(const std::string& backward_op) {
  return Unary([backward_op](GradientContext& ctx) {
    return ctx.Emit1(backward_op, {ctx.GO(0), ctx.I(0)}, {}, kLasgdDomain);
  });
}

// Max / Min over n broadcast inputs: the gradient goes to the input(s) equal
// to the result; ties share it evenly (as torch.maximum does).
absl::Status MaxMinGradient(GradientContext& ctx) {
  const size_t n = ctx.num_inputs();
  if (n == 1) {
    if (ctx.NeedsGI(0)) ctx.SetGI(0, ctx.GO(0));
    return absl::OkStatus();
  }
  const DataType dtype = ctx.dtype(ctx.O(0));
  std::vector<std::string> masks(n);
  std::string count;
  for (size_t i = 0; i < n; ++i) {
    masks[i] = CastTo(ctx, ctx.Emit1("Equal", {ctx.I(i), ctx.O(0)}), dtype);
    count = count.empty() ? masks[i] : ctx.Emit1("Add", {count, masks[i]});
  }
  std::string share = ctx.Emit1("Div", {ctx.GO(0), count});
  for (size_t i = 0; i < n; ++i) {
    if (!ctx.NeedsGI(i)) continue;
    ctx.SetGI(i, ReduceToInput(ctx, ctx.Emit1("Mul", {share, masks[i]}), i));
  }
  return absl::OkStatus();
}

// Sum and Mean of n broadcast inputs.
GradientFn VariadicSumGradient(bool mean) {
  return [mean](GradientContext& ctx) -> absl::Status {
    std::string g = ctx.GO(0);
    if (mean) {
      g = ctx.Emit1("Mul", {g, ctx.ScalarConstant(1.0 / static_cast<double>(ctx.num_inputs()),
                                                  ctx.dtype(g))});
    }
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (ctx.NeedsGI(i)) ctx.SetGI(i, ReduceToInput(ctx, g, i));
    }
    return absl::OkStatus();
  };
}

// Only X gets a gradient: dY where min < Y < max, read from the output Y as
// PyTorch does for in-place ReLU6/Hardtanh (ClipGrad saved_output = 1; it
// differs from min <= X <= max only at X exactly on a bound). Saving Y rather
// than X keeps one activation fewer per BN -> Clip -> Conv layer alive for
// backward, since the convolution's weight gradient needs Y anyway. The
// bounds are attributes before opset 11 and optional inputs from then on.
absl::Status ClipGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  const DataType dtype = ctx.dtype(ctx.I(0));
  std::vector<std::string> inputs = {ctx.GO(0), ctx.O(0)};
  if (ctx.opset() < 11) {
    ASSIGN_OR_RETURN(float lo,
                     grad_ew::FloatAttribute(ctx, "min", std::numeric_limits<float>::lowest()));
    ASSIGN_OR_RETURN(float hi,
                     grad_ew::FloatAttribute(ctx, "max", std::numeric_limits<float>::max()));
    inputs.push_back(ctx.ScalarConstant(lo, dtype));
    inputs.push_back(ctx.ScalarConstant(hi, dtype));
  } else {
    inputs.push_back(ctx.num_inputs() > 1 ? ctx.I(1) : std::string());
    inputs.push_back(ctx.num_inputs() > 2 ? ctx.I(2) : std::string());
  }
  ctx.SetGI(0, ctx.Emit1("ClipGrad", inputs, {{"saved_output", Attribute::Int(1)}}, kLasgdDomain));
  return absl::OkStatus();
}

// A float -> float cast passes the gradient through, cast back.
absl::Status CastGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  if (!IsFloatingPoint(ctx.dtype(ctx.O(0)))) return absl::OkStatus();
  ctx.SetGI(0, CastTo(ctx, ctx.GO(0), ctx.dtype(ctx.I(0))));
  return absl::OkStatus();
}

// Where(C, X, Y): dX = dOut where C, dY = dOut elsewhere.
absl::Status WhereGradient(GradientContext& ctx) {
  const std::string zero = ctx.ScalarConstant(0.0, ctx.dtype(ctx.GO(0)));
  if (ctx.NeedsGI(1)) {
    ctx.SetGI(1, ReduceToInput(ctx, ctx.Emit1("Where", {ctx.I(0), ctx.GO(0), zero}), 1));
  }
  if (ctx.NeedsGI(2)) {
    ctx.SetGI(2, ReduceToInput(ctx, ctx.Emit1("Where", {ctx.I(0), zero, ctx.GO(0)}), 2));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterElementwiseGradients(GradientRegistry& registry) {
  registry.Register("", "Add", [](GradientContext& ctx) { return AddSubGradient(ctx, false); });
  registry.Register("", "Sub", [](GradientContext& ctx) { return AddSubGradient(ctx, true); });
  registry.Register("", "Mul", MulGradient);
  registry.Register("", "Div", DivGradient);
  registry.Register("", "Pow", PowGradient);
  registry.Register("", "Neg",
                    Unary([](GradientContext& ctx) { return ctx.Emit1("Neg", {ctx.GO(0)}); }));
  // d sqrt(x) = dY / (2 sqrt(x)) = dY * 0.5 / Y
  registry.Register("", "Sqrt", Unary([](GradientContext& ctx) {
                      std::string half = ctx.ScalarConstant(0.5, ctx.dtype(ctx.GO(0)));
                      return ctx.Emit1("Div", {ctx.Emit1("Mul", {ctx.GO(0), half}), ctx.O(0)});
                    }));
  // d (1/x) = -dY / x^2 = -dY * Y * Y
  registry.Register("", "Reciprocal", Unary([](GradientContext& ctx) {
                      std::string y2 = ctx.Emit1("Mul", {ctx.O(0), ctx.O(0)});
                      return ctx.Emit1("Neg", {ctx.Emit1("Mul", {ctx.GO(0), y2})});
                    }));
  registry.Register("", "Exp", Unary([](GradientContext& ctx) {
                      return ctx.Emit1("Mul", {ctx.GO(0), ctx.O(0)});
                    }));
  registry.Register("", "Log", Unary([](GradientContext& ctx) {
                      return ctx.Emit1("Div", {ctx.GO(0), ctx.I(0)});
                    }));
  registry.Register("", "Abs", PointwiseOfInput("AbsGrad"));
  registry.Register("", "Erf", PointwiseOfInput("ErfGrad"));
  registry.Register("", "Max", MaxMinGradient);
  registry.Register("", "Min", MaxMinGradient);
  registry.Register("", "Sum", VariadicSumGradient(false));
  registry.Register("", "Mean", VariadicSumGradient(true));
  registry.Register("", "Clip", ClipGradient);
  registry.Register("", "Cast", CastGradient);
  registry.Register("", "Where", WhereGradient);
}

}  // namespace lasgd::ops
