// The ONNX inference exporter: BN to inference mode, Dropout removal,
// attributes of every kind, trained values, constants, symbolic dims,
// external data, atomic writes; and, where python3 with onnx and onnxruntime
// is installed, onnx.checker plus onnxruntime-vs-lasgd parity on the
// committed training-mode fixtures.
#include "importers/onnx_exporter.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "onnx/onnx_pb.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "tests/op_test_util.h"

namespace lasgd::importers {
namespace {

using graph::Attribute;
using graph::Graph;
using graph::Node;
using graph::ValueInfo;

const std::string kFixtureRoot = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures";

// A fresh folder under gtest's temp dir, removed with its contents.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    std::string templ = ::testing::TempDir() + "/lasgd_export_XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    EXPECT_NE(mkdtemp(buf.data()), nullptr);
    path_ = buf.data();
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

onnx::ModelProto Parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

ValueInfo Info(const std::string& name, Shape shape, std::vector<std::string> dim_params = {}) {
  ValueInfo vi;
  vi.name = name;
  vi.dtype = DataType::kFloat32;
  vi.has_shape = true;
  vi.shape = std::move(shape);
  vi.dim_params = std::move(dim_params);
  if (vi.dim_params.empty()) vi.dim_params.assign(vi.shape.size(), "");
  return vi;
}

Node MakeOp(const std::string& name, const std::string& op, std::vector<std::string> inputs,
            std::vector<std::string> outputs, std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.attributes = std::move(attrs);
  return n;
}

// x[batch,2,3,3] -> BN (training form) -> Relu -> Dropout -> Dropout -> out
//                                                  \-> Neg -> out2
Graph BnDropoutGraph(int64_t opset) {
  Graph g;
  g.name = "bn_dropout";
  g.opset_imports[""] = opset;
  g.inputs = {Info("x", {-1, 2, 3, 3}, {"batch", "", "", ""})};
  g.outputs = {Info("out", {-1, 2, 3, 3}, {"batch", "", "", ""}),
               Info("out2", {-1, 2, 3, 3}, {"batch", "", "", ""})};
  for (const char* p : {"scale", "bias", "mean", "var"})
    g.initializers[p] = Tensor::FromFloats({1.f, 2.f}, {2});
  std::vector<std::string> bn_outputs = {"y", "running_mean_out", "running_var_out"};
  std::map<std::string, Attribute> bn_attrs = {{"epsilon", Attribute::Float(1e-5f)}};
  if (opset >= 14) {
    bn_attrs["training_mode"] = Attribute::Int(1);
  } else {
    bn_outputs.push_back("saved_mean");
    bn_outputs.push_back("saved_var");
  }
  g.nodes.push_back(MakeOp("bn", "BatchNormalization", {"x", "scale", "bias", "mean", "var"},
                           bn_outputs, bn_attrs));
  g.nodes.push_back(MakeOp("relu", "Relu", {"y"}, {"r"}));
  std::vector<std::string> drop_inputs = {"r"};
  if (opset >= 12) {
    g.initializers["ratio"] = Tensor::FromFloats({0.5f}, {});
    g.initializers["training"] = Tensor::Allocate(DataType::kBool, {});
    g.initializers["training"].data<uint8_t>()[0] = 1;
    g.constant_names = {"ratio", "training"};
    drop_inputs = {"r", "ratio", "training"};
  }
  g.nodes.push_back(MakeOp("drop1", "Dropout", drop_inputs, {"d", "mask"}));
  g.nodes.push_back(MakeOp("drop2", "Dropout", {"d"}, {"out"}));
  g.nodes.push_back(MakeOp("neg", "Neg", {"d"}, {"out2"}));
  return g;
}

TEST(OnnxExporterTest, BatchNormInferenceModeAndDropoutRemovedOpset15) {
  auto bytes = ExportInferenceModelToBytes(BnDropoutGraph(15), {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto m = Parse(*bytes);
  EXPECT_EQ(m.ir_version(), 8);
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).version(), 15);
  const auto& g = m.graph();
  ASSERT_EQ(g.node_size(), 4);
  const auto& bn = g.node(0);
  EXPECT_EQ(bn.name(), "bn");
  ASSERT_EQ(bn.output_size(), 1);
  EXPECT_EQ(bn.output(0), "y");
  bool saw_training_mode = false, saw_epsilon = false;
  for (const auto& a : bn.attribute()) {
    if (a.name() == "training_mode") {
      saw_training_mode = true;
      EXPECT_EQ(a.type(), onnx::AttributeProto::INT);
      EXPECT_EQ(a.i(), 0);
    }
    if (a.name() == "epsilon") {
      saw_epsilon = true;
      EXPECT_FLOAT_EQ(a.f(), 1e-5f);
    }
  }
  EXPECT_TRUE(saw_training_mode);
  EXPECT_TRUE(saw_epsilon);
  EXPECT_EQ(g.node(1).op_type(), "Relu");
  // drop2 produced a graph output: an Identity keeps its name, reading past
  // both Dropouts.
  EXPECT_EQ(g.node(2).op_type(), "Identity");
  EXPECT_EQ(g.node(2).name(), "drop2");
  EXPECT_EQ(g.node(2).input(0), "r");
  EXPECT_EQ(g.node(2).output(0), "out");
  EXPECT_EQ(g.node(3).op_type(), "Neg");
  EXPECT_EQ(g.node(3).input(0), "r");
  // Dropout's constants are unused now and gone; parameters stay.
  std::set<std::string> inits;
  for (const auto& t : g.initializer()) inits.insert(t.name());
  EXPECT_EQ(inits, (std::set<std::string>{"bias", "mean", "scale", "var"}));
  // Symbolic batch kept on inputs and outputs.
  ASSERT_EQ(g.input_size(), 1);
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(1).dim_value(), 2);
  ASSERT_EQ(g.output_size(), 2);
  EXPECT_EQ(g.output(1).type().tensor_type().shape().dim(0).dim_param(), "batch");
}

TEST(OnnxExporterTest, BatchNormFiveOutputFormOpset13) {
  auto bytes = ExportInferenceModelToBytes(BnDropoutGraph(13), {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto m = Parse(*bytes);
  EXPECT_EQ(m.ir_version(), 7);
  const auto& bn = m.graph().node(0);
  EXPECT_EQ(bn.op_type(), "BatchNormalization");
  ASSERT_EQ(bn.output_size(), 1);
  for (const auto& a : bn.attribute()) EXPECT_NE(a.name(), "training_mode");
}

TEST(OnnxExporterTest, ReadingDroppedBatchNormOutputIsAnError) {
  Graph g = BnDropoutGraph(15);
  g.nodes.push_back(MakeOp("uses_mean", "Neg", {"running_mean_out"}, {"neg_mean"}));
  auto bytes = ExportInferenceModelToBytes(g, {});
  ASSERT_FALSE(bytes.ok());
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "uses_mean")) << bytes.status();
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "running_mean_out")) << bytes.status();
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "'bn'")) << bytes.status();

  Graph g2 = BnDropoutGraph(13);
  g2.outputs.push_back(Info("saved_var", {2}));
  bytes = ExportInferenceModelToBytes(g2, {});
  ASSERT_FALSE(bytes.ok());
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "graph output 'saved_var'"))
      << bytes.status();

  Graph g3 = BnDropoutGraph(15);
  g3.nodes.push_back(MakeOp("uses_mask", "Not", {"mask"}, {"not_mask"}));
  bytes = ExportInferenceModelToBytes(g3, {});
  ASSERT_FALSE(bytes.ok());
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "mask output of node 'drop1'"))
      << bytes.status();
}

