// The ONNX backend node tests (onnx/backend/test/data/node/<test>/: model.onnx
// and test_data_set_N/{input,output}_K.pb, shipped in the onnx pip package)
// run through the whole import -> compile -> execute path.
//
// Every test named in node_tests_expected_pass.txt is one GoogleTest case that
// must pass twice: with the fastest kernels and with the "reference" kernels
// only. OnnxNodeScan runs every other test whose ops we support and prints
// which now pass, so the list can grow as ops land; with
// LASGD_UPDATE_NODE_TEST_LIST=1 it rewrites the list with every passing test.
//
// The node tests feed shape-deciding inputs (Slice's starts, Reshape's shape,
// Range's limits) at run time; lasgd compiles static shapes, so when a
// compile asks for constants the harness bakes those inputs' values into the
// graph and compiles once per data set.
//
// Environment:
//   LASGD_ONNX_NODE_TEST_DIR     the node test folder (default: found by CMake)
//   LASGD_UPDATE_NODE_TEST_LIST  1 = rewrite the list file from the scan
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "graph/verifier.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"
#include "tests/op_test_util.h"

extern char** environ;

namespace lasgd {
namespace {

namespace fs = std::filesystem;

// The tolerances of onnx's own backend runner (onnx/backend/test/runner),
// except atol, which float32 kernels that reorder sums need a little of.
constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-5;
// A scanned test that prints nothing for this long is taken to hang.
constexpr int kScanTestTimeoutSeconds = 120;

const char kListPath[] = LASGD_SOURCE_DIR "/tests/conformance/node_tests_expected_pass.txt";
const char kWorkerInEnv[] = "LASGD_NODE_SCAN_WORKER_IN";
const char kWorkerOutEnv[] = "LASGD_NODE_SCAN_WORKER_OUT";

#ifndef LASGD_ONNX_NODE_TEST_DIR_DEFAULT
#define LASGD_ONNX_NODE_TEST_DIR_DEFAULT ""
#endif

bool IsDirectory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  }
  if (s.size() > 600) s = s.substr(0, 600) + " ...";
  return s;
}

// Asks python3 where onnx is: used only when CMake could not (onnx was
// installed after configuring).
std::string NodeTestDirFromPython() {
  FILE* p = popen(
      "python3 -c \"import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "
      "'backend', 'test', 'data', 'node'))\" 2>/dev/null",
      "r");
  if (!p) return "";
  char buf[4096];
  std::string out;
  while (fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The node test folder, or an error that says how to get it.
absl::StatusOr<std::string> NodeTestDataDir() {
  static const absl::StatusOr<std::string> dir = []() -> absl::StatusOr<std::string> {
    const char* env = std::getenv("LASGD_ONNX_NODE_TEST_DIR");
    if (env && *env) {
      if (IsDirectory(env)) return std::string(env);
      return absl::NotFoundError(absl::StrCat(
          "LASGD_ONNX_NODE_TEST_DIR is '", env,
          "', which is not a folder; point it at onnx/backend/test/data/node of onnx 1.22.0"));
    }
    std::string configured = LASGD_ONNX_NODE_TEST_DIR_DEFAULT;
    if (!configured.empty() && IsDirectory(configured)) return configured;
    std::string found = NodeTestDirFromPython();
    if (!found.empty() && IsDirectory(found)) return found;
    return absl::NotFoundError(absl::StrCat(
        "the ONNX backend node test data are missing (CMake found '", configured,
        "'; python3 found '", found,
        "'). Run `bash tests/setup_python.sh` (it installs onnx==1.22.0, which ships them), "
        "or set LASGD_ONNX_NODE_TEST_DIR to onnx/backend/test/data/node"));
  }();
  return dir;
}

std::vector<std::string> ReadList(const std::string& path) {
  std::vector<std::string> names;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

struct DataSet {
  std::string name;
  std::vector<Tensor> inputs;   // input_K.pb, fed to the K-th graph input
  std::vector<Tensor> outputs;  // output_K.pb, the K-th graph output
};

struct NodeTest {
  graph::Graph graph;
  std::vector<DataSet> data_sets;
};

absl::StatusOr<std::vector<Tensor>> LoadNumberedTensors(const std::string& dir,
                                                        const std::string& prefix) {
  std::vector<Tensor> tensors;
  for (int k = 0;; ++k) {
    std::string path = absl::StrCat(dir, "/", prefix, "_", k, ".pb");
    if (!fs::exists(path)) break;
    auto t = importers::LoadTensorProtoFile(path);
    if (!t.ok()) return WithContext(t.status(), absl::StrCat("while reading ", prefix, "_", k));
    tensors.push_back(std::move(*t));
  }
  return tensors;
}

absl::Status LoadDataSets(const std::string& dir, NodeTest& test) {
  std::vector<std::string> sets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind("test_data_set_", 0) == 0) sets.push_back(name);
  }
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return absl::NotFoundError(absl::StrCat("'", dir, "' has no test_data_set_*"));
  for (const std::string& name : sets) {
    DataSet ds;
    ds.name = name;
    ASSIGN_OR_RETURN(ds.inputs, LoadNumberedTensors(dir + "/" + name, "input"));
    ASSIGN_OR_RETURN(ds.outputs, LoadNumberedTensors(dir + "/" + name, "output"));
    test.data_sets.push_back(std::move(ds));
  }
  return absl::OkStatus();
}

// Why a failure happened, so the op owners can triage: the graph did not
// compile or a kernel errored ("exception"), an output had the wrong dtype
// or shape ("shape"), or wrong numbers ("values").
struct Failure {
  std::string category;
  std::string message;
};

bool SameShapes(const std::vector<Shape>& a, const DataSet& ds) {
  if (a.size() != ds.inputs.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != ds.inputs[i].shape()) return false;
  }
  return true;
}

