// Data-movement ops whose output reads the input through a strided view:
// Transpose, Slice, Expand, Tile and Pad, plus the byte-copy helpers of
// ops/shape_util.h. Every kernel copies bytes by element size, so any dtype
// works. The "fast" kernels go through StridedCopy (merged dims, memcpy of
// contiguous runs, OpenMP over rows); "reference" walks every output index.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/shape_util.h"

namespace lasgd::ops::shape_internal {

// ---------------------------------------------------------------------------
// Shared helpers.

absl::StatusOr<std::vector<int64_t>> ConstantInts(const InferenceContext& ctx, size_t i,
                                                  const std::string& input_name) {
  const Tensor* v = ctx.input_value(i);
  if (v == nullptr) {
    return ctx.Error(absl::StrCat("the output shape depends on input ", i, " ('", input_name,
                                  "') which is not a compile-time constant; lasgd needs static "
                                  "shapes, so feed it as an initializer or Constant"));
  }
  auto values = v->ToInt64Vector();
  if (!values.ok()) {
    return ctx.Error(absl::StrCat("input ", i, " ('", input_name,
                                  "') must be an integer tensor, got ", v->TypeString()));
  }
  return values;
}

absl::StatusOr<std::vector<int64_t>> RuntimeInts(const graph::Node& node, const Tensor* t,
                                                 const std::string& input_name) {
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(node.Describe(), ": input '", input_name, "' is missing"));
  }
  auto values = t->ToInt64Vector();
  if (!values.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": input '", input_name,
                                                   "' must be an integer tensor, got ",
                                                   t->TypeString()));
  }
  return values;
}

absl::Status ExpectDtype(const InferenceContext& ctx, size_t i, const std::string& input_name,
                         const std::vector<DataType>& allowed) {
  DataType got = ctx.input_dtype(i);
  if (std::find(allowed.begin(), allowed.end(), got) != allowed.end()) return absl::OkStatus();
  std::vector<std::string> names;
  for (DataType d : allowed) names.push_back(DataTypeName(d));
  return ctx.Error(absl::StrCat("input ", i, " ('", input_name, "') must be one of ",
                                absl::StrJoin(names, ", "), "; got ", DataTypeName(got)));
}

absl::Status ExpectStorable(const InferenceContext& ctx, size_t i) {
  if (IsSupportedDataType(ctx.input_dtype(i))) return absl::OkStatus();
  return ctx.Error(absl::StrCat("input ", i, " has dtype ", DataTypeName(ctx.input_dtype(i)),
                                ", which lasgd cannot compute on"));
}

absl::StatusOr<int64_t> NormalizeOneAxis(int64_t axis, int64_t rank, int64_t opset,
                                         int64_t negative_from_opset, const std::string& what) {
  if (axis < 0 && opset < negative_from_opset) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", axis, " is negative; negative ", what,
                                                   " values need opset >= ", negative_from_opset,
                                                   " (model uses ", opset, ")"));
  }
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", axis, " is out of range [", -rank,
                                                   ", ", rank - 1, "] for rank ", rank));
  }
  return axis < 0 ? axis + rank : axis;
}

absl::StatusOr<std::vector<int64_t>> NormalizeAxes(const std::vector<int64_t>& axes, int64_t rank,
                                                   int64_t opset, int64_t negative_from_opset,
                                                   const std::string& what) {
  std::vector<int64_t> out;
  std::vector<bool> seen(std::max<int64_t>(rank, 0), false);
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t n, NormalizeOneAxis(a, rank, opset, negative_from_opset, what));
    if (seen[n]) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " [", absl::StrJoin(axes, ","), "] name axis ", n, " more than once"));
    }
    seen[n] = true;
    out.push_back(n);
  }
  return out;
}

void ForEachIndex(const Shape& shape,
                  const std::function<void(const std::vector<int64_t>&, int64_t)>& fn) {
  int64_t total = NumElements(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t linear = 0; linear < total; ++linear) {
    fn(idx, linear);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

void CopyWhole(const Tensor& in, Tensor& out) {
  if (in.raw_data() != out.raw_data() && out.nbytes() > 0) {
    std::memcpy(out.raw_data(), in.raw_data(), std::min(in.nbytes(), out.nbytes()));
  }
}

namespace {

// float -> IEEE half with round-to-nearest-even (Tensor::SetFromDouble does
// not write 16-bit floats).
uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0);  // inf/nan
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // overflows to inf
  if (abs < 0x38800000u) {                        // subnormal or zero
    if (abs < 0x33000000u) return sign;
    // m * 2^-24 = M * 2^(e - 150), so the half's mantissa is M >> (126 - e).
    const uint32_t shift = 126 - (abs >> 23);
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return sign | h;
  }
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return sign | h;
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace

std::vector<char> ElementBytes(DataType dtype, double value) {
  if (dtype == DataType::kFloat16 || dtype == DataType::kBFloat16) {
    const float f = static_cast<float>(value);
    const uint16_t h = dtype == DataType::kFloat16 ? FloatToHalf(f) : FloatToBFloat16(f);
    std::vector<char> bytes(2);
    std::memcpy(bytes.data(), &h, 2);
    return bytes;
  }
  Tensor t = Tensor::Allocate(dtype, {});
  t.SetFromDouble(0, value);
  const char* p = t.data<char>();
  return std::vector<char>(p, p + DataTypeSize(dtype));
}

absl::Status CheckOutputShape(const graph::Node& node, const Tensor& out, const Shape& expected) {
  if (out.shape() == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      node.Describe(), ": the runtime inputs give output shape ", ShapeToString(expected),
      " but the plan allocated ", ShapeToString(out.shape()),
      " from the compile-time values; the value-carrying inputs changed between compile and run"));
}

namespace {

template <typename T>
void StridedRow(char* dst, const char* src, int64_t n, int64_t stride) {
  T* d = reinterpret_cast<T*>(dst);
  const T* s = reinterpret_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) std::memcpy(d + i, s + i * stride, sizeof(T));
}

// One output row of n elements read with element stride `stride`.
void CopyRow(char* dst, const char* src, int64_t n, int64_t stride, size_t es) {
  if (stride == 1) {
    std::memcpy(dst, src, n * es);
    return;
  }
  switch (es) {
    case 1:
      return StridedRow<uint8_t>(dst, src, n, stride);
    case 2:
      return StridedRow<uint16_t>(dst, src, n, stride);
    case 4:
      return StridedRow<uint32_t>(dst, src, n, stride);
    case 8:
      return StridedRow<uint64_t>(dst, src, n, stride);
    default:
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * es, src + i * stride * es, es);
  }
}

