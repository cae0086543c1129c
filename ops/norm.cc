// Normalization ops: BatchNormalization (opsets 7-21, inference and training
// forms), LayerNormalization (17-21) and InstanceNormalization (7-21).
//
// BatchNormalization has two training forms. Opsets 7-13 mark training by
// asking for more than the Y output (Y, mean, var, saved_mean, saved_var: what
// torch.onnx.export emits in training mode); opsets 14+ have a training_mode
// attribute and outputs Y, running_mean, running_var. In both, training uses
// the batch statistics for Y and updates
//   running = input_running * momentum + batch * (1 - momentum)
// with the population variance (the opset 14 spec's definition; PyTorch's own
// running_var uses the unbiased variance, so it differs by N/(N-1)). The old
// saved_mean / saved_var outputs are the batch mean and population variance
// ("saved variance" in the spec; ONNX's reference implementation agrees).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/onednn_engine.h"
#include "ops/onednn_layout.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

bool IsFloat32Or64(DataType dtype) {
  return dtype == DataType::kFloat32 || dtype == DataType::kFloat64;
}

// ---- BatchNormalization ----

// X viewed as [n, channels, inner]: the statistics of channel c are taken over
// n and inner. With opset 7's spatial=0 every (channel, position) pair has its
// own statistics, so channels = C*D1*...*Dk and inner = 1.
struct BatchNormConfig {
  bool training = false;
  double epsilon = 1e-5;
  double momentum = 0.9;
  int64_t n = 1, channels = 1, inner = 1;
};

BatchNormConfig GetBatchNormConfig(const graph::Node& node, int64_t opset, const Shape& x) {
  BatchNormConfig cfg;
  cfg.epsilon = node.GetFloat("epsilon", 1e-5f);
  cfg.momentum = node.GetFloat("momentum", 0.9f);
  if (opset >= 14) {
    cfg.training = node.GetInt("training_mode", 0) != 0;
  } else {
    for (size_t i = 1; i < node.outputs.size(); ++i) cfg.training |= node.HasOutput(i);
  }
  bool spatial = opset >= 9 || node.GetInt("spatial", 1) != 0;
  cfg.n = x.empty() ? 1 : x[0];
  cfg.channels = x.size() < 2 ? 1 : x[1];
  cfg.inner = 1;
  for (size_t d = 2; d < x.size(); ++d) cfg.inner *= x[d];
  if (!spatial) {
    cfg.channels *= cfg.inner;
    cfg.inner = 1;
  }
  return cfg;
}

absl::Status InferBatchNorm(InferenceContext& ctx) {
  const Shape& x = ctx.input_shape(0);
  DataType x_dtype = ctx.input_dtype(0);
  if (x.size() < 2) {
    return ctx.Error(
        absl::StrCat("X must have rank >= 2 (N, C, ...); got shape ", ShapeToString(x)));
  }
  if (!IsFloat32Or64(x_dtype)) {
    return ctx.Error(absl::StrCat("X must be float32 or float64; got ", DataTypeName(x_dtype)));
  }
  if (ctx.opset() == 7) {
    int64_t spatial = ctx.node().GetInt("spatial", 1);
    if (spatial != 0 && spatial != 1) {
      return ctx.Error(absl::StrCat("attribute spatial must be 0 or 1; got ", spatial));
    }
  } else if (ctx.node().FindAttribute("spatial") != nullptr) {
    return ctx.Error(
        absl::StrCat("attribute 'spatial' was removed in opset 9; this model uses "
                     "opset ",
                     ctx.opset()));
  }
  BatchNormConfig cfg = GetBatchNormConfig(ctx.node(), ctx.opset(), x);
  static const char* kNames[] = {"X", "scale", "B", "mean", "var"};
  for (size_t i = 1; i < 5; ++i) {
    DataType dtype = ctx.input_dtype(i);
    // Opset 15 lets scale/B and mean/var have their own float types.
    DataType must_match = ctx.opset() >= 15 ? ctx.input_dtype(i <= 2 ? 1 : 3) : x_dtype;
    if (!IsFloat32Or64(dtype) || dtype != must_match) {
      return ctx.Error(absl::StrCat("input ", kNames[i], " has dtype ", DataTypeName(dtype),
                                    "; expected ", DataTypeName(must_match),
                                    ctx.opset() >= 15 ? " (float32 or float64)" : " (as X)"));
    }
    const Shape& s = ctx.input_shape(i);
    Shape per_position(x.begin() + 1, x.end());
    bool ok = (s.size() == 1 && s[0] == cfg.channels) ||
              (cfg.inner == 1 && cfg.channels != x[1] && s == per_position);
    if (!ok) {
      return ctx.Error(absl::StrCat("input ", kNames[i], " has shape ", ShapeToString(s),
                                    "; expected [", cfg.channels, "] for X of shape ",
                                    ShapeToString(x)));
    }
  }
  if (ctx.opset() >= 14 && !cfg.training) {
    for (size_t i = 1; i < ctx.num_outputs(); ++i) {
      if (ctx.has_output(i)) {
        return ctx.Error(absl::StrCat("output ", i,
                                      " is requested but training_mode=0 allows only Y "
                                      "(set training_mode=1 for running_mean/running_var)"));
      }
    }
  }
  ctx.set_output(0, x_dtype, x);
  for (size_t i = 1; i < ctx.num_outputs(); ++i) {
    DataType stats_dtype = ctx.opset() >= 14 ? ctx.input_dtype(3) : x_dtype;
    if (ctx.has_output(i)) ctx.set_output(i, stats_dtype, ctx.input_shape(3));
  }
  return absl::OkStatus();
}

