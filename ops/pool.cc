// Pooling: MaxPool (with the optional Indices output), AveragePool, LpPool and
// their Global* forms. Schemas, shape inference, reference loops, and oneDNN
// kernels for float32 MaxPool / AveragePool / GlobalMaxPool /
// GlobalAveragePool, which take the channel-blocked layout natively.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/conv_util.h"
#include "ops/onednn_layout.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

using conv_internal::DnnlEngine;
using conv_internal::DnnlStream;

enum class PoolKind { kMax, kAverage, kLp };

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

// Which attributes exist at which opset.
bool HasCeilMode(PoolKind kind, int64_t opset) {
  return kind == PoolKind::kLp ? opset >= 18 : opset >= 10;
}
bool HasDilations(PoolKind kind, int64_t opset) {
  switch (kind) {
    case PoolKind::kMax:
      return opset >= 10;
    case PoolKind::kAverage:
      return opset >= 19;
    case PoolKind::kLp:
      return opset >= 18;
  }
  return false;
}

// A MaxPool / AveragePool / LpPool node with every attribute resolved.
struct PoolGeometry {
  int64_t batch = 0, channels = 0;
  std::vector<int64_t> in, out, kernel, strides, dilations;
  // The pads the model asked for (auto_pad resolved). With ceil_mode the last
  // window may reach past in + pads_end; that overhang is neither data nor
  // padding (it does not count for count_include_pad).
  std::vector<int64_t> pads_begin, pads_end;
  bool count_include_pad = false;
  int64_t p = 2;
  int64_t storage_order = 0;

  int64_t spatial_rank() const { return static_cast<int64_t>(in.size()); }
  Shape OutputShape() const {
    Shape s = {batch, channels};
    s.insert(s.end(), out.begin(), out.end());
    return s;
  }
};

absl::StatusOr<std::vector<int64_t>> SpatialInts(const graph::Node& node, const std::string& name,
                                                 int64_t count, int64_t default_value,
                                                 int64_t min_value) {
  const graph::Attribute* attr = node.FindAttribute(name);
  if (attr == nullptr || (attr->kind == graph::Attribute::Kind::kInts && attr->ints.empty())) {
    return std::vector<int64_t>(count, default_value);
  }
  if (attr->kind != graph::Attribute::Kind::kInts) {
    return Invalid(
        absl::StrCat("attribute '", name, "' must be a list of ints, got ", attr->ToString()));
  }
  if (static_cast<int64_t>(attr->ints.size()) != count) {
    return Invalid(absl::StrCat("attribute '", name, "' has ", attr->ints.size(),
                                " values; expected ", count, " (", attr->ToString(), ")"));
  }
  for (int64_t v : attr->ints) {
    if (v < min_value) {
      return Invalid(absl::StrCat("attribute '", name, "' values must be >= ", min_value, ", got ",
                                  attr->ToString()));
    }
  }
  return attr->ints;
}

