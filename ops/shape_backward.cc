// Data-movement backward ops of domain com.lasgd (listed in
// ops/backward_ops_ew.h): ReshapeTo, ExpandTo, SliceGrad, PadGrad,
// GatherGrad and ConcatGrad. Their shapes are attributes, so one form serves
// every model opset. Movement kernels copy bytes by element size and work on
// any dtype; the summing ones (PadGrad, GatherGrad) take float dtypes.
#include <cstring>

#include "absl/strings/str_join.h"
#include "ops/backward_ops_ew.h"
#include "ops/elementwise_util.h"
#include "ops/shape_util.h"

namespace lasgd::ops::backward_internal {
namespace {

using ew::Compute;
using ew::DispatchType;
using ew::kFloatTypes;
using ew::MakeKernel;
using shape_internal::ExpectDtype;
using shape_internal::ExpectStorable;
using shape_internal::ForEachIndex;

OpSchema BaseSchema(const std::string& op_type, int min_inputs, int max_inputs, int outputs) {
  OpSchema s;
  s.domain = kLasgdDomain;
  s.op_type = op_type;
  s.min_opset = s.max_opset = 1;
  s.min_inputs = min_inputs;
  s.max_inputs = max_inputs;
  s.min_outputs = s.max_outputs = outputs;
  return s;
}

// The `shape` attribute: present, non-negative dims.
absl::StatusOr<Shape> ShapeAttr(const graph::Node& node) {
  const graph::Attribute* a = node.FindAttribute("shape");
  if (a == nullptr || a->kind != graph::Attribute::Kind::kInts) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": needs an ints attribute 'shape'"));
  }
  for (int64_t d : a->ints) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": attribute shape [",
                                                     absl::StrJoin(a->ints, ","),
                                                     "] has a negative dim"));
    }
  }
  return Shape(a->ints);
}

absl::Status CheckFloat(const InferenceContext& ctx, size_t i) {
  return ExpectDtype(
      ctx, i, i == 0 ? "dY" : "input",
      {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16});
}

// Copies dims[] elements from src to dst, both strided (in elements); rows
// of the last dim are spread over threads when `parallel`.
void StridedToStrided(char* dst, const std::vector<int64_t>& dst_strides, const char* src,
                      const std::vector<int64_t>& src_strides, const Shape& dims, size_t es,
                      bool parallel) {
  const int64_t total = NumElements(dims);
  if (total == 0) return;
  if (dims.empty()) {
    std::memcpy(dst, src, es);
    return;
  }
  const int64_t r = static_cast<int64_t>(dims.size());
  const int64_t n = dims[r - 1], rows = total / n;
  const int64_t ds = dst_strides[r - 1], ss = src_strides[r - 1];
  const int64_t esi = static_cast<int64_t>(es);
#pragma omp parallel for schedule(static) if (parallel && rows > 1 && total * esi > (1 << 16))
  for (int64_t row = 0; row < rows; ++row) {
    int64_t doff = 0, soff = 0, rem = row;
    for (int64_t d = r - 2; d >= 0; --d) {
      const int64_t i = rem % dims[d];
      rem /= dims[d];
      doff += i * dst_strides[d];
      soff += i * src_strides[d];
    }
    char* drow = dst + doff * esi;
    const char* srow = src + soff * esi;
    if (ds == 1 && ss == 1) {
      std::memcpy(drow, srow, n * es);
    } else {
      for (int64_t k = 0; k < n; ++k) std::memcpy(drow + k * ds * esi, srow + k * ss * esi, es);
    }
  }
}

// ---------------------------------------------------------------------------
// ReshapeTo(X) -> X viewed with attribute `shape`.

void RegisterReshapeTo(OpRegistry& registry) {
  OpSchema s = BaseSchema("ReshapeTo", 1, 1, 1);
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    ASSIGN_OR_RETURN(Shape shape, ShapeAttr(ctx.node()));
    if (NumElements(shape) != NumElements(ctx.input_shape(0))) {
      return ctx.Error(absl::StrCat("cannot reshape ", ShapeToString(ctx.input_shape(0)), " (",
                                    NumElements(ctx.input_shape(0)), " elements) to ",
                                    ShapeToString(shape), " (", NumElements(shape), " elements)"));
    }
    ctx.set_output(0, ctx.input_dtype(0), shape);
    return absl::OkStatus();
  };
  // A copy is as fast as it gets, so the reference kernel is the only one.
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return MakeKernel([](KernelContext& ctx) {
           shape_internal::CopyWhole(*ctx.input(0), *ctx.output(0));
           return absl::OkStatus();
         });
       }});
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// ExpandTo(X) -> X broadcast to attribute `shape`.

