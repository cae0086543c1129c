// Broken models and inputs (tests/bad_models, written by make_bad_models.py):
// import + compile must fail with a message that names the specific thing at
// fault (file, node, op, tensor, expected vs got), and the command-line tools
// must exit non-zero with a one-line error. Nothing may crash.
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "graph/verifier.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "tests/e2e/fixture_util.h"

namespace lasgd {
namespace {

const std::string kDir = std::string(LASGD_SOURCE_DIR) + "/tests/bad_models";
const std::string kBin = std::string(LASGD_BINARY_DIR) + "/bin";

struct BadCase {
  std::string file;
  // Every one of these must appear in the error message.
  std::vector<std::string> mentions;
  // Must NOT appear (e.g. a node that is merely downstream of a cycle).
  std::vector<std::string> not_mentions = {};
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.file; }

// Import, then compile with no shape binding: the first error is returned.
absl::Status ImportAndCompile(const std::string& path) {
  auto g = importers::LoadOnnxModel(path);
  if (!g.ok()) return g.status();
  runtime::CompileOptions options;
  auto ex = runtime::Executor::Create(std::move(*g), options);
  return ex.status();
}

const std::vector<BadCase>& AllCases() {
  static const std::vector<BadCase> cases = {
      {"does_not_exist.onnx", {"does_not_exist.onnx", "does not exist"}},
      {"empty.onnx", {"empty.onnx", "is empty"}},
      {"truncated.onnx", {"truncated.onnx", "not a valid ONNX model", "124 bytes"}},
      {"random_bytes.onnx", {"random_bytes.onnx", "not a valid ONNX model"}},
      {"text.onnx", {"text.onnx", "not a valid ONNX model"}},
      {"missing_initializer.onnx", {"node 'fc' (Gemm)", "'fc.weight'", "not a graph input"}},
      {"undefined_value.onnx", {"node 'add_ghost' (Add)", "'ghost'"}},
      {"dtype_mismatch.onnx", {"node 'mixed_add' (Add)", "float32", "int64"}},
      {"matmul_shape_mismatch.onnx", {"node 'bad_matmul' (MatMul)", "[2,3]", "[4,5]"}},
      {"declared_shape_mismatch.onnx",
       {"node 'relu' (Relu)", "'y'", "declared as float32[2,4]", "float32[2,3]"}},
      {"unknown_op.onnx",
       {"node 'frob' (FrobnicateTensor)", "'FrobnicateTensor'", "not supported"}},
      {"opset_99.onnx", {"node 'relu' (Relu)", "opset 99", "supported opsets"}},
      {"opset_3.onnx", {"node 'relu' (Relu)", "opset 3", "supported opsets"}},
      {"cycle.onnx", {"cycle", "'cycle_a'", "'cycle_b'"}, {"after_cycle"}},
      {"duplicate_output.onnx", {"'y'", "'first_writer'", "'second_writer'", "SSA"}},
      {"external_missing.onnx", {"external_missing.onnx", "tensor 'w'", "missing_weights.bin"}},
      {"external_truncated.onnx",
       {"tensor 'w'", "truncated_weights.bin", "has 20 bytes", "need 64"}},
      {"control_flow_if.onnx", {"node 'branch' (If)", "control flow"}},
      {"negative_dim_initializer.onnx", {"tensor 'neg_w'", "negative dimension", "[-2,3]"}},
      {"raw_data_wrong_size.onnx", {"tensor 'short_w'", "raw_data has 20 bytes", "needs 24"}},
      {"float_data_wrong_count.onnx", {"tensor 'w'", "float_data holds 3 values", "needs 6"}},
      {"output_not_produced.onnx", {"graph output 'y'", "not produced"}},
      {"conv_bad_attribute.onnx", {"node 'conv_rank' (Conv)", "kernel_shape"}},
      {"symbolic_batch.onnx", {"input 'x'", "symbolic dimension", "'batch'"}},
      {"external_bad_offset.onnx", {"tensor 'w'", "'offset'", "'sixteen'"}},
      {"external_outside_folder.onnx", {"tensor 'w'", "'../outside.bin'", "inside the model"}},
      {"too_many_inputs.onnx", {"node 'relu_two' (Relu)", "2 inputs"}},
      {"constant_bad_value.onnx", {"node 'bad_const' (Constant)", "raw_data has 3 bytes"}},
      {"input_without_type.onnx", {"graph input 'x'", "no tensor type"}},
      {"sequence_input.onnx", {"value 's'", "not a tensor"}},
      {"no_graph.onnx", {"no_graph.onnx", "no graph"}},
  };
  return cases;
}

class BadModelTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadModelTest, ErrorNamesTheCulprit) {
  const BadCase& c = GetParam();
  absl::Status st = ImportAndCompile(kDir + "/" + c.file);
  ASSERT_FALSE(st.ok()) << c.file << " was accepted";
  const std::string message(st.message());
  for (const std::string& m : c.mentions)
    EXPECT_TRUE(absl::StrContains(message, m)) << "missing \"" << m << "\" in: " << message;
  for (const std::string& m : c.not_mentions)
    EXPECT_FALSE(absl::StrContains(message, m)) << "unexpected \"" << m << "\" in: " << message;
  // Helpful, not a stack of blank context: short enough to read, long enough to say something.
  EXPECT_GT(message.size(), 20u) << message;
  EXPECT_LT(message.size(), 1000u) << message;
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadModelTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           std::string name = info.param.file.substr(0, info.param.file.find('.'));
                           return name;
                         });

