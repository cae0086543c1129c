// Helpers shared by the convolution and pooling families (ops/conv*.cc,
// ops/pool.cc): the resolved geometry of a Conv / ConvTranspose node, the
// kernel factories that conv.cc registers, and the process-wide oneDNN
// engine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "ops/onednn_engine.h"
#include "ops/op_registry.h"
#include "runtime/tensor.h"

namespace lasgd::ops::conv_internal {

// The process-wide oneDNN engine and this thread's stream (ops/onednn_engine.h):
// memory and primitives of every oneDNN kernel must live on the same engine.
inline dnnl::engine& DnnlEngine() { return onednn::CpuEngine(); }
inline dnnl::stream& DnnlStream() { return onednn::CpuStream(); }

// Plain (row-major NC...) oneDNN layout for a tensor of `rank` dims.
inline dnnl::memory::format_tag PlainTag(int64_t rank) {
  using tag = dnnl::memory::format_tag;
  switch (rank) {
    case 1:
      return tag::a;
    case 2:
      return tag::ab;
    case 3:
      return tag::abc;
    case 4:
      return tag::abcd;
    case 5:
      return tag::abcde;
    case 6:
      return tag::abcdef;
    default:
      return tag::undef;
  }
}

// What a Conv or ConvTranspose node computes, with every attribute defaulted
// and auto_pad / output_shape turned into explicit pads. All vectors have one
// entry per spatial axis.
struct ConvGeometry {
  bool transpose = false;
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t group = 1;
  std::vector<int64_t> in_spatial, out_spatial, kernel, strides, dilations;
  // Pads at the start and end of each axis. Only ConvTranspose with an
  // explicit output_shape larger than the natural one can make them negative
  // (the output then extends past the last input contribution).
  std::vector<int64_t> pads_begin, pads_end;
  // ConvTranspose only.
  std::vector<int64_t> output_padding;

  int64_t spatial_rank() const { return static_cast<int64_t>(in_spatial.size()); }
  Shape OutputShape() const;
};

// Resolves a Conv (or FusedConv) node for input X of shape `x` and weights W of
// shape `w`; the error message says what was expected and what was got.
absl::StatusOr<ConvGeometry> ResolveConvGeometry(const graph::Node& node, const Shape& x,
                                                 const Shape& w);
// The same for ConvTranspose, following the spec's output-shape formula.
absl::StatusOr<ConvGeometry> ResolveConvTransposeGeometry(const graph::Node& node, const Shape& x,
                                                          const Shape& w);

// How the kernels treat the extra inputs and attributes of FusedConv:
//   Y = activation(conv(X, W) + B + Z)
// with activation "" (none), "Relu", or "Clip" (to [clip_min, clip_max]).
struct ConvEpilogue {
  enum class Activation { kNone, kRelu, kClip };
  bool has_residual = false;  // input 3 (Z) is added to the result
  Activation activation = Activation::kNone;
  float clip_min = 0, clip_max = 0;  // kClip only

  // The activation applied to one value (the reference kernel's definition).
  double Apply(double v) const {
    switch (activation) {
      case Activation::kRelu:
        return v < 0 ? 0 : v;
      case Activation::kClip:
        return v < clip_min ? clip_min : (v > clip_max ? clip_max : v);
      default:
        return v;
    }
  }
};
absl::StatusOr<ConvEpilogue> ResolveEpilogue(const graph::Node& node, size_t num_inputs);

// Kernel factories (conv_reference.cc, conv_onednn.cc).
absl::StatusOr<std::unique_ptr<Kernel>> BuildReferenceConv(const KernelBuildContext& ctx);
absl::StatusOr<std::unique_ptr<Kernel>> BuildReferenceConvTranspose(const KernelBuildContext& ctx);
absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConv(const KernelBuildContext& ctx);
absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConvTranspose(const KernelBuildContext& ctx);

}  // namespace lasgd::ops::conv_internal