// Writes the optional outputs of a training-mode BatchNormalization from the
// batch statistics: 1 and 2 are the updated running mean and variance, 3 and
// 4 (opsets 7-13 only) the batch mean and variance.
void WriteBatchNormStats(KernelContext& ctx, const BatchNormConfig& cfg,
                         const std::vector<double>& batch_mean,
                         const std::vector<double>& batch_var) {
  const Tensor& in_mean = *ctx.input(3);
  const Tensor& in_var = *ctx.input(4);
  for (int64_t c = 0; c < cfg.channels; ++c) {
    double running_mean =
        in_mean.GetAsDouble(c) * cfg.momentum + batch_mean[c] * (1 - cfg.momentum);
    double running_var = in_var.GetAsDouble(c) * cfg.momentum + batch_var[c] * (1 - cfg.momentum);
    if (Tensor* t = ctx.output(1)) t->SetFromDouble(c, running_mean);
    if (Tensor* t = ctx.output(2)) t->SetFromDouble(c, running_var);
    if (Tensor* t = ctx.output(3)) t->SetFromDouble(c, batch_mean[c]);
    if (Tensor* t = ctx.output(4)) t->SetFromDouble(c, batch_var[c]);
  }
}

class BatchNormReferenceKernel : public Kernel {
 public:
  explicit BatchNormReferenceKernel(BatchNormConfig cfg) : cfg_(cfg) {}

  absl::Status Run(KernelContext& ctx) override {
    if (ctx.input(0)->dtype() == DataType::kFloat32) return Go<float>(ctx);
    return Go<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status Go(KernelContext& ctx) {
    const T* x = ctx.input(0)->data<T>();
    T* y = ctx.output(0)->data<T>();
    std::vector<double> scale = ctx.input(1)->ToDoubleVector();
    std::vector<double> bias = ctx.input(2)->ToDoubleVector();
    std::vector<double> mean = ctx.input(3)->ToDoubleVector();
    std::vector<double> var = ctx.input(4)->ToDoubleVector();
    const int64_t n = cfg_.n, channels = cfg_.channels, inner = cfg_.inner;
    auto at = [&](int64_t i, int64_t c, int64_t j) { return (i * channels + c) * inner + j; };
    if (cfg_.training) {
      const double count = static_cast<double>(n * inner);
      for (int64_t c = 0; c < channels; ++c) {
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t j = 0; j < inner; ++j) sum += x[at(i, c, j)];
        }
        mean[c] = sum / count;
        double sq = 0;
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t j = 0; j < inner; ++j) {
            double d = x[at(i, c, j)] - mean[c];
            sq += d * d;
          }
        }
        var[c] = sq / count;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < channels; ++c) {
        double inv_std = 1.0 / std::sqrt(var[c] + cfg_.epsilon);
        for (int64_t j = 0; j < inner; ++j) {
          int64_t k = at(i, c, j);
          y[k] = static_cast<T>((x[k] - mean[c]) * inv_std * scale[c] + bias[c]);
        }
      }
    }
    if (cfg_.training) WriteBatchNormStats(ctx, cfg_, mean, var);
    return absl::OkStatus();
  }

  BatchNormConfig cfg_;
};

