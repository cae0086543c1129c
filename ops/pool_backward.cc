// com.lasgd MaxPoolGrad and AveragePoolGrad (see ops/backward_ops.h):
// schemas, shape functions and kernels: "fast" (per-axis tap lists computed
// at build time), oneDNN for AveragePoolGrad (float32) and "reference".
//
// Both carry the forward node's attributes plus `opset`, the forward model's
// opset, because which attributes exist depends on it (ceil_mode from 10,
// MaxPool dilations from 10, AveragePool dilations from 19). The geometry
// below follows ops/pool.cc exactly: a ceil_mode window may reach past the
// end padding, and that overhang is neither data nor padding.
//
// MaxPoolGrad recomputes the argmax of every window from X (the forward
// Indices output may not exist) and routes dY there; ties go to the first
// maximum in row-major window order, as in PyTorch and the forward kernel.
#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/backward_ops.h"
#include "ops/conv_util.h"
#include "ops/onednn_engine.h"

namespace lasgd::ops::backward_internal {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

struct PoolGeometry {
  bool max = true;
  int64_t batch = 0, channels = 0;
  std::vector<int64_t> in, out, kernel, strides, dilations, pads_begin, pads_end;
  bool count_include_pad = false;

  int64_t spatial_rank() const { return static_cast<int64_t>(in.size()); }
  Shape InputShape() const {
    Shape s = {batch, channels};
    s.insert(s.end(), in.begin(), in.end());
    return s;
  }
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
  if (attr->kind != graph::Attribute::Kind::kInts ||
      static_cast<int64_t>(attr->ints.size()) != count) {
    return Invalid(
        absl::StrCat("attribute '", name, "' must be ", count, " ints, got ", attr->ToString()));
  }
  for (int64_t v : attr->ints) {
    if (v < min_value) {
      return Invalid(absl::StrCat("attribute '", name, "' values must be >= ", min_value, ", got ",
                                  attr->ToString()));
    }
  }
  return attr->ints;
}

// The forward geometry of a MaxPool / AveragePool node (attributes as the
// forward node had them, `opset` its model's opset) for input shape `x`.
absl::StatusOr<PoolGeometry> ResolvePoolGeometry(const graph::Node& node, const Shape& x,
                                                 bool max) {
  const graph::Attribute* opset_attr = node.FindAttribute("opset");
  if (opset_attr == nullptr || opset_attr->kind != graph::Attribute::Kind::kInt) {
    return Invalid("attribute 'opset' (the forward model's opset) is required");
  }
  const int64_t opset = opset_attr->i;
  if (x.size() < 3 || x.size() > 5) {
    return Invalid(absl::StrCat("X must have rank 3 to 5 (N, C and 1 to 3 spatial axes), got ",
                                ShapeToString(x)));
  }
  for (int64_t d : x) {
    if (d < 1) return Invalid(absl::StrCat("X has an empty dimension: ", ShapeToString(x)));
  }
  const int64_t nsp = static_cast<int64_t>(x.size()) - 2;
  PoolGeometry g;
  g.max = max;
  g.batch = x[0];
  g.channels = x[1];
  g.in.assign(x.begin() + 2, x.end());
  if (node.FindAttribute("kernel_shape") == nullptr) {
    return Invalid("attribute 'kernel_shape' is required");
  }
  ASSIGN_OR_RETURN(g.kernel, SpatialInts(node, "kernel_shape", nsp, 1, 1));
  ASSIGN_OR_RETURN(g.strides, SpatialInts(node, "strides", nsp, 1, 1));
  g.dilations.assign(nsp, 1);
  if (max ? opset >= 10 : opset >= 19) {
    ASSIGN_OR_RETURN(g.dilations, SpatialInts(node, "dilations", nsp, 1, 1));
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, SpatialInts(node, "pads", 2 * nsp, 0, 0));
  const bool ceil_mode = opset >= 10 && node.GetInt("ceil_mode", 0) != 0;
  if (!max) g.count_include_pad = node.GetInt("count_include_pad", 0) != 0;
  const std::string auto_pad = node.GetString("auto_pad", "NOTSET");
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
      g.out[i] = (in + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * s + window - in);
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
    if (ceil_mode && (g.out[i] - 1) * s >= in + g.pads_begin[i]) --g.out[i];
  }
  return g;
}

struct Pool3d {
  int64_t planes;
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
};

