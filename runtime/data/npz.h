// NumPy .npz archives: a zip of .npy members, as np.savez (stored) and
// np.savez_compressed (deflate) write them, zip64 records included (NumPy
// always writes zip64 local headers). Members are parsed by ParseNpy.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace lasgd::data {

// Reads the arrays `names` (member names without ".npy"; empty = all of
// them) from the archive at `path`. A missing name is a NotFound error that
// lists the arrays the archive does hold.
absl::StatusOr<std::map<std::string, Tensor>> ReadNpz(const std::string& path,
                                                      const std::vector<std::string>& names = {});

}  // namespace lasgd::data
