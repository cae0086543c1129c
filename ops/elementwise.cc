// Elementwise ops: arithmetic with numpy broadcasting, variadic Max/Min/Sum/
// Mean, unary math, Clip, Cast, comparisons, logic and Where.
//
// Every op has a "reference" kernel (an index-unravelling loop per output
// element, all dtypes the ONNX spec allows); the float32 hot paths also have a
// "fast" kernel over a precomputed RowPlan, parallel with OpenMP.
#include <cmath>

#include "ops/elementwise_util.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

using namespace ew;  // NOLINT: the helpers of this family

// Integer arithmetic wraps (as numpy does) instead of overflowing into
// undefined behaviour; uint32 at least, so uint16 * uint16 cannot overflow int.
template <typename C>
using WrapType = std::conditional_t<(sizeof(C) < 4), uint32_t, std::make_unsigned_t<C>>;

struct AddOp {
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) {
      return static_cast<C>(static_cast<WrapType<C>>(a) + static_cast<WrapType<C>>(b));
    } else {
      return a + b;
    }
  }
};
struct SubOp {
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) {
      return static_cast<C>(static_cast<WrapType<C>>(a) - static_cast<WrapType<C>>(b));
    } else {
      return a - b;
    }
  }
};
struct MulOp {
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) {
      return static_cast<C>(static_cast<WrapType<C>>(a) * static_cast<WrapType<C>>(b));
    } else {
      return a * b;
    }
  }
};
// Integer division truncates toward zero (ONNX test_div_int32_trunc). x / 0
// gives 0 and INT_MIN / -1 wraps, rather than trapping the process.
struct DivOp {
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) {
      if (b == 0) return C(0);
      if constexpr (std::is_signed_v<C>) {
        if (b == C(-1)) return static_cast<C>(WrapType<C>(0) - static_cast<WrapType<C>>(a));
      }
      return static_cast<C>(a / b);
    } else {
      return a / b;
    }
  }
};
// ONNX Max/Min propagate NaN (numpy maximum/minimum semantics).
struct MaxOp {
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point_v<C>) {
      if (std::isnan(a)) return a;
      if (std::isnan(b)) return b;
    }
    return a < b ? b : a;
  }
};
struct MinOp {
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_floating_point_v<C>) {
      if (std::isnan(a)) return a;
      if (std::isnan(b)) return b;
    }
    return b < a ? b : a;
  }
};
struct EqualOp {
  template <typename C>
  bool operator()(C a, C b) const {
    return a == b;
  }
};
struct LessOp {
  template <typename C>
  bool operator()(C a, C b) const {
    return a < b;
  }
};
struct GreaterOp {
  template <typename C>
  bool operator()(C a, C b) const {
    return a > b;
  }
};
struct LessOrEqualOp {
  template <typename C>
  bool operator()(C a, C b) const {
    return a <= b;
  }
};
struct GreaterOrEqualOp {
  template <typename C>
  bool operator()(C a, C b) const {
    return a >= b;
  }
};
struct AndOp {
  bool operator()(bool a, bool b) const { return a && b; }
};
struct OrOp {
  bool operator()(bool a, bool b) const { return a || b; }
};

// ---- binary ops ----

template <uint32_t kMask, typename Op, bool kBoolOut>
absl::Status RunBinaryReference(const Op& op, const Tensor& a, const Tensor& b, Tensor& y) {
  return DispatchType<kMask>(a.dtype(), [&](auto tag) -> absl::Status {
    using T = typename decltype(tag)::type;
    using C = typename Compute<T>::type;
    using TO = std::conditional_t<kBoolOut, Bool8, T>;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    TO* py = y.data<TO>();
    BroadcastIndexer index({a.shape(), b.shape()}, y.shape());
    const int64_t n = y.num_elements();
    for (int64_t i = 0; i < n; ++i) {
      C va = Compute<T>::Load(pa[index.Offset(0, i)]);
      C vb = Compute<T>::Load(pb[index.Offset(1, i)]);
      py[i] = Compute<TO>::Store(op(va, vb));
    }
    return absl::OkStatus();
  });
}

