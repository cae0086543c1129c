// Running N ranks of a data-parallel algorithm without a TrainingSession:
// each rank builds the training program of a small model, packs its float
// initializers into one arena (trainable parameters, then BN statistics, as
// the session does), lets DataParallel rewrite it, compiles train_step and
// binds. Shared by the distributed unit and MPI tests.
#pragma once

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/data_parallel.h"
#include "graph/passes/training.h"
#include "runtime/executor.h"
#include "runtime/train_config.h"

namespace lasgd::testing {

struct RankModel {
  graph::TrainingProgram program;
  Tensor arena;  // parameters then buffers, 64-byte aligned tensors
  distributed::ModelBuffers buffers;
  std::unique_ptr<distributed::DataParallel> dp;
  std::unique_ptr<runtime::Executor> train;
  int64_t steps = 0;

  // One optimizer step on this rank's batch, then AfterStep.
  absl::Status Step(const Tensor& x, const Tensor& y, double lr) {
    Tensor lr_t = Tensor::Allocate(DataType::kFloat32, {});
    lr_t.SetFromDouble(0, lr);
    Tensor step_t = Tensor::Allocate(DataType::kInt64, {});
    step_t.data<int64_t>()[0] = steps;
    std::map<std::string, Tensor> feeds = {{program.data_input, x},
                                           {program.labels_input, y},
                                           {program.lr_input, lr_t},
                                           {program.step_input, step_t}};
    RETURN_IF_ERROR(train->Run(feeds).status());
    ++steps;
    if (!dp) return absl::OkStatus();
    distributed::StepReport report;
    report.step = steps;
    report.samples = x.dim(0);
    return dp->AfterStep(report);
  }

  // The parameters and buffers, flat.
  std::vector<float> Flat() const {
    std::vector<float> out(buffers.params, buffers.params + buffers.param_floats);
    out.insert(out.end(), buffers.buffers, buffers.buffers + buffers.buffer_floats);
    return out;
  }
  const Tensor& Parameter(const std::string& name) const {
    return program.graph.initializers.at(name);
  }
};

// Copies `names` into one arena (each tensor 64-byte aligned) and makes the
// program's initializers views into it.
inline Tensor PackInto(graph::Graph& g, const std::vector<std::string>& names) {
  size_t total = 0;
  for (const std::string& n : names) total += (g.initializers.at(n).nbytes() + 63) / 64 * 64;
  Tensor arena =
      Tensor::Allocate(DataType::kUint8, {static_cast<int64_t>(std::max<size_t>(total, 64))});
  size_t offset = 0;
  for (const std::string& n : names) {
    Tensor& t = g.initializers.at(n);
    Tensor view = Tensor::Aliasing(arena, offset, t.dtype(), t.shape());
    view.CopyFrom(t);
    t = view;
    offset += (t.nbytes() + 63) / 64 * 64;
  }
  return arena;
}

// `comm` may be null for a single process without DataParallel (the
// reference run); then config.distributed is ignored.
inline absl::StatusOr<std::unique_ptr<RankModel>> BuildRank(const graph::Graph& forward,
                                                            const runtime::TrainConfig& config,
                                                            int64_t batch,
                                                            distributed::Communicator* comm,
                                                            bool with_data_parallel = true) {
  auto r = std::make_unique<RankModel>();
  ASSIGN_OR_RETURN(r->program, graph::BuildTrainingProgram(forward, config, batch));
  graph::Graph& g = r->program.graph;
  std::vector<std::string> order = r->program.parameters;
  order.insert(order.end(), r->program.buffers.begin(), r->program.buffers.end());
  // Optimizer state too: every rank owns its copy (the forward graph's
  // tensors are shared between the programs built from it).
  std::vector<std::string> state = r->program.optimizer_state;
  r->arena = PackInto(g, order);
  (void)PackInto(g, state);  // the views keep this arena alive
  auto end_of = [&](const std::string& n) {
    const Tensor& t = g.initializers.at(n);
    return reinterpret_cast<const char*>(t.raw_data()) + t.nbytes();
  };
  const Tensor& first = g.initializers.at(r->program.parameters.front());
  r->buffers.params = const_cast<float*>(first.data<float>());
  r->buffers.param_floats = static_cast<size_t>(
      (end_of(r->program.parameters.back()) - reinterpret_cast<const char*>(first.raw_data())) /
      sizeof(float));
  if (!r->program.buffers.empty()) {
    const Tensor& b0 = g.initializers.at(r->program.buffers.front());
    r->buffers.buffers = const_cast<float*>(b0.data<float>());
    r->buffers.buffer_floats = static_cast<size_t>(
        (end_of(r->program.buffers.back()) - reinterpret_cast<const char*>(b0.raw_data())) /
        sizeof(float));
  }
  if (with_data_parallel) {
    ASSIGN_OR_RETURN(r->dp,
                     distributed::DataParallel::Create(config.distributed, comm, &r->program));
  }
  runtime::CompileOptions options;
  options.num_threads = 1;
  ASSIGN_OR_RETURN(r->train, runtime::Executor::Create(r->program.graph, options));
  if (r->dp) RETURN_IF_ERROR(r->dp->Bind(r->buffers));
  return r;
}

// Rows [begin, begin + count) of a [N, ...] tensor, wrapping around.
inline Tensor Rows(const Tensor& all, int64_t begin, int64_t count) {
  Shape shape = all.shape();
  const int64_t n = shape[0];
  shape[0] = count;
  Tensor out = Tensor::Allocate(all.dtype(), shape);
  const size_t row = all.nbytes() / static_cast<size_t>(n);
  for (int64_t i = 0; i < count; ++i) {
    std::memcpy(static_cast<char*>(out.raw_data()) + i * row,
                static_cast<const char*>(all.raw_data()) + ((begin + i) % n) * row, row);
  }
  return out;
}

}  // namespace lasgd::testing