void RegisterExpandTo(OpRegistry& registry) {
  OpSchema s = BaseSchema("ExpandTo", 1, 1, 1);
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    ASSIGN_OR_RETURN(Shape shape, ShapeAttr(ctx.node()));
    auto b = BroadcastShapes(ctx.input_shape(0), shape);
    if (!b.ok() || *b != shape) {
      return ctx.Error(absl::StrCat("input ", ShapeToString(ctx.input_shape(0)),
                                    " does not broadcast to ", ShapeToString(shape)));
    }
    ctx.set_output(0, ctx.input_dtype(0), shape);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         const std::vector<int64_t> strides =
             ew::BroadcastStrides(b.input_shapes[0], b.output_shapes[0]);
         const Shape out = b.output_shapes[0];
         return MakeKernel([strides, out](KernelContext& ctx) {
           const Tensor& x = *ctx.input(0);
           shape_internal::StridedCopy(ctx.output(0)->raw_data(), x.raw_data(), out, strides, 0,
                                       DataTypeSize(x.dtype()));
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         const Shape in = b.input_shapes[0], out = b.output_shapes[0];
         return MakeKernel([in, out](KernelContext& ctx) {
           const Tensor& x = *ctx.input(0);
           const size_t es = DataTypeSize(x.dtype());
           const int64_t offset = static_cast<int64_t>(out.size() - in.size());
           ForEachIndex(out, [&](const std::vector<int64_t>& idx, int64_t linear) {
             int64_t src = 0;
             for (size_t d = 0; d < in.size(); ++d) {
               src = src * in[d] + (in[d] == 1 ? 0 : idx[d + offset]);
             }
             shape_internal::CopyElement(ctx.output(0)->raw_data(), linear, x.raw_data(), src, es);
           });
           return absl::OkStatus();
         });
       }});
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// SliceGrad(dY): zeros of `shape`, dY[k] written at starts + k * steps.

struct SliceGradParams {
  Shape shape;
  std::vector<int64_t> starts, steps;
};

absl::StatusOr<SliceGradParams> GetSliceGradParams(const graph::Node& node, const Shape& dy) {
  SliceGradParams p;
  ASSIGN_OR_RETURN(p.shape, ShapeAttr(node));
  p.starts = node.GetInts("starts");
  p.steps = node.GetInts("steps", std::vector<int64_t>(p.shape.size(), 1));
  if (p.shape.size() != dy.size() || p.starts.size() != dy.size() || p.steps.size() != dy.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": shape, starts and steps need one entry per dim of dY ",
                     ShapeToString(dy), "; got ", p.shape.size(), ", ", p.starts.size(), " and ",
                     p.steps.size()));
  }
  for (size_t d = 0; d < dy.size(); ++d) {
    if (p.steps[d] == 0) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": steps[", d, "] is 0"));
    }
  }
  return p;
}

// The box of dY whose elements land inside the output: per dim [lo, hi).
void SliceGradBox(const SliceGradParams& p, const Shape& dy, std::vector<int64_t>* lo,
                  std::vector<int64_t>* hi) {
  lo->resize(dy.size());
  hi->resize(dy.size());
  for (size_t d = 0; d < dy.size(); ++d) {
    // j = start + k * step must satisfy 0 <= j < shape[d].
    int64_t a = 0, b = dy[d];
    while (a < b &&
           (p.starts[d] + a * p.steps[d] < 0 || p.starts[d] + a * p.steps[d] >= p.shape[d]))
      ++a;
    while (b > a && (p.starts[d] + (b - 1) * p.steps[d] < 0 ||
                     p.starts[d] + (b - 1) * p.steps[d] >= p.shape[d]))
      --b;
    (*lo)[d] = a;
    (*hi)[d] = b;
  }
}

