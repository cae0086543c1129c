// com.lasgd BatchNormGrad, LayerNormGrad and InstanceNormGrad (see
// ops/backward_ops.h): schemas, shape functions, a fast float32 OpenMP
// kernel for the first two and reference kernels.
//
// With x̂ = (x - μ)·σ⁻¹ over a group of M values that share statistics and
// g = dY·scale, the gradients are
//   dB = Σ dY,  dscale = Σ dY·x̂,
//   dX = σ⁻¹·(g − mean(g) − x̂·mean(g·x̂))      (batch statistics)
//   dX = σ⁻¹·g                                  (given statistics: inference)
// The statistics are recomputed from X (population variance, as the forward
// kernels use) rather than taken from the forward node, whose optional
// outputs may not exist.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/backward_ops.h"

namespace lasgd::ops::backward_internal {
namespace {

bool IsFloat32Or64(DataType dtype) {
  return dtype == DataType::kFloat32 || dtype == DataType::kFloat64;
}

absl::Status CheckFloatInputs(InferenceContext& ctx) {
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.has_input(i) && !IsFloat32Or64(ctx.input_dtype(i))) {
      return ctx.Error(absl::StrCat("input ", i, " must be float32 or float64, got ",
                                    DataTypeName(ctx.input_dtype(i))));
    }
  }
  if (ctx.input_shape(0) != ctx.input_shape(1) || ctx.input_dtype(0) != ctx.input_dtype(1)) {
    return ctx.Error(
        absl::StrCat("dY and X must have one dtype and shape, got ",
                     DataTypeName(ctx.input_dtype(0)), ShapeToString(ctx.input_shape(0)), " and ",
                     DataTypeName(ctx.input_dtype(1)), ShapeToString(ctx.input_shape(1))));
  }
  return absl::OkStatus();
}

// ---- BatchNormGrad(dY, X, scale [, mean, var]) -> dX, dscale, dB ----

// X viewed as [n, channels, inner] (spatial = 0: every position its own channel).
struct BatchNormGradConfig {
  bool training = true;
  double epsilon = 1e-5;
  int64_t n = 1, channels = 1, inner = 1;
};

BatchNormGradConfig GetBatchNormGradConfig(const graph::Node& node, const Shape& x) {
  BatchNormGradConfig cfg;
  cfg.training = node.GetInt("training_mode", 1) != 0;
  cfg.epsilon = node.GetFloat("epsilon", 1e-5f);
  cfg.n = x.empty() ? 1 : x[0];
  cfg.channels = x.size() < 2 ? 1 : x[1];
  for (size_t d = 2; d < x.size(); ++d) cfg.inner *= x[d];
  if (node.GetInt("spatial", 1) == 0) {
    cfg.channels *= cfg.inner;
    cfg.inner = 1;
  }
  return cfg;
}

absl::Status InferBatchNormGrad(InferenceContext& ctx) {
  RETURN_IF_ERROR(CheckFloatInputs(ctx));
  const Shape& x = ctx.input_shape(1);
  if (x.size() < 2) return ctx.Error(absl::StrCat("X must have rank >= 2, got ", ShapeToString(x)));
  BatchNormGradConfig cfg = GetBatchNormGradConfig(ctx.node(), x);
  const Shape& scale = ctx.input_shape(2);
  if (NumElements(scale) != cfg.channels) {
    return ctx.Error(absl::StrCat("scale has shape ", ShapeToString(scale), "; expected ",
                                  cfg.channels, " values for X ", ShapeToString(x)));
  }
  if (!cfg.training) {
    for (size_t i = 3; i < 5; ++i) {
      if (!ctx.has_input(i) || NumElements(ctx.input_shape(i)) != cfg.channels) {
        return ctx.Error("training_mode=0 needs the mean and var inputs, one value per channel");
      }
    }
  }
  ctx.set_output(0, ctx.input_dtype(1), x);
  for (size_t i = 1; i < 3; ++i) {
    if (ctx.has_output(i)) ctx.set_output(i, ctx.input_dtype(2), scale);
  }
  return absl::OkStatus();
}

