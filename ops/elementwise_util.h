// Helpers shared by the elementwise and activation op families: dtype
// dispatch, half-precision conversion, numpy broadcasting index plans, and
// small builders for unary ops.
//
// Kernels are written once per *compute type*: float16 and bfloat16 values
// are loaded as float, computed on, and rounded once when stored, which is
// what numpy (and thus the ONNX reference outputs) does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/op_registry.h"

namespace lasgd::ops::ew {

// ---- storage types that are not plain C++ arithmetic types ----

struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};
// bool tensors hold one byte per element; a distinct type keeps them apart
// from uint8 in dispatch (Cast to bool is `x != 0`, to uint8 is a truncation).
struct Bool8 {
  uint8_t value;
};

inline float HalfBitsToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, as numpy's float32 -> float16 conversion.
inline uint16_t FloatToHalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf stays inf; NaN stays a quiet NaN
    return sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u);
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504
  if (abs < 0x38800000u) {                        // half subnormal (unit 2^-24) or zero
    float af;
    std::memcpy(&af, &abs, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(af * 16777216.0f));
  }
  uint32_t odd = (abs >> 13) & 1u;
  abs += 0xc8000000u + 0xfffu + odd;  // rebias the exponent (127 -> 15) and round
  return sign | static_cast<uint16_t>(abs >> 13);
}

inline float BFloat16BitsToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even (what onnx.numpy_helper and PyTorch do).
inline uint16_t FloatToBFloat16Bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// Compute<T>::type is what kernels compute in; Load/Store convert.
template <typename T>
struct Compute {
  using type = T;
  static T Load(T v) { return v; }
  static T Store(T v) { return v; }
};
template <>
struct Compute<Float16> {
  using type = float;
  static float Load(Float16 v) { return HalfBitsToFloat(v.bits); }
  static Float16 Store(float v) { return Float16{FloatToHalfBits(v)}; }
};
template <>
struct Compute<BFloat16> {
  using type = float;
  static float Load(BFloat16 v) { return BFloat16BitsToFloat(v.bits); }
  static BFloat16 Store(float v) { return BFloat16{FloatToBFloat16Bits(v)}; }
};
template <>
struct Compute<Bool8> {
  using type = bool;
  static bool Load(Bool8 v) { return v.value != 0; }
  static Bool8 Store(bool v) { return Bool8{static_cast<uint8_t>(v ? 1 : 0)}; }
};

// Converts between compute types with defined results where C++ leaves them
// undefined: NaN -> 0 and saturation for float -> integer (then modular
// narrowing, matching numpy's astype on x86 for in-int64-range values).
template <typename To, typename From>
To ConvertScalar(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (std::isnan(v)) return To(0);
    if constexpr (std::is_same_v<To, uint64_t>) {
      if (v >= 18446744073709551615.0) return std::numeric_limits<uint64_t>::max();
      if (v >= 0) return static_cast<uint64_t>(v);
    }
    if (v <= -9223372036854775808.0) return static_cast<To>(std::numeric_limits<int64_t>::min());
    if (v >= 9223372036854775807.0) return static_cast<To>(std::numeric_limits<int64_t>::max());
    return static_cast<To>(static_cast<int64_t>(v));
  } else {
    return static_cast<To>(v);
  }
}

// ---- dtype sets and dispatch ----

enum TypeBits : uint32_t {
  kF32 = 1u << 0,
  kF64 = 1u << 1,
  kF16 = 1u << 2,
  kBF16 = 1u << 3,
  kI8 = 1u << 4,
  kI16 = 1u << 5,
  kI32 = 1u << 6,
  kI64 = 1u << 7,
  kU8 = 1u << 8,
  kU16 = 1u << 9,
  kU32 = 1u << 10,
  kU64 = 1u << 11,
  kBoolBit = 1u << 12,
};
constexpr uint32_t kFloatTypes = kF32 | kF64 | kF16 | kBF16;
constexpr uint32_t kSignedInts = kI8 | kI16 | kI32 | kI64;
constexpr uint32_t kUnsignedInts = kU8 | kU16 | kU32 | kU64;
constexpr uint32_t kNumeric = kFloatTypes | kSignedInts | kUnsignedInts;
constexpr uint32_t kAllTypes = kNumeric | kBoolBit;

