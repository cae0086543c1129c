// What the data-parallel algorithms share (distributed/passes/*.cc, one file
// per algorithm): the gradient-bucket rewrite of train_step, the boundary
// programs as graphs run by runtime::Executor, segment timing (every
// segment_steps, or at each rank's first step after k * segment_ms), warm-up,
// progress slots and timings.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "distributed/context.h"
#include "distributed/data_parallel.h"
#include "graph/graph.h"
#include "graph/passes/training.h"
#include "runtime/executor.h"
#include "runtime/train_config.h"

namespace lasgd::distributed {

// One gradient bucket of the synchronous All-Reduce, in launch order.
struct GradientBucketInfo {
  std::vector<std::string> gradients;  // the raw gradient values, in the bucket's order
  size_t floats = 0;
  std::string start_node, wait_node;
};

// The "sync" rewrite of train_step: the optimizer's gradients, in the order
// backward produces them (the last layers first, as DDP's reverse parameter
// order approximates), are grouped into buckets of at least `bucket_mb`
// MiB; after the node producing a bucket's last gradient an AllReduceStart
// node copies the bucket and starts its mean All-Reduce, and before the
// optimizer (and gradient clipping) reads them an AllReduceWait node
// produces the averaged gradients. The Start node is placed right after that
// producer in node order so that the executor's depth-first topological sort
// runs it as soon as the gradients exist; every Wait takes all Start tokens,
// so no Wait runs before backward has launched every bucket.
absl::StatusOr<std::vector<GradientBucketInfo>> InsertGradientAllReduce(
    graph::TrainingProgram& program, int64_t context_id, double bucket_mb);

// The flat model size the session's packing gives (each tensor padded to 64
// bytes), used to size the programs before Bind() says the real size.
size_t PackedFloats(const graph::Graph& graph, const std::vector<std::string>& names);

// Appends token-chained com.lasgd nodes to a boundary program.
class ProgramBuilder {
 public:
  ProgramBuilder(std::string name, int64_t context_id);
  // A float32[n] initializer viewing `data` (nullptr: a placeholder that is
  // only printed, before Bind).
  std::string AddBuffer(const std::string& name, float* data, size_t floats);
  // Adds `op` with `inputs` plus the previous node's token; returns its token.
  std::string Emit(const std::string& op, std::vector<std::string> inputs,
                   std::map<std::string, graph::Attribute> attributes = {});
  // The program; its output is the last token.
  graph::Graph Finish();

 private:
  graph::Graph graph_;
  int64_t context_id_;
  std::string last_token_;
  int counter_ = 0;
};

class AlgorithmBase : public DataParallel {
 public:
  AlgorithmBase(const runtime::DistributedConfig& config, Communicator* comm,
                graph::TrainingProgram* program);
  ~AlgorithmBase() override;

  absl::Status Bind(const ModelBuffers& buffers) override;
  absl::Status BroadcastModel() override;
  int64_t global_samples() const override;
  bool ShouldStop(int64_t total_samples) const override;
  absl::StatusOr<std::vector<RankTiming>> GatherTimings() override;
  std::vector<std::pair<std::string, const graph::Graph*>> programs() const override;
  // Runs the "finish" program (merge what is in flight, one blocking average)
  // with this rank's progress; lasgd, local and sgp end this way.
  absl::Status Finish() override;
  // Copies from the buffer set_average_buffer() named; see DataParallel.
  absl::StatusOr<bool> LatestAverage(float* params, float* buffers) override;

  // Seconds on a monotonic clock; tests replace it to control segment_ms.
  void set_clock(std::function<double()> clock) { clock_ = std::move(clock); }
  DistributedContext& context() { return *context_; }
  int64_t context_id() const { return context_id_; }
  const std::vector<GradientBucketInfo>& gradient_buckets() const { return buckets_; }
  // Averages started so far (segment boundaries, blocking averages).
  int64_t averages() const { return context_->averages_started; }
  // Steps after which a due segment boundary was put off because the previous
  // average was still in flight (lasgd, segment_ms with apply = when_ready).
  virtual int64_t deferred_boundaries() const { return 0; }