void RegisterSliceGrad(OpRegistry& registry) {
  OpSchema s = BaseSchema("SliceGrad", 1, 1, 1);
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    ASSIGN_OR_RETURN(SliceGradParams p, GetSliceGradParams(ctx.node(), ctx.input_shape(0)));
    ctx.set_output(0, ctx.input_dtype(0), p.shape);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(SliceGradParams p, GetSliceGradParams(b.node, b.input_shapes[0]));
         const Shape dy = b.input_shapes[0];
         std::vector<int64_t> lo, hi;
         SliceGradBox(p, dy, &lo, &hi);
         // The box as a strided copy: source offsets in dY, destination in dX.
         const std::vector<int64_t> src_c = ContiguousStrides(dy),
                                    dst_c = ContiguousStrides(p.shape);
         Shape dims(dy.size());
         std::vector<int64_t> dst_strides(dy.size());
         int64_t src_off = 0, dst_off = 0;
         for (size_t d = 0; d < dy.size(); ++d) {
           dims[d] = hi[d] - lo[d];
           dst_strides[d] = p.steps[d] * dst_c[d];
           src_off += lo[d] * src_c[d];
           dst_off += (p.starts[d] + lo[d] * p.steps[d]) * dst_c[d];
         }
         return MakeKernel([=](KernelContext& ctx) {
           Tensor& out = *ctx.output(0);
           const size_t es = DataTypeSize(out.dtype());
           std::memset(out.raw_data(), 0, out.nbytes());
           if (NumElements(dims) == 0) return absl::OkStatus();
           StridedToStrided(out.data<char>() + dst_off * static_cast<int64_t>(es), dst_strides,
                            ctx.input(0)->data<char>() + src_off * static_cast<int64_t>(es), src_c,
                            dims, es, true);
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(SliceGradParams p, GetSliceGradParams(b.node, b.input_shapes[0]));
         const Shape dy = b.input_shapes[0];
         return MakeKernel([p, dy](KernelContext& ctx) {
           Tensor& out = *ctx.output(0);
           const size_t es = DataTypeSize(out.dtype());
           std::memset(out.raw_data(), 0, out.nbytes());
           ForEachIndex(dy, [&](const std::vector<int64_t>& k, int64_t linear) {
             int64_t dst = 0;
             for (size_t d = 0; d < dy.size(); ++d) {
               const int64_t j = p.starts[d] + k[d] * p.steps[d];
               if (j < 0 || j >= p.shape[d]) return;
               dst = dst * p.shape[d] + j;
             }
             shape_internal::CopyElement(out.raw_data(), dst, ctx.input(0)->raw_data(), linear, es);
           });
           return absl::OkStatus();
         });
       }});
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// PadGrad(dY): the adjoint of Pad in any mode.

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

struct PadGradParams {
  Shape shape;
  std::vector<int64_t> begin, end;
  PadMode mode = PadMode::kConstant;
};

absl::StatusOr<PadGradParams> GetPadGradParams(const graph::Node& node, const Shape& dy) {
  PadGradParams p;
  ASSIGN_OR_RETURN(p.shape, ShapeAttr(node));
  const std::vector<int64_t> pads = node.GetInts("pads");
  const size_t rank = p.shape.size();
  if (dy.size() != rank || pads.size() != 2 * rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": dY ", ShapeToString(dy), " needs rank ", rank,
                     " and pads 2 * rank entries; got pads [", absl::StrJoin(pads, ","), "]"));
  }
  const std::string mode = node.GetString("mode", "constant");
  if (mode == "constant") {
    p.mode = PadMode::kConstant;
  } else if (mode == "reflect") {
    p.mode = PadMode::kReflect;
  } else if (mode == "edge") {
    p.mode = PadMode::kEdge;
  } else if (mode == "wrap") {
    p.mode = PadMode::kWrap;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        node.Describe(), ": mode '", mode, "' is not one of constant, reflect, edge, wrap"));
  }
  for (size_t d = 0; d < rank; ++d) {
    p.begin.push_back(pads[d]);
    p.end.push_back(pads[rank + d]);
    const int64_t kept =
        p.shape[d] + std::min<int64_t>(pads[d], 0) + std::min<int64_t>(pads[rank + d], 0);
    if (kept < 0 || p.shape[d] + pads[d] + pads[rank + d] != dy[d] ||
        (p.mode != PadMode::kConstant && kept == 0 && dy[d] > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": pads (", pads[d], ", ",
                                                     pads[rank + d], ") on dim ", d, " of size ",
                                                     p.shape[d], " do not give dY's size ", dy[d]));
    }
  }
  return p;
}