template <typename T>
void TransposeTile(char* dst, const char* src, int64_t rows, int64_t cols, int64_t dst_row_stride,
                   int64_t src_col_stride) {
  // dst[a * dst_row_stride + b] = src[a + b * src_col_stride]
  T* d = reinterpret_cast<T*>(dst);
  const T* s = reinterpret_cast<const T*>(src);
  for (int64_t a = 0; a < rows; ++a)
    for (int64_t b = 0; b < cols; ++b)
      std::memcpy(d + a * dst_row_stride + b, s + a + b * src_col_stride, sizeof(T));
}

void TransposeTileAny(char* dst, const char* src, int64_t rows, int64_t cols,
                      int64_t dst_row_stride, int64_t src_col_stride, size_t es) {
  switch (es) {
    case 1:
      return TransposeTile<uint8_t>(dst, src, rows, cols, dst_row_stride, src_col_stride);
    case 2:
      return TransposeTile<uint16_t>(dst, src, rows, cols, dst_row_stride, src_col_stride);
    case 4:
      return TransposeTile<uint32_t>(dst, src, rows, cols, dst_row_stride, src_col_stride);
    case 8:
      return TransposeTile<uint64_t>(dst, src, rows, cols, dst_row_stride, src_col_stride);
    default:
      for (int64_t a = 0; a < rows; ++a)
        for (int64_t b = 0; b < cols; ++b)
          std::memcpy(dst + (a * dst_row_stride + b) * es, src + (a + b * src_col_stride) * es, es);
  }
}

// Threads worth using for `bytes` of copying: small copies stay serial
// because a parallel region costs more than they do.
int CopyThreads(int64_t bytes) {
  if (bytes < (int64_t{1} << 17)) return 1;
  return std::max(1, omp_get_max_threads());
}

// The transposing case of StridedCopy: the innermost output dim is strided in
// the source while another dim `j` is contiguous there. Copies 2-D tiles of
// (dim j x last dim) so that both reads and writes stay in cache lines.
void TiledStridedCopy(char* dst, const char* src, const std::vector<int64_t>& dims,
                      const std::vector<int64_t>& strides, int64_t j, size_t es) {
  const int64_t r = static_cast<int64_t>(dims.size());
  const std::vector<int64_t> out_strides = ContiguousStrides(dims);
  const int64_t n = dims[r - 1], m = dims[j];
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (m + kTile - 1) / kTile;
  std::vector<int64_t> outer_dims;
  for (int64_t d = 0; d < r - 1; ++d)
    if (d != j) outer_dims.push_back(d);
  int64_t outer = 1;
  for (int64_t d : outer_dims) outer *= dims[d];
  const int64_t work = outer * row_tiles;
  const int threads = CopyThreads(NumElements(dims) * es);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t w = 0; w < work; ++w) {
    int64_t o = w / row_tiles, a0 = (w % row_tiles) * kTile;
    int64_t src_off = 0, dst_off = 0;
    for (int64_t k = static_cast<int64_t>(outer_dims.size()) - 1; k >= 0; --k) {
      int64_t d = outer_dims[k];
      int64_t i = o % dims[d];
      o /= dims[d];
      src_off += i * strides[d];
      dst_off += i * out_strides[d];
    }
    const int64_t rows = std::min(kTile, m - a0);
    for (int64_t b0 = 0; b0 < n; b0 += kTile) {
      const int64_t cols = std::min(kTile, n - b0);
      TransposeTileAny(dst + (dst_off + a0 * out_strides[j] + b0) * es,
                       src + (src_off + a0 + b0 * strides[r - 1]) * es, rows, cols, out_strides[j],
                       strides[r - 1], es);
    }
  }
}

}  // namespace

