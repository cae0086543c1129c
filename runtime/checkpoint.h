// Training checkpoints: tensors (parameters, optimizer state, BN statistics)
// plus string metadata (step, epoch, batch position, RNG states, config hash,
// model fingerprint, ...), in one self-checking binary file.
//
// File format, version 1. All integers little-endian; strings are a length
// followed by bytes (no terminator).
//
//   preamble (24 bytes)
//     char[8]  magic "LASGDCKP"
//     u32      format version (1)
//     u32      header CRC32: zlib crc32 over the 12 bytes "version, header
//              length" followed by the header bytes
//     u64      header length in bytes
//   header
//     u64      total file size in bytes (detects truncation before any data)
//     u32      number of metadata entries, then per entry:
//                u32 key length, key, u64 value length, value
//     u32      number of tensors, then per tensor:
//                u32 name length, name
//                i32 dtype (onnx.TensorProto.DataType numbering, as DataType)
//                u32 rank, i64 dims[rank]
//                u64 data offset from the start of the file (64-byte aligned)
//                u64 data length in bytes (= elements * dtype size)
//                u32 CRC32 of the data bytes
//   tensor data, in header order, each at its offset (zero padding between)
//
// Writes are atomic: the file is written under a temporary name in the same
// folder, flushed and fsynced, renamed over the final name, and the folder is
// fsynced; a crash at any point leaves either the old file or the new one,
// never a partial file under the final name. Reads verify everything (sizes,
// offsets, CRCs) and return errors that name the file and what is wrong; they
// never crash on a damaged file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace lasgd::runtime {

struct Checkpoint {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

inline constexpr char kCheckpointMagic[8] = {'L', 'A', 'S', 'G', 'D', 'C', 'K', 'P'};
inline constexpr uint32_t kCheckpointVersion = 1;

struct CheckpointWriteOptions {
  // Called after each tensor is written with the bytes written so far and
  // the total; for progress bars (and for tests that interrupt a write).
  std::function<void(int64_t written, int64_t total)> progress;
};

// Writes `checkpoint` to `path` atomically (see above).
absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint,
                             const CheckpointWriteOptions& options = CheckpointWriteOptions());

// Reads and verifies a checkpoint. Missing, truncated, corrupt (CRC
// mismatch), wrong-magic and newer-version files give errors naming the file
// and the problem.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

struct TensorSpec {
  DataType dtype = DataType::kUndefined;
  Shape shape;
};

// The specs of a set of tensors (e.g. the model's parameters).
std::map<std::string, TensorSpec> SpecsOf(const std::map<std::string, Tensor>& tensors);

// Checks that `checkpoint` holds every expected tensor with the expected
// dtype and shape, and (unless `allow_extra_tensors`) nothing else. The error
// names the first mismatching tensor in name order and counts the others.
absl::Status CheckCompatible(const Checkpoint& checkpoint,
                             const std::map<std::string, TensorSpec>& expected,
                             bool allow_extra_tensors = false);

// Checkpoints `ckpt-<step>.lasgd` in one folder, keeping the newest few.
class CheckpointManager {
 public:
  // keep_last <= 0 keeps every checkpoint.
  CheckpointManager(std::string dir, int keep_last);

  struct Entry {
    int64_t step;
    std::string path;
  };
  struct Loaded {
    int64_t step = 0;
    std::string path;
    Checkpoint checkpoint;
    // One line per newer checkpoint that was skipped because it did not read.
    std::vector<std::string> warnings;
  };

  const std::string& dir() const { return dir_; }
  std::string PathForStep(int64_t step) const;

  // Writes ckpt-<step>.lasgd (creating the folder if needed; metadata "step"
  // is set when absent), then deletes: checkpoints with a larger step (left by
  // a run that was resumed from an earlier checkpoint; the next resume must
  // not jump back to that abandoned timeline), all but the newest `keep_last`,
  // and temporary files that crashed writers on this host left behind.
  // Returns the path written.
  absl::StatusOr<std::string> Save(
      int64_t step, const Checkpoint& checkpoint,
      const CheckpointWriteOptions& options = CheckpointWriteOptions());

  // ckpt-<step>.lasgd files in the folder, oldest first (not opened). A
  // missing folder lists nothing.
  absl::StatusOr<std::vector<Entry>> List() const;

  // Reads the newest checkpoint that verifies, skipping newer damaged ones
  // with a warning each. NotFound when the folder holds no checkpoint,
  // DataLoss (listing each problem) when none of them reads.
  absl::StatusOr<Loaded> LoadLatest() const;

 private:
  std::string dir_;
  int keep_last_;
};

}  // namespace lasgd::runtime
