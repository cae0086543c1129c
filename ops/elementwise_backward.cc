// Pointwise and softmax backward ops of domain com.lasgd (listed in
// ops/backward_ops_ew.h). Each has a float32 OpenMP "fast" kernel and a
// "reference" kernel for every float dtype; a fused kernel reads dY and one
// saved tensor once instead of the 2-4 passes the ai.onnx form would take.
#include <cmath>
#include <limits>

#include "ops/backward_ops_ew.h"
#include "ops/elementwise_util.h"

namespace lasgd::ops {
namespace {

using namespace ew;  // NOLINT: the helpers of the elementwise family

// ---- pointwise gradient functors: dX = op(dY, V) ----

struct ReluGradOp {  // V = Y
  template <typename C>
  C operator()(C dy, C y) const {
    return y > C(0) ? dy : C(0);
  }
};
struct LeakyReluGradOp {  // V = X
  float alpha;
  template <typename C>
  C operator()(C dy, C x) const {
    return x > C(0) ? dy : static_cast<C>(alpha) * dy;
  }
};
struct SigmoidGradOp {  // V = Y
  template <typename C>
  C operator()(C dy, C y) const {
    return dy * y * (C(1) - y);
  }
};
struct TanhGradOp {  // V = Y
  template <typename C>
  C operator()(C dy, C y) const {
    return dy * (C(1) - y * y);
  }
};
struct HardSigmoidGradOp {  // V = X
  float alpha, beta;
  template <typename C>
  C operator()(C dy, C x) const {
    C v = static_cast<C>(alpha) * x + static_cast<C>(beta);
    return v > C(0) && v < C(1) ? static_cast<C>(alpha) * dy : C(0);
  }
};
struct HardSwishGradOp {  // V = X; y = x * clamp(x / 6 + 1/2, 0, 1)
  template <typename C>
  C operator()(C dy, C x) const {
    if (x < C(-3)) return C(0);
    if (x > C(3)) return dy;
    return dy * (x / C(3) + C(0.5));
  }
};
struct GeluGradOp {  // V = X
  bool tanh_approximation = false;
  template <typename C>
  C operator()(C dy, C x) const {
    if (tanh_approximation) {
      const C k = static_cast<C>(0.7978845608028654);  // sqrt(2 / pi)
      const C c = static_cast<C>(0.044715);
      C t = std::tanh(k * (x + c * x * x * x));
      return dy *
             (C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * k * (C(1) + C(3) * c * x * x));
    }
    const C inv_sqrt2 = static_cast<C>(0.7071067811865476);
    const C inv_sqrt2pi = static_cast<C>(0.3989422804014327);
    C cdf = C(0.5) * (C(1) + std::erf(x * inv_sqrt2));
    return dy * (cdf + x * inv_sqrt2pi * std::exp(C(-0.5) * x * x));
  }
};
struct SoftplusGradOp {  // V = X; d/dx log(1 + e^x) = sigmoid(x)
  template <typename C>
  C operator()(C dy, C x) const {
    if (x >= C(0)) return dy / (C(1) + std::exp(-x));
    C e = std::exp(x);
    return dy * e / (C(1) + e);
  }
};
struct EluGradOp {  // V = X
  float alpha;
  template <typename C>
  C operator()(C dy, C x) const {
    return x < C(0) ? dy * static_cast<C>(alpha) * std::exp(x) : dy;
  }
};
struct SeluGradOp {  // V = X
  float alpha, gamma;
  template <typename C>
  C operator()(C dy, C x) const {
    C g = static_cast<C>(gamma);
    return x > C(0) ? g * dy : g * static_cast<C>(alpha) * std::exp(x) * dy;
  }
};
struct AbsGradOp {  // V = X
  template <typename C>
  C operator()(C dy, C x) const {
    return x > C(0) ? dy : (x < C(0) ? -dy : C(0));
  }
};
struct ErfGradOp {  // V = X
  template <typename C>
  C operator()(C dy, C x) const {
    return dy * static_cast<C>(1.1283791670955126) * std::exp(-x * x);  // 2 / sqrt(pi)
  }
};

absl::Status CheckSameShape(const InferenceContext& ctx, size_t i, size_t j) {
  if (ctx.input_shape(i) == ctx.input_shape(j)) return absl::OkStatus();
  return ctx.Error(absl::StrCat("inputs ", i, " and ", j, " must have the same shape; got ",
                                ShapeToString(ctx.input_shape(i)), " and ",
                                ShapeToString(ctx.input_shape(j))));
}

template <typename Op>
void RegisterPointwiseGrad(OpRegistry& registry, const std::string& op_type, double flops,
                           std::function<absl::StatusOr<Op>(const graph::Node&)> make) {
  OpSchema s;
  s.domain = kLasgdDomain;
  s.op_type = op_type;
  s.min_opset = s.max_opset = 1;
  s.min_inputs = s.max_inputs = 2;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [make](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kFloatTypes));
    RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
    RETURN_IF_ERROR(CheckSameShape(ctx, 0, 1));
    RETURN_IF_ERROR(make(ctx.node()).status());
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [make](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         ASSIGN_OR_RETURN(Op op, make(b.node));
         return MakeKernel([op](KernelContext& ctx) {
           const float* dy = ctx.input(0)->data<float>();
           const float* v = ctx.input(1)->data<float>();
           float* dx = ctx.output(0)->data<float>();
           const int64_t n = ctx.input(0)->num_elements();
#pragma omp parallel for schedule(static) if (n > 32768)
           for (int64_t i = 0; i < n; ++i) dx[i] = op(dy[i], v[i]);
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [make](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(Op op, make(b.node));
         return MakeKernel([op](KernelContext& ctx) {
           return DispatchType<kFloatTypes>(ctx.input(0)->dtype(), [&](auto tag) -> absl::Status {
             using T = typename decltype(tag)::type;
             using C = typename Compute<T>::type;
             const T* dy = ctx.input(0)->data<T>();
             const T* v = ctx.input(1)->data<T>();
             T* dx = ctx.output(0)->data<T>();
             for (int64_t i = 0; i < ctx.input(0)->num_elements(); ++i) {
               dx[i] = Compute<T>::Store(op(C(Compute<T>::Load(dy[i])), C(Compute<T>::Load(v[i]))));
             }
             return absl::OkStatus();
           });
         });
       }});
  s.flops = [flops](const graph::Node&, const std::vector<Shape>&, const std::vector<Shape>& out) {
    return ElementsFlops(out, flops);
  };
  registry.Register(std::move(s));
}

absl::StatusOr<GeluGradOp> MakeGeluGrad(const graph::Node& node) {
  GeluGradOp op;
  const std::string approximate = node.GetString("approximate", "none");
  if (approximate != "none" && approximate != "tanh") {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": attribute 'approximate' must be 'none' or 'tanh'; got '",
                     approximate, "'"));
  }
  op.tanh_approximation = approximate == "tanh";
  return op;
}