// For each padded index along one dim, the input index it copied or -1 (the
// same rule as Pad in ops/shape_movement.cc: negative pads crop first).
std::vector<int64_t> PadIndexMap(int64_t in_dim, int64_t begin, int64_t end, PadMode mode) {
  const int64_t crop = std::max<int64_t>(-begin, 0);
  const int64_t kept = in_dim + std::min<int64_t>(begin, 0) + std::min<int64_t>(end, 0);
  const int64_t lead = std::max<int64_t>(begin, 0);
  const int64_t out_dim = in_dim + begin + end;
  std::vector<int64_t> map(std::max<int64_t>(out_dim, 0));
  for (int64_t o = 0; o < out_dim; ++o) {
    int64_t i = o - lead;
    if (i < 0 || i >= kept) {
      switch (mode) {
        case PadMode::kConstant:
          map[o] = -1;
          continue;
        case PadMode::kEdge:
          i = std::clamp<int64_t>(i, 0, kept - 1);
          break;
        case PadMode::kReflect:
          if (kept == 1) {
            i = 0;
          } else {
            const int64_t period = 2 * (kept - 1);
            i = ((i % period) + period) % period;
            if (i >= kept) i = period - i;
          }
          break;
        case PadMode::kWrap:
          i = ((i % kept) + kept) % kept;
          break;
      }
    }
    map[o] = crop + i;
  }
  return map;
}

void RegisterPadGrad(OpRegistry& registry) {
  OpSchema s = BaseSchema("PadGrad", 1, 1, 1);
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckFloat(ctx, 0));
    ASSIGN_OR_RETURN(PadGradParams p, GetPadGradParams(ctx.node(), ctx.input_shape(0)));
    ctx.set_output(0, ctx.input_dtype(0), p.shape);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(PadGradParams p, GetPadGradParams(b.node, b.input_shapes[0]));
         std::vector<std::vector<int64_t>> maps;
         for (size_t d = 0; d < p.shape.size(); ++d) {
           maps.push_back(PadIndexMap(p.shape[d], p.begin[d], p.end[d], p.mode));
         }
         const Shape dy = b.input_shapes[0];
         return MakeKernel([p, maps, dy](KernelContext& ctx) {
           return DispatchType<kFloatTypes>(ctx.input(0)->dtype(), [&](auto tag) -> absl::Status {
             using T = typename decltype(tag)::type;
             using C = typename Compute<T>::type;
             // Accumulate in double so that many padded copies of one edge
             // element sum exactly, then store once.
             std::vector<double> acc(NumElements(p.shape), 0.0);
             const T* g = ctx.input(0)->data<T>();
             ForEachIndex(dy, [&](const std::vector<int64_t>& o, int64_t linear) {
               int64_t dst = 0;
               for (size_t d = 0; d < dy.size(); ++d) {
                 const int64_t i = maps[d][o[d]];
                 if (i < 0) return;
                 dst = dst * p.shape[d] + i;
               }
               acc[dst] += static_cast<double>(Compute<T>::Load(g[linear]));
             });
             T* out = ctx.output(0)->data<T>();
             for (size_t i = 0; i < acc.size(); ++i)
               out[i] = Compute<T>::Store(static_cast<C>(acc[i]));
             return absl::OkStatus();
           });
         });
       }});
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// GatherGrad(dY, indices): zeros of `shape`, dY slices added at the indices.

struct GatherGradGeometry {
  Shape shape;
  int64_t axis = 0, outer = 1, dim = 1, inner = 1, count = 1;  // count: indices
};

