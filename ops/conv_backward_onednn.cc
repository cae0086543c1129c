// oneDNN kernels for com.lasgd ConvGradInput (convolution_backward_data) and
// ConvGradWeight (convolution_backward_weights), float32.
//
// As in the forward kernel (conv_onednn.cc), the primitives are created with
// format_tag::any so that oneDNN picks its fast blocked layouts, and every
// run reorders the plain NC... tensors the executor holds into them and the
// result back. The weights are never constant here (they are being trained),
// so they are reordered on every run too.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/conv_backward.h"
#include "ops/onednn_engine.h"
#include "ops/onednn_layout.h"

namespace lasgd::ops::backward_internal {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

memory::dims Dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

// The operands go through the calling thread's scratch (onednn::ThreadScratch,
// shared with the forward kernels): kernels on one thread run one at a time,
// so buffers owned per kernel would only multiply memory: two
// activation-sized buffers per gradient node made the process several times
// larger than the executor's arena (MobileNetV2 at batch 32: 1.4 GB of 2 GB).
// Slots: the three operands 0-2, the primitive's scratchpad 3.
using onednn::Operand;
constexpr int kScratchpadSlot = 3;

// The primitives use the shared scratchpad above instead of allocating their
// own on every run (this oneDNN is built for concurrent execution, where
// library-managed scratchpads are per execution).
dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

memory ScratchpadMemory(const memory::desc& desc) {
  return onednn::ScratchMemory(desc, kScratchpadSlot);
}

// The dims and the forward primitive descriptor both backward primitives
// need as their hint.
struct Setup {
  memory::dims src, wei, dst, strides, dilates, pad_l, pad_r;
  int64_t out_channels = 0;
  memory::desc src_plain, wei_plain, dst_plain;
  dnnl::convolution_forward::primitive_desc fwd_pd;
};

absl::StatusOr<Setup> MakeSetup(const KernelBuildContext& ctx, bool weight, bool with_bias) {
  for (size_t i = 0; i < ctx.input_dtypes.size(); ++i) {
    if (ctx.input_dtypes[i] != DataType::kFloat32) {
      return absl::UnimplementedError(
          absl::StrCat("oneDNN convolution gradient here is float32 only, got ",
                       DataTypeName(ctx.input_dtypes[i])));
    }
  }
  ASSIGN_OR_RETURN(conv_internal::ConvGeometry g, ResolveConvGradGeometryFor(ctx, weight));
  Setup s;
  const int64_t nsp = g.spatial_rank();
  const auto f32 = memory::data_type::f32;
  s.out_channels = g.out_channels;
  s.src = {g.batch, g.in_channels};
  s.dst = {g.batch, g.out_channels};
  for (int64_t i = 0; i < nsp; ++i) {
    s.src.push_back(g.in_spatial[i]);
    s.dst.push_back(g.out_spatial[i]);
  }
  if (g.group > 1) s.wei.push_back(g.group);
  s.wei.push_back(g.out_channels / g.group);
  s.wei.push_back(g.in_channels / g.group);
  for (int64_t k : g.kernel) s.wei.push_back(k);
  s.strides = Dims(g.strides);
  s.pad_l = Dims(g.pads_begin);
  s.pad_r = Dims(g.pads_end);
  for (int64_t d : g.dilations) s.dilates.push_back(d - 1);  // oneDNN counts the gaps
  s.src_plain = memory::desc(s.src, f32, conv_internal::PlainTag(s.src.size()));
  s.dst_plain = memory::desc(s.dst, f32, conv_internal::PlainTag(s.dst.size()));
  s.wei_plain = memory::desc(s.wei, f32, conv_internal::PlainTag(s.wei.size()));
  memory::desc src_any(s.src, f32, tag::any), wei_any(s.wei, f32, tag::any),
      dst_any(s.dst, f32, tag::any);
  const auto alg = dnnl::algorithm::convolution_direct;
  auto fwd = with_bias ? dnnl::convolution_forward::desc(
                             dnnl::prop_kind::forward_training, alg, src_any, wei_any,
                             memory::desc({g.out_channels}, f32, tag::a), dst_any, s.strides,
                             s.dilates, s.pad_l, s.pad_r)
                       : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg,
                                                         src_any, wei_any, dst_any, s.strides,
                                                         s.dilates, s.pad_l, s.pad_r);
  s.fwd_pd = dnnl::convolution_forward::primitive_desc(fwd, onednn::CpuEngine());
  return s;
}

class OnednnConvGradInputKernel : public Kernel {
 public:
  explicit OnednnConvGradInputKernel(const Setup& s) {
    const auto f32 = memory::data_type::f32;
    dnnl::convolution_backward_data::desc desc(
        dnnl::algorithm::convolution_direct, memory::desc(s.src, f32, tag::any),
        memory::desc(s.wei, f32, tag::any), memory::desc(s.dst, f32, tag::any), s.strides,
        s.dilates, s.pad_l, s.pad_r);
    dnnl::convolution_backward_data::primitive_desc pd(desc, UserScratchpad(), onednn::CpuEngine(),
                                                       s.fwd_pd);
    diff_dst_.Init(s.dst_plain, pd.diff_dst_desc(), /*is_output=*/false, /*slot=*/0);
    weights_.Init(s.wei_plain, pd.weights_desc(), /*is_output=*/false, /*slot=*/1);
    diff_src_.Init(s.src_plain, pd.diff_src_desc(), /*is_output=*/true, /*slot=*/2);
    scratchpad_ = pd.scratchpad_desc();
    primitive_ = dnnl::convolution_backward_data(pd);
  }