absl::StatusOr<PoolGeometry> ResolvePoolGeometry(const graph::Node& node, int64_t opset,
                                                 const Shape& x, PoolKind kind) {
  if (x.size() < 3 || x.size() > 5) {
    return Invalid(absl::StrCat("input X must have rank 3 to 5 (N, C and 1 to 3 spatial axes), ",
                                "got shape ", ShapeToString(x)));
  }
  for (int64_t d : x) {
    if (d < 1) return Invalid(absl::StrCat("X has an empty dimension: ", ShapeToString(x)));
  }
  const int64_t nsp = static_cast<int64_t>(x.size()) - 2;
  PoolGeometry g;
  g.batch = x[0];
  g.channels = x[1];
  g.in.assign(x.begin() + 2, x.end());
  if (node.FindAttribute("kernel_shape") == nullptr) {
    return Invalid("attribute 'kernel_shape' is required");
  }
  ASSIGN_OR_RETURN(g.kernel, SpatialInts(node, "kernel_shape", nsp, 1, 1));
  ASSIGN_OR_RETURN(g.strides, SpatialInts(node, "strides", nsp, 1, 1));
  g.dilations.assign(nsp, 1);
  if (HasDilations(kind, opset)) {
    ASSIGN_OR_RETURN(g.dilations, SpatialInts(node, "dilations", nsp, 1, 1));
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, SpatialInts(node, "pads", 2 * nsp, 0, 0));
  const bool ceil_mode = HasCeilMode(kind, opset) && node.GetInt("ceil_mode", 0) != 0;
  if (kind == PoolKind::kAverage) g.count_include_pad = node.GetInt("count_include_pad", 0) != 0;
  if (kind == PoolKind::kLp) {
    g.p = node.GetInt("p", 2);
    if (g.p < 1) return Invalid(absl::StrCat("attribute 'p' must be >= 1, got ", g.p));
  }
  if (kind == PoolKind::kMax && opset >= 8) {
    g.storage_order = node.GetInt("storage_order", 0);
    if (g.storage_order != 0 && g.storage_order != 1) {
      return Invalid(absl::StrCat("attribute 'storage_order' must be 0 (row major) or 1 (column ",
                                  "major), got ", g.storage_order));
    }
  }
  std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" &&
      auto_pad != "VALID") {
    return Invalid(absl::StrCat("attribute 'auto_pad' must be NOTSET, SAME_UPPER, SAME_LOWER or ",
                                "VALID, got '", auto_pad, "'"));
  }
  g.out.assign(nsp, 0);
  g.pads_begin.assign(nsp, 0);
  g.pads_end.assign(nsp, 0);
  for (int64_t i = 0; i < nsp; ++i) {
    const int64_t in = g.in[i], s = g.strides[i];
    const int64_t window = (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      // ceil(in / s) whether or not ceil_mode is set (the spec's two formulas agree).
      g.out[i] = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * s + window - in);
      g.pads_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pads_end[i] = total - g.pads_begin[i];
      continue;
    }
    if (auto_pad == "NOTSET") {
      g.pads_begin[i] = pads[i];
      g.pads_end[i] = pads[nsp + i];
    }
    const int64_t span = in + g.pads_begin[i] + g.pads_end[i] - window;
    if (span < 0) {
      return Invalid(absl::StrCat("spatial axis ", i, ": the dilated kernel (", window,
                                  ") is larger than the padded input (", span + window, ") for X ",
                                  ShapeToString(x)));
    }
    g.out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // The last window must start inside the input or its left padding.
    if (ceil_mode && (g.out[i] - 1) * s >= in + g.pads_begin[i]) --g.out[i];
  }
  return g;
}

// The geometry padded to 3 spatial axes (D, H, W) for the reference loops.
struct Pool3d {
  int64_t n, c;
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
};

Pool3d To3d(const PoolGeometry& g) {
  Pool3d r;
  r.n = g.batch;
  r.c = g.channels;
  const int64_t lead = 3 - g.spatial_rank();
  for (int64_t i = 0; i < 3; ++i) {
    bool real = i >= lead;
    int64_t j = i - lead;
    r.in[i] = real ? g.in[j] : 1;
    r.out[i] = real ? g.out[j] : 1;
    r.k[i] = real ? g.kernel[j] : 1;
    r.s[i] = real ? g.strides[j] : 1;
    r.d[i] = real ? g.dilations[j] : 1;
    r.pb[i] = real ? g.pads_begin[j] : 0;
    r.pe[i] = real ? g.pads_end[j] : 0;
  }
  return r;
}

// Calls f(input offset within the plane, spatial index as (id, ih, iw)) for
// every tap of one window that lies inside the input, and returns how many
// taps lie inside the input or its declared padding.
template <typename F>
int64_t ForEachTap(const Pool3d& g, int64_t od, int64_t oh, int64_t ow, F&& f) {
  int64_t padded_count = 0;
  for (int64_t kd = 0; kd < g.k[0]; ++kd) {
    const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
    if (id >= g.in[0] + g.pe[0]) break;
    for (int64_t kh = 0; kh < g.k[1]; ++kh) {
      const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
      if (ih >= g.in[1] + g.pe[1]) break;
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const int64_t iw = ow * g.s[2] - g.pb[2] + kw * g.d[2];
        if (iw >= g.in[2] + g.pe[2]) break;
        ++padded_count;
        if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] || iw < 0 || iw >= g.in[2]) {
          continue;
        }
        f((id * g.in[1] + ih) * g.in[2] + iw, id, ih, iw);
      }
    }
  }
  return padded_count;
}

