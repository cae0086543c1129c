// DataLoader: batch layout, epoch-seeded shuffling, sharding, exact resume,
// prefetch thread under repeated start/stop, error propagation,
// augmentation and normalisation.
#include "runtime/data/data_loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/data/dataset.h"

namespace lasgd::data {
namespace {

#define EXPECT_CONTAINS(haystack, needle)                                         \
  do {                                                                            \
    const std::string h_ = (haystack), n_ = (needle);                             \
    EXPECT_NE(h_.find(n_), std::string::npos) << "'" << n_ << "' not in: " << h_; \
  } while (0)

// Sample i is filled with values i * 1000 + element index, label i % 7, so
// every element says where it came from.
std::shared_ptr<TensorDataset> IndexedDataset(int64_t n, Shape sample = {3}) {
  Shape shape = {n};
  shape.insert(shape.end(), sample.begin(), sample.end());
  Tensor x = Tensor::Allocate(DataType::kFloat32, shape);
  const int64_t numel = NumElements(sample);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < numel; ++j) x.data<float>()[i * numel + j] = i * 1000.0f + j;
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = i % 7;
  auto ds = TensorDataset::Create("indexed", x, Tensor::FromInt64s(labels, {n}));
  EXPECT_TRUE(ds.ok()) << ds.status();
  return *ds;
}

std::unique_ptr<DataLoader> MakeLoader(std::shared_ptr<const Dataset> ds, DataLoaderOptions o) {
  auto loader = DataLoader::Create(std::move(ds), o);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return loader.ok() ? std::move(*loader) : nullptr;
}

Batch NextOk(DataLoader& loader) {
  auto batch = loader.Next();
  EXPECT_TRUE(batch.ok()) << batch.status();
  return batch.ok() ? std::move(*batch) : Batch{};
}

bool SameBatch(const Batch& a, const Batch& b) {
  return a.position == b.position && a.sample_indices == b.sample_indices &&
         a.inputs.shape() == b.inputs.shape() && a.labels.shape() == b.labels.shape() &&
         std::memcmp(a.inputs.raw_data(), b.inputs.raw_data(), a.inputs.nbytes()) == 0 &&
         std::memcmp(a.labels.raw_data(), b.labels.raw_data(), a.labels.nbytes()) == 0;
}

TEST(DataLoader, BatchesCarryTheRightSamples) {
  auto ds = IndexedDataset(10);
  DataLoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  auto loader = MakeLoader(ds, o);
  ASSERT_NE(loader, nullptr);
  EXPECT_EQ(loader->batches_per_epoch(), 4);
  const int64_t sizes[] = {3, 3, 3, 1};
  for (int64_t b = 0; b < 4; ++b) {
    Batch batch = NextOk(*loader);
    EXPECT_EQ(batch.position, (LoaderPosition{0, b}));
    EXPECT_EQ(batch.last_in_epoch, b == 3);
    ASSERT_EQ(batch.inputs.shape(), (Shape{sizes[b], 3}));
    ASSERT_EQ(batch.labels.TypeString(), "int64[" + std::to_string(sizes[b]) + "]");
    for (int64_t k = 0; k < sizes[b]; ++k) {
      const int64_t i = b * 3 + k;
      EXPECT_EQ(batch.sample_indices[k], i);
      EXPECT_EQ(batch.labels.data<int64_t>()[k], i % 7);
      EXPECT_EQ(batch.inputs.data<float>()[k * 3 + 2], i * 1000.0f + 2);
    }
  }
  EXPECT_EQ(loader->position(), (LoaderPosition{1, 0}));
  EXPECT_EQ(NextOk(*loader).sample_indices, (std::vector<int64_t>{0, 1, 2}));

  o.drop_last = true;
  auto dropping = MakeLoader(ds, o);
  EXPECT_EQ(dropping->batches_per_epoch(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(NextOk(*dropping).size(), 3);
  EXPECT_EQ(dropping->position(), (LoaderPosition{1, 0}));
}

TEST(DataLoader, FloatTargets) {
  Tensor x = Tensor::FromFloats({0, 1, 2, 3}, {4, 1});
  Tensor t = Tensor::FromFloats({0, 10, 1, 11, 2, 12, 3, 13}, {4, 2});
  auto ds = TensorDataset::Create("regression", x, t);
  ASSERT_TRUE(ds.ok());
  DataLoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  auto loader = MakeLoader(*ds, o);
  NextOk(*loader);
  Batch b = NextOk(*loader);
  EXPECT_EQ(b.labels.TypeString(), "float32[2,2]");
  EXPECT_EQ(b.labels.ToDoubleVector(), (std::vector<double>{2, 12, 3, 13}));
}

TEST(DataLoader, ShuffleIsAPureFunctionOfSeedAndEpoch) {
  auto ds = IndexedDataset(50);
  DataLoaderOptions o;
  o.batch_size = 8;
  o.seed = 42;
  auto a = MakeLoader(ds, o);
  auto b = MakeLoader(ds, o);
  // Out of order on b: the permutation of epoch 2 does not depend on history.
  std::vector<int64_t> b2 = b->EpochIndices(2);
  std::vector<int64_t> b0 = b->EpochIndices(0);
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> seen;
    for (int64_t i = 0; i < a->batches_per_epoch(); ++i) {
      Batch batch = NextOk(*a);
      seen.insert(seen.end(), batch.sample_indices.begin(), batch.sample_indices.end());
    }
    std::vector<int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(50);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all) << "epoch " << e << " is not a permutation";
    epochs.push_back(seen);
  }
  EXPECT_EQ(epochs[0], b0);
  EXPECT_EQ(epochs[2], b2);
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  std::vector<int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(epochs[0], identity);
  o.seed = 43;
  EXPECT_NE(MakeLoader(ds, o)->EpochIndices(0), epochs[0]);
  // Pinned values: the generator is our own, so these hold on every platform.
  // A change here silently changes every training run's data order.
  EXPECT_EQ(std::vector<int64_t>(epochs[0].begin(), epochs[0].begin() + 5),
            (std::vector<int64_t>{40, 35, 26, 49, 11}));
}

TEST(DataLoader, ShardsAreDisjointAndEqual) {
  auto ds = IndexedDataset(103);
  for (bool shuffle : {false, true}) {
    for (int64_t epoch : {0, 1, 5}) {
      std::set<int64_t> seen;
      std::vector<int64_t> batches;
      for (int rank = 0; rank < 4; ++rank) {
        DataLoaderOptions o;
        o.batch_size = 10;
        o.shuffle = shuffle;
        o.seed = 7;
        o.rank = rank;
        o.world_size = 4;
        o.prefetch_batches = rank % 2 ? 2 : 0;
        auto loader = MakeLoader(ds, o);
        ASSERT_EQ(loader->samples_per_rank(), 25);
        batches.push_back(loader->batches_per_epoch());
        ASSERT_TRUE(loader->Seek({epoch, 0}).ok());
        int64_t count = 0;
        for (int64_t b = 0; b < loader->batches_per_epoch(); ++b) {
          Batch batch = NextOk(*loader);
          EXPECT_EQ(batch.position.epoch, epoch);
          for (int64_t i : batch.sample_indices) {
            EXPECT_TRUE(seen.insert(i).second) << "sample " << i << " on two ranks";
            ++count;
          }
        }
        EXPECT_EQ(count, 25);
      }
      EXPECT_EQ(seen.size(), 100u);
      EXPECT_EQ(std::set<int64_t>(batches.begin(), batches.end()).size(), 1u)
          << "ranks disagree on the number of batches";
    }
  }
}

TEST(DataLoader, ResumeFromPositionReplaysExactly) {
  auto ds = IndexedDataset(37, {2, 4, 4});
  DataLoaderOptions o;
  o.batch_size = 5;
  o.seed = 3;
  o.crop_padding = 1;
  o.horizontal_flip = true;
  o.mean = {100.0f, 200.0f};
  o.std = {2.0f, 4.0f};
  o.rank = 1;
  o.world_size = 2;
  auto original = MakeLoader(ds, o);
  // 18 samples per rank: batches of 5,5,5,3.
  for (int i = 0; i < 6; ++i) NextOk(*original);
  const LoaderPosition saved = original->position();
  EXPECT_EQ(saved, (LoaderPosition{1, 2}));
  std::vector<Batch> expected;
  for (int i = 0; i < 9; ++i) expected.push_back(NextOk(*original));
  for (int prefetch : {0, 1, 3}) {
    DataLoaderOptions r = o;
    r.prefetch_batches = prefetch;
    auto resumed = MakeLoader(ds, r);
    NextOk(*resumed);  // some history that the seek must override
    ASSERT_TRUE(resumed->Seek(saved).ok());
    EXPECT_EQ(resumed->position(), saved);
    for (const Batch& want : expected)
      EXPECT_TRUE(SameBatch(NextOk(*resumed), want)) << "prefetch " << prefetch;
  }
  // The end of an epoch is the start of the next.
  ASSERT_TRUE(original->Seek({2, original->batches_per_epoch()}).ok());
  EXPECT_EQ(original->position(), (LoaderPosition{3, 0}));
  absl::Status bad = original->Seek({0, 5});
  EXPECT_FALSE(bad.ok());
  EXPECT_CONTAINS(std::string(bad.message()), "an epoch has 4 batches");
}

TEST(DataLoader, PrefetchSurvivesRepeatedStartStop) {
  auto ds = IndexedDataset(64, {1, 4, 4});
  DataLoaderOptions o;
  o.batch_size = 6;
  o.seed = 9;
  o.horizontal_flip = true;
  DataLoaderOptions sync = o;
  sync.prefetch_batches = 0;
  auto reference = MakeLoader(ds, sync);
  for (int round = 0; round < 40; ++round) {
    o.prefetch_batches = 1 + round % 4;
    auto loader = MakeLoader(ds, o);
    LoaderPosition start{round % 3, (round * 5) % reference->batches_per_epoch()};
    ASSERT_TRUE(loader->Seek(start).ok());
    ASSERT_TRUE(reference->Seek(start).ok());
    for (int i = 0; i < round % 7; ++i) {
      EXPECT_TRUE(SameBatch(NextOk(*loader), NextOk(*reference))) << "round " << round;
      if (i % 3 == 2) loader->StopPrefetch();
    }
    if (round % 2) {
      // Seek while the producer is likely blocked on a full queue.
      ASSERT_TRUE(loader->Seek({0, 1}).ok());
      ASSERT_TRUE(reference->Seek({0, 1}).ok());
      EXPECT_TRUE(SameBatch(NextOk(*loader), NextOk(*reference)));
    }
    // Destroyed here with the producer running or blocked: must join cleanly.
  }
}

// Fails on one sample, like a corrupt JPEG in a lazy dataset would.
class FailingDataset : public Dataset {
 public:
  FailingDataset(std::shared_ptr<TensorDataset> base, int64_t bad)
      : base_(std::move(base)), bad_(bad) {}
  int64_t size() const override { return base_->size(); }
  const Shape& sample_shape() const override { return base_->sample_shape(); }
  TargetType target_type() const override { return base_->target_type(); }
  const Shape& target_shape() const override { return base_->target_shape(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  const std::string& name() const override { return base_->name(); }
  absl::Status GetSample(int64_t i, float* x, int64_t* label, float* target) const override {
    if (i == bad_) return absl::DataLossError("sample 7 is unreadable");
    return base_->GetSample(i, x, label, target);
  }

 private:
  std::shared_ptr<TensorDataset> base_;
  int64_t bad_;
};

TEST(DataLoader, ErrorsReachTheConsumer) {
  auto ds = std::make_shared<FailingDataset>(IndexedDataset(20), 7);
  for (int prefetch : {0, 2}) {
    DataLoaderOptions o;
    o.batch_size = 4;
    o.shuffle = false;
    o.prefetch_batches = prefetch;
    auto loader = MakeLoader(ds, o);
    NextOk(*loader);
    auto failed = loader->Next();  // samples 4..7
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_CONTAINS(std::string(failed.status().message()), "epoch 0 batch 1");
    EXPECT_CONTAINS(std::string(failed.status().message()), "sample 7 is unreadable");
    EXPECT_FALSE(loader->Next().ok()) << "the error must stay until Seek";
    EXPECT_EQ(loader->position(), (LoaderPosition{0, 1}));
    ASSERT_TRUE(loader->Seek({0, 2}).ok());
    EXPECT_EQ(NextOk(*loader).sample_indices, (std::vector<int64_t>{8, 9, 10, 11}));
  }
  // The loader can validate the labels it will feed a 5-class model.
  absl::Status s = ds->Validate(5);
  EXPECT_FALSE(s.ok());
}

TEST(DataLoader, AugmentationIsDeterministicAndWellFormed) {
  const int64_t n = 40, h = 5, w = 6;
  auto ds = IndexedDataset(n, {2, h, w});
  DataLoaderOptions o;
  o.batch_size = 8;
  o.seed = 5;
  o.crop_padding = 2;
  o.horizontal_flip = true;
  o.prefetch_batches = 0;
  DataLoaderOptions other_order = o;
  other_order.shuffle = false;
  other_order.batch_size = 5;
  other_order.prefetch_batches = 2;
  auto a = MakeLoader(ds, o);
  auto b = MakeLoader(ds, other_order);
  // Augmented sample i of epoch e, whatever batch it lands in.
  auto collect = [&](DataLoader& loader, int64_t epoch) {
    std::vector<std::vector<float>> out(n);
    EXPECT_TRUE(loader.Seek({epoch, 0}).ok());
    for (int64_t bi = 0; bi < loader.batches_per_epoch(); ++bi) {
      Batch batch = NextOk(loader);
      const float* x = batch.inputs.data<float>();
      for (int64_t k = 0; k < batch.size(); ++k)
        out[batch.sample_indices[k]].assign(x + k * 2 * h * w, x + (k + 1) * 2 * h * w);
    }
    return out;
  };
  auto a1 = collect(*a, 1);
  EXPECT_EQ(a1, collect(*b, 1)) << "augmentation depends on batch composition";
  EXPECT_NE(a1, collect(*a, 2)) << "augmentation does not change between epochs";

  // Each output is the source shifted by one (dy, dx) for the whole sample,
  // zero outside, possibly mirrored; count the transformations seen.
  int flips = 0, shifts = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool found = false;
    for (int flip = 0; flip < 2 && !found; ++flip) {
      for (int64_t dy = -2; dy <= 2 && !found; ++dy) {
        for (int64_t dx = -2; dx <= 2 && !found; ++dx) {
          bool match = true;
          for (int64_t c = 0; c < 2 && match; ++c)
            for (int64_t y = 0; y < h && match; ++y)
              for (int64_t x = 0; x < w && match; ++x) {
                const int64_t sy = y + dy, sx = (flip ? w - 1 - x : x) + dx;
                const float want = sy >= 0 && sy < h && sx >= 0 && sx < w
                                       ? i * 1000.0f + (c * h + sy) * w + sx
                                       : 0.0f;
                match = a1[i][(c * h + y) * w + x] == want;
              }
          if (match) {
            found = true;
            flips += flip;
            shifts += dy != 0 || dx != 0;
          }
        }
      }
    }
    EXPECT_TRUE(found) << "sample " << i << " is not a padded crop (+ flip) of its source";
  }
  EXPECT_GT(flips, 5);
  EXPECT_LT(flips, 35);
  EXPECT_GT(shifts, 20);
}

TEST(DataLoader, NormalisesPerChannel) {
  auto ds = IndexedDataset(4, {2, 1, 2});
  DataLoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  o.mean = {1000.0f, 0.0f};
  o.std = {2.0f, 10.0f};
  auto loader = MakeLoader(ds, o);
  Batch b = NextOk(*loader);
  const float* x = b.inputs.data<float>();
  // Sample 1: channel 0 holds 1000, 1001; channel 1 holds 1002, 1003.
  EXPECT_FLOAT_EQ(x[4 + 0], 0.0f);
  EXPECT_FLOAT_EQ(x[4 + 1], 0.5f);
  EXPECT_FLOAT_EQ(x[4 + 2], 100.2f);
  EXPECT_FLOAT_EQ(x[4 + 3], 100.3f);
}

TEST(DataLoader, BadOptionsAreExplained) {
  auto flat = IndexedDataset(10);
  auto image = IndexedDataset(10, {3, 2, 2});
  struct Case {
    std::shared_ptr<const Dataset> ds;
    DataLoaderOptions o;
    std::string expected;
  };
  std::vector<Case> cases;
  auto add = [&](std::shared_ptr<const Dataset> ds, auto edit, std::string expected) {
    DataLoaderOptions o;
    edit(o);
    cases.push_back({ds, o, expected});
  };
  add(
      flat, [](DataLoaderOptions& o) { o.batch_size = 0; }, "batch_size 0 must be positive");
  add(
      flat, [](DataLoaderOptions& o) { o.rank = 2, o.world_size = 2; }, "rank 2 of world size 2");
  add(
      image,
      [](DataLoaderOptions& o) {
        o.mean = {0, 0}, o.std = {1, 1};
      },
      "2 normalisation values for samples of shape [3,2,2]; expected 1 or 3");
  add(
      image, [](DataLoaderOptions& o) { o.mean = {0}, o.std = {0}; },
      "normalisation std 0 must be positive");
  add(
      flat, [](DataLoaderOptions& o) { o.horizontal_flip = true; },
      "random crop and flip need [C,H,W] samples, got [3]");
  add(
      flat, [](DataLoaderOptions& o) { o.batch_size = 6, o.world_size = 2, o.drop_last = true; },
      "each rank's 5 samples per epoch make no full batch of 6");
  add(
      flat, [](DataLoaderOptions& o) { o.world_size = 11; }, "10 samples cannot be shared by 11");
  for (const Case& c : cases) {
    auto loader = DataLoader::Create(c.ds, c.o);
    ASSERT_FALSE(loader.ok()) << c.expected;
    EXPECT_CONTAINS(std::string(loader.status().message()), c.expected);
    EXPECT_CONTAINS(std::string(loader.status().message()), "indexed");
  }
}

TEST(DataLoader, TrainsFromSpecEndToEnd) {
  // The path the trainer takes: spec -> dataset -> validate -> loader.
  auto ds = OpenDataset("synthetic:n=300,classes=3,shape=1x6x6,seed=4");
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_TRUE((*ds)->Validate(3).ok());
  auto stats = ComputeChannelStats(**ds);
  ASSERT_TRUE(stats.ok());
  DataLoaderOptions o;
  o.batch_size = 32;
  o.drop_last = true;
  o.mean = stats->mean;
  o.std = stats->std;
  o.crop_padding = 1;
  o.horizontal_flip = true;
  auto loader = MakeLoader(*ds, o);
  EXPECT_EQ(loader->batches_per_epoch(), 9);
  double sum = 0, sumsq = 0;
  int64_t count = 0;
  for (int i = 0; i < 9; ++i) {
    Batch b = NextOk(*loader);
    ASSERT_EQ(b.inputs.shape(), (Shape{32, 1, 6, 6}));
    for (int64_t j = 0; j < b.inputs.num_elements(); ++j) {
      sum += b.inputs.data<float>()[j];
      sumsq += b.inputs.data<float>()[j] * b.inputs.data<float>()[j];
      ++count;
    }
  }
  // Normalised data has mean ~0 and std ~1 (padding zeros pull it a little).
  EXPECT_NEAR(sum / count, 0.0, 0.2);
  EXPECT_NEAR(std::sqrt(sumsq / count), 1.0, 0.2);
}

}  // namespace
}  // namespace lasgd::data
