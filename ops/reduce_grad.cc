// Gradient builders of the reduce op family (see ops/gradient.h).
//
// Every builder first views dY (and Y where needed) with the keepdims shape
// (reduced dims as 1) through ReshapeTo, then broadcasts against X with an
// ordinary broadcasting Mul/Div or with ExpandTo. Axes come from the
// attribute before opset 13 (ReduceSum) / 18 (the others) and from the
// constant input 1 afterwards, where noop_with_empty_axes may make the op an
// identity.
#include "ops/grad_util_ew.h"

namespace lasgd::ops {
namespace {

using grad_ew::CastTo;
using grad_ew::ExpandTo;
using grad_ew::ReshapeTo;

enum class Kind { kSum, kMean, kMax, kMin, kSumSquare, kL1, kL2, kLogSum, kLogSumExp };

// X's shape with the reduced dims set to 1; `reduced_count` is how many
// elements each output element summarises.
absl::StatusOr<Shape> KeepDimsShape(GradientContext& ctx, int64_t axes_input_from,
                                    int64_t* reduced_count) {
  const Shape& in = ctx.shape(ctx.I(0));
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<int64_t> axes;
  bool noop = false;
  if (ctx.opset() < axes_input_from) {
    axes = ctx.node().GetInts("axes");
  } else {
    noop = ctx.node().GetInt("noop_with_empty_axes", 0) != 0;
    if (ctx.num_inputs() > 1 && !ctx.I(1).empty()) {
      ASSIGN_OR_RETURN(axes, grad_ew::ConstantInputInts(ctx, 1, "axes"));
    }
  }
  std::vector<bool> reduced(rank, axes.empty() && !noop);
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t axis, grad_ew::NormalizedAxis(ctx, a, rank));
    reduced[axis] = true;
  }
  Shape keep = in;
  *reduced_count = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      *reduced_count *= in[d];
      keep[d] = 1;
    }
  }
  return keep;
}

GradientFn ReduceGradient(Kind kind, int64_t axes_input_from) {
  return [kind, axes_input_from](GradientContext& ctx) -> absl::Status {
    if (!ctx.NeedsGI(0)) return absl::OkStatus();
    const std::string& x = ctx.I(0);
    const Shape& x_shape = ctx.shape(x);
    const DataType dtype = ctx.dtype(x);
    int64_t count = 1;
    ASSIGN_OR_RETURN(Shape keep, KeepDimsShape(ctx, axes_input_from, &count));
    const std::string g = ReshapeTo(ctx, ctx.GO(0), keep);
    auto y_keep = [&] { return ReshapeTo(ctx, ctx.O(0), keep); };
    std::string dx;
    switch (kind) {
      case Kind::kSum:
        dx = ExpandTo(ctx, g, x_shape);
        break;
      case Kind::kMean: {
        const double scale = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
        dx = ExpandTo(ctx, ctx.Emit1("Mul", {g, ctx.ScalarConstant(scale, dtype)}), x_shape);
        break;
      }
      case Kind::kMax:
      case Kind::kMin: {
        // The winners share the gradient evenly when several tie.
        std::string mask = CastTo(ctx, ctx.Emit1("Equal", {x, y_keep()}), dtype);
        std::string ties = ctx.ReduceToShape(mask, x_shape, keep);
        dx = ctx.Emit1("Mul", {mask, ctx.Emit1("Div", {g, ties})});
        break;
      }
      case Kind::kSumSquare:  // 2 x dY
        dx = ctx.Emit1("Mul", {x, ctx.Emit1("Mul", {g, ctx.ScalarConstant(2.0, dtype)})});
        break;
      case Kind::kL1:  // sign(x) dY
        dx = ctx.Emit1("AbsGrad", {ExpandTo(ctx, g, x_shape), x}, {}, kLasgdDomain);
        break;
      case Kind::kL2: {
        // x / ||x|| dY; a zero norm (all x zero) gives a zero gradient, not 0/0.
        std::string y = y_keep();
        std::string is_zero =
            CastTo(ctx, ctx.Emit1("Equal", {y, ctx.ScalarConstant(0.0, dtype)}), dtype);
        std::string safe = ctx.Emit1("Add", {y, is_zero});
        dx = ctx.Emit1("Mul", {x, ctx.Emit1("Div", {g, safe})});
        break;
      }
      case Kind::kLogSum:  // dY / sum(x) = dY / exp(Y)
        dx = ExpandTo(ctx, ctx.Emit1("Div", {g, ctx.Emit1("Exp", {y_keep()})}), x_shape);
        break;
      case Kind::kLogSumExp:  // dY exp(x - Y)
        dx = ctx.Emit1("Mul", {g, ctx.Emit1("Exp", {ctx.Emit1("Sub", {x, y_keep()})})});
        break;
    }
    ctx.SetGI(0, dx);
    return absl::OkStatus();
  };
}

}  // namespace

void RegisterReduceGradients(GradientRegistry& registry) {
  registry.Register("", "ReduceSum", ReduceGradient(Kind::kSum, 13));
  registry.Register("", "ReduceMean", ReduceGradient(Kind::kMean, 18));
  registry.Register("", "ReduceMax", ReduceGradient(Kind::kMax, 18));
  registry.Register("", "ReduceMin", ReduceGradient(Kind::kMin, 18));
  registry.Register("", "ReduceSumSquare", ReduceGradient(Kind::kSumSquare, 18));
  registry.Register("", "ReduceL1", ReduceGradient(Kind::kL1, 18));
  registry.Register("", "ReduceL2", ReduceGradient(Kind::kL2, 18));
  registry.Register("", "ReduceLogSum", ReduceGradient(Kind::kLogSum, 18));
  registry.Register("", "ReduceLogSumExp", ReduceGradient(Kind::kLogSumExp, 18));
}

}  // namespace lasgd::ops
