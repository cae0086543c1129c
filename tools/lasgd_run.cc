// lasgd-run: train and compute ONNX models.
//
//   lasgd-run train CONFIG.toml [--set section.key=value]...
//   mpirun -np N lasgd-run train CONFIG.toml ...   (data-parallel, [distributed])
//   lasgd-run infer MODEL --input NAME=FILE.npy [...] --output-dir DIR [--threads N]
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "importers/onnx_importer.h"
#include "runtime/config_parser.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "runtime/session.h"
#if LASGD_WITH_MPI
#include "distributed/mpi_communicator.h"
#endif

namespace {

constexpr char kUsage[] =
    "usage: lasgd-run train CONFIG.toml [--set section.key=value]...\n"
    "  Trains the model the config names; see the README for every key. Under\n"
    "  mpirun/srun every rank trains its shard with [distributed] algorithm.\n"
    "       lasgd-run infer MODEL.onnx --input NAME=FILE.npy [--input ...] --output-dir DIR\n"
    "                 [--threads N] [--kernel NAME] [--repeat N]\n"
    "  Computes the model on CPU and writes every graph output as DIR/<output name>.npy.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "lasgd-run: error: %s\n", message.c_str());
  return 1;
}

// Output names may contain '/' or ':' (tf2onnx); keep file names flat.
std::string FileNameFor(const std::string& output) {
  std::string s = output;
  for (char& c : s)
    if (c == '/' || c == '\\' || c == ':') c = '_';
  return s;
}

int Infer(int argc, char** argv) {
  using namespace lasgd;
  std::string model_path, output_dir, kernel;
  std::map<std::string, std::string> input_files;
  int threads = 0, repeat = 1;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "lasgd-run: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--input") {
      std::string spec = value("--input");
      size_t eq = spec.find('=');
      if (eq == std::string::npos || eq == 0)
        return Fail("--input takes NAME=FILE.npy, got '" + spec + "'");
      input_files[spec.substr(0, eq)] = spec.substr(eq + 1);
    } else if (arg == "--output-dir") {
      output_dir = value("--output-dir");
    } else if (arg == "--kernel") {
      kernel = value("--kernel");
    } else if (arg == "--threads") {
      if (!absl::SimpleAtoi(value("--threads"), &threads) || threads < 0)
        return Fail("--threads needs an integer >= 0");
    } else if (arg == "--repeat") {
      if (!absl::SimpleAtoi(value("--repeat"), &repeat) || repeat < 1)
        return Fail("--repeat needs an integer >= 1");
    } else if (absl::StartsWith(arg, "-")) {
      std::fprintf(stderr, "lasgd-run: unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    } else if (model_path.empty()) {
      model_path = arg;
    } else {
      return Fail("unexpected argument '" + arg + "'");
    }
  }
  if (model_path.empty() || output_dir.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto g = importers::LoadOnnxModel(model_path);
  if (!g.ok()) return Fail(std::string(g.status().message()));
  std::map<std::string, Tensor> feeds;
  runtime::CompileOptions options;
  options.kernel = kernel;
  options.num_threads = threads;
  for (const auto& [name, file] : input_files) {
    if (!g->IsGraphInput(name)) {
      std::string names;
      for (const auto& in : g->inputs) absl::StrAppend(&names, names.empty() ? "" : ", ", in.name);
      return Fail(absl::StrCat("--input ", name, ": the model has no input named '", name,
                               "'; its inputs are: ", names));
    }
    auto t = runtime::ReadNpy(file);
    if (!t.ok()) return Fail(absl::StrCat("--input ", name, ": ", t.status().message()));
    feeds[name] = *t;
    options.pipeline.binding.input_shapes[name] = t->shape();
  }
  for (const auto& in : g->inputs) {
    if (!feeds.count(in.name))
      return Fail(absl::StrCat("input '", in.name, "' (", in.TypeString(),
                               ") was not given; pass --input ", in.name, "=FILE.npy"));
  }
  auto ex = runtime::Executor::Create(std::move(*g), options);
  if (!ex.ok()) return Fail(std::string(ex.status().message()));
  absl::StatusOr<std::map<std::string, Tensor>> outputs;
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < repeat; ++r) {
    outputs = (*ex)->Run(feeds);
    if (!outputs.ok()) return Fail(std::string(outputs.status().message()));
  }
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      repeat;
  mkdir(output_dir.c_str(), 0755);
  for (const auto& [name, t] : *outputs) {
    std::string path = output_dir + "/" + FileNameFor(name) + ".npy";
    absl::Status st = runtime::WriteNpy(path, t);
    if (!st.ok()) return Fail(std::string(st.message()));
    std::printf("%s: %s -> %s\n", name.c_str(), t.TypeString().c_str(), path.c_str());
  }
  std::fprintf(stderr, "%.3f ms per run (%d run(s)), arena %zu bytes\n", ms, repeat,
               (*ex)->arena_bytes());
  return 0;
}

