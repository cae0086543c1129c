// The parts of TrainingSession that run programs other than the built-in
// train_step: the accumulate program of gradient accumulation.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "runtime/session.h"

namespace lasgd::runtime {

absl::Status TrainingSession::CompileAccumulation(const CompileOptions& train_options) {
  graph::Graph g = program_.accumulate_graph;
  // Packing re-pointed train_step's initializers at the arenas; the
  // accumulate program must read and write the very same tensors.
  for (auto& [name, t] : g.initializers) {
    auto it = program_.graph.initializers.find(name);
    if (it != program_.graph.initializers.end()) t = it->second;
  }
  CompileOptions options = train_options;
  // train_step updates the parameters between runs of this program.
  for (const std::string& p : program_.parameters) options.mutable_initializers.insert(p);
  options.profile = false;
  auto ex = Executor::Create(std::move(g), options);
  if (!ex.ok())
    return WithContext(ex.status(), "while compiling the gradient accumulation program");
  accumulate_ = std::move(*ex);
  return absl::OkStatus();
}

void TrainingSession::ZeroAccumulators() {
  if (program_.grad_accumulators.empty()) return;
  std::memset(accum_arena_.raw_data(), 0, accum_arena_.nbytes());
}

}  // namespace lasgd::runtime
