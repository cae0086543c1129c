// Gradient accumulation (train.accumulate = K): K micro-batches of b samples
// make one optimizer step whose gradient is the mean of the K micro-batch
// gradients, as PyTorch's `(loss / K).backward()` K times then `step()`.
//
// - On a model without BatchNorm (the MLP of tests/fixtures/train/mlp) that
//   is the same step as one batch of K*b: parameters and optimizer state
//   must agree to 1e-5 relative, for SGD (momentum, weight decay, gradient
//   clipping) and AdamW, through Train() and through Step().
// - Against PyTorch's own accumulation (tests/fixtures/accumulate_reference.py,
//   run at test time when torch imports) on the MLP and on the BatchNorm CNN,
//   where the running statistics move on every micro-batch: 1e-4 relative,
//   as the other parity tests.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "runtime/data/data_loader.h"
#include "runtime/data/dataset.h"
#include "runtime/data/npz.h"
#include "runtime/session.h"
#include "tests/e2e/fixture_util.h"

namespace lasgd {
namespace {

using runtime::TrainConfig;
using runtime::TrainingSession;

const std::string kFixtures = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train";
const std::string kScript =
    std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/accumulate_reference.py";
const std::string kWork = std::string(LASGD_BINARY_DIR) + "/train_accumulate";

// The MLP fixture's hyperparameters (meta.txt); powers of two for lr.
TrainConfig MakeConfig(const std::string& fixture, const std::string& optimizer, int64_t batch_size,
                       int64_t accumulate, const std::string& out_dir) {
  TrainConfig c;
  c.model.path = kFixtures + "/" + fixture + "/model.onnx";
  c.data.train = "npz:" + kFixtures + "/" + fixture + "/data.npz";
  c.data.batch_size = batch_size;
  c.data.shuffle = false;
  c.optimizer.type = optimizer;
  if (optimizer == "sgd") {
    c.optimizer.lr = 0.0625;
    c.optimizer.momentum = 0.9;
    c.optimizer.weight_decay = 0.0005;
  } else {
    c.optimizer.lr = 0.0078125;
    c.optimizer.weight_decay = 0.01;
  }
  c.train.accumulate = accumulate;
  c.train.bn_running_var = "unbiased";
  c.train.threads = 2;
  c.train.out_dir = out_dir;
  c.train.checkpoint_every_epochs = 0;
  c.train.eval_every_epochs = 0;
  c.train.progress = false;
  c.train.log_every_steps = 0;
  return c;
}

double ScaleRelativeError(const Tensor& got, const Tensor& want) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    diff = std::max(diff, std::fabs(got.GetAsDouble(i) - want.GetAsDouble(i)));
    scale = std::max(scale, std::fabs(want.GetAsDouble(i)));
  }
  return diff / std::max(scale, 1e-30);
}

// The largest error over every tensor of `want`; fails on a missing one.
double WorstError(const std::map<std::string, Tensor>& got,
                  const std::map<std::string, Tensor>& want, std::string* worst_name) {
  double worst = 0;
  for (const auto& [name, t] : want) {
    if (name.rfind("__", 0) == 0) continue;
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << "'" << name << "' is missing";
      return INFINITY;
    }
    EXPECT_EQ(it->second.shape(), t.shape()) << name;
    if (it->second.shape() != t.shape()) return INFINITY;
    double err = ScaleRelativeError(it->second, t);
    if (err >= worst) {
      worst = err;
      *worst_name = name;
    }
  }
  return worst;
}

std::map<std::string, Tensor> Copy(const std::map<std::string, Tensor>& state) {
  std::map<std::string, Tensor> s;
  for (const auto& [name, t] : state) s[name] = t.Clone();
  return s;
}

absl::StatusOr<std::map<std::string, Tensor>> TrainSteps(TrainConfig config, int64_t steps) {
  config.train.steps = steps;
  testing::RunCommand("rm -rf " + testing::ShellQuote(config.train.out_dir));
  ASSIGN_OR_RETURN(auto session, TrainingSession::Create(config));
  RETURN_IF_ERROR(session->Train(stdout));
  if (session->step() != steps)
    return absl::InternalError(absl::StrCat("stopped at step ", session->step()));
  return Copy(session->State());
}

struct Case {
  std::string optimizer;
  double clip = 0;
};

class AccumulateVsLargeBatch : public ::testing::TestWithParam<Case> {};

