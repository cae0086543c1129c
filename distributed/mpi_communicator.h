// The product Communicator on MPI (Open MPI 4.1).
//
// Each communicator duplicates MPI_COMM_WORLD three times (collectives,
// messages, heartbeats) and owns one progress thread that makes every MPI
// call after creation: it starts the collectives one after another in issue
// order (MPI_Iallreduce/Ibcast/Ibarrier), posts messages, and polls them with
// MPI_Test, sleeping briefly between polls, so that an All-Reduce advances
// while the caller computes without a core spinning on it. Callers only queue
// operations and wait on condition variables.
//
// Hung peers: every ~0.5 s the progress thread sends each peer a heartbeat
// carrying how many collectives this rank has issued. When an operation
// misses its deadline (CommOptions::timeout_s after it could have started,
// emulated network time included) the error names the ranks that went silent
// ("rank 1 has not been heard from for 31 s") or are alive but have not
// issued the collective. After a collective times out the communicator is
// unusable (MPI cannot withdraw a started collective): later calls fail at
// once, and the caller should Abort(). MPI may still write the timed-out
// collective's buffer should the peers catch up, so keep it alive until then.
//
// The progress thread asks for a higher scheduling priority (nice -10) where
// the process may have it: it sleeps unless MPI has work, and that work is
// what every rank waits for.
//
// MPI is initialized on the first CreateMpiCommunicator (MPI_Init_thread,
// asking for MPI_THREAD_MULTIPLE) unless the program already did, and
// finalized at exit (after stopping any communicator still alive), so that
// several communicators may be created and destroyed one after another.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"

namespace lasgd::distributed {

// True when this process was started by mpirun/mpiexec/srun (their
// environment variables are set), i.e. when it is one rank of a job.
bool LaunchedUnderMpi();

// A communicator over all ranks of MPI_COMM_WORLD. Collective: every rank
// calls it. Errors if MPI cannot be initialized or lacks the thread support.
absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(const CommOptions& options);

}  // namespace lasgd::distributed
