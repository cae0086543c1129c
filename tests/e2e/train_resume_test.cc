// Exact resume: 2 epochs straight and 1 epoch + checkpoint + a NEW session
// that restores it + 1 more epoch must leave bit-identical parameters, BN
// statistics and optimizer state. The data are shuffled (a different order
// each epoch) and the learning rate halves every epoch, so a resume that lost
// the data position, the step counter or the optimizer state would differ.
// Uses the small CNN of tests/fixtures/train/cnn_op17 and its 80-sample
// data (10 batches of 8 per epoch), on 2 threads.
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "runtime/session.h"
#include "tests/e2e/fixture_util.h"

namespace lasgd {
namespace {

using runtime::TrainConfig;
using runtime::TrainingSession;

const std::string kFixture = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/cnn_op17";
const std::string kWork = std::string(LASGD_BINARY_DIR) + "/train_resume";

TrainConfig MakeConfig(const std::string& optimizer, const std::string& out_dir, int64_t epochs) {
  TrainConfig c;
  c.model.path = kFixture + "/model.onnx";
  c.data.train = "npz:" + kFixture + "/data.npz";
  c.data.batch_size = 8;
  c.data.shuffle = true;
  c.data.seed = 7;
  c.optimizer.type = optimizer;
  if (optimizer == "sgd") {
    c.optimizer.lr = 0.05;
    c.optimizer.momentum = 0.9;
    c.optimizer.weight_decay = 5e-4;
  } else {
    c.optimizer.lr = 0.01;
    c.optimizer.weight_decay = 0.01;
  }
  c.schedule.type = "step";  // the learning rate depends on the restored step
  c.schedule.step_size = 1;
  c.schedule.gamma = 0.5;
  c.train.epochs = epochs;
  c.train.threads = 2;
  c.train.bn_running_var = "unbiased";
  c.train.out_dir = out_dir;
  c.train.checkpoint_every_epochs = 0;
  c.train.progress = false;
  c.train.log_every_steps = 0;
  testing::RunCommand("rm -rf " + testing::ShellQuote(out_dir));
  return c;
}

using Snapshot = std::map<std::string, Tensor>;

Snapshot Copy(const std::map<std::string, Tensor>& state) {
  Snapshot s;
  for (const auto& [name, t] : state) s[name] = t.Clone();
  return s;
}

// Every tensor byte for byte; returns how many differ.
int CountDifferent(const Snapshot& want, const Snapshot& got, const std::string& what) {
  EXPECT_EQ(want.size(), got.size()) << what;
  int different = 0;
  for (const auto& [name, t] : want) {
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << what << ": '" << name << "' is missing";
      ++different;
      continue;
    }
    if (t.nbytes() != it->second.nbytes() ||
        std::memcmp(t.raw_data(), it->second.raw_data(), t.nbytes()) != 0)
      ++different;
  }
  return different;
}

absl::StatusOr<Snapshot> TrainStraight(const std::string& optimizer) {
  TrainConfig config = MakeConfig(optimizer, kWork + "/" + optimizer + "_straight", 2);
  ASSIGN_OR_RETURN(auto session, TrainingSession::Create(config));
  RETURN_IF_ERROR(session->Train(stdout));
  if (session->step() != 2 * session->steps_per_epoch())
    return absl::InternalError(absl::StrCat("straight run stopped at step ", session->step()));
  return Copy(session->State());
}

// Epoch 1 in one session with an end-of-epoch checkpoint, then a new session
// with train.resume = "auto" in the same folder, as a restarted job does.
TEST(TrainResume, AutoResumeAfterOneEpochIsBitIdenticalSgd) {
  auto straight = TrainStraight("sgd");
  ASSERT_TRUE(straight.ok()) << straight.status();

  const std::string dir = kWork + "/sgd_split";
  TrainConfig first = MakeConfig("sgd", dir, 1);
  first.train.checkpoint_every_epochs = 1;
  {
    auto session = TrainingSession::Create(first);
    ASSERT_TRUE(session.ok()) << session.status();
    absl::Status trained = (*session)->Train(stdout);
    ASSERT_TRUE(trained.ok()) << trained;
    ASSERT_EQ((*session)->step(), (*session)->steps_per_epoch());
    // One epoch is not two: the comparison below is not trivially equal.
    EXPECT_GT(CountDifferent(*straight, Copy((*session)->State()), "after 1 epoch"), 0);
  }
  TrainConfig second = first;  // MakeConfig would clear the folder
  second.train.epochs = 2;
  second.train.resume = "auto";
  auto session = TrainingSession::Create(second);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::Status trained = (*session)->Train(stdout);
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_EQ((*session)->step(), 2 * (*session)->steps_per_epoch());
  EXPECT_EQ(CountDifferent(*straight, Copy((*session)->State()), "resumed"), 0)
      << "2 epochs straight and 1 + checkpoint + 1 differ";
}

// The same through the API: SaveCheckpoint, then RestoreCheckpoint into a
// new session; AdamW's bias correction depends on the restored step.
TEST(TrainResume, SaveAndRestoreIntoNewSessionIsBitIdenticalAdamW) {
  auto straight = TrainStraight("adamw");
  ASSERT_TRUE(straight.ok()) << straight.status();

  const std::string dir = kWork + "/adamw_split";
  const std::string ckpt = dir + "/epoch1.ckpt";
  {
    auto session = TrainingSession::Create(MakeConfig("adamw", dir, 1));
    ASSERT_TRUE(session.ok()) << session.status();
    absl::Status trained = (*session)->Train(stdout);
    ASSERT_TRUE(trained.ok()) << trained;
    absl::Status saved = (*session)->SaveCheckpoint(ckpt);
    ASSERT_TRUE(saved.ok()) << saved;
  }
  TrainConfig config = MakeConfig("adamw", dir + "_2", 2);
  auto session = TrainingSession::Create(config);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::Status restored = (*session)->RestoreCheckpoint(ckpt);
  ASSERT_TRUE(restored.ok()) << restored;
  EXPECT_EQ((*session)->step(), (*session)->steps_per_epoch());
  absl::Status trained = (*session)->Train(stdout);
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_EQ((*session)->step(), 2 * (*session)->steps_per_epoch());
  EXPECT_EQ(CountDifferent(*straight, Copy((*session)->State()), "restored"), 0)
      << "2 epochs straight and 1 + SaveCheckpoint + RestoreCheckpoint + 1 differ";
}

// The bit-for-bit comparison sees the data order: the same two epochs with
// another shuffle seed end elsewhere, and a rerun of the same ones does not.
TEST(TrainResume, ComparisonIsSensitiveToTheDataOrder) {
  auto straight = TrainStraight("sgd");
  ASSERT_TRUE(straight.ok()) << straight.status();
  auto again = TrainStraight("sgd");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(CountDifferent(*straight, *again, "rerun"), 0) << "training is not deterministic";

  TrainConfig config = MakeConfig("sgd", kWork + "/sgd_other_seed", 2);
  config.data.seed = 8;
  auto session = TrainingSession::Create(config);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::Status trained = (*session)->Train(stdout);
  ASSERT_TRUE(trained.ok()) << trained;
  EXPECT_GT(CountDifferent(*straight, Copy((*session)->State()), "other seed"), 0);
}

// ---- training-mode Dropout ----
//
// The CNN of tests/fixtures/cnn_dropout_train_op17 (Dropout p=0.5 in training
// mode before its classifier; batch fixed at 3) on a synthetic 48-sample set.
// The masks come from a counter the checkpoint holds, so 1 epoch + resume +
// 1 epoch must equal 2 epochs bit for bit; with the counter reset after the
// restore (a resume that lost it, or a generator that restarts with the
// process) the masks repeat epoch 1's and the result differs.

const std::string kDropoutModel =
    std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/cnn_dropout_train_op17/model.onnx";
const char kCounter[] = "train/dropout_counter";

TrainConfig DropoutConfig(const std::string& out_dir, int64_t epochs, int64_t accumulate) {
  TrainConfig c = MakeConfig("sgd", out_dir, epochs);
  c.model.path = kDropoutModel;
  c.data.train = "synthetic:n=48,classes=10,shape=3x16x16,seed=3";
  c.data.batch_size = 3;
  c.train.accumulate = accumulate;
  return c;
}

void CheckDropoutResume(int64_t accumulate) {
  const std::string tag = absl::StrCat("dropout_k", accumulate);
  Snapshot straight;
  int64_t runs_per_epoch = 0;
  {
    auto session =
        TrainingSession::Create(DropoutConfig(kWork + "/" + tag + "_straight", 2, accumulate));
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_EQ((*session)->program().rng_counter, kCounter) << "no training-mode Dropout found";
    absl::Status trained = (*session)->Train(stdout);
    ASSERT_TRUE(trained.ok()) << trained;
    straight = Copy((*session)->State());
    // One count per run of a program: K per optimizer step.
    runs_per_epoch = (*session)->steps_per_epoch() * accumulate;
    EXPECT_EQ(straight.at(kCounter).data<int64_t>()[0], 2 * runs_per_epoch);
  }
  const std::string dir = kWork + "/" + tag + "_split";
  const std::string ckpt = dir + "/epoch1.ckpt";
  {
    auto session = TrainingSession::Create(DropoutConfig(dir, 1, accumulate));
    ASSERT_TRUE(session.ok()) << session.status();
    absl::Status trained = (*session)->Train(stdout);
    ASSERT_TRUE(trained.ok()) << trained;
    ASSERT_TRUE((*session)->SaveCheckpoint(ckpt).ok());
    EXPECT_GT(CountDifferent(straight, Copy((*session)->State()), "after 1 epoch"), 0);
  }
  for (bool lose_counter : {false, true}) {
    SCOPED_TRACE(lose_counter ? "counter reset after restore" : "counter restored");
    auto session = TrainingSession::Create(
        DropoutConfig(dir + (lose_counter ? "_lost" : "_2"), 2, accumulate));
    ASSERT_TRUE(session.ok()) << session.status();
    absl::Status restored = (*session)->RestoreCheckpoint(ckpt);
    ASSERT_TRUE(restored.ok()) << restored;
    Tensor counter = (*session)->State().at(kCounter);
    EXPECT_EQ(counter.data<int64_t>()[0], runs_per_epoch);
    if (lose_counter) counter.data<int64_t>()[0] = 0;
    absl::Status trained = (*session)->Train(stdout);
    ASSERT_TRUE(trained.ok()) << trained;
    int different = CountDifferent(straight, Copy((*session)->State()), "resumed");
    if (lose_counter) {
      EXPECT_GT(different, 0) << "epoch 1's masks again: the comparison cannot see Dropout";
    } else {
      EXPECT_EQ(different, 0) << "2 epochs straight and 1 + checkpoint + 1 differ with Dropout";
    }
  }
}

TEST(TrainResume, DropoutModelResumesBitIdentically) { CheckDropoutResume(1); }

TEST(TrainResume, DropoutModelWithAccumulationResumesBitIdentically) { CheckDropoutResume(2); }

}  // namespace
}  // namespace lasgd