// y = op(a, b) over a RowPlan of {a, b} -> y; `a` may alias `y` when a has y's shape.
template <typename Op>
void RunBinaryFastF32(const Op& op, const RowPlan& plan, const float* a, const float* b, float* y) {
  const int64_t sa = plan.inner_stride(0), sb = plan.inner_stride(1), n = plan.row_len();
  ParallelRowSegments(plan.total(), n, [&](int64_t row, int64_t start, int64_t len) {
    const float* pa = a + plan.RowOffset(0, row) + sa * start;
    const float* pb = b + plan.RowOffset(1, row) + sb * start;
    float* py = y + row * n + start;
    if (sa && sb) {
      for (int64_t i = 0; i < len; ++i) py[i] = op(pa[i], pb[i]);
    } else if (sa) {
      const float vb = *pb;
      for (int64_t i = 0; i < len; ++i) py[i] = op(pa[i], vb);
    } else if (sb) {
      const float va = *pa;
      for (int64_t i = 0; i < len; ++i) py[i] = op(va, pb[i]);
    } else {
      const float v = op(*pa, *pb);
      for (int64_t i = 0; i < len; ++i) py[i] = v;
    }
  });
}

double ElementwiseFlops(const graph::Node&, const std::vector<Shape>&,
                        const std::vector<Shape>& outputs) {
  return ElementsFlops(outputs, 1.0);
}

template <uint32_t kMask, typename Op, bool kBoolOut>
void RegisterBinary(OpRegistry& registry, const std::string& op_type, int64_t min_opset,
                    int64_t max_opset, bool with_fast) {
  OpSchema s;
  s.op_type = op_type;
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.min_inputs = s.max_inputs = 2;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kMask));
    RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
    ASSIGN_OR_RETURN(Shape out, BroadcastInputs(ctx, {0, 1}));
    ctx.set_output(0, kBoolOut ? DataType::kBool : ctx.input_dtype(0), out);
    return absl::OkStatus();
  };
  if (with_fast && !kBoolOut) {
    s.kernels.push_back(
        {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           if (b.input_dtypes[0] != DataType::kFloat32) {
             return absl::UnimplementedError("the fast kernel handles float32 only");
           }
           RowPlan plan({b.input_shapes[0], b.input_shapes[1]}, b.output_shapes[0]);
           return MakeKernel([plan](KernelContext& ctx) {
             RunBinaryFastF32(Op{}, plan, ctx.input(0)->data<float>(), ctx.input(1)->data<float>(),
                              ctx.output(0)->data<float>());
             return absl::OkStatus();
           });
         }});
  }
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return MakeKernel([](KernelContext& ctx) {
           return RunBinaryReference<kMask, Op, kBoolOut>(Op{}, *ctx.input(0), *ctx.input(1),
                                                          *ctx.output(0));
         });
       }});
  s.flops = ElementwiseFlops;
  registry.Register(std::move(s));
}

// ---- Pow ----

constexpr uint32_t kPowBaseTypes = kI32 | kI64 | kFloatTypes;

// Exact integer power by squaring (modular on overflow, as numpy).
template <typename T, typename E>
T IntegerPow(T base, E exponent) {
  if constexpr (std::is_signed_v<E>) {
    if (exponent < 0) {  // only |base| == 1 survives truncation
      if (base == 1) return T(1);
      if (base == T(-1)) return (exponent % 2) ? T(-1) : T(1);
      return T(0);
    }
  }
  using U = WrapType<T>;
  U result = 1, b = static_cast<U>(base);
  auto e = static_cast<std::make_unsigned_t<E>>(exponent);
  while (e) {
    if (e & 1u) result *= b;
    b *= b;
    e >>= 1;
  }
  return static_cast<T>(result);
}

template <typename CB, typename CE>
CB PowValue(CB base, CE exponent) {
  if constexpr (std::is_integral_v<CB> && std::is_integral_v<CE>) {
    return IntegerPow(base, exponent);
  } else {
    return ConvertScalar<CB>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  }
}