// Training-mode batch normalization on plain float32 data: statistics per
// channel in parallel (double accumulation, one pass), then one parallel
// normalisation pass. oneDNN 2.6's plain-layout forward_training is several
// times slower than this on NCHW.
class BatchNormTrainingFastKernel : public Kernel {
 public:
  explicit BatchNormTrainingFastKernel(BatchNormConfig cfg) : cfg_(cfg) {}

  absl::Status Run(KernelContext& ctx) override {
    const float* x = ctx.input(0)->data<float>();
    float* y = ctx.output(0)->data<float>();
    const float* scale = ctx.input(1)->data<float>();
    const float* bias = ctx.input(2)->data<float>();
    const int64_t n = cfg_.n, channels = cfg_.channels, inner = cfg_.inner;
    std::vector<double> mean(channels), var(channels);
    const double count = static_cast<double>(n * inner);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < channels; ++c) {
      // One pass over X for both sums, in double, of X minus a shift taken
      // from the channel's own data: var = E[(x-k)^2] - E[x-k]^2 then loses
      // nothing to cancellation unless the spread is tiny next to |mean - k|,
      // and k being a sample keeps that distance within the data's range.
      // Eight independent accumulators let the compiler vectorise the loop;
      // a single running sum is one long chain of dependent additions.
      const double shift = n > 0 && inner > 0 ? x[c * inner] : 0.0;
      double s1[8] = {}, s2[8] = {};
      for (int64_t i = 0; i < n; ++i) {
        const float* row = x + (i * channels + c) * inner;
        int64_t j = 0;
        for (; j + 8 <= inner; j += 8) {
          for (int k = 0; k < 8; ++k) {
            const double d = static_cast<double>(row[j + k]) - shift;
            s1[k] += d;
            s2[k] += d * d;
          }
        }
        for (; j < inner; ++j) {
          const double d = static_cast<double>(row[j]) - shift;
          s1[0] += d;
          s2[0] += d * d;
        }
      }
      double sum = 0, sq = 0;
      for (int k = 0; k < 8; ++k) sum += s1[k], sq += s2[k];
      const double shifted_mean = sum / count;
      mean[c] = shift + shifted_mean;
      var[c] = std::max(0.0, sq / count - shifted_mean * shifted_mean);
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < channels; ++c) {
        const float a = static_cast<float>(scale[c] / std::sqrt(var[c] + cfg_.epsilon));
        const float b = static_cast<float>(bias[c]);
        // x - mean first, with the mean split into two floats (hi + lo = the
        // double mean to ~48 bits): x * a + (bias - mean * a) would round
        // x * a, which is large when the mean is large next to the spread,
        // and lose most of the normalised value's digits.
        const float mean_hi = static_cast<float>(mean[c]);
        const float mean_lo = static_cast<float>(mean[c] - mean_hi);
        const float* in = x + (i * channels + c) * inner;
        float* out = y + (i * channels + c) * inner;
        for (int64_t j = 0; j < inner; ++j) out[j] = ((in[j] - mean_hi) - mean_lo) * a + b;
      }
    }
    WriteBatchNormStats(ctx, cfg_, mean, var);
    return absl::OkStatus();
  }

 private:
  BatchNormConfig cfg_;
};

// oneDNN batch normalization. Inference on 4-D float32 data may also read
// and write the channel-blocked layout (ops/onednn_layout.h) when the plan
// stores X or Y that way.
class BatchNormOnednnKernel : public Kernel {
 public:
  BatchNormOnednnKernel(BatchNormConfig cfg, Shape x, dnnl::memory::desc data_md, bool blocked_ok)
      : cfg_(cfg), x_(std::move(x)), data_md_(data_md), blocked_ok_(blocked_ok) {}

