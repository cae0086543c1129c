// main() of every tests/mpi/*_test.cc binary, run by ctest under mpirun with
// 2 and with 4 ranks. Every rank runs every test. Rank 0 prints GoogleTest's
// usual output; the other ranks print only their failures, prefixed with
// their rank. At the end the ranks agree on the result over a communicator
// kept for that alone: a failure on any rank fails every rank, and a rank
// whose peers cannot agree (hung, or out of step after a failed test) ends
// the job with MPI_Abort instead of waiting forever.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "distributed/mpi_communicator.h"
#include "tests/mpi/mpi_test_env.h"

namespace lasgd {
namespace {

std::unique_ptr<distributed::Communicator> g_comm;
distributed::CommOptions g_options;

// The failures of a rank other than 0, with its rank in front.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::string text =
        absl::StrCat("[rank ", rank_, "] ", result.file_name() ? result.file_name() : "?", ":",
                     result.line_number(), ": Failure\n");
    for (absl::string_view line : absl::StrSplit(result.message(), '\n')) {
      absl::StrAppend(&text, "[rank ", rank_, "] ", line, "\n");
    }
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::printf("[rank %d] [  FAILED  ] %s.%s\n", rank_, info.test_suite_name(), info.name());
      std::fflush(stdout);
    }
  }

 private:
  int rank_;
};

}  // namespace

distributed::Communicator& TestCommunicator() { return *g_comm; }
const distributed::CommOptions& TestCommOptions() { return g_options; }

}  // namespace lasgd

int main(int argc, char** argv) {
  using namespace lasgd;
  ::testing::InitGoogleTest(&argc, argv);
  if (const char* timeout = std::getenv("LASGD_TEST_MPI_TIMEOUT_S")) {
    g_options.timeout_s = std::atof(timeout);
  } else {
    g_options.timeout_s = 60;
  }
  auto comm = distributed::CreateMpiCommunicator(g_options);
  if (!comm.ok()) {
    std::fprintf(stderr, "cannot create the MPI communicator for the tests: %s\n",
                 comm.status().ToString().c_str());
    return 1;
  }
  // Used once, at the end: whatever the tests left behind on g_comm, this
  // one's first collective is the same on every rank.
  auto agreement = distributed::CreateMpiCommunicator(g_options);
  if (!agreement.ok()) {
    std::fprintf(stderr, "cannot create the MPI communicator for the tests: %s\n",
                 agreement.status().ToString().c_str());
    return 1;
  }
  g_comm = std::move(comm).value();
  const int rank = g_comm->rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  if (rank == 0) std::printf("lasgd MPI tests on %s\n", g_comm->Describe().c_str());

  const int result = RUN_ALL_TESTS();
  g_comm.reset();  // waits (bounded by the timeout) for anything a test left in flight

  float failed_ranks = result == 0 ? 0.f : 1.f;
  absl::Status agreed = (*agreement)->AllReduce(&failed_ranks, 1, distributed::ReduceOp::kSum);
  if (!agreed.ok()) {
    std::fprintf(stderr, "[rank %d] the ranks could not agree on the test result: %s\n", rank,
                 agreed.ToString().c_str());
    (*agreement)->Abort(1);
  }
  if (rank == 0 && failed_ranks > 0) {
    std::printf("%g of %d rank(s) had failures (see the [rank N] lines)\n", failed_ranks,
                (*agreement)->size());
  }
  return failed_ranks > 0 ? 1 : 0;
}