// 2 steps of 4 micro-batches of 4 == 2 steps of batch 16 (40 samples).
TEST_P(AccumulateVsLargeBatch, SameParametersAndOptimizerState) {
  const Case& c = GetParam();
  const std::string tag = c.optimizer + (c.clip > 0 ? "_clip" : "");
  TrainConfig large = MakeConfig("mlp", c.optimizer, 16, 1, kWork + "/large_" + tag);
  TrainConfig micro = MakeConfig("mlp", c.optimizer, 4, 4, kWork + "/micro_" + tag);
  large.optimizer.clip_grad_norm = micro.optimizer.clip_grad_norm = c.clip;
  auto want = TrainSteps(large, 2);
  ASSERT_TRUE(want.ok()) << want.status();
  auto got = TrainSteps(micro, 2);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(want->size(), got->size()) << "the accumulators must not be training state";
  std::string worst_name;
  double worst = WorstError(*got, *want, &worst_name);
  std::printf("%s: 4 x 4 accumulated vs batch 16, 2 steps: max relative error %.3g (%s)\n",
              tag.c_str(), worst, worst_name.c_str());
  EXPECT_LE(worst, 1e-5);

  // Not trivially equal: 8 plain steps of 4 on the same samples end elsewhere.
  auto plain = TrainSteps(MakeConfig("mlp", c.optimizer, 4, 1, kWork + "/plain_" + tag), 8);
  ASSERT_TRUE(plain.ok()) << plain.status();
  double apart = WorstError(*plain, *want, &worst_name);
  std::printf("%s: 8 steps of 4 vs 2 steps of 16: %.3g apart\n", tag.c_str(), apart);
  EXPECT_GT(apart, 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, AccumulateVsLargeBatch,
                         ::testing::Values(Case{"sgd"}, Case{"adamw"}, Case{"sgd", 0.05}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.optimizer + (info.param.clip > 0 ? "_clip" : "");
                         });

// Step() takes one optimizer step's samples and returns the mean loss of its
// micro-batches: the loss of the whole batch for a mean loss.
TEST(Accumulate, StepReturnsTheLossOfTheWholeBatch) {
  auto large = TrainingSession::Create(MakeConfig("mlp", "sgd", 16, 1, kWork + "/step_large"));
  ASSERT_TRUE(large.ok()) << large.status();
  auto micro = TrainingSession::Create(MakeConfig("mlp", "sgd", 4, 4, kWork + "/step_micro"));
  ASSERT_TRUE(micro.ok()) << micro.status();
  EXPECT_EQ((*micro)->steps_per_epoch(), 2);  // 40 samples: 2 steps of 16, 8 left over
  auto dataset = data::OpenDataset("npz:" + kFixtures + "/mlp/data.npz");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  data::DataLoaderOptions lo;
  lo.batch_size = 16;
  lo.shuffle = false;
  lo.prefetch_batches = 0;
  auto loader = data::DataLoader::Create(*dataset, lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  for (int step = 0; step < 2; ++step) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    auto want = (*large)->Step(*batch);
    ASSERT_TRUE(want.ok()) << want.status();
    auto got = (*micro)->Step(*batch);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_NEAR(*got, *want, 1e-5 * std::fabs(*want)) << "step " << step;
  }
  EXPECT_EQ((*micro)->step(), 2);

  // A batch that is not K micro-batches is an error, not a silent step.
  lo.batch_size = 8;
  auto small = data::DataLoader::Create(*dataset, lo);
  ASSERT_TRUE(small.ok()) << small.status();
  auto batch = (*small)->Next();
  ASSERT_TRUE(batch.ok()) << batch.status();
  auto bad = (*micro)->Step(*batch);
  EXPECT_FALSE(bad.ok());
  if (!bad.ok()) {
    EXPECT_NE(std::string(bad.status().message()).find("micro-batches"), std::string::npos)
        << bad.status();
  }
  EXPECT_EQ((*micro)->step(), 2);
}

// A checkpoint written with one train.accumulate resumes with another at the
// same point of the epoch: the loader counts batches of K micro-batches, so
// the position and step count are carried over as the fraction of the epoch.
TEST(Accumulate, ResumeWithAnotherAccumulateKeepsTheEpoch) {
  const std::string dir = kWork + "/resume_other_k";
  testing::RunCommand("rm -rf " + testing::ShellQuote(dir));
  const std::string ckpt = dir + "/epoch1.ckpt";
  {
    TrainConfig c = MakeConfig("mlp", "sgd", 4, 4, dir + "/k4");
    c.train.epochs = 1;
    auto session = TrainingSession::Create(c);
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE((*session)->Train(stdout).ok());
    ASSERT_EQ((*session)->step(), 2);  // 40 samples: 2 steps of 16
    ASSERT_TRUE((*session)->SaveCheckpoint(ckpt).ok());
  }
  for (int64_t k : {1, 2, 4}) {
    TrainConfig c = MakeConfig("mlp", "sgd", 4, k, dir + absl::StrCat("/resume_k", k));
    c.train.epochs = 2;
    auto session = TrainingSession::Create(c);
    ASSERT_TRUE(session.ok()) << session.status();
    absl::Status restored = (*session)->RestoreCheckpoint(ckpt);
    ASSERT_TRUE(restored.ok()) << restored;
    EXPECT_EQ((*session)->step(), (*session)->steps_per_epoch()) << "k = " << k;
    ASSERT_TRUE((*session)->Train(stdout).ok());
    EXPECT_EQ((*session)->step(), 2 * (*session)->steps_per_epoch()) << "k = " << k;
  }
}

// ---- PyTorch ----

struct TorchCase {
  std::string fixture, kind, optimizer;
  int64_t micro, k, steps;
  std::string Tag() const { return absl::StrCat(fixture, "_", optimizer, "_", k, "x", micro); }
};

void PrintTo(const TorchCase& c, std::ostream* os) { *os << c.Tag(); }

const TorchCase kTorchCases[] = {{"mlp", "mlp", "sgd", 4, 4, 2},
                                 {"mlp", "mlp", "adamw", 4, 2, 4},
                                 {"cnn_op17", "cnn", "sgd", 8, 2, 4},
                                 {"cnn_op17", "cnn", "adamw", 4, 4, 3}};

class AccumulateVsPyTorch : public ::testing::TestWithParam<TorchCase> {
 protected:
  // One Python run writes every case's reference (importing torch is slow).
  static void SetUpTestSuite() {
    testing::CommandResult probe = testing::RunCommand("python3 -c 'import torch, onnx, numpy'");
    if (probe.exit_code != 0) {
      skip_reason_ = new std::string(probe.output);
      return;
    }
    std::string command = "python3 " + testing::ShellQuote(kScript);
    testing::RunCommand("rm -rf " + testing::ShellQuote(kWork + "/torch") + " && mkdir -p " +
                        testing::ShellQuote(kWork + "/torch"));
    for (const TorchCase& c : kTorchCases) {
      absl::StrAppend(&command, " ", c.kind, " ", testing::ShellQuote(kFixtures + "/" + c.fixture),
                      " ", c.optimizer, " ", c.k, " ", c.micro, " ", c.steps, " ",
                      testing::ShellQuote(ReferencePath(c)));
    }
    testing::CommandResult run = testing::RunCommand(command);
    if (run.exit_code != 0) script_error_ = new std::string(run.output);
  }
  static std::string ReferencePath(const TorchCase& c) {
    return kWork + "/torch/" + c.Tag() + ".npz";
  }
  static std::string* skip_reason_;
  static std::string* script_error_;
};
std::string* AccumulateVsPyTorch::skip_reason_ = nullptr;
std::string* AccumulateVsPyTorch::script_error_ = nullptr;

TEST_P(AccumulateVsPyTorch, MatchesPyTorchAccumulation) {
  const TorchCase& c = GetParam();
  if (skip_reason_) {
    GTEST_SKIP() << "SKIPPED: python3 cannot import torch, onnx and numpy (pip install torch "
                    "onnx numpy to compare with PyTorch): "
                 << *skip_reason_;
  }
  ASSERT_EQ(script_error_, nullptr) << kScript << " failed:\n" << *script_error_;
  auto want = data::ReadNpz(ReferencePath(c));
  ASSERT_TRUE(want.ok()) << want.status();

  auto session = TrainingSession::Create(
      MakeConfig(c.fixture, c.optimizer, c.micro, c.k, kWork + "/torch/" + c.Tag()));
  ASSERT_TRUE(session.ok()) << session.status();
  auto dataset = data::OpenDataset("npz:" + kFixtures + "/" + c.fixture + "/data.npz");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  data::DataLoaderOptions lo;
  lo.batch_size = c.micro * c.k;
  lo.shuffle = false;
  lo.prefetch_batches = 0;
  auto loader = data::DataLoader::Create(*dataset, lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  const Tensor& losses = want->at("__loss__");
  for (int64_t s = 0; s < c.steps; ++s) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    auto loss = (*session)->Step(*batch);
    ASSERT_TRUE(loss.ok()) << loss.status();
    EXPECT_NEAR(*loss, losses.GetAsDouble(s), 1e-4 * std::fabs(losses.GetAsDouble(s)))
        << "loss of step " << s + 1;
  }
  std::map<std::string, Tensor> state = (*session)->State();
  std::string worst_name;
  double worst = WorstError(state, *want, &worst_name);
  std::printf("%s: %lld steps of %lld x %lld vs PyTorch: max relative error %.3g (%s)\n",
              c.Tag().c_str(), static_cast<long long>(c.steps), static_cast<long long>(c.k),
              static_cast<long long>(c.micro), worst, worst_name.c_str());
  EXPECT_LE(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AccumulateVsPyTorch, ::testing::ValuesIn(kTorchCases),
                         [](const ::testing::TestParamInfo<TorchCase>& info) {
                           return info.param.Tag();
                         });

}  // namespace
}  // namespace lasgd
