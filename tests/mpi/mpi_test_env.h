// What tests/mpi/mpi_test_main.cc provides to the MPI tests: one MPI
// communicator over all ranks, created before the first test and destroyed
// after the last. Every test runs on every rank, so a test that uses it
// issues the same collectives in the same order on every rank.
#pragma once

#include "distributed/communicator.h"

namespace lasgd {

// The communicator every MPI test may use (timeout: 60 s, or
// LASGD_TEST_MPI_TIMEOUT_S).
distributed::Communicator& TestCommunicator();

// The options TestCommunicator() was created with, for tests that create
// their own communicator.
const distributed::CommOptions& TestCommOptions();

}  // namespace lasgd