absl::Status RunPowReference(const Tensor& x, const Tensor& e, Tensor& y) {
  return DispatchType<kPowBaseTypes>(x.dtype(), [&](auto base_tag) -> absl::Status {
    return DispatchType<kNumeric>(e.dtype(), [&](auto exp_tag) -> absl::Status {
      using TB = typename decltype(base_tag)::type;
      using TE = typename decltype(exp_tag)::type;
      const TB* px = x.data<TB>();
      const TE* pe = e.data<TE>();
      TB* py = y.data<TB>();
      BroadcastIndexer index({x.shape(), e.shape()}, y.shape());
      const int64_t n = y.num_elements();
      for (int64_t i = 0; i < n; ++i) {
        auto vb = Compute<TB>::Load(px[index.Offset(0, i)]);
        auto ve = Compute<TE>::Load(pe[index.Offset(1, i)]);
        py[i] = Compute<TB>::Store(PowValue(vb, ve));
      }
      return absl::OkStatus();
    });
  });
}

struct PowF32Op {
  float operator()(float a, float b) const { return std::pow(a, b); }
};
struct SquareF32Op {
  float operator()(float a, float) const { return a * a; }
};

void RegisterPow(OpRegistry& registry, int64_t min_opset, int64_t max_opset) {
  OpSchema s;
  s.op_type = "Pow";
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.min_inputs = s.max_inputs = 2;
  s.min_outputs = s.max_outputs = 1;
  const bool mixed = min_opset >= 12;
  s.infer = [mixed](InferenceContext& ctx) -> absl::Status {
    if (mixed) {
      RETURN_IF_ERROR(CheckInputType(ctx, 0, kPowBaseTypes));
      RETURN_IF_ERROR(CheckInputType(ctx, 1, kNumeric));
    } else {
      RETURN_IF_ERROR(CheckInputType(ctx, 0, kF16 | kF32 | kF64));
      RETURN_IF_ERROR(CheckSameType(ctx, 0, 1));
    }
    ASSIGN_OR_RETURN(Shape out, BroadcastInputs(ctx, {0, 1}));
    ctx.set_output(0, ctx.input_dtype(0), out);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32 || b.input_dtypes[1] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 ** float32 only");
         }
         RowPlan plan({b.input_shapes[0], b.input_shapes[1]}, b.output_shapes[0]);
         const bool scalar_exponent = NumElements(b.input_shapes[1]) == 1;
         return MakeKernel([plan, scalar_exponent](KernelContext& ctx) {
           const float* x = ctx.input(0)->data<float>();
           const float* e = ctx.input(1)->data<float>();
           float* y = ctx.output(0)->data<float>();
           // x ** 2 (variance in decomposed norms) is exact as x * x.
           if (scalar_exponent && e[0] == 2.0f) {
             RunBinaryFastF32(SquareF32Op{}, plan, x, e, y);
           } else {
             RunBinaryFastF32(PowF32Op{}, plan, x, e, y);
           }
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return MakeKernel([](KernelContext& ctx) {
           return RunPowReference(*ctx.input(0), *ctx.input(1), *ctx.output(0));
         });
       }});
  s.flops = ElementwiseFlops;
  registry.Register(std::move(s));
}

// ---- variadic Max / Min / Sum / Mean ----

template <uint32_t kMask, typename Op>
absl::Status RunVariadicReference(const Op& op, bool mean, KernelContext& ctx) {
  std::vector<const Tensor*> inputs;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.input(i)) continue;
    inputs.push_back(ctx.input(i));
    shapes.push_back(ctx.input(i)->shape());
  }
  Tensor& y = *ctx.output(0);
  return DispatchType<kMask>(y.dtype(), [&](auto tag) -> absl::Status {
    using T = typename decltype(tag)::type;
    using C = typename Compute<T>::type;
    BroadcastIndexer index(shapes, y.shape());
    T* py = y.data<T>();
    const int64_t n = y.num_elements();
    for (int64_t i = 0; i < n; ++i) {
      C acc = Compute<T>::Load(inputs[0]->data<T>()[index.Offset(0, i)]);
      for (size_t k = 1; k < inputs.size(); ++k) {
        acc = op(acc, C(Compute<T>::Load(inputs[k]->data<T>()[index.Offset(k, i)])));
      }
      if constexpr (std::is_floating_point_v<C>) {
        if (mean) acc /= static_cast<C>(inputs.size());
      }
      py[i] = Compute<T>::Store(acc);
    }
    return absl::OkStatus();
  });
}