// Every .onnx of the corpus is covered above (a file added without a case
// would otherwise be silently untested).
TEST(BadModelCorpus, EveryFileHasACase) {
  std::vector<std::string> listed;
  for (const BadCase& c : AllCases()) listed.push_back(c.file);
  testing::CommandResult ls = testing::RunCommand("ls " + testing::ShellQuote(kDir));
  ASSERT_EQ(ls.exit_code, 0) << ls.output;
  for (absl::string_view f : absl::StrSplit(ls.output, '\n', absl::SkipEmpty())) {
    if (!absl::EndsWith(f, ".onnx") || f == "good_mlp.onnx") continue;
    EXPECT_NE(std::find(listed.begin(), listed.end(), std::string(f)), listed.end())
        << f << " has no BadCase";
  }
}

// The verifier reports every problem, not only the first.
TEST(BadModelCorpus, VerifierListsEveryProblem) {
  auto g = importers::LoadOnnxModel(kDir + "/control_flow_if.onnx");
  ASSERT_TRUE(g.ok()) << g.status();
  absl::Status st = graph::VerifyGraph(*g);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "then_branch")) << st.message();
  EXPECT_TRUE(absl::StrContains(st.message(), "else_branch")) << st.message();
}

TEST(BadModelCorpus, GoodModelRuns) {
  auto g = importers::LoadOnnxModel(kDir + "/good_mlp.onnx");
  ASSERT_TRUE(g.ok()) << g.status();
  auto ex = runtime::Executor::Create(std::move(*g), {});
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto x = runtime::ReadNpy(kDir + "/mlp_input_ok.npy");
  ASSERT_TRUE(x.ok()) << x.status();
  auto out = (*ex)->Run({{"x", *x}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->at("y").shape(), (Shape{2, 3}));
}

// Run() rejects wrong feeds with the input's name and both types.
TEST(BadModelCorpus, RunRejectsWrongFeeds) {
  auto g = importers::LoadOnnxModel(kDir + "/good_mlp.onnx");
  ASSERT_TRUE(g.ok()) << g.status();
  auto ex = runtime::Executor::Create(std::move(*g), {});
  ASSERT_TRUE(ex.ok()) << ex.status();
  Tensor good = Tensor::Allocate(DataType::kFloat32, {2, 4});
  auto missing = (*ex)->Run({});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "input 'x'")) << missing.status();
  auto shape = (*ex)->Run({{"x", Tensor::Allocate(DataType::kFloat32, {2, 5})}});
  ASSERT_FALSE(shape.ok());
  EXPECT_TRUE(absl::StrContains(shape.status().message(), "[2,4]")) << shape.status();
  EXPECT_TRUE(absl::StrContains(shape.status().message(), "[2,5]")) << shape.status();
  auto dtype = (*ex)->Run({{"x", Tensor::Allocate(DataType::kFloat64, {2, 4})}});
  ASSERT_FALSE(dtype.ok());
  EXPECT_TRUE(absl::StrContains(dtype.status().message(), "float64")) << dtype.status();
  auto extra = (*ex)->Run({{"x", good}, {"nope", good}});
  ASSERT_FALSE(extra.ok());
  EXPECT_TRUE(absl::StrContains(extra.status().message(), "'nope'")) << extra.status();
}

// ---------------------------------------------------------------- the CLIs

