// The MPI Communicator over however many ranks mpirun started (ctest: 2 and
// 4). Every test runs on every rank.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "distributed/mpi_communicator.h"
#include "tests/mpi/mpi_test_env.h"

namespace lasgd::distributed {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// steady_clock is CLOCK_MONOTONIC, shared by the processes of one host: the
// tests that compare times across ranks need every rank on one host.
bool AllRanksOnOneHost() {
  Communicator& comm = TestCommunicator();
  char name[256] = {0}, root_name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  std::memcpy(root_name, name, sizeof(name));
  EXPECT_TRUE(comm.Broadcast(root_name, sizeof(root_name), 0).ok());
  float different = std::strcmp(name, root_name) != 0 ? 1.f : 0.f;
  EXPECT_TRUE(comm.AllReduce(&different, 1, ReduceOp::kSum).ok());
  return different == 0;
}

std::vector<float> RankData(int rank, size_t count) {
  std::mt19937 rng(777 + rank);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng) * (1 + rank);
  return v;
}

std::unique_ptr<Communicator> MakeComm(const CommOptions& options) {
  auto comm = CreateMpiCommunicator(options);
  EXPECT_TRUE(comm.ok()) << comm.status();
  return comm.ok() ? std::move(comm).value() : nullptr;
}

TEST(MpiCommunicator, LaunchedUnderMpiAndDescribed) {
  EXPECT_TRUE(LaunchedUnderMpi());
  Communicator& comm = TestCommunicator();
  EXPECT_GE(comm.size(), 1);
  EXPECT_LT(comm.rank(), comm.size());
  EXPECT_NE(comm.Describe().find("mpi (Open MPI"), std::string::npos) << comm.Describe();
  EXPECT_NE(comm.Describe().find(std::to_string(comm.size()) + " ranks"), std::string::npos);
}

TEST(MpiCommunicator, SumAndMeanOfRankDependentVectors) {
  Communicator& comm = TestCommunicator();
  const int n = comm.size();
  // rank r holds 10 r + i: the sum is 10 n(n-1)/2 + n i, exact in float.
  std::vector<float> sum(33);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = 10.f * comm.rank() + i;
  ASSERT_TRUE(comm.AllReduce(sum.data(), sum.size(), ReduceOp::kSum).ok());
  for (size_t i = 0; i < sum.size(); ++i) {
    ASSERT_EQ(sum[i], 10.f * n * (n - 1) / 2 + n * static_cast<float>(i)) << "element " << i;
  }
  // rank r holds n (r + 1) + i: the mean is n(n+1)/2 + i.
  std::vector<float> mean(17);
  for (size_t i = 0; i < mean.size(); ++i) mean[i] = n * (comm.rank() + 1.f) + i;
  ASSERT_TRUE(comm.AllReduce(mean.data(), mean.size(), ReduceOp::kMean).ok());
  for (size_t i = 0; i < mean.size(); ++i) {
    ASSERT_FLOAT_EQ(mean[i], n * (n + 1) / 2.f + i) << "element " << i;
  }
}

TEST(MpiCommunicator, ResultsAreBitwiseIdenticalOnEveryRank) {
  Communicator& comm = TestCommunicator();
  const int n = comm.size();
  for (size_t count : {size_t{1}, size_t{1000}, size_t{300001}}) {
    std::vector<float> sum = RankData(comm.rank(), count), mean = sum;
    ASSERT_TRUE(comm.AllReduce(sum.data(), count, ReduceOp::kSum).ok());
    ASSERT_TRUE(comm.AllReduce(mean.data(), count, ReduceOp::kMean).ok());
    // Close to the sum in rank order (MPI may add in another order) ...
    std::vector<float> expected = RankData(0, count);
    for (int r = 1; r < n; ++r) {
      std::vector<float> d = RankData(r, count);
      for (size_t i = 0; i < count; ++i) expected[i] += d[i];
    }
    for (size_t i = 0; i < count; ++i) {
      ASSERT_NEAR(sum[i], expected[i], 1e-5f * n * n) << "element " << i << " of " << count;
      ASSERT_EQ(mean[i], sum[i] * (1.0f / n)) << "mean = sum * (1/n), element " << i;
    }
    // ... and the same bits on every rank: compare with rank 0's.
    std::vector<float> root_sum = sum, root_mean = mean;
    ASSERT_TRUE(comm.Broadcast(root_sum.data(), count * sizeof(float), 0).ok());
    ASSERT_TRUE(comm.Broadcast(root_mean.data(), count * sizeof(float), 0).ok());
    EXPECT_EQ(std::memcmp(sum.data(), root_sum.data(), count * sizeof(float)), 0)
        << "rank " << comm.rank() << "'s sum differs from rank 0's (count " << count << ")";
    EXPECT_EQ(std::memcmp(mean.data(), root_mean.data(), count * sizeof(float)), 0)
        << "rank " << comm.rank() << "'s mean differs from rank 0's (count " << count << ")";
  }
}

