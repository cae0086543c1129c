// NumPy .npy files (format versions 1.0-3.0, little-endian, C order), read
// and written by our own small codec: the format is a 10-byte preamble, a
// Python-dict header and raw data, not worth a dependency.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace lasgd::runtime {

absl::StatusOr<Tensor> ReadNpy(const std::string& path);
// Parses .npy bytes; `what` names the source in errors.
absl::StatusOr<Tensor> ParseNpy(const std::string& bytes, const std::string& what);
// Writes atomically (temporary file, then rename).
absl::Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace lasgd::runtime