void StridedCopy(void* dst_v, const void* src_v, const Shape& out_shape,
                 const std::vector<int64_t>& src_strides, int64_t src_offset, size_t es) {
  const int64_t total = NumElements(out_shape);
  if (total == 0) return;
  char* dst = static_cast<char*>(dst_v);
  const char* src = static_cast<const char*>(src_v) + src_offset * static_cast<int64_t>(es);
  // Drop unit dims and merge neighbours that are contiguous in the source too.
  std::vector<int64_t> dims, strides;
  for (size_t d = 0; d < out_shape.size(); ++d) {
    if (out_shape[d] == 1) continue;
    if (!dims.empty() && strides.back() == src_strides[d] * out_shape[d]) {
      dims.back() *= out_shape[d];
      strides.back() = src_strides[d];
    } else {
      dims.push_back(out_shape[d]);
      strides.push_back(src_strides[d]);
    }
  }
  if (dims.empty()) {
    std::memcpy(dst, src, es);
    return;
  }
  const int64_t r = static_cast<int64_t>(dims.size());
  const int64_t n = dims[r - 1], inner_stride = strides[r - 1];
  if (inner_stride != 1 && inner_stride != 0 && n >= 8) {
    for (int64_t j = r - 2; j >= 0; --j) {
      if (strides[j] == 1 && dims[j] >= 8) {
        TiledStridedCopy(dst, src, dims, strides, j, es);
        return;
      }
    }
  }
  const int64_t rows = total / n;
  const int threads = CopyThreads(total * static_cast<int64_t>(es));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = rows * t / nt, end = rows * (t + 1) / nt;
    if (begin < end) {
      // Unravel the first row once, then step the index like an odometer.
      std::vector<int64_t> idx(r, 0);
      int64_t off = 0, rem = begin;
      for (int64_t d = r - 2; d >= 0; --d) {
        idx[d] = rem % dims[d];
        rem /= dims[d];
        off += idx[d] * strides[d];
      }
      for (int64_t row = begin; row < end; ++row) {
        CopyRow(dst + row * n * es, src + off * static_cast<int64_t>(es), n, inner_stride, es);
        for (int64_t d = r - 2; d >= 0; --d) {
          off += strides[d];
          if (++idx[d] < dims[d]) break;
          off -= dims[d] * strides[d];
          idx[d] = 0;
        }
      }
    }
  }
}

namespace {

absl::Status Unsupported(const InferenceContext& ctx) { return ExpectStorable(ctx, 0); }

absl::StatusOr<RunFn> NeedStorable(const KernelBuildContext& b, RunFn fn) {
  if (b.input_dtypes.empty() || DataTypeSize(b.input_dtypes[0]) == 0) {
    return absl::UnimplementedError("input dtype has no fixed element size");
  }
  return fn;
}

// ---------------------------------------------------------------------------
// Transpose

absl::StatusOr<std::vector<int64_t>> TransposePerm(const graph::Node& node, int64_t rank) {
  const graph::Attribute* a = node.FindAttribute("perm");
  std::vector<int64_t> perm;
  if (a == nullptr) {
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
    return perm;
  }
  perm = a->ints;
  if (static_cast<int64_t>(perm.size()) != rank) {
    return absl::InvalidArgumentError(absl::StrCat("perm [", absl::StrJoin(perm, ","), "] has ",
                                                   perm.size(), " entries but the input has rank ",
                                                   rank));
  }
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    // Negative perm entries are not in the spec; ORT and numpy accept them.
    int64_t q = p < 0 ? p + rank : p;
    if (q < 0 || q >= rank || seen[q]) {
      return absl::InvalidArgumentError(absl::StrCat("perm [", absl::StrJoin(perm, ","),
                                                     "] is not a permutation of 0..", rank - 1));
    }
    seen[q] = true;
  }
  for (int64_t& p : perm) p = p < 0 ? p + rank : p;
  return perm;
}

absl::Status InferTranspose(InferenceContext& ctx) {
  RETURN_IF_ERROR(Unsupported(ctx));
  auto perm = TransposePerm(ctx.node(), ctx.input_rank(0));
  if (!perm.ok()) return NodeError(ctx, perm.status());
  Shape out;
  for (int64_t p : *perm) out.push_back(ctx.input_shape(0)[p]);
  ctx.set_output(0, ctx.input_dtype(0), out);
  return absl::OkStatus();
}