// Per-channel sums Σ dY, Σ dY·x, Σ x, Σ x² in double, then the gradients.
// Templated on X's type; the per-channel vectors are double throughout.
template <typename T>
void BatchNormGradCompute(const BatchNormGradConfig& cfg, const T* dy, const T* x,
                          const std::vector<double>& scale, const std::vector<double>& in_mean,
                          const std::vector<double>& in_var, T* dx, std::vector<double>* dscale,
                          std::vector<double>* dbias) {
  const int64_t n = cfg.n, channels = cfg.channels, inner = cfg.inner;
  const double count = static_cast<double>(n * inner);
#pragma omp parallel for schedule(static) if (n * channels * inner > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    double sum_dy = 0, sum_dy_x = 0, sum_x = 0, sum_x2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * channels + c) * inner;
      const T* dyr = dy + (i * channels + c) * inner;
#pragma omp simd reduction(+ : sum_dy, sum_dy_x, sum_x, sum_x2)
      for (int64_t j = 0; j < inner; ++j) {
        const double xv = xr[j], g = dyr[j];
        sum_dy += g;
        sum_dy_x += g * xv;
        sum_x += xv;
        sum_x2 += xv * xv;
      }
    }
    double mean, var;
    if (cfg.training) {
      mean = sum_x / count;
      var = std::max(0.0, sum_x2 / count - mean * mean);
    } else {
      mean = in_mean[c];
      var = in_var[c];
    }
    const double inv_std = 1.0 / std::sqrt(var + cfg.epsilon);
    // Σ dY·x̂ = (Σ dY·x − μ·Σ dY)·σ⁻¹
    const double sum_dy_xhat = (sum_dy_x - mean * sum_dy) * inv_std;
    (*dbias)[c] = sum_dy;
    (*dscale)[c] = sum_dy_xhat;
    if (dx == nullptr) continue;
    const double k = scale[c] * inv_std;
    for (int64_t i = 0; i < n; ++i) {
      const T* xr = x + (i * channels + c) * inner;
      const T* dyr = dy + (i * channels + c) * inner;
      T* dxr = dx + (i * channels + c) * inner;
      if (!cfg.training) {
#pragma omp simd
        for (int64_t j = 0; j < inner; ++j) dxr[j] = static_cast<T>(k * dyr[j]);
        continue;
      }
      const double mean_dy = sum_dy / count, mean_dy_xhat = sum_dy_xhat / count;
#pragma omp simd
      for (int64_t j = 0; j < inner; ++j) {
        const double xhat = (xr[j] - mean) * inv_std;
        dxr[j] = static_cast<T>(k * (dyr[j] - mean_dy - xhat * mean_dy_xhat));
      }
    }
  }
}

// Two plainly separate passes in double: the statistics, then the gradients.
template <typename T>
void BatchNormGradReference(const BatchNormGradConfig& cfg, const T* dy, const T* x,
                            const std::vector<double>& scale, const std::vector<double>& in_mean,
                            const std::vector<double>& in_var, T* dx, std::vector<double>* dscale,
                            std::vector<double>* dbias) {
  const int64_t n = cfg.n, channels = cfg.channels, inner = cfg.inner;
  const double count = static_cast<double>(n * inner);
  auto at = [&](int64_t i, int64_t c, int64_t j) { return (i * channels + c) * inner + j; };
  for (int64_t c = 0; c < channels; ++c) {
    double mean = in_mean.empty() ? 0 : in_mean[c], var = in_var.empty() ? 0 : in_var[c];
    if (cfg.training) {
      mean = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < inner; ++j) mean += x[at(i, c, j)];
      mean /= count;
      var = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < inner; ++j)
          var += (x[at(i, c, j)] - mean) * (x[at(i, c, j)] - mean);
      var /= count;
    }
    const double inv_std = 1.0 / std::sqrt(var + cfg.epsilon);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        sum_dy += dy[at(i, c, j)];
        sum_dy_xhat += dy[at(i, c, j)] * (x[at(i, c, j)] - mean) * inv_std;
      }
    }
    (*dbias)[c] = sum_dy;
    (*dscale)[c] = sum_dy_xhat;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const double g = dy[at(i, c, j)] * scale[c];
        double v = inv_std * g;
        if (cfg.training) {
          const double xhat = (x[at(i, c, j)] - mean) * inv_std;
          v = inv_std * (g - scale[c] * sum_dy / count - xhat * scale[c] * sum_dy_xhat / count);
        }
        dx[at(i, c, j)] = static_cast<T>(v);
      }
    }
  }
}

class BatchNormGradKernel : public Kernel {
 public:
  BatchNormGradKernel(BatchNormGradConfig cfg, bool fast) : cfg_(cfg), fast_(fast) {}

