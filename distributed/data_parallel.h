// Data-parallel training: the algorithm chosen by [distributed] algorithm
// (lasgd, sync, local, sgp) as seen by the training session. Create() runs the
// "distributed" pass over the training program (sync inserts bucketed
// gradient All-Reduce nodes into train_step; lasgd/local/sgp build the
// programs that run at segment boundaries), the session compiles train_step,
// packs the parameters into one flat buffer and calls Bind(); then, around
// every optimizer step, AfterStep(); at the end Finish().
//
// The collective nodes are ordinary graph nodes in the com.lasgd domain (so
// `lasgd-inspect --dump-after=distributed` shows them); their kernels reach
// the Communicator through a DistributedContext the runtime registers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "graph/graph.h"
#include "graph/passes/training.h"
#include "runtime/train_config.h"

namespace lasgd::distributed {

// The model state the algorithm averages, as the session packed it: trainable
// parameters in one contiguous float32 span, BN running statistics (and other
// float buffers) in a second one (they may be adjacent). Padding between
// tensors inside a span is zero on every rank, so averaging it is harmless.
struct ModelBuffers {
  float* params = nullptr;
  size_t param_floats = 0;
  float* buffers = nullptr;
  size_t buffer_floats = 0;
};

// One step as the session saw it.
struct StepReport {
  int64_t step = 0;      // optimizer steps done by this rank, including this one
  int64_t samples = 0;   // samples this step consumed on this rank
  double compute_s = 0;  // wall time of the step's forward/backward/update
};

// Where one rank's time went, for metrics.jsonl.
struct RankTiming {
  int rank = 0;
  int64_t steps = 0;
  int64_t samples = 0;
  double compute_s = 0;  // training steps
  double comm_s = 0;     // collectives in flight
  double wait_s = 0;     // blocked waiting for the network (not hidden)
};

class DataParallel {
 public:
  virtual ~DataParallel() = default;

  // Rewrites `program` for config.algorithm (the "distributed" phase). `comm`
  // may be null to only build and dump the programs (lasgd-inspect).
  static absl::StatusOr<std::unique_ptr<DataParallel>> Create(
      const runtime::DistributedConfig& config, Communicator* comm,
      graph::TrainingProgram* program);

  // Binds the flat buffers after the session packed them, and compiles the
  // boundary programs.
  virtual absl::Status Bind(const ModelBuffers& buffers) = 0;
  // Rank 0's parameters and buffers to every rank (before the first step).
  virtual absl::Status BroadcastModel() = 0;
  // After every optimizer step on this rank: a segment boundary when one is
  // due (every segment_steps, or segment_ms of wall time), a finished average
  // applied (apply = when_ready), a gossip exchange (sgp).
  virtual absl::Status AfterStep(const StepReport& step) = 0;
  // Samples trained on all ranks together as every rank agrees on them (with
  // segment_ms: as of the last completed average; otherwise this rank's
  // samples times the number of ranks). Drives the LR schedule and stopping.
  virtual int64_t global_samples() const = 0;
  // With segment_ms: true once the agreed global samples reach `total` (every
  // rank then stops after the same average). Otherwise false.
  virtual bool ShouldStop(int64_t total_samples) const = 0;
  // Waits for anything in flight, then one blocking average: afterwards every
  // rank holds the same parameters and buffers.
  virtual absl::Status Finish() = 0;
  // The newest exact average of every rank's model that this rank holds (what
  // stopping the run would give, up to one segment of progress): lasgd waits
  // for an average in flight (it was started from models taken before now;
  // with apply = when_ready it is merged as the next step would), local keeps
  // its last blocking average. Writes the averaged parameters over `params`
  // (param_floats) and, when the average carries them, the BN statistics over
  // `buffers` (buffer_floats). False, writing nothing, when there is none:
  // nothing averaged yet, sync (every rank holds the one model anyway), sgp
  // (push-sum has no exact average until the end). Rank-local, no collective;
  // the learning curve (train.curve_every_s) uses it.
  virtual absl::StatusOr<bool> LatestAverage(float* params, float* buffers) = 0;
  // Every rank's timing. A collective: call it on every rank at the same
  // point (epoch ends); under segment_ms it reads what the last average
  // carried instead of communicating.
  virtual absl::StatusOr<std::vector<RankTiming>> GatherTimings() = 0;

  // The programs the pass built, by name ("segment_boundary", "finish", ...),
  // for --dump-after=distributed.
  virtual std::vector<std::pair<std::string, const graph::Graph*>> programs() const = 0;
  virtual std::string Describe() const = 0;
};

}  // namespace lasgd::distributed
