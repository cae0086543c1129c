// Straggler emulation and fault injection, so that one machine can stand in
// for a cluster whose ranks are not equally fast ([distributed] slow_rank,
// slow_factor, jitter_ms) and tests can kill or hang a rank mid-run
// ([distributed] fault, fault_rank, fault_step). Network delays are the
// communicator's (CommOptions::latency_ms, bandwidth_mb_s).
#pragma once

#include <cstdint>
#include <random>

#include "runtime/train_config.h"

namespace lasgd::distributed {

class StragglerEmulator {
 public:
  StragglerEmulator(const runtime::DistributedConfig& config, int rank);

  // The extra wall time (seconds) this rank should lose after a step whose
  // compute took `compute_s`: (slow_factor - 1) x compute_s on the slow rank,
  // plus an exponentially distributed jitter of mean jitter_ms on every rank.
  // Seeded by rank, so a run's delays repeat.
  double DelayAfterStep(double compute_s);
  // Sleeps for DelayAfterStep(compute_s); returns the seconds slept.
  double SleepAfterStep(double compute_s);

  // Raises SIGKILL or SIGSTOP on this process when the config's fault
  // strikes this rank at `step` (steps done so far).
  void MaybeInjectFault(int64_t step) const;

 private:
  runtime::DistributedConfig config_;
  int rank_;
  std::mt19937_64 rng_;
};

}  // namespace lasgd::distributed