  // Computes on `data_md_` (plain) unless X or Y is stored blocked.
  void Create(bool src_blocked, bool dst_blocked) {
    const bool blocked = src_blocked || dst_blocked;
    dnnl::memory::desc md = blocked ? onednn::BlockedDesc(x_) : data_md_;
    pd_ = MakeBatchNormPd(cfg_, md);
    primitive_ = dnnl::batch_normalization_forward(pd_);
    // With one side blocked the other is plain NCHW with the real 4-D dims
    // (data_md_ flattens the spatial dims, which a reorder to NCHW-blocked
    // cannot map).
    dnnl::memory::desc plain =
        blocked ? dnnl::memory::desc(dnnl::memory::dims(x_.begin(), x_.end()),
                                     dnnl::memory::data_type::f32, dnnl::memory::format_tag::nchw)
                : data_md_;
    src_.Init(src_blocked ? onednn::BlockedDesc(x_) : plain, pd_.src_desc(), false, /*slot=*/0);
    dst_.Init(dst_blocked ? onednn::BlockedDesc(x_) : plain, pd_.dst_desc(), true, /*slot=*/1);
  }

  bool AcceptsBlockedLayout(bool, size_t index) const override { return index == 0 && blocked_ok_; }
  absl::Status UseBlockedLayouts(const std::vector<bool>& inputs,
                                 const std::vector<bool>& outputs) override {
    try {
      Create(!inputs.empty() && inputs[0], !outputs.empty() && outputs[0]);
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN batch normalization: ", e.what()));
    }
    return absl::OkStatus();
  }

  static dnnl::batch_normalization_forward::primitive_desc MakeBatchNormPd(
      const BatchNormConfig& cfg, const dnnl::memory::desc& md) {
    auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    if (!cfg.training) flags = flags | dnnl::normalization_flags::use_global_stats;
    dnnl::batch_normalization_forward::desc desc(
        cfg.training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference, md,
        static_cast<float>(cfg.epsilon), flags);
    return dnnl::batch_normalization_forward::primitive_desc(desc, onednn::CpuEngine());
  }

  absl::Status Run(KernelContext& ctx) override {
    using dnnl::memory;
    dnnl::engine& engine = onednn::CpuEngine();
    auto in = [&](size_t i) { return const_cast<void*>(ctx.input(i)->raw_data()); };
    memory::desc channel_md({cfg_.channels}, memory::data_type::f32, memory::format_tag::a);
    std::vector<float> batch_mean, batch_var;
    try {
      dnnl::stream& stream = onednn::CpuStream();
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_.In(in(0), stream)},
                                           {DNNL_ARG_DST, dst_.Target(ctx.output(0)->raw_data())},
                                           {DNNL_ARG_SCALE, memory(channel_md, engine, in(1))},
                                           {DNNL_ARG_SHIFT, memory(channel_md, engine, in(2))}};
      if (cfg_.training) {
        batch_mean.resize(cfg_.channels);
        batch_var.resize(cfg_.channels);
        args.emplace(DNNL_ARG_MEAN, memory(channel_md, engine, batch_mean.data()));
        args.emplace(DNNL_ARG_VARIANCE, memory(channel_md, engine, batch_var.data()));
      } else {
        args.emplace(DNNL_ARG_MEAN, memory(channel_md, engine, in(3)));
        args.emplace(DNNL_ARG_VARIANCE, memory(channel_md, engine, in(4)));
      }
      primitive_.execute(stream, args);
      dst_.Out(ctx.output(0)->raw_data(), stream);
      stream.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN batch normalization failed: ", e.what()));
    }
    if (cfg_.training) {
      WriteBatchNormStats(ctx, cfg_, std::vector<double>(batch_mean.begin(), batch_mean.end()),
                          std::vector<double>(batch_var.begin(), batch_var.end()));
    }
    return absl::OkStatus();
  }

 private:
  BatchNormConfig cfg_;
  Shape x_;
  dnnl::memory::desc data_md_;
  bool blocked_ok_;
  dnnl::batch_normalization_forward::primitive_desc pd_;
  dnnl::batch_normalization_forward primitive_;
  onednn::Operand src_, dst_;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildBatchNormOnednn(const KernelBuildContext& ctx) {
  using dnnl::memory;
  for (size_t i = 0; i < 5; ++i) {
    if (ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError(
          absl::StrCat("oneDNN batch normalization here needs float32 for all inputs; input ", i,
                       " is ", DataTypeName(ctx.input_dtypes[i])));
    }
  }
  const Shape& x = ctx.input_shapes[0];
  BatchNormConfig cfg = GetBatchNormConfig(ctx.node, ctx.opset, x);
  if (cfg.training) {
    return absl::UnimplementedError(
        "training mode: oneDNN's plain-layout forward_training is slower than the fast kernel");
  }
  if (cfg.n * cfg.channels * cfg.inner == 0) {
    return absl::UnimplementedError("an empty dimension; left to the reference kernel");
  }
  // The spatial dims are flattened into one: the statistics do not care about
  // their arrangement. It goes in as 4-D (N, C, 1, D) because oneDNN 2.6 has
  // only its slow reference implementation for 3-D (ncw) data.
  memory::desc data_md =
      cfg.inner == 1
          ? memory::desc({cfg.n, cfg.channels}, memory::data_type::f32, memory::format_tag::nc)
          : memory::desc({cfg.n, cfg.channels, 1, cfg.inner}, memory::data_type::f32,
                         memory::format_tag::nchw);
  try {
    auto pd = BatchNormOnednnKernel::MakeBatchNormPd(cfg, data_md);
    std::string impl = pd.impl_info_str();
    if (impl.find("ref") != std::string::npos) {
      return absl::UnimplementedError(
          absl::StrCat("oneDNN has only its reference implementation (", impl, ") here"));
    }
    // Inference with per-channel statistics over 4-D data can run blocked.
    bool blocked_ok = false;
    if (!cfg.training && onednn::CanBeBlocked(DataType::kFloat32, x) && cfg.channels == x[1]) {
      auto blocked = BatchNormOnednnKernel::MakeBatchNormPd(cfg, onednn::BlockedDesc(x));
      blocked_ok = std::string(blocked.impl_info_str()).find("ref") == std::string::npos;
    }
    auto kernel = std::make_unique<BatchNormOnednnKernel>(cfg, x, data_md, blocked_ok);
    kernel->Create(false, false);
    return std::unique_ptr<Kernel>(std::move(kernel));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(
        absl::StrCat("oneDNN refused this batch normalization: ", e.what()));
  }
}

