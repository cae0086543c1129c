// The training session: load -> compile -> step -> evaluate -> checkpoint ->
// export, for one process. `lasgd-run train` is a thin wrapper around it.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/passes/training.h"
#include "runtime/checkpoint.h"
#include "runtime/data/data_loader.h"
#include "runtime/data/dataset.h"
#include "runtime/executor.h"
#include "runtime/lr_schedule.h"
#include "runtime/train_config.h"

namespace lasgd::runtime {

struct EvalResult {
  double loss = 0;
  double top1 = 0;  // fraction in [0, 1]; 0 when the loss is not a classification
  double top5 = 0;
  int64_t samples = 0;
};

class TrainingSession {
 public:
  // Reads the model and the data, builds and compiles the training and
  // evaluation programs. Errors name the config key, file or node at fault.
  static absl::StatusOr<std::unique_ptr<TrainingSession>> Create(TrainConfig config);

  // Runs the whole schedule (resuming first when train.resume says so),
  // evaluating, writing metrics and checkpoints, and exporting at the end.
  // Progress goes to `log` (a bar on a terminal, plain lines otherwise).
  absl::Status Train(FILE* log = stderr);

  // One optimizer step on `batch`; returns the loss. Non-finite losses follow
  // train.on_nan.
  absl::StatusOr<double> Step(const data::Batch& batch);
  // Loss and accuracy over the whole test set (or `dataset` when given).
  absl::StatusOr<EvalResult> Evaluate();

  // Parameters, BN statistics and optimizer state by name (live tensors).
  std::map<std::string, Tensor> State() const;
  // Saves / restores the full training state (tensors, step, data position).
  absl::Status SaveCheckpoint(const std::string& path) const;
  absl::Status RestoreCheckpoint(const std::string& path);
  // Exports the trained model as an ONNX inference model.
  absl::Status Export(const std::string& path) const;

  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const { return train_loader_->batches_per_epoch(); }
  const graph::TrainingProgram& program() const { return program_; }
  const TrainConfig& config() const { return config_; }
  const EvalResult& last_eval() const { return last_eval_; }

 private:
  TrainingSession() = default;
  absl::Status Init();
  absl::StatusOr<Executor*> EvalExecutorFor(int64_t batch_size);
  absl::Status WriteMetrics(int64_t epoch, double train_loss, double wall_s, double samples_per_s);
  Checkpoint MakeCheckpoint() const;

  TrainConfig config_;
  graph::Graph forward_;  // as imported; its initializers share storage with the programs
  graph::TrainingProgram program_;
  std::unique_ptr<Executor> train_;
  std::map<int64_t, std::unique_ptr<Executor>> eval_;
  std::shared_ptr<data::Dataset> train_data_, test_data_;
  std::unique_ptr<data::DataLoader> train_loader_;
  std::unique_ptr<LearningRateSchedule> schedule_;
  Tensor param_arena_, state_arena_;  // contiguous storage of parameters / optimizer state
  int64_t step_ = 0;
  int64_t total_steps_ = 0;
  int64_t num_classes_ = 0;
  int64_t skipped_steps_ = 0;
  EvalResult last_eval_;
};

}  // namespace lasgd::runtime
