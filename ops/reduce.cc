// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
// ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ArgMax,
// ArgMin.
//
// Axes come from an attribute before opset 13 (ReduceSum) / 18 (the others)
// and from an optional input afterwards, where `noop_with_empty_axes` turns
// an empty axes list into a reduction over no axes (each element alone, so
// ReduceSumSquare still squares), matching the ONNX reference implementation.
//
// "reference" accumulates in double (int64 for integer inputs) over every
// element; "fast" (float32 only) folds the reduced axes into one contiguous
// [outer, reduce, inner] block and vectorises over it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/shape_util.h"

namespace lasgd::ops {
namespace {

using shape_internal::CheckOutputShape;
using shape_internal::ConstantInts;
using shape_internal::ExpectDtype;
using shape_internal::ForEachIndex;
using shape_internal::MakeCandidate;
using shape_internal::NodeError;
using shape_internal::NormalizeAxes;
using shape_internal::NormalizeOneAxis;
using shape_internal::RunFn;
using shape_internal::RuntimeInts;

enum class ReduceKind { kSum, kMean, kMax, kMin, kProd, kSumSquare, kL1, kL2, kLogSum, kLogSumExp };

struct ReduceOpInfo {
  const char* name;
  ReduceKind kind;
  int64_t axes_input_from;  // first opset where axes is an input
  double flops_per_element;
};

constexpr ReduceOpInfo kReduceOps[] = {
    {"ReduceSum", ReduceKind::kSum, 13, 1},
    {"ReduceMean", ReduceKind::kMean, 18, 1},
    {"ReduceMax", ReduceKind::kMax, 18, 1},
    {"ReduceMin", ReduceKind::kMin, 18, 1},
    {"ReduceProd", ReduceKind::kProd, 18, 1},
    {"ReduceSumSquare", ReduceKind::kSumSquare, 18, 2},
    {"ReduceL1", ReduceKind::kL1, 18, 2},
    {"ReduceL2", ReduceKind::kL2, 18, 2},
    {"ReduceLogSum", ReduceKind::kLogSum, 18, 1},
    {"ReduceLogSumExp", ReduceKind::kLogSumExp, 18, 4},
};

// Which dims are reduced. `axes` are the attribute's or the input's values;
// `axes_given` is false when there were none (attribute absent or input
// omitted); `noop` is noop_with_empty_axes (input versions only).
absl::StatusOr<std::vector<bool>> ReducedDims(int64_t rank, const std::vector<int64_t>& axes,
                                              bool noop, int64_t opset) {
  std::vector<bool> reduced(rank, axes.empty() && !noop);
  if (!axes.empty()) {
    ASSIGN_OR_RETURN(auto norm, NormalizeAxes(axes, rank, opset, 11, "axes"));
    for (int64_t a : norm) reduced[a] = true;
  }
  return reduced;
}

Shape ReducedShape(const Shape& in, const std::vector<bool>& reduced, bool keepdims) {
  Shape out;
  for (size_t d = 0; d < in.size(); ++d) {
    if (!reduced[d]) {
      out.push_back(in[d]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

// Axes from the attribute (old opsets) or input 1 (new ones), read through
// `input_value` so the shape function and the kernel share the logic.
absl::StatusOr<std::vector<bool>> ReduceDimsFromNode(
    const graph::Node& node, int64_t opset, int64_t axes_input_from, int64_t rank,
    const std::function<absl::StatusOr<std::vector<int64_t>>()>& input_value) {
  std::vector<int64_t> axes;
  bool noop = false;
  if (opset < axes_input_from) {
    axes = node.GetInts("axes");
  } else {
    noop = node.GetInt("noop_with_empty_axes", 0) != 0;
    if (node.HasInput(1)) {
      ASSIGN_OR_RETURN(axes, input_value());
    }
  }
  return ReducedDims(rank, axes, noop, opset);
}

bool IsReduceDtype(ReduceKind kind, DataType dt) {
  switch (dt) {
    case DataType::kFloat32:
    case DataType::kFloat64:
    case DataType::kInt32:
    case DataType::kInt64:
      return true;
    case DataType::kInt8:
    case DataType::kUint8:
    case DataType::kBool:  // from opset 20, with False < True
      return kind == ReduceKind::kMax || kind == ReduceKind::kMin;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Reference

template <typename Acc>
Acc InitValue(ReduceKind kind, Acc lowest, Acc highest) {
  switch (kind) {
    case ReduceKind::kProd:
      return 1;
    case ReduceKind::kMax:
      return lowest;
    case ReduceKind::kMin:
      return highest;
    default:
      return 0;
  }
}

template <typename Acc>
Acc Combine(ReduceKind kind, Acc acc, Acc x) {
  switch (kind) {
    case ReduceKind::kProd:
      return acc * x;
    case ReduceKind::kSumSquare:
    case ReduceKind::kL2:
      return acc + x * x;
    case ReduceKind::kL1:
      return acc + (x < 0 ? -x : x);
    case ReduceKind::kMax:
      return (x > acc || x != x) && acc == acc ? x : acc;  // NaN wins, as in numpy
    case ReduceKind::kMin:
      return (x < acc || x != x) && acc == acc ? x : acc;
    default:
      return acc + x;
  }
}

// `shift` is the LogSumExp max subtracted before exp.
template <typename Acc>
double Finalize(ReduceKind kind, Acc acc, int64_t count, double shift) {
  switch (kind) {
    case ReduceKind::kMean:
      if (count == 0) return std::numeric_limits<double>::quiet_NaN();
      return static_cast<double>(acc) / static_cast<double>(count);
    case ReduceKind::kL2:
      return std::sqrt(static_cast<double>(acc));
    case ReduceKind::kLogSum:
      return std::log(static_cast<double>(acc));
    case ReduceKind::kLogSumExp:
      return std::log(static_cast<double>(acc)) + shift;
    default:
      return static_cast<double>(acc);
  }
}

template <typename T>
void ReduceReference(const Tensor& in, Tensor& out, ReduceKind kind,
                     const std::vector<bool>& reduced) {
  // Integer inputs accumulate exactly in int64; floats in double.
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  const Shape& shape = in.shape();
  Shape kept(shape.size());
  int64_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    kept[d] = reduced[d] ? 1 : shape[d];
    if (reduced[d]) count *= shape[d];
  }
  std::vector<int64_t> out_strides = ContiguousStrides(kept);
  for (size_t d = 0; d < shape.size(); ++d)
    if (reduced[d]) out_strides[d] = 0;
  const int64_t n_out = out.num_elements();
  const T* x = in.data<T>();
  auto out_index = [&](const std::vector<int64_t>& idx) {
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d) o += idx[d] * out_strides[d];
    return o;
  };
  std::vector<double> shift(n_out, 0.0);
  if (kind == ReduceKind::kLogSumExp) {
    // Shift by the largest finite element so exp cannot overflow; infinities
    // then pass through exp unchanged.
    std::vector<double> mx(n_out, -std::numeric_limits<double>::infinity());
    ForEachIndex(shape, [&](const std::vector<int64_t>& idx, int64_t i) {
      double v = static_cast<double>(x[i]);
      int64_t o = out_index(idx);
      if (std::isfinite(v) && v > mx[o]) mx[o] = v;
    });
    for (int64_t o = 0; o < n_out; ++o) shift[o] = std::isfinite(mx[o]) ? mx[o] : 0.0;
  }
  Acc lowest, highest;
  if constexpr (std::is_floating_point_v<T>) {
    lowest = -std::numeric_limits<double>::infinity();
    highest = std::numeric_limits<double>::infinity();
  } else {
    lowest = std::numeric_limits<T>::lowest();
    highest = std::numeric_limits<T>::max();
  }
  std::vector<Acc> acc(n_out, InitValue<Acc>(kind, lowest, highest));
  ForEachIndex(shape, [&](const std::vector<int64_t>& idx, int64_t i) {
    int64_t o = out_index(idx);
    if (kind == ReduceKind::kLogSumExp) {
      acc[o] += static_cast<Acc>(std::exp(static_cast<double>(x[i]) - shift[o]));
    } else {
      acc[o] = Combine<Acc>(kind, acc[o], static_cast<Acc>(x[i]));
    }
  });
  T* y = out.data<T>();
  for (int64_t o = 0; o < n_out; ++o)
    y[o] = static_cast<T>(Finalize<Acc>(kind, acc[o], count, shift[o]));
}

absl::Status DispatchReference(const Tensor& in, Tensor& out, ReduceKind kind,
                               const std::vector<bool>& reduced) {
  switch (in.dtype()) {
    case DataType::kFloat32:
      ReduceReference<float>(in, out, kind, reduced);
      break;
    case DataType::kFloat64:
      ReduceReference<double>(in, out, kind, reduced);
      break;
    case DataType::kInt32:
      ReduceReference<int32_t>(in, out, kind, reduced);
      break;
    case DataType::kInt64:
      ReduceReference<int64_t>(in, out, kind, reduced);
      break;
    case DataType::kInt8:
      ReduceReference<int8_t>(in, out, kind, reduced);
      break;
    case DataType::kUint8:
      ReduceReference<uint8_t>(in, out, kind, reduced);
      break;
    case DataType::kBool:
      ReduceReference<bool>(in, out, kind, reduced);
      break;
    default:
      return absl::UnimplementedError(absl::StrCat("no reduction kernel for ", in.TypeString()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Fast float32

// The input seen as [lead, outer, reduce, inner] where `lead` and `reduce`
// are reduced: the output is [outer, inner]. Unit dims are ignored. `lead` is
// used only for the R K R pattern (BatchNorm-style N, H, W reductions); other
// foldable patterns have lead = 1. False when the reduced dims do not fold.
struct FoldedReduction {
  int64_t lead = 1, outer = 1, red = 1, inner = 1;
};

bool FoldReduction(const Shape& shape, const std::vector<bool>& reduced, FoldedReduction* f) {
  std::vector<std::pair<bool, int64_t>> runs;  // (reduced, size) after merging
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!runs.empty() && runs.back().first == reduced[d]) {
      runs.back().second *= shape[d];
    } else {
      runs.push_back({reduced[d], shape[d]});
    }
  }
  *f = FoldedReduction();
  size_t i = 0;
  if (runs.size() >= 3 && runs[0].first && !runs[1].first && runs[2].first)
    f->lead = runs[i++].second;
  if (i < runs.size() && !runs[i].first) f->outer = runs[i++].second;
  if (i < runs.size() && runs[i].first) f->red = runs[i++].second;
  if (i < runs.size() && !runs[i].first) f->inner = runs[i++].second;
  return i == runs.size();
}

template <ReduceKind K>
inline double FastCombine(double acc, float x) {
  if constexpr (K == ReduceKind::kProd) return acc * x;
  if constexpr (K == ReduceKind::kSumSquare || K == ReduceKind::kL2) return acc + double(x) * x;
  if constexpr (K == ReduceKind::kL1) return acc + std::fabs(double(x));
  if constexpr (K == ReduceKind::kMax) return (x > acc || x != x) && acc == acc ? x : acc;
  if constexpr (K == ReduceKind::kMin) return (x < acc || x != x) && acc == acc ? x : acc;
  return acc + x;
}

template <ReduceKind K>
constexpr double FastInit() {
  if constexpr (K == ReduceKind::kProd) return 1.0;
  if constexpr (K == ReduceKind::kMax) return -std::numeric_limits<double>::infinity();
  if constexpr (K == ReduceKind::kMin) return std::numeric_limits<double>::infinity();
  return 0.0;
}

template <ReduceKind K>
void ReduceFastF32(const float* x, float* y, const FoldedReduction& f) {
  const int64_t lead = f.lead, outer = f.outer, red = f.red, inner = f.inner;
  const int64_t count = lead * red;
  const bool big = lead * outer * red * inner > (1 << 15);
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (big)
    for (int64_t o = 0; o < outer; ++o) {
      double acc = FastInit<K>();
      for (int64_t a = 0; a < lead; ++a) {
        const float* row = x + (a * outer + o) * red;
        if constexpr (K == ReduceKind::kSum || K == ReduceKind::kMean || K == ReduceKind::kLogSum) {
#pragma omp simd reduction(+ : acc)
          for (int64_t r = 0; r < red; ++r) acc += row[r];
        } else if constexpr (K == ReduceKind::kSumSquare || K == ReduceKind::kL2) {
#pragma omp simd reduction(+ : acc)
          for (int64_t r = 0; r < red; ++r) acc += double(row[r]) * row[r];
        } else {
          for (int64_t r = 0; r < red; ++r) acc = FastCombine<K>(acc, row[r]);
        }
      }
      y[o] = static_cast<float>(Finalize<double>(K, acc, count, 0.0));
    }
    return;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (big)
  for (int64_t w = 0; w < outer * blocks; ++w) {
    const int64_t o = w / blocks, i0 = (w % blocks) * kBlock;
    const int64_t len = std::min(kBlock, inner - i0);
    double acc[kBlock];
    for (int64_t i = 0; i < len; ++i) acc[i] = FastInit<K>();
    for (int64_t a = 0; a < lead; ++a) {
      for (int64_t r = 0; r < red; ++r) {
        const float* row = x + ((a * outer + o) * red + r) * inner + i0;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) acc[i] = FastCombine<K>(acc[i], row[i]);
      }
    }
    float* out = y + o * inner + i0;
    for (int64_t i = 0; i < len; ++i)
      out[i] = static_cast<float>(Finalize<double>(K, acc[i], count, 0.0));
  }
}

void DispatchFast(ReduceKind kind, const float* x, float* y, const FoldedReduction& f) {
  switch (kind) {
    case ReduceKind::kSum:
      return ReduceFastF32<ReduceKind::kSum>(x, y, f);
    case ReduceKind::kMean:
      return ReduceFastF32<ReduceKind::kMean>(x, y, f);
    case ReduceKind::kMax:
      return ReduceFastF32<ReduceKind::kMax>(x, y, f);
    case ReduceKind::kMin:
      return ReduceFastF32<ReduceKind::kMin>(x, y, f);
    case ReduceKind::kProd:
      return ReduceFastF32<ReduceKind::kProd>(x, y, f);
    case ReduceKind::kSumSquare:
      return ReduceFastF32<ReduceKind::kSumSquare>(x, y, f);
    case ReduceKind::kL1:
      return ReduceFastF32<ReduceKind::kL1>(x, y, f);
    case ReduceKind::kL2:
      return ReduceFastF32<ReduceKind::kL2>(x, y, f);
    case ReduceKind::kLogSum:
      return ReduceFastF32<ReduceKind::kLogSum>(x, y, f);
    case ReduceKind::kLogSumExp:
      return;  // declined at build time
  }
}

// ---------------------------------------------------------------------------
// Registration

void RegisterReduce(OpRegistry& registry, const ReduceOpInfo& info) {
  for (bool input_axes : {false, true}) {
    OpSchema s;
    s.op_type = info.name;
    s.min_opset = input_axes ? info.axes_input_from : 7;
    s.max_opset = input_axes ? 21 : info.axes_input_from - 1;
    s.min_inputs = 1;
    s.max_inputs = input_axes ? 2 : 1;
    s.min_outputs = s.max_outputs = 1;
    if (input_axes) s.non_differentiable_inputs = {1};
    const ReduceKind kind = info.kind;
    const int64_t from = info.axes_input_from;
    s.infer = [kind, from](InferenceContext& ctx) -> absl::Status {
      if (!IsReduceDtype(kind, ctx.input_dtype(0))) {
        return ctx.Error(absl::StrCat(
            "input 0 has dtype ", DataTypeName(ctx.input_dtype(0)),
            "; lasgd reduces float32, float64, int32, int64",
            kind == ReduceKind::kMax || kind == ReduceKind::kMin ? ", int8, uint8" : ""));
      }
      if (ctx.opset() >= from && ctx.has_input(1)) {
        RETURN_IF_ERROR(ExpectDtype(ctx, 1, "axes", {DataType::kInt64}));
        if (ctx.input_rank(1) != 1) {
          return ctx.Error(absl::StrCat("input 1 ('axes') must be 1-D, got shape ",
                                        ShapeToString(ctx.input_shape(1))));
        }
      }
      auto reduced = ReduceDimsFromNode(ctx.node(), ctx.opset(), from, ctx.input_rank(0),
                                        [&] { return ConstantInts(ctx, 1, "axes"); });
      if (!reduced.ok()) return NodeError(ctx, reduced.status());
      ctx.set_output(
          0, ctx.input_dtype(0),
          ReducedShape(ctx.input_shape(0), *reduced, ctx.node().GetInt("keepdims", 1) != 0));
      return absl::OkStatus();
    };
    // The reduced dims from the runtime axes, checked against the output.
    auto prepare = [from](KernelContext& ctx, int64_t opset) -> absl::StatusOr<std::vector<bool>> {
      const Tensor& in = *ctx.input(0);
      auto reduced = ReduceDimsFromNode(ctx.node(), opset, from, in.rank(), [&] {
        return RuntimeInts(ctx.node(), ctx.input(1), "axes");
      });
      if (!reduced.ok()) return NodeError(ctx.node(), reduced.status());
      RETURN_IF_ERROR(CheckOutputShape(
          ctx.node(), *ctx.output(0),
          ReducedShape(in.shape(), *reduced, ctx.node().GetInt("keepdims", 1) != 0)));
      return reduced;
    };
    s.kernels.push_back(MakeCandidate(
        "fast", [kind, prepare](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
          if (b.input_dtypes[0] != DataType::kFloat32) {
            return absl::UnimplementedError("the fast reduction handles float32 only");
          }
          if (kind == ReduceKind::kLogSumExp) {
            return absl::UnimplementedError("ReduceLogSumExp has no fast kernel");
          }
          // Decide at build time whether the reduction folds; the runtime
          // axes are the compile-time ones (checked in prepare).
          int64_t opset = b.opset;
          return RunFn([kind, prepare, opset](KernelContext& ctx) -> absl::Status {
            ASSIGN_OR_RETURN(auto reduced, prepare(ctx, opset));
            const Tensor& in = *ctx.input(0);
            FoldedReduction folded;
            if (!FoldReduction(in.shape(), reduced, &folded)) {
              return DispatchReference(in, *ctx.output(0), kind, reduced);
            }
            if (in.num_elements() == 0 && ctx.output(0)->num_elements() > 0) {
              return DispatchReference(in, *ctx.output(0), kind, reduced);
            }
            DispatchFast(kind, in.data<float>(), ctx.output(0)->data<float>(), folded);
            return absl::OkStatus();
          });
        }));
    s.kernels.push_back(MakeCandidate(
        "reference", [kind, prepare](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
          int64_t opset = b.opset;
          return RunFn([kind, prepare, opset](KernelContext& ctx) -> absl::Status {
            ASSIGN_OR_RETURN(auto reduced, prepare(ctx, opset));
            return NodeError(ctx.node(),
                             DispatchReference(*ctx.input(0), *ctx.output(0), kind, reduced));
          });
        }));
    const double per_element = info.flops_per_element;
    s.flops = [per_element](const graph::Node&, const std::vector<Shape>& inputs,
                            const std::vector<Shape>&) {
      return inputs.empty() ? 0.0 : per_element * NumElements(inputs[0]);
    };
    registry.Register(std::move(s));
  }
}

// ---------------------------------------------------------------------------
// ArgMax / ArgMin

template <typename T>
void ArgReduce(const Tensor& in, Tensor& out, int64_t axis, bool is_max, bool last) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= in.dim(d);
  for (int64_t d = axis + 1; d < in.rank(); ++d) inner *= in.dim(d);
  const int64_t n = in.dim(axis);
  const T* x = in.data<T>();
  int64_t* y = out.data<int64_t>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* p = x + o * n * inner + i;
      int64_t best = 0;
      for (int64_t k = 1; k < n; ++k) {
        T v = p[k * inner], b = p[best * inner];
        bool v_nan = v != v, b_nan = b != b;
        // numpy's argmax/argmin return the first NaN; NaN beats numbers.
        bool better;
        if (b_nan) {
          better = last && v_nan;
        } else if (v_nan) {
          better = true;
        } else {
          better = is_max ? (last ? v >= b : v > b) : (last ? v <= b : v < b);
        }
        if (better) best = k;
      }
      y[o * inner + i] = best;
    }
  }
}

void RegisterArg(OpRegistry& registry, const std::string& name, bool is_max) {
  OpSchema s;
  s.op_type = name;
  s.min_opset = 7;
  s.max_opset = 21;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  s.non_differentiable_inputs = {0};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectDtype(ctx, 0, "data",
                                {DataType::kFloat32, DataType::kFloat64, DataType::kInt32,
                                 DataType::kInt64, DataType::kInt8, DataType::kUint8}));
    const int64_t rank = ctx.input_rank(0);
    auto axis = NormalizeOneAxis(ctx.node().GetInt("axis", 0), rank, ctx.opset(), 11, "axis");
    if (!axis.ok()) return NodeError(ctx, axis.status());
    if (ctx.input_shape(0)[*axis] == 0) {
      return ctx.Error(absl::StrCat("cannot take the arg of an empty axis ", *axis, " of ",
                                    ShapeToString(ctx.input_shape(0))));
    }
    std::vector<bool> reduced(rank, false);
    reduced[*axis] = true;
    ctx.set_output(
        0, DataType::kInt64,
        ReducedShape(ctx.input_shape(0), reduced, ctx.node().GetInt("keepdims", 1) != 0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [is_max](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
        // select_last_index exists from opset 12.
        const bool last = b.opset >= 12 && b.node.GetInt("select_last_index", 0) != 0;
        return RunFn([is_max, last](KernelContext& ctx) -> absl::Status {
          const Tensor& in = *ctx.input(0);
          Tensor& out = *ctx.output(0);
          int64_t axis = ctx.node().GetInt("axis", 0);
          if (axis < 0) axis += in.rank();
          switch (in.dtype()) {
            case DataType::kFloat32:
              ArgReduce<float>(in, out, axis, is_max, last);
              break;
            case DataType::kFloat64:
              ArgReduce<double>(in, out, axis, is_max, last);
              break;
            case DataType::kInt32:
              ArgReduce<int32_t>(in, out, axis, is_max, last);
              break;
            case DataType::kInt64:
              ArgReduce<int64_t>(in, out, axis, is_max, last);
              break;
            case DataType::kInt8:
              ArgReduce<int8_t>(in, out, axis, is_max, last);
              break;
            case DataType::kUint8:
              ArgReduce<uint8_t>(in, out, axis, is_max, last);
              break;
            default:
              return absl::UnimplementedError(absl::StrCat(ctx.node().Describe(), ": no ",
                                                           ctx.node().op_type, " kernel for ",
                                                           in.TypeString()));
          }
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

}  // namespace

void RegisterReduceOps(OpRegistry& registry) {
  for (const ReduceOpInfo& info : kReduceOps) RegisterReduce(registry, info);
  RegisterArg(registry, "ArgMax", /*is_max=*/true);
  RegisterArg(registry, "ArgMin", /*is_max=*/false);
}

}  // namespace lasgd::ops
