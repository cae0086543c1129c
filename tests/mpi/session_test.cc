// TrainingSession under real MPI (ctest runs this with 2 and with 4 ranks):
// for every algorithm, a short run on the BN CNN fixture ends with the same
// parameters and BN statistics on every rank, bit for bit (the final blocking
// average), and the model rank 0 evaluates learned something.
// Ranks train different shards, so before the final average their models
// differ; a Finish() that did not average would fail the comparison (the
// control case below shows that it can).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/session.h"
#include "tests/mpi/mpi_test_env.h"

namespace lasgd {
namespace {

using runtime::TrainConfig;
using runtime::TrainingSession;

const std::string kFixture = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/cnn_op17";

TrainConfig MakeConfig(const std::string& algorithm, const std::string& out_dir) {
  TrainConfig c;
  c.model.path = kFixture + "/model.onnx";
  c.data.train = "synthetic:n=256,classes=10,shape=3x8x8,seed=3";
  c.data.test = "synthetic:n=128,classes=10,shape=3x8x8,seed=3,split=test";
  c.data.batch_size = 8;
  c.data.seed = 11;
  c.optimizer.type = "sgd";
  c.optimizer.lr = 0.05;
  c.optimizer.momentum = 0.9;
  c.train.epochs = 2;
  c.train.threads = 1;
  c.train.out_dir = out_dir;
  c.train.progress = false;
  c.train.log_every_steps = 1000;
  c.train.checkpoint_every_epochs = 0;
  c.distributed.algorithm = algorithm;
  c.distributed.segment_steps = 3;  // 256 / ranks / 8 steps per epoch is not a multiple of 3
  return c;
}

// Every rank's state, compared with rank 0's: the number of tensors that
// differ on any rank.
int CountTensorsDifferentFromRankZero(const std::map<std::string, Tensor>& state) {
  distributed::Communicator& comm = TestCommunicator();
  int different = 0;
  for (const auto& [name, t] : state) {
    std::vector<char> root(t.nbytes());
    std::memcpy(root.data(), t.raw_data(), t.nbytes());
    EXPECT_TRUE(comm.Broadcast(root.data(), root.size(), 0).ok());
    float mismatch = std::memcmp(root.data(), t.raw_data(), t.nbytes()) != 0 ? 1.f : 0.f;
    EXPECT_TRUE(comm.AllReduce(&mismatch, 1, distributed::ReduceOp::kSum).ok());
    if (mismatch > 0) ++different;
  }
  return different;
}

class SessionUnderMpi : public ::testing::TestWithParam<std::string> {};

TEST_P(SessionUnderMpi, EveryRankEndsWithTheSameModel) {
  distributed::Communicator& comm = TestCommunicator();
  const std::string algorithm = GetParam();
  const std::string out_dir =
      absl::StrCat(LASGD_BINARY_DIR, "/mpi_session/", algorithm, "-np", comm.size());
  TrainConfig config = MakeConfig(algorithm, out_dir);
  auto session = TrainingSession::Create(config, &comm);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->rank(), comm.rank());
  EXPECT_EQ((*session)->world_size(), comm.size());
  // Each rank reads its own shard: 256 / size / 8 steps per epoch.
  EXPECT_EQ((*session)->steps_per_epoch(), 256 / comm.size() / 8);

  // Before training the ranks' parameters are equal (same file); take a
  // step on each rank's own shard and they differ (except under sync, whose
  // step averages gradients).
  FILE* quiet = std::fopen("/dev/null", "w");
  absl::Status trained = (*session)->Train(quiet);
  std::fclose(quiet);
  ASSERT_TRUE(trained.ok()) << trained;