// ---- ClipGrad(dY, X or Y, [min], [max]) ----
//
// saved_output = 0 (default): input 1 is Clip's input X, and dY passes where
// min <= X <= max (torch.clamp's rule). saved_output = 1: input 1 is Clip's
// output Y, and dY passes where min < Y < max, which is the same except at X
// exactly on a bound (PyTorch's rule for in-place ReLU6/Hardtanh, which also
// differentiates through its result). Keeping Y rather than X for backward
// lets the training plan drop X after the forward pass: for BN -> Clip ->
// Conv chains (MobileNet) Y is kept anyway for the convolution's weight
// gradient, so X (the BN output) was one extra activation per layer.

template <typename T>
void ClipBoundsOf(const KernelContext& ctx, typename Compute<T>::type* lo,
                  typename Compute<T>::type* hi) {
  using C = typename Compute<T>::type;
  *lo = -std::numeric_limits<C>::infinity();
  *hi = std::numeric_limits<C>::infinity();
  if (const Tensor* m = ctx.input(2)) *lo = Compute<T>::Load(m->data<T>()[0]);
  if (const Tensor* m = ctx.input(3)) *hi = Compute<T>::Load(m->data<T>()[0]);
}

// Whether dY passes at saved value v (see above). An absent bound never blocks.
template <typename C>
inline bool ClipPasses(C v, C lo, C hi, bool saved_output, bool has_lo, bool has_hi) {
  if (!saved_output) return v >= lo && v <= hi;
  return (has_lo ? v > lo : !(v != v)) && (!has_hi || v < hi);
}

