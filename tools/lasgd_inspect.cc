// lasgd-inspect: what is in an ONNX model, and what lasgd makes of it.
//
//   lasgd-inspect MODEL                       summary: inputs, outputs, ops, parameters, FLOPs
//   lasgd-inspect --dump-after=PHASE MODEL    the graph after a named compile phase
//   lasgd-inspect --plan MODEL                the kernel chosen for every node and the arena size
//   lasgd-inspect --supported-ops             every op and opset range lasgd supports
//   lasgd-inspect --config=CONFIG.toml --dump-after=training|distributed
//                                             the training program of a training config:
//                                             train_step after autodiff and the optimizer,
//                                             or after the distributed pass together with
//                                             the programs it adds (segment_boundary, finish)
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "distributed/data_parallel.h"
#include "graph/model_stats.h"
#include "graph/pass_pipeline.h"
#include "graph/passes/training.h"
#include "graph/verifier.h"
#include "importers/onnx_importer.h"
#include "ops/op_registry.h"
#include "runtime/config_parser.h"
#include "runtime/executor.h"

namespace {

constexpr char kUsage[] =
    "usage: lasgd-inspect [--batch=N] [--dump-after=PHASE] [--plan] MODEL.onnx\n"
    "       lasgd-inspect --config=CONFIG.toml [--set section.key=value]... "
    "--dump-after=training|distributed [--batch=N]\n"
    "       lasgd-inspect --supported-ops\n"
    "phases: import, verify, shape_inference, simplify, fuse, dce\n"
    "training phases (with --config): training, distributed\n";

std::string WithThousands(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(s[i]);
  }
  return out;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "lasgd-inspect: error: %s\n", message.c_str());
  return 1;
}