  absl::Status Run(KernelContext& ctx) override {
    if (ctx.input(1)->dtype() == DataType::kFloat32) return Go<float>(ctx);
    return Go<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status Go(KernelContext& ctx) {
    std::vector<double> scale = ctx.input(2)->ToDoubleVector(), mean, var;
    if (!cfg_.training) {
      mean = ctx.input(3)->ToDoubleVector();
      var = ctx.input(4)->ToDoubleVector();
    }
    std::vector<double> dscale(cfg_.channels), dbias(cfg_.channels);
    const T* dy = ctx.input(0)->data<T>();
    const T* x = ctx.input(1)->data<T>();
    T* dx = ctx.output(0) ? ctx.output(0)->data<T>() : nullptr;
    if (fast_) {
      BatchNormGradCompute<T>(cfg_, dy, x, scale, mean, var, dx, &dscale, &dbias);
    } else {
      std::vector<T> unused;
      if (dx == nullptr) {
        unused.resize(ctx.input(1)->num_elements());
        dx = unused.data();
      }
      BatchNormGradReference<T>(cfg_, dy, x, scale, mean, var, dx, &dscale, &dbias);
    }
    for (int64_t c = 0; c < cfg_.channels; ++c) {
      if (Tensor* t = ctx.output(1)) t->SetFromDouble(c, dscale[c]);
      if (Tensor* t = ctx.output(2)) t->SetFromDouble(c, dbias[c]);
    }
    return absl::OkStatus();
  }

  BatchNormGradConfig cfg_;
  bool fast_;
};

// ---- LayerNormGrad(dY, X, Scale [, B]) -> dX, dScale, dB ----

struct LayerNormGradConfig {
  int64_t outer = 1, inner = 1, axis = 0;
  double epsilon = 1e-5;
};

absl::StatusOr<LayerNormGradConfig> GetLayerNormGradConfig(const graph::Node& node,
                                                           const Shape& x) {
  LayerNormGradConfig cfg;
  ASSIGN_OR_RETURN(cfg.axis,
                   NormalizeAxis(node.GetInt("axis", -1), static_cast<int64_t>(x.size())));
  cfg.epsilon = node.GetFloat("epsilon", 1e-5f);
  for (int64_t d = 0; d < static_cast<int64_t>(x.size()); ++d) {
    (d < cfg.axis ? cfg.outer : cfg.inner) *= x[d];
  }
  return cfg;
}

// For every element of X, the offset of the element of `s` (broadcast
// unidirectionally to X) that it uses.
std::vector<int64_t> BroadcastOffsets(const Shape& s, const Shape& x_shape) {
  Shape padded(x_shape.size() - s.size(), 1);
  padded.insert(padded.end(), s.begin(), s.end());
  const std::vector<int64_t> strides = ContiguousStrides(padded);
  std::vector<int64_t> offsets(NumElements(x_shape));
  for (int64_t f = 0; f < static_cast<int64_t>(offsets.size()); ++f) {
    int64_t rem = f, off = 0;
    for (int64_t d = static_cast<int64_t>(x_shape.size()) - 1; d >= 0; --d) {
      const int64_t i = rem % x_shape[d];
      rem /= x_shape[d];
      if (padded[d] != 1) off += i * strides[d];
    }
    offsets[f] = off;
  }
  return offsets;
}

// Whether `s` varies only over the normalized axes (element j of every row
// uses s[j]).
bool VariesOnlyOverNormalizedAxes(const Shape& s, const Shape& x, int64_t axis) {
  if (s.size() > x.size()) return false;
  const size_t offset = x.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) {
    const int64_t xd = static_cast<int64_t>(d + offset);
    if (xd < axis ? s[d] != 1 : s[d] != x[xd]) return false;
  }
  return true;
}