struct ScaleF32Op {
  float scale;
  float operator()(float a, float) const { return a / scale; }
};

template <typename Op>
void RegisterVariadic(OpRegistry& registry, const std::string& op_type, int64_t min_opset,
                      int64_t max_opset, uint32_t types, bool mean) {
  OpSchema s;
  s.op_type = op_type;
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.min_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  // Before opset 8 these ops did not broadcast.
  const bool broadcast = min_opset >= 8;
  s.infer = [types, broadcast](InferenceContext& ctx) -> absl::Status {
    std::vector<size_t> present;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) return ctx.Error(absl::StrCat("input ", i, " is empty"));
      RETURN_IF_ERROR(CheckInputType(ctx, i, types));
      RETURN_IF_ERROR(CheckSameType(ctx, 0, i));
      if (!broadcast && ctx.input_shape(i) != ctx.input_shape(0)) {
        return ctx.Error(absl::StrCat("at opset ", ctx.opset(),
                                      " all inputs must have the same shape (broadcasting came "
                                      "with opset 8); input 0 is ",
                                      ShapeToString(ctx.input_shape(0)), ", input ", i, " is ",
                                      ShapeToString(ctx.input_shape(i))));
      }
      present.push_back(i);
    }
    ASSIGN_OR_RETURN(Shape out, BroadcastInputs(ctx, present));
    ctx.set_output(0, ctx.input_dtype(0), out);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [mean](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.output_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         const size_t n = b.input_shapes.size();
         const Shape& out = b.output_shapes[0];
         // Folds pairwise into the output: y = in0 op in1, then y = y op in_k.
         std::vector<RowPlan> plans;
         if (n >= 2)
           plans.emplace_back(std::vector<Shape>{b.input_shapes[0], b.input_shapes[1]}, out);
         for (size_t k = 2; k < n; ++k)
           plans.emplace_back(std::vector<Shape>{out, b.input_shapes[k]}, out);
         RowPlan self({out, out}, out);
         return MakeKernel([plans, self, n, mean](KernelContext& ctx) {
           float* y = ctx.output(0)->data<float>();
           if (n == 1) {
             ctx.output(0)->CopyFrom(*ctx.input(0));
           } else {
             RunBinaryFastF32(Op{}, plans[0], ctx.input(0)->data<float>(),
                              ctx.input(1)->data<float>(), y);
             for (size_t k = 2; k < n; ++k) {
               RunBinaryFastF32(Op{}, plans[k - 1], y, ctx.input(k)->data<float>(), y);
             }
           }
           if (mean) RunBinaryFastF32(ScaleF32Op{static_cast<float>(n)}, self, y, y, y);
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [mean](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return MakeKernel([mean](KernelContext& ctx) {
           return RunVariadicReference<kNumeric, Op>(Op{}, mean, ctx);
         });
       }});
  s.flops = [](const graph::Node& node, const std::vector<Shape>& ins,
               const std::vector<Shape>& outs) {
    return ElementsFlops(outs, static_cast<double>(ins.size() > 1 ? ins.size() - 1 : 1));
  };
  registry.Register(std::move(s));
}

// ---- unary math ----

