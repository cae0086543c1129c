// Dataset basics, the synthetic dataset and the spec-string parser; the file
// readers live in readers.cc.
#include "runtime/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "runtime/data/random.h"

namespace lasgd::data {

absl::Status Dataset::Validate(int64_t num_classes) const {
  if (target_type() != TargetType::kLabel) return absl::OkStatus();
  std::vector<float> scratch(static_cast<size_t>(sample_numel()));
  for (int64_t i = 0; i < size(); ++i) {
    int64_t label = 0;
    RETURN_IF_ERROR(GetSample(i, scratch.data(), &label, nullptr));
    if (label < 0 || label >= num_classes)
      return absl::InvalidArgumentError(
          absl::StrCat(name(), ": sample ", i, " has label ", label, ", outside [0, ", num_classes,
                       ") for a model with ", num_classes, " classes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<TensorDataset>> TensorDataset::Create(std::string name,
                                                                     Tensor inputs, Tensor targets,
                                                                     int64_t num_classes) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", why));
  };
  if (inputs.dtype() != DataType::kFloat32 || inputs.rank() < 1)
    return bad(absl::StrCat("inputs must be float32 [N, ...], got ", inputs.TypeString()));
  int64_t n = inputs.dim(0);
  if (targets.rank() < 1 || targets.dim(0) != n)
    return bad(absl::StrCat("inputs hold ", n, " samples but targets are ", targets.TypeString()));
  std::shared_ptr<TensorDataset> ds(new TensorDataset());
  ds->name_ = std::move(name);
  ds->size_ = n;
  ds->sample_shape_.assign(inputs.shape().begin() + 1, inputs.shape().end());
  if (targets.dtype() == DataType::kInt64) {
    if (targets.rank() != 1)
      return bad(absl::StrCat("int64 labels must have shape [N], got ", targets.TypeString()));
    ds->target_type_ = TargetType::kLabel;
    const int64_t* labels = targets.data<int64_t>();
    int64_t max_label = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (labels[i] < 0 || (num_classes > 0 && labels[i] >= num_classes))
        return bad(absl::StrCat("sample ", i, " has label ", labels[i], ", outside [0, ",
                                num_classes > 0 ? absl::StrCat(num_classes) : "inf", ")"));
      max_label = std::max(max_label, labels[i]);
    }
    ds->num_classes_ = num_classes > 0 ? num_classes : max_label + 1;
  } else if (targets.dtype() == DataType::kFloat32) {
    ds->target_type_ = TargetType::kFloat;
    ds->target_shape_.assign(targets.shape().begin() + 1, targets.shape().end());
    ds->num_classes_ = 0;
  } else {
    return bad(
        absl::StrCat("targets must be int64 labels or float32 values, got ", targets.TypeString()));
  }
  ds->inputs_ = std::move(inputs);
  ds->targets_ = std::move(targets);
  return ds;
}

absl::Status TensorDataset::GetSample(int64_t index, float* input, int64_t* label,
                                      float* target) const {
  if (index < 0 || index >= size_)
    return absl::OutOfRangeError(
        absl::StrCat(name_, ": sample ", index, " out of range [0, ", size_, ")"));
  int64_t numel = sample_numel();
  std::memcpy(input, inputs_.data<float>() + index * numel, sizeof(float) * numel);
  if (target_type_ == TargetType::kLabel) {
    if (label) *label = targets_.data<int64_t>()[index];
  } else if (target) {
    int64_t tn = target_numel();
    std::memcpy(target, targets_.data<float>() + index * tn, sizeof(float) * tn);
  }
  return absl::OkStatus();
}

absl::Status TensorDataset::Validate(int64_t num_classes) const {
  if (target_type_ != TargetType::kLabel) return absl::OkStatus();
  const int64_t* labels = targets_.data<int64_t>();
  for (int64_t i = 0; i < size_; ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes)
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ": sample ", i, " has label ", labels[i], ", outside [0, ", num_classes,
          ") for a model with ", num_classes, " classes (the data has ", num_classes_, ")"));
  }
  return absl::OkStatus();
}

// ---- synthetic ----

