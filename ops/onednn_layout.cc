#include "ops/onednn_layout.h"

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

void Operand::Init(const memory::desc& stored, const memory::desc& wanted, bool is_output) {
  stored_ = stored;
  wanted_ = wanted;
  internal_ = memory();
  reorder_ = dnnl::reorder();
  prepared_ = false;
  if (SamePhysicalLayout(stored, wanted)) return;
  internal_ = memory(wanted, CpuEngine());
  if (is_output) {
    reorder_ = dnnl::reorder(internal_, memory(stored, CpuEngine(), DNNL_MEMORY_NONE));
  } else {
    reorder_ = dnnl::reorder(memory(stored, CpuEngine(), DNNL_MEMORY_NONE), internal_);
  }
}

memory Operand::In(const void* data, dnnl::stream& stream) {
  if (!internal_) return memory(wanted_, CpuEngine(), const_cast<void*>(data));
  if (!prepared_) {
    memory user(stored_, CpuEngine(), const_cast<void*>(data));
    reorder_.execute(stream, user, internal_);
  }
  return internal_;
}

memory Operand::Target(void* data) const {
  return internal_ ? internal_ : memory(wanted_, CpuEngine(), data);
}

void Operand::Out(void* data, dnnl::stream& stream) {
  if (!internal_) return;
  memory user(stored_, CpuEngine(), data);
  reorder_.execute(stream, internal_, user);
}

void Operand::Prepare(const void* data, dnnl::stream& stream) {
  if (!internal_) return;
  memory user(stored_, CpuEngine(), const_cast<void*>(data));
  reorder_.execute(stream, user, internal_);
  stream.wait();
  prepared_ = true;
}

}  // namespace lasgd::ops::onednn