void RegisterTranspose(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Transpose";
  s.min_opset = 7;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  s.infer = InferTranspose;
  s.kernels.push_back(MakeCandidate("fast", [](const KernelBuildContext& b) {
    return NeedStorable(b, [](KernelContext& ctx) -> absl::Status {
      const Tensor& in = *ctx.input(0);
      Tensor& out = *ctx.output(0);
      auto perm = TransposePerm(ctx.node(), in.rank());
      if (!perm.ok()) return NodeError(ctx.node(), perm.status());
      std::vector<int64_t> in_strides = ContiguousStrides(in.shape()), strides;
      for (int64_t p : *perm) strides.push_back(in_strides[p]);
      StridedCopy(out.raw_data(), in.raw_data(), out.shape(), strides, 0, DataTypeSize(in.dtype()));
      return absl::OkStatus();
    });
  }));
  s.kernels.push_back(MakeCandidate("reference", [](const KernelBuildContext& b) {
    return NeedStorable(b, [](KernelContext& ctx) -> absl::Status {
      const Tensor& in = *ctx.input(0);
      Tensor& out = *ctx.output(0);
      auto perm = TransposePerm(ctx.node(), in.rank());
      if (!perm.ok()) return NodeError(ctx.node(), perm.status());
      std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
      size_t es = DataTypeSize(in.dtype());
      ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
        int64_t src = 0;
        for (size_t d = 0; d < idx.size(); ++d) src += idx[d] * in_strides[(*perm)[d]];
        CopyElement(out.raw_data(), linear, in.raw_data(), src, es);
      });
      return absl::OkStatus();
    });
  }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Slice

struct SliceDim {
  int64_t start = 0, step = 1, count = 0;
};

// The spec's effective start/end/step per axis and the resulting extents.
absl::StatusOr<std::vector<SliceDim>> ComputeSlice(
    const Shape& shape, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
    const std::vector<int64_t>* axes_in, const std::vector<int64_t>* steps_in, int64_t opset) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (starts.size() != ends.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("starts has ", starts.size(), " entries but ends has ", ends.size()));
  }
  std::vector<int64_t> axes;
  if (axes_in != nullptr) {
    if (axes_in->size() != starts.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("axes has ", axes_in->size(), " entries but starts has ", starts.size()));
    }
    ASSIGN_OR_RETURN(axes, NormalizeAxes(*axes_in, rank, opset, 11, "axes"));
  } else {
    if (static_cast<int64_t>(starts.size()) > rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("starts has ", starts.size(), " entries but the input has rank ", rank));
    }
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(i);
  }
  if (steps_in != nullptr && steps_in->size() != starts.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps has ", steps_in->size(), " entries but starts has ", starts.size()));
  }
  std::vector<SliceDim> dims(rank);
  for (int64_t d = 0; d < rank; ++d) dims[d] = {0, 1, shape[d]};
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t dim = shape[axes[i]];
    const int64_t step = steps_in ? (*steps_in)[i] : 1;
    if (step == 0) return absl::InvalidArgumentError(absl::StrCat("steps[", i, "] is 0"));
    int64_t start = starts[i], end = ends[i];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    int64_t count;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    dims[axes[i]] = {start, step, count};
  }
  return dims;
}

// The slice parameters from attributes (opset < 10) or from the inputs, whose
// values come from `value(i)` (compile-time or runtime).
absl::StatusOr<std::vector<SliceDim>> SliceFromNode(
    const graph::Node& node, int64_t opset, const Shape& shape,
    const std::function<absl::StatusOr<std::vector<int64_t>>(size_t, const char*)>& value) {
  if (opset < 10) {
    const graph::Attribute* starts = node.FindAttribute("starts");
    const graph::Attribute* ends = node.FindAttribute("ends");
    if (starts == nullptr || ends == nullptr) {
      return absl::InvalidArgumentError(
          "Slice before opset 10 needs 'starts' and 'ends' attributes");
    }
    const graph::Attribute* axes = node.FindAttribute("axes");
    return ComputeSlice(shape, starts->ints, ends->ints, axes ? &axes->ints : nullptr, nullptr,
                        opset);
  }
  ASSIGN_OR_RETURN(auto starts, value(1, "starts"));
  ASSIGN_OR_RETURN(auto ends, value(2, "ends"));
  std::vector<int64_t> axes, steps;
  bool has_axes = node.HasInput(3), has_steps = node.HasInput(4);
  if (has_axes) {
    ASSIGN_OR_RETURN(axes, value(3, "axes"));
  }
  if (has_steps) {
    ASSIGN_OR_RETURN(steps, value(4, "steps"));
  }
  return ComputeSlice(shape, starts, ends, has_axes ? &axes : nullptr, has_steps ? &steps : nullptr,
                      opset);
}

Shape SliceShape(const std::vector<SliceDim>& dims) {
  Shape out;
  for (const SliceDim& d : dims) out.push_back(d.count);
  return out;
}

