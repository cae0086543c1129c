// Every fixture of tests/fixtures (models exported from PyTorch with their
// inputs and PyTorch's outputs) is imported, compiled for the shapes of its
// input .npy files and run, once with the fastest kernels and once with the
// reference kernels only; each deterministic output must match PyTorch's.
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "tests/e2e/fixture_util.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

const std::string kFixtureRoot = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures";

struct ParityCase {
  std::string fixture;
  std::string kernel;  // "" = fastest
};

// Readable case names in gtest's failure lines instead of a byte dump.
void PrintTo(const ParityCase& c, std::ostream* os) {
  *os << c.fixture << " with " << (c.kernel.empty() ? "the fastest" : c.kernel) << " kernels";
}

std::string CaseName(const ::testing::TestParamInfo<ParityCase>& info) {
  return info.param.fixture + (info.param.kernel.empty() ? "_fastest" : "_" + info.param.kernel);
}

std::vector<ParityCase> AllCases() {
  std::vector<ParityCase> cases;
  for (const std::string& f : testing::ListFixtures(kFixtureRoot)) {
    cases.push_back({f, ""});
    cases.push_back({f, "reference"});
  }
  return cases;
}

class PytorchParityTest : public ::testing::TestWithParam<ParityCase> {};

TEST_P(PytorchParityTest, MatchesPytorch) {
  const ParityCase& c = GetParam();
  auto meta = testing::ReadFixtureMeta(kFixtureRoot + "/" + c.fixture);
  ASSERT_TRUE(meta.ok()) << meta.status();

  auto g = importers::LoadOnnxModel(meta->model);
  ASSERT_TRUE(g.ok()) << g.status();
  runtime::CompileOptions options;
  options.kernel = c.kernel;
  std::map<std::string, Tensor> feeds;
  for (const auto& [name, file] : meta->inputs) {
    auto t = runtime::ReadNpy(file);
    ASSERT_TRUE(t.ok()) << t.status();
    feeds[name] = *t;
    options.pipeline.binding.input_shapes[name] = t->shape();
  }
  auto ex = runtime::Executor::Create(std::move(*g), options);
  ASSERT_TRUE(ex.ok()) << ex.status();
  if (!c.kernel.empty()) {
    for (const runtime::KernelChoice& choice : (*ex)->kernel_choices())
      EXPECT_EQ(choice.kernel, c.kernel) << choice.node << " (" << choice.op << ")";
  }

  auto out = (*ex)->Run(feeds);
  ASSERT_TRUE(out.ok()) << out.status();
  for (const auto& [name, file] : meta->outputs) {
    auto expected = runtime::ReadNpy(file);
    ASSERT_TRUE(expected.ok()) << expected.status();
    ASSERT_TRUE(out->count(name)) << "no output '" << name << "'";
    EXPECT_TRUE(testing::TensorsNear(*expected, out->at(name), meta->rtol, meta->atol))
        << "output '" << name << "' of " << c.fixture << "\n"
        << (*ex)->PlanReport();
  }
  for (const auto& [name, shape] : meta->unchecked) {
    ASSERT_TRUE(out->count(name)) << "no output '" << name << "'";
    const Tensor& t = out->at(name);
    EXPECT_EQ(t.shape(), shape) << name;
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      ASSERT_TRUE(std::isfinite(t.GetAsDouble(i))) << name << " element " << i;
    }
  }

  // A plan runs every step many times: a second run must give the same
  // deterministic outputs (kernels keep no state from the first run).
  auto again = (*ex)->Run(feeds);
  ASSERT_TRUE(again.ok()) << again.status();
  for (const auto& [name, file] : meta->outputs) {
    EXPECT_TRUE(testing::TensorsNear(out->at(name), again->at(name), 0, 0))
        << "second run of '" << name << "' differs from the first";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PytorchParityTest, ::testing::ValuesIn(AllCases()), CaseName);

// Guards against fixtures silently disappearing (the cases above are found
// by listing the folder).
TEST(PytorchParityFixtures, AllPresent) {
  std::set<std::string> have;
  for (const std::string& f : testing::ListFixtures(kFixtureRoot)) have.insert(f);
  for (const char* f :
       {"mlp", "cnn_bn_eval_op13", "cnn_bn_eval_op17", "cnn_bn_train_op13", "cnn_bn_train_op17",
        "cnn_dropout_train_op13", "cnn_dropout_train_op17", "mobile_blocks_op13",
        "mobile_blocks_op17", "shuffle_unit", "tiny_encoder_op13", "tiny_encoder_op17",
        "convtranspose_decoder", "pools", "external_data"}) {
    EXPECT_TRUE(have.count(f)) << "fixture '" << f << "' is missing from " << kFixtureRoot;
  }
}

// The external-data fixture really keeps its weights outside model.onnx.
TEST(PytorchParityFixtures, ExternalDataIsExternal) {
  std::ifstream data(kFixtureRoot + "/external_data/model.onnx.data", std::ios::binary);
  ASSERT_TRUE(data.good());
  data.seekg(0, std::ios::end);
  EXPECT_GT(static_cast<int64_t>(data.tellg()), 1000);
}

// A model with a symbolic batch compiles for another batch than the one it
// was exported with, and every sample's result is the same as alone.
TEST(PytorchParityFixtures, SymbolicBatchRebinds) {
  auto meta = testing::ReadFixtureMeta(kFixtureRoot + "/mlp");
  ASSERT_TRUE(meta.ok()) << meta.status();
  auto x = runtime::ReadNpy(meta->inputs[0].second);
  auto y = runtime::ReadNpy(meta->outputs[0].second);
  ASSERT_TRUE(x.ok() && y.ok());
  auto g = importers::LoadOnnxModel(meta->model);
  ASSERT_TRUE(g.ok()) << g.status();
  runtime::CompileOptions options;
  options.pipeline.binding.batch_size = 1;
  auto ex = runtime::Executor::Create(std::move(*g), options);
  ASSERT_TRUE(ex.ok()) << ex.status();
  const int64_t features = x->dim(1), classes = y->dim(1);
  for (int64_t b = 0; b < x->dim(0); ++b) {
    Tensor row = Tensor::Allocate(DataType::kFloat32, {1, features});
    Tensor expected = Tensor::Allocate(DataType::kFloat32, {1, classes});
    for (int64_t i = 0; i < features; ++i)
      row.data<float>()[i] = x->data<float>()[b * features + i];
    for (int64_t i = 0; i < classes; ++i)
      expected.data<float>()[i] = y->data<float>()[b * classes + i];
    auto out = (*ex)->Run({{meta->inputs[0].first, row}});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(
        testing::TensorsNear(expected, out->at(meta->outputs[0].first), meta->rtol, meta->atol))
        << "sample " << b;
  }
}

}  // namespace
}  // namespace lasgd