  // Parameters and BN statistics; optimizer state (momentum) stays local.
  std::map<std::string, Tensor> model = (*session)->State();
  for (const std::string& name : (*session)->program().optimizer_state) model.erase(name);
  ASSERT_GE(model.size(), 8u);
  EXPECT_EQ(CountTensorsDifferentFromRankZero(model), 0)
      << algorithm << ": ranks disagree after the final average";
  // Rank 0 evaluated the trained model; the synthetic classes are easy.
  if (comm.rank() == 0) {
    EXPECT_GT((*session)->last_eval().top1, 0.5) << algorithm;
    std::ifstream metrics(out_dir + "/metrics.jsonl");
    EXPECT_TRUE(metrics.good()) << "rank 0 wrote no metrics";
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, SessionUnderMpi,
                         ::testing::Values("lasgd", "sync", "local", "sgp"),
                         [](const auto& info) { return info.param; });

// [distributed] average_optimizer_state: the momentum buffers, which each
// rank fills from its own shard's gradients, end equal on every rank only when
// they are averaged with the weights; the weights agree either way.
class OptimizerStateUnderMpi : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimizerStateUnderMpi, AveragedWithTheWeightsOnlyWhenAsked) {
  distributed::Communicator& comm = TestCommunicator();
  const std::string algorithm = GetParam();
  for (bool averaged : {false, true}) {
    const std::string out_dir = absl::StrCat(LASGD_BINARY_DIR, "/mpi_session/", algorithm, "-state",
                                             averaged, "-np", comm.size());
    TrainConfig config = MakeConfig(algorithm, out_dir);
    config.distributed.average_optimizer_state = averaged;
    auto session = TrainingSession::Create(config, &comm);
    ASSERT_TRUE(session.ok()) << session.status();
    FILE* quiet = std::fopen("/dev/null", "w");
    absl::Status trained = (*session)->Train(quiet);
    std::fclose(quiet);
    ASSERT_TRUE(trained.ok()) << trained;
    std::map<std::string, Tensor> all = (*session)->State(), state, model;
    for (const auto& [name, t] : all) {
      const auto& names = (*session)->program().optimizer_state;
      (std::find(names.begin(), names.end(), name) != names.end() ? state : model)[name] = t;
    }
    ASSERT_GE(state.size(), 8u) << "one momentum buffer per parameter";
    const int different = CountTensorsDifferentFromRankZero(state);
    if (averaged) {
      EXPECT_EQ(different, 0) << algorithm << ": momentum differs after the final average";
    } else {
      EXPECT_GT(different, 0) << algorithm << ": momentum agrees without being averaged";
    }
    EXPECT_EQ(CountTensorsDifferentFromRankZero(model), 0) << algorithm;
    if (comm.rank() == 0) EXPECT_GT((*session)->last_eval().top1, 0.5) << algorithm;
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, OptimizerStateUnderMpi, ::testing::Values("lasgd", "local"),
                         [](const auto& info) { return info.param; });

// The per-rank shards differ, so without averaging the ranks drift apart:
// the comparison above can fail.
TEST(SessionUnderMpiControl, RanksTrainingAloneDisagree) {
  distributed::Communicator& comm = TestCommunicator();
  const std::string out_dir =
      absl::StrCat(LASGD_BINARY_DIR, "/mpi_session/alone-np", comm.size(), "-rank", comm.rank());
  TrainConfig config = MakeConfig("none", out_dir);
  config.data.train = absl::StrCat("synthetic:n=64,classes=10,shape=3x8x8,seed=", comm.rank() + 3);
  config.data.test = "";
  auto session = TrainingSession::Create(config);  // no communicator: trains alone
  ASSERT_TRUE(session.ok()) << session.status();
  FILE* quiet = std::fopen("/dev/null", "w");
  ASSERT_TRUE((*session)->Train(quiet).ok());
  std::fclose(quiet);
  std::map<std::string, Tensor> model = (*session)->State();
  for (const std::string& name : (*session)->program().optimizer_state) model.erase(name);
  EXPECT_GT(CountTensorsDifferentFromRankZero(model), 0);
}

}  // namespace
}  // namespace lasgd