absl::StatusOr<bool> SavedOutputAttribute(const graph::Node& node) {
  const int64_t saved_output = node.GetInt("saved_output", 0);
  if (saved_output != 0 && saved_output != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        node.Describe(), ": attribute 'saved_output' must be 0 or 1; got ", saved_output));
  }
  return saved_output == 1;
}

void RegisterClipGrad(OpRegistry& registry) {
  OpSchema s;
  s.domain = kLasgdDomain;
  s.op_type = "ClipGrad";
  s.min_opset = s.max_opset = 1;
  s.min_inputs = 2;
  s.max_inputs = 4;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(SavedOutputAttribute(ctx.node()).status());
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kFloatTypes));
    RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
    RETURN_IF_ERROR(CheckSameShape(ctx, 0, 1));
    for (size_t i = 2; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) continue;
      RETURN_IF_ERROR(CheckSameType(ctx, 0, i));
      if (NumElements(ctx.input_shape(i)) != 1) {
        return ctx.Error(absl::StrCat("input ", i, " (", i == 2 ? "min" : "max",
                                      ") must have one element; got shape ",
                                      ShapeToString(ctx.input_shape(i))));
      }
    }
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         ASSIGN_OR_RETURN(const bool saved_output, SavedOutputAttribute(b.node));
         return MakeKernel([saved_output](KernelContext& ctx) {
           float lo, hi;
           ClipBoundsOf<float>(ctx, &lo, &hi);
           const float* dy = ctx.input(0)->data<float>();
           const float* x = ctx.input(1)->data<float>();
           float* dx = ctx.output(0)->data<float>();
           const int64_t n = ctx.input(0)->num_elements();
           if (!saved_output) {
#pragma omp parallel for schedule(static) if (n > 32768)
             for (int64_t i = 0; i < n; ++i) dx[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0.f;
           } else {
             const bool has_lo = ctx.input(2) != nullptr, has_hi = ctx.input(3) != nullptr;
#pragma omp parallel for schedule(static) if (n > 32768)
             for (int64_t i = 0; i < n; ++i)
               dx[i] = ClipPasses(x[i], lo, hi, true, has_lo, has_hi) ? dy[i] : 0.f;
           }
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(const bool saved_output, SavedOutputAttribute(b.node));
         return MakeKernel([saved_output](KernelContext& ctx) {
           return DispatchType<kFloatTypes>(ctx.input(0)->dtype(), [&](auto tag) -> absl::Status {
             using T = typename decltype(tag)::type;
             using C = typename Compute<T>::type;
             C lo, hi;
             ClipBoundsOf<T>(ctx, &lo, &hi);
             const bool has_lo = ctx.input(2) != nullptr, has_hi = ctx.input(3) != nullptr;
             const T* dy = ctx.input(0)->data<T>();
             const T* x = ctx.input(1)->data<T>();
             T* dx = ctx.output(0)->data<T>();
             for (int64_t i = 0; i < ctx.input(0)->num_elements(); ++i) {
               C v = Compute<T>::Load(x[i]);
               dx[i] = ClipPasses(v, lo, hi, saved_output, has_lo, has_hi)
                           ? dy[i]
                           : Compute<T>::Store(C(0));
             }
             return absl::OkStatus();
           });
         });
       }});
  s.flops = [](const graph::Node&, const std::vector<Shape>&, const std::vector<Shape>& out) {
    return ElementsFlops(out, 2.0);
  };
  registry.Register(std::move(s));
}

// ---- SoftmaxGrad / LogSoftmaxGrad ----

// The tensor viewed as [outer, n, inner], reducing over n (see the forward
// ops in ops/activation.cc).
struct Geometry {
  int64_t outer = 1, n = 1, inner = 1;
};

absl::StatusOr<Geometry> GetGeometry(const graph::Node& node, const Shape& shape) {
  const bool coerce_2d = node.GetInt("coerce_2d", 0) != 0;
  const int64_t axis = node.GetInt("axis", -1);
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": input must have rank >= 1; got a scalar"));
  }
  Geometry g;
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a > rank || (!coerce_2d && a == rank)) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": axis ", axis,
                                                   " is out of range for an input of rank ", rank));
  }
  for (int64_t d = 0; d < a; ++d) g.outer *= shape[d];
  if (coerce_2d) {
    for (int64_t d = a; d < rank; ++d) g.n *= shape[d];
  } else {
    g.n = shape[a];
    for (int64_t d = a + 1; d < rank; ++d) g.inner *= shape[d];
  }
  return g;
}

