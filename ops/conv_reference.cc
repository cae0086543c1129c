// Reference kernels for Conv, FusedConv and ConvTranspose: direct loops over
// the ONNX definition, float32 and float64, accumulating in double. Spatial
// ranks 1 and 2 are run as rank 3 with leading axes of size 1.
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/conv_util.h"

namespace lasgd::ops::conv_internal {
namespace {

// The geometry with every per-axis vector padded to 3 axes (D, H, W).
struct Geometry3d {
  int64_t n, c, m, group;
  int64_t in[3], out[3], k[3], s[3], d[3], pad[3];
};

Geometry3d To3d(const ConvGeometry& g) {
  Geometry3d r;
  r.n = g.batch;
  r.c = g.in_channels;
  r.m = g.out_channels;
  r.group = g.group;
  const int64_t lead = 3 - g.spatial_rank();
  for (int64_t i = 0; i < 3; ++i) {
    bool real = i >= lead;
    int64_t j = i - lead;
    r.in[i] = real ? g.in_spatial[j] : 1;
    r.out[i] = real ? g.out_spatial[j] : 1;
    r.k[i] = real ? g.kernel[j] : 1;
    r.s[i] = real ? g.strides[j] : 1;
    r.d[i] = real ? g.dilations[j] : 1;
    r.pad[i] = real ? g.pads_begin[j] : 0;
  }
  return r;
}

template <typename T>
void ConvForward(const Geometry3d& g, const T* x, const T* w, const T* bias, const T* residual,
                 const ConvEpilogue& epilogue, T* y) {
  const int64_t cin_g = g.c / g.group, cout_g = g.m / g.group;
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  const int64_t k_plane = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t m = 0; m < g.m; ++m) {
      const int64_t grp = m / cout_g;
      T* yp = y + (n * g.m + m) * out_plane;
      for (int64_t od = 0; od < g.out[0]; ++od) {
        for (int64_t oh = 0; oh < g.out[1]; ++oh) {
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            double acc = bias ? static_cast<double>(bias[m]) : 0.0;
            for (int64_t ci = 0; ci < cin_g; ++ci) {
              const T* xp = x + (n * g.c + grp * cin_g + ci) * in_plane;
              const T* wp = w + (m * cin_g + ci) * k_plane;
              for (int64_t kd = 0; kd < g.k[0]; ++kd) {
                int64_t id = od * g.s[0] - g.pad[0] + kd * g.d[0];
                if (id < 0 || id >= g.in[0]) continue;
                for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                  int64_t ih = oh * g.s[1] - g.pad[1] + kh * g.d[1];
                  if (ih < 0 || ih >= g.in[1]) continue;
                  for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                    int64_t iw = ow * g.s[2] - g.pad[2] + kw * g.d[2];
                    if (iw < 0 || iw >= g.in[2]) continue;
                    acc += static_cast<double>(xp[(id * g.in[1] + ih) * g.in[2] + iw]) *
                           static_cast<double>(wp[(kd * g.k[1] + kh) * g.k[2] + kw]);
                  }
                }
              }
            }
            const int64_t o = (od * g.out[1] + oh) * g.out[2] + ow;
            if (residual) acc += static_cast<double>(residual[(n * g.m + m) * out_plane + o]);
            yp[o] = static_cast<T>(epilogue.Apply(acc));
          }
        }
      }
    }
  }
}