absl::Status InferLayerNormGrad(InferenceContext& ctx) {
  RETURN_IF_ERROR(CheckFloatInputs(ctx));
  const Shape& x = ctx.input_shape(1);
  if (x.empty()) return ctx.Error("X must have rank >= 1; got a scalar");
  auto cfg = GetLayerNormGradConfig(ctx.node(), x);
  if (!cfg.ok()) return ctx.Error(absl::StrCat("bad attribute axis: ", cfg.status().message()));
  for (size_t i = 2; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    auto b = BroadcastShapes(x, ctx.input_shape(i));
    if (!b.ok() || *b != x) {
      return ctx.Error(absl::StrCat("input ", i, " of shape ", ShapeToString(ctx.input_shape(i)),
                                    " does not broadcast unidirectionally to X ",
                                    ShapeToString(x)));
    }
  }
  ctx.set_output(0, ctx.input_dtype(1), x);
  if (ctx.num_outputs() > 1 && ctx.has_output(1)) {
    ctx.set_output(1, ctx.input_dtype(2), ctx.input_shape(2));
  }
  if (ctx.num_outputs() > 2 && ctx.has_output(2)) {
    if (ctx.num_inputs() < 4 || !ctx.has_input(3)) {
      return ctx.Error("output dB needs input B (for its shape)");
    }
    ctx.set_output(2, ctx.input_dtype(3), ctx.input_shape(3));
  }
  return absl::OkStatus();
}

class LayerNormGradReferenceKernel : public Kernel {
 public:
  explicit LayerNormGradReferenceKernel(LayerNormGradConfig cfg) : cfg_(cfg) {}

  absl::Status Run(KernelContext& ctx) override {
    const Tensor& dy = *ctx.input(0);
    const Tensor& x = *ctx.input(1);
    const Tensor& scale = *ctx.input(2);
    const std::vector<int64_t> scale_at = BroadcastOffsets(scale.shape(), x.shape());
    std::vector<int64_t> bias_at;
    if (ctx.input(3) != nullptr) bias_at = BroadcastOffsets(ctx.input(3)->shape(), x.shape());
    std::vector<double> dscale(scale.num_elements(), 0.0);
    std::vector<double> dbias(ctx.input(3) ? ctx.input(3)->num_elements() : 0, 0.0);
    const int64_t inner = cfg_.inner;
    for (int64_t o = 0; o < cfg_.outer; ++o) {
      const int64_t base = o * inner;
      double mean = 0, var = 0;
      for (int64_t j = 0; j < inner; ++j) mean += x.GetAsDouble(base + j);
      mean /= inner;
      for (int64_t j = 0; j < inner; ++j) {
        const double d = x.GetAsDouble(base + j) - mean;
        var += d * d;
      }
      const double inv_std = 1.0 / std::sqrt(var / inner + cfg_.epsilon);
      double mean_g = 0, mean_g_xhat = 0;
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t k = base + j;
        const double xhat = (x.GetAsDouble(k) - mean) * inv_std;
        const double g = dy.GetAsDouble(k) * scale.GetAsDouble(scale_at[k]);
        mean_g += g / inner;
        mean_g_xhat += g * xhat / inner;
        dscale[scale_at[k]] += dy.GetAsDouble(k) * xhat;
        if (!bias_at.empty()) dbias[bias_at[k]] += dy.GetAsDouble(k);
      }
      if (Tensor* dx = ctx.output(0)) {
        for (int64_t j = 0; j < inner; ++j) {
          const int64_t k = base + j;
          const double xhat = (x.GetAsDouble(k) - mean) * inv_std;
          const double g = dy.GetAsDouble(k) * scale.GetAsDouble(scale_at[k]);
          dx->SetFromDouble(k, inv_std * (g - mean_g - xhat * mean_g_xhat));
        }
      }
    }
    if (Tensor* t = ctx.output(1)) {
      for (size_t i = 0; i < dscale.size(); ++i) t->SetFromDouble(i, dscale[i]);
    }
    if (Tensor* t = ctx.output(2)) {
      for (size_t i = 0; i < dbias.size(); ++i) t->SetFromDouble(i, dbias[i]);
    }
    return absl::OkStatus();
  }

 private:
  LayerNormGradConfig cfg_;
};

// float32, Scale and B varying only over the normalized axes: rows in
// parallel, per-thread partial sums for dScale and dB.
class LayerNormGradFastKernel : public Kernel {
 public:
  explicit LayerNormGradFastKernel(LayerNormGradConfig cfg) : cfg_(cfg) {}