absl::Status InferSlice(InferenceContext& ctx) {
  RETURN_IF_ERROR(Unsupported(ctx));
  if (ctx.opset() >= 10) {
    static const char* kNames[] = {"data", "starts", "ends", "axes", "steps"};
    for (size_t i = 1; i < 5; ++i) {
      if (ctx.has_input(i)) {
        RETURN_IF_ERROR(ExpectDtype(ctx, i, kNames[i], {DataType::kInt32, DataType::kInt64}));
        if (ctx.input_rank(i) != 1) {
          return ctx.Error(absl::StrCat("input ", i, " ('", kNames[i], "') must be 1-D, got shape ",
                                        ShapeToString(ctx.input_shape(i))));
        }
      }
    }
  }
  auto dims = SliceFromNode(ctx.node(), ctx.opset(), ctx.input_shape(0),
                            [&](size_t i, const char* name) { return ConstantInts(ctx, i, name); });
  if (!dims.ok()) return NodeError(ctx, dims.status());
  ctx.set_output(0, ctx.input_dtype(0), SliceShape(*dims));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SliceDim>> RuntimeSlice(const KernelContext& ctx, int64_t opset) {
  const Tensor& in = *ctx.input(0);
  auto dims = SliceFromNode(ctx.node(), opset, in.shape(), [&](size_t i, const char* name) {
    return RuntimeInts(ctx.node(), ctx.input(i), name);
  });
  if (!dims.ok()) return NodeError(ctx.node(), dims.status());
  RETURN_IF_ERROR(CheckOutputShape(ctx.node(), *ctx.output(0), SliceShape(*dims)));
  return dims;
}

void RegisterSlice(OpRegistry& registry) {
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{7, 9}, {10, 21}}) {
    OpSchema s;
    s.op_type = "Slice";
    s.min_opset = lo;
    s.max_opset = hi;
    s.min_inputs = lo < 10 ? 1 : 3;
    s.max_inputs = lo < 10 ? 1 : 5;
    s.min_outputs = s.max_outputs = 1;
    s.infer = InferSlice;
    if (lo >= 10) s.non_differentiable_inputs = {1, 2, 3, 4};
    s.kernels.push_back(MakeCandidate("fast", [](const KernelBuildContext& b) {
      int64_t opset = b.opset;
      return NeedStorable(b, [opset](KernelContext& ctx) -> absl::Status {
        ASSIGN_OR_RETURN(auto dims, RuntimeSlice(ctx, opset));
        const Tensor& in = *ctx.input(0);
        std::vector<int64_t> in_strides = ContiguousStrides(in.shape()), strides;
        int64_t offset = 0;
        for (size_t d = 0; d < dims.size(); ++d) {
          strides.push_back(in_strides[d] * dims[d].step);
          offset += dims[d].start * in_strides[d];
        }
        StridedCopy(ctx.output(0)->raw_data(), in.raw_data(), ctx.output(0)->shape(), strides,
                    offset, DataTypeSize(in.dtype()));
        return absl::OkStatus();
      });
    }));
    s.kernels.push_back(MakeCandidate("reference", [](const KernelBuildContext& b) {
      int64_t opset = b.opset;
      return NeedStorable(b, [opset](KernelContext& ctx) -> absl::Status {
        ASSIGN_OR_RETURN(auto dims, RuntimeSlice(ctx, opset));
        const Tensor& in = *ctx.input(0);
        Tensor& out = *ctx.output(0);
        std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
        size_t es = DataTypeSize(in.dtype());
        ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
          int64_t src = 0;
          for (size_t d = 0; d < idx.size(); ++d)
            src += (dims[d].start + idx[d] * dims[d].step) * in_strides[d];
          CopyElement(out.raw_data(), linear, in.raw_data(), src, es);
        });
        return absl::OkStatus();
      });
    }));
    registry.Register(std::move(s));
  }
}

// ---------------------------------------------------------------------------
// Expand

absl::Status InferExpand(InferenceContext& ctx) {
  RETURN_IF_ERROR(Unsupported(ctx));
  RETURN_IF_ERROR(ExpectDtype(ctx, 1, "shape", {DataType::kInt64}));
  if (ctx.input_rank(1) != 1) {
    return ctx.Error(absl::StrCat("input 1 ('shape') must be 1-D, got shape ",
                                  ShapeToString(ctx.input_shape(1))));
  }
  ASSIGN_OR_RETURN(auto shape, ConstantInts(ctx, 1, "shape"));
  for (int64_t d : shape) {
    if (d < 0) {
      return ctx.Error(
          absl::StrCat("shape [", absl::StrJoin(shape, ","), "] has a negative dimension"));
    }
  }
  auto out = BroadcastShapes(ctx.input_shape(0), shape);
  if (!out.ok()) return NodeError(ctx, out.status());
  ctx.set_output(0, ctx.input_dtype(0), *out);
  return absl::OkStatus();
}

// Source strides for reading `in_shape` broadcast to `out_shape`.
std::vector<int64_t> BroadcastStrides(const Shape& in_shape, const Shape& out_shape) {
  std::vector<int64_t> in_strides = ContiguousStrides(in_shape);
  std::vector<int64_t> strides(out_shape.size(), 0);
  size_t lead = out_shape.size() - in_shape.size();
  for (size_t d = 0; d < in_shape.size(); ++d)
    strides[lead + d] = in_shape[d] == 1 ? 0 : in_strides[d];
  return strides;
}

absl::Status CheckExpandRuntime(KernelContext& ctx) {
  ASSIGN_OR_RETURN(auto shape, RuntimeInts(ctx.node(), ctx.input(1), "shape"));
  auto out = BroadcastShapes(ctx.input(0)->shape(), shape);
  if (!out.ok()) return NodeError(ctx.node(), out.status());
  return CheckOutputShape(ctx.node(), *ctx.output(0), *out);
}