// Small integer inputs (starts, shape, repeats, pads, split, ...) that decide
// an output's shape: lasgd compiles static shapes, so they must be constants.
// Range's start/limit/delta are scalars of any numeric type.
bool IsShapeLikeInput(const Tensor& t) {
  return t.rank() == 0 || (IsInteger(t.dtype()) && t.rank() == 1 && t.num_elements() <= 64);
}

struct Compiled {
  std::unique_ptr<runtime::Executor> executor;
  std::vector<bool> frozen;  // per graph input: baked into the graph as a constant
};

// Compiles `g` for `ds`'s input shapes. With `freeze_shape_inputs`, the
// shape-like integer inputs become constant initializers holding `ds`'s
// values: the node tests feed Slice's starts or Reshape's shape as inputs,
// which a static-shape compiler can only take as constants.
absl::StatusOr<Compiled> Compile(const graph::Graph& g, const DataSet& ds,
                                 const std::string& kernel, bool freeze_shape_inputs) {
  graph::Graph copy = g;
  Compiled c;
  c.frozen.assign(g.inputs.size(), false);
  runtime::CompileOptions options;
  options.kernel = kernel;
  copy.inputs.clear();
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const std::string& name = g.inputs[i].name;
    if (freeze_shape_inputs && IsShapeLikeInput(ds.inputs[i])) {
      copy.initializers[name] = ds.inputs[i];
      copy.constant_names.insert(name);
      c.frozen[i] = true;
      continue;
    }
    options.pipeline.binding.input_shapes[name] = ds.inputs[i].shape();
    copy.inputs.push_back(g.inputs[i]);
  }
  ASSIGN_OR_RETURN(c.executor, runtime::Executor::Create(std::move(copy), options));
  return c;
}

bool NeedsConstantInputs(const absl::Status& s) {
  return s.message().find("constant") != absl::string_view::npos;
}

