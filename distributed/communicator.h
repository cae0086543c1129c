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

#include <cstddef>
#include <cstdint>
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

// Time and traffic of one rank, for metrics.jsonl and the overlap measurement.
struct CommStats {
  int64_t allreduces = 0;
  int64_t bytes_reduced = 0;
  double comm_s = 0;  // wall time collectives were in flight (start to completion)
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