absl::StatusOr<GatherGradGeometry> GetGatherGradGeometry(const graph::Node& node, const Shape& dy,
                                                         const Shape& indices) {
  GatherGradGeometry g;
  ASSIGN_OR_RETURN(g.shape, ShapeAttr(node));
  const int64_t rank = static_cast<int64_t>(g.shape.size());
  auto axis = NormalizeAxis(node.GetInt("axis", 0), rank);
  if (!axis.ok()) return WithContext(axis.status(), node.Describe());
  g.axis = *axis;
  Shape expected(g.shape.begin(), g.shape.begin() + g.axis);
  expected.insert(expected.end(), indices.begin(), indices.end());
  expected.insert(expected.end(), g.shape.begin() + g.axis + 1, g.shape.end());
  if (expected != dy) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": dY has shape ", ShapeToString(dy), "; gathering indices ",
                     ShapeToString(indices), " on axis ", g.axis, " of ", ShapeToString(g.shape),
                     " gives ", ShapeToString(expected)));
  }
  for (int64_t d = 0; d < g.axis; ++d) g.outer *= g.shape[d];
  g.dim = g.shape[g.axis];
  for (int64_t d = g.axis + 1; d < rank; ++d) g.inner *= g.shape[d];
  g.count = NumElements(indices);
  return g;
}

absl::StatusOr<std::vector<int64_t>> GatherIndices(const KernelContext& ctx, int64_t dim) {
  auto idx = ctx.input(1)->ToInt64Vector();
  if (!idx.ok()) return idx.status();
  for (int64_t& i : *idx) {
    if (i < -dim || i >= dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx.node().Describe(), ": index ", i, " is out of range [", -dim, ", ", dim - 1, "]"));
    }
    if (i < 0) i += dim;
  }
  return idx;
}

void RegisterGatherGrad(OpRegistry& registry) {
  OpSchema s = BaseSchema("GatherGrad", 2, 2, 1);
  s.non_differentiable_inputs = {1};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckFloat(ctx, 0));
    RETURN_IF_ERROR(ExpectDtype(ctx, 1, "indices", {DataType::kInt32, DataType::kInt64}));
    ASSIGN_OR_RETURN(GatherGradGeometry g,
                     GetGatherGradGeometry(ctx.node(), ctx.input_shape(0), ctx.input_shape(1)));
    ctx.set_output(0, ctx.input_dtype(0), g.shape);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"fast", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (b.input_dtypes[0] != DataType::kFloat32) {
           return absl::UnimplementedError("the fast kernel handles float32 only");
         }
         ASSIGN_OR_RETURN(GatherGradGeometry g,
                          GetGatherGradGeometry(b.node, b.input_shapes[0], b.input_shapes[1]));
         return MakeKernel([g](KernelContext& ctx) -> absl::Status {
           ASSIGN_OR_RETURN(std::vector<int64_t> idx, GatherIndices(ctx, g.dim));
           const float* dy = ctx.input(0)->data<float>();
           float* dx = ctx.output(0)->data<float>();
           std::memset(dx, 0, ctx.output(0)->nbytes());
           // Each (outer, inner column block) owns disjoint output memory, so
           // threads never add into the same element.
           constexpr int64_t kBlock = 1024;
           const int64_t blocks = (g.inner + kBlock - 1) / kBlock;
           const int64_t tasks = g.outer * blocks;
#pragma omp parallel for schedule(static) if (tasks > 1 && g.outer * g.count * g.inner > 32768)
           for (int64_t t = 0; t < tasks; ++t) {
             const int64_t o = t / blocks, c0 = (t % blocks) * kBlock;
             const int64_t w = std::min(kBlock, g.inner - c0);
             for (int64_t p = 0; p < g.count; ++p) {
               const float* src = dy + (o * g.count + p) * g.inner + c0;
               float* dst = dx + (o * g.dim + idx[p]) * g.inner + c0;
               for (int64_t c = 0; c < w; ++c) dst[c] += src[c];
             }
           }
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(GatherGradGeometry g,
                          GetGatherGradGeometry(b.node, b.input_shapes[0], b.input_shapes[1]));
         return MakeKernel([g](KernelContext& ctx) -> absl::Status {
           ASSIGN_OR_RETURN(std::vector<int64_t> idx, GatherIndices(ctx, g.dim));
           return DispatchType<kFloatTypes>(ctx.input(0)->dtype(), [&](auto tag) -> absl::Status {
             using T = typename decltype(tag)::type;
             using C = typename Compute<T>::type;
             std::vector<double> acc(NumElements(g.shape), 0.0);
             const T* dy = ctx.input(0)->data<T>();
             for (int64_t o = 0; o < g.outer; ++o) {
               for (int64_t p = 0; p < g.count; ++p) {
                 for (int64_t c = 0; c < g.inner; ++c) {
                   acc[(o * g.dim + idx[p]) * g.inner + c] +=
                       static_cast<double>(Compute<T>::Load(dy[(o * g.count + p) * g.inner + c]));
                 }
               }
             }
             T* dx = ctx.output(0)->data<T>();
             for (size_t i = 0; i < acc.size(); ++i)
               dx[i] = Compute<T>::Store(static_cast<C>(acc[i]));
             return absl::OkStatus();
           });
         });
       }});
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// ConcatGrad(dY) -> the pieces of dY along `axis` with sizes `sizes`.

