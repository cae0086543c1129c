// The model-averaging algorithms on N ranks (the in-process communicator,
// one thread per rank): the LASGD merge rule x <- x + (avg - s) on known
// vectors; whole runs on flat buffers where each rank's "optimizer step" adds
// a known delta, against a reference simulation of the pseudocode in double
// precision (lasgd with apply = boundary and when_ready, local SGD); segment_ms
// under a fake clock (ranks of different speeds agree on the global sample
// count and stop after the same average); push-sum conserving mass and
// converging; and real models (an MLP, a CNN with BatchNorm) ending identical
// on every rank after Finish().
#include <cmath>
#include <functional>
#include <mutex>
#include <thread>

#include "distributed/collective_ops.h"
#include "distributed/context.h"
#include "distributed/inprocess_communicator.h"
#include "distributed/passes/algorithm.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "ops/evaluate_node.h"
#include "runtime/data/npz.h"
#include "tests/unit/data_parallel_test_util.h"

namespace lasgd {
namespace {

using distributed::AlgorithmBase;
using distributed::Communicator;
using distributed::DataParallel;
using distributed::DistributedContext;
using distributed::ModelBuffers;
using distributed::StepReport;

// ---------------------------------------------------------------------------
// The merge rule, one kernel on known vectors.

graph::Node MergeNode(int64_t context, bool with_buffers) {
  graph::Node n;
  n.name = "merge";
  n.op_type = "ApplyAverage";
  n.domain = distributed::kCollectiveDomain;
  n.inputs = {"x", with_buffers ? "b" : "", "s", "avg"};
  n.outputs = {"token"};
  n.attributes["context"] = graph::Attribute::Int(context);
  return n;
}

TEST(LasgdMerge, AddsTheAverageMinusTheSnapshot) {
  auto ctx = std::make_shared<DistributedContext>();
  ctx->size = 1;
  ctx->arrived_unapplied = true;
  const int64_t id = distributed::RegisterContext(ctx);
  Tensor x = Tensor::FromFloats({1, 2, 3, 4}, {4});
  Tensor s = Tensor::FromFloats({0.5f, 1, 1, 8}, {4});
  // The progress slots of one rank come first.
  std::vector<float> avg_values(distributed::kProgressSlots, 0.f);
  for (float v : {2.f, 2.f, -1.f, 0.25f}) avg_values.push_back(v);
  Tensor avg = Tensor::FromFloats(avg_values, {static_cast<int64_t>(avg_values.size())});
  auto out = ops::EvaluateNode(MergeNode(id, false), 1, {x, Tensor(), s, avg});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(x.ToDoubleVector(), (std::vector<double>{2.5, 3, 1, -3.75}));
  EXPECT_FALSE(ctx->arrived_unapplied);
  EXPECT_EQ(ctx->averages_applied, 1);
  // Nothing new arrived: a second merge leaves x alone.
  ASSERT_TRUE(ops::EvaluateNode(MergeNode(id, false), 1, {x, Tensor(), s, avg}).ok());
  EXPECT_EQ(x.ToDoubleVector(), (std::vector<double>{2.5, 3, 1, -3.75}));
  distributed::UnregisterContext(id);
}

TEST(LasgdMerge, BuffersFollowTheParametersInTheFlatModel) {
  auto ctx = std::make_shared<DistributedContext>();
  ctx->size = 2;
  ctx->arrived_unapplied = true;
  const int64_t id = distributed::RegisterContext(ctx);
  Tensor x = Tensor::FromFloats({1, 2}, {2});
  Tensor b = Tensor::FromFloats({10}, {1});
  Tensor s = Tensor::FromFloats({1, 1, 1}, {3});
  std::vector<float> avg_values(2 * distributed::kProgressSlots, 0.f);
  for (float v : {3.f, 5.f, 7.f}) avg_values.push_back(v);
  Tensor avg = Tensor::FromFloats(avg_values, {static_cast<int64_t>(avg_values.size())});
  ASSERT_TRUE(ops::EvaluateNode(MergeNode(id, true), 1, {x, b, s, avg}).ok());
  EXPECT_EQ(x.ToDoubleVector(), (std::vector<double>{3, 6}));
  EXPECT_EQ(b.ToDoubleVector(), (std::vector<double>{16}));
  distributed::UnregisterContext(id);
}

TEST(LasgdMerge, UnknownContextIsAnError) {
  Tensor x = Tensor::FromFloats({1}, {1});
  Tensor avg = Tensor::FromFloats(std::vector<float>(distributed::kProgressSlots + 1, 0.f),
                                  {distributed::kProgressSlots + 1});
  auto out = ops::EvaluateNode(MergeNode(987654, false), 1, {x, Tensor(), x, avg});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("987654"), std::string::npos) << out.status();
}

TEST(LasgdMerge, ProgressSlotsSurviveTheMean) {
  // Rank r writes its slot, the mean over 3 ranks is taken, and the decode
  // gives back every rank's exact counts.
  const int size = 3;
  std::vector<float> sum(size * distributed::kProgressSlots, 0.f);
  for (int r = 0; r < size; ++r) {
    distributed::RankProgress p;
    p.samples = 123456789 + r;
    p.steps = 70000 + r;
    p.compute_s = 1.5 * r;
    std::vector<float> slots(sum.size());
    distributed::EncodeProgress(p, r, size, slots.data());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += slots[i];
  }
  for (float& v : sum) v /= size;
  auto all = distributed::DecodeProgress(sum.data(), size);
  for (int r = 0; r < size; ++r) {
    EXPECT_EQ(all[r].samples, 123456789 + r);
    EXPECT_EQ(all[r].steps, 70000 + r);
    EXPECT_NEAR(all[r].compute_s, 1.5 * r, 1e-5);
  }
}

// ---------------------------------------------------------------------------
// Flat-buffer runs: a program with one parameter tensor "w" and one buffer
// tensor "bn" and no nodes; the test plays the optimizer.

constexpr size_t kParams = 37;
constexpr size_t kBuffers = 5;

graph::TrainingProgram FlatProgram() {
  graph::TrainingProgram p;
  p.graph.initializers["w"] = Tensor::Allocate(DataType::kFloat32, {kParams});
  p.graph.initializers["bn"] = Tensor::Allocate(DataType::kFloat32, {kBuffers});
  p.parameters = {"w"};
  p.buffers = {"bn"};
  return p;
}

// The change rank r's optimizer makes to element i at step k.
double Delta(int r, int64_t k, size_t i) { return 0.01 * std::sin(1.0 + r * 7 + k * 3 + i * 0.5); }
double Initial(int r, size_t i) { return 0.1 * std::cos(r * 1.3 + i * 0.7); }

struct FlatRank {
  graph::TrainingProgram program = FlatProgram();
  std::vector<float> model = std::vector<float>(kParams + kBuffers);
  std::unique_ptr<DataParallel> dp;
  ModelBuffers Buffers() {
    ModelBuffers b;
    b.params = model.data();
    b.param_floats = kParams;
    b.buffers = model.data() + kParams;
    b.buffer_floats = kBuffers;
    return b;
  }
  AlgorithmBase& algorithm() { return *static_cast<AlgorithmBase*>(dp.get()); }
};

// Runs `body(rank, FlatRank&, Communicator&)` on `size` threads.
void RunRanks(int size, const runtime::DistributedConfig& config,
              const std::function<absl::Status(int, FlatRank&, Communicator&)>& body,
              bool broadcast = false, double latency_ms = 0) {
  distributed::CommOptions opts;
  opts.timeout_s = 60;
  opts.latency_ms = latency_ms;
  auto comms = distributed::CreateInProcessGroup(size, opts);
  std::vector<absl::Status> status(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      FlatRank rank;
      for (size_t i = 0; i < rank.model.size(); ++i)
        rank.model[i] = static_cast<float>(Initial(r, i));
      auto dp = DataParallel::Create(config, comms[r].get(), &rank.program);
      if (!dp.ok()) {
        status[r] = dp.status();
        return;
      }
      rank.dp = std::move(*dp);
      status[r] = rank.dp->Bind(rank.Buffers());
      if (status[r].ok() && broadcast) status[r] = rank.dp->BroadcastModel();
      if (status[r].ok()) status[r] = body(r, rank, *comms[r]);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
}

// The LASGD pseudocode (DESIGN.md) in double precision, N ranks in lockstep.
// `merge_at[k]` (when_ready) says an average started at boundary b is
// merged after step b + 1 instead of at the next boundary.
std::vector<std::vector<std::vector<double>>> ReferenceLasgd(int size, int64_t steps, int64_t h,
                                                             bool when_ready, bool local) {
  const size_t n = kParams + kBuffers;
  std::vector<std::vector<double>> x(size, std::vector<double>(n)), s = x;
  std::vector<double> avg(n);
  for (int r = 0; r < size; ++r)
    for (size_t i = 0; i < n; ++i) x[r][i] = static_cast<float>(Initial(r, i));
  bool pending = false;
  std::vector<std::vector<std::vector<double>>> trajectory;  // [step][rank][i]
  auto merge = [&] {
    for (int r = 0; r < size; ++r)
      for (size_t i = 0; i < n; ++i) x[r][i] += avg[i] - s[r][i];
    pending = false;
  };
  for (int64_t k = 1; k <= steps; ++k) {
    for (int r = 0; r < size; ++r)
      for (size_t i = 0; i < n; ++i) x[r][i] += Delta(r, k, i);
    if (when_ready && pending) merge();
    if (k % h == 0) {
      if (local) {
        for (size_t i = 0; i < n; ++i) {
          double mean = 0;
          for (int r = 0; r < size; ++r) mean += x[r][i] / size;
          for (int r = 0; r < size; ++r) x[r][i] = mean;
        }
      } else {
        if (pending) merge();
        s = x;
        for (size_t i = 0; i < n; ++i) {
          avg[i] = 0;
          for (int r = 0; r < size; ++r) avg[i] += s[r][i] / size;
        }
        pending = true;
      }
    }
    trajectory.push_back(x);
  }
  // Finish: merge, then one exact average.
  if (pending) merge();
  for (size_t i = 0; i < n; ++i) {
    double mean = 0;
    for (int r = 0; r < size; ++r) mean += x[r][i] / size;
    for (int r = 0; r < size; ++r) x[r][i] = mean;
  }
  trajectory.push_back(x);
  return trajectory;
}

// Runs the algorithm on flat buffers and checks every rank after every step
// and after Finish against the reference.
void CheckAgainstReference(const std::string& algorithm, const std::string& apply, int size,
                           int64_t steps, int64_t h) {
  runtime::DistributedConfig config;
  config.algorithm = algorithm;
  config.segment_steps = h;
  config.apply = apply;
  const bool when_ready = apply == "when_ready";
  auto expected = ReferenceLasgd(size, steps, h, when_ready, algorithm == "local");
  std::mutex mu;
  std::vector<std::vector<std::vector<float>>> got(steps + 1,
                                                   std::vector<std::vector<float>>(size));
  RunRanks(size, config, [&](int r, FlatRank& rank, Communicator&) -> absl::Status {
    for (int64_t k = 1; k <= steps; ++k) {
      for (size_t i = 0; i < rank.model.size(); ++i)
        rank.model[i] = static_cast<float>(rank.model[i] + Delta(r, k, i));
      StepReport report;
      report.step = k;
      report.samples = 4;
      RETURN_IF_ERROR(rank.dp->AfterStep(report));
      {
        std::lock_guard<std::mutex> lock(mu);
        got[k - 1][r] = rank.model;
      }
      // when_ready: let the average complete before the next step, so that
      // it is merged exactly one step after its boundary.
      if (when_ready && k % h == 0) {
        while (rank.algorithm().context().pending && !rank.algorithm().context().pending->Test())
          std::this_thread::yield();
      }
    }
    RETURN_IF_ERROR(rank.dp->Finish());
    std::lock_guard<std::mutex> lock(mu);
    got[steps][r] = rank.model;
    return absl::OkStatus();
  });
  for (int64_t k = 0; k <= steps; ++k) {
    for (int r = 0; r < size; ++r) {
      ASSERT_EQ(got[k][r].size(), kParams + kBuffers);
      double worst = 0;
      for (size_t i = 0; i < got[k][r].size(); ++i)
        worst = std::max(worst, std::fabs(got[k][r][i] - expected[k][r][i]));
      EXPECT_LT(worst, 2e-6) << algorithm << " apply=" << apply << " rank " << r << " after "
                             << (k == steps ? "Finish" : absl::StrCat("step ", k + 1));
    }
  }
  // Finish: one model on every rank, to the bit.
  for (int r = 1; r < size; ++r) EXPECT_EQ(got[steps][r], got[steps][0]) << "rank " << r;
}

TEST(LasgdFlat, BoundaryMatchesThePseudocode) {
  CheckAgainstReference("lasgd", "boundary", 3, 9, 2);
}

TEST(LasgdFlat, WhenReadyMergesOneStepAfterTheBoundary) {
  CheckAgainstReference("lasgd", "when_ready", 3, 9, 3);
}

TEST(LasgdFlat, WhenReadyDiffersFromBoundaryBetweenBoundaries) {
  // The reference itself: guards against a reference that cannot tell them apart.
  auto boundary = ReferenceLasgd(2, 6, 3, false, false);
  auto ready = ReferenceLasgd(2, 6, 3, true, false);
  // trajectory[k - 1] is the state after step k.
  auto distance = [&](size_t k) {
    double d = 0;
    for (size_t r = 0; r < boundary[k].size(); ++r)
      for (size_t i = 0; i < boundary[k][r].size(); ++i)
        d = std::max(d, std::fabs(boundary[k][r][i] - ready[k][r][i]));
    return d;
  };
  EXPECT_EQ(distance(2), 0);     // after step 3, the boundary
  EXPECT_GT(distance(3), 1e-3);  // after step 4: when_ready has merged
  EXPECT_GT(distance(4), 1e-3);
  EXPECT_LT(distance(5), 1e-12);  // after step 6 both have merged
}

TEST(LocalFlat, EveryAverageIsTheExplicitMean) {
  CheckAgainstReference("local", "boundary", 4, 7, 3);
}

TEST(LasgdFlat, TwoRanksLongRun) { CheckAgainstReference("lasgd", "boundary", 2, 25, 4); }

// ---------------------------------------------------------------------------
// segment_ms: rank r's step takes (r + 1) / 1024 s on its own fake clock,
// and a segment 8 / 1024 s (binary fractions: the boundary arithmetic is exact).

TEST(LasgdSegmentMs, RanksAgreeOnGlobalSamplesAndStopAtTheSameAverage) {
  const int size = 3;
  const double unit_s = 1.0 / 1024;
  const double segment_ms = 8 * unit_s * 1e3;
  const int64_t samples_per_step = 4;
  const int64_t total = 300;
  runtime::DistributedConfig config;
  config.algorithm = "lasgd";
  config.segment_ms = segment_ms;
  std::mutex mu;
  std::vector<int64_t> averages(size), global(size), steps(size);
  std::vector<std::vector<distributed::RankTiming>> timings(size);
  RunRanks(size, config, [&](int r, FlatRank& rank, Communicator&) -> absl::Status {
    double now_s = 0;
    rank.algorithm().set_clock([&now_s] { return now_s; });
    RETURN_IF_ERROR(rank.dp->BroadcastModel());  // the segment clock starts here
    int64_t k = 0;
    while (!rank.dp->ShouldStop(total)) {
      if (k > 10000) return absl::InternalError("never stopped");
      ++k;
      now_s += (r + 1) * unit_s;
      StepReport report;
      report.step = k;
      report.samples = samples_per_step;
      report.compute_s = (r + 1) * unit_s;
      RETURN_IF_ERROR(rank.dp->AfterStep(report));
    }
    ASSIGN_OR_RETURN(auto t, rank.dp->GatherTimings());
    {
      std::lock_guard<std::mutex> lock(mu);
      averages[r] = rank.algorithm().averages();
      global[r] = rank.dp->global_samples();
      steps[r] = k;
      timings[r] = t;
    }
    return rank.dp->Finish();
  });
  // Every rank started the same number of averages and sees the same count.
  for (int r = 1; r < size; ++r) {
    EXPECT_EQ(averages[r], averages[0]) << "rank " << r;
    EXPECT_EQ(global[r], global[0]) << "rank " << r;
    EXPECT_EQ(timings[r].size(), static_cast<size_t>(size));
    for (int q = 0; q < size; ++q) EXPECT_EQ(timings[r][q].steps, timings[0][q].steps);
  }
  EXPECT_GE(global[0], total);
  // The count is the samples of every rank at the snapshot of the average
  // before the last boundary: rank r's boundary j is its first step s with
  // s * (r + 1) >= 8 j.
  const int64_t committed = averages[0] - 1;
  ASSERT_GE(committed, 2);
  int64_t expected = 0;
  for (int r = 0; r < size; ++r) {
    const int64_t s = (8 * committed + r) / (r + 1);
    expected += s * samples_per_step;
    EXPECT_EQ(timings[0][r].steps, s) << "rank " << r;
  }
  EXPECT_EQ(global[0], expected);
  // The fast rank took more local steps than the slow ones.
  EXPECT_GT(steps[0], steps[1]);
  EXPECT_GT(steps[1], steps[2]);
}

// An average that takes longer than a segment (20 ms of emulated latency per
// message, segments of 2 ms on a fake clock that a step advances by 1 ms):
// with apply = when_ready no rank blocks on it before the end, boundaries
// move to the first step after the average completes, and the ranks still
// start the same averages, agree on the progress, stop after the same
// average and end with one model.
TEST(LasgdSegmentMs, WhenReadyDefersBoundariesInsteadOfWaiting) {
  const int size = 3;
  const int64_t total = 3000;
  runtime::DistributedConfig config;
  config.algorithm = "lasgd";
  config.apply = "when_ready";
  config.segment_ms = 2;
  std::mutex mu;
  std::vector<int64_t> averages(size), global(size), steps(size), deferred(size);
  std::vector<double> wait_before_finish(size);
  std::vector<std::vector<float>> models(size);
  RunRanks(
      size, config,
      [&](int r, FlatRank& rank, Communicator&) -> absl::Status {
        double now_s = 0;
        rank.algorithm().set_clock([&now_s] { return now_s; });
        RETURN_IF_ERROR(rank.dp->BroadcastModel());  // the segment clock starts here
        int64_t k = 0;
        while (!rank.dp->ShouldStop(total)) {
          if (k > 200000) return absl::InternalError("never stopped");
          ++k;
          now_s += 1e-3;
          // A little real time per step so the averages (>= 80 ms each)
          // finish within a bounded number of steps.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          for (size_t i = 0; i < kParams; ++i) rank.model[i] += static_cast<float>(Delta(r, k, i));
          StepReport report;
          report.step = k;
          report.samples = 1;
          RETURN_IF_ERROR(rank.dp->AfterStep(report));
        }
        const double wait = rank.algorithm().context().wait_s;
        RETURN_IF_ERROR(rank.dp->Finish());
        std::lock_guard<std::mutex> lock(mu);
        averages[r] = rank.algorithm().averages();
        global[r] = rank.dp->global_samples();
        steps[r] = k;
        deferred[r] = rank.algorithm().deferred_boundaries();
        wait_before_finish[r] = wait;
        models[r] = rank.model;
        return absl::OkStatus();
      },
      /*broadcast=*/false, /*latency_ms=*/20);
  for (int r = 0; r < size; ++r) {
    EXPECT_EQ(averages[r], averages[0]) << "rank " << r;
    EXPECT_EQ(global[r], global[0]) << "rank " << r;
    EXPECT_EQ(models[r], models[0]) << "rank " << r;
    // Far fewer averages than 2 ms segments: the boundaries were put off.
    EXPECT_GT(deferred[r], 0) << "rank " << r;
    EXPECT_LT(averages[r] * 4, steps[r]) << "rank " << r;
    // Each average takes >= 80 ms; blocking at the boundaries would have
    // cost about that much per average.
    EXPECT_LT(wait_before_finish[r], 0.25 * 0.08 * averages[r]) << "rank " << r;
  }
  EXPECT_GE(global[0], total);
  EXPECT_GE(averages[0], 3);
}

TEST(LasgdSegmentMs, StepsModeCountsThisRankTimesN) {
  runtime::DistributedConfig config;
  config.algorithm = "lasgd";
  config.segment_steps = 2;
  RunRanks(2, config, [&](int, FlatRank& rank, Communicator&) -> absl::Status {
    for (int64_t k = 1; k <= 3; ++k) {
      StepReport report;
      report.step = k;
      report.samples = 8;
      RETURN_IF_ERROR(rank.dp->AfterStep(report));
    }
    if (rank.dp->global_samples() != 48)
      return absl::InternalError(absl::StrCat("global_samples ", rank.dp->global_samples()));
    if (rank.dp->ShouldStop(1)) return absl::InternalError("ShouldStop without segment_ms");
    ASSIGN_OR_RETURN(auto t, rank.dp->GatherTimings());
    if (t.size() != 2 || t[0].steps != 3 || t[1].samples != 24)
      return absl::InternalError("GatherTimings");
    return rank.dp->Finish();
  });
}

// ---------------------------------------------------------------------------
// LatestAverage (the learning curve's "average of all ranks" model): 3 ranks,
// a boundary after step 2, asked after step 3 while the average (50 ms of
// emulated latency) is still in flight.

void CheckLatestAverage(const std::string& algorithm, const std::string& apply,
                        bool average_buffers) {
  const int size = 3;
  const int64_t h = 2;
  runtime::DistributedConfig config;
  config.algorithm = algorithm;
  config.segment_steps = h;
  config.apply = apply;
  config.average_buffers = average_buffers;
  const size_t n = kParams + kBuffers;
  const float untouched = -7.f;
  std::vector<std::vector<float>> at_boundary(size), before(size), after(size), latest(size);
  std::vector<int> found_early(size, -1), found(size, -1);
  RunRanks(
      size, config,
      [&](int r, FlatRank& rank, Communicator&) -> absl::Status {
        std::vector<float> out(n, untouched);
        for (int64_t k = 1; k <= h + 1; ++k) {
          for (size_t i = 0; i < n; ++i)
            rank.model[i] = static_cast<float>(rank.model[i] + Delta(r, k, i));
          StepReport report;
          report.step = k;
          report.samples = 4;
          RETURN_IF_ERROR(rank.dp->AfterStep(report));
          if (k == 1) {
            // Nothing averaged yet.
            ASSIGN_OR_RETURN(bool f, rank.dp->LatestAverage(out.data(), out.data() + kParams));
            found_early[r] = f;
          }
          if (k == h) at_boundary[r] = rank.model;  // lasgd: the snapshot; local: the average
        }
        before[r] = rank.model;
        ASSIGN_OR_RETURN(bool f, rank.dp->LatestAverage(out.data(), out.data() + kParams));
        found[r] = f;
        latest[r] = out;
        after[r] = rank.model;
        return rank.dp->Finish();
      },
      false, 50);
  std::vector<double> mean(n, 0);
  for (int r = 0; r < size; ++r) {
    ASSERT_EQ(at_boundary[r].size(), n);
    for (size_t i = 0; i < n; ++i) mean[i] += at_boundary[r][i] / size;
  }
  for (int r = 0; r < size; ++r) {
    EXPECT_EQ(found_early[r], 0) << "rank " << r << ": an average before the first boundary";
    ASSERT_EQ(found[r], 1) << "rank " << r;
    for (size_t i = 0; i < n; ++i) {
      if (i < kParams || average_buffers) {
        EXPECT_NEAR(latest[r][i], mean[i], 1e-6) << "rank " << r << " element " << i;
      } else {
        EXPECT_EQ(latest[r][i], untouched) << "rank " << r << ": BN statistics not averaged";
      }
      // The model: boundary and local leave it alone; when_ready merges the
      // average that had to arrive, as the next step would have.
      const bool averaged = i < kParams || average_buffers;
      if (apply == "when_ready" && averaged) {
        EXPECT_NEAR(after[r][i], before[r][i] + mean[i] - at_boundary[r][i], 1e-6)
            << "rank " << r << " element " << i;
      } else {
        EXPECT_EQ(after[r][i], before[r][i]) << "rank " << r << " element " << i;
      }
    }
  }
}

TEST(LatestAverage, LasgdBoundaryWaitsForTheAverageAndLeavesTheModel) {
  CheckLatestAverage("lasgd", "boundary", true);
}
TEST(LatestAverage, LasgdWhenReadyMergesTheAverageItWaitedFor) {
  CheckLatestAverage("lasgd", "when_ready", true);
}
TEST(LatestAverage, LasgdWithoutBufferAveragingLeavesBuffersOut) {
  CheckLatestAverage("lasgd", "boundary", false);
}
TEST(LatestAverage, LocalIsTheLastBlockingAverage) {
  CheckLatestAverage("local", "boundary", true);
}

TEST(LatestAverage, SgpHasNone) {
  runtime::DistributedConfig config;
  config.algorithm = "sgp";
  RunRanks(2, config, [&](int, FlatRank& rank, Communicator&) -> absl::Status {
    StepReport report;
    report.step = 1;
    report.samples = 4;
    RETURN_IF_ERROR(rank.dp->AfterStep(report));
    std::vector<float> out(kParams + kBuffers, 0.f);
    ASSIGN_OR_RETURN(bool f, rank.dp->LatestAverage(out.data(), out.data() + kParams));
    if (f) return absl::InternalError("sgp returned an exact average mid-run");
    return rank.dp->Finish();
  });
}

// ---------------------------------------------------------------------------
// SGP: push-sum conserves mass and converges to the average.

void CheckPushSum(int size, bool with_steps) {
  runtime::DistributedConfig config;
  config.algorithm = "sgp";
  const size_t n = kParams + kBuffers;
  const int64_t rounds = 40;
  std::vector<FlatRank*> ranks(size, nullptr);
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::vector<float>> final_models(size);
  // The mass as the test adds it up: initial models plus every step.
  std::vector<double> mass(n, 0);
  for (int r = 0; r < size; ++r)
    for (size_t i = 0; i < n; ++i) mass[i] += static_cast<float>(Initial(r, i));
  RunRanks(size, config, [&](int r, FlatRank& rank, Communicator& comm) -> absl::Status {
    {
      std::lock_guard<std::mutex> lock(mu);
      ranks[r] = &rank;
    }
    const graph::Graph* gossip = nullptr;
    for (const auto& [name, g] : rank.dp->programs())
      if (name == "gossip_step") gossip = g;
    if (!gossip) return absl::InternalError("no gossip_step program");
    for (int64_t k = 1; k <= rounds; ++k) {
      if (with_steps) {
        for (size_t i = 0; i < n; ++i) {
          const float before = rank.model[i];
          rank.model[i] = static_cast<float>(before + Delta(r, k, i));
          std::lock_guard<std::mutex> lock(mu);
          mass[i] += static_cast<double>(rank.model[i]) - before;
        }
      }
      StepReport report;
      report.step = k;
      report.samples = 1;
      RETURN_IF_ERROR(rank.dp->AfterStep(report));
      RETURN_IF_ERROR(comm.Barrier());
      if (r == 0) {
        // Numerators and weights, counting the halves in flight.
        double worst = 0, weight = 0;
        for (size_t i = 0; i <= n; ++i) {
          double total = 0;
          for (FlatRank* q : ranks) {
            const graph::Graph* g = nullptr;
            for (const auto& [name, prog] : q->dp->programs())
              if (name == "gossip_step") g = prog;
            total += g->initializers.at("sgp/x").data<float>()[i] +
                     g->initializers.at("sgp/send").data<float>()[i];
          }
          if (i < n)
            worst = std::max(worst, std::fabs(total - mass[i]));
          else
            weight = total;
        }
        std::lock_guard<std::mutex> lock(mu);
        if (worst > 1e-5) failures.push_back(absl::StrCat("round ", k, ": mass off by ", worst));
        if (std::fabs(weight - size) > 1e-6)
          failures.push_back(absl::StrCat("round ", k, ": weights sum to ", weight));
      }
      RETURN_IF_ERROR(comm.Barrier());
    }
    if (!with_steps) {
      // Gossip alone has nearly reached consensus on the average.
      for (size_t i = 0; i < n; ++i) {
        if (std::fabs(rank.model[i] - mass[i] / size) > 1e-5) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(absl::StrCat("rank ", r, " element ", i, " is ", rank.model[i],
                                          ", the average is ", mass[i] / size));
          break;
        }
      }
    }
    RETURN_IF_ERROR(rank.dp->Finish());
    std::lock_guard<std::mutex> lock(mu);
    final_models[r] = rank.model;
    return absl::OkStatus();
  });
  for (const std::string& f : failures) ADD_FAILURE() << f;
  for (int r = 0; r < size; ++r) {
    ASSERT_EQ(final_models[r].size(), n);
    EXPECT_EQ(final_models[r], final_models[0]) << "rank " << r;
    for (size_t i = 0; i < n; ++i)
      EXPECT_NEAR(final_models[r][i], mass[i] / size, 2e-6) << "rank " << r << " element " << i;
  }
}

TEST(SgpPushSum, ConservesMassAndConvergesFourRanks) { CheckPushSum(4, false); }
TEST(SgpPushSum, ConservesMassAndConvergesThreeRanks) { CheckPushSum(3, false); }
TEST(SgpPushSum, OptimizerStepsEnterTheMassUnscaled) { CheckPushSum(4, true); }

// ---------------------------------------------------------------------------
// Real models: every rank ends with the same parameters and BN statistics.

struct Fixture {
  std::string dir;
  int64_t batch;
};

void TrainAndCompare(const std::string& algorithm, const std::string& apply, const Fixture& f,
                     int size, int steps) {
  runtime::TrainConfig config;
  config.model.path = f.dir + "/model.onnx";
  config.optimizer.type = "sgd";
  config.optimizer.lr = 0.05;
  config.optimizer.momentum = 0.9;
  config.distributed.algorithm = algorithm;
  config.distributed.segment_steps = 2;
  config.distributed.apply = apply;
  auto forward = importers::LoadOnnxModel(config.model.path);
  ASSERT_TRUE(forward.ok()) << forward.status();
  auto data = data::ReadNpz(f.dir + "/data.npz");
  ASSERT_TRUE(data.ok()) << data.status();
  const Tensor& x = data->at("x");
  const Tensor& y = data->at("y");
  distributed::CommOptions opts;
  opts.timeout_s = 60;
  auto comms = distributed::CreateInProcessGroup(size, opts);
  std::vector<std::vector<float>> before(size), after(size);
  std::vector<absl::Status> status(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      auto m = testing::BuildRank(*forward, config, f.batch, comms[r].get());
      if (!m.ok()) {
        status[r] = m.status();
        return;
      }
      status[r] = (*m)->dp->BroadcastModel();
      before[r] = (*m)->Flat();
      for (int s = 0; s < steps && status[r].ok(); ++s) {
        const int64_t begin = (static_cast<int64_t>(s) * size + r) * f.batch;
        status[r] = (*m)->Step(testing::Rows(x, begin, f.batch), testing::Rows(y, begin, f.batch),
                               config.optimizer.lr);
      }
      if (status[r].ok()) status[r] = (*m)->dp->Finish();
      after[r] = (*m)->Flat();
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < size; ++r) ASSERT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  double moved = 0;
  for (size_t i = 0; i < after[0].size(); ++i)
    moved = std::max(moved, std::fabs(static_cast<double>(after[0][i]) - before[0][i]));
  EXPECT_GT(moved, 1e-3) << algorithm << ": training did not move the model";
  for (int r = 1; r < size; ++r)
    EXPECT_EQ(after[r], after[0]) << algorithm << " apply=" << apply << ": rank " << r;
}

const Fixture kMlp{std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/mlp", 4};
const Fixture kCnn{std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/cnn_op17", 4};

TEST(AllRanksIdenticalAfterFinish, LasgdBoundaryMlp) {
  TrainAndCompare("lasgd", "boundary", kMlp, 3, 7);
}
TEST(AllRanksIdenticalAfterFinish, LasgdWhenReadyCnnWithBatchNorm) {
  TrainAndCompare("lasgd", "when_ready", kCnn, 2, 7);
}
TEST(AllRanksIdenticalAfterFinish, LocalCnnWithBatchNorm) {
  TrainAndCompare("local", "boundary", kCnn, 3, 5);
}
TEST(AllRanksIdenticalAfterFinish, SgpCnnWithBatchNorm) {
  TrainAndCompare("sgp", "boundary", kCnn, 4, 6);
}
TEST(AllRanksIdenticalAfterFinish, SyncCnnWithBatchNorm) {
  TrainAndCompare("sync", "boundary", kCnn, 2, 4);
}

}  // namespace
}  // namespace lasgd