double BatchNormFlops(const graph::Node& node, const std::vector<Shape>& inputs,
                      const std::vector<Shape>&) {
  if (inputs.empty()) return 0;
  // Inference folds into one multiply-add per element; training adds the two
  // statistics passes.
  bool training = node.GetInt("training_mode", 0) != 0 || node.HasOutput(1);
  return (training ? 6.0 : 2.0) * static_cast<double>(NumElements(inputs[0]));
}

// ---- LayerNormalization ----

struct LayerNormConfig {
  int64_t axis = 0;
  int64_t outer = 1, inner = 1;
  double epsilon = 1e-5;
};

absl::StatusOr<LayerNormConfig> GetLayerNormConfig(const graph::Node& node, const Shape& x) {
  LayerNormConfig cfg;
  ASSIGN_OR_RETURN(cfg.axis,
                   NormalizeAxis(node.GetInt("axis", -1), static_cast<int64_t>(x.size())));
  cfg.epsilon = node.GetFloat("epsilon", 1e-5f);
  for (int64_t d = 0; d < static_cast<int64_t>(x.size()); ++d) {
    (d < cfg.axis ? cfg.outer : cfg.inner) *= x[d];
  }
  return cfg;
}

// Whether `s` (unidirectionally broadcast to `x`) varies only over the
// normalized axes, so that element j of every normalized row uses s[j].
bool VariesOnlyOverNormalizedAxes(const Shape& s, const Shape& x, int64_t axis) {
  size_t offset = x.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) {
    int64_t xd = static_cast<int64_t>(d + offset);
    if (xd < axis ? s[d] != 1 : s[d] != x[xd]) return false;
  }
  return true;
}