absl::StatusOr<std::vector<Shape>> ConcatGradShapes(const graph::Node& node, const Shape& dy,
                                                    int64_t* axis_out) {
  const int64_t rank = static_cast<int64_t>(dy.size());
  auto axis = NormalizeAxis(node.GetInt("axis", 0), rank);
  if (!axis.ok()) return WithContext(axis.status(), node.Describe());
  const std::vector<int64_t> sizes = node.GetInts("sizes");
  int64_t sum = 0;
  for (int64_t v : sizes) {
    if (v < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          node.Describe(), ": sizes [", absl::StrJoin(sizes, ","), "] has a negative entry"));
    }
    sum += v;
  }
  if (sizes.size() != node.outputs.size() || sum != dy[*axis]) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": sizes [", absl::StrJoin(sizes, ","),
                     "] must have one entry per output (", node.outputs.size(), ") and sum to dim ",
                     *axis, " of dY ", ShapeToString(dy)));
  }
  std::vector<Shape> shapes;
  for (int64_t v : sizes) {
    Shape s = dy;
    s[*axis] = v;
    shapes.push_back(s);
  }
  *axis_out = *axis;
  return shapes;
}

void RegisterConcatGrad(OpRegistry& registry) {
  OpSchema s = BaseSchema("ConcatGrad", 1, 1, 1);
  s.max_outputs = INT_MAX;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    int64_t axis;
    ASSIGN_OR_RETURN(std::vector<Shape> shapes,
                     ConcatGradShapes(ctx.node(), ctx.input_shape(0), &axis));
    for (size_t i = 0; i < shapes.size(); ++i) ctx.set_output(i, ctx.input_dtype(0), shapes[i]);
    return absl::OkStatus();
  };
  auto build = [](bool fast) {
    return [fast](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
      int64_t axis;
      ASSIGN_OR_RETURN(std::vector<Shape> shapes,
                       ConcatGradShapes(b.node, b.input_shapes[0], &axis));
      const Shape dy = b.input_shapes[0];
      return MakeKernel([fast, shapes, axis, dy](KernelContext& ctx) {
        const Tensor& in = *ctx.input(0);
        const size_t es = DataTypeSize(in.dtype());
        const std::vector<int64_t> strides = ContiguousStrides(dy);
        int64_t offset = 0;
        for (size_t i = 0; i < shapes.size(); ++i) {
          Tensor* out = ctx.output(i);
          const int64_t start = offset;
          offset += shapes[i][axis];
          if (out == nullptr) continue;
          if (fast) {
            shape_internal::StridedCopy(out->raw_data(), in.raw_data(), shapes[i], strides,
                                        start * strides[axis], es);
          } else {
            ForEachIndex(shapes[i], [&](const std::vector<int64_t>& idx, int64_t linear) {
              int64_t src = 0;
              for (size_t d = 0; d < dy.size(); ++d) {
                src += (idx[d] + (static_cast<int64_t>(d) == axis ? start : 0)) * strides[d];
              }
              shape_internal::CopyElement(out->raw_data(), linear, in.raw_data(), src, es);
            });
          }
        }
        return absl::OkStatus();
      });
    };
  };
  s.kernels.push_back({"fast", build(true)});
  s.kernels.push_back({"reference", build(false)});
  registry.Register(std::move(s));
}

}  // namespace

void RegisterShapeBackwardOps(OpRegistry& registry) {
  RegisterReshapeTo(registry);
  RegisterExpandTo(registry);
  RegisterSliceGrad(registry);
  RegisterPadGrad(registry);
  RegisterGatherGrad(registry);
  RegisterConcatGrad(registry);
}

}  // namespace lasgd::ops::backward_internal