void RegisterExpand(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Expand";
  s.min_opset = 8;
  s.min_inputs = s.max_inputs = 2;
  s.min_outputs = s.max_outputs = 1;
  s.infer = InferExpand;
  s.non_differentiable_inputs = {1};
  s.kernels.push_back(MakeCandidate("fast", [](const KernelBuildContext& b) {
    return NeedStorable(b, [](KernelContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(CheckExpandRuntime(ctx));
      const Tensor& in = *ctx.input(0);
      Tensor& out = *ctx.output(0);
      StridedCopy(out.raw_data(), in.raw_data(), out.shape(),
                  BroadcastStrides(in.shape(), out.shape()), 0, DataTypeSize(in.dtype()));
      return absl::OkStatus();
    });
  }));
  s.kernels.push_back(MakeCandidate("reference", [](const KernelBuildContext& b) {
    return NeedStorable(b, [](KernelContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(CheckExpandRuntime(ctx));
      const Tensor& in = *ctx.input(0);
      Tensor& out = *ctx.output(0);
      std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
      size_t lead = out.rank() - in.rank(), es = DataTypeSize(in.dtype());
      ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
        int64_t src = 0;
        for (int64_t d = 0; d < in.rank(); ++d)
          src += (in.dim(d) == 1 ? 0 : idx[lead + d]) * in_strides[d];
        CopyElement(out.raw_data(), linear, in.raw_data(), src, es);
      });
      return absl::OkStatus();
    });
  }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Tile

absl::StatusOr<Shape> TileShape(const Shape& in, const std::vector<int64_t>& repeats) {
  if (repeats.size() != in.size()) {
    return absl::InvalidArgumentError(absl::StrCat("repeats [", absl::StrJoin(repeats, ","),
                                                   "] has ", repeats.size(),
                                                   " entries but the input has rank ", in.size()));
  }
  Shape out;
  for (size_t d = 0; d < in.size(); ++d) {
    if (repeats[d] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("repeats [", absl::StrJoin(repeats, ","), "] has a negative entry"));
    }
    out.push_back(in[d] * repeats[d]);
  }
  return out;
}

absl::Status InferTile(InferenceContext& ctx) {
  RETURN_IF_ERROR(Unsupported(ctx));
  RETURN_IF_ERROR(ExpectDtype(ctx, 1, "repeats", {DataType::kInt64}));
  if (ctx.input_rank(1) != 1) {
    return ctx.Error(absl::StrCat("input 1 ('repeats') must be 1-D, got shape ",
                                  ShapeToString(ctx.input_shape(1))));
  }
  ASSIGN_OR_RETURN(auto repeats, ConstantInts(ctx, 1, "repeats"));
  auto out = TileShape(ctx.input_shape(0), repeats);
  if (!out.ok()) return NodeError(ctx, out.status());
  ctx.set_output(0, ctx.input_dtype(0), *out);
  return absl::OkStatus();
}

absl::Status CheckTileRuntime(KernelContext& ctx) {
  ASSIGN_OR_RETURN(auto repeats, RuntimeInts(ctx.node(), ctx.input(1), "repeats"));
  auto out = TileShape(ctx.input(0)->shape(), repeats);
  if (!out.ok()) return NodeError(ctx.node(), out.status());
  return CheckOutputShape(ctx.node(), *ctx.output(0), *out);
}

void RegisterTile(OpRegistry& registry) {
  OpSchema s;
  s.op_type = "Tile";
  s.min_opset = 7;
  s.min_inputs = s.max_inputs = 2;
  s.min_outputs = s.max_outputs = 1;
  s.infer = InferTile;
  s.non_differentiable_inputs = {1};
  s.kernels.push_back(MakeCandidate("fast", [](const KernelBuildContext& b) {
    return NeedStorable(b, [](KernelContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(CheckTileRuntime(ctx));
      const Tensor& in = *ctx.input(0);
      Tensor& out = *ctx.output(0);
      // The output [r0*d0, r1*d1, ...] has the layout of [r0, d0, r1, d1, ...]
      // reading the input with stride 0 over each repeat dim.
      std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
      Shape split_shape;
      std::vector<int64_t> strides;
      for (int64_t d = 0; d < in.rank(); ++d) {
        split_shape.push_back(in.dim(d) == 0 ? 0 : out.dim(d) / in.dim(d));
        split_shape.push_back(in.dim(d));
        strides.push_back(0);
        strides.push_back(in_strides[d]);
      }
      StridedCopy(out.raw_data(), in.raw_data(), split_shape, strides, 0, DataTypeSize(in.dtype()));
      return absl::OkStatus();
    });
  }));
  s.kernels.push_back(MakeCandidate("reference", [](const KernelBuildContext& b) {
    return NeedStorable(b, [](KernelContext& ctx) -> absl::Status {
      RETURN_IF_ERROR(CheckTileRuntime(ctx));
      const Tensor& in = *ctx.input(0);
      Tensor& out = *ctx.output(0);
      std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
      size_t es = DataTypeSize(in.dtype());
      ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
        int64_t src = 0;
        for (int64_t d = 0; d < in.rank(); ++d) src += (idx[d] % in.dim(d)) * in_strides[d];
        CopyElement(out.raw_data(), linear, in.raw_data(), src, es);
      });
      return absl::OkStatus();
    });
  }));
  registry.Register(std::move(s));
}

// ---------------------------------------------------------------------------
// Pad

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

struct PadParams {
  PadMode mode = PadMode::kConstant;
  std::vector<int64_t> begin, end;  // per dim, may be negative (crop)
  Shape out_shape;
};

