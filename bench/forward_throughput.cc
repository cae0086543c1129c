// Forward throughput of one ONNX model on CPU: compile once, then time
// `--iters` runs on a fixed random batch and print the median as JSON, so
// that bench/forward_vs_pytorch.py can put it beside PyTorch's number.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"

int main(int argc, char** argv) {
  using namespace lasgd;
  std::string model_path, kernel;
  int64_t batch = 32;
  int threads = 2, iters = 10, warmup = 2;
  bool fuse = true, profile = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto num = [&](const char* prefix, auto* out) {
      return absl::StartsWith(a, prefix) &&
             absl::SimpleAtoi(a.substr(std::string(prefix).size()), out);
    };
    if (num("--batch=", &batch) || num("--threads=", &threads) || num("--iters=", &iters) ||
        num("--warmup=", &warmup)) {
      continue;
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--no-fuse") {
      fuse = false;
    } else if (absl::StartsWith(a, "--kernel=")) {
      kernel = a.substr(9);
    } else if (!absl::StartsWith(a, "-")) {
      model_path = a;
    } else {
      std::fprintf(stderr,
                   "usage: lasgd-bench-forward MODEL [--batch=N] [--threads=N] [--iters=N] "
                   "[--warmup=N] [--no-fuse]\n");
      return 2;
    }
  }
  auto g = importers::LoadOnnxModel(model_path);
  if (!g.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(g.status().message()).c_str());
    return 1;
  }
  runtime::CompileOptions options;
  options.pipeline.binding.batch_size = batch;
  options.pipeline.fuse = fuse;
  options.num_threads = threads;
  options.kernel = kernel;
  options.profile = profile;
  std::map<std::string, Tensor> feeds;
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  graph::Graph copy = *g;
  auto ex = runtime::Executor::Create(std::move(*g), options);
  if (!ex.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(ex.status().message()).c_str());
    return 1;
  }
  for (const auto& in : (*ex)->graph().inputs) {
    Tensor t = Tensor::Allocate(in.dtype, in.shape);
    for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, dist(rng));
    feeds[in.name] = t;
  }
  std::vector<double> ms;
  for (int i = 0; i < warmup + iters; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto out = (*ex)->Run(feeds);
    double elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!out.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(out.status().message()).c_str());
      return 1;
    }
    if (i >= warmup) ms.push_back(elapsed);
  }
  if (profile) std::fputs((*ex)->ProfileReport().c_str(), stderr);
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  std::printf(
      "{\"model\": \"%s\", \"batch\": %lld, \"threads\": %d, \"median_ms\": %.3f, \"min_ms\": "
      "%.3f, "
      "\"samples_per_s\": %.2f, \"arena_bytes\": %zu}\n",
      model_path.c_str(), static_cast<long long>(batch), threads, median, ms.front(),
      1000.0 * batch / median, (*ex)->arena_bytes());
  return 0;
}
