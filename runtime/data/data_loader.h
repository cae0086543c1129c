// DataLoader: turns a Dataset into an endless, deterministic stream of
// batches for one rank, assembled ahead of time on a background thread.
//
// Determinism is the point of the design. Batch b of epoch e on rank r is a
// pure function of (dataset, options, e, b):
//   - the permutation of epoch e depends only on (seed, e) (identity without
//     shuffle), so every rank computes the same one without talking;
//   - rank r of W takes the r-th of W equal contiguous slices of it
//     (floor(N / W) samples each; the remainder is dropped that epoch, and
//     shuffling moves which samples those are), so every rank gets the same
//     number of batches and collectives always match;
//   - augmentation of a sample depends only on (seed, e, dataset index).
// Hence prefetching changes nothing observable, and restarting from a
// checkpointed position() with Seek() replays exactly the same batches.
//
// Usage:
//   ASSIGN_OR_RETURN(auto loader, DataLoader::Create(dataset, options));
//   RETURN_IF_ERROR(loader->Seek(checkpoint.position));   // when resuming
//   for (;;) {
//     ASSIGN_OR_RETURN(Batch batch, loader->Next());
//     ... train on batch.inputs / batch.labels ...
//     checkpoint.position = loader->position();
//   }
// An evaluation pass: shuffle = false, drop_last = false, Seek({0, 0}), then
// batches_per_epoch() calls to Next().
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/data/dataset.h"
#include "runtime/tensor.h"

namespace lasgd::data {

struct DataLoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;
  // Drop the last, smaller batch of each epoch (training usually wants
  // equal-size batches; evaluation wants every sample).
  bool drop_last = false;

  // Sharding: this loader yields rank `rank` of `world_size`'s share.
  int rank = 0;
  int world_size = 1;

  // Per-channel normalisation (x - mean[c]) / std[c], channel = dim 0 of the
  // sample shape; one value applies to every channel; empty = none. Applied
  // after augmentation, so padding pixels are normalised zeros as in
  // torchvision's RandomCrop(padding) + Normalize.
  std::vector<float> mean, std;

  // Training augmentation for [C,H,W] samples: a random HxW crop of the
  // sample zero-padded by `crop_padding` on each side (0 = off), and a
  // horizontal flip with probability 1/2.
  int crop_padding = 0;
  bool horizontal_flip = false;

  // Batches assembled ahead on the background thread; 0 assembles each batch
  // inside Next() on the caller's thread (no thread at all).
  int prefetch_batches = 4;
};

// Where a loader stands: the next batch Next() returns is batch `batch` of
// epoch `epoch`. Checkpoints store it; Seek() restores it.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && batch == o.batch; }
  bool operator!=(const LoaderPosition& o) const { return !(*this == o); }
};

struct Batch {
  Tensor inputs;  // float32 [B, sample_shape...]
  // int64 [B] class labels, or float32 [B, target_shape...] for float targets.
  Tensor labels;
  LoaderPosition position;              // of this batch
  bool last_in_epoch = false;           // position.batch == batches_per_epoch() - 1
  std::vector<int64_t> sample_indices;  // dataset index of each row
  int64_t size() const { return static_cast<int64_t>(sample_indices.size()); }
};

class DataLoader {
 public:
  // Checks the options against the dataset (batch size, rank, normalisation
  // width, augmentation needing [C,H,W], a shard too small for one batch).
  static absl::StatusOr<std::unique_ptr<DataLoader>> Create(std::shared_ptr<const Dataset> dataset,
                                                            DataLoaderOptions options);
  // Stops and joins the prefetch thread.
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Not thread-safe: one consumer thread calls Next/Seek/StopPrefetch.
  //
  // Returns the batch at position() and advances past it (into the next epoch
  // after the last batch of one). A failure while assembling a batch (a lazy
  // dataset's read error) is returned here and again on every call until
  // Seek().
  absl::StatusOr<Batch> Next();

  LoaderPosition position() const;
  // Moves to `position` (0 <= batch <= batches_per_epoch(); batch ==
  // batches_per_epoch() means the start of the next epoch), dropping any
  // prefetched batches.
  absl::Status Seek(LoaderPosition position);
  // Stops the prefetch thread and drops its batches; the next Next() starts
  // it again from position(). For handing the cores back during long pauses.
  void StopPrefetch();

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Samples this rank sees per epoch (before drop_last).
  int64_t samples_per_rank() const { return samples_per_rank_; }
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }

  // The dataset indices of epoch `epoch` for this rank, in order
  // (samples_per_rank() of them).
  std::vector<int64_t> EpochIndices(int64_t epoch) const;

 private:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
  // Assembles batch `position`; `indices`/`indices_epoch` cache the epoch's
  // index list between calls (one cache per thread that builds).
  absl::StatusOr<Batch> Build(LoaderPosition position, std::vector<int64_t>* indices,
                              int64_t* indices_epoch) const;
  LoaderPosition Advance(LoaderPosition p) const;
  void ProducerLoop(LoaderPosition start);
  void StartThreadLocked();
  void StopThread();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  int64_t samples_per_rank_ = 0;
  int64_t batches_per_epoch_ = 0;

  // Consumer state (caller's thread).
  LoaderPosition position_;
  std::vector<int64_t> sync_indices_;
  int64_t sync_indices_epoch_ = -1;

  // Shared with the producer thread, guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<absl::StatusOr<Batch>> queue_;
  absl::Status failure_;   // sticky error, returned until Seek()
  bool stopping_ = false;  // tells the producer to exit
  std::thread thread_;
};

}  // namespace lasgd::data
