// The run-time state behind the com.lasgd collective nodes
// (distributed/collective_ops.cc). A graph node cannot hold a pointer, so the
// nodes carry an int attribute `context` and their kernels look the state up
// here: the communicator, the gradient buckets of synchronous SGD, the LASGD
// snapshot s and average buffer with the request in flight, the push-sum
// buffers of SGP, and the per-rank progress slots every average carries.
//
// One DistributedContext per DataParallel object (so one per rank when N
// ranks run as N threads in a test); the DataParallel registers it at Create()
// and unregisters it when destroyed. Kernels of one rank run on that rank's
// thread only, so the state needs no lock; the registry itself is locked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "distributed/data_parallel.h"
#include "runtime/tensor.h"

namespace lasgd::distributed {

// Per-rank slots carried at the front of every averaged buffer. Rank r writes
// its own slot and zeros elsewhere, so the mean times N gives every rank's
// values to every rank without another collective. Counts are split into
// 16-bit halves so that they survive float32 and the division by N exactly.
enum ProgressSlot : int {
  kSamplesHigh = 0,
  kSamplesLow,
  kStepsHigh,
  kStepsLow,
  kComputeSeconds,
  kCommSeconds,
  kWaitSeconds,
  kProgressSlots  // floats per rank
};

// What one rank reports in its slot.
struct RankProgress {
  int64_t samples = 0;
  int64_t steps = 0;
  double compute_s = 0;
  double comm_s = 0;
  double wait_s = 0;
};

// Writes `mine` into rank `rank`'s slot of `slots` (size * kProgressSlots
// floats) and zeros every other slot.
void EncodeProgress(const RankProgress& mine, int rank, int size, float* slots);
// Reads every rank's slot from an averaged (mean) buffer.
std::vector<RankProgress> DecodeProgress(const float* averaged_slots, int size);

struct DistributedContext {
  Communicator* comm = nullptr;  // null when the programs are only built (lasgd-inspect)
  int rank = 0;
  int size = 1;

  // The session's flat model (set by DataParallel::Bind).
  ModelBuffers model;

  // --- Synchronous gradient All-Reduce (sync, and warm-up of lasgd/local).
  struct GradientBucket {
    std::vector<float> data;
    std::shared_ptr<Request> request;
  };
  std::vector<GradientBucket> buckets;
  // False once warm-up is over: the bucket nodes then pass gradients through.
  bool sync_gradients = true;

  // --- Model averaging (lasgd, local, finish).
  // The request of the average in flight (lasgd), or null.
  std::shared_ptr<Request> pending;
  // The average in `average` has arrived and is not merged into the model yet.
  bool arrived_unapplied = false;
  int64_t averages_started = 0;
  int64_t averages_applied = 0;
  // This rank's progress as of the next snapshot (set before the boundary program runs).
  RankProgress progress_out;
  // Every rank's progress as carried by the last average that arrived.
  std::vector<RankProgress> progress_in;
  int64_t progress_in_average = -1;  // which average (0-based) progress_in came from

  // --- Push-sum gossip (sgp).
  int64_t gossip_round = 0;  // rounds started so far (selects the peer)
  std::shared_ptr<Request> gossip_send;
  std::shared_ptr<Request> gossip_recv;

  // Seconds this rank's kernels spent blocked in Request::Wait (not hidden).
  double wait_s = 0;

  // Waits for `request`, adding the blocked time to wait_s; errors say `what`.
  absl::Status TimedWait(Request& request, const std::string& what);
};

// Registers `context` and returns the id the nodes carry (>= 1).
int64_t RegisterContext(std::shared_ptr<DistributedContext> context);
void UnregisterContext(int64_t id);
// The context with `id`, or an error naming it (the DataParallel that owned
// it was destroyed while a plan that uses it still runs).
absl::StatusOr<DistributedContext*> FindContext(int64_t id);

}  // namespace lasgd::distributed