TEST(OnnxExporterTest, TrainedValuesReplaceInitializersByName) {
  Graph g = BnDropoutGraph(15);
  std::map<std::string, Tensor> trained = {{"mean", Tensor::FromFloats({0.25f, -4.f}, {2})}};
  auto bytes = ExportInferenceModelToBytes(g, trained);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto back = ImportModelProto(Parse(*bytes), ".");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->initializers.at("mean").ToDoubleVector(), (std::vector<double>{0.25, -4}));
  EXPECT_EQ(back->initializers.at("var").ToDoubleVector(), (std::vector<double>{1, 2}));

  auto unknown = ExportInferenceModelToBytes(g, {{"momentum.w", Tensor::FromFloats({1}, {1})}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(absl::StrContains(unknown.status().message(), "'momentum.w'")) << unknown.status();
  auto wrong_shape = ExportInferenceModelToBytes(g, {{"var", Tensor::FromFloats({1, 2, 3}, {3})}});
  ASSERT_FALSE(wrong_shape.ok());
  EXPECT_TRUE(absl::StrContains(wrong_shape.status().message(), "float32[3]"))
      << wrong_shape.status();
  EXPECT_TRUE(absl::StrContains(wrong_shape.status().message(), "float32[2]"))
      << wrong_shape.status();
}

TEST(OnnxExporterTest, AttributesOfEveryKindRoundTrip) {
  Graph g;
  g.name = "attrs";
  g.opset_imports[""] = 17;
  g.opset_imports["com.example"] = 3;
  g.inputs = {Info("x", {2})};
  g.outputs = {Info("y", {2})};
  Tensor t = Tensor::FromInt64s({7, -8, 9}, {3});
  Attribute strings;
  strings.kind = Attribute::Kind::kStrings;
  strings.strings = {"a", "", "ccc"};
  Node n = MakeOp("custom", "Foo", {"x", "", "c"}, {"y"},
                  {{"f", Attribute::Float(-2.5f)},
                   {"i", Attribute::Int(int64_t{1} << 40)},
                   {"s", Attribute::String("hello")},
                   {"t", Attribute::FromTensor(t)},
                   {"fs", Attribute::Floats({1.f, 0.5f})},
                   {"is", Attribute::Ints({-1, 0, 3})},
                   {"ss", strings}});
  n.domain = "com.example";
  g.nodes.push_back(n);
  // A Constant-derived value that is still read is written as an initializer.
  g.initializers["c"] = Tensor::FromFloats({3.f}, {});
  g.constant_names.insert("c");

  auto bytes = ExportInferenceModelToBytes(g, {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto m = Parse(*bytes);
  ASSERT_EQ(m.opset_import_size(), 2);
  auto back = ImportModelProto(m, ".");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->opset_imports, g.opset_imports);
  ASSERT_EQ(back->nodes.size(), 1u);
  const Node& r = back->nodes[0];
  EXPECT_EQ(r.domain, "com.example");
  EXPECT_EQ(r.inputs, (std::vector<std::string>{"x", "", "c"}));
  ASSERT_EQ(r.attributes.size(), 7u);
  EXPECT_EQ(r.attributes.at("f").kind, Attribute::Kind::kFloat);
  EXPECT_EQ(r.GetFloat("f", 0), -2.5f);
  EXPECT_EQ(r.GetInt("i", 0), int64_t{1} << 40);
  EXPECT_EQ(r.GetString("s", ""), "hello");
  EXPECT_EQ(r.attributes.at("t").t.TypeString(), "int64[3]");
  EXPECT_EQ(r.attributes.at("t").t.ToDoubleVector(), (std::vector<double>{7, -8, 9}));
  EXPECT_EQ(r.GetFloats("fs"), (std::vector<float>{1.f, 0.5f}));
  EXPECT_EQ(r.GetInts("is"), (std::vector<int64_t>{-1, 0, 3}));
  EXPECT_EQ(r.attributes.at("ss").strings, strings.strings);
  EXPECT_EQ(back->initializers.at("c").ToDoubleVector(), (std::vector<double>{3}));

  Attribute subgraph;
  subgraph.kind = Attribute::Kind::kGraph;
  g.nodes[0].attributes["body"] = subgraph;
  auto bad = ExportInferenceModelToBytes(g, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "graph attribute 'body'")) << bad.status();
}

TEST(OnnxExporterTest, ExternalDataBeyondThresholdAndAtomicWrite) {
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  Graph g = BnDropoutGraph(15);
  g.initializers["big"] = lasgd::testing::RandomTensor({300, 7}, 5);
  g.nodes.push_back(MakeOp("use_big", "Identity", {"big"}, {"big_out"}));
  g.outputs.push_back(Info("big_out", {300, 7}));
  std::map<std::string, Tensor> trained = {{"big", lasgd::testing::RandomTensor({300, 7}, 6)}};
  ExportOptions options;
  options.external_data_threshold_bytes = 1000;
  options.external_min_tensor_bytes = 1024;
  const std::string path = dir + "/model.onnx";
  ASSERT_TRUE(ExportInferenceModel(g, trained, path, options).ok());
  // Only the two finished files: no temporaries left behind.
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"model.onnx", "model.onnx.data"}));

  onnx::ModelProto m;
  {
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&in));
  }
  for (const auto& t : m.graph().initializer()) {
    // Only the 8400-byte tensor is big enough to leave the model.
    EXPECT_EQ(t.data_location() == onnx::TensorProto::EXTERNAL, t.name() == "big") << t.name();
    if (t.name() == "big") {
      EXPECT_EQ(t.external_data(0).key(), "location");
      EXPECT_EQ(t.external_data(0).value(), "model.onnx.data");
    }
  }
  auto back = LoadOnnxModel(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(lasgd::testing::TensorsNear(trained["big"], back->initializers.at("big"), 0, 0));
  EXPECT_EQ(back->initializers.at("mean").ToDoubleVector(), (std::vector<double>{1, 2}));

  // The bytes form cannot hold external data and says so.
  auto bytes = ExportInferenceModelToBytes(g, trained, options);
  ASSERT_FALSE(bytes.ok());
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "external data")) << bytes.status();

  // Re-exporting over an existing model replaces it in one step.
  ASSERT_TRUE(ExportInferenceModel(g, {}, path).ok());
  back = LoadOnnxModel(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(
      lasgd::testing::TensorsNear(g.initializers["big"], back->initializers.at("big"), 0, 0));

  auto no_dir = ExportInferenceModel(g, {}, dir + "/missing/model.onnx");
  ASSERT_FALSE(no_dir.ok());
  EXPECT_TRUE(absl::StrContains(no_dir.message(), "missing")) << no_dir;
}