absl::StatusOr<std::shared_ptr<TensorDataset>> MakeSyntheticDataset(
    const SyntheticOptions& options) {
  if (options.num_samples < 1 || options.num_classes < 1)
    return absl::InvalidArgumentError(absl::StrCat("synthetic: n (", options.num_samples,
                                                   ") and classes (", options.num_classes,
                                                   ") must be positive"));
  for (int64_t d : options.sample_shape)
    if (d < 1)
      return absl::InvalidArgumentError(absl::StrCat("synthetic: sample shape ",
                                                     ShapeToString(options.sample_shape),
                                                     " must have positive dims"));
  if (!(options.noise >= 0))
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic: noise ", options.noise, " must be non-negative"));
  const int64_t n = options.num_samples, classes = options.num_classes;
  const int64_t d = NumElements(options.sample_shape);
  std::vector<float> means(static_cast<size_t>(classes * d));
  for (int64_t c = 0; c < classes; ++c) {
    Rng rng(MixSeeds({options.seed, 0x6d65616e /* "mean" */, static_cast<uint64_t>(c)}));
    for (int64_t j = 0; j < d; ++j) means[c * d + j] = static_cast<float>(rng.Normal());
  }
  Shape shape = {n};
  shape.insert(shape.end(), options.sample_shape.begin(), options.sample_shape.end());
  Tensor inputs = Tensor::Allocate(DataType::kFloat32, shape);
  Tensor labels = Tensor::Allocate(DataType::kInt64, {n});
  float* x = inputs.data<float>();
  int64_t* y = labels.data<int64_t>();
  const uint64_t split_tag = options.split == Split::kTrain ? 0x747261696e : 0x74657374;
  // One generator per sample: deterministic whatever the thread count.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(MixSeeds({options.seed, split_tag, static_cast<uint64_t>(i)}));
    int64_t c = i % classes;
    y[i] = c;
    for (int64_t j = 0; j < d; ++j)
      x[i * d + j] = means[c * d + j] + options.noise * static_cast<float>(rng.Normal());
  }
  std::string name = absl::StrCat("synthetic:n=", n, ",classes=", classes,
                                  ",shape=", absl::StrJoin(options.sample_shape, "x"),
                                  ",seed=", options.seed, ",noise=", options.noise,
                                  ",split=", options.split == Split::kTrain ? "train" : "test");
  return TensorDataset::Create(std::move(name), std::move(inputs), std::move(labels), classes);
}

// ---- subsets ----

namespace {

class PrefixDataset : public Dataset {
 public:
  PrefixDataset(std::shared_ptr<const Dataset> base, int64_t count)
      : base_(std::move(base)),
        count_(std::min(count, base_->size())),
        name_(absl::StrCat(base_->name(), ",limit=", count)) {}
  int64_t size() const override { return count_; }
  const Shape& sample_shape() const override { return base_->sample_shape(); }
  TargetType target_type() const override { return base_->target_type(); }
  const Shape& target_shape() const override { return base_->target_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  const std::string& name() const override { return name_; }
  absl::Status GetSample(int64_t index, float* input, int64_t* label,
                         float* target) const override {
    if (index < 0 || index >= count_)
      return absl::OutOfRangeError(
          absl::StrCat(name_, ": sample ", index, " out of range [0, ", count_, ")"));
    return base_->GetSample(index, input, label, target);
  }

 private:
  std::shared_ptr<const Dataset> base_;
  int64_t count_;
  std::string name_;
};

}  // namespace

std::shared_ptr<Dataset> TakeFirst(std::shared_ptr<const Dataset> base, int64_t count) {
  return std::make_shared<PrefixDataset>(std::move(base), std::max<int64_t>(count, 0));
}

absl::StatusOr<ChannelStats> ComputeChannelStats(const Dataset& dataset) {
  const Shape& shape = dataset.sample_shape();
  int64_t channels = shape.empty() ? 1 : shape[0];
  int64_t numel = dataset.sample_numel();
  int64_t per_channel = channels > 0 ? numel / channels : 0;
  std::vector<double> sum(channels, 0.0), sumsq(channels, 0.0);
  std::vector<float> x(static_cast<size_t>(numel));
  std::vector<float> target(static_cast<size_t>(std::max<int64_t>(dataset.target_numel(), 1)));
  for (int64_t i = 0; i < dataset.size(); ++i) {
    int64_t label;
    RETURN_IF_ERROR(dataset.GetSample(i, x.data(), &label, target.data()));
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t j = 0; j < per_channel; ++j) {
        double v = x[c * per_channel + j];
        sum[c] += v;
        sumsq[c] += v * v;
      }
    }
  }
  double count = static_cast<double>(dataset.size()) * per_channel;
  if (count == 0)
    return absl::InvalidArgumentError(absl::StrCat(dataset.name(), ": no data for statistics"));
  ChannelStats stats;
  for (int64_t c = 0; c < channels; ++c) {
    double mean = sum[c] / count;
    double var = std::max(0.0, sumsq[c] / count - mean * mean);
    stats.mean.push_back(static_cast<float>(mean));
    stats.std.push_back(static_cast<float>(std::sqrt(var)));
  }
  return stats;
}

// ---- spec strings ----

namespace {

constexpr char kKnownSchemes[] =
    "idx:PREFIX, cifar:DIR, npz:FILE, synthetic[:n=N,classes=K,shape=AxBxC,seed=S,noise=F]";

absl::Status SpecError(absl::string_view spec, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("dataset spec '", spec, "': ", why));
}

