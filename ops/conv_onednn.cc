// oneDNN kernels for Conv, FusedConv and ConvTranspose (float32).
//
// The primitive is created with format_tag::any for source, weights and
// destination, so oneDNN picks its fast blocked layouts. Where the executor
// stores X, Y or Z differently (plain NCHW, unless the plan chose the blocked
// layout for them: AcceptsBlockedLayout / UseBlockedLayouts), every run
// reorders between the two. Weights the plan marks constant are reordered
// once, on the first run; others (trainable weights) on every run.
#include <cstring>
#include <limits>
#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/conv_util.h"
#include "ops/onednn_layout.h"

namespace lasgd::ops::conv_internal {
namespace {

using dnnl::memory;
using onednn::Operand;
using tag = dnnl::memory::format_tag;

memory::dims Dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

// Everything needed to (re)create the primitive for given layouts.
struct ConvSetup {
  bool transpose = false;
  ConvEpilogue epilogue;
  memory::dims src_dims, wei_dims, dst_dims, strides, dilates, pad_l, pad_r;
  memory::desc wei_plain, bias_desc;
  bool has_bias = false;
  bool constant_weights = false;
};

class OnednnConvKernel : public Kernel {
 public:
  explicit OnednnConvKernel(ConvSetup setup) : s_(std::move(setup)) {}

  // Creates the primitive for X / Y / Z stored blocked or plain; with
  // `fixed`, blocked X and Y are imposed on oneDNN instead of left to it.
  absl::Status Create(bool src_blocked, bool dst_blocked, bool z_blocked, bool fixed) {
    const auto f32 = memory::data_type::f32;
    const Shape src_shape(s_.src_dims.begin(), s_.src_dims.end());
    const Shape dst_shape(s_.dst_dims.begin(), s_.dst_dims.end());
    memory::desc src_any(s_.src_dims, f32, tag::any), wei_any(s_.wei_dims, f32, tag::any),
        dst_any(s_.dst_dims, f32, tag::any);
    if (fixed && src_blocked) src_any = onednn::BlockedDesc(src_shape);
    if (fixed && dst_blocked) dst_any = onednn::BlockedDesc(dst_shape);

    dnnl::primitive_attr attr;
    dnnl::post_ops ops;
    if (s_.epilogue.has_residual) ops.append_sum(1.f);
    switch (s_.epilogue.activation) {
      case ConvEpilogue::Activation::kRelu:
        ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
        break;
      case ConvEpilogue::Activation::kClip:
        ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, s_.epilogue.clip_min,
                           s_.epilogue.clip_max);
        break;
      case ConvEpilogue::Activation::kNone:
        break;
    }
    attr.set_post_ops(ops);

    memory::desc src_md, wei_md, dst_md;
    const auto prop = dnnl::prop_kind::forward_inference;
    if (!s_.transpose) {
      const auto alg = dnnl::algorithm::convolution_direct;
      auto desc =
          s_.has_bias
              ? dnnl::convolution_forward::desc(prop, alg, src_any, wei_any, s_.bias_desc, dst_any,
                                                s_.strides, s_.dilates, s_.pad_l, s_.pad_r)
              : dnnl::convolution_forward::desc(prop, alg, src_any, wei_any, dst_any, s_.strides,
                                                s_.dilates, s_.pad_l, s_.pad_r);
      dnnl::convolution_forward::primitive_desc pd(desc, attr, DnnlEngine());
      if (fixed && absl::StrContains(pd.impl_info_str(), "ref")) {
        return absl::UnimplementedError("only oneDNN's reference convolution takes these layouts");
      }
      src_md = pd.src_desc();
      wei_md = pd.weights_desc();
      dst_md = pd.dst_desc();
      primitive_ = dnnl::convolution_forward(pd);
    } else {
      const auto alg = dnnl::algorithm::deconvolution_direct;
      auto desc = s_.has_bias ? dnnl::deconvolution_forward::desc(prop, alg, src_any, wei_any,
                                                                  s_.bias_desc, dst_any, s_.strides,
                                                                  s_.dilates, s_.pad_l, s_.pad_r)
                              : dnnl::deconvolution_forward::desc(prop, alg, src_any, wei_any,
                                                                  dst_any, s_.strides, s_.dilates,
                                                                  s_.pad_l, s_.pad_r);
      dnnl::deconvolution_forward::primitive_desc pd(desc, attr, DnnlEngine());
      if (fixed && absl::StrContains(pd.impl_info_str(), "ref")) {
        return absl::UnimplementedError("only oneDNN's reference convolution takes these layouts");
      }
      src_md = pd.src_desc();
      wei_md = pd.weights_desc();
      dst_md = pd.dst_desc();
      primitive_ = dnnl::deconvolution_forward(pd);
    }
    // Distinct scratch slots: all three may be reordered in the same run.
    src_.Init(onednn::StoredDesc(src_shape, src_blocked), src_md, /*is_output=*/false, /*slot=*/0);
    weights_.Init(s_.wei_plain, wei_md, /*is_output=*/false, /*slot=*/1);
    dst_.Init(onednn::StoredDesc(dst_shape, dst_blocked), dst_md, /*is_output=*/true, /*slot=*/2);
    z_stored_ = onednn::StoredDesc(dst_shape, z_blocked);
    z_reorder_ = dnnl::reorder();
    if (s_.epilogue.has_residual && !onednn::SamePhysicalLayout(z_stored_, dst_md)) {
      z_reorder_ = dnnl::reorder(memory(z_stored_, DnnlEngine(), DNNL_MEMORY_NONE),
                                 memory(dst_md, DnnlEngine(), DNNL_MEMORY_NONE));
    }
    return absl::OkStatus();
  }

