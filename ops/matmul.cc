// MatMul (numpy semantics) and Gemm (BLAS semantics with alpha, beta and an
// optional broadcast C).
//
// The oneDNN candidate handles float32; the reference handles float32,
// float64 and the integer types the spec allows (int32, int64, uint32,
// uint64 from opset 9). The reference accumulates floats in double and
// integers in uint64 so that integer overflow wraps like two's complement
// instead of being undefined behaviour.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/onednn_engine.h"
#include "ops/onednn_layout.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

using dnnl::memory;

// Which element types each opset allows; integers arrived in opset 9.
bool MatMulDtypeAllowed(DataType dtype, int64_t opset) {
  switch (dtype) {
    case DataType::kFloat32:
    case DataType::kFloat64:
      return true;
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kUint32:
    case DataType::kUint64:
      return opset >= 9;
    default:
      return false;
  }
}

std::string AllowedDtypesText(int64_t opset) {
  return opset >= 9 ? "float32, float64, int32, int64, uint32 or uint64" : "float32 or float64";
}

// The matrix and batch dimensions of one MatMul after numpy's 1-D promotion:
// A's batch dims and B's batch dims are padded with leading 1s to the rank of
// the broadcast output batch.
struct MatMulDims {
  Shape a_batch, b_batch, out_batch;
  int64_t m = 1, k = 1, n = 1;
  bool a_is_vector = false, b_is_vector = false;

  Shape OutputShape() const {
    Shape out = out_batch;
    if (!a_is_vector) out.push_back(m);
    if (!b_is_vector) out.push_back(n);
    return out;
  }
};

absl::StatusOr<MatMulDims> ComputeMatMulDims(const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("MatMul inputs must have rank >= 1; got A ",
                                                   ShapeToString(a), " and B ", ShapeToString(b)));
  }
  MatMulDims d;
  Shape a2 = a, b2 = b;
  d.a_is_vector = a.size() == 1;
  d.b_is_vector = b.size() == 1;
  if (d.a_is_vector) a2 = {1, a[0]};
  if (d.b_is_vector) b2 = {b[0], 1};
  d.m = a2[a2.size() - 2];
  d.k = a2[a2.size() - 1];
  d.n = b2[b2.size() - 1];
  int64_t kb = b2[b2.size() - 2];
  if (d.k != kb) {
    return absl::InvalidArgumentError(absl::StrCat("inner dimensions differ: A ", ShapeToString(a),
                                                   " has K=", d.k, " but B ", ShapeToString(b),
                                                   " has K=", kb));
  }
  d.a_batch.assign(a2.begin(), a2.end() - 2);
  d.b_batch.assign(b2.begin(), b2.end() - 2);
  auto out_batch = BroadcastShapes(d.a_batch, d.b_batch);
  if (!out_batch.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch dimensions of A ", ShapeToString(a), " and B ", ShapeToString(b),
                     " do not broadcast: ", out_batch.status().message()));
  }
  d.out_batch = *out_batch;
  d.a_batch.insert(d.a_batch.begin(), d.out_batch.size() - d.a_batch.size(), 1);
  d.b_batch.insert(d.b_batch.begin(), d.out_batch.size() - d.b_batch.size(), 1);
  return d;
}

template <typename T>
struct Accumulator {
  using type = uint64_t;  // integers: wrap-around arithmetic
};
template <>
struct Accumulator<float> {
  using type = double;
};
template <>
struct Accumulator<double> {
  using type = double;
};

