// Shape-manipulation ops: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size,
// ConstantOfShape, Range, Concat, Split and Gather. The strided movement ops
// (Transpose, Slice, Expand, Tile, Pad) live in ops/shape_movement.cc.
//
// Several output shapes depend on an input's value (Reshape's shape, Split's
// split, ...). Shape functions read it through ctx.input_value() and fail
// clearly when it is not a compile-time constant; kernels re-read the runtime
// value and check it still gives the allocated shape.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/shape_util.h"

namespace lasgd::ops {
namespace {

using shape_internal::CheckOutputShape;
using shape_internal::ConstantInts;
using shape_internal::CopyElement;
using shape_internal::CopyWhole;
using shape_internal::ExpectDtype;
using shape_internal::ExpectStorable;
using shape_internal::ForEachIndex;
using shape_internal::MakeCandidate;
using shape_internal::NodeError;
using shape_internal::NormalizeAxes;
using shape_internal::NormalizeOneAxis;
using shape_internal::RunFn;
using shape_internal::RuntimeInts;

OpSchema Schema(const std::string& op, int64_t min_opset, int64_t max_opset, int min_in, int max_in,
                int min_out = 1, int max_out = 1) {
  OpSchema s;
  s.op_type = op;
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.min_inputs = min_in;
  s.max_inputs = max_in;
  s.min_outputs = min_out;
  s.max_outputs = max_out;
  return s;
}

absl::Status Expect1D(const InferenceContext& ctx, size_t i, const std::string& name) {
  if (ctx.input_rank(i) == 1) return absl::OkStatus();
  return ctx.Error(absl::StrCat("input ", i, " ('", name, "') must be 1-D, got shape ",
                                ShapeToString(ctx.input_shape(i))));
}

// A kernel that copies input 0 to output 0 unchanged (Reshape, Flatten,
// Squeeze, Unsqueeze: the bytes do not move), after an optional check.
KernelCandidate CopyCandidate(std::function<absl::Status(KernelContext&, int64_t)> check = {}) {
  return MakeCandidate("reference", [check](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
    int64_t opset = b.opset;
    return RunFn([check, opset](KernelContext& ctx) -> absl::Status {
      if (check) RETURN_IF_ERROR(check(ctx, opset));
      CopyWhole(*ctx.input(0), *ctx.output(0));
      return absl::OkStatus();
    });
  });
}

// ---------------------------------------------------------------------------
// Reshape

absl::StatusOr<Shape> ReshapeShape(const Shape& in, const std::vector<int64_t>& target,
                                   bool allow_zero) {
  Shape out(target.size());
  int64_t infer_at = -1, known = 1;
  bool has_zero = false;
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t d = target[i];
    if (d == -1) {
      if (infer_at >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("shape [", absl::StrJoin(target, ","), "] has more than one -1"));
      }
      infer_at = i;
      continue;
    }
    if (d < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape [", absl::StrJoin(target, ","), "] has invalid entry ", d));
    }
    if (d == 0 && !allow_zero) {
      if (i >= in.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "shape [", absl::StrJoin(target, ","), "] has 0 (copy input dim) at position ", i,
            " but the input ", ShapeToString(in), " has rank ", in.size()));
      }
      d = in[i];
    }
    has_zero |= (d == 0 && allow_zero);
    out[i] = d;
    known *= d;
  }
  const int64_t total = NumElements(in);
  if (infer_at >= 0) {
    if (has_zero) {
      return absl::InvalidArgumentError(absl::StrCat("shape [", absl::StrJoin(target, ","),
                                                     "] has both -1 and 0 with allowzero=1"));
    }
    if (known == 0 || total % known != 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot reshape ", ShapeToString(in), " (",
                                                     total, " elements) to [",
                                                     absl::StrJoin(target, ","), "]"));
    }
    out[infer_at] = total / known;
  } else if (known != total) {
    return absl::InvalidArgumentError(absl::StrCat("cannot reshape ", ShapeToString(in), " (",
                                                   total, " elements) to ", ShapeToString(out),
                                                   " (", known, " elements)"));
  }
  return out;
}

bool ReshapeAllowZero(const graph::Node& node, int64_t opset) {
  return opset >= 14 && node.GetInt("allowzero", 0) != 0;
}

