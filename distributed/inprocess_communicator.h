// An in-process Communicator group for unit tests: N ranks as N threads of one
// process, with the semantics of the MPI backend (asynchronous All-Reduce
// whose result is identical on every rank, Broadcast, Barrier, ordered
// point-to-point messages, timeouts that name the rank that went missing, and
// the same emulated latency and bandwidth; see communicator.h).
//
// Each communicator of the group is meant to be used from its own thread; a
// rank's collectives are matched with the other ranks' by issue order (the
// k-th collective of every rank forms collective #k), as under MPI. A worker
// thread shared by the group does the reductions, so AllReduceAsync returns
// at once. Sums are taken in rank order, so every rank gets the same bits.
#pragma once

#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace lasgd::distributed {

// `size` communicators (ranks 0..size-1) sharing one group. The group lives as
// long as any of them (or any request they returned) does.
std::vector<std::unique_ptr<Communicator>> CreateInProcessGroup(int size,
                                                                const CommOptions& options);

}  // namespace lasgd::distributed