  // Validates the config and rewrites train_step (Create calls it once);
  // ends with BuildPrograms() at the packed size, for dumping before Bind.
  virtual absl::Status Prepare() = 0;

 protected:
  // Builds the programs with SetProgram(); called again by Bind with the
  // real buffers (Buffer() and model_ return null pointers before).
  virtual absl::Status BuildPrograms() = 0;
  // Common checks (segment_steps, segment_ms, apply, warm-up).
  absl::Status ValidateCommon() const;
  // The placeholder model sizes before Bind.
  void SizeModelFromProgram();
  // The sync rewrite of train_step (sync, and warm-up of lasgd/local).
  absl::Status AddGradientBuckets();
  // Counts the step, and ends warm-up after warmup_steps. Returns true while
  // the step was a warm-up step.
  bool RecordStep(const StepReport& step);
  // Whether a segment boundary is due after this step (segment_steps after
  // warm-up, or the first step after k * segment_ms).
  bool BoundaryDue(const StepReport& step) const;
  // This rank's progress for the next average's slot.
  RankProgress MyProgress() const;
  // After a boundary's wait: the progress every rank agrees on.
  void CommitProgress();
  absl::Status RunProgram(const std::string& name);
  // RunProgram for a program that completes an average: this rank's progress
  // rides in the averaged buffer and the agreed progress is committed after.
  absl::Status RunAveragingProgram(const std::string& name);
  bool bound() const { return bound_; }
  double Now() const { return clock_(); }

  // Boundary-program inputs shared by the algorithms.
  std::string AddModelInputs(ProgramBuilder& b, bool with_buffers, std::string* params,
                             std::string* buffers);
  size_t ModelFloats(bool with_buffers) const {
    return model_.param_floats + (with_buffers ? model_.buffer_floats : 0);
  }
  // A persistent float buffer (placeholder before Bind).
  float* Buffer(const std::string& name, size_t floats);
  // The buffer that holds the last average after it arrives (progress slots,
  // then the parameters, then the BN statistics when `with_buffers`), for
  // LatestAverage; lasgd and local set it in BuildPrograms.
  void set_average_buffer(const float* average, bool with_buffers) {
    average_ = average;
    average_has_buffers_ = with_buffers;
  }
  // Makes the average in flight, if any, arrive before LatestAverage reads
  // it (lasgd); the default has nothing in flight.
  virtual absl::Status CompleteAverageInFlight() { return absl::OkStatus(); }
  void SetProgram(const std::string& name, graph::Graph g);

  runtime::DistributedConfig config_;
  Communicator* comm_;
  graph::TrainingProgram* program_;
  std::shared_ptr<DistributedContext> context_;
  int64_t context_id_ = 0;
  ModelBuffers model_;  // real after Bind; sizes only (null pointers) before
  std::vector<GradientBucketInfo> buckets_;

 private:
  bool bound_ = false;
  std::function<double()> clock_;
  const float* average_ = nullptr;
  bool average_has_buffers_ = false;
  double segment_origin_s_ = 0;  // segment_ms: time 0 of the segment clock
  int64_t steps_ = 0, samples_ = 0;
  double compute_s_ = 0;
  std::vector<RankProgress> committed_;
  std::vector<std::pair<std::string, graph::Graph>> programs_;
  std::map<std::string, std::unique_ptr<runtime::Executor>> executors_;
  std::map<std::string, std::vector<float>> storage_;
};

// Factories, one per algorithm file.
std::unique_ptr<AlgorithmBase> MakeLasgd(const runtime::DistributedConfig& config,
                                         Communicator* comm, graph::TrainingProgram* program);
std::unique_ptr<AlgorithmBase> MakeLocal(const runtime::DistributedConfig& config,
                                         Communicator* comm, graph::TrainingProgram* program);
std::unique_ptr<AlgorithmBase> MakeSync(const runtime::DistributedConfig& config,
                                        Communicator* comm, graph::TrainingProgram* program);
std::unique_ptr<AlgorithmBase> MakeSgp(const runtime::DistributedConfig& config, Communicator* comm,
                                       graph::TrainingProgram* program);

}  // namespace lasgd::distributed