absl::StatusOr<int64_t> ParseCount(absl::string_view spec, const std::string& key,
                                   const std::string& value) {
  int64_t v;
  if (!absl::SimpleAtoi(value, &v) || v < 1)
    return SpecError(spec, absl::StrCat(key, "=", value, " is not a positive integer"));
  return v;
}

}  // namespace

absl::StatusOr<std::shared_ptr<Dataset>> OpenDataset(absl::string_view spec, Split default_split) {
  size_t colon = spec.find(':');
  std::string scheme(spec.substr(0, colon));
  std::string rest(colon == absl::string_view::npos ? "" : spec.substr(colon + 1));
  std::vector<std::string> parts;
  if (!rest.empty()) parts = absl::StrSplit(rest, ',');

  std::map<std::string, std::vector<std::string>> allowed = {
      {"idx", {"limit"}},
      {"cifar", {"limit", "split", "labels"}},
      {"npz", {"limit", "x", "y"}},
      {"synthetic", {"limit", "split", "n", "classes", "shape", "seed", "noise"}},
  };
  auto known = allowed.find(scheme);
  if (known == allowed.end())
    return SpecError(spec, absl::StrCat("unknown scheme '", scheme, "'; known: ", kKnownSchemes));

  std::string path;
  size_t first_option = 0;
  if (scheme != "synthetic") {
    if (parts.empty() || parts[0].empty())
      return SpecError(spec, absl::StrCat("'", scheme, ":' needs a ",
                                          scheme == "idx"     ? "file prefix (idx:DIR/train)"
                                          : scheme == "cifar" ? "directory (cifar:DIR)"
                                                              : "file (npz:FILE)"));
    path = parts[0];
    first_option = 1;
  }
  std::map<std::string, std::string> options;
  for (size_t i = first_option; i < parts.size(); ++i) {
    size_t eq = parts[i].find('=');
    std::string key = parts[i].substr(0, eq);
    const auto& keys = known->second;
    if (eq == std::string::npos || std::find(keys.begin(), keys.end(), key) == keys.end())
      return SpecError(spec, absl::StrCat("unknown option '", parts[i], "' for ", scheme,
                                          "; known: ", absl::StrJoin(keys, "=, "), "="));
    options[key] = parts[i].substr(eq + 1);
  }
  auto option = [&](const std::string& key, const std::string& fallback) {
    auto it = options.find(key);
    return it == options.end() ? fallback : it->second;
  };

  Split split = default_split;
  if (options.count("split")) {
    if (options["split"] == "train") {
      split = Split::kTrain;
    } else if (options["split"] == "test") {
      split = Split::kTest;
    } else {
      return SpecError(spec, absl::StrCat("split=", options["split"], ": expected train or test"));
    }
  }

  std::shared_ptr<Dataset> dataset;
  if (scheme == "idx") {
    ASSIGN_OR_RETURN(dataset, ReadIdxDataset(path));
  } else if (scheme == "cifar") {
    std::string labels = option("labels", "fine");
    if (labels != "fine" && labels != "coarse")
      return SpecError(spec, absl::StrCat("labels=", labels, ": expected fine or coarse"));
    ASSIGN_OR_RETURN(
        dataset, ReadCifarDataset(path, split,
                                  labels == "fine" ? CifarLabels::kFine : CifarLabels::kCoarse));
  } else if (scheme == "npz") {
    ASSIGN_OR_RETURN(dataset, ReadNpzDataset(path, option("x", "x"), option("y", "y")));
  } else {
    SyntheticOptions synthetic;
    synthetic.split = split;
    if (options.count("n")) {
      ASSIGN_OR_RETURN(synthetic.num_samples, ParseCount(spec, "n", options["n"]));
    } else if (split == Split::kTest) {
      synthetic.num_samples = 1024;
    }
    if (options.count("classes")) {
      ASSIGN_OR_RETURN(synthetic.num_classes, ParseCount(spec, "classes", options["classes"]));
    }
    if (options.count("shape")) {
      synthetic.sample_shape.clear();
      for (absl::string_view dim : absl::StrSplit(options["shape"], 'x')) {
        ASSIGN_OR_RETURN(int64_t d, ParseCount(spec, "shape", std::string(dim)));
        synthetic.sample_shape.push_back(d);
      }
    }
    if (options.count("seed") && !absl::SimpleAtoi(options["seed"], &synthetic.seed))
      return SpecError(spec, absl::StrCat("seed=", options["seed"], " is not an integer"));
    if (options.count("noise") && !absl::SimpleAtof(options["noise"], &synthetic.noise))
      return SpecError(spec, absl::StrCat("noise=", options["noise"], " is not a number"));
    ASSIGN_OR_RETURN(dataset, MakeSyntheticDataset(synthetic));
  }
  if (options.count("limit")) {
    ASSIGN_OR_RETURN(int64_t limit, ParseCount(spec, "limit", options["limit"]));
    dataset = TakeFirst(std::move(dataset), limit);
  }
  return dataset;
}

}  // namespace lasgd::data