inline uint32_t TypeBit(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return kF32;
    case DataType::kFloat64:
      return kF64;
    case DataType::kFloat16:
      return kF16;
    case DataType::kBFloat16:
      return kBF16;
    case DataType::kInt8:
      return kI8;
    case DataType::kInt16:
      return kI16;
    case DataType::kInt32:
      return kI32;
    case DataType::kInt64:
      return kI64;
    case DataType::kUint8:
      return kU8;
    case DataType::kUint16:
      return kU16;
    case DataType::kUint32:
      return kU32;
    case DataType::kUint64:
      return kU64;
    case DataType::kBool:
      return kBoolBit;
    default:
      return 0;
  }
}

inline std::string TypeSetString(uint32_t mask) {
  static const DataType kOrder[] = {DataType::kFloat32,  DataType::kFloat64, DataType::kFloat16,
                                    DataType::kBFloat16, DataType::kInt8,    DataType::kInt16,
                                    DataType::kInt32,    DataType::kInt64,   DataType::kUint8,
                                    DataType::kUint16,   DataType::kUint32,  DataType::kUint64,
                                    DataType::kBool};
  std::vector<std::string> names;
  for (DataType d : kOrder) {
    if (mask & TypeBit(d)) names.push_back(DataTypeName(d));
  }
  return absl::StrJoin(names, ", ");
}

template <typename T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) for the C++ storage type of `dtype`; only the types in
// kMask are instantiated.
template <uint32_t kMask, typename F>
absl::Status DispatchType(DataType dtype, F&& f) {
  switch (dtype) {
#define LASGD_EW_CASE(DT, BIT, TYPE)    \
  case DataType::DT:                    \
    if constexpr ((kMask & BIT) != 0) { \
      return f(Tag<TYPE>{});            \
    }                                   \
    break;
    LASGD_EW_CASE(kFloat32, kF32, float)
    LASGD_EW_CASE(kFloat64, kF64, double)
    LASGD_EW_CASE(kFloat16, kF16, Float16)
    LASGD_EW_CASE(kBFloat16, kBF16, BFloat16)
    LASGD_EW_CASE(kInt8, kI8, int8_t)
    LASGD_EW_CASE(kInt16, kI16, int16_t)
    LASGD_EW_CASE(kInt32, kI32, int32_t)
    LASGD_EW_CASE(kInt64, kI64, int64_t)
    LASGD_EW_CASE(kUint8, kU8, uint8_t)
    LASGD_EW_CASE(kUint16, kU16, uint16_t)
    LASGD_EW_CASE(kUint32, kU32, uint32_t)
    LASGD_EW_CASE(kUint64, kU64, uint64_t)
    LASGD_EW_CASE(kBool, kBoolBit, Bool8)
#undef LASGD_EW_CASE
    default:
      break;
  }
  return absl::UnimplementedError(
      absl::StrCat("dtype ", DataTypeName(dtype),
                   " is not supported here (supported: ", TypeSetString(kMask), ")"));
}

// ---- shape-function helpers ----

inline absl::Status CheckInputType(const InferenceContext& ctx, size_t i, uint32_t mask) {
  DataType dt = ctx.input_dtype(i);
  if (TypeBit(dt) & mask) return absl::OkStatus();
  return ctx.Error(absl::StrCat("input ", i, " ('", ctx.node().inputs[i], "') has dtype ",
                                DataTypeName(dt), "; ", ctx.node().op_type, " at opset ",
                                ctx.opset(), " accepts ", TypeSetString(mask)));
}

inline absl::Status CheckSameType(const InferenceContext& ctx, size_t i, size_t j) {
  if (ctx.input_dtype(i) == ctx.input_dtype(j)) return absl::OkStatus();
  return ctx.Error(absl::StrCat("inputs ", i, " and ", j, " must have the same dtype; got ",
                                DataTypeName(ctx.input_dtype(i)), " and ",
                                DataTypeName(ctx.input_dtype(j))));
}

// Broadcasts the shapes of the given present inputs, naming the node on failure.
inline absl::StatusOr<Shape> BroadcastInputs(const InferenceContext& ctx,
                                             const std::vector<size_t>& inputs) {
  Shape out;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Shape& s = ctx.input_shape(inputs[k]);
    if (k == 0) {
      out = s;
      continue;
    }
    auto b = BroadcastShapes(out, s);
    if (!b.ok()) {
      return ctx.Error(
          absl::StrCat("input ", inputs[k], " ", ShapeToString(s),
                       " does not broadcast with the earlier inputs: ", b.status().message()));
    }
    out = *b;
  }
  return out;
}

