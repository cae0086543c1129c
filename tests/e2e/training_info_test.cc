// ONNX's standard training: a model that carries a TrainingInfoProto trains
// as it is written (train.program = "training_info"). The models come from
// tests/fixtures/make_training_info_model.py (run here at test time; needs
// the onnx and numpy Python packages): linear regression whose algorithm
// graph computes an MSE loss, asks the ai.onnx.preview.training Gradient op
// for dL/dW and dL/dB (built by lasgd's autodiff), and updates W and B by
// hand-written SGD nodes or by the standard Momentum op with its velocities
// as algorithm state; an initialization graph sets W first. The trained
// parameters, optimizer state, iteration count and per-step losses must
// match NumPy's float64 computation of the same steps.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/config_parser.h"
#include "runtime/data/data_loader.h"
#include "runtime/data/dataset.h"
#include "runtime/data/npz.h"
#include "runtime/session.h"
#include "tests/e2e/fixture_util.h"

namespace lasgd {
namespace {

using runtime::TrainConfig;
using runtime::TrainingSession;

const std::string kScript =
    std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/make_training_info_model.py";
const std::string kWork = std::string(LASGD_BINARY_DIR) + "/training_info";
constexpr int64_t kBatch = 16;
constexpr int64_t kSteps = 6;

// Writes the fixture of `kind` into kWork/kind; "" on success, else why not.
std::string MakeFixture(const std::string& kind, bool* skipped) {
  *skipped = false;
  testing::CommandResult probe = testing::RunCommand("python3 -c 'import onnx, numpy'");
  if (probe.exit_code != 0) {
    *skipped = true;
    return probe.output;
  }
  testing::CommandResult run = testing::RunCommand(
      absl::StrCat("python3 ", testing::ShellQuote(kScript), " ",
                   testing::ShellQuote(kWork + "/" + kind), " ", kind, " ", kBatch, " ", kSteps));
  return run.exit_code == 0 ? "" : run.output;
}

// Written as a user would, through the TOML parser.
absl::StatusOr<TrainConfig> ConfigFor(const std::string& kind) {
  const std::string dir = kWork + "/" + kind;
  std::string toml = absl::StrCat(
      "[model]\npath = \"", dir, "/model.onnx\"\n", "[data]\ntrain = \"npz:", dir, "/data.npz\"\n",
      "batch_size = ", kBatch, "\nshuffle = false\n", "[loss]\ntype = \"mse\"\n",
      "[train]\nprogram = \"training_info\"\nepochs = 1\n", "out_dir = \"", dir,
      "/out\"\nprogress = false\n", "checkpoint_every_epochs = 0\nexport = \"trained.onnx\"\n");
  return runtime::ParseTrainConfig(toml, dir + "/train.toml");
}

double ScaleRelativeError(const Tensor& got, const Tensor& want) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    diff = std::max(diff, std::fabs(got.GetAsDouble(i) - want.GetAsDouble(i)));
    scale = std::max(scale, std::fabs(want.GetAsDouble(i)));
  }
  return diff / std::max(scale, 1e-30);
}

