// The in-process Communicator: N ranks as N threads, with the semantics the
// MPI backend has (tests/mpi/communicator_test.cc checks those over MPI).
#include "distributed/inprocess_communicator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

namespace lasgd::distributed {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Runs fn(comm) on one thread per rank of a fresh group.
void RunRanks(int size, const CommOptions& options, const std::function<void(Communicator&)>& fn) {
  auto comms = CreateInProcessGroup(size, options);
  ASSERT_EQ(comms.size(), static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back([&, r] { fn(*comms[r]); });
  for (std::thread& t : threads) t.join();
}

// Rank-dependent data whose sums are not exact in float, so that a different
// summation order would show in the bits.
std::vector<float> RankData(int rank, size_t count) {
  std::mt19937 rng(1234 + rank);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng) * (1 + rank);
  return v;
}

class AllReduceTest : public ::testing::TestWithParam<int> {};

TEST_P(AllReduceTest, SumOfKnownVectors) {
  const int n = GetParam();
  RunRanks(n, {}, [&](Communicator& comm) {
    EXPECT_EQ(comm.size(), n);
    // rank r holds 10 r + i: the sum is 10 n(n-1)/2 + n i, exact in float.
    std::vector<float> v(7);
    for (size_t i = 0; i < v.size(); ++i) v[i] = 10.f * comm.rank() + i;
    ASSERT_TRUE(comm.AllReduce(v.data(), v.size(), ReduceOp::kSum).ok());
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ(v[i], 10.f * n * (n - 1) / 2 + n * static_cast<float>(i)) << "element " << i;
    }
  });
}

TEST_P(AllReduceTest, MeanOfKnownVectors) {
  const int n = GetParam();
  RunRanks(n, {}, [&](Communicator& comm) {
    // rank r holds n (r + 1) + i: the mean is n(n+1)/2 + i.
    std::vector<float> v(5);
    for (size_t i = 0; i < v.size(); ++i) v[i] = n * (comm.rank() + 1.f) + i;
    ASSERT_TRUE(comm.AllReduce(v.data(), v.size(), ReduceOp::kMean).ok());
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_FLOAT_EQ(v[i], n * (n + 1) / 2.f + i) << "element " << i;
    }
  });
}

