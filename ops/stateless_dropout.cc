// com.lasgd StatelessDropout: training-mode Dropout whose mask is a pure
// function of (seed, counter, element index).
//
//   StatelessDropout(data, ratio?, counter) -> (output, mask?)
//     data: float32 or float64; ratio: optional float scalar (default 0.5),
//     in [0, 1); counter: int64 scalar; attribute seed (int, default 0).
//     output = data * mask / (1 - ratio); mask: bool, shaped like data.
//
// ONNX's Dropout kernel (ops/misc.cc) keeps a generator inside the kernel,
// which no checkpoint can see. The training pass replaces every
// training-mode Dropout with this op after autodiff (the backward reads the
// mask output, whoever produces it) and feeds it a counter that the
// training program keeps as a state variable and advances once per run: the
// masks of a run are then determined by the counter alone, so restoring it
// from a checkpoint resumes bit-exactly. Being stateless, the mask is also
// drawn in parallel.
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/shape_util.h"

namespace lasgd::ops {
namespace {

using shape_internal::ExpectDtype;
using shape_internal::MakeCandidate;
using shape_internal::RunFn;

// SplitMix64's finaliser: a bijective mix whose outputs for consecutive
// inputs are statistically independent (Steele, Lea, Flood 2014).
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

template <typename T>
void Draw(const T* x, T* y, bool* mask, int64_t n, double ratio, uint64_t key) {
  const T scale = static_cast<T>(1.0 / (1.0 - ratio));
  // keep  <=>  u >= ratio with u uniform in [0, 1) on 53 bits.
  const double inv = 1.0 / 9007199254740992.0;  // 2^-53
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t bits = Mix64(key + static_cast<uint64_t>(i + 1) * kGolden);
    const bool keep = static_cast<double>(bits >> 11) * inv >= ratio;
    y[i] = keep ? x[i] * scale : T(0);
    if (mask != nullptr) mask[i] = keep;
  }
}

}  // namespace

void RegisterStatelessDropoutOps(OpRegistry& registry) {
  OpSchema s;
  s.domain = "com.lasgd";
  s.op_type = "StatelessDropout";
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = 3;
  s.max_inputs = 3;
  s.min_outputs = 1;
  s.max_outputs = 2;
  s.foldable = false;
  s.non_differentiable_inputs = {1, 2};
  s.infer = [](InferenceContext& ctx) -> absl::Status {
    RETURN_IF_ERROR(ExpectDtype(ctx, 0, "data", {DataType::kFloat32, DataType::kFloat64}));
    if (ctx.has_input(1)) {
      RETURN_IF_ERROR(ExpectDtype(ctx, 1, "ratio", {DataType::kFloat32, DataType::kFloat64}));
      if (NumElements(ctx.input_shape(1)) != 1)
        return ctx.Error("input 1 ('ratio') must be a scalar");
    }
    if (!ctx.has_input(2)) return ctx.Error("input 2 ('counter') is required");
    RETURN_IF_ERROR(ExpectDtype(ctx, 2, "counter", {DataType::kInt64}));
    if (NumElements(ctx.input_shape(2)) != 1)
      return ctx.Error("input 2 ('counter') must be a scalar");
    ctx.set_output(0, ctx.input_dtype(0), ctx.input_shape(0));
    if (ctx.has_output(1)) ctx.set_output(1, DataType::kBool, ctx.input_shape(0));
    return absl::OkStatus();
  };
  s.kernels.push_back(
      MakeCandidate("reference", [](const KernelBuildContext& b) -> absl::StatusOr<RunFn> {
        const uint64_t seed = static_cast<uint64_t>(b.node.GetInt("seed", 0));
        return RunFn([seed](KernelContext& ctx) -> absl::Status {
          const Tensor& in = *ctx.input(0);
          Tensor& out = *ctx.output(0);
          Tensor* mask = ctx.output(1);
          double ratio = 0.5;
          if (const Tensor* r = ctx.input(1)) ratio = r->GetAsDouble(0);
          if (!(ratio >= 0.0 && ratio < 1.0)) {
            return absl::InvalidArgumentError(
                absl::StrCat(ctx.node().Describe(), ": ratio ", ratio, " must be in [0, 1)"));
          }
          const uint64_t counter = static_cast<uint64_t>(ctx.input(2)->data<int64_t>()[0]);
          const uint64_t key = Mix64(seed ^ Mix64(counter * kGolden + 1));
          bool* m = mask != nullptr ? mask->data<bool>() : nullptr;
          const int64_t n = in.num_elements();
          if (in.dtype() == DataType::kFloat32) {
            Draw<float>(in.data<float>(), out.data<float>(), m, n, ratio, key);
          } else {
            Draw<double>(in.data<double>(), out.data<double>(), m, n, ratio, key);
          }
          return absl::OkStatus();
        });
      }));
  registry.Register(std::move(s));
}

}  // namespace lasgd::ops
