// com.lasgd ConvGradInput and ConvGradWeight (see ops/backward_ops.h):
// schemas, shape functions, reference kernels and a ConvGradWeight kernel for
// one input channel. The oneDNN kernels are in conv_backward_onednn.cc.
//
// Both carry the forward Conv node's attributes verbatim (auto_pad, pads,
// strides, dilations, group, kernel_shape), so the forward geometry is
// resolved by the very function the forward op uses
// (conv_internal::ResolveConvGeometry) and cannot drift from it.
#include "ops/conv_backward.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "ops/backward_ops.h"

namespace lasgd::ops::backward_internal {

absl::StatusOr<conv_internal::ConvGeometry> ResolveConvGradGeometry(const graph::Node& node,
                                                                    const Shape& x, const Shape& w,
                                                                    const Shape& dy) {
  ASSIGN_OR_RETURN(conv_internal::ConvGeometry g, conv_internal::ResolveConvGeometry(node, x, w));
  if (g.OutputShape() != dy) {
    return absl::InvalidArgumentError(
        absl::StrCat("dY has shape ", ShapeToString(dy), " but Conv of X ", ShapeToString(x),
                     " and W ", ShapeToString(w), " produces ", ShapeToString(g.OutputShape())));
  }
  return g;
}

absl::StatusOr<Shape> ConvGradWeightShape(const graph::Node& node, const Shape& x,
                                          const Shape& dy) {
  const graph::Attribute* ks = node.FindAttribute("kernel_shape");
  if (ks == nullptr || ks->kind != graph::Attribute::Kind::kInts) {
    return absl::InvalidArgumentError("attribute 'kernel_shape' (ints) is required");
  }
  if (x.size() < 3 || dy.size() != x.size() || ks->ints.size() + 2 != x.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X and dY must have rank 3 to 5 and kernel_shape one value per spatial axis; got X ",
        ShapeToString(x), ", dY ", ShapeToString(dy), ", kernel_shape ", ks->ToString()));
  }
  const int64_t group = node.GetInt("group", 1);
  if (group < 1 || x[1] % group != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group (", group, ") must be >= 1 and divide the channels of X ", ShapeToString(x)));
  }
  Shape w = {dy[1], x[1] / group};
  w.insert(w.end(), ks->ints.begin(), ks->ints.end());
  return w;
}

Geometry3d To3d(const conv_internal::ConvGeometry& g) {
  Geometry3d r;
  r.n = g.batch;
  r.c = g.in_channels;
  r.m = g.out_channels;
  r.group = g.group;
  const int64_t lead = 3 - g.spatial_rank();
  for (int64_t i = 0; i < 3; ++i) {
    const bool real = i >= lead;
    const int64_t j = i - lead;
    r.in[i] = real ? g.in_spatial[j] : 1;
    r.out[i] = real ? g.out_spatial[j] : 1;
    r.k[i] = real ? g.kernel[j] : 1;
    r.s[i] = real ? g.strides[j] : 1;
    r.d[i] = real ? g.dilations[j] : 1;
    r.pad[i] = real ? g.pads_begin[j] : 0;
  }
  return r;
}

namespace {

// Calls f(input offset, output offset, kernel offset) for every tap of the
// convolution that reads an input pixel (padding taps read nothing).
template <typename F>
void ForEachConvTap(const Geometry3d& g, F&& f) {
  for (int64_t od = 0; od < g.out[0]; ++od) {
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      for (int64_t ow = 0; ow < g.out[2]; ++ow) {
        const int64_t o = (od * g.out[1] + oh) * g.out[2] + ow;
        for (int64_t kd = 0; kd < g.k[0]; ++kd) {
          const int64_t id = od * g.s[0] - g.pad[0] + kd * g.d[0];
          if (id < 0 || id >= g.in[0]) continue;
          for (int64_t kh = 0; kh < g.k[1]; ++kh) {
            const int64_t ih = oh * g.s[1] - g.pad[1] + kh * g.d[1];
            if (ih < 0 || ih >= g.in[1]) continue;
            for (int64_t kw = 0; kw < g.k[2]; ++kw) {
              const int64_t iw = ow * g.s[2] - g.pad[2] + kw * g.d[2];
              if (iw < 0 || iw >= g.in[2]) continue;
              f((id * g.in[1] + ih) * g.in[2] + iw, o, (kd * g.k[1] + kh) * g.k[2] + kw);
            }
          }
        }
      }
    }
  }
}