struct SqrtOp {
  template <typename C>
  C operator()(C x) const {
    return std::sqrt(x);
  }
};
struct ReciprocalOp {
  template <typename C>
  C operator()(C x) const {
    return C(1) / x;
  }
};
struct NegOp {
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_integral_v<C>) {
      return static_cast<C>(WrapType<C>(0) - static_cast<WrapType<C>>(x));
    } else {
      return -x;
    }
  }
};
struct ExpOp {
  template <typename C>
  C operator()(C x) const {
    return std::exp(x);
  }
};
struct LogOp {
  template <typename C>
  C operator()(C x) const {
    return std::log(x);
  }
};
struct AbsOp {
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_unsigned_v<C>) {
      return x;
    } else if constexpr (std::is_integral_v<C>) {
      return x < 0 ? NegOp{}(x) : x;
    } else {
      return std::fabs(x);
    }
  }
};
struct FloorOp {
  template <typename C>
  C operator()(C x) const {
    return std::floor(x);
  }
};
struct CeilOp {
  template <typename C>
  C operator()(C x) const {
    return std::ceil(x);
  }
};
// NaN stays NaN (numpy.sign).
struct SignOp {
  template <typename C>
  C operator()(C x) const {
    if (x > C(0)) return C(1);
    if constexpr (std::is_signed_v<C> || std::is_floating_point_v<C>) {
      if (x < C(0)) return C(-1);
    }
    return x == C(0) ? C(0) : x;
  }
};
struct ErfOp {
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_integral_v<C>) {
      return ConvertScalar<C>(std::erf(static_cast<double>(x)));
    } else {
      return std::erf(x);
    }
  }
};
struct NotOp {
  bool operator()(bool x) const { return !x; }
};

template <uint32_t kMask, typename Op>
void RegisterSimpleUnary(OpRegistry& registry, const std::string& op_type, int64_t min_opset,
                         double flops = 1.0) {
  UnarySpec<Op> spec;
  spec.op_type = op_type;
  spec.min_opset = min_opset;
  spec.flops_per_element = flops;
  spec.make = NoAttributes<Op>();
  RegisterUnary<kMask>(registry, spec);
}

// ---- Clip ----

template <typename T>
typename Compute<T>::type LowestOf() {
  if constexpr (std::is_same_v<T, Float16>) {
    return -65504.0f;
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16BitsToFloat(0xff7fu);
  } else {
    return std::numeric_limits<T>::lowest();
  }
}
template <typename T>
typename Compute<T>::type MaxOf() {
  if constexpr (std::is_same_v<T, Float16>) {
    return 65504.0f;
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16BitsToFloat(0x7f7fu);
  } else {
    return std::numeric_limits<T>::max();
  }
}

// Bounds of one Clip node: opset < 11 attributes, else optional scalar inputs.
struct ClipBounds {
  bool from_inputs = true;
  float attr_min = 0.f, attr_max = 0.f;
};

// min(max(x, lo), hi): with lo > hi every element becomes hi, as the spec says.
template <uint32_t kMask>
absl::Status RunClipReference(const ClipBounds& bounds, KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.output(0);
  return DispatchType<kMask>(x.dtype(), [&](auto tag) -> absl::Status {
    using T = typename decltype(tag)::type;
    using C = typename Compute<T>::type;
    C lo = LowestOf<T>(), hi = MaxOf<T>();
    if (bounds.from_inputs) {
      if (const Tensor* m = ctx.input(1)) lo = Compute<T>::Load(m->data<T>()[0]);
      if (const Tensor* m = ctx.input(2)) hi = Compute<T>::Load(m->data<T>()[0]);
    } else {
      lo = static_cast<C>(bounds.attr_min);
      hi = static_cast<C>(bounds.attr_max);
    }
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      C v = Compute<T>::Load(px[i]);
      if (v < lo) v = lo;
      if (v > hi) v = hi;
      py[i] = Compute<T>::Store(v);
    }
    return absl::OkStatus();
  });
}

