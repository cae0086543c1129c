// oneDNN kernels for Conv, FusedConv and ConvTranspose (float32).
//
// The primitive is created once per plan with format_tag::any for source,
// weights and destination, so oneDNN picks its fast blocked layouts; every run
// then reorders the executor's plain NC... tensors in and the result out. The
// weights are reordered on every run too: in training they change each step.
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/conv_util.h"

namespace lasgd::ops::conv_internal {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

memory::dims Dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

// A tensor argument in the executor's plain layout and, when oneDNN chose a
// different one, the internal buffer and reorder that bridge the two.
struct Operand {
  memory::desc plain;
  memory internal;  // empty when the primitive works on the plain layout
  dnnl::reorder to_internal, to_plain;

  void Init(const memory::desc& plain_desc, const memory::desc& chosen, bool is_output) {
    plain = plain_desc;
    if (chosen == plain_desc) return;
    internal = memory(chosen, DnnlEngine());
    if (is_output) {
      to_plain = dnnl::reorder(internal, memory(plain_desc, DnnlEngine(), DNNL_MEMORY_NONE));
    } else {
      to_internal = dnnl::reorder(memory(plain_desc, DnnlEngine(), DNNL_MEMORY_NONE), internal);
    }
  }
  bool reordered() const { return static_cast<bool>(internal); }
};

class OnednnConvKernel : public Kernel {
 public:
  absl::Status Run(KernelContext& ctx) override {
    try {
      return RunOrThrow(ctx);
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN convolution failed: ", e.what()));
    }
  }

  // Everything below is set by the factory.
  dnnl::primitive primitive;
  Operand src, weights, dst;
  memory::desc bias_desc;
  bool has_bias = false;
  bool has_residual = false;
  // Reorders Z from the plain layout into dst's internal one (blocked dst only).
  dnnl::reorder residual_to_internal;