template <typename T>
void MaxPoolReference(const Pool3d& g, int64_t storage_order, const T* x, T* y, int64_t* indices) {
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const T* xp = x + nc * in_plane;
    for (int64_t od = 0; od < g.out[0]; ++od) {
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          T best = std::numeric_limits<T>::lowest();
          int64_t best_index = -1;
          ForEachTap(g, od, oh, ow, [&](int64_t offset, int64_t id, int64_t ih, int64_t iw) {
            // Strictly greater keeps the first maximum, as onnxruntime does.
            if (best_index < 0 || xp[offset] > best) {
              best = xp[offset];
              best_index = storage_order == 0 ? offset : id + g.in[0] * (ih + g.in[1] * iw);
            }
          });
          const int64_t o = nc * out_plane + (od * g.out[1] + oh) * g.out[2] + ow;
          y[o] = best;
          if (indices) indices[o] = best_index < 0 ? -1 : nc * in_plane + best_index;
        }
      }
    }
  }
}

template <typename T>
void AvgOrLpPoolReference(const Pool3d& g, PoolKind kind, bool count_include_pad, int64_t p,
                          const T* x, T* y) {
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const T* xp = x + nc * in_plane;
    for (int64_t od = 0; od < g.out[0]; ++od) {
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          double sum = 0;
          int64_t valid = 0;
          int64_t padded =
              ForEachTap(g, od, oh, ow, [&](int64_t offset, int64_t, int64_t, int64_t) {
                const double v = static_cast<double>(xp[offset]);
                sum += kind == PoolKind::kLp ? std::pow(std::fabs(v), static_cast<double>(p)) : v;
                ++valid;
              });
          double result;
          if (kind == PoolKind::kLp) {
            result = std::pow(sum, 1.0 / static_cast<double>(p));
          } else {
            const int64_t count = count_include_pad ? padded : valid;
            result = count > 0 ? sum / static_cast<double>(count) : 0.0;
          }
          y[nc * out_plane + (od * g.out[1] + oh) * g.out[2] + ow] = static_cast<T>(result);
        }
      }
    }
  }
}

class ReferencePoolKernel : public Kernel {
 public:
  ReferencePoolKernel(PoolKind kind, DataType dtype, PoolGeometry g)
      : kind_(kind), dtype_(dtype), g_(std::move(g)), g3_(To3d(g_)) {}

  absl::Status Run(KernelContext& ctx) override {
    switch (dtype_) {
      case DataType::kFloat32:
        return RunTyped<float>(ctx);
      case DataType::kFloat64:
        return RunTyped<double>(ctx);
      case DataType::kInt8:
        return RunTyped<int8_t>(ctx);
      case DataType::kUint8:
        return RunTyped<uint8_t>(ctx);
      default:
        return absl::InternalError("unexpected dtype");
    }
  }

 private:
  template <typename T>
  absl::Status RunTyped(KernelContext& ctx) {
    const T* x = ctx.input(0)->data<T>();
    T* y = ctx.output(0)->data<T>();
    if (kind_ == PoolKind::kMax) {
      Tensor* indices = ctx.num_outputs() > 1 ? ctx.output(1) : nullptr;
      MaxPoolReference<T>(g3_, g_.storage_order, x, y,
                          indices ? indices->data<int64_t>() : nullptr);
    } else if constexpr (std::is_floating_point_v<T>) {
      AvgOrLpPoolReference<T>(g3_, kind_, g_.count_include_pad, g_.p, x, y);
    } else {
      return absl::InternalError("integer average pooling");
    }
    return absl::OkStatus();
  }

  PoolKind kind_;
  DataType dtype_;
  PoolGeometry g_;
  Pool3d g3_;
};

absl::Status CheckDtype(DataType dtype, PoolKind kind, int64_t opset, const std::string& what) {
  if (dtype == DataType::kFloat32 || dtype == DataType::kFloat64) return absl::OkStatus();
  if (kind == PoolKind::kMax && opset >= 12 &&
      (dtype == DataType::kInt8 || dtype == DataType::kUint8)) {
    return absl::OkStatus();
  }
  return absl::UnimplementedError(
      absl::StrCat(what, " supports float32 and float64",
                   kind == PoolKind::kMax && opset >= 12 ? " (and int8/uint8 for MaxPool)" : "",
                   ", got ", DataTypeName(dtype)));
}

std::function<absl::StatusOr<std::unique_ptr<Kernel>>(const KernelBuildContext&)>
ReferencePoolFactory(PoolKind kind) {
  return [kind](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
    RETURN_IF_ERROR(CheckDtype(ctx.input_dtypes[0], kind, ctx.opset, "reference pooling"));
    ASSIGN_OR_RETURN(PoolGeometry g,
                     ResolvePoolGeometry(ctx.node, ctx.opset, ctx.input_shapes[0], kind));
    return std::unique_ptr<Kernel>(new ReferencePoolKernel(kind, ctx.input_dtypes[0], g));
  };
}