template <typename T>
void MatMulReference(const MatMulDims& d, const T* a, const T* b, T* y) {
  using Acc = typename Accumulator<T>::type;
  const int64_t rank = static_cast<int64_t>(d.out_batch.size());
  const int64_t batch = NumElements(d.out_batch);
  std::vector<int64_t> a_strides = ContiguousStrides(d.a_batch);
  std::vector<int64_t> b_strides = ContiguousStrides(d.b_batch);
  for (int64_t bi = 0; bi < batch; ++bi) {
    int64_t rem = bi, a_index = 0, b_index = 0;
    for (int64_t axis = rank - 1; axis >= 0; --axis) {
      int64_t i = rem % d.out_batch[axis];
      rem /= d.out_batch[axis];
      if (d.a_batch[axis] != 1) a_index += i * a_strides[axis];
      if (d.b_batch[axis] != 1) b_index += i * b_strides[axis];
    }
    const T* am = a + a_index * d.m * d.k;
    const T* bm = b + b_index * d.k * d.n;
    T* ym = y + bi * d.m * d.n;
    for (int64_t i = 0; i < d.m; ++i) {
      for (int64_t j = 0; j < d.n; ++j) {
        Acc sum = 0;
        for (int64_t p = 0; p < d.k; ++p) {
          sum += static_cast<Acc>(am[i * d.k + p]) * static_cast<Acc>(bm[p * d.n + j]);
        }
        ym[i * d.n + j] = static_cast<T>(sum);
      }
    }
  }
}

class MatMulReferenceKernel : public Kernel {
 public:
  explicit MatMulReferenceKernel(MatMulDims dims) : dims_(std::move(dims)) {}
  absl::Status Run(KernelContext& ctx) override {
    const Tensor& a = *ctx.input(0);
    const Tensor& b = *ctx.input(1);
    Tensor& y = *ctx.output(0);
    switch (a.dtype()) {
      case DataType::kFloat32:
        return Go<float>(a, b, y);
      case DataType::kFloat64:
        return Go<double>(a, b, y);
      case DataType::kInt32:
        return Go<int32_t>(a, b, y);
      case DataType::kInt64:
        return Go<int64_t>(a, b, y);
      case DataType::kUint32:
        return Go<uint32_t>(a, b, y);
      case DataType::kUint64:
        return Go<uint64_t>(a, b, y);
      default:
        return absl::UnimplementedError(
            absl::StrCat("reference MatMul has no ", DataTypeName(a.dtype()), " kernel"));
    }
  }

 private:
  template <typename T>
  absl::Status Go(const Tensor& a, const Tensor& b, Tensor& y) {
    MatMulReference<T>(dims_, a.data<T>(), b.data<T>(), y.data<T>());
    return absl::OkStatus();
  }
  MatMulDims dims_;
};

memory::desc PlainDesc(const memory::dims& dims) {
  Shape shape(dims.begin(), dims.end());
  std::vector<int64_t> strides = ContiguousStrides(shape);
  return memory::desc(dims, memory::data_type::f32, memory::dims(strides.begin(), strides.end()));
}

// The same tensor with the layout left to oneDNN.
memory::desc AnyLayout(const memory::desc& md) {
  return memory::desc(md.dims(), md.data_type(), memory::format_tag::any);
}

// A oneDNN matmul whose primitive is created once, when the plan is built.
// B is read as stored (`weights_stored`) on every run, unless the plan marks
// it constant: then the primitive picks B's layout and B is reordered into it
// once, on the first run.
class OnednnMatMulKernel : public Kernel {
 public:
  OnednnMatMulKernel(dnnl::matmul::primitive_desc pd, bool has_bias, bool prefill_dst,
                     const memory::desc& weights_stored, bool constant_weights)
      : pd_(std::move(pd)),
        primitive_(pd_),
        has_bias_(has_bias),
        prefill_dst_(prefill_dst),
        constant_weights_(constant_weights) {
    weights_.Init(weights_stored, pd_.weights_desc(), /*is_output=*/false, /*slot=*/0);
  }

  // For Gemm's sum post-op path: writes beta * C (broadcast) into Y first.
  void set_prefill(double beta, int64_t c_rows, int64_t c_cols) {
    beta_ = beta;
    c_rows_ = c_rows;
    c_cols_ = c_cols;
  }