 private:
  absl::Status RunOrThrow(KernelContext& ctx) {
    dnnl::engine& eng = DnnlEngine();
    dnnl::stream& stream = DnnlStream();
    auto user = [&](const memory::desc& md, const void* data) {
      return memory(md, eng, const_cast<void*>(data));
    };
    Tensor* y = ctx.output(0);
    memory x_user = user(src.plain, ctx.input(0)->raw_data());
    memory w_user = user(weights.plain, ctx.input(1)->raw_data());
    memory y_user = user(dst.plain, y->raw_data());

    memory x_mem = x_user, w_mem = w_user, y_mem = y_user;
    if (src.reordered()) {
      src.to_internal.execute(stream, x_user, src.internal);
      x_mem = src.internal;
    }
    if (weights.reordered()) {
      weights.to_internal.execute(stream, w_user, weights.internal);
      w_mem = weights.internal;
    }
    if (dst.reordered()) y_mem = dst.internal;
    if (has_residual) {
      // The sum post-op accumulates into dst, so dst must hold Z first.
      const Tensor* z = ctx.input(3);
      if (dst.reordered()) {
        memory z_user = user(dst.plain, z->raw_data());
        residual_to_internal.execute(stream, z_user, dst.internal);
      } else if (z->raw_data() != y->raw_data()) {
        std::memcpy(y->raw_data(), z->raw_data(), y->nbytes());
      }
    }
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, y_mem}};
    if (has_bias) args[DNNL_ARG_BIAS] = user(bias_desc, ctx.input(2)->raw_data());
    primitive.execute(stream, args);
    if (dst.reordered()) dst.to_plain.execute(stream, dst.internal, y_user);
    stream.wait();
    return absl::OkStatus();
  }
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
  ASSIGN_OR_RETURN(ConvEpilogue epilogue, ResolveEpilogue(ctx.node, ctx.input_shapes.size()));

  const int64_t nsp = g.spatial_rank();
  const auto f32 = memory::data_type::f32;
  memory::dims src_dims = {g.batch, g.in_channels};
  memory::dims dst_dims = {g.batch, g.out_channels};
  for (int64_t i = 0; i < nsp; ++i) {
    src_dims.push_back(g.in_spatial[i]);
    dst_dims.push_back(g.out_spatial[i]);
  }
  // Weights: oneDNN always wants (O, I, k...) dims, or (G, O/G, I/G, k...)
  // when grouped. ONNX Conv's W is stored exactly like that; ConvTranspose's
  // W is (I, O/G, k...), i.e. (G, I/G, O/G, k...): the same dims with the
  // first two non-group axes swapped in memory.
  memory::dims wei_dims;
  if (g.group > 1) wei_dims.push_back(g.group);
  wei_dims.push_back(g.out_channels / g.group);
  wei_dims.push_back(g.in_channels / g.group);
  for (int64_t k : g.kernel) wei_dims.push_back(k);
  memory::desc wei_plain;
  if (!transpose) {
    wei_plain = memory::desc(wei_dims, f32, PlainTag(wei_dims.size()));
  } else {
    static const tag kIo[] = {tag::bac, tag::bacd, tag::bacde};  // (O, I, k...) stored I, O
    static const tag kGio[] = {tag::acbd, tag::acbde,
                               tag::acbdef};  // (G, O, I, k...) stored G, I, O
    wei_plain = memory::desc(wei_dims, f32, g.group > 1 ? kGio[nsp - 1] : kIo[nsp - 1]);
  }
  memory::desc src_plain(src_dims, f32, PlainTag(src_dims.size()));
  memory::desc dst_plain(dst_dims, f32, PlainTag(dst_dims.size()));
  memory::desc src_any(src_dims, f32, tag::any);
  memory::desc wei_any(wei_dims, f32, tag::any);
  memory::desc dst_any(dst_dims, f32, tag::any);
  const bool has_bias = ctx.node.HasInput(2) && ctx.input_shapes.size() > 2;
  memory::desc bias_desc = has_bias ? memory::desc({g.out_channels}, f32, tag::a) : memory::desc();

  memory::dims strides = Dims(g.strides), pad_l = Dims(g.pads_begin), pad_r = Dims(g.pads_end);
  memory::dims dilates;
  for (int64_t d : g.dilations) dilates.push_back(d - 1);  // oneDNN counts the gaps
  if (transpose) {
    // output_padding enlarges the end of the output: less padding removed there.
    for (int64_t i = 0; i < nsp; ++i) pad_r[i] -= g.output_padding[i];
  }

  dnnl::primitive_attr attr;
  dnnl::post_ops ops;
  if (epilogue.has_residual) ops.append_sum(1.f);
  if (epilogue.relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  attr.set_post_ops(ops);

  auto kernel = std::make_unique<OnednnConvKernel>();
  try {
    memory::desc src_md, wei_md, dst_md;
    if (!transpose) {
      dnnl::convolution_forward::desc desc =
          has_bias ? dnnl::convolution_forward::desc(
                         dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                         src_any, wei_any, bias_desc, dst_any, strides, dilates, pad_l, pad_r)
                   : dnnl::convolution_forward::desc(
                         dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                         src_any, wei_any, dst_any, strides, dilates, pad_l, pad_r);
      dnnl::convolution_forward::primitive_desc pd(desc, attr, DnnlEngine());
      src_md = pd.src_desc();
      wei_md = pd.weights_desc();
      dst_md = pd.dst_desc();
      kernel->primitive = dnnl::convolution_forward(pd);
    } else {
      dnnl::deconvolution_forward::desc desc =
          has_bias ? dnnl::deconvolution_forward::desc(
                         dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                         src_any, wei_any, bias_desc, dst_any, strides, dilates, pad_l, pad_r)
                   : dnnl::deconvolution_forward::desc(
                         dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                         src_any, wei_any, dst_any, strides, dilates, pad_l, pad_r);
      dnnl::deconvolution_forward::primitive_desc pd(desc, attr, DnnlEngine());
      src_md = pd.src_desc();
      wei_md = pd.weights_desc();
      dst_md = pd.dst_desc();
      kernel->primitive = dnnl::deconvolution_forward(pd);
    }
    kernel->src.Init(src_plain, src_md, /*is_output=*/false);
    kernel->weights.Init(wei_plain, wei_md, /*is_output=*/false);
    kernel->dst.Init(dst_plain, dst_md, /*is_output=*/true);
    if (epilogue.has_residual && kernel->dst.reordered()) {
      kernel->residual_to_internal =
          dnnl::reorder(memory(dst_plain, DnnlEngine(), DNNL_MEMORY_NONE), kernel->dst.internal);
    }
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(absl::StrCat("oneDNN has no ",
                                                 transpose ? "deconvolution" : "convolution",
                                                 " for this configuration: ", e.what()));
  }
  kernel->bias_desc = bias_desc;
  kernel->has_bias = has_bias;
  kernel->has_residual = epilogue.has_residual;
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
