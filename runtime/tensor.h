// Tensor: a dtype, a static shape and a pointer to row-major (C-order) data.
//
// A Tensor either owns its storage (Allocate, Clone) or views memory owned by
// someone else (an arena slot of the executor, a mapped file). Copying a
// Tensor copies the handle, not the data, like torch.Tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lasgd {

// Numbering follows onnx.TensorProto.DataType so conversions are trivial.
enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUint32 = 12,
  kUint64 = 13,
  kBFloat16 = 16,
};

// Bytes per element; 0 for kUndefined and kString (which we do not compute on).
size_t DataTypeSize(DataType dtype);
// "float32", "int64", ...
std::string DataTypeName(DataType dtype);
bool IsFloatingPoint(DataType dtype);
bool IsInteger(DataType dtype);
// True for the dtypes our kernels and arena can hold (everything but string).
bool IsSupportedDataType(DataType dtype);

using Shape = std::vector<int64_t>;
// Product of dims (1 for a scalar).
int64_t NumElements(const Shape& shape);
// "[2,3,4]"
std::string ShapeToString(const Shape& shape);
// Row-major strides in elements.
std::vector<int64_t> ContiguousStrides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Owning, zero-filled, 64-byte aligned.
  static Tensor Allocate(DataType dtype, Shape shape);
  // Non-owning view of `data`; the caller keeps it alive.
  static Tensor View(DataType dtype, Shape shape, void* data);
  // A tensor living inside `owner`'s storage at `byte_offset`, sharing its
  // ownership (parameters packed into one contiguous arena use this).
  static Tensor Aliasing(const Tensor& owner, size_t byte_offset, DataType dtype, Shape shape);
  // Owning scalar / vector helpers, handy in tests and constant folding.
  static Tensor FromFloats(const std::vector<float>& values, Shape shape);
  static Tensor FromInt64s(const std::vector<int64_t>& values, Shape shape);

  bool defined() const { return dtype_ != DataType::kUndefined; }
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[i < 0 ? i + rank() : i]; }
  int64_t num_elements() const { return NumElements(shape_); }
  size_t nbytes() const { return static_cast<size_t>(num_elements()) * DataTypeSize(dtype_); }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <typename T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }

  // Deep copy into owning storage.
  Tensor Clone() const;
  // Same data, another shape with the same element count (a view).
  Tensor Reshaped(Shape shape) const;
  // Copies `other`'s bytes into this tensor; dtypes and element counts must match.
  void CopyFrom(const Tensor& other);

  // Values of an integer tensor (int8..uint64, bool) as int64; for shapes, axes, pads.
  absl::StatusOr<std::vector<int64_t>> ToInt64Vector() const;
  // Values of any numeric tensor as double; for tests and small constants.
  std::vector<double> ToDoubleVector() const;
  // Element i of any numeric tensor as double.
  double GetAsDouble(int64_t i) const;
  void SetFromDouble(int64_t i, double value);

  // "float32[2,3]"
  std::string TypeString() const;

 private:
  DataType dtype_ = DataType::kUndefined;
  Shape shape_;
  std::shared_ptr<void> storage_;  // empty for views
  void* data_ = nullptr;
};

}  // namespace lasgd