// The training program of a training config, after `phase`: "training"
// (loss, autodiff, optimizer) or "distributed" (the [distributed] algorithm's
// rewrite of train_step, then every program it adds).
int DumpTrainingProgram(const std::string& config_path, const std::vector<std::string>& overrides,
                        const std::string& model_override, const std::string& phase,
                        int64_t batch) {
  using namespace lasgd;
  if (phase != "training" && phase != "distributed") {
    return Fail("with --config, --dump-after takes a training phase: training, distributed (got '" +
                phase + "')");
  }
  auto config = runtime::LoadTrainConfig(config_path, overrides);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  if (!model_override.empty()) config->model.path = model_override;
  auto forward = importers::LoadOnnxModel(config->model.path);
  if (!forward.ok()) return Fail(std::string(forward.status().message()));
  if (batch <= 0) batch = config->data.batch_size;
  auto program = graph::BuildTrainingProgram(*forward, *config, batch);
  if (!program.ok()) return Fail(std::string(program.status().message()));
  if (phase == "training") {
    std::cout << "# after phase 'training': train_step\n" << program->graph.ToText();
    return 0;
  }
  // No communicator: the programs are built for this dump only.
  auto dp = distributed::DataParallel::Create(config->distributed, nullptr, &*program);
  if (!dp.ok()) return Fail(std::string(dp.status().message()));
  std::cout << "# " << (*dp)->Describe() << "\n";
  std::cout << "# after phase 'distributed': train_step\n" << program->graph.ToText();
  for (const auto& [name, g] : (*dp)->programs())
    std::cout << "\n# after phase 'distributed': " << name << "\n" << g->ToText();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lasgd;
  std::string model_path, dump_after, config_path;
  std::vector<std::string> overrides;
  int64_t batch = 1;
  bool batch_given = false;
  bool plan = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--supported-ops") {
      for (const std::string& line : ops::OpRegistry::Global().SupportedOpsSummary())
        std::puts(line.c_str());
      return 0;
    } else if (absl::StartsWith(arg, "--dump-after=")) {
      dump_after = arg.substr(13);
    } else if (absl::StartsWith(arg, "--batch=")) {
      if (!absl::SimpleAtoi(arg.substr(8), &batch) || batch <= 0)
        return Fail("--batch needs a positive integer");
      batch_given = true;
    } else if (absl::StartsWith(arg, "--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--set" && i + 1 < argc) {
      overrides.push_back(argv[++i]);
    } else if (absl::StartsWith(arg, "--set=")) {
      overrides.push_back(arg.substr(6));
    } else if (arg == "--plan") {
      plan = true;
    } else if (absl::StartsWith(arg, "-")) {
      std::fprintf(stderr, "lasgd-inspect: unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    } else if (model_path.empty()) {
      model_path = arg;
    } else {
      return Fail("only one model may be given");
    }
  }
  if (!config_path.empty()) {
    if (dump_after.empty()) return Fail("--config needs --dump-after=training or distributed");
    return DumpTrainingProgram(config_path, overrides, model_path, dump_after,
                               batch_given ? batch : 0);
  }
  if (model_path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto imported = importers::LoadOnnxModel(model_path);
  if (!imported.ok()) return Fail(std::string(imported.status().message()));
  graph::Graph g = std::move(*imported);

  graph::PipelineOptions options;
  options.binding.batch_size = batch;
  if (!dump_after.empty()) {
    options.dump_after = dump_after;
    options.dump = &std::cout;
    options.stop_after = dump_after;
    absl::Status st = graph::RunInferencePipeline(g, options);
    return st.ok() ? 0 : Fail(std::string(st.message()));
  }
  if (plan) {
    runtime::CompileOptions co;
    co.pipeline = options;
    auto ex = runtime::Executor::Create(g, co);
    if (!ex.ok()) return Fail(std::string(ex.status().message()));
    std::cout << (*ex)->PlanReport();
    return 0;
  }

  std::printf("model: %s\ngraph: '%s'  opsets:", model_path.c_str(), g.name.c_str());
  for (const auto& [domain, version] : g.opset_imports)
    std::printf(" %s:%lld", domain.empty() ? "ai.onnx" : domain.c_str(),
                static_cast<long long>(version));
  std::printf("\n\ninputs:\n");
  for (const auto& in : g.inputs)
    std::printf("  %s: %s\n", in.name.c_str(), in.TypeString().c_str());
  std::printf("outputs:\n");
  for (const auto& out : g.outputs)
    std::printf("  %s: %s\n", out.name.c_str(), out.TypeString().c_str());
  std::printf("\nops (%zu nodes):\n", g.nodes.size());
  for (const auto& [op, count] : graph::OpHistogram(g))
    std::printf("  %-28s %d\n", op.c_str(), count);

  std::vector<std::string> unsupported = graph::FindUnsupportedOps(g);
  int64_t params = 0, param_bytes = 0;
  for (const std::string& name : graph::FindTrainableParameters(g)) {
    params += g.initializers.at(name).num_elements();
    param_bytes += g.initializers.at(name).nbytes();
  }
  std::printf("\ntrainable parameters: %s (%s bytes, %zu tensors)\n", WithThousands(params).c_str(),
              WithThousands(param_bytes).c_str(), graph::FindTrainableParameters(g).size());
  if (!unsupported.empty()) {
    std::printf("\nunsupported (%zu):\n", unsupported.size());
    for (const std::string& line : unsupported) std::printf("  %s\n", line.c_str());
    return 1;
  }
  graph::Graph inferred = g;
  options.simplify = false;
  options.fuse = false;
  absl::Status st = graph::RunInferencePipeline(inferred, options);
  if (!st.ok()) return Fail(std::string(st.message()));
  // Per sample: divide by the batch the first input was bound to (the
  // --batch value for a symbolic batch, the fixed size otherwise).
  int64_t bound_batch = 1;
  if (!inferred.inputs.empty() && !inferred.inputs[0].shape.empty()) {
    bound_batch = std::max<int64_t>(1, inferred.inputs[0].shape[0]);
  }
  double flops = graph::CountFlops(inferred) / static_cast<double>(bound_batch);
  std::printf("FLOPs per sample: %s (%.3f GFLOPs)\n",
              WithThousands(static_cast<int64_t>(flops)).c_str(), flops / 1e9);
  return 0;
}
