// Collective and point-to-point communication between the ranks of a
// data-parallel job. The product runs on Open MPI (mpi_communicator.h); an
// in-process backend (inprocess_communicator.h) lets unit tests run N ranks as
// N threads. The interface takes raw host pointers and returns request
// handles so that a NCCL backend on CUDA streams fits behind it too (a request
// then waits on a stream event).
//
// Every call that can fail returns a Status: a peer that stops answering
// becomes kDeadlineExceeded after CommOptions::timeout_s naming the ranks that
// went silent; nothing here ever hangs forever or calls exit().
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lasgd::distributed {

enum class ReduceOp { kSum, kMean };

struct CommOptions {
  // A collective or message not complete after this long is an error naming
  // the ranks that have gone silent.
  double timeout_s = 120;
  // Network emulation (one machine standing in for a cluster): every message
  // is delayed by latency_ms plus bytes / bandwidth_mb_s. An All-Reduce of B
  // bytes over N ranks is charged like a ring: 2(N-1) messages of B/N bytes.
  double latency_ms = 0;
  double bandwidth_mb_s = 0;  // 0 = unlimited
};

// The emulated delays both backends apply (MB = 10^6 bytes). A message or
// collective completes no earlier than its start plus this; collectives run
// one after another, so one starts when every rank has issued it and the
// previous one completed. Broadcast is charged like a binomial tree
// (ceil(log2 N) messages of B bytes), Barrier like an All-Reduce of 0 bytes.
inline double EmulatedMessageSeconds(const CommOptions& options, double bytes) {
  double seconds = options.latency_ms * 1e-3;
  if (options.bandwidth_mb_s > 0) seconds += bytes / (options.bandwidth_mb_s * 1e6);
  return seconds;
}
inline double EmulatedAllReduceSeconds(const CommOptions& options, size_t bytes, int size) {
  if (size <= 1) return 0;
  return 2.0 * (size - 1) * EmulatedMessageSeconds(options, static_cast<double>(bytes) / size);
}
inline double EmulatedBroadcastSeconds(const CommOptions& options, size_t bytes, int size) {
  if (size <= 1) return 0;
  return std::ceil(std::log2(static_cast<double>(size))) *
         EmulatedMessageSeconds(options, static_cast<double>(bytes));
}
inline double EmulatedBarrierSeconds(const CommOptions& options, int size) {
  return EmulatedAllReduceSeconds(options, 0, size);
}

// "16 B", "1.6 MB": message sizes in error messages and logs.
inline std::string HumanBytes(double bytes) {
  char text[32];
  if (bytes < 1e3) {
    std::snprintf(text, sizeof(text), "%.0f B", bytes);
  } else if (bytes < 1e6) {
    std::snprintf(text, sizeof(text), "%.3g kB", bytes / 1e3);
  } else if (bytes < 1e9) {
    std::snprintf(text, sizeof(text), "%.3g MB", bytes / 1e6);
  } else {
    std::snprintf(text, sizeof(text), "%.3g GB", bytes / 1e9);
  }
  return text;
}

// Time and traffic of one rank, for metrics.jsonl and the overlap measurement.
struct CommStats {
  int64_t allreduces = 0;
  int64_t bytes_reduced = 0;
  // Wall time collectives were in flight (start to completion); with several
  // operations (messages included) in flight at once, the union of their
  // intervals, so overlapping operations are not counted twice.
  double comm_s = 0;
  double wait_s = 0;  // wall time callers spent blocked in Wait (the part not hidden)
};

// A started operation. Wait() blocks until it completes (or the timeout); the
// buffers passed to the call must stay alive and untouched until then.
class Request {
 public:
  virtual ~Request() = default;
  // True once complete (never blocks).
  virtual bool Test() = 0;
  // Blocks until complete; the error of a failed or timed-out operation.
  virtual absl::Status Wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In-place All-Reduce of `count` floats; starts it and returns at once. The
  // backend makes progress on its own (a progress thread), so the caller
  // computes meanwhile. Results are identical on every rank (bitwise).
  virtual std::shared_ptr<Request> AllReduceAsync(float* data, size_t count, ReduceOp op) = 0;
  absl::Status AllReduce(float* data, size_t count, ReduceOp op) {
    return AllReduceAsync(data, count, op)->Wait();
  }
  // `bytes` from rank `root` to every rank.
  virtual absl::Status Broadcast(void* data, size_t bytes, int root) = 0;
  virtual absl::Status Barrier() = 0;
  // Point-to-point messages (gossip). Messages between a pair with the same
  // tag arrive in order.
  virtual std::shared_ptr<Request> SendAsync(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual std::shared_ptr<Request> RecvAsync(void* data, size_t bytes, int peer, int tag) = 0;

  // Ends the whole job (every rank) after an unrecoverable error on this one:
  // MPI_Abort under MPI, so that no peer waits for this rank forever.
  virtual void Abort(int exit_code) = 0;

  virtual CommStats stats() const = 0;
  // "mpi (Open MPI 4.1.4, 4 ranks)" for logs.
  virtual std::string Describe() const = 0;
};

}  // namespace lasgd::distributed
