// The parts of TrainingSession that run programs other than the built-in
// train_step: the accumulate program of gradient accumulation, and a model's
// own TrainingInfoProto (train.program = "training_info").
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "importers/onnx_importer.h"
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

absl::StatusOr<graph::TrainingProgram> TrainingSession::BuildProgram(int64_t batch_size) {
  if (config_.train.program != "training_info")
    return graph::BuildTrainingProgram(forward_, config_, batch_size);
  if (world_size_ > 1) {
    return absl::UnimplementedError(
        "train.program = \"training_info\" trains on one process; distributed training "
        "builds its own program (train.program = \"builtin\")");
  }
  ASSIGN_OR_RETURN(std::vector<graph::TrainingInfo> infos,
                   importers::LoadOnnxTrainingInfo(config_.model.path));
  if (infos.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.program = \"training_info\" but '", config_.model.path,
                     "' carries no TrainingInfoProto (ModelProto.training_info is empty)"));
  }
  if (infos.size() > 1) {
    return absl::UnimplementedError(
        absl::StrCat("'", config_.model.path, "' carries ", infos.size(),
                     " TrainingInfoProtos (consecutive update steps); lasgd runs models with one"));
  }
  return graph::BuildTrainingInfoProgram(forward_, infos[0], config_, batch_size);
}

absl::Status TrainingSession::RunInitialization() {
  if (program_.initialization_binding.empty()) return absl::OkStatus();
  CompileOptions options;
  options.num_threads = static_cast<int>(config_.train.threads);
  auto ex = Executor::Create(program_.initialization, options);
  if (!ex.ok()) return WithContext(ex.status(), "while compiling the initialization graph");
  auto out = (*ex)->Run({});
  if (!out.ok()) return WithContext(out.status(), "while running the initialization graph");
  for (const auto& [key, value] : program_.initialization_binding) {
    Tensor& target = program_.graph.initializers.at(key);
    const Tensor& t = out->at(value);
    if (t.dtype() != target.dtype() || t.shape() != target.shape()) {
      return absl::InvalidArgumentError(
          absl::StrCat("initialization_binding: '", value, "' is ", DataTypeName(t.dtype()),
                       ShapeToString(t.shape()), " but initializer '", key, "' is ",
                       DataTypeName(target.dtype()), ShapeToString(target.shape())));
    }
    target.CopyFrom(t);  // shared with forward_ for the model's own initializers
  }
  return absl::OkStatus();
}

}  // namespace lasgd::runtime