absl::StatusOr<PadMode> ParsePadMode(const graph::Node& node, int64_t opset) {
  std::string mode = node.GetString("mode", "constant");
  if (mode == "constant") return PadMode::kConstant;
  if (mode == "reflect") return PadMode::kReflect;
  if (mode == "edge") return PadMode::kEdge;
  if (mode == "wrap" && opset >= 19) return PadMode::kWrap;
  return absl::InvalidArgumentError(
      absl::StrCat("mode '", mode, "' is not one of constant, reflect, edge",
                   opset >= 19 ? ", wrap" : " (wrap needs opset 19)"));
}

// `pads` is [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over `axes` (all
// dims when `axes` is null).
absl::StatusOr<PadParams> ComputePad(const graph::Node& node, int64_t opset, const Shape& shape,
                                     const std::vector<int64_t>& pads,
                                     const std::vector<int64_t>* axes_in) {
  PadParams p;
  ASSIGN_OR_RETURN(p.mode, ParsePadMode(node, opset));
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<int64_t> axes;
  if (axes_in != nullptr) {
    ASSIGN_OR_RETURN(axes, NormalizeAxes(*axes_in, rank, opset, 0, "axes"));
  } else {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  const int64_t n = static_cast<int64_t>(axes.size());
  if (static_cast<int64_t>(pads.size()) != 2 * n) {
    return absl::InvalidArgumentError(absl::StrCat("pads [", absl::StrJoin(pads, ","), "] has ",
                                                   pads.size(), " entries; expected 2 * ", n, " = ",
                                                   2 * n));
  }
  p.begin.assign(rank, 0);
  p.end.assign(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    p.begin[axes[i]] = pads[i];
    p.end[axes[i]] = pads[n + i];
  }
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t kept =
        shape[d] + std::min<int64_t>(p.begin[d], 0) + std::min<int64_t>(p.end[d], 0);
    const int64_t out = shape[d] + p.begin[d] + p.end[d];
    if (kept < 0 || out < 0) {
      return absl::InvalidArgumentError(absl::StrCat("negative pads (", p.begin[d], ", ", p.end[d],
                                                     ") crop more than dim ", d, " (size ",
                                                     shape[d], ") holds"));
    }
    if (p.mode != PadMode::kConstant && kept == 0 && out > 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot pad dim ", d, " in mode '",
                                                     node.GetString("mode", "constant"),
                                                     "' because it has no elements to copy from"));
    }
    p.out_shape.push_back(out);
  }
  return p;
}

// For each output index along one dim, the input index it copies, or -1 for
// the constant value. Negative pads crop first, then the remaining elements
// are padded, as numpy.pad on the cropped array would.
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

absl::StatusOr<PadParams> PadFromNode(
    const graph::Node& node, int64_t opset, const Shape& shape,
    const std::function<absl::StatusOr<std::vector<int64_t>>(size_t, const char*)>& value) {
  if (opset < 11) {
    const graph::Attribute* pads = node.FindAttribute("pads");
    if (pads == nullptr) {
      return absl::InvalidArgumentError("Pad before opset 11 needs the 'pads' attribute");
    }
    return ComputePad(node, opset, shape, pads->ints, nullptr);
  }
  ASSIGN_OR_RETURN(auto pads, value(1, "pads"));
  if (opset >= 18 && node.HasInput(3)) {
    ASSIGN_OR_RETURN(auto axes, value(3, "axes"));
    return ComputePad(node, opset, shape, pads, &axes);
  }
  return ComputePad(node, opset, shape, pads, nullptr);
}

absl::Status InferPad(InferenceContext& ctx) {
  RETURN_IF_ERROR(Unsupported(ctx));
  if (ctx.opset() >= 11) {
    RETURN_IF_ERROR(ExpectDtype(ctx, 1, "pads", {DataType::kInt64}));
    if (ctx.has_input(2)) {
      if (ctx.input_dtype(2) != ctx.input_dtype(0) || NumElements(ctx.input_shape(2)) != 1) {
        return ctx.Error(absl::StrCat(
            "input 2 ('constant_value') must be a one-element ", DataTypeName(ctx.input_dtype(0)),
            " tensor; got ", DataTypeName(ctx.input_dtype(2)), ShapeToString(ctx.input_shape(2))));
      }
    }
    if (ctx.has_input(3)) {
      RETURN_IF_ERROR(ExpectDtype(ctx, 3, "axes", {DataType::kInt32, DataType::kInt64}));
    }
  }
  auto p = PadFromNode(ctx.node(), ctx.opset(), ctx.input_shape(0),
                       [&](size_t i, const char* name) { return ConstantInts(ctx, i, name); });
  if (!p.ok()) return NodeError(ctx, p.status());
  ctx.set_output(0, ctx.input_dtype(0), p->out_shape);
  return absl::OkStatus();
}

struct PadRun {
  PadParams params;
  std::vector<std::vector<int64_t>> maps;
  std::vector<char> fill;  // the constant value's bytes
};