// A float attribute; ints are accepted because some exporters write them.
inline absl::StatusOr<float> FloatAttr(const graph::Node& node, const std::string& name,
                                       float default_value) {
  const graph::Attribute* a = node.FindAttribute(name);
  if (!a) return default_value;
  if (a->kind == graph::Attribute::Kind::kFloat) return a->f;
  if (a->kind == graph::Attribute::Kind::kInt) return static_cast<float>(a->i);
  return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": attribute '", name,
                                                 "' must be a float, got ", a->ToString()));
}

inline absl::StatusOr<int64_t> IntAttr(const graph::Node& node, const std::string& name,
                                       int64_t default_value) {
  const graph::Attribute* a = node.FindAttribute(name);
  if (!a) return default_value;
  if (a->kind == graph::Attribute::Kind::kInt) return a->i;
  return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": attribute '", name,
                                                 "' must be an int, got ", a->ToString()));
}

// ---- kernels ----

class FunctionKernel : public Kernel {
 public:
  explicit FunctionKernel(std::function<absl::Status(KernelContext&)> fn) : fn_(std::move(fn)) {}
  absl::Status Run(KernelContext& ctx) override { return fn_(ctx); }

 private:
  std::function<absl::Status(KernelContext&)> fn_;
};

inline absl::StatusOr<std::unique_ptr<Kernel>> MakeKernel(
    std::function<absl::Status(KernelContext&)> fn) {
  return std::unique_ptr<Kernel>(new FunctionKernel(std::move(fn)));
}

inline double ElementsFlops(const std::vector<Shape>& outputs, double per_element) {
  return outputs.empty() ? 0.0 : per_element * static_cast<double>(NumElements(outputs[0]));
}

// ---- broadcasting ----

// Element strides of `in` over the dims of `out` (numpy right alignment), 0
// along broadcast dims.
inline std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (int64_t d = static_cast<int64_t>(in.size()) - 1; d >= 0; --d) {
    int64_t od = d + static_cast<int64_t>(out.size()) - static_cast<int64_t>(in.size());
    strides[od] = in[d] == 1 ? 0 : stride;
    stride *= in[d];
  }
  return strides;
}

// Reference indexing: the offset into each input of one output element, by
// unravelling the flat output index. Slow and obviously right.
class BroadcastIndexer {
 public:
  BroadcastIndexer(const std::vector<Shape>& inputs, const Shape& out) : out_(out) {
    for (const Shape& s : inputs) strides_.push_back(BroadcastStrides(s, out));
  }
  int64_t Offset(size_t input, int64_t flat) const {
    int64_t offset = 0;
    for (int64_t d = static_cast<int64_t>(out_.size()) - 1; d >= 0; --d) {
      offset += (flat % out_[d]) * strides_[input][d];
      flat /= out_[d];
    }
    return offset;
  }

 private:
  Shape out_;
  std::vector<std::vector<int64_t>> strides_;
};

// Fast indexing: the output viewed as rows over its collapsed last dim, where
// every input is either contiguous (stride 1) or constant (stride 0) along a
// row. Built once per plan from static shapes.
class RowPlan {
 public:
  RowPlan() = default;
  RowPlan(const std::vector<Shape>& inputs, const Shape& out) {
    std::vector<std::vector<int64_t>> full;
    for (const Shape& s : inputs) full.push_back(BroadcastStrides(s, out));
    strides_.resize(inputs.size());
    for (size_t d = 0; d < out.size(); ++d) {
      if (out[d] == 1) continue;  // size-1 dims index nothing
      bool merge = !dims_.empty();
      for (size_t k = 0; merge && k < inputs.size(); ++k) {
        merge = strides_[k].back() == full[k][d] * out[d];
      }
      if (merge) {
        dims_.back() *= out[d];
        for (size_t k = 0; k < inputs.size(); ++k) strides_[k].back() = full[k][d];
      } else {
        dims_.push_back(out[d]);
        for (size_t k = 0; k < inputs.size(); ++k) strides_[k].push_back(full[k][d]);
      }
    }
    if (dims_.empty()) {  // a scalar output
      dims_.push_back(1);
      for (auto& s : strides_) s.push_back(0);
    }
    row_len_ = dims_.back();
    total_ = NumElements(out);
  }
  int64_t row_len() const { return row_len_; }
  int64_t total() const { return total_; }
  // 0 or 1: how input k advances along a row.
  int64_t inner_stride(size_t k) const { return strides_[k].back(); }
  int64_t RowOffset(size_t k, int64_t row) const {
    int64_t offset = 0;
    for (int64_t d = static_cast<int64_t>(dims_.size()) - 2; d >= 0; --d) {
      offset += (row % dims_[d]) * strides_[k][d];
      row /= dims_[d];
    }
    return offset;
  }