// Plain loops in the storage type's compute type, accumulating in double.
absl::Status RunSoftmaxGradReference(const Geometry& g, bool log, KernelContext& ctx) {
  return DispatchType<kFloatTypes>(ctx.input(0)->dtype(), [&](auto tag) -> absl::Status {
    using T = typename decltype(tag)::type;
    using C = typename Compute<T>::type;
    const T* dy = ctx.input(0)->data<T>();
    const T* y = ctx.input(1)->data<T>();
    T* dx = ctx.output(0)->data<T>();
    auto load = [](T v) { return static_cast<double>(Compute<T>::Load(v)); };
    for (int64_t o = 0; o < g.outer; ++o) {
      for (int64_t i = 0; i < g.inner; ++i) {
        auto at = [&](int64_t k) { return (o * g.n + k) * g.inner + i; };
        double sum = 0;
        for (int64_t k = 0; k < g.n; ++k) {
          sum += log ? load(dy[at(k)]) : load(dy[at(k)]) * load(y[at(k)]);
        }
        for (int64_t k = 0; k < g.n; ++k) {
          double d = load(dy[at(k)]), v = load(y[at(k)]);
          double r = log ? d - std::exp(v) * sum : v * (d - sum);
          dx[at(k)] = Compute<T>::Store(static_cast<C>(r));
        }
      }
    }
    return absl::OkStatus();
  });
}

void SoftmaxGradRowF32(const float* dy, const float* y, float* dx, int64_t n, bool log) {
  float sum = 0.f;
  if (log) {
    for (int64_t k = 0; k < n; ++k) sum += dy[k];
    for (int64_t k = 0; k < n; ++k) dx[k] = dy[k] - std::exp(y[k]) * sum;
  } else {
    for (int64_t k = 0; k < n; ++k) sum += dy[k] * y[k];
    for (int64_t k = 0; k < n; ++k) dx[k] = y[k] * (dy[k] - sum);
  }
}

// Strided reduction axis: vectorises across blocks of `inner` columns.
void SoftmaxGradColumnsF32(const Geometry& g, const float* dy, const float* y, float* dx,
                           bool log) {
  constexpr int64_t kBlock = 256;
  const int64_t blocks_per_outer = (g.inner + kBlock - 1) / kBlock;
  const int64_t tasks = g.outer * blocks_per_outer;
#pragma omp parallel for schedule(static) if (tasks > 1 && g.outer * g.n * g.inner > 32768)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / blocks_per_outer, c0 = (t % blocks_per_outer) * kBlock;
    const int64_t w = std::min(kBlock, g.inner - c0);
    const int64_t base = o * g.n * g.inner + c0;
    float sum[kBlock];
    for (int64_t c = 0; c < w; ++c) sum[c] = 0.f;
    for (int64_t k = 0; k < g.n; ++k) {
      const float* dyk = dy + base + k * g.inner;
      const float* yk = y + base + k * g.inner;
      if (log) {
        for (int64_t c = 0; c < w; ++c) sum[c] += dyk[c];
      } else {
        for (int64_t c = 0; c < w; ++c) sum[c] += dyk[c] * yk[c];
      }
    }
    for (int64_t k = 0; k < g.n; ++k) {
      const float* dyk = dy + base + k * g.inner;
      const float* yk = y + base + k * g.inner;
      float* dxk = dx + base + k * g.inner;
      if (log) {
        for (int64_t c = 0; c < w; ++c) dxk[c] = dyk[c] - std::exp(yk[c]) * sum[c];
      } else {
        for (int64_t c = 0; c < w; ++c) dxk[c] = yk[c] * (dyk[c] - sum[c]);
      }
    }
  }
}