TEST_P(AllReduceTest, BitwiseIdenticalOnEveryRankAndSummedInRankOrder) {
  const int n = GetParam();
  const size_t count = 1000;
  std::vector<float> expected_sum = RankData(0, count);
  for (int r = 1; r < n; ++r) {
    std::vector<float> d = RankData(r, count);
    for (size_t i = 0; i < count; ++i) expected_sum[i] += d[i];
  }
  std::vector<std::vector<float>> sums(n), means(n);
  RunRanks(n, {}, [&](Communicator& comm) {
    std::vector<float> s = RankData(comm.rank(), count), m = s;
    ASSERT_TRUE(comm.AllReduce(s.data(), count, ReduceOp::kSum).ok());
    ASSERT_TRUE(comm.AllReduce(m.data(), count, ReduceOp::kMean).ok());
    sums[comm.rank()] = s;
    means[comm.rank()] = m;
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_EQ(std::memcmp(sums[r].data(), expected_sum.data(), count * sizeof(float)), 0)
        << "rank " << r << " sum differs from the rank-order sum";
    ASSERT_EQ(std::memcmp(means[r].data(), means[0].data(), count * sizeof(float)), 0)
        << "rank " << r << " mean differs from rank 0's";
    for (size_t i = 0; i < count; ++i) {
      ASSERT_EQ(means[r][i], expected_sum[i] * (1.0f / n)) << "mean = sum * (1/n), element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, AllReduceTest, ::testing::Values(1, 2, 3, 4));

TEST(InProcessCommunicator, AsyncAllReduceReturnsBeforeCompletionAndCompletesAfterTheDelay) {
  CommOptions options;
  options.latency_ms = 250;  // 2 ranks: 2 messages, 0.5 s
  const double delay = EmulatedAllReduceSeconds(options, 3 * sizeof(float), 2);
  ASSERT_NEAR(delay, 0.5, 1e-9);
  RunRanks(2, options, [&](Communicator& comm) {
    std::vector<float> v = {1.f + comm.rank(), 2.f, 3.f};
    Clock::time_point start = Clock::now();
    auto request = comm.AllReduceAsync(v.data(), v.size(), ReduceOp::kSum);
    EXPECT_FALSE(request->Test()) << "complete before the emulated delay";
    ASSERT_TRUE(request->Wait().ok());
    EXPECT_GE(SecondsSince(start), delay);
    EXPECT_TRUE(request->Test());
    EXPECT_EQ(v, (std::vector<float>{3.f, 4.f, 6.f}));
    // A message too: 0.25 s on the emulated wire.
    int token = comm.rank(), got = -1;
    auto send = comm.SendAsync(&token, sizeof(token), 1 - comm.rank(), 0);
    auto recv = comm.RecvAsync(&got, sizeof(got), 1 - comm.rank(), 0);
    EXPECT_FALSE(send->Test());
    EXPECT_FALSE(recv->Test());
    ASSERT_TRUE(recv->Wait().ok());
    ASSERT_TRUE(send->Wait().ok());
    EXPECT_EQ(got, 1 - comm.rank());
    CommStats stats = comm.stats();
    EXPECT_EQ(stats.allreduces, 1);
    EXPECT_EQ(stats.bytes_reduced, static_cast<int64_t>(3 * sizeof(float)));
    EXPECT_GE(stats.comm_s, delay * 0.99);
    EXPECT_GT(stats.wait_s, 0.0);
  });
}

TEST(InProcessCommunicator, ManyAsyncAllReducesCompleteInIssueOrder) {
  CommOptions options;
  options.latency_ms = 5;
  const int n = 3, ops = 6;
  RunRanks(n, options, [&](Communicator& comm) {
    std::vector<std::vector<float>> bufs(ops);
    std::vector<std::shared_ptr<Request>> requests;
    for (int k = 0; k < ops; ++k) {
      bufs[k].assign(100 * (ops - k), static_cast<float>(k + comm.rank()));
      requests.push_back(comm.AllReduceAsync(bufs[k].data(), bufs[k].size(), ReduceOp::kSum));
    }
    // Waiting on the last first: every earlier one is complete by then.
    ASSERT_TRUE(requests.back()->Wait().ok());
    for (int k = 0; k < ops; ++k) EXPECT_TRUE(requests[k]->Test()) << "op " << k;
    for (int k = ops - 1; k >= 0; --k) {
      ASSERT_TRUE(requests[k]->Wait().ok());
      for (float x : bufs[k]) ASSERT_EQ(x, n * k + n * (n - 1) / 2.f) << "op " << k;
    }
    // Serialized on the emulated link: at least ops x the one-op delay.
    EXPECT_GE(comm.stats().comm_s, 0.99 * ops * EmulatedAllReduceSeconds(options, 0, n));
  });
}

TEST(InProcessCommunicator, BroadcastFromEveryRoot) {
  const int n = 3;
  RunRanks(n, {}, [&](Communicator& comm) {
    for (int root = 0; root < n; ++root) {
      std::vector<int> v(10, comm.rank() == root ? 100 + root : -1);
      ASSERT_TRUE(comm.Broadcast(v.data(), v.size() * sizeof(int), root).ok());
      for (int x : v) ASSERT_EQ(x, 100 + root) << "root " << root << " on rank " << comm.rank();
    }
    int dummy = 0;
    EXPECT_EQ(comm.Broadcast(&dummy, sizeof(dummy), n).code(), absl::StatusCode::kInvalidArgument);
  });
}

TEST(InProcessCommunicator, BarrierWaitsForTheLastRank) {
  const int n = 4;
  std::atomic<int> entered{0};
  RunRanks(n, {}, [&](Communicator& comm) {
    if (comm.rank() == 2) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    entered.fetch_add(1);
    ASSERT_TRUE(comm.Barrier().ok());
    EXPECT_EQ(entered.load(), n) << "rank " << comm.rank() << " left the barrier early";
  });
}

TEST(InProcessCommunicator, MessagesOfOnePairAndTagArriveInOrder) {
  CommOptions options;
  options.latency_ms = 1;
  options.bandwidth_mb_s = 100;  // a big message first: a small one after it must not overtake
  RunRanks(2, options, [&](Communicator& comm) {
    const std::vector<size_t> sizes = {400000, 4, 40};
    if (comm.rank() == 0) {
      std::vector<std::vector<char>> msgs;
      std::vector<std::shared_ptr<Request>> requests;
      for (size_t k = 0; k < sizes.size(); ++k) {
        msgs.emplace_back(sizes[k], static_cast<char>('a' + k));
        requests.push_back(comm.SendAsync(msgs[k].data(), sizes[k], 1, 7));
      }
      for (auto& r : requests) ASSERT_TRUE(r->Wait().ok());
    } else {
      for (size_t k = 0; k < sizes.size(); ++k) {
        std::vector<char> buf(400000, 0);
        ASSERT_TRUE(comm.RecvAsync(buf.data(), buf.size(), 0, 7)->Wait().ok());
        EXPECT_EQ(buf[0], 'a' + k) << "message " << k;
        EXPECT_EQ(buf[sizes[k] - 1], 'a' + k) << "message " << k;
      }
    }
  });
}

TEST(InProcessCommunicator, RingExchange) {
  const int n = 4;
  RunRanks(n, {}, [&](Communicator& comm) {
    int right = (comm.rank() + 1) % n, left = (comm.rank() + n - 1) % n;
    double mine = 1.5 * comm.rank(), got = -1;
    auto recv = comm.RecvAsync(&got, sizeof(got), left, 3);
    auto send = comm.SendAsync(&mine, sizeof(mine), right, 3);
    ASSERT_TRUE(send->Wait().ok());
    ASSERT_TRUE(recv->Wait().ok());
    EXPECT_EQ(got, 1.5 * left);
  });
}

TEST(InProcessCommunicator, TruncatingReceiveIsAnError) {
  RunRanks(2, {}, [&](Communicator& comm) {
    std::vector<char> buf(16, 'x');
    if (comm.rank() == 0) {
      ASSERT_TRUE(comm.SendAsync(buf.data(), 16, 1, 0)->Wait().ok());
    } else {
      absl::Status s = comm.RecvAsync(buf.data(), 8, 0, 0)->Wait();
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    }
  });
}

TEST(InProcessCommunicator, RankThatNeverJoinsIsNamedWithinTheTimeout) {
  CommOptions options;
  options.timeout_s = 0.3;
  const int n = 3;
  // Every deadline is at least the timeout after this.
  const Clock::time_point before_any_call = Clock::now();
  RunRanks(n, options, [&](Communicator& comm) {
    if (comm.rank() == 2) return;  // never joins
    std::vector<float> v(1000, 1.f);
    absl::Status s = comm.AllReduce(v.data(), v.size(), ReduceOp::kSum);
    double elapsed = SecondsSince(before_any_call);
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_NE(s.message().find("rank 2 has"), std::string::npos) << s;
    EXPECT_EQ(s.message().find("rank 1 has"), std::string::npos) << s;
    EXPECT_EQ(s.message().find("rank 0 has"), std::string::npos) << s;
    EXPECT_NE(s.message().find("all-reduce #1 (4 kB)"), std::string::npos) << s;
    EXPECT_GE(elapsed, options.timeout_s);
    EXPECT_LT(elapsed, 30.0) << "hung far past the timeout";
    // Later collectives fail at once instead of waiting again.
    Clock::time_point start = Clock::now();
    EXPECT_FALSE(comm.Barrier().ok());
    EXPECT_LT(SecondsSince(start), options.timeout_s);
  });
}

TEST(InProcessCommunicator, LateRankFailsAtOnceInsteadOfHanging) {
  CommOptions options;
  options.timeout_s = 0.2;
  RunRanks(2, options, [&](Communicator& comm) {
    std::vector<float> v(10, 1.f);
    if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(600));
    Clock::time_point start = Clock::now();
    absl::Status s = comm.AllReduce(v.data(), v.size(), ReduceOp::kSum);
    EXPECT_FALSE(s.ok());
    if (comm.rank() == 1) {
      // Joined after rank 0 gave up: told why, without waiting for a timeout.
      EXPECT_LT(SecondsSince(start), options.timeout_s);
      EXPECT_NE(s.message().find("rank 1 has not issued it"), std::string::npos) << s;
    }
    EXPECT_EQ(v, std::vector<float>(10, 1.f)) << "a withdrawn buffer was written";
  });
}

TEST(InProcessCommunicator, ReceiveFromSilentPeerNamesIt) {
  CommOptions options;
  options.timeout_s = 0.2;
  RunRanks(2, options, [&](Communicator& comm) {
    if (comm.rank() == 1) return;
    int x = 0;
    absl::Status s = comm.RecvAsync(&x, sizeof(x), 1, 5)->Wait();
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_NE(s.message().find("from rank 1 (tag 5)"), std::string::npos) << s;
  });
}

TEST(InProcessCommunicator, RanksDisagreeingAboutACollectiveAreTold) {
  RunRanks(2, {}, [&](Communicator& comm) {
    std::vector<float> v(comm.rank() == 0 ? 4 : 8, 1.f);
    absl::Status s = comm.AllReduce(v.data(), v.size(), ReduceOp::kSum);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("disagree"), std::string::npos) << s;
  });
}

TEST(InProcessCommunicator, EmulatedDelaysAreAtLeastTheFormula) {
  CommOptions options;
  options.latency_ms = 5;
  options.bandwidth_mb_s = 100;
  const int n = 4;
  const size_t count = 250000;  // 1 MB
  const double allreduce = EmulatedAllReduceSeconds(options, count * sizeof(float), n);
  const double broadcast = EmulatedBroadcastSeconds(options, count * sizeof(float), n);
  const double message = EmulatedMessageSeconds(options, count * sizeof(float));
  // The formulas themselves (communicator.h): ring, binomial tree, one message.
  EXPECT_NEAR(allreduce, 6 * (0.005 + 250000.0 / 1e8), 1e-12);
  EXPECT_NEAR(broadcast, 2 * (0.005 + 1e6 / 1e8), 1e-12);
  EXPECT_NEAR(message, 0.005 + 0.01, 1e-12);
  std::atomic<Clock::rep> send_started{0};
  RunRanks(n, options, [&](Communicator& comm) {
    std::vector<float> v(count, 1.f);
    ASSERT_TRUE(comm.Barrier().ok());
    Clock::time_point start = Clock::now();
    ASSERT_TRUE(comm.AllReduce(v.data(), count, ReduceOp::kSum).ok());
    EXPECT_GE(SecondsSince(start), allreduce);
    EXPECT_EQ(v[0], n);
    ASSERT_TRUE(comm.Barrier().ok());
    start = Clock::now();
    ASSERT_TRUE(comm.Broadcast(v.data(), count * sizeof(float), 1).ok());
    EXPECT_GE(SecondsSince(start), broadcast);
    if (comm.rank() == 0) {
      start = Clock::now();
      send_started = start.time_since_epoch().count();
      auto send = comm.SendAsync(v.data(), count * sizeof(float), 1, 0);
      ASSERT_TRUE(send->Wait().ok());
      EXPECT_GE(SecondsSince(start), message);
    } else if (comm.rank() == 1) {
      std::vector<float> got(count);
      ASSERT_TRUE(comm.RecvAsync(got.data(), count * sizeof(float), 0, 0)->Wait().ok());
      // Never sooner than the message's time after the send started.
      Clock::time_point sent{Clock::duration(send_started.load())};
      EXPECT_GE(SecondsSince(sent), message);
      EXPECT_EQ(got[5], v[5]);
    }
  });
}

TEST(InProcessCommunicator, DescribeNamesTheBackendAndEmulation) {
  CommOptions options;
  options.latency_ms = 1;
  options.bandwidth_mb_s = 100;
  auto comms = CreateInProcessGroup(2, options);
  EXPECT_EQ(comms[1]->Describe(), "in-process (2 ranks, emulating 1 ms + 100 MB/s)");
  EXPECT_EQ(comms[1]->rank(), 1);
}

}  // namespace
}  // namespace lasgd::distributed
