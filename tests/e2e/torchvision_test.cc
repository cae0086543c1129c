// torchvision ResNet-18, ResNet-50 and MobileNetV2 (random weights), exported
// in training and eval mode at opsets 13 and 17 by
// tests/fixtures/export_torchvision.py into the build folder (too big to
// commit), then run through the command-line tools as a user would:
// lasgd-inspect must count PyTorch's parameters and lasgd-run infer must
// reproduce PyTorch's outputs.
//
// Needs python3 with torch and torchvision the first time (the export takes
// about two minutes); skips, saying so, where they are missing.
#include <sys/stat.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "graph/verifier.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/npy.h"
#include "tests/e2e/fixture_util.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

const std::string kModelDir = std::string(LASGD_BINARY_DIR) + "/torchvision_models";
const std::string kOutputDir = std::string(LASGD_BINARY_DIR) + "/torchvision_outputs";
const std::string kScript = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/export_torchvision.py";
const std::string kBin = std::string(LASGD_BINARY_DIR) + "/bin";
// Must match the STAMP the script writes (its first word).
constexpr char kStampVersion[] = "lasgd-torchvision-v1";

std::vector<std::string> AllModels() {
  std::vector<std::string> names;
  for (const char* arch : {"resnet18", "resnet50", "mobilenet_v2"})
    for (const char* mode : {"train", "eval"})
      for (int opset : {13, 17}) names.push_back(absl::StrCat(arch, "_", mode, "_op", opset));
  return names;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Exports the models once per build folder. Every test process (ctest runs
// each case alone) calls this; after the first export it only reads STAMP.
struct ExportState {
  bool skip = false;
  bool failed = false;
  std::string message;
};

const ExportState& EnsureExported() {
  static const ExportState state = [] {
    ExportState s;
    std::ifstream stamp(kModelDir + "/STAMP");
    std::string word;
    if (stamp >> word && word == kStampVersion) return s;
    testing::CommandResult probe =
        testing::RunCommand("python3 -c 'import torch, torchvision, onnx, numpy'");
    if (probe.exit_code != 0) {
      s.skip = true;
      s.message =
          "SKIPPED: python3 cannot import torch, torchvision, onnx and numpy, so the torchvision "
          "models cannot be exported (pip install torch torchvision onnx numpy to run these "
          "tests): " +
          probe.output;
      return s;
    }
    testing::CommandResult run = testing::RunCommand(absl::StrCat(
        "python3 ", testing::ShellQuote(kScript), " ", testing::ShellQuote(kModelDir)));
    if (run.exit_code != 0) {
      s.failed = true;
      s.message = absl::StrCat(kScript, " failed (exit ", run.exit_code, "):\n", run.output);
    }
    return s;
  }();
  return state;
}

class TorchvisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ExportState& s = EnsureExported();
    if (s.skip) {
      std::fprintf(stderr, "%s\n", s.message.c_str());
      GTEST_SKIP() << s.message;
    }
    ASSERT_FALSE(s.failed) << s.message;
  }
};

TEST_F(TorchvisionTest, EveryModelImports) {
  for (const std::string& name : AllModels()) {
    auto g = importers::LoadOnnxModel(kModelDir + "/" + name + "/model.onnx");
    EXPECT_TRUE(g.ok()) << name << ": " << g.status();
  }
}

TEST_F(TorchvisionTest, EveryOpIsSupported) {
  for (const std::string& name : AllModels()) {
    auto g = importers::LoadOnnxModel(kModelDir + "/" + name + "/model.onnx");
    ASSERT_TRUE(g.ok()) << name << ": " << g.status();
    for (const std::string& problem : graph::FindUnsupportedOps(*g))
      ADD_FAILURE() << name << ": " << problem;
  }
}

// lasgd-inspect prints "trainable parameters: 25,557,032 (...)"; PyTorch's
// sum(p.numel() for p in model.parameters()) is the number to match. Only the
// training-mode exports keep every parameter as its own initializer (in eval
// mode the exporter merges equal BatchNormalization weights).
TEST_F(TorchvisionTest, InspectCountsPytorchParameters) {
  const std::string inspect = kBin + "/lasgd-inspect";
  ASSERT_TRUE(FileExists(inspect)) << inspect << " is not built (build target lasgd-inspect)";
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"resnet50_train_op13", "25,557,032"},
      {"resnet50_train_op17", "25,557,032"},
      {"resnet18_train_op13", "11,689,512"},
      {"mobilenet_v2_train_op17", "3,504,872"},
  };
  const std::regex pattern("trainable parameters: ([0-9,]+)");
  for (const auto& [name, count] : expected) {
    testing::CommandResult r = testing::RunCommand(
        absl::StrCat(inspect, " ", testing::ShellQuote(kModelDir + "/" + name + "/model.onnx")));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m, pattern)) << name << ":\n" << r.output;
    EXPECT_EQ(m[1].str(), count) << name << ":\n" << r.output;
    EXPECT_EQ(r.exit_code, 0) << name << ":\n" << r.output;
  }
}

class TorchvisionInferTest : public TorchvisionTest,
                             public ::testing::WithParamInterface<std::string> {};

// lasgd-run infer on the batch-2 input; eval-mode exports must match PyTorch
// in eval mode, training-mode exports PyTorch in train mode (BatchNormalization
// with batch statistics; MobileNetV2's Dropout was set to p=0 for the export).
TEST_P(TorchvisionInferTest, MatchesPytorch) {
  const std::string run = kBin + "/lasgd-run";
  ASSERT_TRUE(FileExists(run)) << run << " is not built (build target lasgd-run)";
  const std::string name = GetParam();
  auto meta = testing::ReadFixtureMeta(kModelDir + "/" + name);
  ASSERT_TRUE(meta.ok()) << meta.status();
  mkdir(kOutputDir.c_str(), 0755);
  const std::string out_dir = kOutputDir + "/" + name;
  std::string command = absl::StrCat(run, " infer ", testing::ShellQuote(meta->model),
                                     " --output-dir ", testing::ShellQuote(out_dir));
  for (const auto& [input, file] : meta->inputs)
    absl::StrAppend(&command, " --input ", testing::ShellQuote(input + "=" + file));
  testing::CommandResult r = testing::RunCommand(command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
  for (const auto& [output, file] : meta->outputs) {
    auto expected = runtime::ReadNpy(file);
    ASSERT_TRUE(expected.ok()) << expected.status();
    auto actual = runtime::ReadNpy(out_dir + "/" + output + ".npy");
    ASSERT_TRUE(actual.ok()) << actual.status() << "\n" << r.output;
    EXPECT_TRUE(testing::TensorsNear(*expected, *actual, meta->rtol, meta->atol))
        << name << " output '" << output << "' (rtol " << meta->rtol << ", atol " << meta->atol
        << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TorchvisionInferTest, ::testing::ValuesIn(AllModels()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace lasgd
