// The training session: load -> compile -> step -> evaluate -> checkpoint ->
// export, for one process. `lasgd-run train` is a thin wrapper around it.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "distributed/data_parallel.h"
#include "distributed/straggler.h"
#include "graph/graph.h"
#include "graph/passes/training.h"
#include "runtime/checkpoint.h"
#include "runtime/data/data_loader.h"
#include "runtime/data/dataset.h"
#include "runtime/executor.h"
#include "runtime/learning_curve.h"
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
  // With a communicator (one rank of `mpirun -np N`), this rank trains its
  // shard of the data with [distributed] algorithm; only rank 0 prints,
  // evaluates, writes metrics, checkpoints and the export.
  static absl::StatusOr<std::unique_ptr<TrainingSession>> Create(
      TrainConfig config, distributed::Communicator* comm = nullptr);

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
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  distributed::DataParallel* data_parallel() const { return data_parallel_.get(); }
  int64_t steps_per_epoch() const { return train_loader_->batches_per_epoch(); }
  const graph::TrainingProgram& program() const { return program_; }
  const TrainConfig& config() const { return config_; }
  const EvalResult& last_eval() const { return last_eval_; }

 private:
  TrainingSession() = default;
  absl::Status Init();
  absl::StatusOr<Executor*> EvalExecutorFor(int64_t batch_size);
  absl::Status WriteMetrics(int64_t epoch, double train_loss, double wall_s, double samples_per_s,
                            const std::vector<distributed::RankTiming>& timings);
  // Packs the float initializers into param_arena_ (trainable parameters
  // first, then BN statistics, then the rest) and points the training
  // program at the packed tensors.
  absl::Status PackParameters();
  // The step the LR schedule reads: this rank's optimizer steps, or with
  // segment_ms the global progress every rank agrees on.
  int64_t ScheduleStep() const;
  // A copy of the parameter arena holding the newest average of all ranks'
  // models (DataParallel::LatestAverage), or an empty tensor where there is
  // none.
  absl::StatusOr<Tensor> LatestAverageArena();
  // Whether the run is over (with segment_ms: decided by the averages).
  bool Done() const;
  Checkpoint MakeCheckpoint() const;
  // Gradient accumulation (runtime/session_programs.cc): compiles the
  // accumulate program on the initializers train_step uses, and zeroes the
  // accumulators after a step.
  absl::Status CompileAccumulation(const CompileOptions& options);
  void ZeroAccumulators();
  // The training program train.program asks for: built from the config, or
  // the model's TrainingInfoProto (runtime/session_programs.cc).
  absl::StatusOr<graph::TrainingProgram> BuildProgram(int64_t batch_size);
  // Runs the TrainingInfoProto's initialization graph, if any, into the
  // initializers it binds (after packing, before compiling).
  absl::Status RunInitialization();

  TrainConfig config_;
  graph::Graph forward_;  // as imported; its initializers share storage with the programs
  graph::TrainingProgram program_;
  std::unique_ptr<Executor> train_;
  std::unique_ptr<Executor> accumulate_;  // micro-batches 1..K-1 (train.accumulate = K > 1)
  std::map<int64_t, std::unique_ptr<Executor>> eval_;
  std::shared_ptr<data::Dataset> train_data_, test_data_;
  std::unique_ptr<data::DataLoader> train_loader_;
  std::unique_ptr<LearningRateSchedule> schedule_;
  // Contiguous storage of parameters / optimizer state / gradient accumulators.
  Tensor param_arena_, state_arena_, accum_arena_;
  // Optimizer state packed with the parameters because the algorithm averages
  // it ([distributed] average_optimizer_state); the rest is in state_arena_.
  std::vector<std::string> averaged_state_;
  int64_t step_ = 0;
  int64_t total_steps_ = 0;
  int64_t num_classes_ = 0;
  int64_t skipped_steps_ = 0;
  EvalResult last_eval_;
  // Distributed training (world_size_ > 1 or an algorithm other than none).
  distributed::Communicator* comm_ = nullptr;
  int rank_ = 0, world_size_ = 1;
  std::unique_ptr<distributed::DataParallel> data_parallel_;
  std::unique_ptr<distributed::StragglerEmulator> straggler_;
  distributed::ModelBuffers model_buffers_;
  std::unique_ptr<LearningCurve> curve_;  // train.curve_every_s > 0, rank 0
};

}  // namespace lasgd::runtime