// ---- Global pools ----

enum class GlobalKind { kMax, kAverage, kLp };

class ReferenceGlobalPoolKernel : public Kernel {
 public:
  ReferenceGlobalPoolKernel(GlobalKind kind, DataType dtype, int64_t p)
      : kind_(kind), dtype_(dtype), p_(p) {}
  absl::Status Run(KernelContext& ctx) override {
    if (dtype_ == DataType::kFloat32) return RunTyped<float>(ctx);
    return RunTyped<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status RunTyped(KernelContext& ctx) {
    const Tensor& xt = *ctx.input(0);
    const int64_t planes = xt.dim(0) * xt.dim(1);
    const int64_t plane = planes == 0 ? 0 : xt.num_elements() / planes;
    const T* x = xt.data<T>();
    T* y = ctx.output(0)->data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < planes; ++i) {
      const T* xp = x + i * plane;
      double acc = kind_ == GlobalKind::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t j = 0; j < plane; ++j) {
        const double v = static_cast<double>(xp[j]);
        if (kind_ == GlobalKind::kMax) {
          acc = std::max(acc, v);
        } else if (kind_ == GlobalKind::kAverage) {
          acc += v;
        } else {
          acc += std::pow(std::fabs(v), static_cast<double>(p_));
        }
      }
      if (kind_ == GlobalKind::kAverage) acc /= static_cast<double>(plane);
      if (kind_ == GlobalKind::kLp) acc = std::pow(acc, 1.0 / static_cast<double>(p_));
      y[i] = static_cast<T>(acc);
    }
    return absl::OkStatus();
  }

  GlobalKind kind_;
  DataType dtype_;
  int64_t p_;
};

// ---- oneDNN ----

// A oneDNN pooling. For 2-D pooling it computes in the channel-blocked layout
// (ops/onednn_layout.h), where oneDNN's pooling is vectorised over channels;
// on plain NCHW it has only a slow implementation, so a plain input is
// reordered in (and the output out) unless the plan stores them blocked.
class OnednnPoolKernel : public Kernel {
 public:
  OnednnPoolKernel(Shape x, Shape y, dnnl::algorithm algorithm, std::vector<int64_t> kernel,
                   std::vector<int64_t> strides, std::vector<int64_t> dilations,
                   std::vector<int64_t> pad_l, std::vector<int64_t> pad_r)
      : x_(std::move(x)),
        y_(std::move(y)),
        algorithm_(algorithm),
        kernel_(kernel.begin(), kernel.end()),
        strides_(strides.begin(), strides.end()),
        pad_l_(pad_l.begin(), pad_l.end()),
        pad_r_(pad_r.begin(), pad_r.end()) {
    for (int64_t d : dilations) dilations_.push_back(d - 1);  // oneDNN counts the gaps
  }