  absl::Status Run(KernelContext& ctx) override {
    try {
      dnnl::stream& stream = onednn::CpuStream();
      void* dx = ctx.output(0)->raw_data();
      memory target = diff_src_.Target(dx);
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_DIFF_DST, diff_dst_.In(ctx.input(0)->raw_data(), stream)},
          {DNNL_ARG_WEIGHTS, weights_.In(ctx.input(1)->raw_data(), stream)},
          {DNNL_ARG_DIFF_SRC, target},
          {DNNL_ARG_SCRATCHPAD, ScratchpadMemory(scratchpad_)}};
      primitive_.execute(stream, args);
      diff_src_.Out(dx, stream);
      stream.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(
          absl::StrCat("oneDNN convolution backward-data failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  Operand diff_dst_, weights_, diff_src_;
  memory::desc scratchpad_;
  dnnl::primitive primitive_;
};

class OnednnConvGradWeightKernel : public Kernel {
 public:
  OnednnConvGradWeightKernel(const Setup& s, bool with_bias) : with_bias_(with_bias) {
    const auto f32 = memory::data_type::f32;
    memory::desc src_any(s.src, f32, tag::any), wei_any(s.wei, f32, tag::any),
        dst_any(s.dst, f32, tag::any);
    const auto alg = dnnl::algorithm::convolution_direct;
    auto desc = with_bias
                    ? dnnl::convolution_backward_weights::desc(
                          alg, src_any, wei_any, memory::desc({s.out_channels}, f32, tag::a),
                          dst_any, s.strides, s.dilates, s.pad_l, s.pad_r)
                    : dnnl::convolution_backward_weights::desc(
                          alg, src_any, wei_any, dst_any, s.strides, s.dilates, s.pad_l, s.pad_r);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, UserScratchpad(),
                                                          onednn::CpuEngine(), s.fwd_pd);
    src_.Init(s.src_plain, pd.src_desc(), /*is_output=*/false, /*slot=*/0);
    diff_dst_.Init(s.dst_plain, pd.diff_dst_desc(), /*is_output=*/false, /*slot=*/1);
    diff_weights_.Init(s.wei_plain, pd.diff_weights_desc(), /*is_output=*/true,
                       /*slot=*/2);
    scratchpad_ = pd.scratchpad_desc();
    bias_desc_ = memory::desc({s.out_channels}, f32, tag::a);
    primitive_ = dnnl::convolution_backward_weights(pd);
  }

  absl::Status Run(KernelContext& ctx) override {
    try {
      dnnl::stream& stream = onednn::CpuStream();
      void* dw = ctx.output(0)->raw_data();
      memory target = diff_weights_.Target(dw);
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, src_.In(ctx.input(0)->raw_data(), stream)},
          {DNNL_ARG_DIFF_DST, diff_dst_.In(ctx.input(1)->raw_data(), stream)},
          {DNNL_ARG_DIFF_WEIGHTS, target},
          {DNNL_ARG_SCRATCHPAD, ScratchpadMemory(scratchpad_)}};
      if (with_bias_) {
        args[DNNL_ARG_DIFF_BIAS] =
            memory(bias_desc_, onednn::CpuEngine(), ctx.output(1)->raw_data());
      }
      primitive_.execute(stream, args);
      diff_weights_.Out(dw, stream);
      stream.wait();
    } catch (const dnnl::error& e) {
      return absl::InternalError(
          absl::StrCat("oneDNN convolution backward-weights failed: ", e.what()));
    }
    return absl::OkStatus();
  }

 private:
  bool with_bias_;
  Operand src_, diff_dst_, diff_weights_;
  memory::desc bias_desc_, scratchpad_;
  dnnl::primitive primitive_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConvGradInput(const KernelBuildContext& ctx) {
  try {
    ASSIGN_OR_RETURN(Setup s, MakeSetup(ctx, /*weight=*/false, /*with_bias=*/false));
    return std::unique_ptr<Kernel>(new OnednnConvGradInputKernel(s));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(
        absl::StrCat("oneDNN has no convolution backward-data for this node: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConvGradWeight(const KernelBuildContext& ctx) {
  const bool with_bias = ctx.node.HasOutput(1);
  try {
    ASSIGN_OR_RETURN(Setup s, MakeSetup(ctx, /*weight=*/true, with_bias));
    return std::unique_ptr<Kernel>(new OnednnConvGradWeightKernel(s, with_bias));
  } catch (const dnnl::error& e) {
    return absl::UnimplementedError(
        absl::StrCat("oneDNN has no convolution backward-weights for this node: ", e.what()));
  }
}

}  // namespace lasgd::ops::backward_internal