TEST(MpiCommunicator, EightMegabyteBuffer) {
  Communicator& comm = TestCommunicator();
  const int n = comm.size();
  const size_t count = 2 * 1024 * 1024;  // 8 MB
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = comm.rank() + static_cast<float>(i % 7);
  ASSERT_TRUE(comm.AllReduce(v.data(), count, ReduceOp::kSum).ok());
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(v[i], n * (n - 1) / 2.f + n * static_cast<float>(i % 7)) << "element " << i;
  }
  CommStats stats = comm.stats();
  EXPECT_GE(stats.bytes_reduced, static_cast<int64_t>(count * sizeof(float)));
  EXPECT_GT(stats.comm_s, 0.0);
}

TEST(MpiCommunicator, ManyOverlappingAsyncAllReducesCompleteInOrder) {
  Communicator& comm = TestCommunicator();
  const int n = comm.size(), ops = 12;
  std::vector<std::vector<float>> bufs(ops);
  std::vector<std::shared_ptr<Request>> requests;
  for (int k = 0; k < ops; ++k) {
    // Sizes from 4 B to 1.6 MB, big and small interleaved.
    size_t count = k % 2 ? 1 + k : 400000 / (k + 1);
    bufs[k].assign(count, static_cast<float>(k + comm.rank()));
    requests.push_back(
        comm.AllReduceAsync(bufs[k].data(), count, k % 3 ? ReduceOp::kSum : ReduceOp::kMean));
  }
  ASSERT_TRUE(requests.back()->Wait().ok());
  for (int k = 0; k < ops; ++k) EXPECT_TRUE(requests[k]->Test()) << "op " << k << " not done";
  for (int k = ops - 1; k >= 0; --k) {
    ASSERT_TRUE(requests[k]->Wait().ok()) << "op " << k;
    float sum = n * k + n * (n - 1) / 2.f;
    float expected = k % 3 ? sum : sum * (1.0f / n);
    for (float x : bufs[k]) ASSERT_EQ(x, expected) << "op " << k;
  }
}

TEST(MpiCommunicator, AllReduceOverlapsTheCallersWork) {
  CommOptions options = TestCommOptions();
  options.latency_ms = 100;  // 2(N-1) x 100 ms
  auto comm = MakeComm(options);
  ASSERT_TRUE(comm);
  const double delay = EmulatedAllReduceSeconds(options, 4, comm->size());
  float x = 1.f + comm->rank();
  Clock::time_point start = Clock::now();
  auto request = comm->AllReduceAsync(&x, 1, ReduceOp::kSum);
  EXPECT_FALSE(request->Test()) << "complete before the emulated delay";
  ASSERT_TRUE(request->Wait().ok());
  EXPECT_GE(SecondsSince(start), delay);
  EXPECT_EQ(x, comm->size() * (comm->size() + 1) / 2.f);
}