 private:
  Shape dims_;
  std::vector<std::vector<int64_t>> strides_;
  int64_t row_len_ = 1;
  int64_t total_ = 0;
};

// Splits [0, total) into blocks run on OpenMP threads and calls
// f(row, start, len) for each piece of a row inside a block, so that both
// many short rows and one long row are spread over the threads.
template <typename F>
void ParallelRowSegments(int64_t total, int64_t row_len, F&& f) {
  if (total <= 0 || row_len <= 0) return;
  constexpr int64_t kGrain = 16384;
  const int64_t blocks = (total + kGrain - 1) / kGrain;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t pos = b * kGrain;
    const int64_t end = std::min(total, pos + kGrain);
    while (pos < end) {
      const int64_t row = pos / row_len, start = pos % row_len;
      const int64_t len = std::min(row_len - start, end - pos);
      f(row, start, len);
      pos += len;
    }
  }
}

// Applies op to contiguous float32 data on all threads.
template <typename Op>
void ParallelUnaryF32(const float* x, float* y, int64_t n, const Op& op) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] = op(x[i]);
}

// ---- unary ops ----

// A unary op: Op is a copyable functor with `template <typename C> C
// operator()(C x) const` over compute types, built from the node by `make`.
template <typename Op>
struct UnarySpec {
  std::string domain;
  std::string op_type;
  int64_t min_opset = 7;
  int64_t max_opset = 21;
  double flops_per_element = 1.0;
  std::function<absl::StatusOr<Op>(const graph::Node&)> make;
};

template <typename Op, uint32_t kMask>
absl::Status RunUnaryReference(const Op& op, const Tensor& x, Tensor& y) {
  return DispatchType<kMask>(x.dtype(), [&](auto tag) -> absl::Status {
    using T = typename decltype(tag)::type;
    using C = typename Compute<T>::type;
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const int64_t n = x.num_elements();
    for (int64_t i = 0; i < n; ++i) out[i] = Compute<T>::Store(op(C(Compute<T>::Load(in[i]))));
    return absl::OkStatus();
  });
}

// Registers the schema of a unary op with a "fast" float32 OpenMP kernel and
// a "reference" kernel for every dtype in kMask.
template <uint32_t kMask, typename Op>
void RegisterUnary(OpRegistry& registry, UnarySpec<Op> spec) {
  OpSchema s;
  s.domain = spec.domain;
  s.op_type = spec.op_type;
  s.min_opset = spec.min_opset;
  s.max_opset = spec.max_opset;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  auto make = spec.make;
  s.infer = [make](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(CheckInputType(ctx, 0, kMask));
    auto op = make(ctx.node());
    if (!op.ok()) return op.status();
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
           const Tensor& x = *ctx.input(0);
           ParallelUnaryF32(x.data<float>(), ctx.output(0)->data<float>(), x.num_elements(), op);
           return absl::OkStatus();
         });
       }});
  s.kernels.push_back(
      {"reference", [make](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (!(TypeBit(b.input_dtypes[0]) & kMask)) {
           return absl::UnimplementedError(
               absl::StrCat("dtype ", DataTypeName(b.input_dtypes[0]), " is not supported"));
         }
         ASSIGN_OR_RETURN(Op op, make(b.node));
         return MakeKernel([op](KernelContext& ctx) {
           return RunUnaryReference<Op, kMask>(op, *ctx.input(0), *ctx.output(0));
         });
       }});
  double per = spec.flops_per_element;
  s.flops = [per](const graph::Node&, const std::vector<Shape>&, const std::vector<Shape>& out) {
    return ElementsFlops(out, per);
  };
  registry.Register(std::move(s));
}

// For ops without attributes.
template <typename Op>
std::function<absl::StatusOr<Op>(const graph::Node&)> NoAttributes() {
  return [](const graph::Node&) -> absl::StatusOr<Op> { return Op{}; };
}

}  // namespace lasgd::ops::ew