  absl::Status Run(KernelContext& ctx) override {
    const float* dy = ctx.input(0)->data<float>();
    const float* x = ctx.input(1)->data<float>();
    const float* scale = ctx.input(2)->data<float>();
    float* dx = ctx.output(0) ? ctx.output(0)->data<float>() : nullptr;
    float* dscale_out = ctx.output(1) ? ctx.output(1)->data<float>() : nullptr;
    float* dbias_out = ctx.output(2) ? ctx.output(2)->data<float>() : nullptr;
    const int64_t outer = cfg_.outer, inner = cfg_.inner;
    const double epsilon = cfg_.epsilon;
    std::vector<double> dscale(inner, 0.0), dbias(inner, 0.0);
#pragma omp parallel if (outer * inner > 32768)
    {
      std::vector<double> local_scale(inner, 0.0), local_bias(inner, 0.0);
#pragma omp for schedule(static)
      for (int64_t o = 0; o < outer; ++o) {
        const float* xr = x + o * inner;
        const float* dyr = dy + o * inner;
        double sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < inner; ++j) sum += xr[j];
        const double mean = sum / inner;
#pragma omp simd reduction(+ : sq)
        for (int64_t j = 0; j < inner; ++j) sq += (xr[j] - mean) * (xr[j] - mean);
        const double inv_std = 1.0 / std::sqrt(sq / inner + epsilon);
        double sum_g = 0, sum_g_xhat = 0;
        for (int64_t j = 0; j < inner; ++j) {
          const double xhat = (xr[j] - mean) * inv_std;
          const double g = static_cast<double>(dyr[j]) * scale[j];
          sum_g += g;
          sum_g_xhat += g * xhat;
          local_scale[j] += dyr[j] * xhat;
          local_bias[j] += dyr[j];
        }
        if (dx != nullptr) {
          const double mean_g = sum_g / inner, mean_g_xhat = sum_g_xhat / inner;
          float* dxr = dx + o * inner;
#pragma omp simd
          for (int64_t j = 0; j < inner; ++j) {
            const double xhat = (xr[j] - mean) * inv_std;
            dxr[j] = static_cast<float>(
                inv_std * (static_cast<double>(dyr[j]) * scale[j] - mean_g - xhat * mean_g_xhat));
          }
        }
      }
#pragma omp critical
      for (int64_t j = 0; j < inner; ++j) {
        dscale[j] += local_scale[j];
        dbias[j] += local_bias[j];
      }
    }
    for (int64_t j = 0; j < inner; ++j) {
      if (dscale_out) dscale_out[j] = static_cast<float>(dscale[j]);
      if (dbias_out) dbias_out[j] = static_cast<float>(dbias[j]);
    }
    return absl::OkStatus();
  }

 private:
  LayerNormGradConfig cfg_;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildLayerNormGradFast(const KernelBuildContext& ctx) {
  for (size_t i = 0; i < ctx.input_dtypes.size(); ++i) {
    if (ctx.node.HasInput(i) && ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError("the fast LayerNormGrad is float32 only");
    }
  }
  const Shape& x = ctx.input_shapes[1];
  ASSIGN_OR_RETURN(LayerNormGradConfig cfg, GetLayerNormGradConfig(ctx.node, x));
  for (size_t i = 2; i < ctx.input_shapes.size(); ++i) {
    if (ctx.node.HasInput(i) && !VariesOnlyOverNormalizedAxes(ctx.input_shapes[i], x, cfg.axis)) {
      return absl::UnimplementedError(
          "Scale or B varies over non-normalized axes; left to the reference kernel");
    }
  }
  return std::unique_ptr<Kernel>(new LayerNormGradFastKernel(cfg));
}

// ---- InstanceNormGrad(dY, X, scale) -> dX, dscale, dB ----
// Statistics per (n, c) over the spatial axes; scale and B per channel.

absl::Status InferInstanceNormGrad(InferenceContext& ctx) {
  RETURN_IF_ERROR(CheckFloatInputs(ctx));
  const Shape& x = ctx.input_shape(1);
  if (x.size() < 3) return ctx.Error(absl::StrCat("X must have rank >= 3, got ", ShapeToString(x)));
  if (ctx.input_shape(2) != Shape{x[1]}) {
    return ctx.Error(absl::StrCat("scale has shape ", ShapeToString(ctx.input_shape(2)),
                                  "; expected [", x[1], "]"));
  }
  ctx.set_output(0, ctx.input_dtype(1), x);
  for (size_t i = 1; i < 3; ++i) {
    if (ctx.num_outputs() > i && ctx.has_output(i)) {
      ctx.set_output(i, ctx.input_dtype(2), ctx.input_shape(2));
    }
  }
  return absl::OkStatus();
}

