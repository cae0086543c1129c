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

// Per-thread scratch for operands in a primitive's wanted layout and for
// primitives' scratchpads.
//
// Kernels of one plan run one at a time on the thread that runs the plan
// (runtime/executor.cc), and no kernel runs inside another kernel's Run
// (oneDNN's and OpenMP's worker threads never call back into our kernels), so
// one set of buffers per thread serves every kernel: memory is the largest
// operand each slot ever needed, not the sum over all kernels of the plan
// (which made MobileNetV2's reorder buffers larger than the executor's arena).
// Plans running on different threads get different buffers.
//
// `slot` tells apart buffers that are in use at the same time: within one
// kernel invocation every operand and scratchpad takes its own slot (its
// position in the kernel: 0, 1, 2, ...), so no two of them share memory
// however many there are; different kernels reuse the same slots.
//
// Returns at least `bytes`, 64-byte aligned, valid until the next call for
// the same slot on this thread. A slot grows (the old buffer is freed, its
// contents lost) when a larger size is asked for and otherwise keeps its
// largest size. Growth is safe only because callers fetch the pointer anew
// for every primitive execution and never keep a dnnl::memory over scratch
// from one run to the next. Throws dnnl::error when allocation fails, like
// the oneDNN calls around it.
void* ThreadScratch(int slot, size_t bytes);
// `desc` over the scratch of `slot`, sized for it.
dnnl::memory ScratchMemory(const dnnl::memory::desc& desc, int slot);
// Bytes of scratch the calling thread holds (all slots), for tests and diagnostics.
size_t ThreadScratchBytes();

// One primitive argument as the executor stores it (`stored`) and as the
// primitive wants it (`wanted`). When they differ, a reorder bridges the two
// on every run through the calling thread's scratch (ThreadScratch) in
// `slot`, which must differ from the slot of every other operand or
// scratchpad of the same kernel. The dnnl::memory that In() and Target()
// return is valid for the current run only.
class Operand {
 public:
  Operand() = default;
  void Init(const dnnl::memory::desc& stored, const dnnl::memory::desc& wanted, bool is_output,
            int slot);
  bool reordered() const { return static_cast<bool>(reorder_); }
  const dnnl::memory::desc& stored() const { return stored_; }
  const dnnl::memory::desc& wanted() const { return wanted_; }

  // Input: the memory to give the primitive, reordering `data` in if needed.
  dnnl::memory In(const void* data, dnnl::stream& stream);
  // Output: the memory the primitive writes; call Out() after it ran, in the
  // same run, before anything else of this kernel uses the slot.
  dnnl::memory Target(void* data) const;
  void Out(void* data, dnnl::stream& stream);

  // Reorders `data` (stored layout) once into a buffer this operand owns, in
  // the wanted layout, for inputs that never change (constant weights); In()
  // then returns that buffer and ignores its argument. Owned, not scratch,
  // because its contents must survive from run to run.
  void Prepare(const void* data, dnnl::stream& stream);
  bool prepared() const { return prepared_; }

 private:
  dnnl::memory Scratch() const { return ScratchMemory(wanted_, slot_); }

  dnnl::memory::desc stored_, wanted_;
  int slot_ = 0;
  dnnl::reorder reorder_;
  dnnl::memory prepared_buffer_;
  bool prepared_ = false;
};

}  // namespace lasgd::ops::onednn
