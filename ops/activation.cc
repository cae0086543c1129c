// Activations: pointwise nonlinearities (Relu ... Gelu) and Softmax /
// LogSoftmax. Pointwise ops share the unary machinery of elementwise_util.h
// (a float32 OpenMP "fast" kernel and a "reference" kernel for every dtype).
#include <cmath>

#include "ops/elementwise_util.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

using namespace ew;  // NOLINT: the helpers of this family

struct ReluOp {
  template <typename C>
  C operator()(C x) const {
    return x > C(0) ? x : C(0);
  }
};
struct LeakyReluOp {
  float alpha;
  template <typename C>
  C operator()(C x) const {
    return x < C(0) ? static_cast<C>(alpha) * x : x;
  }
};
// Written so that neither branch overflows exp().
struct SigmoidOp {
  template <typename C>
  C operator()(C x) const {
    if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
    C e = std::exp(x);
    return e / (C(1) + e);
  }
};
struct TanhOp {
  template <typename C>
  C operator()(C x) const {
    return std::tanh(x);
  }
};
struct HardSigmoidOp {
  float alpha, beta;
  template <typename C>
  C operator()(C x) const {
    C v = static_cast<C>(alpha) * x + static_cast<C>(beta);
    return v < C(0) ? C(0) : (v > C(1) ? C(1) : v);
  }
};
// x * HardSigmoid(x) with alpha = 1/6, beta = 0.5 (the spec's definition).
struct HardSwishOp {
  template <typename C>
  C operator()(C x) const {
    C v = x / C(6) + C(0.5);
    return x * (v < C(0) ? C(0) : (v > C(1) ? C(1) : v));
  }
};
struct GeluOp {
  bool tanh_approximation = false;
  template <typename C>
  C operator()(C x) const {
    if (tanh_approximation) {
      const C k = static_cast<C>(0.7978845608028654);  // sqrt(2 / pi)
      return C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x)));
    }
    return C(0.5) * x * (C(1) + std::erf(x * static_cast<C>(0.7071067811865476)));
  }
};
// log(1 + exp(x)) without overflow for large x.
struct SoftplusOp {
  template <typename C>
  C operator()(C x) const {
    return x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  }
};
struct EluOp {
  float alpha;
  template <typename C>
  C operator()(C x) const {
    return x < C(0) ? static_cast<C>(alpha) * std::expm1(x) : x;
  }
};
struct SeluOp {
  float alpha, gamma;
  template <typename C>
  C operator()(C x) const {
    C a = static_cast<C>(alpha), g = static_cast<C>(gamma);
    return x > C(0) ? g * x : g * (a * std::exp(x) - a);
  }
};

template <uint32_t kMask, typename Op>
void RegisterActivation(OpRegistry& registry, const std::string& op_type, int64_t min_opset,
                        double flops, std::function<absl::StatusOr<Op>(const graph::Node&)> make,
                        const std::string& domain = "", int64_t max_opset = 21) {
  UnarySpec<Op> spec;
  spec.domain = domain;
  spec.op_type = op_type;
  spec.min_opset = min_opset;
  spec.max_opset = max_opset;
  spec.flops_per_element = flops;
  spec.make = std::move(make);
  RegisterUnary<kMask>(registry, spec);
}

absl::StatusOr<GeluOp> MakeGelu(const graph::Node& node) {
  GeluOp op;
  const graph::Attribute* a = node.FindAttribute("approximate");
  if (!a) return op;
  if (a->kind != graph::Attribute::Kind::kString || (a->s != "none" && a->s != "tanh")) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": attribute 'approximate' must be 'none' or 'tanh'; got ",
                     a->ToString()));
  }
  op.tanh_approximation = a->s == "tanh";
  return op;
}

// ---- Softmax / LogSoftmax ----

// The input viewed as [outer, n, inner] with the reduction over n. Before
// opset 13 the input is coerced to 2D at `axis` ([prod(d[:axis]),
// prod(d[axis:])], inner = 1); from opset 13 only the axis dim is reduced.
struct SoftmaxGeometry {
  int64_t outer = 1, n = 1, inner = 1;
};