void RegisterClip(OpRegistry& registry, int64_t min_opset, int64_t max_opset) {
  OpSchema s;
  s.op_type = "Clip";
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  const bool from_inputs = min_opset >= 11;
  s.min_inputs = 1;
  s.max_inputs = from_inputs ? 3 : 1;
  s.min_outputs = s.max_outputs = 1;
  auto bounds_of = [from_inputs](const graph::Node& node) -> absl::StatusOr<ClipBounds> {
    ClipBounds b;
    b.from_inputs = from_inputs;
    if (!from_inputs) {
      ASSIGN_OR_RETURN(b.attr_min, FloatAttr(node, "min", std::numeric_limits<float>::lowest()));
      ASSIGN_OR_RETURN(b.attr_max, FloatAttr(node, "max", std::numeric_limits<float>::max()));
    }
    return b;
  };
  s.infer = [bounds_of, from_inputs](InferenceContext& ctx) -> absl::Status {
    uint32_t types = !from_inputs || ctx.opset() == 11 ? (kF16 | kF32 | kF64) : kNumeric;
    RETURN_IF_ERROR(CheckInputType(ctx, 0, types));
    RETURN_IF_ERROR(bounds_of(ctx.node()).status());
    for (size_t i = 1; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) continue;
      RETURN_IF_ERROR(CheckSameType(ctx, 0, i));
      if (NumElements(ctx.input_shape(i)) != 1) {
        return ctx.Error(absl::StrCat("input ", i, " (", i == 1 ? "min" : "max",
                                      ") must be a scalar; got shape ",
                                      ShapeToString(ctx.input_shape(i))));
      }
    }
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [bounds_of](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         ASSIGN_OR_RETURN(ClipBounds bounds, bounds_of(b.node));
         return MakeKernel([bounds](KernelContext& ctx) {
           float lo = bounds.attr_min, hi = bounds.attr_max;
           if (bounds.from_inputs) {
             lo = ctx.input(1) ? ctx.input(1)->data<float>()[0]
                               : std::numeric_limits<float>::lowest();
             hi = ctx.input(2) ? ctx.input(2)->data<float>()[0] : std::numeric_limits<float>::max();
           }
           const Tensor& x = *ctx.input(0);
           ParallelUnaryF32(x.data<float>(), ctx.output(0)->data<float>(), x.num_elements(),
                            [lo, hi](float v) {
                              v = v < lo ? lo : v;
                              return v > hi ? hi : v;
                            });
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference",
       [bounds_of](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(ClipBounds bounds, bounds_of(b.node));
         return MakeKernel(
             [bounds](KernelContext& ctx) { return RunClipReference<kNumeric>(bounds, ctx); });
       }});
  s.flops = ElementwiseFlops;
  registry.Register(std::move(s));
}

// ---- Cast ----

// double -> float rounding to odd, so that a second rounding to float16 or
// bfloat16 (which keep far fewer than 22 bits) gives the correctly rounded
// result instead of a double-rounded one.
float DoubleToFloatRoundOdd(double d) {
  float f = static_cast<float>(d);
  if (std::isinf(f) || std::isnan(f) || static_cast<double>(f) == d) return f;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) --bits;  // step back toward zero
  bits |= 1u;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename TO, typename TI>
TO CastElement(TI v) {
  using CI = typename Compute<TI>::type;
  using CO = typename Compute<TO>::type;
  CI c = Compute<TI>::Load(v);
  if constexpr ((std::is_same_v<TO, Float16> ||
                 std::is_same_v<TO, BFloat16>)&&std::is_same_v<CI, double>) {
    return Compute<TO>::Store(DoubleToFloatRoundOdd(c));
  } else {
    return Compute<TO>::Store(ConvertScalar<CO>(c));
  }
}

absl::Status RunCastReference(const Tensor& x, Tensor& y) {
  return DispatchType<kAllTypes>(x.dtype(), [&](auto in_tag) -> absl::Status {
    return DispatchType<kAllTypes>(y.dtype(), [&](auto out_tag) -> absl::Status {
      using TI = typename decltype(in_tag)::type;
      using TO = typename decltype(out_tag)::type;
      const TI* px = x.data<TI>();
      TO* py = y.data<TO>();
      for (int64_t i = 0; i < x.num_elements(); ++i) py[i] = CastElement<TO>(px[i]);
      return absl::OkStatus();
    });
  });
}

void RegisterCast(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Cast";
  s.min_opset = 7;
  s.max_opset = 21;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  // `saturate` (opset 19+) only affects float8 targets, which we do not support.
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kAllTypes));
    const graph::Attribute* to = ctx.node().FindAttribute("to");
    if (!to) return ctx.Error("attribute 'to' is required");
    if (to->kind != graph::Attribute::Kind::kInt) {
      return ctx.Error(absl::StrCat("attribute 'to' must be an int (a TensorProto.DataType); got ",
                                    to->ToString()));
    }
    DataType dt = static_cast<DataType>(to->i);
    if (to->i < 0 || to->i > 64 || !(TypeBit(dt) & kAllTypes)) {
      return ctx.Error(
          absl::StrCat("Cast to TensorProto.DataType ", to->i,
                       " is not supported; supported targets: ", TypeSetString(kAllTypes)));
    }
    ctx.set_output(0, dt, ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return MakeKernel(
             [](KernelContext& ctx) { return RunCastReference(*ctx.input(0), *ctx.output(0)); });
       }});
  registry.Register(std::move(s));
}

