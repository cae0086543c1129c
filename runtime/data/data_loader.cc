#include "runtime/data/data_loader.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "runtime/data/random.h"

namespace lasgd::data {
namespace {

// Tags keep the shuffle and augmentation streams apart for the same seed.
constexpr uint64_t kShuffleTag = 0x73687566666c65;  // "shuffle"
constexpr uint64_t kAugmentTag = 0x6175676d656e74;  // "augment"

}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<DataLoader>> DataLoader::Create(
    std::shared_ptr<const Dataset> dataset, DataLoaderOptions options) {
  if (!dataset) return absl::InvalidArgumentError("DataLoader: no dataset");
  const std::string name = dataset->name();  // `dataset` is moved from below
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("DataLoader for ", name, ": ", why));
  };
  if (options.batch_size < 1)
    return bad(absl::StrCat("batch_size ", options.batch_size, " must be positive"));
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size)
    return bad(absl::StrCat("rank ", options.rank, " of world size ", options.world_size,
                            ": expected 0 <= rank < world_size"));
  if (options.prefetch_batches < 0)
    return bad(absl::StrCat("prefetch_batches ", options.prefetch_batches, " is negative"));
  const Shape& shape = dataset->sample_shape();
  const int64_t channels = shape.empty() ? 1 : shape[0];
  if (options.mean.size() != options.std.size())
    return bad(absl::StrCat("normalisation needs as many means as stds, got ", options.mean.size(),
                            " and ", options.std.size()));
  if (!options.mean.empty() && options.mean.size() != 1 &&
      static_cast<int64_t>(options.mean.size()) != channels)
    return bad(absl::StrCat(options.mean.size(), " normalisation values for samples of shape ",
                            ShapeToString(shape), "; expected 1 or ", channels,
                            " (one per channel, dim 0)"));
  for (float s : options.std)
    if (!(s > 0)) return bad(absl::StrCat("normalisation std ", s, " must be positive"));
  if (options.crop_padding < 0)
    return bad(absl::StrCat("crop_padding ", options.crop_padding, " is negative"));
  if ((options.crop_padding > 0 || options.horizontal_flip) && shape.size() != 3)
    return bad(
        absl::StrCat("random crop and flip need [C,H,W] samples, got ", ShapeToString(shape)));

  std::unique_ptr<DataLoader> loader(new DataLoader(std::move(dataset), std::move(options)));
  const DataLoaderOptions& o = loader->options_;
  loader->samples_per_rank_ = loader->dataset_->size() / o.world_size;
  if (loader->samples_per_rank_ == 0)
    return bad(absl::StrCat(loader->dataset_->size(), " samples cannot be shared by ", o.world_size,
                            " ranks"));
  loader->batches_per_epoch_ = o.drop_last
                                   ? loader->samples_per_rank_ / o.batch_size
                                   : (loader->samples_per_rank_ + o.batch_size - 1) / o.batch_size;
  if (loader->batches_per_epoch_ == 0)
    return bad(absl::StrCat("each rank's ", loader->samples_per_rank_,
                            " samples per epoch make no full batch of ", o.batch_size,
                            " with drop_last"));
  return loader;
}

DataLoader::~DataLoader() { StopThread(); }

std::vector<int64_t> DataLoader::EpochIndices(int64_t epoch) const {
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (options_.shuffle) {
    Rng rng(MixSeeds({options_.seed, kShuffleTag, static_cast<uint64_t>(epoch)}));
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(order[i], order[rng.Below(static_cast<uint64_t>(i + 1))]);
  }
  const int64_t begin = options_.rank * samples_per_rank_;
  return std::vector<int64_t>(order.begin() + begin, order.begin() + begin + samples_per_rank_);
}

LoaderPosition DataLoader::Advance(LoaderPosition p) const {
  if (++p.batch == batches_per_epoch_) {
    ++p.epoch;
    p.batch = 0;
  }
  return p;
}