absl::StatusOr<SoftmaxGeometry> GetSoftmaxGeometry(const graph::Node& node, int64_t opset,
                                                   const Shape& shape) {
  const bool coerce_2d = opset < 13;
  ASSIGN_OR_RETURN(int64_t axis, IntAttr(node, "axis", coerce_2d ? 1 : -1));
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": input must have rank >= 1; got a scalar"));
  }
  SoftmaxGeometry g;
  if (coerce_2d) {
    // Like Flatten, axis may equal the rank (then every row has one element).
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a > rank) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": axis ", axis,
                                                     " is out of range [", -rank, ", ", rank,
                                                     "] for an input of rank ", rank));
    }
    for (int64_t d = 0; d < a; ++d) g.outer *= shape[d];
    for (int64_t d = a; d < rank; ++d) g.n *= shape[d];
  } else {
    auto a = NormalizeAxis(axis, rank);
    if (!a.ok()) return WithContext(a.status(), node.Describe());
    for (int64_t d = 0; d < *a; ++d) g.outer *= shape[d];
    g.n = shape[*a];
    for (int64_t d = *a + 1; d < rank; ++d) g.inner *= shape[d];
  }
  return g;
}

// Subtracts the max before exponentiating so large inputs cannot overflow.
template <uint32_t kMask>
absl::Status RunSoftmaxReference(const SoftmaxGeometry& g, bool log, const Tensor& x, Tensor& y) {
  return DispatchType<kMask>(x.dtype(), [&](auto tag) -> absl::Status {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t o = 0; o < g.outer; ++o) {
      for (int64_t i = 0; i < g.inner; ++i) {
        auto at = [&](int64_t k) { return (o * g.n + k) * g.inner + i; };
        double max = -INFINITY;
        for (int64_t k = 0; k < g.n; ++k) {
          max = std::max(max, static_cast<double>(Compute<T>::Load(px[at(k)])));
        }
        double sum = 0;
        for (int64_t k = 0; k < g.n; ++k) {
          sum += std::exp(static_cast<double>(Compute<T>::Load(px[at(k)])) - max);
        }
        for (int64_t k = 0; k < g.n; ++k) {
          double shifted = static_cast<double>(Compute<T>::Load(px[at(k)])) - max;
          double v = log ? shifted - std::log(sum) : std::exp(shifted) / sum;
          py[at(k)] = Compute<T>::Store(static_cast<typename Compute<T>::type>(v));
        }
      }
    }
    return absl::OkStatus();
  });
}

void SoftmaxRowF32(const float* x, float* y, int64_t n, bool log) {
  float max = -INFINITY;
  for (int64_t k = 0; k < n; ++k) max = std::max(max, x[k]);
  float sum = 0.f;
  if (log) {
    for (int64_t k = 0; k < n; ++k) sum += std::exp(x[k] - max);
    // (x - max) - log(sum), not x - (max + log(sum)): the latter loses the
    // small log term against a large max.
    const float log_sum = std::log(sum);
    for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - max) - log_sum;
  } else {
    for (int64_t k = 0; k < n; ++k) {
      y[k] = std::exp(x[k] - max);
      sum += y[k];
    }
    const float inv = 1.f / sum;
    for (int64_t k = 0; k < n; ++k) y[k] *= inv;
  }
}

// Reduction over a strided axis: vectorises across a block of `inner`
// columns; blocks of (outer, column range) are spread over threads.
void SoftmaxColumnsF32(const SoftmaxGeometry& g, const float* x, float* y, bool log) {
  constexpr int64_t kBlock = 256;
  const int64_t blocks_per_outer = (g.inner + kBlock - 1) / kBlock;
  const int64_t tasks = g.outer * blocks_per_outer;
#pragma omp parallel for schedule(static) if (tasks > 1 && g.outer * g.n * g.inner > 32768)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / blocks_per_outer, c0 = (t % blocks_per_outer) * kBlock;
    const int64_t w = std::min(kBlock, g.inner - c0);
    float max[kBlock], sum[kBlock];
    const float* xb = x + o * g.n * g.inner + c0;
    float* yb = y + o * g.n * g.inner + c0;
    for (int64_t c = 0; c < w; ++c) {
      max[c] = -INFINITY;
      sum[c] = 0.f;
    }
    for (int64_t k = 0; k < g.n; ++k) {
      for (int64_t c = 0; c < w; ++c) max[c] = std::max(max[c], xb[k * g.inner + c]);
    }
    for (int64_t k = 0; k < g.n; ++k) {
      for (int64_t c = 0; c < w; ++c) {
        float e = std::exp(xb[k * g.inner + c] - max[c]);
        sum[c] += e;
        if (!log) yb[k * g.inner + c] = e;
      }
    }
    for (int64_t c = 0; c < w; ++c) {
      sum[c] = log ? std::log(sum[c]) : 1.f / sum[c];
    }
    for (int64_t k = 0; k < g.n; ++k) {
      for (int64_t c = 0; c < w; ++c) {
        float& out = yb[k * g.inner + c];
        out = log ? (xb[k * g.inner + c] - max[c]) - sum[c] : out * sum[c];
      }
    }
  }
}

