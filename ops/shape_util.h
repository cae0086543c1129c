// Helpers shared by the shape, reduce and misc op families (ops/shape.cc,
// ops/shape_movement.cc, ops/reduce.cc, ops/misc.cc).
//
// Most of these ops move bytes without looking at them, so their kernels work
// on any dtype by element size; the helpers here do that byte movement.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ops/op_registry.h"
#include "runtime/tensor.h"

namespace lasgd::ops::shape_internal {

using RunFn = std::function<absl::Status(KernelContext&)>;

// A kernel whose Run is a closure; the closure may capture node attributes
// and the opset, never tensors.
class FnKernel : public Kernel {
 public:
  explicit FnKernel(RunFn fn) : fn_(std::move(fn)) {}
  absl::Status Run(KernelContext& ctx) override { return fn_(ctx); }

 private:
  RunFn fn_;
};

// A candidate built by `make`, which sees the build context and returns the
// run closure or a Status saying why it declines.
inline KernelCandidate MakeCandidate(
    std::string name, std::function<absl::StatusOr<RunFn>(const KernelBuildContext&)> make) {
  KernelCandidate c;
  c.name = std::move(name);
  c.build = [make = std::move(make)](
                const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
    auto fn = make(b);
    if (!fn.ok()) return fn.status();
    return std::unique_ptr<Kernel>(new FnKernel(std::move(fn).value()));
  };
  return c;
}

// Prefixes an error from a helper shared by shape function and kernel with
// the node's description, unless the helper already did.
inline absl::Status NodeError(const graph::Node& node, const absl::Status& status) {
  if (status.ok()) return status;
  std::string prefix = node.Describe();
  if (absl::string_view(status.message()).substr(0, prefix.size()) == prefix) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}
inline absl::Status NodeError(const InferenceContext& ctx, const absl::Status& status) {
  return NodeError(ctx.node(), status);
}

// Integer values of input `i` for a shape function. Fails, naming the input,
// when the value is not known at compile time, since the output shape of the
// op depends on it.
absl::StatusOr<std::vector<int64_t>> ConstantInts(const InferenceContext& ctx, size_t i,
                                                  const std::string& input_name);
// Integer values of a runtime input tensor, with an error naming the input.
absl::StatusOr<std::vector<int64_t>> RuntimeInts(const graph::Node& node, const Tensor* t,
                                                 const std::string& input_name);

// Fails unless input `i` has one of `allowed` dtypes.
absl::Status ExpectDtype(const InferenceContext& ctx, size_t i, const std::string& input_name,
                         const std::vector<DataType>& allowed);
// Fails unless the input's dtype is one kernels can hold (not string/undefined).
absl::Status ExpectStorable(const InferenceContext& ctx, size_t i);

// Normalises `axes` against `rank`: negative axes are accepted from
// `negative_from_opset` on; duplicates are errors.
absl::StatusOr<std::vector<int64_t>> NormalizeAxes(const std::vector<int64_t>& axes, int64_t rank,
                                                   int64_t opset, int64_t negative_from_opset,
                                                   const std::string& what);
// One axis, the same rules.
absl::StatusOr<int64_t> NormalizeOneAxis(int64_t axis, int64_t rank, int64_t opset,
                                         int64_t negative_from_opset, const std::string& what);

// dst[i] = src[src_offset + sum_d index_d(i) * src_strides[d]] for every
// element i of the contiguous output of `out_shape`. Strides are in elements
// and may be zero (broadcast) or negative (reversed slice). Merges dims,
// copies contiguous inner runs with memcpy and parallelises over rows.
void StridedCopy(void* dst, const void* src, const Shape& out_shape,
                 const std::vector<int64_t>& src_strides, int64_t src_offset, size_t elem_size);

// Calls fn(index, linear) for every index of `shape` in row-major order.
void ForEachIndex(const Shape& shape,
                  const std::function<void(const std::vector<int64_t>&, int64_t)>& fn);

// Copies one element of `elem_size` bytes.
inline void CopyElement(void* dst, int64_t dst_index, const void* src, int64_t src_index,
                        size_t elem_size) {
  const char* s = static_cast<const char*>(src) + src_index * elem_size;
  char* d = static_cast<char*>(dst) + dst_index * elem_size;
  for (size_t b = 0; b < elem_size; ++b) d[b] = s[b];
}

// Copies input to output unless they share storage (Reshape, Identity, ...).
void CopyWhole(const Tensor& in, Tensor& out);

// The bytes of `value` converted to `dtype` (for fill values).
std::vector<char> ElementBytes(DataType dtype, double value);

// Fails unless the output allocated for a kernel has the shape the kernel's
// runtime inputs give (they may differ from the compile-time values only if
// a caller fed inconsistent data).
absl::Status CheckOutputShape(const graph::Node& node, const Tensor& out, const Shape& expected);

// Registers the movement ops of ops/shape_movement.cc (Transpose, Slice,
// Expand, Tile, Pad); called by RegisterShapeOps.
void AddShapeMovementSchemas(OpRegistry& registry);

}  // namespace lasgd::ops::shape_internal