Pool3d To3d(const PoolGeometry& g) {
  Pool3d r;
  r.planes = g.batch * g.channels;
  const int64_t lead = 3 - g.spatial_rank();
  for (int64_t i = 0; i < 3; ++i) {
    const bool real = i >= lead;
    const int64_t j = i - lead;
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

// Calls f(input offset within the plane) for every tap of window `o` inside
// the input and returns how many taps lie inside the input or its padding
// (what count_include_pad divides by), as ops/pool.cc's ForEachTap.
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
        f((id * g.in[1] + ih) * g.in[2] + iw);
      }
    }
  }
  return padded_count;
}

// One thread owns each (n, c) plane of dX.
template <typename T>
void MaxPoolGradReference(const Pool3d& g, const T* x, const T* dy, T* dx) {
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * in_plane;
    const T* dyp = dy + p * out_plane;
    T* dxp = dx + p * in_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    for (int64_t od = 0; od < g.out[0]; ++od) {
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          T best = std::numeric_limits<T>::lowest();
          int64_t best_index = -1;
          ForEachTap(g, od, oh, ow, [&](int64_t i) {
            if (best_index < 0 || xp[i] > best) {
              best = xp[i];
              best_index = i;
            }
          });
          if (best_index >= 0) dxp[best_index] += dyp[(od * g.out[1] + oh) * g.out[2] + ow];
        }
      }
    }
  }
}

template <typename T>
void AveragePoolGradReference(const Pool3d& g, bool count_include_pad, const T* dy, T* dx) {
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    const T* dyp = dy + p * out_plane;
    T* dxp = dx + p * in_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    std::vector<int64_t> taps;
    for (int64_t od = 0; od < g.out[0]; ++od) {
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          taps.clear();
          const int64_t padded = ForEachTap(g, od, oh, ow, [&](int64_t i) { taps.push_back(i); });
          const int64_t count = count_include_pad ? padded : static_cast<int64_t>(taps.size());
          if (count == 0) continue;
          const T share = dyp[(od * g.out[1] + oh) * g.out[2] + ow] / static_cast<T>(count);
          for (int64_t i : taps) dxp[i] += share;
        }
      }
    }
  }
}

class ReferencePoolGradKernel : public Kernel {
 public:
  ReferencePoolGradKernel(const PoolGeometry& g, DataType dtype)
      : g3_(To3d(g)), max_(g.max), count_include_pad_(g.count_include_pad), dtype_(dtype) {}

  absl::Status Run(KernelContext& ctx) override {
    if (dtype_ == DataType::kFloat32) return RunTyped<float>(ctx);
    return RunTyped<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status RunTyped(KernelContext& ctx) {
    T* dx = ctx.output(0)->data<T>();
    if (max_) {
      MaxPoolGradReference<T>(g3_, ctx.input(0)->data<T>(), ctx.input(1)->data<T>(), dx);
    } else {
      AveragePoolGradReference<T>(g3_, count_include_pad_, ctx.input(0)->data<T>(), dx);
    }
    return absl::OkStatus();
  }

  Pool3d g3_;
  bool max_, count_include_pad_;
  DataType dtype_;
};

// ---- fast: per-axis tap lists ----

// A window's taps are the product of one range per axis, so the input
// indices each output index reads (and how many taps lie in the input or
// its padding) are computed once per axis at build time, which leaves the
// run-time loops free of bounds checks.
struct AxisTaps {
  std::vector<std::vector<int64_t>> inputs;  // per output index: valid input indices, in order
  std::vector<int64_t> padded;               // per output index: taps inside input or padding
};

AxisTaps MakeAxisTaps(const Pool3d& g, int axis) {
  AxisTaps t;
  t.inputs.resize(g.out[axis]);
  t.padded.resize(g.out[axis]);
  for (int64_t o = 0; o < g.out[axis]; ++o) {
    for (int64_t k = 0; k < g.k[axis]; ++k) {
      const int64_t i = o * g.s[axis] - g.pb[axis] + k * g.d[axis];
      if (i >= g.in[axis] + g.pe[axis]) break;
      ++t.padded[o];
      if (i >= 0 && i < g.in[axis]) t.inputs[o].push_back(i);
    }
  }
  return t;
}

class FastPoolGradKernel : public Kernel {
 public:
  FastPoolGradKernel(const PoolGeometry& g, DataType dtype)
      : g_(To3d(g)), max_(g.max), count_include_pad_(g.count_include_pad), dtype_(dtype) {
    for (int a = 0; a < 3; ++a) taps_[a] = MakeAxisTaps(g_, a);
    // 2x2 windows at stride 2 without padding or dilation (the CNNs' usual
    // MaxPool): windows never overlap and each lies inside the input, so
    // every input element is written exactly once (the routed gradient or
    // zero) with no zero-fill pass and no tap lists.
    max2x2_ = max_ && g_.in[0] == 1 && g_.k[0] == 1 && g_.k[1] == 2 && g_.k[2] == 2 &&
              g_.s[1] == 2 && g_.s[2] == 2 && g_.d[1] == 1 && g_.d[2] == 1 && g_.pb[1] == 0 &&
              g_.pb[2] == 0 && 2 * g_.out[1] <= g_.in[1] && 2 * g_.out[2] <= g_.in[2];
  }