// Compiles the graph (once per distinct set of input shapes, or per data set
// when inputs had to be frozen) with `kernel` ("" = fastest) and checks
// every data set's outputs.
std::vector<Failure> RunNodeTest(const NodeTest& test, const std::string& kernel) {
  std::vector<Failure> failures;
  const graph::Graph& g = test.graph;
  std::optional<Compiled> compiled;
  std::vector<Shape> compiled_shapes;
  bool freeze = false;
  for (const DataSet& ds : test.data_sets) {
    std::string where = ds.name + ": ";
    if (ds.inputs.size() != g.inputs.size()) {
      failures.push_back(
          {"exception", absl::StrCat(where, ds.inputs.size(), " input files but the model has ",
                                     g.inputs.size(), " inputs")});
      continue;
    }
    if (ds.outputs.size() != g.outputs.size()) {
      failures.push_back(
          {"exception", absl::StrCat(where, ds.outputs.size(), " output files but the model has ",
                                     g.outputs.size(), " outputs")});
      continue;
    }
    if (!compiled || freeze || !SameShapes(compiled_shapes, ds)) {
      compiled.reset();
      auto c = Compile(g, ds, kernel, freeze);
      if (!c.ok() && !freeze && NeedsConstantInputs(c.status())) {
        freeze = true;
        c = Compile(g, ds, kernel, freeze);
      }
      if (!c.ok()) {
        failures.push_back(
            {"exception", absl::StrCat(where, "compile", freeze ? " (shape inputs frozen)" : "",
                                       ": ", c.status().ToString())});
        continue;
      }
      compiled = std::move(*c);
      compiled_shapes.clear();
      for (const Tensor& t : ds.inputs) compiled_shapes.push_back(t.shape());
    }
    std::map<std::string, Tensor> feeds;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      if (!compiled->frozen[i]) feeds[g.inputs[i].name] = ds.inputs[i];
    }
    auto results = compiled->executor->Run(feeds);
    if (!results.ok()) {
      failures.push_back({"exception", where + "run: " + results.status().ToString()});
      continue;
    }
    for (size_t k = 0; k < g.outputs.size(); ++k) {
      const std::string& name = g.outputs[k].name;
      const Tensor& expected = ds.outputs[k];
      auto it = results->find(name);
      if (it == results->end()) {
        failures.push_back({"shape", absl::StrCat(where, "output '", name, "' was not returned")});
        continue;
      }
      const Tensor& actual = it->second;
      if (expected.dtype() != actual.dtype() || expected.shape() != actual.shape()) {
        failures.push_back(
            {"shape", absl::StrCat(where, "output '", name, "': expected ", expected.TypeString(),
                                   ", got ", actual.TypeString())});
        continue;
      }
      bool exact = !IsFloatingPoint(expected.dtype());
      ::testing::AssertionResult near =
          testing::TensorsNear(expected, actual, exact ? 0 : kRtol, exact ? 0 : kAtol);
      if (!near) {
        failures.push_back(
            {"values", absl::StrCat(where, "output '", name, "': ", near.message())});
      }
    }
  }
  return failures;
}

// Runs with the fastest kernels, then (if those pass) with the reference
// kernels only; both must pass for a test to be listed.
std::vector<Failure> RunWithBothKernelSets(const NodeTest& test) {
  std::vector<Failure> failures = RunNodeTest(test, "");
  for (Failure& f : failures) f.message = "fastest kernels: " + f.message;
  if (!failures.empty()) return failures;
  failures = RunNodeTest(test, "reference");
  for (Failure& f : failures) f.message = "reference kernels: " + f.message;
  return failures;
}

// ---- the listed tests ----

class OnnxNodeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxNodeTest, Passes) {
  auto data_dir = NodeTestDataDir();
  ASSERT_TRUE(data_dir.ok()) << data_dir.status().message();
  std::string dir = *data_dir + "/" + GetParam();
  ASSERT_TRUE(IsDirectory(dir)) << "'" << GetParam()
                                << "' is listed in node_tests_expected_pass.txt but '" << dir
                                << "' does not exist (is onnx==1.22.0 installed?)";
  NodeTest test;
  auto g = importers::LoadOnnxModel(dir + "/model.onnx");
  ASSERT_TRUE(g.ok()) << g.status();
  test.graph = std::move(*g);
  absl::Status loaded = LoadDataSets(dir, test);
  ASSERT_TRUE(loaded.ok()) << loaded;
  for (const std::string kernel : {"", "reference"}) {
    for (const Failure& f : RunNodeTest(test, kernel)) {
      ADD_FAILURE() << (kernel.empty() ? "fastest" : kernel) << " kernels [" << f.category
                    << "]: " << f.message;
    }
  }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxNodeTest);