  bool AcceptsBlockedLayout(bool output, size_t index) const override {
    // Natively blocked: what oneDNN picked on its own when asked for `any`.
    const bool two_d = s_.src_dims.size() == 4;
    if (!two_d) return false;
    const Shape src_shape(s_.src_dims.begin(), s_.src_dims.end());
    const Shape dst_shape(s_.dst_dims.begin(), s_.dst_dims.end());
    if (output) return index == 0 && dst_.wanted() == onednn::BlockedDesc(dst_shape);
    if (index == 0) return src_.wanted() == onednn::BlockedDesc(src_shape);
    if (index == 3)
      return s_.epilogue.has_residual && dst_.wanted() == onednn::BlockedDesc(dst_shape);
    return false;
  }

  absl::Status UseBlockedLayouts(const std::vector<bool>& inputs,
                                 const std::vector<bool>& outputs) override {
    auto flag = [](const std::vector<bool>& v, size_t i) { return i < v.size() && v[i]; };
    const bool src = flag(inputs, 0), dst = flag(outputs, 0), z = flag(inputs, 3);
    if (!src && !dst && !z) return absl::OkStatus();
    try {
      if (Create(src, dst, z, /*fixed=*/true).ok()) return absl::OkStatus();
    } catch (const dnnl::error&) {
      // Fall back to oneDNN's own choice below, bridged by reorders.
    }
    try {
      return Create(src, dst, z, /*fixed=*/false);
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN convolution: ", e.what()));
    }
  }

  absl::Status Run(KernelContext& ctx) override {
    try {
      return RunOrThrow(ctx);
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN convolution failed: ", e.what()));
    }
  }

 private:
  absl::Status RunOrThrow(KernelContext& ctx) {
    dnnl::stream& stream = DnnlStream();
    Tensor* y = ctx.output(0);
    if (s_.constant_weights && !weights_.prepared()) {
      weights_.Prepare(ctx.input(1)->raw_data(), stream);
    }
    memory x_mem = src_.In(ctx.input(0)->raw_data(), stream);
    memory w_mem = weights_.In(ctx.input(1)->raw_data(), stream);
    memory y_mem = dst_.Target(y->raw_data());
    if (s_.epilogue.has_residual) {
      // The sum post-op accumulates into what the primitive writes, so that
      // buffer must hold Z (in the primitive's dst layout) first.
      const void* z = ctx.input(3)->raw_data();
      if (z_reorder_) {
        memory z_mem(z_stored_, DnnlEngine(), const_cast<void*>(z));
        z_reorder_.execute(stream, z_mem, y_mem);
      } else if (z != y_mem.get_data_handle()) {
        std::memcpy(y_mem.get_data_handle(), z, z_stored_.get_size());
      }
    }
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, y_mem}};
    if (s_.has_bias) {
      args[DNNL_ARG_BIAS] =
          memory(s_.bias_desc, DnnlEngine(), const_cast<void*>(ctx.input(2)->raw_data()));
    }
    primitive_.execute(stream, args);
    dst_.Out(y->raw_data(), stream);
    stream.wait();
    return absl::OkStatus();
  }

  ConvSetup s_;
  dnnl::primitive primitive_;
  Operand src_, weights_, dst_;
  // Z as stored, and the reorder into the primitive's dst layout when the two differ.
  memory::desc z_stored_;
  dnnl::reorder z_reorder_;
};

