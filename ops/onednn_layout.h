// oneDNN's channel-blocked activation layout (nChw8c on AVX2, nChw16c on
// AVX-512), which the executor may choose for float32 rank-4 values passed
// between oneDNN kernels (runtime/layout_plan.h), and the bridge a kernel uses
// when the layout a tensor is stored in differs from what its primitive wants.
//
// A blocked tensor keeps its logical NCHW shape in the Tensor; only its bytes
// are arranged differently: [N][ceil(C/b)][H][W][b]. The channels past C in
// the last block are padding that oneDNN keeps at zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "oneapi/dnnl/dnnl.hpp"
#include "runtime/tensor.h"

namespace lasgd::ops::onednn {

// Channels per block on this CPU: 16 where oneDNN runs AVX-512 code, else 8.
int64_t ChannelBlock();
// "nChw8c" or "nChw16c".
std::string BlockedLayoutName();
// Whether a value of this type may be stored blocked at all.
bool CanBeBlocked(DataType dtype, const Shape& shape);
// Bytes a blocked tensor of `shape` (float32, rank 4) occupies, channel padding included.
size_t BlockedBytes(const Shape& shape);

// float32 descriptors of a tensor stored plain (row-major) or blocked.
dnnl::memory::desc PlainDesc(const Shape& shape);
dnnl::memory::desc BlockedDesc(const Shape& shape);
// The descriptor of a tensor stored blocked or plain, as the plan decided.
inline dnnl::memory::desc StoredDesc(const Shape& shape, bool blocked) {
  return blocked ? BlockedDesc(shape) : PlainDesc(shape);
}
// Whether the two descriptors put every element at the same byte (equal
// descriptors, or plain and blocked where that makes no difference, such
// as [N, C, 1, 1] with C a multiple of the block).
bool SamePhysicalLayout(const dnnl::memory::desc& a, const dnnl::memory::desc& b);

// One primitive argument as the executor stores it (`stored`) and as the
// primitive wants it (`wanted`). When they differ, an internal buffer in the
// wanted layout and a reorder bridge the two on every run.
class Operand {
 public:
  Operand() = default;
  void Init(const dnnl::memory::desc& stored, const dnnl::memory::desc& wanted, bool is_output);
  bool reordered() const { return static_cast<bool>(internal_); }
  const dnnl::memory::desc& stored() const { return stored_; }
  const dnnl::memory::desc& wanted() const { return wanted_; }

  // Input: the memory to give the primitive, reordering `data` in if needed.
  dnnl::memory In(const void* data, dnnl::stream& stream);
  // Output: the memory the primitive writes; call Out() after it ran.
  dnnl::memory Target(void* data) const;
  void Out(void* data, dnnl::stream& stream);

  // Reorders `data` (stored layout) into an owned buffer in the wanted layout
  // once, for inputs that never change (constant weights); In() then returns
  // that buffer and ignores its argument.
  void Prepare(const void* data, dnnl::stream& stream);
  bool prepared() const { return prepared_; }

 private:
  dnnl::memory::desc stored_, wanted_;
  dnnl::memory internal_;
  dnnl::reorder reorder_;
  bool prepared_ = false;
};

}  // namespace lasgd::ops::onednn