INSTANTIATE_TEST_SUITE_P(Onnx, OnnxNodeTest, ::testing::ValuesIn(ReadList(kListPath)),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- the scan of unlisted tests ----
//
// The scan runs in a child process (this binary, re-executed in worker mode)
// so that a kernel that crashes or hangs on some unlisted test is reported as
// that test's failure instead of failing the scan; the parent restarts a
// worker after the test that killed it. Re-executing (not fork()ing) keeps
// OpenMP's thread pool out of it. The worker writes one line per event:
//   BEGIN <test>            before a test runs
//   PASS  <test> <ops>
//   FAIL  <test> <ops> <category> <detail>
//   SKIP  <test> <ops> <category> <detail>

std::string OpsOf(const graph::Graph& g) {
  std::set<std::string> ops;
  for (const graph::Node& n : g.nodes)
    ops.insert(n.domain.empty() ? n.op_type : n.domain + "." + n.op_type);
  return ops.empty() ? "-" : absl::StrJoin(ops, ",");
}

// One test in the worker: import, skip what we cannot support, run.
std::string ScanOneTest(const std::string& data_dir, const std::string& name) {
  std::string dir = data_dir + "/" + name;
  auto g = importers::LoadOnnxModel(dir + "/model.onnx");
  if (!g.ok()) {
    std::string msg(g.status().message());
    std::string category = "import error";
    if (msg.find("is not a tensor") != std::string::npos)
      category = "sequence/optional types";
    else if (msg.find("data type") != std::string::npos)
      category = "unsupported data type";
    else if (msg.find("functions are not supported") != std::string::npos)
      category = "model-local functions";
    return absl::StrCat("SKIP\t", name, "\t-\t", category, "\t", OneLine(msg));
  }
  std::string ops = OpsOf(*g);
  std::vector<std::string> bad_types;
  for (const auto* values : {&g->inputs, &g->outputs}) {
    for (const graph::ValueInfo& vi : *values) {
      if (!IsSupportedDataType(vi.dtype)) bad_types.push_back(vi.name + ": " + vi.TypeString());
    }
  }
  if (!bad_types.empty()) {
    return absl::StrCat("SKIP\t", name, "\t", ops, "\tunsupported data type\t",
                        OneLine(absl::StrJoin(bad_types, ", ")));
  }
  std::vector<std::string> unsupported = graph::FindUnsupportedOps(*g);
  if (!unsupported.empty()) {
    // The registry says "op 'X' ... is not supported" for an op we lack and
    // "opset N is not supported for X" for one we have at other opsets.
    bool lacks_op = false;
    for (const std::string& u : unsupported)
      lacks_op = lacks_op || u.find("is not supported for") == std::string::npos;
    std::string category = lacks_op ? "unsupported ops" : "unsupported opsets";
    for (const graph::Node& n : g->nodes) {
      const std::string& op = n.op_type;
      if (n.domain.rfind("ai.onnx.preview", 0) == 0)
        category = "preview domains (ai.onnx.preview*)";
      if (op.rfind("Sequence", 0) == 0 || op.rfind("Optional", 0) == 0 || op == "SplitToSequence" ||
          op == "ConcatFromSequence")
        category = "sequence/optional types";
    }
    return absl::StrCat("SKIP\t", name, "\t", ops, "\t", category, "\t",
                        OneLine(absl::StrJoin(unsupported, "; ")));
  }
  NodeTest test;
  test.graph = std::move(*g);
  absl::Status loaded = LoadDataSets(dir, test);
  if (!loaded.ok()) {
    return absl::StrCat("SKIP\t", name, "\t", ops, "\tunreadable test data\t",
                        OneLine(std::string(loaded.message())));
  }
  std::vector<Failure> failures;
  try {
    failures = RunWithBothKernelSets(test);
  } catch (const std::exception& e) {
    failures.push_back({"exception", absl::StrCat("C++ exception: ", e.what())});
  }
  if (failures.empty()) return absl::StrCat("PASS\t", name, "\t", ops);
  return absl::StrCat(
      "FAIL\t", name, "\t", ops, "\t", failures[0].category, "\t", OneLine(failures[0].message),
      failures.size() > 1 ? absl::StrCat(" (+", failures.size() - 1, " more)") : std::string());
}

int RunScanWorker(const char* names_path, const char* out_path) {
  auto data_dir = NodeTestDataDir();
  if (!data_dir.ok()) return 2;
  std::ofstream out(out_path, std::ios::app);
  for (const std::string& name : ReadList(names_path)) {
    out << "BEGIN\t" << name << "\n" << std::flush;
    // Paths inside the data folder are clearer (and shorter) relative.
    out << absl::StrReplaceAll(ScanOneTest(*data_dir, name), {{*data_dir + "/", ""}}) << "\n"
        << std::flush;
  }
  return 0;
}

struct ScanResult {
  std::string status;  // PASS, FAIL, SKIP
  std::string ops, category, detail;
};

// Runs `names` in worker processes; returns a result for every name.
std::map<std::string, ScanResult> RunScanWorkers(const std::vector<std::string>& names) {
  std::map<std::string, ScanResult> results;
  char tmpl[] = "/tmp/lasgd_node_scan_XXXXXX";
  const char* tmp = mkdtemp(tmpl);
  if (!tmp) {
    ADD_FAILURE() << "cannot create a temporary folder for the scan";
    return results;
  }
  const std::string in_path = std::string(tmp) + "/names.txt";
  const std::string out_path = std::string(tmp) + "/results.txt";
  std::vector<std::string> remaining = names;
  while (!remaining.empty()) {
    {
      std::ofstream in(in_path, std::ios::trunc);
      for (const std::string& n : remaining) in << n << "\n";
    }
    std::ofstream(out_path, std::ios::trunc).close();
    setenv(kWorkerInEnv, in_path.c_str(), 1);
    setenv(kWorkerOutEnv, out_path.c_str(), 1);
    std::string self = fs::read_symlink("/proc/self/exe").string();
    char* argv[] = {self.data(), nullptr};
    pid_t pid;
    int spawned = posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, environ);
    unsetenv(kWorkerInEnv);
    unsetenv(kWorkerOutEnv);
    if (spawned != 0) {
      ADD_FAILURE() << "cannot start the scan worker '" << self << "': error " << spawned;
      break;
    }
    // Wait, killing the worker if it stops making progress.
    int wstatus = 0;
    off_t last_size = -1;
    auto last_progress = std::chrono::steady_clock::now();
    bool timed_out = false;
    while (true) {
      pid_t done = waitpid(pid, &wstatus, WNOHANG);
      if (done == pid) break;
      struct stat st;
      off_t size = stat(out_path.c_str(), &st) == 0 ? st.st_size : 0;
      auto now = std::chrono::steady_clock::now();
      if (size != last_size) {
        last_size = size;
        last_progress = now;
      } else if (now - last_progress > std::chrono::seconds(kScanTestTimeoutSeconds)) {
        kill(pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
        timed_out = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream results_in(out_path);
    std::string line, running;
    std::set<std::string> finished;
    while (std::getline(results_in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, '\t');
      if (f.size() < 2) continue;
      if (f[0] == "BEGIN") {
        running = f[1];
        continue;
      }
      ScanResult r{f[0], f.size() > 2 ? f[2] : "", f.size() > 3 ? f[3] : "",
                   f.size() > 4 ? f[4] : ""};
      results[f[1]] = r;
      finished.insert(f[1]);
      running.clear();
    }
    if (!running.empty()) {
      std::string why = timed_out ? absl::StrCat("no result within ", kScanTestTimeoutSeconds, " s")
                        : WIFSIGNALED(wstatus)
                            ? absl::StrCat("the process died of signal ", WTERMSIG(wstatus), " (",
                                           strsignal(WTERMSIG(wstatus)), ")")
                            : absl::StrCat("the process exited with status ", WEXITSTATUS(wstatus));
      results[running] = {"FAIL", "?", timed_out ? "hang" : "crash", why};
      finished.insert(running);
    } else if (finished.empty()) {
      ADD_FAILURE() << "the scan worker ran no test (exit status " << wstatus << ")";
      break;
    }
    std::vector<std::string> next;
    for (const std::string& n : remaining) {
      if (!finished.count(n)) next.push_back(n);
    }
    remaining = std::move(next);
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return results;
}

void WriteList(const std::vector<std::string>& names) {
  std::ofstream out(kListPath, std::ios::trunc);
  out << "# ONNX backend node tests (onnx 1.22.0) that must pass with the fastest and the\n"
         "# reference kernels. Regenerate with LASGD_UPDATE_NODE_TEST_LIST=1 and\n"
         "#   onnx_node_test --gtest_filter=OnnxNodeScan.*\n";
  for (const std::string& n : names) out << n << "\n";
}

TEST(OnnxNodeScan, ReportsUnlistedTestsThatPass) {
  auto data_dir = NodeTestDataDir();
  ASSERT_TRUE(data_dir.ok()) << data_dir.status().message();
  const char* update_env = std::getenv("LASGD_UPDATE_NODE_TEST_LIST");
  const bool update = update_env && std::string(update_env) == "1";

  std::vector<std::string> all;
  for (const auto& entry : fs::directory_iterator(*data_dir)) {
    if (entry.is_directory()) all.push_back(entry.path().filename().string());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> listed_vec = ReadList(kListPath);
  std::set<std::string> listed(listed_vec.begin(), listed_vec.end());
  std::vector<std::string> to_scan;
  for (const std::string& n : all) {
    if (update || !listed.count(n)) to_scan.push_back(n);
  }
  std::map<std::string, ScanResult> results = RunScanWorkers(to_scan);

  std::map<std::string, std::vector<std::string>> skipped;  // category -> lines
  // category -> op -> tests needing it
  std::map<std::string, std::map<std::string, int>> missing_ops;
  std::vector<std::string> failed, passing, newly_passing, listed_failing;
  for (const std::string& n : to_scan) {
    auto it = results.find(n);
    if (it == results.end()) continue;
    const ScanResult& r = it->second;
    if (r.status == "PASS") {
      passing.push_back(n);
      if (!listed.count(n)) newly_passing.push_back(n);
    } else if (listed.count(n)) {  // only in update mode: it is dropped from the list
      listed_failing.push_back(absl::StrCat(n, " (", r.ops, ") [", r.category, "]: ", r.detail));
    } else if (r.status == "SKIP") {
      if (r.category == "unsupported ops" || r.category == "unsupported opsets") {
        // Count the ops we lack ("op 'Foo' of domain ...") or lack at some
        // opset ("opset 22 is not supported for Foo; ...").
        for (absl::string_view part : absl::StrSplit(r.detail, "; ")) {
          size_t a = part.find("op '");
          size_t b = a == absl::string_view::npos ? a : part.find('\'', a + 4);
          if (b != absl::string_view::npos) {
            ++missing_ops[r.category][std::string(part.substr(a + 4, b - a - 4))];
            continue;
          }
          a = part.find("opset ");
          b = part.find(" is not supported for ");
          if (a == absl::string_view::npos || b == absl::string_view::npos) continue;
          absl::string_view op = part.substr(b + 22);
          op = op.substr(0, op.find(';'));
          ++missing_ops[r.category][absl::StrCat(op, "@", part.substr(a + 6, b - a - 6))];
        }
        skipped[r.category].push_back(n);
      } else {
        skipped[r.category].push_back(absl::StrCat(n, ": ", r.detail));
      }
    } else {
      failed.push_back(absl::StrCat(n, " (", r.ops, ") [", r.category, "]: ", r.detail));
    }
  }

  std::ostringstream os;
  os << "ONNX node test scan of " << *data_dir << ": " << all.size() << " tests, " << listed.size()
     << " listed, " << to_scan.size() << " scanned\n";
  for (const auto& [category, lines] : skipped) {
    os << "SKIPPED (" << category << "): " << lines.size() << "\n";
    if (missing_ops.count(category)) {
      std::vector<std::string> ops;
      for (const auto& [op, count] : missing_ops[category])
        ops.push_back(absl::StrCat(op, " (", count, ")"));
      os << "  " << (category == "unsupported ops" ? "ops" : "op@opset")
         << " we lack (tests needing them): " << absl::StrJoin(ops, ", ") << "\n";
    } else {
      for (const std::string& l : lines) os << "  " << l << "\n";
    }
  }
  os << "FAILING (supported ops, not listed): " << failed.size() << "\n";
  for (const std::string& l : failed) os << "  " << l << "\n";
  if (update) {
    os << "LISTED BUT FAILING OR SKIPPED NOW (dropped from the list): " << listed_failing.size()
       << "\n";
    for (const std::string& l : listed_failing) os << "  " << l << "\n";
  }
  os << "NOW PASSING, NOT LISTED: " << newly_passing.size() << "\n";
  for (const std::string& n : newly_passing) os << "  " << n << "\n";
  if (update) {
    WriteList(passing);
    os << "wrote " << passing.size() << " tests to " << kListPath << "\n";
  } else if (!newly_passing.empty()) {
    os << "add them to " << kListPath
       << " (or rerun this case with LASGD_UPDATE_NODE_TEST_LIST=1)\n";
  }
  std::cout << os.str() << std::flush;
}

}  // namespace
}  // namespace lasgd

// The scan re-executes this binary in worker mode (see RunScanWorkers).
int main(int argc, char** argv) {
  const char* worker_in = std::getenv(lasgd::kWorkerInEnv);
  const char* worker_out = std::getenv(lasgd::kWorkerOutEnv);
  if (worker_in && worker_out) return lasgd::RunScanWorker(worker_in, worker_out);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