absl::Status CheckOnednnSupport(const KernelBuildContext& ctx, const ConvGeometry& g) {
  for (size_t i = 0; i < ctx.input_dtypes.size(); ++i) {
    if (ctx.node.HasInput(i) && ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError(absl::StrCat("oneDNN convolution here is float32 only, got ",
                                                   DataTypeName(ctx.input_dtypes[i])));
    }
  }
  for (int64_t i = 0; i < g.spatial_rank(); ++i) {
    if (g.pads_begin[i] < 0) {
      return absl::UnimplementedError(
          "negative padding (an output_shape larger than the natural output) is not supported");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednn(const KernelBuildContext& ctx, bool transpose) {
  if (ctx.input_shapes.size() < 2) return absl::InvalidArgumentError("X and W are required");
  absl::StatusOr<ConvGeometry> geometry =
      transpose ? ResolveConvTransposeGeometry(ctx.node, ctx.input_shapes[0], ctx.input_shapes[1])
                : ResolveConvGeometry(ctx.node, ctx.input_shapes[0], ctx.input_shapes[1]);
  if (!geometry.ok()) return geometry.status();
  const ConvGeometry& g = *geometry;
  RETURN_IF_ERROR(CheckOnednnSupport(ctx, g));
  ConvSetup s;
  ASSIGN_OR_RETURN(s.epilogue, ResolveEpilogue(ctx.node, ctx.input_shapes.size()));
  s.transpose = transpose;

  const int64_t nsp = g.spatial_rank();
  const auto f32 = memory::data_type::f32;
  s.src_dims = {g.batch, g.in_channels};
  s.dst_dims = {g.batch, g.out_channels};
  for (int64_t i = 0; i < nsp; ++i) {
    s.src_dims.push_back(g.in_spatial[i]);
    s.dst_dims.push_back(g.out_spatial[i]);
  }
  // Weights: oneDNN always wants (O, I, k...) dims, or (G, O/G, I/G, k...)
  // when grouped. ONNX Conv's W is stored exactly like that; ConvTranspose's
  // W is (I, O/G, k...), i.e. (G, I/G, O/G, k...): the same dims with the
  // first two non-group axes swapped in memory.
  if (g.group > 1) s.wei_dims.push_back(g.group);
  s.wei_dims.push_back(g.out_channels / g.group);
  s.wei_dims.push_back(g.in_channels / g.group);
  for (int64_t k : g.kernel) s.wei_dims.push_back(k);
  if (!transpose) {
    s.wei_plain = memory::desc(s.wei_dims, f32, PlainTag(s.wei_dims.size()));
  } else {
    static const tag kIo[] = {tag::bac, tag::bacd, tag::bacde};  // (O, I, k...) stored I, O
    static const tag kGio[] = {tag::acbd, tag::acbde,
                               tag::acbdef};  // (G, O, I, k...) stored G, I, O
    s.wei_plain = memory::desc(s.wei_dims, f32, g.group > 1 ? kGio[nsp - 1] : kIo[nsp - 1]);
  }
  s.has_bias = ctx.node.HasInput(2) && ctx.input_shapes.size() > 2;
  if (s.has_bias) s.bias_desc = memory::desc({g.out_channels}, f32, tag::a);
  s.constant_weights = ctx.constant_input(1) != nullptr;

  s.strides = Dims(g.strides);
  s.pad_l = Dims(g.pads_begin);
  s.pad_r = Dims(g.pads_end);
  for (int64_t d : g.dilations) s.dilates.push_back(d - 1);  // oneDNN counts the gaps
  if (transpose) {
    // output_padding enlarges the end of the output: less padding removed there.
    for (int64_t i = 0; i < nsp; ++i) s.pad_r[i] -= g.output_padding[i];
  }

  auto kernel = std::make_unique<OnednnConvKernel>(std::move(s));
  try {
    RETURN_IF_ERROR(kernel->Create(false, false, false, /*fixed=*/false));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(absl::StrCat("oneDNN has no ",
                                                 transpose ? "deconvolution" : "convolution",
                                                 " for this configuration: ", e.what()));
  }
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConv(const KernelBuildContext& ctx) {
  return BuildOnednn(ctx, /*transpose=*/false);
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConvTranspose(const KernelBuildContext& ctx) {
  return BuildOnednn(ctx, /*transpose=*/true);
}

}  // namespace lasgd::ops::conv_internal