  void Create(bool src_blocked, bool dst_blocked) {
    using dnnl::memory;
    auto make = [&](bool blocked) {
      memory::desc src = onednn::StoredDesc(x_, blocked), dst = onednn::StoredDesc(y_, blocked);
      dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm_, src, dst,
                                          strides_, kernel_, dilations_, pad_l_, pad_r_);
      return dnnl::pooling_v2_forward::primitive_desc(desc, DnnlEngine());
    };
    dnnl::pooling_v2_forward::primitive_desc pd;
    bool computed_blocked = false;
    if (onednn::CanBeBlocked(DataType::kFloat32, x_)) {
      try {
        pd = make(/*blocked=*/true);
        computed_blocked = !absl::StrContains(pd.impl_info_str(), "ref");
      } catch (const dnnl::error&) {
        computed_blocked = false;
      }
    }
    if (!computed_blocked) pd = make(/*blocked=*/false);
    primitive_ = dnnl::pooling_v2_forward(pd);
    // 2x2 max windows at stride 2 inside the input (the CNNs' usual MaxPool)
    // between plain tensors: a direct loop reads X once and writes Y once,
    // where oneDNN would reorder X to blocked, pool and reorder Y back.
    plain_max2x2_ = !src_blocked && !dst_blocked && algorithm_ == dnnl::algorithm::pooling_max &&
                    x_.size() == 4 && kernel_ == dnnl::memory::dims{2, 2} &&
                    strides_ == dnnl::memory::dims{2, 2} &&
                    dilations_ == dnnl::memory::dims{0, 0} && pad_l_ == dnnl::memory::dims{0, 0} &&
                    2 * y_[2] <= x_[2] && 2 * y_[3] <= x_[3];
    src_.Init(onednn::StoredDesc(x_, src_blocked), pd.src_desc(), /*is_output=*/false, /*slot=*/0);
    dst_.Init(onednn::StoredDesc(y_, dst_blocked), pd.dst_desc(), /*is_output=*/true, /*slot=*/1);
  }

  bool AcceptsBlockedLayout(bool, size_t index) const override {
    return index == 0 && onednn::CanBeBlocked(DataType::kFloat32, x_) &&
           src_.wanted() == onednn::BlockedDesc(x_);
  }
  absl::Status UseBlockedLayouts(const std::vector<bool>& inputs,
                                 const std::vector<bool>& outputs) override {
    try {
      Create(!inputs.empty() && inputs[0], !outputs.empty() && outputs[0]);
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN pooling: ", e.what()));
    }
    return absl::OkStatus();
  }

  absl::Status Run(KernelContext& ctx) override {
    if (plain_max2x2_) {
      MaxPool2x2Plain(ctx.input(0)->data<float>(), ctx.output(0)->data<float>());
      return absl::OkStatus();
    }
    try {
      dnnl::stream& stream = DnnlStream();
      dnnl::memory src = src_.In(ctx.input(0)->raw_data(), stream);
      dnnl::memory dst = dst_.Target(ctx.output(0)->raw_data());
      primitive_.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      dst_.Out(ctx.output(0)->raw_data(), stream);
      stream.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN pooling failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  // The first maximum of each window in row-major order, as the reference
  // kernel and MaxPoolGrad's argmax pick it.
  void MaxPool2x2Plain(const float* x, float* y) const {
    const int64_t planes = x_[0] * x_[1], in_h = x_[2], in_w = x_[3];
    const int64_t out_h = y_[2], out_w = y_[3];
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const float* xp = x + p * in_h * in_w;
      float* yp = y + p * out_h * out_w;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const float* r0 = xp + 2 * oh * in_w;
        const float* r1 = r0 + in_w;
        float* out = yp + oh * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          float m = r0[2 * ow];
          if (r0[2 * ow + 1] > m) m = r0[2 * ow + 1];
          if (r1[2 * ow] > m) m = r1[2 * ow];
          if (r1[2 * ow + 1] > m) m = r1[2 * ow + 1];
          out[ow] = m;
        }
      }
    }
  }

  Shape x_, y_;
  dnnl::algorithm algorithm_;
  dnnl::memory::dims kernel_, strides_, dilations_, pad_l_, pad_r_;
  dnnl::primitive primitive_;
  onednn::Operand src_, dst_;
  bool plain_max2x2_ = false;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnPooling(
    const Shape& x, const Shape& y, dnnl::algorithm algorithm, const std::vector<int64_t>& kernel,
    const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
    const std::vector<int64_t>& pad_l, const std::vector<int64_t>& pad_r) {
  auto k =
      std::make_unique<OnednnPoolKernel>(x, y, algorithm, kernel, strides, dilations, pad_l, pad_r);
  try {
    k->Create(/*src_blocked=*/false, /*dst_blocked=*/false);
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(
        absl::StrCat("oneDNN has no pooling for this configuration: ", e.what()));
  }
  return std::unique_ptr<Kernel>(std::move(k));
}