  absl::Status Run(KernelContext& ctx) override {
    if (dtype_ == DataType::kFloat32) return max2x2_ ? RunMax2x2<float>(ctx) : RunTyped<float>(ctx);
    return max2x2_ ? RunMax2x2<double>(ctx) : RunTyped<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status RunMax2x2(KernelContext& ctx) {
    const int64_t in_h = g_.in[1], in_w = g_.in[2], out_h = g_.out[1], out_w = g_.out[2];
    const int64_t in_plane = in_h * in_w, out_plane = out_h * out_w;
    const T* x = ctx.input(0)->data<T>();
    const T* dy = ctx.input(1)->data<T>();
    T* dx = ctx.output(0)->data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < g_.planes; ++p) {
      const T* xp = x + p * in_plane;
      const T* dyp = dy + p * out_plane;
      T* dxp = dx + p * in_plane;
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const T* r0 = xp + 2 * oh * in_w;
        const T* r1 = r0 + in_w;
        T* d0 = dxp + 2 * oh * in_w;
        T* d1 = d0 + in_w;
        const T* g = dyp + oh * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          // The first maximum in row-major window order wins, as in the
          // general loop: a later tap takes over only when strictly greater.
          const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
          int best = 0;
          T m = a;
          if (b > m) best = 1, m = b;
          if (c > m) best = 2, m = c;
          if (d > m) best = 3;
          const T v = g[ow];
          d0[2 * ow] = best == 0 ? v : T(0);
          d0[2 * ow + 1] = best == 1 ? v : T(0);
          d1[2 * ow] = best == 2 ? v : T(0);
          d1[2 * ow + 1] = best == 3 ? v : T(0);
        }
        // An odd width leaves a last column no window reads.
        for (int64_t iw = 2 * out_w; iw < in_w; ++iw) d0[iw] = d1[iw] = T(0);
      }
      std::fill(dxp + 2 * out_h * in_w, dxp + in_plane, T(0));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status RunTyped(KernelContext& ctx) {
    const int64_t in_plane = g_.in_plane(), out_plane = g_.out_plane();
    const int64_t in_h = g_.in[1], in_w = g_.in[2];
    const T* x = max_ ? ctx.input(0)->data<T>() : nullptr;
    const T* dy = ctx.input(max_ ? 1 : 0)->data<T>();
    T* dx = ctx.output(0)->data<T>();
    const AxisTaps &td = taps_[0], &th = taps_[1], &tw = taps_[2];
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < g_.planes; ++p) {
      const T* xp = max_ ? x + p * in_plane : nullptr;
      const T* dyp = dy + p * out_plane;
      T* dxp = dx + p * in_plane;
      std::fill(dxp, dxp + in_plane, T(0));
      int64_t o = 0;
      for (int64_t od = 0; od < g_.out[0]; ++od) {
        for (int64_t oh = 0; oh < g_.out[1]; ++oh) {
          for (int64_t ow = 0; ow < g_.out[2]; ++ow, ++o) {
            if (max_) {
              // Strictly greater keeps the first maximum, as the reference.
              int64_t best = -1;
              T best_value = T(0);
              for (int64_t id : td.inputs[od]) {
                for (int64_t ih : th.inputs[oh]) {
                  const int64_t row = (id * in_h + ih) * in_w;
                  for (int64_t iw : tw.inputs[ow]) {
                    const T v = xp[row + iw];
                    if (best < 0 || v > best_value) {
                      best = row + iw;
                      best_value = v;
                    }
                  }
                }
              }
              if (best >= 0) dxp[best] += dyp[o];
              continue;
            }
            const int64_t count = count_include_pad_ ? td.padded[od] * th.padded[oh] * tw.padded[ow]
                                                     : static_cast<int64_t>(td.inputs[od].size() *
                                                                            th.inputs[oh].size() *
                                                                            tw.inputs[ow].size());
            if (count == 0) continue;
            const T share = dyp[o] / static_cast<T>(count);
            for (int64_t id : td.inputs[od]) {
              for (int64_t ih : th.inputs[oh]) {
                T* row = dxp + (id * in_h + ih) * in_w;
                for (int64_t iw : tw.inputs[ow]) row[iw] += share;
              }
            }
          }
        }
      }
    }
    return absl::OkStatus();
  }

