// Training throughput of one ONNX model (exported in training mode) on CPU:
// builds the training program (cross-entropy loss, backward, SGD with
// momentum), runs `--warmup` + `--iters` steps on one fixed random batch and
// prints samples/s and the process's peak RSS as one JSON line, so that
// bench/train_vs_pytorch.py can put them beside PyTorch's numbers.
//
// The training program and executor are built here the way
// runtime::TrainingSession builds them, without a dataset or data loader:
// the PyTorch side of the comparison times the optimizer step on a fixed
// tensor too, so neither side pays for data loading.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "graph/passes/training.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"
#include "runtime/train_config.h"

namespace {

// Peak resident set size of this process in bytes: VmHWM of /proc/self/status
// where it exists. Not getrusage's ru_maxrss: Linux carries that across
// execve, so a benchmark started by a large parent (a Python process that
// imported torch) would report the parent's peak instead of its own.
long long PeakRssBytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f) {
    char line[256];
    long long kib = -1;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib >= 0) return kib * 1024;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<long long>(usage.ru_maxrss) * 1024;
}

// Current resident set size in bytes (/proc/self/statm counts pages).
long long CurrentRssBytes() {
  long long pages_total = 0, pages_resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (std::fscanf(f, "%lld %lld", &pages_total, &pages_resident) != 2) pages_resident = 0;
  std::fclose(f);
  return pages_resident * sysconf(_SC_PAGESIZE);
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lasgd;
  std::string model_path;
  int64_t batch = 32;
  int threads = 2, iters = 10, warmup = 2;
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  bool profile = false, plan = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto num = [&](const char* prefix, auto* out) {
      if (!absl::StartsWith(a, prefix)) return false;
      std::string value = a.substr(std::string(prefix).size());
      if constexpr (std::is_floating_point_v<std::remove_pointer_t<decltype(out)>>) {
        return absl::SimpleAtod(value, out);
      } else {
        return absl::SimpleAtoi(value, out);
      }
    };
    if (num("--batch=", &batch) || num("--threads=", &threads) || num("--iters=", &iters) ||
        num("--warmup=", &warmup) || num("--lr=", &lr) || num("--momentum=", &momentum) ||
        num("--weight-decay=", &weight_decay)) {
      continue;
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--plan") {
      plan = true;
    } else if (!absl::StartsWith(a, "-") && model_path.empty()) {
      model_path = a;
    } else {
      std::fprintf(stderr,
                   "usage: lasgd-bench-train MODEL [--batch=N] [--threads=N] [--iters=N] "
                   "[--warmup=N] [--lr=F] [--momentum=F] [--weight-decay=F] [--profile] "
                   "[--plan]\n");
      return 2;
    }
  }
  if (model_path.empty() || batch < 1 || iters < 1 || warmup < 0)
    return Fail("need a model path, --batch >= 1, --iters >= 1 and --warmup >= 0");

  auto forward = importers::LoadOnnxModel(model_path);
  if (!forward.ok()) return Fail(std::string(forward.status().message()));
  // Resident memory after each phase, to tell where the peak comes from.
  std::vector<std::pair<std::string, long long>> rss = {{"loaded", CurrentRssBytes()}};
  runtime::TrainConfig config;
  config.model.path = model_path;
  config.data.batch_size = batch;
  config.loss.type = "cross_entropy";
  config.optimizer.type = "sgd";
  config.optimizer.lr = lr;
  config.optimizer.momentum = momentum;
  config.optimizer.weight_decay = weight_decay;
  config.train.threads = threads;
  auto program = graph::BuildTrainingProgram(*forward, config, batch);
  if (!program.ok()) return Fail(std::string(program.status().message()));
  rss.emplace_back("program", CurrentRssBytes());

  runtime::CompileOptions options;
  options.num_threads = threads;
  options.profile = profile;
  auto ex = runtime::Executor::Create(program->graph, options);
  if (!ex.ok()) return Fail(std::string(ex.status().message()));
  rss.emplace_back("compiled", CurrentRssBytes());
  if (plan) std::fputs((*ex)->PlanReport().c_str(), stderr);

  // One fixed batch: N(0,1) samples and uniform labels over the logits' width.
  const graph::ValueInfo* input = program->graph.FindValueInfo(program->data_input);
  const graph::ValueInfo* logits = program->graph.FindValueInfo(program->logits);
  if (!input || !logits || logits->shape.size() != 2)
    return Fail("the model needs one data input and [batch, classes] logits");
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  Tensor x = Tensor::Allocate(input->dtype, input->shape);
  for (int64_t i = 0; i < x.num_elements(); ++i) x.SetFromDouble(i, normal(rng));
  Tensor labels = Tensor::Allocate(DataType::kInt64, {batch});
  std::uniform_int_distribution<int64_t> cls(0, logits->shape[1] - 1);
  for (int64_t i = 0; i < batch; ++i) labels.data<int64_t>()[i] = cls(rng);
  Tensor lr_t = Tensor::Allocate(DataType::kFloat32, {});
  lr_t.SetFromDouble(0, lr);
  Tensor step_t = Tensor::Allocate(DataType::kInt64, {});

  std::vector<double> ms;
  double loss = 0, total_ms = 0;
  for (int i = 0; i < warmup + iters; ++i) {
    step_t.data<int64_t>()[0] = i;
    std::map<std::string, Tensor> feeds = {{program->data_input, x},
                                           {program->labels_input, labels},
                                           {program->lr_input, lr_t},
                                           {program->step_input, step_t}};
    auto start = std::chrono::steady_clock::now();
    auto out = (*ex)->Run(feeds);
    double elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!out.ok()) return Fail(std::string(out.status().message()));
    loss = out->at(program->loss).GetAsDouble(0);
    if (i == 0) rss.emplace_back("first_step", CurrentRssBytes());
    if (i >= warmup) {
      ms.push_back(elapsed);
      total_ms += elapsed;
    }
  }
  if (profile) std::fputs((*ex)->ProfileReport(25).c_str(), stderr);
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  rss.emplace_back("last_step", CurrentRssBytes());
  std::string phases;
  for (const auto& [phase, bytes] : rss)
    phases += (phases.empty() ? "" : ", ") + ("\"" + phase + "\": " + std::to_string(bytes));
  std::printf(
      "{\"framework\": \"lasgd\", \"model\": \"%s\", \"batch\": %lld, \"threads\": %d, "
      "\"iters\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, \"samples_per_s\": %.2f, "
      "\"mean_samples_per_s\": %.2f, \"peak_rss_bytes\": %lld, \"arena_bytes\": %zu, "
      "\"last_loss\": %.6f, \"rss_bytes_after\": {%s}}\n",
      model_path.c_str(), static_cast<long long>(batch), threads, iters, median, ms.front(),
      1000.0 * batch / median, 1000.0 * batch * iters / total_ms, PeakRssBytes(),
      (*ex)->arena_bytes(), loss, phases.c_str());
  return 0;
}