int Train(int argc, char** argv) {
  using namespace lasgd;
  std::string config_path;
  std::vector<std::string> overrides;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--set") {
      if (i + 1 >= argc) return Fail("--set needs section.key=value");
      overrides.push_back(argv[++i]);
    } else if (absl::StartsWith(arg, "--set=")) {
      overrides.push_back(arg.substr(6));
    } else if (absl::StartsWith(arg, "-")) {
      std::fprintf(stderr, "lasgd-run: unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    } else if (config_path.empty()) {
      config_path = arg;
    } else {
      return Fail("unexpected argument '" + arg + "'");
    }
  }
  if (config_path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto config = runtime::LoadTrainConfig(config_path, overrides);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  // One rank of a job launched by mpirun/srun: talk to the others over MPI.
  std::unique_ptr<distributed::Communicator> comm;
#if LASGD_WITH_MPI
  if (distributed::LaunchedUnderMpi()) {
    distributed::CommOptions options;
    options.timeout_s = config->distributed.timeout_s;
    options.latency_ms = config->distributed.latency_ms;
    options.bandwidth_mb_s = config->distributed.bandwidth_mb_s;
    auto created = distributed::CreateMpiCommunicator(options);
    if (!created.ok()) return Fail(std::string(created.status().message()));
    comm = std::move(*created);
  }
#endif
  if (!comm && config->distributed.algorithm != "none") {
    std::fprintf(stderr,
                 "lasgd-run: note: distributed.algorithm = \"%s\" but not launched by mpirun; "
                 "training as a single rank\n",
                 config->distributed.algorithm.c_str());
  }
  // An error on one rank ends the whole job (MPI_Abort), so that no other
  // rank waits for this one until its timeout.
  auto fail_rank = [&](const absl::Status& status) {
    if (comm && comm->size() > 1) {
      std::fprintf(stderr, "lasgd-run: error on rank %d of %d: %s\n", comm->rank(), comm->size(),
                   std::string(status.message()).c_str());
      std::fflush(stderr);
      comm->Abort(1);
    }
    return Fail(std::string(status.message()));
  };
  auto session = runtime::TrainingSession::Create(*config, comm.get());
  if (!session.ok()) return fail_rank(session.status());
  absl::Status st = (*session)->Train(stderr);
  if (!st.ok()) return fail_rank(st);
  const auto& eval = (*session)->last_eval();
  if (eval.samples > 0 && (*session)->rank() == 0)
    std::printf("test_top1 %.4f test_loss %.4f\n", eval.top1, eval.loss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "infer") return Infer(argc - 2, argv + 2);
  if (command == "train") return Train(argc - 2, argv + 2);
  std::fprintf(stderr, "lasgd-run: unknown command '%s' (known: train, infer)\n%s", command.c_str(),
               kUsage);
  return 2;
}
