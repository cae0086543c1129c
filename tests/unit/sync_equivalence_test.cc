// Synchronous SGD on N ranks (the in-process communicator, one thread per
// rank) must train exactly like one process whose batch is the N ranks'
// batches concatenated: every rank applies the mean of N per-rank mean
// gradients, which is the mean gradient of the big batch. The MLP fixture has
// no BatchNorm, whose batch statistics would legitimately differ.
// LASGD's synchronous warm-up is the same All-Reduce, so during warm-up lasgd
// must match too, and leave the ranks apart once it ends.
#include <cmath>
#include <thread>

#include "distributed/inprocess_communicator.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/data/npz.h"
#include "tests/unit/data_parallel_test_util.h"

namespace lasgd {
namespace {

using testing::BuildRank;
using testing::RankModel;
using testing::Rows;

const std::string kMlp = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/mlp";
constexpr int64_t kBatch = 4;  // per rank

runtime::TrainConfig MlpConfig(const std::string& optimizer) {
  runtime::TrainConfig c;
  c.model.path = kMlp + "/model.onnx";
  c.optimizer.type = optimizer;
  if (optimizer == "sgd") {
    c.optimizer.lr = 0.0625;
    c.optimizer.momentum = 0.9;
    c.optimizer.weight_decay = 5e-4;
  } else {
    c.optimizer.lr = 0.0078125;
    c.optimizer.weight_decay = 0.01;
  }
  return c;
}

struct Data {
  Tensor x, y;
};

Data LoadData() {
  auto d = data::ReadNpz(kMlp + "/data.npz");
  EXPECT_TRUE(d.ok()) << d.status();
  return {d->at("x"), d->at("y")};
}

// Largest |a - b| over the largest |b|.
double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-12;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

// Trains `steps` steps on `ranks` threads; returns every rank's final
// parameters (flat, in the program's parameter order) after `after_each`.
std::vector<std::vector<float>> TrainRanks(const runtime::TrainConfig& config, int ranks, int steps,
                                           bool finish = true) {
  auto forward = importers::LoadOnnxModel(config.model.path);
  EXPECT_TRUE(forward.ok()) << forward.status();
  Data data = LoadData();
  distributed::CommOptions opts;
  opts.timeout_s = 60;
  auto comms = distributed::CreateInProcessGroup(ranks, opts);
  std::vector<std::vector<float>> result(ranks);
  std::vector<absl::Status> status(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      auto model = BuildRank(*forward, config, kBatch, comms[r].get());
      if (!model.ok()) {
        status[r] = model.status();
        return;
      }
      RankModel& m = **model;
      status[r] = m.dp->BroadcastModel();
      for (int s = 0; s < steps && status[r].ok(); ++s) {
        // Rank r takes the r-th quarter of the global batch of step s.
        const int64_t begin = (static_cast<int64_t>(s) * ranks + r) * kBatch;
        status[r] =
            m.Step(Rows(data.x, begin, kBatch), Rows(data.y, begin, kBatch), config.optimizer.lr);
      }
      if (status[r].ok() && finish) status[r] = m.dp->Finish();
      result[r] = m.Flat();
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < ranks; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  return result;
}

std::vector<float> TrainBigBatch(const runtime::TrainConfig& config, int ranks, int steps) {
  auto forward = importers::LoadOnnxModel(config.model.path);
  EXPECT_TRUE(forward.ok()) << forward.status();
  Data data = LoadData();
  auto model = BuildRank(*forward, config, kBatch * ranks, nullptr, /*with_data_parallel=*/false);
  EXPECT_TRUE(model.ok()) << model.status();
  for (int s = 0; s < steps; ++s) {
    const int64_t begin = static_cast<int64_t>(s) * ranks * kBatch;
    absl::Status st = (*model)->Step(Rows(data.x, begin, kBatch * ranks),
                                     Rows(data.y, begin, kBatch * ranks), config.optimizer.lr);
    EXPECT_TRUE(st.ok()) << st;
  }
  return (*model)->Flat();
}

class SyncEquivalence : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(SyncEquivalence, MatchesOneProcessWithTheConcatenatedBatch) {
  const auto [ranks, optimizer] = GetParam();
  runtime::TrainConfig config = MlpConfig(optimizer);
  config.distributed.algorithm = "sync";
  config.distributed.bucket_mb = 0.002;  // several buckets even for this small MLP
  constexpr int kSteps = 10;
  auto per_rank = TrainRanks(config, ranks, kSteps);
  std::vector<float> big = TrainBigBatch(config, ranks, kSteps);
  // The reference must have moved, or the comparison proves nothing.
  std::vector<float> initial = TrainBigBatch(config, ranks, 0);
  ASSERT_GT(RelativeError(big, initial), 1e-2);
  for (int r = 0; r < ranks; ++r) {
    ASSERT_EQ(per_rank[r].size(), big.size());
    EXPECT_LT(RelativeError(per_rank[r], big), 1e-5) << "rank " << r;
    // Every rank applies the same averaged gradients: identical bits.
    EXPECT_EQ(per_rank[r], per_rank[0]) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, SyncEquivalence,
                         ::testing::Combine(::testing::Values(2, 3, 4),
                                            ::testing::Values("sgd", "adamw")));

TEST(SyncEquivalence, LasgdWarmupIsSynchronousThenLocal) {
  runtime::TrainConfig config = MlpConfig("sgd");
  config.distributed.algorithm = "lasgd";
  config.distributed.segment_steps = 100;  // no average within the run
  config.distributed.warmup_steps = 6;
  config.distributed.bucket_mb = 0.002;
  const int ranks = 2;
  // During warm-up: exactly synchronous SGD.
  auto warm = TrainRanks(config, ranks, 6, /*finish=*/false);
  std::vector<float> big = TrainBigBatch(config, ranks, 6);
  for (int r = 0; r < ranks; ++r) EXPECT_LT(RelativeError(warm[r], big), 1e-5) << "rank " << r;
  // Two local steps after it: the ranks see different data and drift apart.
  auto after = TrainRanks(config, ranks, 8, /*finish=*/false);
  EXPECT_GT(RelativeError(after[0], after[1]), 1e-4);
}

TEST(SyncEquivalence, ZeroLearningRateKeepsModelsEqualAcrossAlgorithms) {
  // A guard on the harness itself: with lr = 0 nothing moves, under every
  // algorithm, and Finish leaves every rank with rank 0's model.
  for (const char* algorithm : {"sync", "lasgd", "local", "sgp"}) {
    runtime::TrainConfig config = MlpConfig("sgd");
    config.optimizer.lr = 0;
    config.optimizer.weight_decay = 0;
    config.distributed.algorithm = algorithm;
    config.distributed.segment_steps = 2;
    auto ranks = TrainRanks(config, 3, 5);
    std::vector<float> initial = TrainBigBatch(config, 1, 0);
    for (int r = 0; r < 3; ++r)
      EXPECT_LT(RelativeError(ranks[r], initial), 1e-6) << algorithm << " rank " << r;
  }
}

}  // namespace
}  // namespace lasgd