void RegisterReshape(OpRegistry& registry) {
  OpSchema s = Schema("Reshape", 7, 21, 2, 2);
  s.non_differentiable_inputs = {1};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    RETURN_IF_ERROR(ExpectDtype(ctx, 1, "shape", {DataType::kInt64}));
    RETURN_IF_ERROR(Expect1D(ctx, 1, "shape"));
    ASSIGN_OR_RETURN(auto target, ConstantInts(ctx, 1, "shape"));
    auto out = ReshapeShape(ctx.input_shape(0), target, ReshapeAllowZero(ctx.node(), ctx.opset()));
    if (!out.ok()) return NodeError(ctx, out.status());
    ctx.set_output(0, ctx.input_dtype(0), *out);
    return absl::OkStatus();
  };
  s.kernels.push_back(CopyCandidate([](KernelContext& ctx, int64_t opset) -> absl::Status {
    ASSIGN_OR_RETURN(auto target, RuntimeInts(ctx.node(), ctx.input(1), "shape"));
    auto out = ReshapeShape(ctx.input(0)->shape(), target, ReshapeAllowZero(ctx.node(), opset));
    if (!out.ok()) return NodeError(ctx.node(), out.status());
    return CheckOutputShape(ctx.node(), *ctx.output(0), *out);
  }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Flatten

void RegisterFlatten(OpRegistry& registry) {
  OpSchema s = Schema("Flatten", 7, 21, 1, 1);
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    const int64_t rank = ctx.input_rank(0);
    int64_t axis = ctx.node().GetInt("axis", 1);
    // axis may equal rank (everything goes to the outer dim).
    if (axis < 0 && ctx.opset() < 11) {
      return ctx.Error(
          absl::StrCat("axis ", axis, " is negative; negative axis needs opset >= 11"));
    }
    if (axis < -rank || axis > rank) {
      return ctx.Error(absl::StrCat("axis ", axis, " is out of range [", -rank, ", ", rank,
                                    "] for an input of rank ", rank));
    }
    if (axis < 0) axis += rank;
    const Shape& in = ctx.input_shape(0);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : inner) *= in[d];
    ctx.set_output(0, ctx.input_dtype(0), {outer, inner});
    return absl::OkStatus();
  };
  s.kernels.push_back(CopyCandidate());
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Squeeze / Unsqueeze

// The axes of Squeeze/Unsqueeze: the attribute before opset 13, the input
// from 13. `present` says whether any were given.
absl::StatusOr<std::vector<int64_t>> SqueezeAxes(
    const graph::Node& node, int64_t opset, bool* present,
    const std::function<absl::StatusOr<std::vector<int64_t>>()>& input_value) {
  if (opset < 13) {
    const graph::Attribute* a = node.FindAttribute("axes");
    *present = a != nullptr;
    return a ? a->ints : std::vector<int64_t>{};
  }
  *present = node.HasInput(1);
  if (!*present) return std::vector<int64_t>{};
  return input_value();
}

absl::StatusOr<Shape> SqueezeShape(const Shape& in, const std::vector<int64_t>& axes, bool present,
                                   int64_t opset) {
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<bool> drop(rank, false);
  if (!present) {
    for (int64_t d = 0; d < rank; ++d) drop[d] = in[d] == 1;
  } else {
    ASSIGN_OR_RETURN(auto norm, NormalizeAxes(axes, rank, opset, 11, "axes"));
    for (int64_t a : norm) {
      if (in[a] != 1) {
        return absl::InvalidArgumentError(absl::StrCat("cannot squeeze axis ", a, " of ",
                                                       ShapeToString(in), ": its size is ", in[a],
                                                       ", not 1"));
      }
      drop[a] = true;
    }
  }
  Shape out;
  for (int64_t d = 0; d < rank; ++d)
    if (!drop[d]) out.push_back(in[d]);
  return out;
}

absl::StatusOr<Shape> UnsqueezeShape(const Shape& in, const std::vector<int64_t>& axes,
                                     int64_t opset) {
  const int64_t out_rank = static_cast<int64_t>(in.size() + axes.size());
  ASSIGN_OR_RETURN(auto norm, NormalizeAxes(axes, out_rank, opset, 11, "axes"));
  std::vector<bool> inserted(out_rank, false);
  for (int64_t a : norm) inserted[a] = true;
  Shape out;
  size_t next = 0;
  for (int64_t d = 0; d < out_rank; ++d) out.push_back(inserted[d] ? 1 : in[next++]);
  return out;
}

void RegisterSqueezeFamily(OpRegistry& registry, bool squeeze) {
  const std::string op = squeeze ? "Squeeze" : "Unsqueeze";
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{7, 12}, {13, 21}}) {
    OpSchema s = Schema(op, lo, hi, 1, lo < 13 ? 1 : 2);
    if (lo >= 13) {
      s.non_differentiable_inputs = {1};
      if (!squeeze) s.min_inputs = 2;
    }
    s.infer = [squeeze](InferenceContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(ExpectStorable(ctx, 0));
      if (ctx.opset() >= 13 && ctx.has_input(1)) {
        RETURN_IF_ERROR(ExpectDtype(ctx, 1, "axes", {DataType::kInt64}));
      }
      bool present = false;
      ASSIGN_OR_RETURN(auto axes, SqueezeAxes(ctx.node(), ctx.opset(), &present,
                                              [&] { return ConstantInts(ctx, 1, "axes"); }));
      if (!squeeze && !present) return ctx.Error("Unsqueeze needs axes");
      auto out = squeeze ? SqueezeShape(ctx.input_shape(0), axes, present, ctx.opset())
                         : UnsqueezeShape(ctx.input_shape(0), axes, ctx.opset());
      if (!out.ok()) return NodeError(ctx, out.status());
      ctx.set_output(0, ctx.input_dtype(0), *out);
      return absl::OkStatus();
    };
    s.kernels.push_back(CopyCandidate([squeeze](KernelContext& ctx, int64_t opset) -> absl::Status {
      bool present = false;
      ASSIGN_OR_RETURN(auto axes, SqueezeAxes(ctx.node(), opset, &present, [&] {
                         return RuntimeInts(ctx.node(), ctx.input(1), "axes");
                       }));
      auto out = squeeze ? SqueezeShape(ctx.input(0)->shape(), axes, present, opset)
                         : UnsqueezeShape(ctx.input(0)->shape(), axes, opset);
      if (!out.ok()) return NodeError(ctx.node(), out.status());
      return CheckOutputShape(ctx.node(), *ctx.output(0), *out);
    }));
    registry.Register(std::move(s));
  }
}

