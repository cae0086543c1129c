// The data-parallel algorithms over the real MPI communicator (ctest runs
// this under mpirun with 2 and 4 ranks). sync must train like one process
// with the ranks' batches concatenated (every rank computes that reference
// itself); lasgd, local and sgp must end with the same model on every rank.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "importers/onnx_importer.h"
#include "runtime/data/npz.h"
#include "tests/mpi/mpi_test_env.h"
#include "tests/unit/data_parallel_test_util.h"

namespace lasgd {
namespace {

const std::string kFixtures = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/";
constexpr int64_t kBatch = 4;

runtime::TrainConfig Config(const std::string& fixture, const std::string& algorithm) {
  runtime::TrainConfig c;
  c.model.path = kFixtures + fixture + "/model.onnx";
  c.optimizer.type = "sgd";
  c.optimizer.lr = 0.0625;
  c.optimizer.momentum = 0.9;
  c.optimizer.weight_decay = 5e-4;
  c.distributed.algorithm = algorithm;
  c.distributed.segment_steps = 3;
  c.distributed.bucket_mb = 0.002;
  return c;
}

double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-12;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

// Trains `steps` steps; with `comm` on this rank's slice of each global
// batch, without it on the whole global batch of `ranks` slices.
std::vector<float> Train(const runtime::TrainConfig& config, int steps, int ranks,
                         distributed::Communicator* comm) {
  auto forward = importers::LoadOnnxModel(config.model.path);
  EXPECT_TRUE(forward.ok()) << forward.status();
  const std::string dir = config.model.path.substr(0, config.model.path.rfind('/'));
  auto data = data::ReadNpz(dir + "/data.npz");
  EXPECT_TRUE(data.ok()) << data.status();
  if (!data.ok()) return {};
  const int64_t batch = comm ? kBatch : kBatch * ranks;
  auto model = testing::BuildRank(*forward, config, batch, comm, comm != nullptr);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  if (comm) EXPECT_TRUE((*model)->dp->BroadcastModel().ok());
  for (int s = 0; s < steps; ++s) {
    const int64_t begin = (static_cast<int64_t>(s) * ranks + (comm ? comm->rank() : 0)) * kBatch;
    absl::Status st =
        (*model)->Step(testing::Rows(data->at("x"), begin, batch),
                       testing::Rows(data->at("y"), begin, batch), config.optimizer.lr);
    EXPECT_TRUE(st.ok()) << st;
  }
  if (comm) {
    absl::Status st = (*model)->dp->Finish();
    EXPECT_TRUE(st.ok()) << st;
  }
  return (*model)->Flat();
}

// Rank 0's vector, on every rank.
std::vector<float> FromRankZero(std::vector<float> v) {
  EXPECT_TRUE(TestCommunicator().Broadcast(v.data(), v.size() * sizeof(float), 0).ok());
  return v;
}

TEST(MpiSyncEquivalence, MatchesOneProcessWithTheConcatenatedBatch) {
  distributed::Communicator& comm = TestCommunicator();
  runtime::TrainConfig config = Config("mlp", "sync");
  std::vector<float> mine = Train(config, 10, comm.size(), &comm);
  std::vector<float> big = Train(config, 10, comm.size(), nullptr);
  std::vector<float> initial = Train(config, 0, comm.size(), nullptr);
  ASSERT_EQ(mine.size(), big.size());
  ASSERT_GT(RelativeError(big, initial), 1e-2);
  EXPECT_LT(RelativeError(mine, big), 1e-5);
  EXPECT_EQ(mine, FromRankZero(mine));
}

class MpiAlgorithms : public ::testing::TestWithParam<std::string> {};

TEST_P(MpiAlgorithms, EveryRankEndsWithTheSameModel) {
  distributed::Communicator& comm = TestCommunicator();
  for (const char* fixture : {"mlp", "cnn_op17"}) {
    // "lasgd:when_ready" = algorithm lasgd with apply = when_ready.
    const std::string param = GetParam();
    runtime::TrainConfig config = Config(fixture, param.substr(0, param.find(':')));
    if (param.find(':') != std::string::npos)
      config.distributed.apply = param.substr(param.find(':') + 1);
    std::vector<float> mine = Train(config, 7, comm.size(), &comm);
    std::vector<float> initial = Train(config, 0, comm.size(), nullptr);
    ASSERT_FALSE(mine.empty());
    EXPECT_GT(RelativeError(mine, initial), 1e-3) << fixture << ": the model did not move";
    EXPECT_EQ(mine, FromRankZero(mine)) << fixture << " on rank " << comm.rank();
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, MpiAlgorithms,
                         ::testing::Values("lasgd", "lasgd:when_ready", "local", "sgp", "sync"));

}  // namespace
}  // namespace lasgd
