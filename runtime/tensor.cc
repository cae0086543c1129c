#include "runtime/tensor.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lasgd {

size_t DataTypeSize(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
    case DataType::kInt32:
    case DataType::kUint32:
      return 4;
    case DataType::kUint8:
    case DataType::kInt8:
    case DataType::kBool:
      return 1;
    case DataType::kUint16:
    case DataType::kInt16:
    case DataType::kFloat16:
    case DataType::kBFloat16:
      return 2;
    case DataType::kInt64:
    case DataType::kFloat64:
    case DataType::kUint64:
      return 8;
    default:
      return 0;
  }
}

std::string DataTypeName(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kUint8:
      return "uint8";
    case DataType::kInt8:
      return "int8";
    case DataType::kUint16:
      return "uint16";
    case DataType::kInt16:
      return "int16";
    case DataType::kInt32:
      return "int32";
    case DataType::kInt64:
      return "int64";
    case DataType::kString:
      return "string";
    case DataType::kBool:
      return "bool";
    case DataType::kFloat16:
      return "float16";
    case DataType::kFloat64:
      return "float64";
    case DataType::kUint32:
      return "uint32";
    case DataType::kUint64:
      return "uint64";
    case DataType::kBFloat16:
      return "bfloat16";
    default:
      return absl::StrCat("dtype(", static_cast<int>(dtype), ")");
  }
}

bool IsFloatingPoint(DataType dtype) {
  return dtype == DataType::kFloat32 || dtype == DataType::kFloat64 ||
         dtype == DataType::kFloat16 || dtype == DataType::kBFloat16;
}

bool IsInteger(DataType dtype) {
  switch (dtype) {
    case DataType::kUint8:
    case DataType::kInt8:
    case DataType::kUint16:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kUint32:
    case DataType::kUint64:
      return true;
    default:
      return false;
  }
}

bool IsSupportedDataType(DataType dtype) {
  return dtype != DataType::kUndefined && dtype != DataType::kString && DataTypeSize(dtype) > 0;
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

std::vector<int64_t> ContiguousStrides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

Tensor Tensor::Allocate(DataType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  size_t bytes = t.nbytes();
  size_t padded = ((bytes + 63) / 64) * 64;
  if (padded == 0) padded = 64;
  void* p = std::aligned_alloc(64, padded);
  std::memset(p, 0, padded);
  t.storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::View(DataType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::Aliasing(const Tensor& owner, size_t byte_offset, DataType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = owner.storage_;
  t.data_ = static_cast<char*>(owner.data_) + byte_offset;
  return t;
}

Tensor Tensor::FromFloats(const std::vector<float>& values, Shape shape) {
  Tensor t = Allocate(DataType::kFloat32, std::move(shape));
  std::memcpy(t.data_, values.data(), std::min(values.size() * 4, t.nbytes()));
  return t;
}

Tensor Tensor::FromInt64s(const std::vector<int64_t>& values, Shape shape) {
  Tensor t = Allocate(DataType::kInt64, std::move(shape));
  std::memcpy(t.data_, values.data(), std::min(values.size() * 8, t.nbytes()));
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t = Allocate(dtype_, shape_);
  if (nbytes() > 0) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

void Tensor::CopyFrom(const Tensor& other) {
  if (other.nbytes() > 0 && other.data_ != data_) std::memcpy(data_, other.data_, other.nbytes());
}

absl::StatusOr<std::vector<int64_t>> Tensor::ToInt64Vector() const {
  if (!IsInteger(dtype_) && dtype_ != DataType::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an integer tensor, got ", TypeString()));
  }
  std::vector<int64_t> out(num_elements());
  for (int64_t i = 0; i < num_elements(); ++i) out[i] = static_cast<int64_t>(GetAsDouble(i));
  if (dtype_ == DataType::kInt64) std::memcpy(out.data(), data_, out.size() * 8);
  return out;
}

std::vector<double> Tensor::ToDoubleVector() const {
  std::vector<double> out(num_elements());
  for (int64_t i = 0; i < num_elements(); ++i) out[i] = GetAsDouble(i);
  return out;
}

namespace {
// IEEE half -> float, enough for reading fp16 initializers and test data.
float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

double Tensor::GetAsDouble(int64_t i) const {
  switch (dtype_) {
    case DataType::kFloat32:
      return data<float>()[i];
    case DataType::kFloat64:
      return data<double>()[i];
    case DataType::kInt64:
      return static_cast<double>(data<int64_t>()[i]);
    case DataType::kInt32:
      return data<int32_t>()[i];
    case DataType::kInt16:
      return data<int16_t>()[i];
    case DataType::kInt8:
      return data<int8_t>()[i];
    case DataType::kUint8:
      return data<uint8_t>()[i];
    case DataType::kUint16:
      return data<uint16_t>()[i];
    case DataType::kUint32:
      return data<uint32_t>()[i];
    case DataType::kUint64:
      return static_cast<double>(data<uint64_t>()[i]);
    case DataType::kBool:
      return data<uint8_t>()[i] ? 1.0 : 0.0;
    case DataType::kFloat16:
      return HalfToFloat(data<uint16_t>()[i]);
    case DataType::kBFloat16: {
      uint32_t bits = static_cast<uint32_t>(data<uint16_t>()[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default:
      return 0.0;
  }
}

void Tensor::SetFromDouble(int64_t i, double v) {
  switch (dtype_) {
    case DataType::kFloat32:
      data<float>()[i] = static_cast<float>(v);
      break;
    case DataType::kFloat64:
      data<double>()[i] = v;
      break;
    case DataType::kInt64:
      data<int64_t>()[i] = static_cast<int64_t>(v);
      break;
    case DataType::kInt32:
      data<int32_t>()[i] = static_cast<int32_t>(v);
      break;
    case DataType::kInt16:
      data<int16_t>()[i] = static_cast<int16_t>(v);
      break;
    case DataType::kInt8:
      data<int8_t>()[i] = static_cast<int8_t>(v);
      break;
    case DataType::kUint8:
      data<uint8_t>()[i] = static_cast<uint8_t>(v);
      break;
    case DataType::kUint16:
      data<uint16_t>()[i] = static_cast<uint16_t>(v);
      break;
    case DataType::kUint32:
      data<uint32_t>()[i] = static_cast<uint32_t>(v);
      break;
    case DataType::kUint64:
      data<uint64_t>()[i] = static_cast<uint64_t>(v);
      break;
    case DataType::kBool:
      data<uint8_t>()[i] = v != 0.0;
      break;
    default:
      break;
  }
}

std::string Tensor::TypeString() const { return DataTypeName(dtype_) + ShapeToString(shape_); }

}  // namespace lasgd