  absl::Status Run(KernelContext& ctx) override {
    Tensor& y = *ctx.output(0);
    if (prefill_dst_) PrefillWithC(*ctx.input(2), y);
    dnnl::engine& engine = onednn::CpuEngine();
    memory src(pd_.src_desc(), engine, const_cast<void*>(ctx.input(0)->raw_data()));
    memory dst(pd_.dst_desc(), engine, y.raw_data());
    try {
      dnnl::stream& stream = onednn::CpuStream();
      const void* b = ctx.input(1)->raw_data();
      if (constant_weights_ && !weights_.prepared()) weights_.Prepare(b, stream);
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights_.In(b, stream)}, {DNNL_ARG_DST, dst}};
      if (has_bias_) {
        args.emplace(DNNL_ARG_BIAS,
                     memory(pd_.bias_desc(), engine, const_cast<void*>(ctx.input(2)->raw_data())));
      }
      primitive_.execute(stream, args);
      stream.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN matmul failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  void PrefillWithC(const Tensor& c, Tensor& y) const {
    const float* cv = c.data<float>();
    float* yv = y.data<float>();
    const int64_t rows = y.dim(0), cols = y.dim(1);
    const float beta = static_cast<float>(beta_);
#pragma omp parallel for if (rows * cols > 65536)
    for (int64_t i = 0; i < rows; ++i) {
      const float* crow = cv + (c_rows_ == 1 ? 0 : i) * c_cols_;
      for (int64_t j = 0; j < cols; ++j) yv[i * cols + j] = beta * crow[c_cols_ == 1 ? 0 : j];
    }
  }

  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul primitive_;
  bool has_bias_;
  bool prefill_dst_;
  bool constant_weights_;
  onednn::Operand weights_;
  double beta_ = 0;
  int64_t c_rows_ = 1, c_cols_ = 1;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnMatMul(const KernelBuildContext& ctx) {
  for (size_t i = 0; i < 2; ++i) {
    if (ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError(absl::StrCat("oneDNN matmul here handles float32 only, got ",
                                                   DataTypeName(ctx.input_dtypes[i])));
    }
  }
  ASSIGN_OR_RETURN(MatMulDims d, ComputeMatMulDims(ctx.input_shapes[0], ctx.input_shapes[1]));
  if (d.m == 0 || d.n == 0 || d.k == 0 || NumElements(d.out_batch) == 0) {
    return absl::UnimplementedError("an empty dimension; left to the reference kernel");
  }
  memory::desc src, weights, dst;
  if (NumElements(d.b_batch) == 1) {
    // B is one matrix: all of A's rows form one big 2-D product.
    int64_t rows = NumElements(d.out_batch) * d.m;
    src = PlainDesc({rows, d.k});
    weights = PlainDesc({d.k, d.n});
    dst = PlainDesc({rows, d.n});
  } else if (d.a_batch == d.b_batch) {
    int64_t batch = NumElements(d.out_batch);
    src = PlainDesc({batch, d.m, d.k});
    weights = PlainDesc({batch, d.k, d.n});
    dst = PlainDesc({batch, d.m, d.n});
  } else {
    if (d.out_batch.size() + 2 > DNNL_MAX_NDIMS) {
      return absl::UnimplementedError(
          absl::StrCat("rank ", d.out_batch.size() + 2, " exceeds oneDNN's ", DNNL_MAX_NDIMS));
    }
    memory::dims sd(d.a_batch.begin(), d.a_batch.end()), wd(d.b_batch.begin(), d.b_batch.end()),
        dd(d.out_batch.begin(), d.out_batch.end());
    sd.insert(sd.end(), {d.m, d.k});
    wd.insert(wd.end(), {d.k, d.n});
    dd.insert(dd.end(), {d.m, d.n});
    src = PlainDesc(sd);
    weights = PlainDesc(wd);
    dst = PlainDesc(dd);
  }
  const bool constant_b = ctx.constant_input(1) != nullptr;
  try {
    dnnl::matmul::desc desc(src, constant_b ? AnyLayout(weights) : weights, dst);
    dnnl::matmul::primitive_desc pd(desc, onednn::CpuEngine());
    return std::unique_ptr<Kernel>(
        new OnednnMatMulKernel(std::move(pd), false, false, weights, constant_b));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(absl::StrCat("oneDNN refused this matmul: ", e.what()));
  }
}

absl::Status InferMatMul(InferenceContext& ctx) {
  DataType a = ctx.input_dtype(0), b = ctx.input_dtype(1);
  if (a != b) {
    return ctx.Error(absl::StrCat("A and B must have the same dtype; got ", DataTypeName(a),
                                  " and ", DataTypeName(b)));
  }
  if (!MatMulDtypeAllowed(a, ctx.opset())) {
    return ctx.Error(absl::StrCat("expected ", AllowedDtypesText(ctx.opset()), " inputs at opset ",
                                  ctx.opset(), "; got ", DataTypeName(a)));
  }
  auto dims = ComputeMatMulDims(ctx.input_shape(0), ctx.input_shape(1));
  if (!dims.ok()) return ctx.Error(std::string(dims.status().message()));
  ctx.set_output(0, a, dims->OutputShape());
  return absl::OkStatus();
}

double MatMulFlops(const graph::Node&, const std::vector<Shape>& inputs,
                   const std::vector<Shape>& outputs) {
  if (inputs.empty() || inputs[0].empty() || outputs.empty()) return 0;
  return 2.0 * static_cast<double>(NumElements(outputs[0])) * static_cast<double>(inputs[0].back());
}

// ---- Gemm ----

struct GemmParams {
  bool trans_a = false, trans_b = false;
  double alpha = 1, beta = 1;
  int64_t m = 0, k = 0, n = 0;
  bool has_c = false;
  int64_t c_rows = 1, c_cols = 1;  // C padded to 2-D; 1 means broadcast