  Pool3d g_;
  bool max_, count_include_pad_, max2x2_ = false;
  DataType dtype_;
  AxisTaps taps_[3];
};

absl::StatusOr<Shape> InputShapeAttribute(const graph::Node& node) {
  const graph::Attribute* attr = node.FindAttribute("input_shape");
  if (attr == nullptr || attr->kind != graph::Attribute::Kind::kInts) {
    return Invalid("attribute 'input_shape' (ints: the shape of X) is required");
  }
  return Shape(attr->ints.begin(), attr->ints.end());
}

// The geometry of a MaxPoolGrad(X, dY) or AveragePoolGrad(dY) node, checked
// against dY's shape.
absl::StatusOr<PoolGeometry> ResolveForNode(const graph::Node& node,
                                            const std::vector<Shape>& inputs) {
  const bool max = node.op_type == "MaxPoolGrad";
  Shape x;
  if (max) {
    x = inputs[0];
  } else {
    ASSIGN_OR_RETURN(x, InputShapeAttribute(node));
  }
  ASSIGN_OR_RETURN(PoolGeometry g, ResolvePoolGeometry(node, x, max));
  const Shape& dy = inputs[max ? 1 : 0];
  if (dy != g.OutputShape()) {
    return Invalid(absl::StrCat("dY has shape ", ShapeToString(dy), " but pooling X ",
                                ShapeToString(x), " produces ", ShapeToString(g.OutputShape())));
  }
  return g;
}

absl::Status InferPoolGrad(InferenceContext& ctx) {
  const DataType dtype = ctx.input_dtype(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (ctx.input_dtype(i) != DataType::kFloat32 && ctx.input_dtype(i) != DataType::kFloat64) {
      return ctx.Error(absl::StrCat("inputs must be float32 or float64, got ",
                                    DataTypeName(ctx.input_dtype(i))));
    }
    if (ctx.input_dtype(i) != dtype) return ctx.Error("X and dY must share one dtype");
  }
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) shapes.push_back(ctx.input_shape(i));
  auto g = ResolveForNode(ctx.node(), shapes);
  if (!g.ok()) return ctx.Error(std::string(g.status().message()));
  ctx.set_output(0, dtype, g->InputShape());
  return absl::OkStatus();
}

// ---- oneDNN ----

// AveragePoolGrad only: oneDNN's max-pooling backward needs the forward
// pass's workspace, and rerunning the forward to get it made it several times
// slower than the fast kernel's recomputation of the argmax.
class OnednnAveragePoolGradKernel : public Kernel {
 public:
  explicit OnednnAveragePoolGradKernel(const dnnl::pooling_v2_backward::primitive_desc& pd)
      : backward_(pd), diff_src_(pd.diff_src_desc()), diff_dst_(pd.diff_dst_desc()) {}

