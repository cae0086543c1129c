#include "ops/autodiff_ops.h"

#include <omp.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/gradient.h"

namespace lasgd::ops {
namespace {

// Checks that `to` could have been broadcast to `from` (numpy rules).
absl::Status CheckBroadcastable(const Shape& to, const Shape& from) {
  if (to.size() > from.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot reduce ", ShapeToString(from),
                                                   " to the larger-rank ", ShapeToString(to)));
  }
  size_t offset = from.size() - to.size();
  for (size_t i = 0; i < to.size(); ++i) {
    if (to[i] != 1 && to[i] != from[offset + i]) {
      return absl::InvalidArgumentError(
          absl::StrCat(ShapeToString(to), " does not broadcast to ", ShapeToString(from)));
    }
  }
  return absl::OkStatus();
}

template <typename T>
void ReduceSumTo(const Tensor& in, Tensor& out) {
  const Shape& from = in.shape();
  Shape to(from.size(), 1);
  size_t offset = from.size() - out.shape().size();
  for (size_t i = 0; i < out.shape().size(); ++i) to[offset + i] = out.shape()[i];
  std::vector<int64_t> out_strides = ContiguousStrides(to);
  // Broadcast dims contribute stride 0 in the output.
  for (size_t i = 0; i < to.size(); ++i)
    if (to[i] == 1) out_strides[i] = 0;
  T* dst = out.data<T>();
  const T* src = in.data<T>();
  const int64_t n_out = out.num_elements();
  // Accumulate in double for float32 too: gradient sums over large batches.
  std::vector<double> acc(n_out, 0.0);
  const int64_t n = in.num_elements();
  const int64_t rank = static_cast<int64_t>(from.size());
  std::vector<int64_t> index(rank, 0);
  int64_t out_offset = 0;
  for (int64_t k = 0; k < n; ++k) {
    acc[out_offset] += src[k];
    for (int64_t d = rank - 1; d >= 0; --d) {
      ++index[d];
      out_offset += out_strides[d];
      if (index[d] < from[d]) break;
      out_offset -= out_strides[d] * from[d];
      index[d] = 0;
    }
  }
  for (int64_t i = 0; i < n_out; ++i) dst[i] = static_cast<T>(acc[i]);
}

class ReduceSumToKernel : public Kernel {
 public:
  absl::Status Run(KernelContext& ctx) override {
    const Tensor& in = *ctx.input(0);
    Tensor& out = *ctx.output(0);
    if (in.dtype() == DataType::kFloat64) {
      ReduceSumTo<double>(in, out);
    } else {
      ReduceSumTo<float>(in, out);
    }
    return absl::OkStatus();
  }
};

}  // namespace

void RegisterAutodiffOps(OpRegistry& registry) {
  OpSchema s;
  s.domain = "com.lasgd";
  s.op_type = "ReduceSumTo";
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = s.max_inputs = 1;
  s.min_outputs = s.max_outputs = 1;
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    const graph::Attribute* shape = ctx.node().FindAttribute("shape");
    if (!shape) return ctx.Error("needs the 'shape' attribute");
    if (!IsFloatingPoint(ctx.input_dtype(0))) return ctx.Error("input must be floating point");
    RETURN_IF_ERROR(
        WithContext(CheckBroadcastable(shape->ints, ctx.input_shape(0)), ctx.node().Describe()));
    ctx.set_output(0, ctx.input_dtype(0), shape->ints);
    return absl::OkStatus();
  };
  s.kernels.push_back(
      {"reference", [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         if (ctx.input_dtypes[0] != DataType::kFloat32 &&
             ctx.input_dtypes[0] != DataType::kFloat64) {
           return absl::UnimplementedError("float32/float64 only");
         }
         return std::unique_ptr<Kernel>(new ReduceSumToKernel());
       }});
  registry.Register(std::move(s));
}

void RegisterAutodiffGradients(GradientRegistry& registry) {
  registry.Register("com.lasgd", "ReduceSumTo", [](GradientContext& ctx) -> absl::Status {
    if (!ctx.NeedsGI(0) || !ctx.HasGO(0)) return absl::OkStatus();
    // com.lasgd.ExpandTo rather than ai.onnx Expand, which opset 7 lacks.
    ctx.SetGI(0, ctx.Emit1("ExpandTo", {ctx.GO(0)},
                           {{"shape", graph::Attribute::Ints(ctx.shape(ctx.I(0)))}}, "com.lasgd"));
    return absl::OkStatus();
  });
}

}  // namespace lasgd::ops
