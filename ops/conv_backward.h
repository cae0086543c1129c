// Internals shared by the ConvGradInput / ConvGradWeight files
// (conv_backward.cc, conv_backward_onednn.cc).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "ops/conv_util.h"
#include "ops/op_registry.h"
#include "runtime/tensor.h"

namespace lasgd::ops::backward_internal {

// The forward geometry of the Conv whose gradient a node computes, checked
// against dY's shape.
absl::StatusOr<conv_internal::ConvGeometry> ResolveConvGradGeometry(const graph::Node& node,
                                                                    const Shape& x, const Shape& w,
                                                                    const Shape& dy);
// The same for a ConvGradInput (weight = false) or ConvGradWeight node.
absl::StatusOr<conv_internal::ConvGeometry> ResolveConvGradGeometryFor(
    const KernelBuildContext& ctx, bool weight);
// W's shape [M, C/group, k...] for ConvGradWeight(X, dY) with kernel_shape.
absl::StatusOr<Shape> ConvGradWeightShape(const graph::Node& node, const Shape& x, const Shape& dy);

// The geometry with every per-axis value padded to 3 spatial axes (D, H, W).
struct Geometry3d {
  int64_t n, c, m, group;
  int64_t in[3], out[3], k[3], s[3], d[3], pad[3];
};
Geometry3d To3d(const conv_internal::ConvGeometry& g);

absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConvGradInput(const KernelBuildContext& ctx);
absl::StatusOr<std::unique_ptr<Kernel>> BuildOnednnConvGradWeight(const KernelBuildContext& ctx);

}  // namespace lasgd::ops::backward_internal