  absl::Status Run(KernelContext& ctx) override {
    try {
      dnnl::engine& engine = onednn::CpuEngine();
      dnnl::stream& stream = onednn::CpuStream();
      backward_.execute(
          stream,
          {{DNNL_ARG_DIFF_DST,
            dnnl::memory(diff_dst_, engine, const_cast<void*>(ctx.input(0)->raw_data()))},
           {DNNL_ARG_DIFF_SRC, dnnl::memory(diff_src_, engine, ctx.output(0)->raw_data())}});
      stream.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN pooling backward failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  dnnl::pooling_v2_backward backward_;
  dnnl::memory::desc diff_src_, diff_dst_;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnPoolGrad(const KernelBuildContext& ctx) {
  using dnnl::memory;
  for (DataType dtype : ctx.input_dtypes) {
    if (dtype != DataType::kFloat32) {
      return absl::UnimplementedError(
          absl::StrCat("oneDNN pooling backward here is float32 only, got ", DataTypeName(dtype)));
    }
  }
  ASSIGN_OR_RETURN(PoolGeometry g, ResolveForNode(ctx.node, ctx.input_shapes));
  if (g.max) return absl::UnimplementedError("oneDNN is used for AveragePoolGrad only");
  // ceil_mode's overhang becomes extra right padding, as in the forward kernel.
  std::vector<int64_t> pad_r(g.pads_end);
  for (int64_t i = 0; i < g.spatial_rank(); ++i) {
    const int64_t window = (g.kernel[i] - 1) * g.dilations[i] + 1;
    const int64_t needed = (g.out[i] - 1) * g.strides[i] + window - g.in[i] - g.pads_begin[i];
    if (needed > pad_r[i]) {
      if (g.count_include_pad) {
        return absl::UnimplementedError(
            "ceil_mode overhang with count_include_pad: oneDNN would count it as padding");
      }
      pad_r[i] = needed;
    }
  }
  const Shape x = g.InputShape(), y = g.OutputShape();
  memory::desc src(memory::dims(x.begin(), x.end()), memory::data_type::f32,
                   conv_internal::PlainTag(x.size()));
  memory::desc dst(memory::dims(y.begin(), y.end()), memory::data_type::f32,
                   conv_internal::PlainTag(y.size()));
  const dnnl::algorithm algorithm = g.count_include_pad
                                        ? dnnl::algorithm::pooling_avg_include_padding
                                        : dnnl::algorithm::pooling_avg_exclude_padding;
  memory::dims dilations;
  for (int64_t d : g.dilations) dilations.push_back(d - 1);  // oneDNN counts the gaps
  try {
    dnnl::pooling_v2_forward::desc fwd(dnnl::prop_kind::forward_training, algorithm, src, dst,
                                       memory::dims(g.strides), memory::dims(g.kernel), dilations,
                                       memory::dims(g.pads_begin), memory::dims(pad_r));
    dnnl::pooling_v2_forward::primitive_desc fwd_pd(fwd, onednn::CpuEngine());
    dnnl::pooling_v2_backward::desc bwd(algorithm, src, dst, memory::dims(g.strides),
                                        memory::dims(g.kernel), dilations,
                                        memory::dims(g.pads_begin), memory::dims(pad_r));
    dnnl::pooling_v2_backward::primitive_desc bwd_pd(bwd, onednn::CpuEngine(), fwd_pd);
    return std::unique_ptr<Kernel>(new OnednnAveragePoolGradKernel(bwd_pd));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(
        absl::StrCat("oneDNN has no pooling backward for this configuration: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildFastPoolGrad(const KernelBuildContext& ctx) {
  const DataType dtype = ctx.input_dtypes[0];
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
    return absl::UnimplementedError(absl::StrCat(
        "the fast pooling backward supports float32 and float64, got ", DataTypeName(dtype)));
  }
  ASSIGN_OR_RETURN(PoolGeometry g, ResolveForNode(ctx.node, ctx.input_shapes));
  return std::unique_ptr<Kernel>(new FastPoolGradKernel(g, dtype));
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildReferencePoolGrad(const KernelBuildContext& ctx) {
  const DataType dtype = ctx.input_dtypes[0];
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
    return absl::UnimplementedError(absl::StrCat(
        "reference pooling backward supports float32 and float64, got ", DataTypeName(dtype)));
  }
  ASSIGN_OR_RETURN(PoolGeometry g, ResolveForNode(ctx.node, ctx.input_shapes));
  return std::unique_ptr<Kernel>(new ReferencePoolGradKernel(g, dtype));
}

void RegisterPoolGrad(OpRegistry& registry, const std::string& op_type, int num_inputs,
                      std::vector<KernelCandidate> kernels) {
  OpSchema s;
  s.domain = "com.lasgd";
  s.op_type = op_type;
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = num_inputs;
  s.max_inputs = num_inputs;
  s.min_outputs = 1;
  s.max_outputs = 1;
  s.infer = InferPoolGrad;
  s.flops = [](const graph::Node& node, const std::vector<Shape>& inputs,
               const std::vector<Shape>&) {
    double taps = 1;
    for (int64_t k : node.GetInts("kernel_shape")) taps *= static_cast<double>(k);
    return inputs.empty() ? 0.0 : static_cast<double>(NumElements(inputs.back())) * taps;
  };
  s.kernels = std::move(kernels);
  registry.Register(std::move(s));
}

}  // namespace

void RegisterPoolBackwardOps(OpRegistry& registry) {
  RegisterPoolGrad(registry, "MaxPoolGrad", 2,
                   {{"fast", BuildFastPoolGrad}, {"reference", BuildReferencePoolGrad}});
  RegisterPoolGrad(registry, "AveragePoolGrad", 1,
                   {{"onednn", BuildOnednnPoolGrad},
                    {"fast", BuildFastPoolGrad},
                    {"reference", BuildReferencePoolGrad}});
}

}  // namespace lasgd::ops::backward_internal