absl::Status InferLayerNorm(InferenceContext& ctx) {
  const Shape& x = ctx.input_shape(0);
  DataType dtype = ctx.input_dtype(0);
  if (!IsFloat32Or64(dtype)) {
    return ctx.Error(absl::StrCat("X must be float32 or float64; got ", DataTypeName(dtype)));
  }
  if (x.empty()) return ctx.Error("X must have rank >= 1; got a scalar");
  auto cfg = GetLayerNormConfig(ctx.node(), x);
  if (!cfg.ok()) return ctx.Error(absl::StrCat("bad attribute axis: ", cfg.status().message()));
  int64_t stash_type = ctx.node().GetInt("stash_type", 1);
  if (stash_type != static_cast<int64_t>(DataType::kFloat32) &&
      stash_type != static_cast<int64_t>(DataType::kFloat64)) {
    return ctx.Error(
        absl::StrCat("stash_type must be 1 (float32) or 11 (float64); got ", stash_type));
  }
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.has_input(i)) continue;
    const char* name = i == 1 ? "Scale" : "B";
    if (ctx.input_dtype(i) != dtype) {
      return ctx.Error(absl::StrCat(name, " has dtype ", DataTypeName(ctx.input_dtype(i)),
                                    "; expected ", DataTypeName(dtype), " like X"));
    }
    auto b = BroadcastShapes(x, ctx.input_shape(i));
    if (!b.ok() || *b != x) {
      return ctx.Error(absl::StrCat(name, " of shape ", ShapeToString(ctx.input_shape(i)),
                                    " does not broadcast unidirectionally to X of shape ",
                                    ShapeToString(x)));
    }
  }
  ctx.set_output(0, dtype, x);
  Shape stats_shape = x;
  for (size_t d = cfg->axis; d < x.size(); ++d) stats_shape[d] = 1;
  for (size_t i = 1; i < 3; ++i) {
    if (ctx.has_output(i)) ctx.set_output(i, static_cast<DataType>(stash_type), stats_shape);
  }
  return absl::OkStatus();
}

// Element offsets of a unidirectionally broadcast operand for every element
// of `x_shape`, in row-major order.
std::vector<int64_t> BroadcastOffsets(const Shape& s, const Shape& x_shape) {
  Shape padded(x_shape.size() - s.size(), 1);
  padded.insert(padded.end(), s.begin(), s.end());
  std::vector<int64_t> strides = ContiguousStrides(padded);
  std::vector<int64_t> offsets(NumElements(x_shape));
  for (int64_t f = 0; f < static_cast<int64_t>(offsets.size()); ++f) {
    int64_t rem = f, off = 0;
    for (int64_t d = static_cast<int64_t>(x_shape.size()) - 1; d >= 0; --d) {
      int64_t i = rem % x_shape[d];
      rem /= x_shape[d];
      if (padded[d] != 1) off += i * strides[d];
    }
    offsets[f] = off;
  }
  return offsets;
}

class LayerNormReferenceKernel : public Kernel {
 public:
  explicit LayerNormReferenceKernel(LayerNormConfig cfg) : cfg_(cfg) {}

  absl::Status Run(KernelContext& ctx) override {
    const Tensor& x = *ctx.input(0);
    const Tensor& scale = *ctx.input(1);
    const Tensor* bias = ctx.input(2);
    Tensor& y = *ctx.output(0);
    std::vector<int64_t> scale_at = BroadcastOffsets(scale.shape(), x.shape());
    std::vector<int64_t> bias_at;
    if (bias != nullptr) bias_at = BroadcastOffsets(bias->shape(), x.shape());
    for (int64_t o = 0; o < cfg_.outer; ++o) {
      double sum = 0;
      for (int64_t j = 0; j < cfg_.inner; ++j) sum += x.GetAsDouble(o * cfg_.inner + j);
      double mean = sum / cfg_.inner;
      double sq = 0;
      for (int64_t j = 0; j < cfg_.inner; ++j) {
        double d = x.GetAsDouble(o * cfg_.inner + j) - mean;
        sq += d * d;
      }
      double inv_std = 1.0 / std::sqrt(sq / cfg_.inner + cfg_.epsilon);
      for (int64_t j = 0; j < cfg_.inner; ++j) {
        int64_t k = o * cfg_.inner + j;
        double v = (x.GetAsDouble(k) - mean) * inv_std * scale.GetAsDouble(scale_at[k]);
        if (bias != nullptr) v += bias->GetAsDouble(bias_at[k]);
        y.SetFromDouble(k, v);
      }
      if (Tensor* t = ctx.output(1)) t->SetFromDouble(o, mean);
      if (Tensor* t = ctx.output(2)) t->SetFromDouble(o, inv_std);
    }
    return absl::OkStatus();
  }

 private:
  LayerNormConfig cfg_;
};

// float32 with Scale and B that vary only over the normalized axes (the
// transformer case): one OpenMP task per normalized row.
class LayerNormFastKernel : public Kernel {
 public:
  explicit LayerNormFastKernel(LayerNormConfig cfg) : cfg_(cfg) {}