// dX[n, c, i] = sum over the output channels m of c's group and the taps
// (o, k) with i = o*s - pad + k*d of dY[n, m, o] * W[m, c % (C/group), k].
// One thread owns each (n, c) plane of dX.
template <typename T>
void ConvGradInputReference(const Geometry3d& g, const T* dy, const T* w, T* dx) {
  const int64_t cin_g = g.c / g.group, cout_g = g.m / g.group;
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  const int64_t k_plane = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t grp = c / cin_g, ci = c % cin_g;
      std::vector<double> acc(in_plane, 0.0);
      for (int64_t mo = 0; mo < cout_g; ++mo) {
        const int64_t m = grp * cout_g + mo;
        const T* dyp = dy + (n * g.m + m) * out_plane;
        const T* wp = w + (m * cin_g + ci) * k_plane;
        ForEachConvTap(g, [&](int64_t i, int64_t o, int64_t k) {
          acc[i] += static_cast<double>(dyp[o]) * static_cast<double>(wp[k]);
        });
      }
      T* dxp = dx + (n * g.c + c) * in_plane;
      for (int64_t i = 0; i < in_plane; ++i) dxp[i] = static_cast<T>(acc[i]);
    }
  }
}

// dW[m, ci, k] = sum over n and the taps (o, i) of dY[n, m, o] * X[n, c, i]
// with c = group(m) * (C/group) + ci; dB[m] = sum over n, o of dY[n, m, o].
template <typename T>
void ConvGradWeightReference(const Geometry3d& g, const T* x, const T* dy, T* dw, T* db) {
  const int64_t cin_g = g.c / g.group, cout_g = g.m / g.group;
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  const int64_t k_plane = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t m = 0; m < g.m; ++m) {
    for (int64_t ci = 0; ci < cin_g; ++ci) {
      const int64_t c = (m / cout_g) * cin_g + ci;
      std::vector<double> acc(k_plane, 0.0);
      for (int64_t n = 0; n < g.n; ++n) {
        const T* dyp = dy + (n * g.m + m) * out_plane;
        const T* xp = x + (n * g.c + c) * in_plane;
        ForEachConvTap(g, [&](int64_t i, int64_t o, int64_t k) {
          acc[k] += static_cast<double>(dyp[o]) * static_cast<double>(xp[i]);
        });
      }
      T* dwp = dw + (m * cin_g + ci) * k_plane;
      for (int64_t k = 0; k < k_plane; ++k) dwp[k] = static_cast<T>(acc[k]);
    }
  }
  if (db == nullptr) return;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < g.m; ++m) {
    double sum = 0;
    for (int64_t n = 0; n < g.n; ++n) {
      const T* dyp = dy + (n * g.m + m) * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) sum += static_cast<double>(dyp[o]);
    }
    db[m] = static_cast<T>(sum);
  }
}

class ReferenceConvGradKernel : public Kernel {
 public:
  ReferenceConvGradKernel(Geometry3d g, DataType dtype, bool weight)
      : g_(g), dtype_(dtype), weight_(weight) {}