TEST(MpiCommunicator, BroadcastFromEveryRoot) {
  Communicator& comm = TestCommunicator();
  for (int root = 0; root < comm.size(); ++root) {
    std::vector<int> v(1000, comm.rank() == root ? 100 + root : -1);
    ASSERT_TRUE(comm.Broadcast(v.data(), v.size() * sizeof(int), root).ok());
    for (int x : v) ASSERT_EQ(x, 100 + root) << "root " << root;
  }
  int dummy = 0;
  EXPECT_EQ(comm.Broadcast(&dummy, sizeof(dummy), comm.size()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MpiCommunicator, BarrierWaitsForTheLastRank) {
  if (!AllRanksOnOneHost()) GTEST_SKIP() << "compares clocks across ranks";
  Communicator& comm = TestCommunicator();
  const int last = comm.size() - 1;
  ASSERT_TRUE(comm.Barrier().ok());
  int64_t entered = 0;
  if (comm.rank() == last) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    entered = Clock::now().time_since_epoch().count();
  }
  ASSERT_TRUE(comm.Barrier().ok());
  int64_t left = Clock::now().time_since_epoch().count();
  ASSERT_TRUE(comm.Broadcast(&entered, sizeof(entered), last).ok());
  EXPECT_GE(left, entered) << "rank " << comm.rank() << " left the barrier before rank " << last
                           << " entered it";
}

TEST(MpiCommunicator, RingOfMessagesInOrder) {
  CommOptions options = TestCommOptions();
  options.latency_ms = 1;
  options.bandwidth_mb_s = 200;  // a big message first: the small ones must not overtake it
  auto comm = MakeComm(options);
  ASSERT_TRUE(comm);
  const int n = comm->size();
  const int right = (comm->rank() + 1) % n, left = (comm->rank() + n - 1) % n;
  const std::vector<size_t> sizes = {1 << 20, 8, 1000, 4};
  std::vector<std::vector<char>> out, in;
  std::vector<std::shared_ptr<Request>> sends, recvs;
  for (size_t k = 0; k < sizes.size(); ++k) {
    in.emplace_back(1 << 20, 0);
    recvs.push_back(comm->RecvAsync(in[k].data(), in[k].size(), left, 9));
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    out.emplace_back(sizes[k], static_cast<char>('A' + 4 * comm->rank() + k));
    sends.push_back(comm->SendAsync(out[k].data(), sizes[k], right, 9));
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    ASSERT_TRUE(recvs[k]->Wait().ok()) << "message " << k;
    EXPECT_EQ(in[k][0], 'A' + 4 * left + k) << "message " << k;
    EXPECT_EQ(in[k][sizes[k] - 1], 'A' + 4 * left + k) << "message " << k;
  }
  for (auto& s : sends) ASSERT_TRUE(s->Wait().ok());
  int x = 0;
  EXPECT_EQ(comm->SendAsync(&x, sizeof(x), n, 0)->Wait().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MpiCommunicator, EmulatedDelaysAreAtLeastTheFormula) {
  if (!AllRanksOnOneHost()) GTEST_SKIP() << "compares clocks across ranks";
  CommOptions options = TestCommOptions();
  options.latency_ms = 5;
  options.bandwidth_mb_s = 100;
  auto comm = MakeComm(options);
  ASSERT_TRUE(comm);
  const int n = comm->size();
  const size_t count = 250000;  // 1 MB
  std::vector<float> v(count, 1.f);
  ASSERT_TRUE(comm->Barrier().ok());
  Clock::time_point start = Clock::now();
  ASSERT_TRUE(comm->AllReduce(v.data(), count, ReduceOp::kSum).ok());
  EXPECT_GE(SecondsSince(start), EmulatedAllReduceSeconds(options, count * sizeof(float), n));
  EXPECT_EQ(v[123], n);
  start = Clock::now();
  ASSERT_TRUE(comm->Broadcast(v.data(), count * sizeof(float), n - 1).ok());
  EXPECT_GE(SecondsSince(start), EmulatedBroadcastSeconds(options, count * sizeof(float), n));
  start = Clock::now();
  ASSERT_TRUE(comm->Barrier().ok());
  EXPECT_GE(SecondsSince(start), EmulatedBarrierSeconds(options, n));
  // A message carries its send time: it arrives no sooner than latency +
  // bytes / bandwidth after it.
  if (comm->rank() == 0 && n > 1) {
    std::vector<int64_t> message(count / 2);
    message[0] = Clock::now().time_since_epoch().count();
    ASSERT_TRUE(comm->SendAsync(message.data(), count * 4, 1, 0)->Wait().ok());
    EXPECT_GE(SecondsSince(Clock::time_point(Clock::duration(message[0]))),
              EmulatedMessageSeconds(options, count * 4));
  } else if (comm->rank() == 1) {
    std::vector<int64_t> message(count / 2);
    ASSERT_TRUE(comm->RecvAsync(message.data(), count * 4, 0, 0)->Wait().ok());
    EXPECT_GE(SecondsSince(Clock::time_point(Clock::duration(message[0]))),
              EmulatedMessageSeconds(options, count * 4));
  }
  CommStats stats = comm->stats();
  EXPECT_EQ(stats.allreduces, 1);
  EXPECT_GE(stats.comm_s, EmulatedAllReduceSeconds(options, count * sizeof(float), n));
  EXPECT_GE(stats.wait_s, 0.0);
}

// A rank that is alive but does not issue the collective: the others time
// out naming it and how far it got; later collectives fail at once.
TEST(MpiCommunicator, TimeoutNamesTheRankThatDidNotIssueTheCollective) {
  Communicator& world = TestCommunicator();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  CommOptions options = TestCommOptions();
  options.timeout_s = 2;
  auto comm = MakeComm(options);
  ASSERT_TRUE(comm);
  const int late = 1;
  std::vector<float> v(1000, 1.f);  // alive until MPI is done with it
  if (comm->rank() != late) {
    Clock::time_point start = Clock::now();
    absl::Status s = comm->AllReduce(v.data(), v.size(), ReduceOp::kSum);
    double elapsed = SecondsSince(start);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_NE(s.message().find("all-reduce #1 (4 kB)"), std::string::npos) << s;
    EXPECT_NE(s.message().find("rank 1 is alive but has issued only 0 collective(s)"),
              std::string::npos)
        << s;
    for (int r = 0; r < comm->size(); ++r) {
      if (r == late) continue;
      EXPECT_EQ(s.message().find("rank " + std::to_string(r) + " is"), std::string::npos) << s;
      EXPECT_EQ(s.message().find("rank " + std::to_string(r) + " has"), std::string::npos) << s;
    }
    EXPECT_GE(elapsed, options.timeout_s);
    EXPECT_LT(elapsed, 10 * options.timeout_s) << "far past the timeout";
    start = Clock::now();
    EXPECT_EQ(comm->Barrier().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_LT(SecondsSince(start), options.timeout_s) << "waited again instead of failing";
  }
  // Everyone else has given up: the late rank now issues it, so that MPI's
  // side of the withdrawn collectives completes before the communicator goes.
  ASSERT_TRUE(world.Barrier().ok());
  if (comm->rank() == late) {
    EXPECT_TRUE(comm->AllReduce(v.data(), v.size(), ReduceOp::kSum).ok());
  }
  ASSERT_TRUE(world.Barrier().ok());
}

// A hung rank (SIGSTOP: every thread stops, heartbeats too) is named as
// silent. Rank 0 lets it continue afterwards.
TEST(MpiCommunicator, TimeoutNamesAHungRank) {
  Communicator& world = TestCommunicator();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  if (!AllRanksOnOneHost()) GTEST_SKIP() << "rank 0 signals rank 1's process";
  const int hung = 1;
  int64_t pid = getpid();
  ASSERT_TRUE(world.Broadcast(&pid, sizeof(pid), hung).ok());
  CommOptions options = TestCommOptions();
  options.timeout_s = 3;
  auto comm = MakeComm(options);
  ASSERT_TRUE(comm);
  std::vector<float> v(100, 1.f);
  if (comm->rank() == hung) {
    raise(SIGSTOP);  // until rank 0 sends SIGCONT
  } else {
    // Whatever happens below, rank 1 must not stay stopped.
    struct Continue {
      pid_t pid;
      bool signal;
      ~Continue() {
        if (signal) kill(pid, SIGCONT);
      }
    } resume{static_cast<pid_t>(pid), world.rank() == 0};
    absl::Status s = comm->AllReduce(v.data(), v.size(), ReduceOp::kSum);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_NE(s.message().find("rank 1 has not been heard from for"), std::string::npos) << s;
    // Rank 1 continues once every other rank has seen it silent.
    int token = 0;
    if (world.rank() == 0) {
      for (int r = 2; r < world.size(); ++r) {
        EXPECT_TRUE(world.RecvAsync(&token, sizeof(token), r, 77)->Wait().ok());
      }
    } else {
      EXPECT_TRUE(world.SendAsync(&token, sizeof(token), 0, 77)->Wait().ok());
    }
  }
  ASSERT_TRUE(world.Barrier().ok());
  if (comm->rank() == hung) {
    EXPECT_TRUE(comm->AllReduce(v.data(), v.size(), ReduceOp::kSum).ok());
  }
  ASSERT_TRUE(world.Barrier().ok());
}

TEST(MpiCommunicator, ReceiveFromASilentPeerNamesIt) {
  Communicator& world = TestCommunicator();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  CommOptions options = TestCommOptions();
  options.timeout_s = 1;
  auto comm = MakeComm(options);
  ASSERT_TRUE(comm);
  if (comm->rank() == 0) {
    int x = 0;
    absl::Status s = comm->RecvAsync(&x, sizeof(x), 1, 4)->Wait();
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_NE(s.message().find("receive of 4 B from rank 1 (tag 4)"), std::string::npos) << s;
    EXPECT_NE(s.message().find("rank 1 is alive"), std::string::npos) << s;
  }
  ASSERT_TRUE(world.Barrier().ok());
}

TEST(MpiCommunicator, CommunicatorsComeAndGo) {
  for (int i = 0; i < 3; ++i) {
    auto comm = MakeComm(TestCommOptions());
    ASSERT_TRUE(comm);
    float x = 1.f;
    ASSERT_TRUE(comm->AllReduce(&x, 1, ReduceOp::kSum).ok());
    EXPECT_EQ(x, comm->size());
  }
}

}  // namespace
}  // namespace lasgd::distributed