// ---- Where ----

// Where only moves elements, so one kernel per element size serves every dtype.
template <typename E>
void WhereReference(const Tensor& cond, const Tensor& x, const Tensor& y, Tensor& out) {
  BroadcastIndexer index({cond.shape(), x.shape(), y.shape()}, out.shape());
  const uint8_t* pc = cond.data<uint8_t>();
  const E* px = x.data<E>();
  const E* py = y.data<E>();
  E* po = out.data<E>();
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    po[i] = pc[index.Offset(0, i)] ? px[index.Offset(1, i)] : py[index.Offset(2, i)];
  }
}

template <typename E>
void WhereFast(const RowPlan& plan, const Tensor& cond, const Tensor& x, const Tensor& y,
               Tensor& out) {
  const uint8_t* pc = cond.data<uint8_t>();
  const E* px = x.data<E>();
  const E* py = y.data<E>();
  E* po = out.data<E>();
  const int64_t sc = plan.inner_stride(0), sx = plan.inner_stride(1), sy = plan.inner_stride(2);
  const int64_t n = plan.row_len();
  ParallelRowSegments(plan.total(), n, [&](int64_t row, int64_t start, int64_t len) {
    const uint8_t* c = pc + plan.RowOffset(0, row) + sc * start;
    const E* a = px + plan.RowOffset(1, row) + sx * start;
    const E* b = py + plan.RowOffset(2, row) + sy * start;
    E* o = po + row * n + start;
    for (int64_t i = 0; i < len; ++i) o[i] = c[i * sc] ? a[i * sx] : b[i * sy];
  });
}

template <typename F>
absl::Status BySize(size_t size, F&& f) {
  switch (size) {
    case 1:
      return f(Tag<uint8_t>{});
    case 2:
      return f(Tag<uint16_t>{});
    case 4:
      return f(Tag<uint32_t>{});
    case 8:
      return f(Tag<uint64_t>{});
    default:
      return absl::UnimplementedError(absl::StrCat("element size ", size));
  }
}

void RegisterWhere(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Where";
  s.min_opset = 9;
  s.max_opset = 21;
  s.min_inputs = s.max_inputs = 3;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    if (ctx.input_dtype(0) != DataType::kBool) {
      return ctx.Error(
          absl::StrCat("input 0 (condition) must be bool; got ", DataTypeName(ctx.input_dtype(0))));
    }
    RETURN_IF_ERROR(CheckInputType(ctx, 1, kAllTypes));
    RETURN_IF_ERROR(CheckSameType(ctx, 1, 2));
    ASSIGN_OR_RETURN(Shape out, BroadcastInputs(ctx, {0, 1, 2}));
    ctx.set_output(0, ctx.input_dtype(1), out);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         RowPlan plan({b.input_shapes[0], b.input_shapes[1], b.input_shapes[2]},
                      b.output_shapes[0]);
         return MakeKernel([plan](KernelContext& ctx) {
           return BySize(DataTypeSize(ctx.input(1)->dtype()), [&](auto tag) {
             WhereFast<typename decltype(tag)::type>(plan, *ctx.input(0), *ctx.input(1),
                                                     *ctx.input(2), *ctx.output(0));
             return absl::OkStatus();
           });
         });
       }});
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return MakeKernel([](KernelContext& ctx) {
           return BySize(DataTypeSize(ctx.input(1)->dtype()), [&](auto tag) {
             WhereReference<typename decltype(tag)::type>(*ctx.input(0), *ctx.input(1),
                                                          *ctx.input(2), *ctx.output(0));
             return absl::OkStatus();
           });
         });
       }});
  s.non_differentiable_inputs = {0};
  registry.Register(std::move(s));
}

}  // namespace