  absl::Status Run(KernelContext& ctx) override {
    if (dtype_ == DataType::kFloat32) return RunTyped<float>(ctx);
    return RunTyped<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status RunTyped(KernelContext& ctx) {
    if (!weight_) {
      ConvGradInputReference<T>(g_, ctx.input(0)->data<T>(), ctx.input(1)->data<T>(),
                                ctx.output(0)->data<T>());
    } else {
      Tensor* db = ctx.output(1);
      ConvGradWeightReference<T>(g_, ctx.input(0)->data<T>(), ctx.input(1)->data<T>(),
                                 ctx.output(0)->data<T>(), db ? db->data<T>() : nullptr);
    }
    return absl::OkStatus();
  }

  Geometry3d g_;
  DataType dtype_;
  bool weight_;
};

absl::Status CheckFloatDtypes(InferenceContext& ctx) {
  const DataType dtype = ctx.input_dtype(0);
  if (!IsFloatingPoint(dtype)) {
    return ctx.Error(absl::StrCat("inputs must be floating-point, got ", DataTypeName(dtype)));
  }
  if (ctx.input_dtype(1) != dtype) {
    return ctx.Error(absl::StrCat("both inputs must share one dtype, got ", DataTypeName(dtype),
                                  " and ", DataTypeName(ctx.input_dtype(1))));
  }
  return absl::OkStatus();
}

absl::StatusOr<Shape> InputShapeAttribute(const graph::Node& node) {
  const graph::Attribute* attr = node.FindAttribute("input_shape");
  if (attr == nullptr || attr->kind != graph::Attribute::Kind::kInts) {
    return absl::InvalidArgumentError("attribute 'input_shape' (ints: the shape of X) is required");
  }
  return Shape(attr->ints.begin(), attr->ints.end());
}

absl::Status InferConvGradInput(InferenceContext& ctx) {
  RETURN_IF_ERROR(CheckFloatDtypes(ctx));
  auto x = InputShapeAttribute(ctx.node());
  if (!x.ok()) return ctx.Error(std::string(x.status().message()));
  auto g = ResolveConvGradGeometry(ctx.node(), *x, ctx.input_shape(1), ctx.input_shape(0));
  if (!g.ok()) return ctx.Error(std::string(g.status().message()));
  ctx.set_output(0, ctx.input_dtype(0), *x);
  return absl::OkStatus();
}

absl::Status InferConvGradWeight(InferenceContext& ctx) {
  RETURN_IF_ERROR(CheckFloatDtypes(ctx));
  auto w = ConvGradWeightShape(ctx.node(), ctx.input_shape(0), ctx.input_shape(1));
  if (!w.ok()) return ctx.Error(std::string(w.status().message()));
  auto g = ResolveConvGradGeometry(ctx.node(), ctx.input_shape(0), *w, ctx.input_shape(1));
  if (!g.ok()) return ctx.Error(std::string(g.status().message()));
  ctx.set_output(0, ctx.input_dtype(0), *w);
  if (ctx.num_outputs() > 1 && ctx.has_output(1)) {
    ctx.set_output(1, ctx.input_dtype(0), {w->at(0)});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildReferenceConvGrad(const KernelBuildContext& ctx,
                                                               bool weight) {
  const DataType dtype = ctx.input_dtypes[0];
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
    return absl::UnimplementedError(absl::StrCat(
        "reference convolution gradient supports float32 and float64, got ", DataTypeName(dtype)));
  }
  ASSIGN_OR_RETURN(conv_internal::ConvGeometry g, ResolveConvGradGeometryFor(ctx, weight));
  return std::unique_ptr<Kernel>(new ReferenceConvGradKernel(To3d(g), dtype, weight));
}

// ConvGradWeight of a 2-D convolution with one input channel (a first layer
// on grayscale images), float32. oneDNN's blocked kernel pads that channel
// to a block of 8 and computes eight times the products (6.6 ms plus 1.6 ms
// of reorders for 128x1x28x28 -> 32 channels, 3x3, on one AVX2 thread); its
// GEMM-based kernel on plain layouts is fast on an idle machine but took a
// second per call with two threads on two busy cores (it waits for its
// threads in spinning barriers). Here the threads split the images and meet
// once: per image, the taps' shifted copies of X (im2col, taps x pixels)
// times dY's channels (pixels x out channels) by one oneDNN sgemm, summed
// per thread in float and across threads in double.
class SingleChannelConvGradWeightKernel : public Kernel {
 public:
  explicit SingleChannelConvGradWeightKernel(const conv_internal::ConvGeometry& g) : g_(g) {}

  absl::Status Run(KernelContext& ctx) override {
    const int64_t n_images = g_.batch, oc_count = g_.out_channels;
    const int64_t in_h = g_.in_spatial[0], in_w = g_.in_spatial[1];
    const int64_t out_h = g_.out_spatial[0], out_w = g_.out_spatial[1];
    const int64_t kh_count = g_.kernel[0], kw_count = g_.kernel[1];
    const int64_t taps = kh_count * kw_count, pixels = out_h * out_w;
    const float* x = ctx.input(0)->data<float>();
    const float* dy = ctx.input(1)->data<float>();
    Tensor* db = ctx.output(1);
    std::vector<double> dw_sum(taps * oc_count, 0.0), db_sum(oc_count, 0.0);
    bool failed = false;
#pragma omp parallel
    {
      std::vector<float> col(taps * pixels), dw_part(taps * oc_count, 0.f);
      std::vector<double> db_part(oc_count, 0.0);
      bool thread_failed = false;
#pragma omp for schedule(static)
      for (int64_t n = 0; n < n_images; ++n) {
        FillColumns(x + n * in_h * in_w, col.data());
        const float* dyn = dy + n * oc_count * pixels;
        // dw_part (taps x oc) += col (taps x pixels) * dyn^T (pixels x oc).
        // Called inside a parallel region, oneDNN's sgemm runs on this thread.
        const dnnl::status st = dnnl::sgemm('N', 'T', taps, oc_count, pixels, 1.f, col.data(),
                                            pixels, dyn, pixels, 1.f, dw_part.data(), oc_count);
        thread_failed |= st != dnnl::status::success;
        if (db != nullptr) {
          for (int64_t oc = 0; oc < oc_count; ++oc) {
            const float* plane = dyn + oc * pixels;
            float s = 0;
            for (int64_t p = 0; p < pixels; ++p) s += plane[p];
            db_part[oc] += s;
          }
        }
      }
#pragma omp critical
      {
        failed |= thread_failed;
        for (size_t i = 0; i < dw_part.size(); ++i) dw_sum[i] += dw_part[i];
        for (int64_t oc = 0; oc < oc_count; ++oc) db_sum[oc] += db_part[oc];
      }
    }
    if (failed)
      return absl::InternalError("oneDNN sgemm failed in the convolution weight gradient");
    float* dw_out = ctx.output(0)->data<float>();
    for (int64_t oc = 0; oc < oc_count; ++oc) {
      for (int64_t t = 0; t < taps; ++t)
        dw_out[oc * taps + t] = static_cast<float>(dw_sum[t * oc_count + oc]);
    }
    if (db != nullptr) {
      for (int64_t oc = 0; oc < oc_count; ++oc)
        db->data<float>()[oc] = static_cast<float>(db_sum[oc]);
    }
    return absl::OkStatus();
  }

 private:
  // col[t][oh * out_w + ow] = X at tap t of output pixel (oh, ow), 0 in the padding.
  void FillColumns(const float* xn, float* col) const {
    const int64_t in_h = g_.in_spatial[0], in_w = g_.in_spatial[1];
    const int64_t out_h = g_.out_spatial[0], out_w = g_.out_spatial[1];
    const int64_t sh = g_.strides[0], sw = g_.strides[1], dh = g_.dilations[0],
                  dw = g_.dilations[1], ph = g_.pads_begin[0], pw = g_.pads_begin[1];
    for (int64_t kh = 0; kh < g_.kernel[0]; ++kh) {
      for (int64_t kw = 0; kw < g_.kernel[1]; ++kw) {
        float* out = col + (kh * g_.kernel[1] + kw) * out_h * out_w;
        for (int64_t oh = 0; oh < out_h; ++oh, out += out_w) {
          const int64_t ih = oh * sh - ph + kh * dh;
          if (ih < 0 || ih >= in_h) {
            std::fill(out, out + out_w, 0.f);
            continue;
          }
          const float* row = xn + ih * in_w;
          for (int64_t ow = 0; ow < out_w; ++ow) {
            const int64_t iw = ow * sw - pw + kw * dw;
            out[ow] = iw >= 0 && iw < in_w ? row[iw] : 0.f;
          }
        }
      }
    }
  }

  conv_internal::ConvGeometry g_;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildSingleChannelConvGradWeight(
    const KernelBuildContext& ctx) {
  if (ctx.input_dtypes[0] != DataType::kFloat32 || ctx.input_dtypes[1] != DataType::kFloat32) {
    return absl::UnimplementedError("float32 only");
  }
  ASSIGN_OR_RETURN(conv_internal::ConvGeometry g, ResolveConvGradGeometryFor(ctx, true));
  if (g.spatial_rank() != 2 || g.group != 1 || g.in_channels != 1) {
    return absl::UnimplementedError("2-D convolutions with one input channel only");
  }
  return std::unique_ptr<Kernel>(new SingleChannelConvGradWeightKernel(g));
}

// 2 FLOPs per multiply-add, as many as the forward convolution.
double ConvGradFlops(const graph::Node& node, const std::vector<Shape>& inputs,
                     const std::vector<Shape>& outputs, bool weight) {
  if (inputs.size() < 2 || outputs.empty()) return 0;
  const Shape& dy = weight ? inputs[1] : inputs[0];
  const Shape& w = weight ? outputs[0] : inputs[1];
  if (dy.size() < 3 || w.size() != dy.size()) return 0;
  double flops = 2.0 * static_cast<double>(NumElements(dy)) * static_cast<double>(w[1]);
  for (size_t i = 2; i < w.size(); ++i) flops *= static_cast<double>(w[i]);
  return flops;
}

}  // namespace

absl::StatusOr<conv_internal::ConvGeometry> ResolveConvGradGeometryFor(
    const KernelBuildContext& ctx, bool weight) {
  if (ctx.input_shapes.size() < 2) return absl::InvalidArgumentError("two inputs are required");
  if (weight) {
    ASSIGN_OR_RETURN(Shape w,
                     ConvGradWeightShape(ctx.node, ctx.input_shapes[0], ctx.input_shapes[1]));
    return ResolveConvGradGeometry(ctx.node, ctx.input_shapes[0], w, ctx.input_shapes[1]);
  }
  ASSIGN_OR_RETURN(Shape x, InputShapeAttribute(ctx.node));
  return ResolveConvGradGeometry(ctx.node, x, ctx.input_shapes[1], ctx.input_shapes[0]);
}

void RegisterConvBackwardOps(OpRegistry& registry) {
  {
    OpSchema s;
    s.domain = "com.lasgd";
    s.op_type = "ConvGradInput";
    s.min_opset = 1;
    s.max_opset = 1;
    s.min_inputs = 2;
    s.max_inputs = 2;
    s.min_outputs = 1;
    s.max_outputs = 1;
    s.infer = InferConvGradInput;
    s.flops = [](const graph::Node& node, const std::vector<Shape>& in,
                 const std::vector<Shape>& out) { return ConvGradFlops(node, in, out, false); };
    s.kernels = {{"onednn", BuildOnednnConvGradInput},
                 {"reference", [](const KernelBuildContext& ctx) {
                    return BuildReferenceConvGrad(ctx, /*weight=*/false);
                  }}};
    registry.Register(std::move(s));
  }
  {
    OpSchema s;
    s.domain = "com.lasgd";
    s.op_type = "ConvGradWeight";
    s.min_opset = 1;
    s.max_opset = 1;
    s.min_inputs = 2;
    s.max_inputs = 2;
    s.min_outputs = 1;
    s.max_outputs = 2;
    s.infer = InferConvGradWeight;
    s.flops = [](const graph::Node& node, const std::vector<Shape>& in,
                 const std::vector<Shape>& out) { return ConvGradFlops(node, in, out, true); };
    s.kernels = {{"single_channel", BuildSingleChannelConvGradWeight},
                 {"onednn", BuildOnednnConvGradWeight},
                 {"reference", [](const KernelBuildContext& ctx) {
                    return BuildReferenceConvGrad(ctx, /*weight=*/true);
                  }}};
    registry.Register(std::move(s));
  }
}

}  // namespace lasgd::ops::backward_internal