  static GemmParams From(const graph::Node& node, const Shape& a, const Shape& b, const Shape* c) {
    GemmParams p;
    p.trans_a = node.GetInt("transA", 0) != 0;
    p.trans_b = node.GetInt("transB", 0) != 0;
    p.alpha = node.GetFloat("alpha", 1.f);
    p.beta = node.GetFloat("beta", 1.f);
    p.m = p.trans_a ? a[1] : a[0];
    p.k = p.trans_a ? a[0] : a[1];
    p.n = p.trans_b ? b[0] : b[1];
    if (c != nullptr) {
      p.has_c = true;
      if (c->size() == 2) {
        p.c_rows = (*c)[0];
        p.c_cols = (*c)[1];
      } else if (c->size() == 1) {
        p.c_cols = (*c)[0];
      }
    }
    return p;
  }
};

absl::Status InferGemm(InferenceContext& ctx) {
  DataType dtype = ctx.input_dtype(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input_dtype(i) != dtype) {
      return ctx.Error(absl::StrCat("A, B and C must share one dtype; input ", i, " is ",
                                    DataTypeName(ctx.input_dtype(i)), ", A is ",
                                    DataTypeName(dtype)));
    }
  }
  if (!MatMulDtypeAllowed(dtype, ctx.opset())) {
    return ctx.Error(absl::StrCat("expected ", AllowedDtypesText(ctx.opset()), " inputs at opset ",
                                  ctx.opset(), "; got ", DataTypeName(dtype)));
  }
  for (size_t i = 0; i < 2; ++i) {
    if (ctx.input_rank(i) != 2) {
      return ctx.Error(absl::StrCat("input ", i == 0 ? "A" : "B", " must be 2-D; got shape ",
                                    ShapeToString(ctx.input_shape(i))));
    }
  }
  const Shape* c = ctx.has_input(2) ? &ctx.input_shape(2) : nullptr;
  GemmParams p = GemmParams::From(ctx.node(), ctx.input_shape(0), ctx.input_shape(1), c);
  int64_t kb = p.trans_b ? ctx.input_shape(1)[1] : ctx.input_shape(1)[0];
  if (p.k != kb) {
    return ctx.Error(absl::StrCat("inner dimensions differ: A' has K=", p.k, ", B' has K=", kb,
                                  " (A ", ShapeToString(ctx.input_shape(0)), ", transA=", p.trans_a,
                                  ", B ", ShapeToString(ctx.input_shape(1)), ", transB=", p.trans_b,
                                  ")"));
  }
  if (c != nullptr) {
    bool ok =
        c->size() <= 2 && (p.c_rows == 1 || p.c_rows == p.m) && (p.c_cols == 1 || p.c_cols == p.n);
    if (!ok) {
      return ctx.Error(absl::StrCat("C of shape ", ShapeToString(*c),
                                    " does not broadcast unidirectionally to [", p.m, ",", p.n,
                                    "]"));
    }
  }
  ctx.set_output(0, dtype, {p.m, p.n});
  return absl::OkStatus();
}