std::function<absl::StatusOr<std::unique_ptr<Kernel>>(const KernelBuildContext&)> OnednnPoolFactory(
    PoolKind kind) {
  return [kind](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
    if (ctx.input_dtypes[0] != DataType::kFloat32) {
      return absl::UnimplementedError(absl::StrCat("oneDNN pooling here is float32 only, got ",
                                                   DataTypeName(ctx.input_dtypes[0])));
    }
    if (ctx.node.HasOutput(1)) {
      return absl::UnimplementedError("oneDNN pooling does not produce MaxPool's Indices output");
    }
    ASSIGN_OR_RETURN(PoolGeometry g,
                     ResolvePoolGeometry(ctx.node, ctx.opset, ctx.input_shapes[0], kind));
    // oneDNN derives the output size from the pads, so ceil_mode's overhang
    // becomes extra right padding.
    std::vector<int64_t> pad_r(g.pads_end);
    for (int64_t i = 0; i < g.spatial_rank(); ++i) {
      const int64_t window = (g.kernel[i] - 1) * g.dilations[i] + 1;
      const int64_t needed = (g.out[i] - 1) * g.strides[i] + window - g.in[i] - g.pads_begin[i];
      if (needed > pad_r[i]) {
        if (kind == PoolKind::kAverage && g.count_include_pad) {
          return absl::UnimplementedError(
              "ceil_mode overhang with count_include_pad: oneDNN would count it as padding");
        }
        pad_r[i] = needed;
      }
    }
    dnnl::algorithm algorithm = kind == PoolKind::kMax ? dnnl::algorithm::pooling_max
                                : g.count_include_pad
                                    ? dnnl::algorithm::pooling_avg_include_padding
                                    : dnnl::algorithm::pooling_avg_exclude_padding;
    return BuildOnednnPooling(ctx.input_shapes[0], g.OutputShape(), algorithm, g.kernel, g.strides,
                              g.dilations, g.pads_begin, pad_r);
  };
}

// ---- shape functions ----

std::function<absl::Status(InferenceContext&)> InferPool(PoolKind kind) {
  return [kind](InferenceContext& ctx) -> absl::Status {
    DataType dtype = ctx.input_dtype(0);
    if (!IsFloatingPoint(dtype) && !(kind == PoolKind::kMax && ctx.opset() >= 12 &&
                                     (dtype == DataType::kInt8 || dtype == DataType::kUint8))) {
      return ctx.Error(
          absl::StrCat("input X must be a floating-point tensor",
                       kind == PoolKind::kMax && ctx.opset() >= 12 ? " (or int8/uint8)" : "",
                       ", got ", DataTypeName(dtype)));
    }
    auto g = ResolvePoolGeometry(ctx.node(), ctx.opset(), ctx.input_shape(0), kind);
    if (!g.ok()) return ctx.Error(std::string(g.status().message()));
    for (int64_t i = 0; i < g->spatial_rank(); ++i) {
      if (g->out[i] < 1) {
        return ctx.Error(absl::StrCat("spatial axis ", i, " of the output would be empty for X ",
                                      ShapeToString(ctx.input_shape(0))));
      }
    }
    ctx.set_output(0, dtype, g->OutputShape());
    if (ctx.num_outputs() > 1 && ctx.has_output(1)) {
      ctx.set_output(1, DataType::kInt64, g->OutputShape());
    }
    return absl::OkStatus();
  };
}

absl::Status InferGlobalPool(InferenceContext& ctx) {
  DataType dtype = ctx.input_dtype(0);
  if (!IsFloatingPoint(dtype)) {
    return ctx.Error(
        absl::StrCat("input X must be a floating-point tensor, got ", DataTypeName(dtype)));
  }
  const Shape& x = ctx.input_shape(0);
  if (x.size() < 2) {
    return ctx.Error(absl::StrCat("input X must have rank >= 2 (N, C, spatial...), got shape ",
                                  ShapeToString(x)));
  }
  for (size_t i = 2; i < x.size(); ++i) {
    if (x[i] < 1) return ctx.Error(absl::StrCat("X has an empty spatial axis: ", ShapeToString(x)));
  }
  if (ctx.node().op_type == "GlobalLpPool" && ctx.node().GetInt("p", 2) < 1) {
    return ctx.Error(absl::StrCat("attribute 'p' must be >= 1, got ", ctx.node().GetInt("p", 2)));
  }
  Shape y = {x[0], x[1]};
  y.resize(x.size(), 1);
  ctx.set_output(0, dtype, y);
  return absl::OkStatus();
}

KernelCandidate ReferenceGlobalCandidate(GlobalKind kind) {
  return {"reference",
          [kind](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
            DataType dtype = ctx.input_dtypes[0];
            if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
              return absl::UnimplementedError(absl::StrCat(
                  "reference pooling supports float32 and float64, got ", DataTypeName(dtype)));
            }
            return std::unique_ptr<Kernel>(
                new ReferenceGlobalPoolKernel(kind, dtype, ctx.node.GetInt("p", 2)));
          }};
}