void RegisterElementwiseOps(OpRegistry& registry) {
  RegisterBinary<kNumeric, AddOp, false>(registry, "Add", 7, 21, true);
  RegisterBinary<kNumeric, SubOp, false>(registry, "Sub", 7, 21, true);
  RegisterBinary<kNumeric, MulOp, false>(registry, "Mul", 7, 21, true);
  RegisterBinary<kNumeric, DivOp, false>(registry, "Div", 7, 21, true);
  RegisterPow(registry, 7, 11);
  RegisterPow(registry, 12, 21);

  RegisterVariadic<MaxOp>(registry, "Max", 7, 7, kF16 | kF32 | kF64, false);
  RegisterVariadic<MaxOp>(registry, "Max", 8, 21, kNumeric, false);
  RegisterVariadic<MinOp>(registry, "Min", 7, 7, kF16 | kF32 | kF64, false);
  RegisterVariadic<MinOp>(registry, "Min", 8, 21, kNumeric, false);
  RegisterVariadic<AddOp>(registry, "Sum", 7, 7, kFloatTypes, false);
  RegisterVariadic<AddOp>(registry, "Sum", 8, 21, kFloatTypes, false);
  RegisterVariadic<AddOp>(registry, "Mean", 7, 7, kFloatTypes, true);
  RegisterVariadic<AddOp>(registry, "Mean", 8, 21, kFloatTypes, true);

  RegisterSimpleUnary<kFloatTypes, SqrtOp>(registry, "Sqrt", 7);
  RegisterSimpleUnary<kFloatTypes, ReciprocalOp>(registry, "Reciprocal", 7);
  RegisterSimpleUnary<kFloatTypes | kSignedInts, NegOp>(registry, "Neg", 7);
  RegisterSimpleUnary<kFloatTypes, ExpOp>(registry, "Exp", 7);
  RegisterSimpleUnary<kFloatTypes, LogOp>(registry, "Log", 7);
  RegisterSimpleUnary<kNumeric, AbsOp>(registry, "Abs", 7);
  RegisterSimpleUnary<kFloatTypes, FloorOp>(registry, "Floor", 7);
  RegisterSimpleUnary<kFloatTypes, CeilOp>(registry, "Ceil", 7);
  RegisterSimpleUnary<kNumeric, SignOp>(registry, "Sign", 9);
  // Erf took integer inputs at opsets 9-12; accepting them later is harmless.
  RegisterSimpleUnary<kNumeric, ErfOp>(registry, "Erf", 9);

  RegisterClip(registry, 7, 10);
  RegisterClip(registry, 11, 21);
  RegisterCast(registry);

  RegisterBinary<kNumeric | kBoolBit, EqualOp, true>(registry, "Equal", 7, 21, false);
  RegisterBinary<kNumeric, LessOp, true>(registry, "Less", 7, 21, false);
  RegisterBinary<kNumeric, GreaterOp, true>(registry, "Greater", 7, 21, false);
  RegisterBinary<kNumeric, LessOrEqualOp, true>(registry, "LessOrEqual", 12, 21, false);
  RegisterBinary<kNumeric, GreaterOrEqualOp, true>(registry, "GreaterOrEqual", 12, 21, false);
  RegisterSimpleUnary<kBoolBit, NotOp>(registry, "Not", 7);
  RegisterBinary<kBoolBit, AndOp, true>(registry, "And", 7, 21, false);
  RegisterBinary<kBoolBit, OrOp, true>(registry, "Or", 7, 21, false);
  RegisterWhere(registry);
}

}  // namespace lasgd::ops
