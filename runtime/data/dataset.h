// Datasets for the trainer: N samples, each a float32 input of a fixed shape
// (e.g. [C,H,W] or [features]) and either an int64 class label or a float32
// regression target.
//
// Readers load a whole dataset into memory (MNIST-sized to CIFAR-sized data
// fits easily), so sample access is a memcpy and needs no locking; the
// abstract `Dataset` leaves room for lazy sources (ImageFolder JPEG) later.
//
// A dataset is named by a spec string, the form users type on the command
// line:
//
//   idx:PREFIX            PREFIX-images-idx3-ubyte[.gz] + PREFIX-labels-idx1-ubyte[.gz]
//                         (MNIST, Fashion-MNIST, KMNIST, ...): [1,28,28] in [0,1]
//   cifar:DIR             CIFAR-10 (data_batch_1..5.bin, test_batch.bin) or
//                         CIFAR-100 (train.bin, test.bin; fine labels) binary
//                         version: [3,32,32] in [0,1]
//   npz:FILE              NumPy .npz with arrays `x` [N,...] and `y` [N] (integer
//                         labels) or [N,...] (float targets); stored or deflated
//   synthetic             a seeded, learnable classification problem
//
// followed by optional `,key=value` options:
//
//   limit=N               keep only the first N samples (any scheme)
//   split=train|test      which split (cifar, synthetic; default: the caller's)
//   labels=fine|coarse    CIFAR-100 label set (default fine)
//   x=NAME,y=NAME         NPZ array names (default x and y), e.g. x=x_train,y=y_train
//   n=, classes=, shape=, seed=, noise=
//                         synthetic: size (default 4096 train, 1024 test), class
//                         count (10), sample shape such as 3x32x32 or 64 (32), seed
//                         of the class means (0), noise standard deviation (1.0)
//
// e.g. "idx:/usr/share/datasets/fashion-mnist/train",
//      "cifar:/data/cifar-10-batches-bin,split=test",
//      "synthetic:n=2048,classes=4,shape=1x8x8,seed=3".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/tensor.h"

namespace lasgd::data {

enum class Split { kTrain, kTest };

enum class TargetType {
  kLabel,  // one int64 class index per sample
  kFloat,  // a float32 tensor of target_shape() per sample
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  // Shape of one input, without the batch dimension.
  virtual const Shape& sample_shape() const = 0;
  virtual TargetType target_type() const = 0;
  // Shape of one float target ({} for labels).
  virtual const Shape& target_shape() const = 0;
  // The class count the source implies (10 for MNIST and CIFAR-10, max label + 1
  // for NPZ); 0 for float targets.
  virtual int64_t num_classes() const = 0;
  // Where the data came from ("idx:/path/train"); errors and logs use it.
  virtual const std::string& name() const = 0;

  // Copies sample `index` into `input` (NumElements(sample_shape()) floats)
  // and its target into `label` (kLabel) or `target`
  // (NumElements(target_shape()) floats, kFloat); the pointer for the other
  // kind may be null. Safe to call from several threads at once.
  virtual absl::Status GetSample(int64_t index, float* input, int64_t* label,
                                 float* target) const = 0;

  // Checks that every label lies in [0, num_classes): the model's output
  // width, which the trainer knows and the data does not. The error names the
  // dataset, the first bad sample and its label. OK for float targets.
  virtual absl::Status Validate(int64_t num_classes) const;

  int64_t sample_numel() const { return NumElements(sample_shape()); }
  int64_t target_numel() const { return NumElements(target_shape()); }
};

// A dataset held in two tensors: inputs float32 [N, sample...] and targets,
// int64 [N] (labels) or float32 [N, target...].
class TensorDataset : public Dataset {
 public:
  // `num_classes` 0 means "max label + 1" for labels. Fails on dtype or
  // sample-count mismatches and on negative labels.
  static absl::StatusOr<std::shared_ptr<TensorDataset>> Create(std::string name, Tensor inputs,
                                                               Tensor targets,
                                                               int64_t num_classes = 0);

  int64_t size() const override { return size_; }
  const Shape& sample_shape() const override { return sample_shape_; }
  TargetType target_type() const override { return target_type_; }
  const Shape& target_shape() const override { return target_shape_; }
  int64_t num_classes() const override { return num_classes_; }
  const std::string& name() const override { return name_; }
  absl::Status GetSample(int64_t index, float* input, int64_t* label, float* target) const override;
  absl::Status Validate(int64_t num_classes) const override;

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  TensorDataset() = default;
  std::string name_;
  Tensor inputs_, targets_;
  int64_t size_ = 0;
  Shape sample_shape_, target_shape_;
  TargetType target_type_ = TargetType::kLabel;
  int64_t num_classes_ = 0;
};

// ---- readers (each error names the file and what was expected) ----

// IDX pair PREFIX-images-idx3-ubyte[.gz] / PREFIX-labels-idx1-ubyte[.gz] (also
// the PREFIX-images.idx3-ubyte spelling); gzip is detected from the bytes, not
// the name.
absl::StatusOr<std::shared_ptr<TensorDataset>> ReadIdxDataset(const std::string& prefix);

enum class CifarLabels { kFine, kCoarse };
// CIFAR-10 or -100 binary version, recognised by the file names in `dir` (or
// in its cifar-10-batches-bin / cifar-100-binary subfolder).
absl::StatusOr<std::shared_ptr<TensorDataset>> ReadCifarDataset(
    const std::string& dir, Split split, CifarLabels labels = CifarLabels::kFine);

// `x` becomes float32 (uint8 is scaled to [0,1] as torchvision's ToTensor
// does; other dtypes keep their values). Integer `y` of shape [N] gives labels,
// float `y` [N,...] gives float targets.
absl::StatusOr<std::shared_ptr<TensorDataset>> ReadNpzDataset(const std::string& path,
                                                              const std::string& x_name = "x",
                                                              const std::string& y_name = "y");

struct SyntheticOptions {
  int64_t num_samples = 4096;
  int64_t num_classes = 10;
  Shape sample_shape = {32};
  // Seeds the class means, shared by both splits, so a model trained on the
  // train split is tested on the same problem.
  uint64_t seed = 0;
  // Standard deviation of the per-element noise around the class mean; the
  // means have standard deviation 1, so 1.0 makes a learnable but not trivial
  // problem in a few dozen dimensions.
  float noise = 1.0f;
  Split split = Split::kTrain;
};
// Sample i has label i % num_classes and input mean[label] + noise * N(0,1),
// drawn from a portable generator: the same bytes on every platform.
absl::StatusOr<std::shared_ptr<TensorDataset>> MakeSyntheticDataset(
    const SyntheticOptions& options);

// Parses a spec string (grammar above) and loads the dataset. `default_split`
// applies where the spec names none (cifar, synthetic; idx and npz name their
// files directly).
absl::StatusOr<std::shared_ptr<Dataset>> OpenDataset(absl::string_view spec,
                                                     Split default_split = Split::kTrain);

// The first `count` samples of `base` as a dataset of their own.
std::shared_ptr<Dataset> TakeFirst(std::shared_ptr<const Dataset> base, int64_t count);

// Per-channel (dim 0 of the sample shape) mean and standard deviation over the
// whole dataset, for DataLoaderOptions::mean/std.
struct ChannelStats {
  std::vector<float> mean, std;
};
absl::StatusOr<ChannelStats> ComputeChannelStats(const Dataset& dataset);

}  // namespace lasgd::data