void RegisterSoftmax(OpRegistry& registry, const std::string& op_type, int64_t min_opset,
                     int64_t max_opset) {
  const bool log = op_type == "LogSoftmax";
  OpSchema s;
  s.op_type = op_type;
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kFloatTypes));
    RETURN_IF_ERROR(GetSoftmaxGeometry(ctx.node(), ctx.opset(), ctx.input_shape(0)).status());
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [log](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         ASSIGN_OR_RETURN(SoftmaxGeometry g,
                          GetSoftmaxGeometry(b.node, b.opset, b.input_shapes[0]));
         return MakeKernel([g, log](KernelContext& ctx) {
           const float* x = ctx.input(0)->data<float>();
           float* y = ctx.output(0)->data<float>();
           if (g.inner == 1) {
#pragma omp parallel for schedule(static) if (g.outer > 1 && g.outer * g.n > 32768)
             for (int64_t o = 0; o < g.outer; ++o)
               SoftmaxRowF32(x + o * g.n, y + o * g.n, g.n, log);
           } else {
             SoftmaxColumnsF32(g, x, y, log);
           }
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [log](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(SoftmaxGeometry g,
                          GetSoftmaxGeometry(b.node, b.opset, b.input_shapes[0]));
         return MakeKernel([g, log](KernelContext& ctx) {
           return RunSoftmaxReference<kFloatTypes>(g, log, *ctx.input(0), *ctx.output(0));
         });
       }});
  s.flops = [](const graph::Node&, const std::vector<Shape>&, const std::vector<Shape>& out) {
    return ElementsFlops(out, 5.0);  // max, subtract, exp, sum, scale
  };
  registry.Register(std::move(s));
}

}  // namespace

void RegisterActivationOps(OpRegistry& registry) {
  // Relu took integer inputs from opset 14; accepting them earlier is harmless.
  RegisterActivation<kFloatTypes | kSignedInts, ReluOp>(registry, "Relu", 7, 1.0,
                                                        NoAttributes<ReluOp>());
  RegisterActivation<kFloatTypes, LeakyReluOp>(
      registry, "LeakyRelu", 7, 2.0, [](const graph::Node& n) -> absl::StatusOr<LeakyReluOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 0.01f));
        return LeakyReluOp{alpha};
      });
  RegisterActivation<kFloatTypes, SigmoidOp>(registry, "Sigmoid", 7, 4.0,
                                             NoAttributes<SigmoidOp>());
  RegisterActivation<kFloatTypes, TanhOp>(registry, "Tanh", 7, 4.0, NoAttributes<TanhOp>());
  RegisterActivation<kFloatTypes, HardSigmoidOp>(
      registry, "HardSigmoid", 7, 4.0, [](const graph::Node& n) -> absl::StatusOr<HardSigmoidOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 0.2f));
        ASSIGN_OR_RETURN(float beta, FloatAttr(n, "beta", 0.5f));
        return HardSigmoidOp{alpha, beta};
      });
  RegisterActivation<kFloatTypes, HardSwishOp>(registry, "HardSwish", 14, 5.0,
                                               NoAttributes<HardSwishOp>());
  RegisterActivation<kFloatTypes, GeluOp>(registry, "Gelu", 20, 8.0, MakeGelu);
  // Exporters (ORT transformers, older torch) emit com.microsoft.Gelu, which
  // has no `approximate` attribute and always uses erf; that domain is at opset 1.
  RegisterActivation<kFloatTypes, GeluOp>(registry, "Gelu", 1, 8.0, NoAttributes<GeluOp>(),
                                          "com.microsoft", 21);
  RegisterActivation<kFloatTypes, SoftplusOp>(registry, "Softplus", 7, 4.0,
                                              NoAttributes<SoftplusOp>());
  RegisterActivation<kFloatTypes, EluOp>(
      registry, "Elu", 7, 4.0, [](const graph::Node& n) -> absl::StatusOr<EluOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 1.f));
        return EluOp{alpha};
      });
  RegisterActivation<kFloatTypes, SeluOp>(
      registry, "Selu", 7, 4.0, [](const graph::Node& n) -> absl::StatusOr<SeluOp> {
        ASSIGN_OR_RETURN(float alpha, FloatAttr(n, "alpha", 1.67326319217681884765625f));
        ASSIGN_OR_RETURN(float gamma, FloatAttr(n, "gamma", 1.05070102214813232421875f));
        return SeluOp{alpha, gamma};
      });
  RegisterSoftmax(registry, "Softmax", 7, 12);
  RegisterSoftmax(registry, "Softmax", 13, 21);
  RegisterSoftmax(registry, "LogSoftmax", 7, 12);
  RegisterSoftmax(registry, "LogSoftmax", 13, 21);
}

}  // namespace lasgd::ops