void RegisterSoftmaxGrad(OpRegistry& registry, bool log) {
  OpSchema s;
  s.domain = kLasgdDomain;
  s.op_type = log ? "LogSoftmaxGrad" : "SoftmaxGrad";
  s.min_opset = s.max_opset = 1;
  s.min_inputs = s.max_inputs = 2;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kFloatTypes));
    RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
    RETURN_IF_ERROR(CheckSameShape(ctx, 0, 1));
    RETURN_IF_ERROR(GetGeometry(ctx.node(), ctx.input_shape(0)).status());
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [log](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         ASSIGN_OR_RETURN(Geometry g, GetGeometry(b.node, b.input_shapes[0]));
         return MakeKernel([g, log](KernelContext& ctx) {
           const float* dy = ctx.input(0)->data<float>();
           const float* y = ctx.input(1)->data<float>();
           float* dx = ctx.output(0)->data<float>();
           if (g.inner == 1) {
#pragma omp parallel for schedule(static) if (g.outer > 1 && g.outer * g.n > 32768)
             for (int64_t o = 0; o < g.outer; ++o) {
               SoftmaxGradRowF32(dy + o * g.n, y + o * g.n, dx + o * g.n, g.n, log);
             }
           } else {
             SoftmaxGradColumnsF32(g, dy, y, dx, log);
           }
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [log](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(Geometry g, GetGeometry(b.node, b.input_shapes[0]));
         return MakeKernel(
             [g, log](KernelContext& ctx) { return RunSoftmaxGradReference(g, log, ctx); });
       }});
  s.flops = [](const graph::Node&, const std::vector<Shape>&, const std::vector<Shape>& out) {
    return ElementsFlops(out, 4.0);
  };
  registry.Register(std::move(s));
}

template <typename Op>
std::function<absl::StatusOr<Op>(const graph::Node&)> Plain() {
  return [](const graph::Node&) -> absl::StatusOr<Op> { return Op{}; };
}

}  // namespace

void RegisterElementwiseBackwardOps(OpRegistry& registry) {
  RegisterPointwiseGrad<ReluGradOp>(registry, "ReluGrad", 1.0, Plain<ReluGradOp>());
  RegisterPointwiseGrad<LeakyReluGradOp>(
      registry, "LeakyReluGrad", 2.0, [](const graph::Node& n) -> absl::StatusOr<LeakyReluGradOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 0.01f));
        return LeakyReluGradOp{alpha};
      });
  RegisterPointwiseGrad<SigmoidGradOp>(registry, "SigmoidGrad", 3.0, Plain<SigmoidGradOp>());
  RegisterPointwiseGrad<TanhGradOp>(registry, "TanhGrad", 3.0, Plain<TanhGradOp>());
  RegisterPointwiseGrad<HardSigmoidGradOp>(
      registry, "HardSigmoidGrad", 4.0,
      [](const graph::Node& n) -> absl::StatusOr<HardSigmoidGradOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 0.2f));
        ASSIGN_OR_RETURN(float beta, FloatAttr(n, "beta", 0.5f));
        return HardSigmoidGradOp{alpha, beta};
      });
  RegisterPointwiseGrad<HardSwishGradOp>(registry, "HardSwishGrad", 3.0, Plain<HardSwishGradOp>());
  RegisterPointwiseGrad<GeluGradOp>(registry, "GeluGrad", 12.0, MakeGeluGrad);
  RegisterPointwiseGrad<SoftplusGradOp>(registry, "SoftplusGrad", 4.0, Plain<SoftplusGradOp>());
  RegisterPointwiseGrad<EluGradOp>(registry, "EluGrad", 3.0,
                                   [](const graph::Node& n) -> absl::StatusOr<EluGradOp> {
                                     ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 1.f));
                                     return EluGradOp{alpha};
                                   });
  RegisterPointwiseGrad<SeluGradOp>(
      registry, "SeluGrad", 4.0, [](const graph::Node& n) -> absl::StatusOr<SeluGradOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 1.67326319217681884765625f));
        ASSIGN_OR_RETURN(float gamma, FloatAttr(n, "gamma", 1.05070102214813232421875f));
        return SeluGradOp{alpha, gamma};
      });
  RegisterPointwiseGrad<AbsGradOp>(registry, "AbsGrad", 1.0, Plain<AbsGradOp>());
  RegisterPointwiseGrad<ErfGradOp>(registry, "ErfGrad", 4.0, Plain<ErfGradOp>());
  RegisterClipGrad(registry);
  RegisterSoftmaxGrad(registry, false);
  RegisterSoftmaxGrad(registry, true);
  backward_internal::RegisterShapeBackwardOps(registry);
}

}  // namespace lasgd::ops