KernelCandidate OnednnGlobalCandidate(GlobalKind kind) {
  return {"onednn",
          [kind](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
            const Shape& x = ctx.input_shapes[0];
            if (ctx.input_dtypes[0] != DataType::kFloat32) {
              return absl::UnimplementedError(absl::StrCat(
                  "oneDNN pooling here is float32 only, got ", DataTypeName(ctx.input_dtypes[0])));
            }
            if (x.size() < 3 || x.size() > 5) {
              return absl::UnimplementedError("oneDNN pooling needs 1 to 3 spatial axes");
            }
            std::vector<int64_t> kernel(x.begin() + 2, x.end());
            std::vector<int64_t> ones(kernel.size(), 1), zeros(kernel.size(), 0);
            Shape y = {x[0], x[1]};
            y.resize(x.size(), 1);
            return BuildOnednnPooling(x, y,
                                      kind == GlobalKind::kMax
                                          ? dnnl::algorithm::pooling_max
                                          : dnnl::algorithm::pooling_avg_exclude_padding,
                                      kernel, ones, ones, zeros, zeros);
          }};
}

double PoolFlops(const graph::Node& node, const std::vector<Shape>& inputs,
                 const std::vector<Shape>& outputs) {
  if (outputs.empty()) return 0;
  double taps = 1;
  for (int64_t k : node.GetInts("kernel_shape")) taps *= static_cast<double>(k);
  return static_cast<double>(NumElements(outputs[0])) * taps;
}

double GlobalPoolFlops(const graph::Node&, const std::vector<Shape>& inputs,
                       const std::vector<Shape>&) {
  return inputs.empty() ? 0 : static_cast<double>(NumElements(inputs[0]));
}

void RegisterPool(OpRegistry& registry, const std::string& op_type, PoolKind kind,
                  int64_t min_opset, int64_t max_opset, int max_outputs) {
  OpSchema s;
  s.op_type = op_type;
  s.min_opset = min_opset;
  s.max_opset = max_opset;
  s.min_inputs = 1;
  s.max_inputs = 1;
  s.min_outputs = 1;
  s.max_outputs = max_outputs;
  s.infer = InferPool(kind);
  s.flops = PoolFlops;
  if (kind != PoolKind::kLp) s.kernels.push_back({"onednn", OnednnPoolFactory(kind)});
  s.kernels.push_back({"reference", ReferencePoolFactory(kind)});
  registry.Register(std::move(s));
}

void RegisterGlobalPool(OpRegistry& registry, const std::string& op_type, GlobalKind kind) {
  OpSchema s;
  s.op_type = op_type;
  s.min_opset = 7;
  s.max_opset = 21;
  s.min_inputs = 1;
  s.max_inputs = 1;
  s.min_outputs = 1;
  s.max_outputs = 1;
  s.infer = InferGlobalPool;
  s.flops = GlobalPoolFlops;
  if (kind != GlobalKind::kLp) s.kernels.push_back(OnednnGlobalCandidate(kind));
  s.kernels.push_back(ReferenceGlobalCandidate(kind));
  registry.Register(std::move(s));
}

}  // namespace

void RegisterPoolOps(OpRegistry& registry) {
  // MaxPool: 8 added Indices and storage_order, 10 ceil_mode and dilations,
  // 12 int8/uint8 inputs.
  RegisterPool(registry, "MaxPool", PoolKind::kMax, 7, 7, 1);
  RegisterPool(registry, "MaxPool", PoolKind::kMax, 8, 9, 2);
  RegisterPool(registry, "MaxPool", PoolKind::kMax, 10, 11, 2);
  RegisterPool(registry, "MaxPool", PoolKind::kMax, 12, 21, 2);
  // AveragePool: 10 added ceil_mode, 19 dilations (11 only reworded pads).
  RegisterPool(registry, "AveragePool", PoolKind::kAverage, 7, 9, 1);
  RegisterPool(registry, "AveragePool", PoolKind::kAverage, 10, 18, 1);
  RegisterPool(registry, "AveragePool", PoolKind::kAverage, 19, 21, 1);
  // LpPool: 18 added ceil_mode and dilations (11 only reworded pads).
  RegisterPool(registry, "LpPool", PoolKind::kLp, 7, 17, 1);
  RegisterPool(registry, "LpPool", PoolKind::kLp, 18, 21, 1);
  RegisterGlobalPool(registry, "GlobalMaxPool", GlobalKind::kMax);
  RegisterGlobalPool(registry, "GlobalAveragePool", GlobalKind::kAverage);
  RegisterGlobalPool(registry, "GlobalLpPool", GlobalKind::kLp);
}

}  // namespace lasgd::ops