class TrainingInfo : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainingInfo, TrainsAsWrittenAndMatchesNumPy) {
  const std::string kind = GetParam();
  bool skipped = false;
  std::string error = MakeFixture(kind, &skipped);
  if (skipped) {
    GTEST_SKIP() << "SKIPPED: python3 cannot import onnx and numpy (tests/setup_python.sh "
                    "installs them): "
                 << error;
  }
  ASSERT_EQ(error, "") << kScript << " failed";
  auto config = ConfigFor(kind);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->train.program, "training_info");
  auto session = TrainingSession::Create(*config);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->program().loss, "loss");
  EXPECT_EQ((*session)->program().labels_input, "Y_true");
  EXPECT_EQ((*session)->steps_per_epoch(), kSteps);

  auto expected = data::ReadNpz(kWork + "/" + kind + "/expected.npz");
  ASSERT_TRUE(expected.ok()) << expected.status();
  // Per-step losses through Step(), on the batches Train() would take.
  auto dataset = data::OpenDataset("npz:" + kWork + "/" + kind + "/data.npz");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  data::DataLoaderOptions lo;
  lo.batch_size = kBatch;
  lo.shuffle = false;
  lo.prefetch_batches = 0;
  auto loader = data::DataLoader::Create(*dataset, lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  const Tensor& losses = expected->at("__loss__");
  for (int64_t s = 0; s < kSteps; ++s) {
    auto batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    auto loss = (*session)->Step(*batch);
    ASSERT_TRUE(loss.ok()) << loss.status();
    EXPECT_NEAR(*loss, losses.GetAsDouble(s), 1e-5 * losses.GetAsDouble(s)) << "step " << s;
  }
  std::map<std::string, Tensor> state = (*session)->State();
  for (const auto& [name, want] : *expected) {
    if (name == "__loss__") continue;
    auto it = state.find(name);
    ASSERT_NE(it, state.end()) << "'" << name << "' is not training state";
    ASSERT_EQ(it->second.shape(), want.shape()) << name;
    if (want.dtype() == DataType::kInt64) {
      EXPECT_EQ(it->second.GetAsDouble(0), want.GetAsDouble(0)) << name;
      continue;
    }
    double err = ScaleRelativeError(it->second, want);
    std::printf("%s: %s after %lld steps: relative error %.3g vs NumPy\n", kind.c_str(),
                name.c_str(), static_cast<long long>(kSteps), err);
    EXPECT_LE(err, 1e-5) << name;
  }
}

// Train() (what `lasgd-run train` runs) walks the same steps and exports the
// trained inference model: the model's own initializers, TrainingInfo gone.
TEST_P(TrainingInfo, TrainAndExport) {
  const std::string kind = GetParam();
  bool skipped = false;
  std::string error = MakeFixture(kind, &skipped);
  if (skipped) GTEST_SKIP() << "SKIPPED: python3 cannot import onnx and numpy: " << error;
  ASSERT_EQ(error, "") << kScript << " failed";
  auto config = ConfigFor(kind);
  ASSERT_TRUE(config.ok()) << config.status();
  testing::RunCommand("rm -rf " + testing::ShellQuote(config->train.out_dir));
  auto session = TrainingSession::Create(*config);
  ASSERT_TRUE(session.ok()) << session.status();
  absl::Status trained = (*session)->Train(stdout);
  ASSERT_TRUE(trained.ok()) << trained;
  auto expected = data::ReadNpz(kWork + "/" + kind + "/expected.npz");
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto exported = importers::LoadOnnxModel(config->train.out_dir + "/trained.onnx");
  ASSERT_TRUE(exported.ok()) << exported.status();
  for (const char* name : {"W", "B"}) {
    ASSERT_TRUE(exported->initializers.count(name)) << name;
    double err = ScaleRelativeError(exported->initializers.at(name), expected->at(name));
    EXPECT_LE(err, 1e-5) << name << " in the exported model";
  }
  EXPECT_FALSE(exported->initializers.count("V_W"));
}

INSTANTIATE_TEST_SUITE_P(Updates, TrainingInfo, ::testing::Values("sgd", "momentum"));

// A model without a TrainingInfoProto, asked to run one: a clear error.
TEST(TrainingInfoErrors, ModelWithoutTrainingInfo) {
  TrainConfig c;
  c.model.path = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/mlp/model.onnx";
  c.data.train = "npz:" + std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/mlp/data.npz";
  c.data.batch_size = 4;
  c.train.program = "training_info";
  c.train.out_dir = kWork + "/none";
  auto session = TrainingSession::Create(c);
  ASSERT_FALSE(session.ok());
  EXPECT_NE(std::string(session.status().message()).find("carries no TrainingInfoProto"),
            std::string::npos)
      << session.status();
}

}  // namespace
}  // namespace lasgd