// ---- onnx.checker and onnxruntime on exported fixtures ----

int RunShell(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  return pclose(p);
}

bool PythonWithOnnxRuntime() {
  static const bool available = [] {
    std::string out;
    return RunShell("python3 -c 'import numpy, onnx, onnxruntime'", &out) == 0;
  }();
  return available;
}

// Checks the model with onnx.checker (full_check runs onnx's shape inference
// too), runs it with onnxruntime on one input and saves output 0 as .npy.
constexpr char kCheckAndRunScript[] = R"PY(
import sys
import numpy as np
import onnx
import onnxruntime as ort
path, input_name, input_file, output_file = sys.argv[1:5]
onnx.checker.check_model(path, full_check=True)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
out = sess.run(None, {input_name: np.load(input_file)})
np.save(output_file, out[0])
print("checked and ran", path)
)PY";

struct FixtureCase {
  std::string fixture;
  bool external_data;
};

void PrintTo(const FixtureCase& c, std::ostream* os) {
  *os << c.fixture << (c.external_data ? " (external data)" : "");
}

class ExportedFixtureTest : public ::testing::TestWithParam<FixtureCase> {};

// Training-like changes to every parameter and BN statistic, so the test sees
// whether the trained values (not the imported ones) are exported and whether
// BN uses its running statistics.
std::map<std::string, Tensor> PerturbedValues(const Graph& g) {
  std::map<std::string, Tensor> trained;
  uint32_t seed = 100;
  for (const auto& [name, t] : g.initializers) {
    if (g.constant_names.count(name) || t.dtype() != DataType::kFloat32) continue;
    Tensor v = t.Clone();
    Tensor noise = lasgd::testing::RandomTensor(t.shape(), seed++, -0.5f, 0.5f);
    for (int64_t i = 0; i < v.num_elements(); ++i) {
      float delta = noise.data<float>()[i];
      if (absl::StrContains(name, "running_var"))
        v.data<float>()[i] = 1.f + delta;  // stays positive
      else if (absl::StrContains(name, "running_mean"))
        v.data<float>()[i] = delta;
      else
        v.data<float>()[i] += 0.2f * delta;
    }
    trained[name] = v;
  }
  return trained;
}

