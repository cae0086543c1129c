// Gradient builders of the matmul op family (see ops/gradient.h).
//
// Y = A·B gives dA = dY·Bᵀ and dB = Aᵀ·dY, summed over broadcast batch
// dimensions (ReduceToShape). The common layer shapes (B a 2-D weight) are
// flattened into single Gemm calls, whose transA / transB attributes save
// the transposes; everything else goes through batched MatMul + Transpose.
// 1-D operands are promoted to matrices (and dY reshaped to match) exactly as
// MatMul promotes them. Reshape always gets a constant shape, which means the
// same at every opset.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/gradient.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

using graph::Attribute;

std::string Reshape(GradientContext& ctx, const std::string& value, const Shape& from,
                    const Shape& to) {
  if (from == to) return value;
  return ctx.Emit1(
      "Reshape", {value, ctx.Constant(Tensor::FromInt64s(to, {static_cast<int64_t>(to.size())}))});
}

// alpha · op(a) · op(b) with Gemm; C (required before opset 11) is a zero
// scalar that beta = 0 switches off.
std::string Gemm(GradientContext& ctx, const std::string& a, const std::string& b, bool trans_a,
                 bool trans_b, double alpha) {
  std::map<std::string, Attribute> attrs = {{"transA", Attribute::Int(trans_a ? 1 : 0)},
                                            {"transB", Attribute::Int(trans_b ? 1 : 0)}};
  if (alpha != 1) attrs["alpha"] = Attribute::Float(static_cast<float>(alpha));
  std::vector<std::string> inputs = {a, b};
  if (ctx.opset() < 11) {
    inputs.push_back(ctx.ScalarConstant(0, ctx.dtype(a)));
    attrs["beta"] = Attribute::Float(0.f);
  }
  return ctx.Emit1("Gemm", inputs, attrs);
}

// Swaps the last two axes.
std::string TransposeLast2(GradientContext& ctx, const std::string& value, size_t rank) {
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(i);
  std::swap(perm[rank - 1], perm[rank - 2]);
  return ctx.Emit1("Transpose", {value}, {{"perm", Attribute::Ints(perm)}});
}

absl::Status MatMulGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0)) return absl::OkStatus();
  const bool need_a = ctx.NeedsGI(0), need_b = ctx.NeedsGI(1);
  if (!need_a && !need_b) return absl::OkStatus();
  const std::string &a = ctx.I(0), &b = ctx.I(1), &dy = ctx.GO(0);
  const Shape &a_shape = ctx.shape(a), &b_shape = ctx.shape(b), &y_shape = ctx.shape(ctx.O(0));
  if (a_shape.empty() || b_shape.empty()) return ctx.Error("MatMul inputs must have rank >= 1");

  if (b_shape.size() == 2 && a_shape.size() >= 2) {
    // [..., M, K] · [K, N]: one [P, K] · [K, N] product with P = ... · M.
    const int64_t k = b_shape[0], n = b_shape[1];
    const int64_t p = NumElements(a_shape) / (k == 0 ? 1 : k);
    const std::string dy_flat = Reshape(ctx, dy, y_shape, {p, n});
    if (need_a) {
      std::string da = Gemm(ctx, dy_flat, b, false, true, 1.0);
      ctx.SetGI(0, Reshape(ctx, da, {p, k}, a_shape));
    }
    if (need_b) {
      const std::string a_flat = Reshape(ctx, a, a_shape, {p, k});
      ctx.SetGI(1, Gemm(ctx, a_flat, dy_flat, true, false, 1.0));
    }
    return absl::OkStatus();
  }

  // General case: promote 1-D operands, broadcast batch dims.
  const Shape a2_shape = a_shape.size() == 1 ? Shape{1, a_shape[0]} : a_shape;
  const Shape b2_shape = b_shape.size() == 1 ? Shape{b_shape[0], 1} : b_shape;
  Shape a_batch(a2_shape.begin(), a2_shape.end() - 2),
      b_batch(b2_shape.begin(), b2_shape.end() - 2);
  auto batch = BroadcastShapes(a_batch, b_batch);
  if (!batch.ok()) return ctx.Error(std::string(batch.status().message()));
  const int64_t m = a2_shape[a2_shape.size() - 2], k = a2_shape.back(), n = b2_shape.back();
  Shape y2_shape = *batch;
  y2_shape.push_back(m);
  y2_shape.push_back(n);
  const std::string dy2 = Reshape(ctx, dy, y_shape, y2_shape);
  const std::string a2 = Reshape(ctx, a, a_shape, a2_shape);
  const std::string b2 = Reshape(ctx, b, b_shape, b2_shape);
  if (need_a) {
    std::string da = ctx.Emit1("MatMul", {dy2, TransposeLast2(ctx, b2, b2_shape.size())});
    Shape da_shape = *batch;
    da_shape.push_back(m);
    da_shape.push_back(k);
    da = ctx.ReduceToShape(da, da_shape, a2_shape);
    ctx.SetGI(0, Reshape(ctx, da, a2_shape, a_shape));
  }
  if (need_b) {
    std::string db = ctx.Emit1("MatMul", {TransposeLast2(ctx, a2, a2_shape.size()), dy2});
    Shape db_shape = *batch;
    db_shape.push_back(k);
    db_shape.push_back(n);
    db = ctx.ReduceToShape(db, db_shape, b2_shape);
    ctx.SetGI(1, Reshape(ctx, db, b2_shape, b_shape));
  }
  return absl::OkStatus();
}

// Y = alpha · op(A) · op(B) + beta · C.
absl::Status GemmGradient(GradientContext& ctx) {
  if (!ctx.HasGO(0)) return absl::OkStatus();
  const graph::Node& node = ctx.node();
  const bool ta = node.GetInt("transA", 0) != 0, tb = node.GetInt("transB", 0) != 0;
  const double alpha = node.GetFloat("alpha", 1.f), beta = node.GetFloat("beta", 1.f);
  const std::string &a = ctx.I(0), &b = ctx.I(1), &dy = ctx.GO(0);
  if (ctx.NeedsGI(0)) {
    // d op(A) = alpha · dY · op(B)ᵀ; dA is that or its transpose.
    ctx.SetGI(0, ta ? Gemm(ctx, b, dy, tb, true, alpha) : Gemm(ctx, dy, b, false, !tb, alpha));
  }
  if (ctx.NeedsGI(1)) {
    // d op(B) = alpha · op(A)ᵀ · dY.
    ctx.SetGI(1, tb ? Gemm(ctx, dy, a, true, ta, alpha) : Gemm(ctx, a, dy, !ta, false, alpha));
  }
  if (ctx.num_inputs() > 2 && !ctx.I(2).empty() && ctx.NeedsGI(2)) {
    std::string dc = dy;
    if (beta != 1) dc = ctx.Emit1("Mul", {dy, ctx.ScalarConstant(beta, ctx.dtype(dy))});
    ctx.SetGI(2, ctx.ReduceToShape(dc, ctx.shape(ctx.O(0)), ctx.shape(ctx.I(2))));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterMatMulGradients(GradientRegistry& registry) {
  registry.Register("", "MatMul", MatMulGradient);
  registry.Register("", "Gemm", GemmGradient);
}

}  // namespace lasgd::ops