  absl::Status Run(KernelContext& ctx) override {
    const float* x = ctx.input(0)->data<float>();
    const float* scale = ctx.input(1)->data<float>();
    const float* bias = ctx.input(2) != nullptr ? ctx.input(2)->data<float>() : nullptr;
    float* y = ctx.output(0)->data<float>();
    float* mean_out = ctx.output(1) != nullptr ? ctx.output(1)->data<float>() : nullptr;
    float* inv_std_out = ctx.output(2) != nullptr ? ctx.output(2)->data<float>() : nullptr;
    const int64_t outer = cfg_.outer, inner = cfg_.inner;
    const double epsilon = cfg_.epsilon;
#pragma omp parallel for if (outer * inner > 32768)
    for (int64_t o = 0; o < outer; ++o) {
      const float* xr = x + o * inner;
      float* yr = y + o * inner;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < inner; ++j) sum += xr[j];
      const float mean = static_cast<float>(sum / inner);
      double sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t j = 0; j < inner; ++j) {
        float d = xr[j] - mean;
        sq += d * d;
      }
      const float inv_std = static_cast<float>(1.0 / std::sqrt(sq / inner + epsilon));
      if (bias != nullptr) {
#pragma omp simd
        for (int64_t j = 0; j < inner; ++j) yr[j] = (xr[j] - mean) * inv_std * scale[j] + bias[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < inner; ++j) yr[j] = (xr[j] - mean) * inv_std * scale[j];
      }
      if (mean_out != nullptr) mean_out[o] = mean;
      if (inv_std_out != nullptr) inv_std_out[o] = inv_std;
    }
    return absl::OkStatus();
  }

 private:
  LayerNormConfig cfg_;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildLayerNormFast(const KernelBuildContext& ctx) {
  for (size_t i = 0; i < ctx.input_dtypes.size(); ++i) {
    if (ctx.node.HasInput(i) && ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError("the fast LayerNormalization is float32 only");
    }
  }
  if (ctx.node.GetInt("stash_type", 1) != 1) {
    return absl::UnimplementedError("the fast LayerNormalization computes in float32 only");
  }
  const Shape& x = ctx.input_shapes[0];
  ASSIGN_OR_RETURN(LayerNormConfig cfg, GetLayerNormConfig(ctx.node, x));
  for (size_t i = 1; i < 3; ++i) {
    if (ctx.node.HasInput(i) && !VariesOnlyOverNormalizedAxes(ctx.input_shapes[i], x, cfg.axis)) {
      return absl::UnimplementedError(
          "Scale or B varies over non-normalized axes; left to the reference kernel");
    }
  }
  return std::unique_ptr<Kernel>(new LayerNormFastKernel(cfg));
}

// ---- InstanceNormalization ----

absl::Status InferInstanceNorm(InferenceContext& ctx) {
  const Shape& x = ctx.input_shape(0);
  DataType dtype = ctx.input_dtype(0);
  if (!IsFloat32Or64(dtype)) {
    return ctx.Error(absl::StrCat("input must be float32 or float64; got ", DataTypeName(dtype)));
  }
  if (x.size() < 3) {
    return ctx.Error(
        absl::StrCat("input must have rank >= 3 (N, C, D1, ...); got shape ", ShapeToString(x)));
  }
  for (size_t i = 1; i < 3; ++i) {
    const char* name = i == 1 ? "scale" : "B";
    if (ctx.input_dtype(i) != dtype) {
      return ctx.Error(absl::StrCat(name, " has dtype ", DataTypeName(ctx.input_dtype(i)),
                                    "; expected ", DataTypeName(dtype)));
    }
    if (ctx.input_shape(i) != Shape{x[1]}) {
      return ctx.Error(absl::StrCat(name, " has shape ", ShapeToString(ctx.input_shape(i)),
                                    "; expected [", x[1], "]"));
    }
  }
  ctx.set_output(0, dtype, x);
  return absl::OkStatus();
}