absl::StatusOr<Batch> DataLoader::Build(LoaderPosition position, std::vector<int64_t>* indices,
                                        int64_t* indices_epoch) const {
  if (*indices_epoch != position.epoch) {
    *indices = EpochIndices(position.epoch);
    *indices_epoch = position.epoch;
  }
  const DataLoaderOptions& o = options_;
  const int64_t start = position.batch * o.batch_size;
  const int64_t count = std::min<int64_t>(o.batch_size, samples_per_rank_ - start);
  const Shape& sample_shape = dataset_->sample_shape();
  const int64_t numel = dataset_->sample_numel();

  Batch batch;
  batch.position = position;
  batch.last_in_epoch = position.batch == batches_per_epoch_ - 1;
  batch.sample_indices.assign(indices->begin() + start, indices->begin() + start + count);
  Shape input_shape = {count};
  input_shape.insert(input_shape.end(), sample_shape.begin(), sample_shape.end());
  batch.inputs = Tensor::Allocate(DataType::kFloat32, input_shape);
  const bool labels = dataset_->target_type() == TargetType::kLabel;
  const int64_t target_numel = labels ? 1 : dataset_->target_numel();
  if (labels) {
    batch.labels = Tensor::Allocate(DataType::kInt64, {count});
  } else {
    Shape target_shape = {count};
    const Shape& ts = dataset_->target_shape();
    target_shape.insert(target_shape.end(), ts.begin(), ts.end());
    batch.labels = Tensor::Allocate(DataType::kFloat32, target_shape);
  }

  const bool augment = o.crop_padding > 0 || o.horizontal_flip;
  std::vector<float> raw(augment ? static_cast<size_t>(numel) : 0);
  const int64_t channels = sample_shape.empty() ? 1 : sample_shape[0];
  const int64_t per_channel = channels > 0 ? numel / channels : 0;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t index = batch.sample_indices[k];
    float* row = batch.inputs.data<float>() + k * numel;
    int64_t* label = labels ? batch.labels.data<int64_t>() + k : nullptr;
    float* target = labels ? nullptr : batch.labels.data<float>() + k * target_numel;
    RETURN_IF_ERROR_CTX(dataset_->GetSample(index, augment ? raw.data() : row, label, target),
                        "while loading epoch ", position.epoch, " batch ", position.batch);
    if (augment) {
      const int64_t c_count = sample_shape[0], h = sample_shape[1], w = sample_shape[2];
      Rng rng(MixSeeds({o.seed, kAugmentTag, static_cast<uint64_t>(position.epoch),
                        static_cast<uint64_t>(index)}));
      const int64_t pad = o.crop_padding;
      // The crop window's top-left corner in padded coordinates, minus pad.
      const int64_t dy = pad > 0 ? static_cast<int64_t>(rng.Below(2 * pad + 1)) - pad : 0;
      const int64_t dx = pad > 0 ? static_cast<int64_t>(rng.Below(2 * pad + 1)) - pad : 0;
      const bool flip = o.horizontal_flip && (rng.Next() >> 63) != 0;
      for (int64_t c = 0; c < c_count; ++c) {
        for (int64_t y = 0; y < h; ++y) {
          const int64_t sy = y + dy;
          float* out = row + (c * h + y) * w;
          if (sy < 0 || sy >= h) {
            std::fill(out, out + w, 0.0f);
            continue;
          }
          const float* in = raw.data() + (c * h + sy) * w;
          for (int64_t x = 0; x < w; ++x) {
            const int64_t sx = (flip ? w - 1 - x : x) + dx;
            out[x] = sx >= 0 && sx < w ? in[sx] : 0.0f;
          }
        }
      }
    }
    if (!o.mean.empty()) {
      for (int64_t c = 0; c < channels; ++c) {
        const float mean = o.mean.size() == 1 ? o.mean[0] : o.mean[c];
        const float inv_std = 1.0f / (o.std.size() == 1 ? o.std[0] : o.std[c]);
        float* p = row + c * per_channel;
        for (int64_t j = 0; j < per_channel; ++j) p[j] = (p[j] - mean) * inv_std;
      }
    }
  }
  return batch;
}

absl::StatusOr<Batch> DataLoader::Next() {
  if (options_.prefetch_batches == 0) {
    if (!failure_.ok()) return failure_;
    absl::StatusOr<Batch> batch = Build(position_, &sync_indices_, &sync_indices_epoch_);
    if (!batch.ok()) {
      failure_ = batch.status();
      return failure_;
    }
    position_ = Advance(position_);
    return batch;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (!failure_.ok()) return failure_;
  if (!thread_.joinable()) StartThreadLocked();
  not_empty_.wait(lock, [&] { return !queue_.empty(); });
  absl::StatusOr<Batch> batch = std::move(queue_.front());
  queue_.pop_front();
  not_full_.notify_one();
  if (!batch.ok()) {
    failure_ = batch.status();
    return failure_;
  }
  if (batch->position != position_)
    return absl::InternalError(absl::StrCat("DataLoader: prefetched batch (", batch->position.epoch,
                                            ", ", batch->position.batch, ") where (",
                                            position_.epoch, ", ", position_.batch, ") was due"));
  position_ = Advance(position_);
  return batch;
}

LoaderPosition DataLoader::position() const { return position_; }

absl::Status DataLoader::Seek(LoaderPosition position) {
  if (position.epoch < 0 || position.batch < 0 || position.batch > batches_per_epoch_)
    return absl::InvalidArgumentError(absl::StrCat(
        "DataLoader for ", dataset_->name(), ": cannot seek to epoch ", position.epoch, " batch ",
        position.batch, "; an epoch has ", batches_per_epoch_,
        " batches (did the batch size, world size or dataset change since the checkpoint?)"));
  if (position.batch == batches_per_epoch_) position = {position.epoch + 1, 0};
  StopThread();
  std::lock_guard<std::mutex> lock(mutex_);
  position_ = position;
  failure_ = absl::OkStatus();
  return absl::OkStatus();
}

void DataLoader::StopPrefetch() { StopThread(); }

void DataLoader::StartThreadLocked() {
  stopping_ = false;
  thread_ = std::thread(&DataLoader::ProducerLoop, this, position_);
}

void DataLoader::StopThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  not_full_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.clear();
  stopping_ = false;
}

void DataLoader::ProducerLoop(LoaderPosition start) {
  std::vector<int64_t> indices;
  int64_t indices_epoch = -1;
  const size_t depth = static_cast<size_t>(options_.prefetch_batches);
  for (LoaderPosition p = start;; p = Advance(p)) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      not_full_.wait(lock, [&] { return stopping_ || queue_.size() < depth; });
      if (stopping_) return;
    }
    absl::StatusOr<Batch> batch = absl::InternalError("unset");
    try {
      batch = Build(p, &indices, &indices_epoch);
    } catch (const std::bad_alloc&) {
      batch = absl::ResourceExhaustedError(absl::StrCat("DataLoader for ", dataset_->name(),
                                                        ": out of memory assembling epoch ",
                                                        p.epoch, " batch ", p.batch));
    }
    const bool ok = batch.ok();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      queue_.push_back(std::move(batch));
    }
    not_empty_.notify_one();
    // After an error the consumer holds it until Seek(); nothing more to make.
    if (!ok) return;
  }
}

}  // namespace lasgd::data