// ConvTranspose scatters every input pixel into the output:
//   y[n, m, o] += x[n, c, i] * W[c, m % (M/group), k]  where o = i*s + k*d - pad.
// Each (n, m) output plane is owned by one thread, so there are no races.
template <typename T>
void ConvTransposeForward(const Geometry3d& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t cin_g = g.c / g.group, cout_g = g.m / g.group;
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  const int64_t k_plane = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t m = 0; m < g.m; ++m) {
      const int64_t grp = m / cout_g, mo = m % cout_g;
      std::vector<double> acc(out_plane, bias ? static_cast<double>(bias[m]) : 0.0);
      for (int64_t ci = 0; ci < cin_g; ++ci) {
        const int64_t c = grp * cin_g + ci;
        const T* xp = x + (n * g.c + c) * in_plane;
        const T* wp = w + (c * cout_g + mo) * k_plane;
        for (int64_t id = 0; id < g.in[0]; ++id) {
          for (int64_t ih = 0; ih < g.in[1]; ++ih) {
            for (int64_t iw = 0; iw < g.in[2]; ++iw) {
              const double xv = static_cast<double>(xp[(id * g.in[1] + ih) * g.in[2] + iw]);
              for (int64_t kd = 0; kd < g.k[0]; ++kd) {
                int64_t od = id * g.s[0] + kd * g.d[0] - g.pad[0];
                if (od < 0 || od >= g.out[0]) continue;
                for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                  int64_t oh = ih * g.s[1] + kh * g.d[1] - g.pad[1];
                  if (oh < 0 || oh >= g.out[1]) continue;
                  for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                    int64_t ow = iw * g.s[2] + kw * g.d[2] - g.pad[2];
                    if (ow < 0 || ow >= g.out[2]) continue;
                    acc[(od * g.out[1] + oh) * g.out[2] + ow] +=
                        xv * static_cast<double>(wp[(kd * g.k[1] + kh) * g.k[2] + kw]);
                  }
                }
              }
            }
          }
        }
      }
      T* yp = y + (n * g.m + m) * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) yp[o] = static_cast<T>(acc[o]);
    }
  }
}

class ReferenceConvKernel : public Kernel {
 public:
  ReferenceConvKernel(Geometry3d geometry, DataType dtype, ConvEpilogue epilogue, bool transpose)
      : g_(geometry), dtype_(dtype), epilogue_(epilogue), transpose_(transpose) {}

  absl::Status Run(KernelContext& ctx) override {
    if (dtype_ == DataType::kFloat32) return RunTyped<float>(ctx);
    return RunTyped<double>(ctx);
  }

 private:
  template <typename T>
  absl::Status RunTyped(KernelContext& ctx) {
    const T* x = ctx.input(0)->data<T>();
    const T* w = ctx.input(1)->data<T>();
    const T* b = ctx.input(2) && ctx.input(2)->defined() ? ctx.input(2)->data<T>() : nullptr;
    T* y = ctx.output(0)->data<T>();
    if (transpose_) {
      ConvTransposeForward<T>(g_, x, w, b, y);
      return absl::OkStatus();
    }
    const T* z = nullptr;
    if (epilogue_.has_residual) {
      const Tensor* zt = ctx.input(3);
      if (zt == nullptr || !zt->defined()) return absl::InternalError("FusedConv: Z is missing");
      z = zt->data<T>();
    }
    if (z == y) {
      // Z shares the output's memory (in-place residual): keep a copy, since
      // the loops write y before reading all of z.
      std::vector<T> copy(z, z + ctx.output(0)->num_elements());
      ConvForward<T>(g_, x, w, b, copy.data(), epilogue_, y);
    } else {
      ConvForward<T>(g_, x, w, b, z, epilogue_, y);
    }
    return absl::OkStatus();
  }

  Geometry3d g_;
  DataType dtype_;
  ConvEpilogue epilogue_;
  bool transpose_;
};

absl::StatusOr<std::unique_ptr<Kernel>> BuildReference(const KernelBuildContext& ctx,
                                                       bool transpose) {
  DataType dtype = ctx.input_dtypes[0];
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
    return absl::UnimplementedError(absl::StrCat(
        "reference convolution supports float32 and float64, got ", DataTypeName(dtype)));
  }
  if (ctx.input_shapes.size() < 2) return absl::InvalidArgumentError("X and W are required");
  absl::StatusOr<ConvGeometry> g =
      transpose ? ResolveConvTransposeGeometry(ctx.node, ctx.input_shapes[0], ctx.input_shapes[1])
                : ResolveConvGeometry(ctx.node, ctx.input_shapes[0], ctx.input_shapes[1]);
  if (!g.ok()) return g.status();
  ASSIGN_OR_RETURN(ConvEpilogue epilogue, ResolveEpilogue(ctx.node, ctx.input_shapes.size()));
  return std::unique_ptr<Kernel>(new ReferenceConvKernel(To3d(*g), dtype, epilogue, transpose));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> BuildReferenceConv(const KernelBuildContext& ctx) {
  return BuildReference(ctx, /*transpose=*/false);
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildReferenceConvTranspose(const KernelBuildContext& ctx) {
  return BuildReference(ctx, /*transpose=*/true);
}

}  // namespace lasgd::ops::conv_internal