class InstanceNormReferenceKernel : public Kernel {
 public:
  absl::Status Run(KernelContext& ctx) override {
    const Tensor& x = *ctx.input(0);
    Tensor& y = *ctx.output(0);
    const int64_t n = x.dim(0), channels = x.dim(1);
    const int64_t inner = channels == 0 || n == 0 ? 0 : x.num_elements() / (n * channels);
    const double epsilon = ctx.node().GetFloat("epsilon", 1e-5f);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t base = (i * channels + c) * inner;
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < inner; ++j) sum += x.GetAsDouble(base + j);
        double mean = sum / inner;
        for (int64_t j = 0; j < inner; ++j) {
          double d = x.GetAsDouble(base + j) - mean;
          sq += d * d;
        }
        double inv_std = 1.0 / std::sqrt(sq / inner + epsilon);
        double scale = ctx.input(1)->GetAsDouble(c), bias = ctx.input(2)->GetAsDouble(c);
        for (int64_t j = 0; j < inner; ++j) {
          y.SetFromDouble(base + j, (x.GetAsDouble(base + j) - mean) * inv_std * scale + bias);
        }
      }
    }
    return absl::OkStatus();
  }
};

double PerElementFlops(double per_element, const std::vector<Shape>& inputs) {
  return inputs.empty() ? 0 : per_element * static_cast<double>(NumElements(inputs[0]));
}

}  // namespace

void RegisterNormOps(OpRegistry& registry) {
  // One schema per range whose inputs/outputs/attributes differ: 7-8 (spatial
  // attribute), 9-13 (five-output training form), 14-21 (training_mode).
  for (auto [lo, hi, max_outputs] :
       {std::tuple<int64_t, int64_t, int>{7, 8, 5}, {9, 13, 5}, {14, 21, 3}}) {
    OpSchema s;
    s.op_type = "BatchNormalization";
    s.min_opset = lo;
    s.max_opset = hi;
    s.min_inputs = 5;
    s.max_inputs = 5;
    s.min_outputs = 1;
    s.max_outputs = max_outputs;
    s.infer = InferBatchNorm;
    s.non_differentiable_inputs = {3, 4};
    s.flops = BatchNormFlops;
    s.kernels = {
        {"onednn", BuildBatchNormOnednn},
        {"fast",
         [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           BatchNormConfig cfg = GetBatchNormConfig(ctx.node, ctx.opset, ctx.input_shapes[0]);
           if (!cfg.training) return absl::UnimplementedError("inference mode is oneDNN's");
           for (size_t i = 0; i < 3; ++i) {
             if (ctx.input_dtypes[i] != DataType::kFloat32) {
               return absl::UnimplementedError("float32 X, scale and B only");
             }
           }
           if (cfg.channels != ctx.input_shapes[0][1]) {
             return absl::UnimplementedError(
                 "per-channel statistics only (spatial=0 is the reference's)");
           }
           return std::unique_ptr<Kernel>(new BatchNormTrainingFastKernel(cfg));
         }},
        {"reference",
         [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           return std::unique_ptr<Kernel>(new BatchNormReferenceKernel(
               GetBatchNormConfig(ctx.node, ctx.opset, ctx.input_shapes[0])));
         }},
    };
    registry.Register(std::move(s));
  }
  {
    OpSchema s;
    s.op_type = "LayerNormalization";
    s.min_opset = 17;
    s.max_opset = 21;
    s.min_inputs = 2;
    s.max_inputs = 3;
    s.min_outputs = 1;
    s.max_outputs = 3;
    s.infer = InferLayerNorm;
    s.flops = [](const graph::Node&, const std::vector<Shape>& in, const std::vector<Shape>&) {
      return PerElementFlops(7.0, in);
    };
    s.kernels = {
        {"fast", BuildLayerNormFast},
        {"reference",
         [](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           ASSIGN_OR_RETURN(LayerNormConfig cfg, GetLayerNormConfig(ctx.node, ctx.input_shapes[0]));
           return std::unique_ptr<Kernel>(new LayerNormReferenceKernel(cfg));
         }},
    };
    registry.Register(std::move(s));
  }
  {
    OpSchema s;
    s.op_type = "InstanceNormalization";
    s.min_opset = 7;
    s.max_opset = 21;
    s.min_inputs = 3;
    s.max_inputs = 3;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferInstanceNorm;
    s.flops = [](const graph::Node&, const std::vector<Shape>& in, const std::vector<Shape>&) {
      return PerElementFlops(7.0, in);
    };
    s.kernels = {
        {"reference",
         [](const KernelBuildContext&) -> absl::StatusOr<std::unique_ptr<Kernel>> {
           return std::unique_ptr<Kernel>(new InstanceNormReferenceKernel());
         }},
    };
    registry.Register(std::move(s));
  }
}

}  // namespace lasgd::ops
