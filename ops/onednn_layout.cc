#include "ops/onednn_layout.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/onednn_engine.h"

namespace lasgd::ops::onednn {

using dnnl::memory;

int64_t ChannelBlock() {
  static const int64_t block = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512) == avx512 ? int64_t{16} : int64_t{8};
  }();
  return block;
}

std::string BlockedLayoutName() { return absl::StrCat("nChw", ChannelBlock(), "c"); }

bool CanBeBlocked(DataType dtype, const Shape& shape) {
  if (dtype != DataType::kFloat32 || shape.size() != 4) return false;
  for (int64_t d : shape)
    if (d < 1) return false;
  return true;
}

size_t BlockedBytes(const Shape& shape) {
  const int64_t b = ChannelBlock();
  const int64_t padded_c = (shape[1] + b - 1) / b * b;
  return static_cast<size_t>(shape[0] * padded_c * shape[2] * shape[3]) * sizeof(float);
}

memory::desc PlainDesc(const Shape& shape) {
  static const memory::format_tag kTags[] = {memory::format_tag::undef, memory::format_tag::a,
                                             memory::format_tag::ab,    memory::format_tag::abc,
                                             memory::format_tag::abcd,  memory::format_tag::abcde,
                                             memory::format_tag::abcdef};
  return memory::desc(memory::dims(shape.begin(), shape.end()), memory::data_type::f32,
                      shape.size() < 7 ? kTags[shape.size()] : memory::format_tag::undef);
}

memory::desc BlockedDesc(const Shape& shape) {
  return memory::desc(
      memory::dims(shape.begin(), shape.end()), memory::data_type::f32,
      ChannelBlock() == 16 ? memory::format_tag::nChw16c : memory::format_tag::nChw8c);
}

bool SamePhysicalLayout(const memory::desc& a, const memory::desc& b) {
  if (a == b) return true;
  const memory::dims dims = a.dims();
  if (dims != b.dims() || dims.size() != 4 || a.data_type() != memory::data_type::f32 ||
      b.data_type() != memory::data_type::f32) {
    return false;
  }
  // [N][C/b][1][1][b] is [N][C] when no channel padding exists.
  if (dims[2] != 1 || dims[3] != 1 || dims[1] % ChannelBlock() != 0) return false;
  const Shape shape(dims.begin(), dims.end());
  const memory::desc plain = PlainDesc(shape), blocked = BlockedDesc(shape);
  return (a == plain || a == blocked) && (b == plain || b == blocked);
}

namespace {

// The calling thread's scratch buffers, one per slot.
class ScratchPool {
 public:
  void* Get(int slot, size_t bytes) {
    if (slot < 0) throw dnnl::error(dnnl_invalid_arguments, "negative scratch slot");
    if (static_cast<size_t>(slot) >= buffers_.size()) buffers_.resize(slot + 1);
    Buffer& b = buffers_[slot];
    if (b.bytes < bytes) {
      // Free first: holding the old buffer while allocating the new one
      // would raise the peak for nothing, its contents are not kept.
      b.data.reset();
      b.bytes = 0;
      const size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc wants a multiple
      b.data.reset(static_cast<char*>(std::aligned_alloc(64, rounded)));
      // dnnl::error keeps the message pointer, so it must be a literal.
      if (!b.data)
        throw dnnl::error(dnnl_out_of_memory, "cannot allocate an operand scratch buffer");
      b.bytes = rounded;
    }
    return b.data.get();
  }
  size_t TotalBytes() const {
    size_t total = 0;
    for (const Buffer& b : buffers_) total += b.bytes;
    return total;
  }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  struct Buffer {
    std::unique_ptr<char, Free> data;
    size_t bytes = 0;
  };
  std::vector<Buffer> buffers_;
};

ScratchPool& ThisThreadPool() {
  thread_local ScratchPool pool;
  return pool;
}

}  // namespace

void* ThreadScratch(int slot, size_t bytes) {
  // Never zero bytes: a null handle would turn a memory object into one
  // that oneDNN allocates itself.
  return ThisThreadPool().Get(slot, std::max<size_t>(bytes, 1));
}

memory ScratchMemory(const memory::desc& desc, int slot) {
  return memory(desc, CpuEngine(), ThreadScratch(slot, desc.get_size()));
}

size_t ThreadScratchBytes() { return ThisThreadPool().TotalBytes(); }

void Operand::Init(const memory::desc& stored, const memory::desc& wanted, bool is_output,
                   int slot) {
  stored_ = stored;
  wanted_ = wanted;
  slot_ = slot;
  reorder_ = dnnl::reorder();
  prepared_buffer_ = memory();
  prepared_ = false;
  if (SamePhysicalLayout(stored, wanted)) return;
  // Reorders bind no memory; each run passes the buffers of that run.
  const memory stored_any(stored, CpuEngine(), DNNL_MEMORY_NONE);
  const memory wanted_any(wanted, CpuEngine(), DNNL_MEMORY_NONE);
  reorder_ =
      is_output ? dnnl::reorder(wanted_any, stored_any) : dnnl::reorder(stored_any, wanted_any);
}

memory Operand::In(const void* data, dnnl::stream& stream) {
  if (!reorder_) return memory(wanted_, CpuEngine(), const_cast<void*>(data));
  if (prepared_) return prepared_buffer_;
  memory user(stored_, CpuEngine(), const_cast<void*>(data));
  memory scratch = Scratch();
  reorder_.execute(stream, user, scratch);
  return scratch;
}

memory Operand::Target(void* data) const {
  return reorder_ ? Scratch() : memory(wanted_, CpuEngine(), data);
}

void Operand::Out(void* data, dnnl::stream& stream) {
  if (!reorder_) return;
  // The scratch of this slot still holds what the primitive wrote: the
  // kernel has not handed the slot to anything else since Target().
  memory scratch = Scratch();
  memory user(stored_, CpuEngine(), data);
  reorder_.execute(stream, scratch, user);
}

void Operand::Prepare(const void* data, dnnl::stream& stream) {
  if (!reorder_) return;
  prepared_buffer_ = memory(wanted_, CpuEngine());
  memory user(stored_, CpuEngine(), const_cast<void*>(data));
  reorder_.execute(stream, user, prepared_buffer_);
  stream.wait();
  prepared_ = true;
}

}  // namespace lasgd::ops::onednn