struct CliCase {
  std::string name;
  std::string args;  // after the binary; paths relative to kDir
  std::vector<std::string> mentions;
};

void PrintTo(const CliCase& c, std::ostream* os) { *os << c.name; }

class CliErrorTest : public ::testing::TestWithParam<CliCase> {};

// A non-zero exit and one line on stderr, "lasgd-xxx: error: ...", that says what is wrong.
TEST_P(CliErrorTest, ExitsWithOneLineError) {
  const CliCase& c = GetParam();
  const std::string tool = c.args.substr(0, c.args.find(' '));
  ASSERT_TRUE(testing::RunCommand("test -x " + testing::ShellQuote(kBin + "/" + tool)).exit_code ==
              0)
      << kBin << "/" << tool << " is not built";
  const std::string command =
      absl::StrCat("cd ", testing::ShellQuote(kDir), " && ", kBin, "/", c.args);
  testing::CommandResult r = testing::RunCommand(command, /*stderr_only=*/true);
  EXPECT_GT(r.exit_code, 0) << command << " (exit " << r.exit_code << ", -1 = crashed)\n"
                            << r.output;
  std::string text = r.output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  EXPECT_EQ(text.find('\n'), std::string::npos) << "more than one line:\n" << r.output;
  EXPECT_TRUE(absl::StartsWith(text, tool + ": error: ")) << text;
  for (const std::string& m : c.mentions)
    EXPECT_TRUE(absl::StrContains(text, m)) << "missing \"" << m << "\" in: " << text;
}

const std::string kInfer = "lasgd-run infer good_mlp.onnx --output-dir /tmp/lasgd_bad_input_out";

INSTANTIATE_TEST_SUITE_P(
    Tools, CliErrorTest,
    ::testing::Values(
        CliCase{"inspect_missing", "lasgd-inspect nothing_here.onnx", {"nothing_here.onnx"}},
        CliCase{"inspect_empty", "lasgd-inspect empty.onnx", {"empty.onnx", "empty"}},
        CliCase{"inspect_truncated", "lasgd-inspect truncated.onnx", {"truncated.onnx"}},
        CliCase{"inspect_cycle", "lasgd-inspect cycle.onnx", {"cycle", "cycle_a"}},
        CliCase{"inspect_dtype", "lasgd-inspect dtype_mismatch.onnx", {"mixed_add", "int64"}},
        CliCase{
            "inspect_external", "lasgd-inspect external_truncated.onnx", {"truncated_weights.bin"}},
        CliCase{"inspect_bad_phase",
                "lasgd-inspect --dump-after=nonsense good_mlp.onnx",
                {"'nonsense'", "shape_inference"}},
        CliCase{"run_missing_model",
                "lasgd-run infer nothing_here.onnx --output-dir /tmp/lasgd_bad_input_out",
                {"nothing_here.onnx"}},
        CliCase{"run_wrong_shape",
                kInfer + " --input x=mlp_input_wrong_shape.npy",
                {"'x'", "[2,4]", "[2,5]"}},
        CliCase{"run_wrong_dtype",
                kInfer + " --input x=mlp_input_wrong_dtype.npy",
                {"'x'", "float32", "float64"}},
        CliCase{"run_unknown_input",
                kInfer + " --input nope=mlp_input_ok.npy",
                {"'nope'", "inputs are: x"}},
        CliCase{"run_input_not_given", kInfer, {"'x'", "--input x="}},
        CliCase{"run_npy_missing", kInfer + " --input x=no_such.npy", {"no_such.npy"}},
        CliCase{"run_npy_garbage", kInfer + " --input x=not_npy.npy", {"not_npy.npy"}},
        CliCase{"run_bad_model",
                "lasgd-run infer matmul_shape_mismatch.onnx --output-dir "
                "/tmp/lasgd_bad_input_out --input a=matmul_a.npy --input b=matmul_b.npy",
                {"bad_matmul"}}),
    [](const ::testing::TestParamInfo<CliCase>& info) { return info.param.name; });

// The happy path of the same harness, so the failures above mean something.
TEST(CliErrorTest, GoodInferenceSucceeds) {
  testing::CommandResult r = testing::RunCommand(absl::StrCat(
      "cd ", testing::ShellQuote(kDir), " && ", kBin, "/", kInfer, " --input x=mlp_input_ok.npy"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto y = runtime::ReadNpy("/tmp/lasgd_bad_input_out/y.npy");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{2, 3}));
}

}  // namespace
}  // namespace lasgd