TEST_P(ExportedFixtureTest, CheckerAcceptsAndOnnxRuntimeMatchesLasgd) {
  const FixtureCase& c = GetParam();
  if (!PythonWithOnnxRuntime())
    GTEST_SKIP() << "python3 with numpy, onnx and onnxruntime is not available "
                    "(tests/setup_python.sh installs them); onnxruntime parity not checked";
  const std::string fixture_dir = kFixtureRoot + "/" + c.fixture;
  auto original = LoadOnnxModel(fixture_dir + "/model.onnx");
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_EQ(original->inputs.size(), 1u);
  const std::string input_name = original->inputs[0].name;
  const std::string input_file = fixture_dir + "/in_" + input_name + ".npy";
  auto input = runtime::ReadNpy(input_file);
  ASSERT_TRUE(input.ok()) << input.status();

  std::map<std::string, Tensor> trained = PerturbedValues(*original);
  ASSERT_FALSE(trained.empty());
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  const std::string path = dir + "/exported.onnx";
  ExportOptions options;
  if (c.external_data) options.external_data_threshold_bytes = 0;
  auto st = ExportInferenceModel(*original, trained, path, options);
  ASSERT_TRUE(st.ok()) << st;
  if (c.external_data) {
    struct stat sb;
    ASSERT_EQ(stat((path + ".data").c_str(), &sb), 0);
  }

  std::string script = dir + "/check_and_run.py";
  std::ofstream(script) << kCheckAndRunScript;
  std::string ort_file = dir + "/ort_out.npy";
  std::string log;
  int rc = RunShell(
      absl::StrCat("python3 ", script, " ", path, " ", input_name, " ", input_file, " ", ort_file),
      &log);
  ASSERT_EQ(rc, 0) << "onnx.checker or onnxruntime rejected the exported model:\n" << log;
  auto ort_out = runtime::ReadNpy(ort_file);
  ASSERT_TRUE(ort_out.ok()) << ort_out.status();

  // lasgd runs the exported file too.
  auto exported = LoadOnnxModel(path);
  ASSERT_TRUE(exported.ok()) << exported.status();
  for (const Node& n : exported->nodes) {
    EXPECT_NE(n.op_type, "Dropout") << n.name;
    if (n.op_type == "BatchNormalization") {
      EXPECT_EQ(n.outputs.size(), 1u) << n.name;
      EXPECT_EQ(n.GetInt("training_mode", 0), 0) << n.name;
    }
  }
  for (const auto& [name, t] : trained)
    EXPECT_TRUE(lasgd::testing::TensorsNear(t, exported->initializers.at(name), 0, 0)) << name;
  EXPECT_EQ(exported->inputs[0].dim_params, original->inputs[0].dim_params);
  EXPECT_EQ(exported->inputs[0].shape, original->inputs[0].shape);

  runtime::CompileOptions compile;
  // The exporter is under test, not the kernels: the plain loops keep the
  // comparison independent of oneDNN layouts.
  compile.kernel = "reference";
  compile.pipeline.binding.input_shapes[input_name] = input->shape();
  auto ex = runtime::Executor::Create(std::move(*exported), compile);
  ASSERT_TRUE(ex.ok()) << ex.status();
  auto out = (*ex)->Run({{input_name, *input}});
  ASSERT_TRUE(out.ok()) << out.status();
  const std::string output_name = original->outputs[0].name;
  EXPECT_TRUE(lasgd::testing::TensorsNear(*ort_out, out->at(output_name), 1e-4, 1e-5))
      << "onnxruntime and lasgd disagree on the exported " << c.fixture;

  // The training-mode original (batch statistics) with the same values must
  // differ: otherwise this test could not tell whether BN was switched.
  if (absl::StrContains(c.fixture, "cnn_bn_train")) {
    Graph train = *original;
    for (const auto& [name, t] : trained) train.initializers[name] = t;
    auto train_ex = runtime::Executor::Create(std::move(train), compile);
    ASSERT_TRUE(train_ex.ok()) << train_ex.status();
    auto train_out = (*train_ex)->Run({{input_name, *input}});
    ASSERT_TRUE(train_out.ok()) << train_out.status();
    EXPECT_FALSE(lasgd::testing::TensorsNear(*ort_out, train_out->at(output_name), 1e-3, 1e-3));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ExportedFixtureTest,
                         ::testing::Values(FixtureCase{"cnn_bn_train_op17", false},
                                           FixtureCase{"cnn_bn_train_op13", false},
                                           FixtureCase{"cnn_dropout_train_op17", false},
                                           FixtureCase{"cnn_dropout_train_op13", true},
                                           FixtureCase{"mlp", false},
                                           FixtureCase{"cnn_bn_train_op17", true}),
                         [](const ::testing::TestParamInfo<FixtureCase>& info) {
                           return info.param.fixture +
                                  (info.param.external_data ? "_external" : "");
                         });

}  // namespace
}  // namespace lasgd::importers