template <typename T>
void GemmReference(const GemmParams& p, const T* a, const T* b, const T* c, T* y) {
  using Acc = typename Accumulator<T>::type;
  constexpr bool kIsFloat = std::is_floating_point<T>::value;
  const bool use_c = c != nullptr && p.beta != 0;
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      Acc sum = 0;
      for (int64_t q = 0; q < p.k; ++q) {
        T av = p.trans_a ? a[q * p.m + i] : a[i * p.k + q];
        T bv = p.trans_b ? b[j * p.k + q] : b[q * p.n + j];
        sum += static_cast<Acc>(av) * static_cast<Acc>(bv);
      }
      T cv = use_c ? c[(p.c_rows == 1 ? 0 : i) * p.c_cols + (p.c_cols == 1 ? 0 : j)] : T(0);
      if (!kIsFloat && p.alpha == 1 && p.beta == 1) {
        // Exact integer arithmetic in the common case.
        y[i * p.n + j] = static_cast<T>(sum + static_cast<Acc>(cv));
      } else {
        // Integers wrap to T before scaling, as integer arithmetic would.
        double product =
            kIsFloat ? static_cast<double>(sum) : static_cast<double>(static_cast<T>(sum));
        double value = p.alpha * product;
        if (use_c) value += p.beta * static_cast<double>(cv);
        y[i * p.n + j] = static_cast<T>(value);
      }
    }
  }
}

class GemmReferenceKernel : public Kernel {
 public:
  explicit GemmReferenceKernel(GemmParams p) : p_(p) {}
  absl::Status Run(KernelContext& ctx) override {
    switch (ctx.input(0)->dtype()) {
      case DataType::kFloat32:
        return Go<float>(ctx);
      case DataType::kFloat64:
        return Go<double>(ctx);
      case DataType::kInt32:
        return Go<int32_t>(ctx);
      case DataType::kInt64:
        return Go<int64_t>(ctx);
      case DataType::kUint32:
        return Go<uint32_t>(ctx);
      case DataType::kUint64:
        return Go<uint64_t>(ctx);
      default:
        return absl::UnimplementedError(
            absl::StrCat("reference Gemm has no ", DataTypeName(ctx.input(0)->dtype()), " kernel"));
    }
  }

 private:
  template <typename T>
  absl::Status Go(KernelContext& ctx) {
    const Tensor* c = ctx.input(2);
    GemmReference<T>(p_, ctx.input(0)->data<T>(), ctx.input(1)->data<T>(),
                     c != nullptr && c->defined() ? c->data<T>() : nullptr,
                     ctx.output(0)->data<T>());
    return absl::OkStatus();
  }
  GemmParams p_;
};

