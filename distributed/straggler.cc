#include "distributed/straggler.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

namespace lasgd::distributed {

StragglerEmulator::StragglerEmulator(const runtime::DistributedConfig& config, int rank)
    : config_(config), rank_(rank), rng_(0x9e3779b97f4a7c15ull * (rank + 1)) {}

double StragglerEmulator::DelayAfterStep(double compute_s) {
  double delay = 0;
  if (rank_ == config_.slow_rank && config_.slow_factor > 1)
    delay += (config_.slow_factor - 1) * compute_s;
  if (config_.jitter_ms > 0) {
    std::exponential_distribution<double> jitter(1.0 / (config_.jitter_ms * 1e-3));
    delay += jitter(rng_);
  }
  return delay;
}

double StragglerEmulator::SleepAfterStep(double compute_s) {
  double delay = DelayAfterStep(compute_s);
  if (delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(delay));
  return delay;
}

void StragglerEmulator::MaybeInjectFault(int64_t step) const {
  if (config_.fault == "none" || rank_ != config_.fault_rank || step != config_.fault_step) return;
  std::fprintf(stderr, "rank %d: injecting fault '%s' at step %lld (distributed.fault)\n", rank_,
               config_.fault.c_str(), static_cast<long long>(step));
  std::fflush(stderr);
  raise(config_.fault == "kill" ? SIGKILL : SIGSTOP);
}

}  // namespace lasgd::distributed