class InstanceNormGradReferenceKernel : public Kernel {
 public:
  absl::Status Run(KernelContext& ctx) override {
    const Tensor& dy = *ctx.input(0);
    const Tensor& x = *ctx.input(1);
    const int64_t n = x.dim(0), channels = x.dim(1);
    const int64_t inner = n * channels == 0 ? 0 : x.num_elements() / (n * channels);
    const double epsilon = ctx.node().GetFloat("epsilon", 1e-5f);
    std::vector<double> scale = ctx.input(2)->ToDoubleVector();
    std::vector<double> dscale(channels, 0.0), dbias(channels, 0.0);
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t base = (i * channels + c) * inner;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < inner; ++j) mean += x.GetAsDouble(base + j);
        mean /= inner;
        for (int64_t j = 0; j < inner; ++j) {
          const double d = x.GetAsDouble(base + j) - mean;
          var += d * d;
        }
        const double inv_std = 1.0 / std::sqrt(var / inner + epsilon);
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int64_t j = 0; j < inner; ++j) {
          const double g = dy.GetAsDouble(base + j);
          sum_dy += g;
          sum_dy_xhat += g * (x.GetAsDouble(base + j) - mean) * inv_std;
        }
        dscale[c] += sum_dy_xhat;
        dbias[c] += sum_dy;
        if (Tensor* dx = ctx.output(0)) {
          for (int64_t j = 0; j < inner; ++j) {
            const double xhat = (x.GetAsDouble(base + j) - mean) * inv_std;
            dx->SetFromDouble(base + j, scale[c] * inv_std *
                                            (dy.GetAsDouble(base + j) - sum_dy / inner -
                                             xhat * sum_dy_xhat / inner));
          }
        }
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      if (Tensor* t = ctx.output(1)) t->SetFromDouble(c, dscale[c]);
      if (Tensor* t = ctx.output(2)) t->SetFromDouble(c, dbias[c]);
    }
    return absl::OkStatus();
  }
};

double PerElementFlops(double per_element, const std::vector<Shape>& inputs) {
  return inputs.empty() ? 0 : per_element * static_cast<double>(NumElements(inputs[0]));
}

OpSchema NormGradSchema(const std::string& op_type, int min_inputs, int max_inputs) {
  OpSchema s;
  s.domain = "com.lasgd";
  s.op_type = op_type;
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = min_inputs;
  s.max_inputs = max_inputs;
  s.min_outputs = 1;
  s.max_outputs = 3;
  s.flops = [](const graph::Node&, const std::vector<Shape>& in, const std::vector<Shape>&) {
    return PerElementFlops(10.0, in);
  };
  return s;
}

}  // namespace

void RegisterNormBackwardOps(OpRegistry& registry) {
  {
    OpSchema s = NormGradSchema("BatchNormGrad", 3, 5);
    s.infer = InferBatchNormGrad;
    auto build = [](bool fast) {
      return [fast](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
        if (fast && ctx.input_dtypes[1] != DataType::kFloat32) {
          return absl::UnimplementedError("the fast BatchNormGrad is for float32 X");
        }
        return std::unique_ptr<Kernel>(
            new BatchNormGradKernel(GetBatchNormGradConfig(ctx.node, ctx.input_shapes[1]), fast));
      };
    };
    s.kernels = {{"fast", build(true)}, {"reference", build(false)}};
    registry.Register(std::move(s));
  }
  {
    OpSchema s = NormGradSchema("LayerNormGrad", 3, 4);
    s.infer = InferLayerNormGrad;
    s.kernels = {
        {"fast", BuildLayerNormGradFast},
        {"reference",
         [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           ASSIGN_OR_RETURN(LayerNormGradConfig cfg,
                            GetLayerNormGradConfig(ctx.node, ctx.input_shapes[1]));
           return std::unique_ptr<Kernel>(new LayerNormGradReferenceKernel(cfg));
         }},
    };
    registry.Register(std::move(s));
  }
  {
    OpSchema s = NormGradSchema("InstanceNormGrad", 3, 3);
    s.infer = InferInstanceNormGrad;
    s.kernels = {
        {"reference", [](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           return std::unique_ptr<Kernel>(new InstanceNormGradReferenceKernel());
         }}};
    registry.Register(std::move(s));
  }
}

}  // namespace lasgd::ops::backward_internal