const Shape* OptionalShape(const KernelBuildContext& ctx, size_t i) {
  return ctx.node.HasInput(i) && i < ctx.input_shapes.size() ? &ctx.input_shapes[i] : nullptr;
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnGemm(const KernelBuildContext& ctx) {
  for (size_t i = 0; i < ctx.input_dtypes.size(); ++i) {
    if (ctx.node.HasInput(i) && ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError(absl::StrCat("oneDNN matmul here handles float32 only, got ",
                                                   DataTypeName(ctx.input_dtypes[i])));
    }
  }
  GemmParams p =
      GemmParams::From(ctx.node, ctx.input_shapes[0], ctx.input_shapes[1], OptionalShape(ctx, 2));
  if (p.m == 0 || p.n == 0 || p.k == 0) {
    return absl::UnimplementedError("an empty dimension; left to the reference kernel");
  }
  memory::desc src({p.m, p.k}, memory::data_type::f32,
                   p.trans_a ? memory::dims{1, p.m} : memory::dims{p.k, 1});
  memory::desc weights({p.k, p.n}, memory::data_type::f32,
                       p.trans_b ? memory::dims{1, p.k} : memory::dims{p.n, 1});
  memory::desc dst = PlainDesc({p.m, p.n});
  const bool use_c = p.has_c && p.beta != 0;
  const bool constant_b = ctx.constant_input(1) != nullptr;
  const memory::desc weights_wanted = constant_b ? AnyLayout(weights) : weights;
  try {
    if (use_c && p.alpha == 1 && p.beta == 1) {
      // The Linear-layer case: C is a bias that oneDNN adds itself.
      try {
        dnnl::matmul::desc desc(src, weights_wanted, PlainDesc({p.c_rows, p.c_cols}), dst);
        dnnl::matmul::primitive_desc pd(desc, onednn::CpuEngine());
        return std::unique_ptr<Kernel>(
            new OnednnMatMulKernel(std::move(pd), true, false, weights, constant_b));
      } catch (const dnnl::error&) {
        // Fall through to the general path below.
      }
    }
    dnnl::primitive_attr attr;
    if (p.alpha != 1) attr.set_output_scales(0, {static_cast<float>(p.alpha)});
    if (use_c) {
      // dst = alpha * A'B' + dst, with dst pre-filled with beta * C.
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::desc desc(src, weights_wanted, dst);
    dnnl::matmul::primitive_desc pd(desc, attr, onednn::CpuEngine());
    auto kernel =
        std::make_unique<OnednnMatMulKernel>(std::move(pd), false, use_c, weights, constant_b);
    kernel->set_prefill(p.beta, p.c_rows, p.c_cols);
    return std::unique_ptr<Kernel>(std::move(kernel));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(absl::StrCat("oneDNN refused this Gemm: ", e.what()));
  }
}

double GemmFlops(const graph::Node& node, const std::vector<Shape>& inputs,
                 const std::vector<Shape>& outputs) {
  if (inputs.size() < 2 || inputs[0].size() != 2 || outputs.empty() || outputs[0].size() != 2) {
    return 0;
  }
  double k = static_cast<double>(node.GetInt("transA", 0) ? inputs[0][0] : inputs[0][1]);
  double mn = static_cast<double>(NumElements(outputs[0]));
  return 2.0 * mn * k + (node.HasInput(2) ? 2.0 * mn : 0.0);
}

}  // namespace

void RegisterMatMulOps(OpRegistry& registry) {
  {
    OpSchema s;
    s.op_type = "MatMul";
    s.min_opset = 7;
    s.max_opset = 21;
    s.min_inputs = 2;
    s.max_inputs = 2;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferMatMul;
    s.flops = MatMulFlops;
    s.kernels = {
        {"onednn", BuildOnednnMatMul},
        {"reference",
         [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           ASSIGN_OR_RETURN(MatMulDims d,
                            ComputeMatMulDims(ctx.input_shapes[0], ctx.input_shapes[1]));
           return std::unique_ptr<Kernel>(new MatMulReferenceKernel(std::move(d)));
         }},
    };
    registry.Register(std::move(s));
  }
  // Gemm's C became optional in opset 11; the rest (integer types from 9) is
  // handled inside the shape function.
  for (auto [lo, hi, min_inputs] : {std::tuple<int64_t, int64_t, int>{7, 10, 3}, {11, 21, 2}}) {
    OpSchema s;
    s.op_type = "Gemm";
    s.min_opset = lo;
    s.max_opset = hi;
    s.min_inputs = min_inputs;
    s.max_inputs = 3;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferGemm;
    s.flops = GemmFlops;
    s.kernels = {
        {"onednn", BuildOnednnGemm},
        {"reference",
         [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           return std::unique_ptr<Kernel>(new GemmReferenceKernel(GemmParams::From(
               ctx.node, ctx.input_shapes[0], ctx.input_shapes[1], OptionalShape(ctx, 2))));
         }},
    };
    registry.Register(std::move(s));
  }
}

}  // namespace lasgd::ops