absl::StatusOr<PadRun> RuntimePad(const KernelContext& ctx, int64_t opset) {
  const Tensor& in = *ctx.input(0);
  auto p = PadFromNode(ctx.node(), opset, in.shape(), [&](size_t i, const char* name) {
    return RuntimeInts(ctx.node(), ctx.input(i), name);
  });
  if (!p.ok()) return NodeError(ctx.node(), p.status());
  RETURN_IF_ERROR(CheckOutputShape(ctx.node(), *ctx.output(0), p->out_shape));
  PadRun run;
  run.params = *p;
  for (int64_t d = 0; d < in.rank(); ++d)
    run.maps.push_back(PadIndexMap(in.dim(d), p->begin[d], p->end[d], p->mode));
  size_t es = DataTypeSize(in.dtype());
  if (opset < 11) {
    run.fill = ElementBytes(in.dtype(), ctx.node().GetFloat("value", 0.f));
  } else if (ctx.input(2) != nullptr && ctx.input(2)->num_elements() == 1) {
    const char* v = ctx.input(2)->data<char>();
    run.fill.assign(v, v + es);
  } else {
    run.fill.assign(es, 0);
  }
  return run;
}

void RunPadFast(const Tensor& in, Tensor& out, const PadRun& run) {
  const size_t es = DataTypeSize(in.dtype());
  const int64_t rank = in.rank();
  char* dst = static_cast<char*>(out.raw_data());
  const char* src = static_cast<const char*>(in.raw_data());
  const int64_t total = out.num_elements();
  if (total == 0) return;
  if (rank == 0) {
    std::memcpy(dst, src, es);
    return;
  }
  const std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
  const int64_t n = out.dim(rank - 1), rows = total / n;
  const std::vector<int64_t>& inner = run.maps[rank - 1];
  // The run [lo, hi) from the first copied position whose source indices
  // increase by one (the interior) is copied with one memcpy per row.
  int64_t lo = 0, hi = 0;
  while (lo < n && inner[lo] < 0) ++lo;
  hi = lo;
  while (hi < n && inner[hi] >= 0 && (hi == lo || inner[hi] == inner[hi - 1] + 1)) ++hi;
  const int threads = CopyThreads(total * static_cast<int64_t>(es));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    char* d = dst + row * n * es;
    int64_t rem = row, off = 0;
    bool constant_row = false;
    for (int64_t k = rank - 2; k >= 0; --k) {
      int64_t i = run.maps[k][rem % out.dim(k)];
      rem /= out.dim(k);
      if (i < 0) {
        constant_row = true;
        break;
      }
      off += i * in_strides[k];
    }
    if (constant_row) {
      for (int64_t o = 0; o < n; ++o) std::memcpy(d + o * es, run.fill.data(), es);
      continue;
    }
    const char* s = src + off * es;
    for (int64_t o = 0; o < lo; ++o)
      std::memcpy(d + o * es, inner[o] < 0 ? run.fill.data() : s + inner[o] * es, es);
    if (hi > lo) std::memcpy(d + lo * es, s + inner[lo] * es, (hi - lo) * es);
    for (int64_t o = hi; o < n; ++o)
      std::memcpy(d + o * es, inner[o] < 0 ? run.fill.data() : s + inner[o] * es, es);
  }
}

void RegisterPad(OpRegistry& registry) {
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{7, 10}, {11, 21}}) {
    OpSchema s;
    s.op_type = "Pad";
    s.min_opset = lo;
    s.max_opset = hi;
    s.min_inputs = lo < 11 ? 1 : 2;
    s.max_inputs = lo < 11 ? 1 : 4;
    s.min_outputs = s.max_outputs = 1;
    s.infer = InferPad;
    if (lo >= 11) s.non_differentiable_inputs = {1, 2, 3};
    s.kernels.push_back(MakeCandidate("fast", [](const KernelBuildContext& b) {
      int64_t opset = b.opset;
      return NeedStorable(b, [opset](KernelContext& ctx) -> absl::Status {
        ASSIGN_OR_RETURN(PadRun run, RuntimePad(ctx, opset));
        RunPadFast(*ctx.input(0), *ctx.output(0), run);
        return absl::OkStatus();
      });
    }));
    s.kernels.push_back(MakeCandidate("reference", [](const KernelBuildContext& b) {
      int64_t opset = b.opset;
      return NeedStorable(b, [opset](KernelContext& ctx) -> absl::Status {
        ASSIGN_OR_RETURN(PadRun run, RuntimePad(ctx, opset));
        const Tensor& in = *ctx.input(0);
        Tensor& out = *ctx.output(0);
        std::vector<int64_t> in_strides = ContiguousStrides(in.shape());
        size_t es = DataTypeSize(in.dtype());
        ForEachIndex(out.shape(), [&](const std::vector<int64_t>& idx, int64_t linear) {
          int64_t src = 0;
          for (size_t d = 0; d < idx.size(); ++d) {
            int64_t i = run.maps[d][idx[d]];
            if (i < 0) {
              CopyElement(out.raw_data(), linear, run.fill.data(), 0, es);
              return;
            }
            src += i * in_strides[d];
          }
          CopyElement(out.raw_data(), linear, in.raw_data(), src, es);
        });
        return absl::OkStatus();
      });
    }));
    registry.Register(std::move(s));
  }
}

}  // namespace

void AddShapeMovementSchemas(OpRegistry& registry) {
  RegisterTranspose(registry);
  RegisterSlice(registry);
  RegisterExpand(registry);
  RegisterTile(registry);
  RegisterPad(registry);
}

}  // namespace lasgd::ops::shape_internal