// ---------------------------------------------------------------------------
// Shape / Size

// [start, end) of the dims Shape reports (opset 15 start/end, clamped).
std::pair<int64_t, int64_t> ShapeRange(const graph::Node& node, int64_t opset, int64_t rank) {
  if (opset < 15) return {0, rank};
  int64_t start = node.GetInt("start", 0), end = node.GetInt("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  return {start, std::max(start, end)};
}

void RegisterShapeAndSize(OpRegistry& registry) {
  OpSchema shape = Schema("Shape", 7, 21, 1, 1);
  shape.non_differentiable_inputs = {0};
  shape.infer = [](InferenceContext& ctx) -> absl::Status {
    auto [start, end] = ShapeRange(ctx.node(), ctx.opset(), ctx.input_rank(0));
    ctx.set_output(0, DataType::kInt64, {end - start});
    return absl::OkStatus();
  };
  shape.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
        int64_t opset = b.opset;
        return RunFn([opset](KernelContext& ctx) -> absl::Status {
          const Shape& in = ctx.input(0)->shape();
          auto [start, end] = ShapeRange(ctx.node(), opset, in.size());
          RETURN_IF_ERROR(CheckOutputShape(ctx.node(), *ctx.output(0), {end - start}));
          int64_t* out = ctx.output(0)->data<int64_t>();
          for (int64_t d = start; d < end; ++d) out[d - start] = in[d];
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(shape));

  OpSchema size = Schema("Size", 7, 21, 1, 1);
  size.non_differentiable_inputs = {0};
  size.infer = [](InferenceContext& ctx) -> absl::Status {
    ctx.set_output(0, DataType::kInt64, {});
    return absl::OkStatus();
  };
  size.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext&) -> absl::StatusOr<RunFn> {
        return RunFn([](KernelContext& ctx) -> absl::Status {
          *ctx.output(0)->data<int64_t>() = ctx.input(0)->num_elements();
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(size));
}

// ---------------------------------------------------------------------------
// ConstantOfShape

// The fill value attribute as a one-element tensor (default float32 0).
absl::StatusOr<Tensor> FillValue(const graph::Node& node) {
  const graph::Attribute* a = node.FindAttribute("value");
  if (a == nullptr) return Tensor::FromFloats({0.f}, {});
  if (a->kind != graph::Attribute::Kind::kTensor || !a->t.defined() || a->t.num_elements() != 1 ||
      !IsSupportedDataType(a->t.dtype())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attribute 'value' must be a one-element numeric tensor, got ", a->ToString()));
  }
  return a->t;
}

void RegisterConstantOfShape(OpRegistry& registry) {
  OpSchema s = Schema("ConstantOfShape", 9, 21, 1, 1);
  s.non_differentiable_inputs = {0};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectDtype(ctx, 0, "input", {DataType::kInt64}));
    RETURN_IF_ERROR(Expect1D(ctx, 0, "input"));
    auto value = FillValue(ctx.node());
    if (!value.ok()) return NodeError(ctx, value.status());
    ASSIGN_OR_RETURN(auto dims, ConstantInts(ctx, 0, "input"));
    for (int64_t d : dims) {
      if (d < 0) {
        return ctx.Error(
            absl::StrCat("shape [", absl::StrJoin(dims, ","), "] has a negative dimension"));
      }
    }
    ctx.set_output(0, value->dtype(), dims);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
        auto value = FillValue(b.node);
        if (!value.ok()) return value.status();
        // Keep the bytes, not the attribute tensor.
        const char* p = value->data<char>();
        std::vector<char> bytes(p, p + DataTypeSize(value->dtype()));
        return RunFn([bytes](KernelContext& ctx) -> absl::Status {
          ASSIGN_OR_RETURN(auto dims, RuntimeInts(ctx.node(), ctx.input(0), "input"));
          RETURN_IF_ERROR(CheckOutputShape(ctx.node(), *ctx.output(0), dims));
          Tensor& out = *ctx.output(0);
          char* d = out.data<char>();
          for (int64_t i = 0; i < out.num_elements(); ++i)
            std::memcpy(d + i * bytes.size(), bytes.data(), bytes.size());
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Range

absl::StatusOr<int64_t> RangeCount(const Tensor& start, const Tensor& limit, const Tensor& delta) {
  if (start.num_elements() != 1 || limit.num_elements() != 1 || delta.num_elements() != 1) {
    return absl::InvalidArgumentError("start, limit and delta must be scalars");
  }
  if (IsInteger(start.dtype())) {
    auto s = start.ToInt64Vector(), l = limit.ToInt64Vector(), d = delta.ToInt64Vector();
    if (!s.ok() || !l.ok() || !d.ok()) return absl::InvalidArgumentError("bad integer scalars");
    int64_t st = (*s)[0], li = (*l)[0], de = (*d)[0];
    if (de == 0) return absl::InvalidArgumentError("delta is 0");
    int64_t diff = li - st;
    if ((diff > 0) != (de > 0) || diff == 0) return int64_t{0};
    int64_t a = diff < 0 ? -diff : diff, b = de < 0 ? -de : de;
    return (a + b - 1) / b;
  }
  double st = start.GetAsDouble(0), li = limit.GetAsDouble(0), de = delta.GetAsDouble(0);
  if (de == 0) return absl::InvalidArgumentError("delta is 0");
  double n = std::ceil((li - st) / de);
  if (!std::isfinite(n)) {
    return absl::InvalidArgumentError("start, limit and delta give a non-finite element count");
  }
  return std::max<int64_t>(0, static_cast<int64_t>(n));
}

template <typename T>
void FillRange(const Tensor& start, const Tensor& delta, Tensor& out) {
  const T s = *start.data<T>(), d = *delta.data<T>();
  T* o = out.data<T>();
  for (int64_t i = 0; i < out.num_elements(); ++i) o[i] = static_cast<T>(s + static_cast<T>(i) * d);
}

void RegisterRange(OpRegistry& registry) {
  OpSchema s = Schema("Range", 11, 21, 3, 3);
  s.non_differentiable_inputs = {0, 1, 2};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    static const char* kNames[] = {"start", "limit", "delta"};
    for (size_t i = 0; i < 3; ++i) {
      RETURN_IF_ERROR(ExpectDtype(ctx, i, kNames[i],
                                  {DataType::kFloat32, DataType::kFloat64, DataType::kInt16,
                                   DataType::kInt32, DataType::kInt64}));
      if (ctx.input_dtype(i) != ctx.input_dtype(0)) {
        return ctx.Error(absl::StrCat(
            "start, limit and delta must share a dtype; got ", DataTypeName(ctx.input_dtype(0)),
            ", ", DataTypeName(ctx.input_dtype(1)), ", ", DataTypeName(ctx.input_dtype(2))));
      }
      if (NumElements(ctx.input_shape(i)) != 1) {
        return ctx.Error(absl::StrCat("input ", i, " ('", kNames[i],
                                      "') must be a scalar, got shape ",
                                      ShapeToString(ctx.input_shape(i))));
      }
      if (ctx.input_value(i) == nullptr) {
        return ctx.Error(
            absl::StrCat("the output shape depends on input ", i, " ('", kNames[i],
                         "') which is not a compile-time constant; lasgd needs static shapes"));
      }
    }
    auto n = RangeCount(*ctx.input_value(0), *ctx.input_value(1), *ctx.input_value(2));
    if (!n.ok()) return NodeError(ctx, n.status());
    ctx.set_output(0, ctx.input_dtype(0), {*n});
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext&) -> absl::StatusOr<RunFn> {
        return RunFn([](KernelContext& ctx) -> absl::Status {
          auto n = RangeCount(*ctx.input(0), *ctx.input(1), *ctx.input(2));
          if (!n.ok()) return NodeError(ctx.node(), n.status());
          RETURN_IF_ERROR(CheckOutputShape(ctx.node(), *ctx.output(0), {*n}));
          Tensor& out = *ctx.output(0);
          switch (out.dtype()) {
            case DataType::kFloat32:
              FillRange<float>(*ctx.input(0), *ctx.input(2), out);
              break;
            case DataType::kFloat64:
              FillRange<double>(*ctx.input(0), *ctx.input(2), out);
              break;
            case DataType::kInt16:
              FillRange<int16_t>(*ctx.input(0), *ctx.input(2), out);
              break;
            case DataType::kInt32:
              FillRange<int32_t>(*ctx.input(0), *ctx.input(2), out);
              break;
            case DataType::kInt64:
              FillRange<int64_t>(*ctx.input(0), *ctx.input(2), out);
              break;
            default:
              return absl::InvalidArgumentError(
                  absl::StrCat(ctx.node().Describe(), ": unsupported dtype ", out.TypeString()));
          }
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Concat

void RegisterConcat(OpRegistry& registry) {
  OpSchema s = Schema("Concat", 7, 21, 1, INT_MAX);
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    if (ctx.node().FindAttribute("axis") == nullptr) {
      return ctx.Error("attribute 'axis' is required");
    }
    const int64_t rank = ctx.input_rank(0);
    if (rank == 0) return ctx.Error("cannot concatenate scalars (input 0 has rank 0)");
    auto axis = NormalizeOneAxis(ctx.node().GetInt("axis", 0), rank, ctx.opset(), 11, "axis");
    if (!axis.ok()) return NodeError(ctx, axis.status());
    Shape out = ctx.input_shape(0);
    out[*axis] = 0;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) return ctx.Error(absl::StrCat("input ", i, " is missing"));
      const Shape& in = ctx.input_shape(i);
      if (ctx.input_dtype(i) != ctx.input_dtype(0)) {
        return ctx.Error(absl::StrCat("input ", i, " has dtype ", DataTypeName(ctx.input_dtype(i)),
                                      " but input 0 has ", DataTypeName(ctx.input_dtype(0))));
      }
      bool ok = static_cast<int64_t>(in.size()) == rank;
      for (int64_t d = 0; ok && d < rank; ++d) ok = d == *axis || in[d] == ctx.input_shape(0)[d];
      if (!ok) {
        return ctx.Error(absl::StrCat("input ", i, " has shape ", ShapeToString(in),
                                      ", which does not match input 0's ",
                                      ShapeToString(ctx.input_shape(0)), " outside axis ", *axis));
      }
      out[*axis] += in[*axis];
    }
    ctx.set_output(0, ctx.input_dtype(0), out);
    return absl::OkStatus();
  };
  // Both kernels see the output as [outer, sum of input blocks]: input i
  // contributes a contiguous block of dim_i(axis) * inner elements per outer row.
  auto blocks = [](const KernelContext& ctx, int64_t* outer, std::vector<int64_t>* block) {
    const Tensor& out = *ctx.output(0);
    int64_t axis = ctx.node().GetInt("axis", 0);
    if (axis < 0) axis += out.rank();
    *outer = 1;
    for (int64_t d = 0; d < axis; ++d) *outer *= out.dim(d);
    int64_t inner = 1;
    for (int64_t d = axis + 1; d < out.rank(); ++d) inner *= out.dim(d);
    block->clear();
    for (size_t i = 0; i < ctx.num_inputs(); ++i) block->push_back(ctx.input(i)->dim(axis) * inner);
  };
  s.kernels.push_back(
      MakeCandidate("fast", [blocks](const KernelBuildContext&) -> absl::StatusOr<RunFn> {
        return RunFn([blocks](KernelContext& ctx) -> absl::Status {
          int64_t outer;
          std::vector<int64_t> block;
          blocks(ctx, &outer, &block);
          const size_t es = DataTypeSize(ctx.output(0)->dtype());
          const int64_t n = static_cast<int64_t>(block.size());
          std::vector<int64_t> offset(n + 1, 0);
          for (int64_t i = 0; i < n; ++i) offset[i + 1] = offset[i] + block[i];
          char* dst = ctx.output(0)->data<char>();
          const int64_t row = offset[n];
#pragma omp parallel for schedule(static) if (outer * row * es > (1 << 17))
          for (int64_t w = 0; w < outer * n; ++w) {
            const int64_t o = w / n, i = w % n;
            if (block[i] == 0) continue;
            std::memcpy(dst + (o * row + offset[i]) * es,
                        ctx.input(i)->data<char>() + o * block[i] * es, block[i] * es);
          }
          return absl::OkStatus();
        });
      }));
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext&) -> absl::StatusOr<RunFn> {
        return RunFn([](KernelContext& ctx) -> absl::Status {
          Tensor& out = *ctx.output(0);
          int64_t axis = ctx.node().GetInt("axis", 0);
          if (axis < 0) axis += out.rank();
          const size_t es = DataTypeSize(out.dtype());
          std::vector<int64_t> out_strides = ContiguousStrides(out.shape());
          int64_t base = 0;
          for (size_t i = 0; i < ctx.num_inputs(); ++i) {
            const Tensor& in = *ctx.input(i);
            ForEachIndex(in.shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
              int64_t dst = 0;
              for (size_t d = 0; d < idx.size(); ++d)
                dst += (idx[d] + (static_cast<int64_t>(d) == axis ? base : 0)) * out_strides[d];
              CopyElement(out.raw_data(), dst, in.raw_data(), linear, es);
            });
            base += in.dim(axis);
          }
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Split

// Output sizes along the split axis: the `split` attribute (< 13) or input
// (>= 13); else num_outputs (>= 18) or the node's output count, in equal
// chunks (from opset 18 the last chunk may be smaller).
absl::StatusOr<std::vector<int64_t>> SplitSizes(
    const graph::Node& node, int64_t opset, int64_t dim,
    const std::function<absl::StatusOr<std::vector<int64_t>>()>& split_input) {
  const int64_t outputs = static_cast<int64_t>(node.outputs.size());
  std::vector<int64_t> split;
  bool given = false;
  if (opset < 13) {
    if (const graph::Attribute* a = node.FindAttribute("split")) {
      split = a->ints;
      given = true;
    }
  } else if (node.HasInput(1)) {
    ASSIGN_OR_RETURN(split, split_input());
    given = true;
  }
  const graph::Attribute* num = opset >= 18 ? node.FindAttribute("num_outputs") : nullptr;
  if (given) {
    if (num != nullptr) {
      return absl::InvalidArgumentError("give either the 'split' input or 'num_outputs', not both");
    }
    if (static_cast<int64_t>(split.size()) != outputs) {
      return absl::InvalidArgumentError(absl::StrCat("split [", absl::StrJoin(split, ","), "] has ",
                                                     split.size(), " entries but the node has ",
                                                     outputs, " outputs"));
    }
    int64_t sum = 0;
    for (int64_t v : split) {
      if (v < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("split [", absl::StrJoin(split, ","), "] has a negative entry"));
      }
      sum += v;
    }
    if (sum != dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "split [", absl::StrJoin(split, ","), "] sums to ", sum, " but the axis has size ", dim));
    }
    return split;
  }
  int64_t n = outputs;
  if (num != nullptr) {
    n = num->i;
    if (n != outputs) {
      return absl::InvalidArgumentError(
          absl::StrCat("num_outputs is ", n, " but the node has ", outputs, " outputs"));
    }
  }
  if (n < 1) return absl::InvalidArgumentError("Split needs at least one output");
  if (dim % n == 0) return std::vector<int64_t>(n, dim / n);
  if (opset < 18) {
    return absl::InvalidArgumentError(absl::StrCat("the axis size ", dim, " does not divide into ",
                                                   n,
                                                   " equal parts; give 'split' (uneven chunks "
                                                   "need opset >= 18)"));
  }
  const int64_t chunk = dim / n + 1, last = dim - chunk * (n - 1);
  if (last < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the axis size ", dim, " cannot be split into ", n, " chunks of ", chunk));
  }
  split.assign(n, chunk);
  split.back() = last;
  return split;
}

struct SplitRun {
  int64_t axis = 0;
  std::vector<int64_t> sizes;
};

void RegisterSplit(OpRegistry& registry) {
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{7, 12}, {13, 21}}) {
    OpSchema s = Schema("Split", lo, hi, 1, lo < 13 ? 1 : 2, 1, INT_MAX);
    if (lo >= 13) s.non_differentiable_inputs = {1};
    s.infer = [](InferenceContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(ExpectStorable(ctx, 0));
      if (ctx.opset() >= 13 && ctx.has_input(1)) {
        RETURN_IF_ERROR(ExpectDtype(ctx, 1, "split", {DataType::kInt64}));
      }
      const int64_t rank = ctx.input_rank(0);
      auto axis = NormalizeOneAxis(ctx.node().GetInt("axis", 0), rank, ctx.opset(), 11, "axis");
      if (!axis.ok()) return NodeError(ctx, axis.status());
      auto sizes = SplitSizes(ctx.node(), ctx.opset(), ctx.input_shape(0)[*axis],
                              [&] { return ConstantInts(ctx, 1, "split"); });
      if (!sizes.ok()) return NodeError(ctx, sizes.status());
      for (size_t i = 0; i < ctx.num_outputs(); ++i) {
        Shape out = ctx.input_shape(0);
        out[*axis] = (*sizes)[i];
        ctx.set_output(i, ctx.input_dtype(0), out);
      }
      return absl::OkStatus();
    };
    // Checks the runtime split against the allocated outputs.
    auto prepare = [](KernelContext& ctx, int64_t opset) -> absl::StatusOr<SplitRun> {
      const Tensor& in = *ctx.input(0);
      SplitRun run;
      run.axis = ctx.node().GetInt("axis", 0);
      if (run.axis < 0) run.axis += in.rank();
      auto sizes = SplitSizes(ctx.node(), opset, in.dim(run.axis),
                              [&] { return RuntimeInts(ctx.node(), ctx.input(1), "split"); });
      if (!sizes.ok()) return NodeError(ctx.node(), sizes.status());
      run.sizes = *sizes;
      for (size_t i = 0; i < ctx.num_outputs(); ++i) {
        if (ctx.output(i) == nullptr) continue;
        Shape expected = in.shape();
        expected[run.axis] = run.sizes[i];
        RETURN_IF_ERROR(CheckOutputShape(ctx.node(), *ctx.output(i), expected));
      }
      return run;
    };
    s.kernels.push_back(
        MakeCandidate("fast", [prepare](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
          int64_t opset = b.opset;
          return RunFn([prepare, opset](KernelContext& ctx) -> absl::Status {
            ASSIGN_OR_RETURN(SplitRun run, prepare(ctx, opset));
            const Tensor& in = *ctx.input(0);
            const size_t es = DataTypeSize(in.dtype());
            int64_t outer = 1, inner = 1;
            for (int64_t d = 0; d < run.axis; ++d) outer *= in.dim(d);
            for (int64_t d = run.axis + 1; d < in.rank(); ++d) inner *= in.dim(d);
            const int64_t n = static_cast<int64_t>(ctx.num_outputs());
            std::vector<int64_t> block(n), offset(n + 1, 0);
            for (int64_t i = 0; i < n; ++i) {
              block[i] = run.sizes[i] * inner;
              offset[i + 1] = offset[i] + block[i];
            }
            const char* src = in.data<char>();
            const int64_t row = offset[n];
#pragma omp parallel for schedule(static) if (outer * row * es > (1 << 17))
            for (int64_t w = 0; w < outer * n; ++w) {
              const int64_t o = w / n, i = w % n;
              if (block[i] == 0 || ctx.output(i) == nullptr) continue;
              std::memcpy(ctx.output(i)->data<char>() + o * block[i] * es,
                          src + (o * row + offset[i]) * es, block[i] * es);
            }
            return absl::OkStatus();
          });
        }));
    s.kernels.push_back(
        MakeCandidate("reference", [prepare](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
          int64_t opset = b.opset;
          return RunFn([prepare, opset](KernelContext& ctx) -> absl::Status {
            ASSIGN_OR_RETURN(SplitRun run, prepare(ctx, opset));
            const Tensor& in = *ctx.input(0);
            const size_t es = DataTypeSize(in.dtype());
            std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
            int64_t base = 0;
            for (size_t i = 0; i < ctx.num_outputs(); ++i) {
              if (Tensor* out = ctx.output(i)) {
                ForEachIndex(out->shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
                  int64_t src = 0;
                  for (size_t d = 0; d < idx.size(); ++d)
                    src +=
                        (idx[d] + (static_cast<int64_t>(d) == run.axis ? base : 0)) * in_strides[d];
                  CopyElement(out->raw_data(), linear, in.raw_data(), src, es);
                });
              }
              base += run.sizes[i];
            }
            return absl::OkStatus();
          });
        }));
    registry.Register(std::move(s));
  }
}

// ---------------------------------------------------------------------------
// Gather

void RegisterGather(OpRegistry& registry) {
  OpSchema s = Schema("Gather", 7, 21, 2, 2);
  s.non_differentiable_inputs = {1};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectStorable(ctx, 0));
    RETURN_IF_ERROR(ExpectDtype(ctx, 1, "indices", {DataType::kInt32, DataType::kInt64}));
    const int64_t rank = ctx.input_rank(0);
    if (rank == 0) return ctx.Error("input 0 ('data') must have rank >= 1, got a scalar");
    // Gather accepted negative axes from its first version.
    auto axis = NormalizeOneAxis(ctx.node().GetInt("axis", 0), rank, ctx.opset(), 1, "axis");
    if (!axis.ok()) return NodeError(ctx, axis.status());
    const Shape& data = ctx.input_shape(0);
    Shape out(data.begin(), data.begin() + *axis);
    for (int64_t d : ctx.input_shape(1)) out.push_back(d);
    for (int64_t d = *axis + 1; d < rank; ++d) out.push_back(data[d]);
    ctx.set_output(0, ctx.input_dtype(0), out);
    return absl::OkStatus();
  };
  // Normalised indices, or an error naming the first out-of-range one.
  auto indices = [](const KernelContext& ctx,
                    int64_t axis) -> absl::StatusOr<std::vector<int64_t>> {
    ASSIGN_OR_RETURN(auto idx, RuntimeInts(ctx.node(), ctx.input(1), "indices"));
    const int64_t dim = ctx.input(0)->dim(axis);
    for (size_t j = 0; j < idx.size(); ++j) {
      if (idx[j] < -dim || idx[j] >= dim) {
        return absl::InvalidArgumentError(absl::StrCat(ctx.node().Describe(), ": indices[", j,
                                                       "] = ", idx[j], " is out of range [", -dim,
                                                       ", ", dim - 1, "] for axis ", axis));
      }
      if (idx[j] < 0) idx[j] += dim;
    }
    return idx;
  };
  auto make = [indices](bool fast) {
    return [indices, fast](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
      return RunFn([indices, fast](KernelContext& ctx) -> absl::Status {
        const Tensor& data = *ctx.input(0);
        int64_t axis = ctx.node().GetInt("axis", 0);
        if (axis < 0) axis += data.rank();
        ASSIGN_OR_RETURN(auto idx, indices(ctx, axis));
        const size_t es = DataTypeSize(data.dtype());
        int64_t outer = 1, inner = 1;
        for (int64_t d = 0; d < axis; ++d) outer *= data.dim(d);
        for (int64_t d = axis + 1; d < data.rank(); ++d) inner *= data.dim(d);
        const int64_t n = static_cast<int64_t>(idx.size()), dim = data.dim(axis);
        const char* src = data.data<char>();
        char* dst = ctx.output(0)->data<char>();
        if (fast) {
#pragma omp parallel for schedule(static) if (outer * n * inner * es > (1 << 17))
          for (int64_t w = 0; w < outer * n; ++w) {
            const int64_t o = w / n, j = w % n;
            std::memcpy(dst + w * inner * es, src + (o * dim + idx[j]) * inner * es, inner * es);
          }
          return absl::OkStatus();
        }
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t j = 0; j < n; ++j)
            for (int64_t k = 0; k < inner; ++k)
              CopyElement(dst, (o * n + j) * inner + k, src, (o * dim + idx[j]) * inner + k, es);
        return absl::OkStatus();
      });
    };
  };
  s.kernels.push_back(MakeCandidate("fast", make(true)));
  s.kernels.push_back(MakeCandidate("reference", make(false)));
  registry.Register(std::move(s));
}

}  // namespace

void RegisterShapeOps(OpRegistry& registry) {
  RegisterReshape(registry);
  RegisterFlatten(registry);
  RegisterSqueezeFamily(registry, /*squeeze=*/true);
  RegisterSqueezeFamily(registry, /*squeeze=*/false);
  RegisterShapeAndSize(registry);
  RegisterConstantOfShape(registry);
  RegisterRange(registry);
  RegisterConcat(registry);
  RegisterSplit(registry);
  RegisterGather(registry);
  shape_internal::AddShapeMovementSchemas(registry);
}

}  // namespace lasgd::ops
