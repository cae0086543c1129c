// The arena planner: buffers whose lifetimes overlap never share bytes,
// buffers that do not overlap do get reused, and the peak never exceeds the
// naive sum.
#include "runtime/memory_plan.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"
#include "runtime/npy.h"

namespace lasgd::runtime {
namespace {

bool LifetimesOverlap(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

// Checks every invariant of a plan and returns a failure naming the first
// broken one.
::testing::AssertionResult PlanIsValid(const std::vector<BufferRequest>& requests,
                                       const MemoryPlan& plan) {
  if (plan.offsets.size() != requests.size())
    return ::testing::AssertionFailure()
           << plan.offsets.size() << " offsets for " << requests.size() << " requests";
  size_t naive = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    naive += (std::max<size_t>(requests[i].bytes, 1) + 63) / 64 * 64;
    if (plan.offsets[i] % 64 != 0)
      return ::testing::AssertionFailure() << "offset " << plan.offsets[i] << " is not aligned";
    if (plan.offsets[i] + requests[i].bytes > plan.arena_bytes)
      return ::testing::AssertionFailure() << "buffer " << i << " ends past the arena";
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    for (size_t j = i + 1; j < requests.size(); ++j) {
      if (!LifetimesOverlap(requests[i], requests[j])) continue;
      size_t a0 = plan.offsets[i], a1 = a0 + requests[i].bytes;
      size_t b0 = plan.offsets[j], b1 = b0 + requests[j].bytes;
      if (a0 < b1 && b0 < a1) {
        return ::testing::AssertionFailure()
               << "live buffers " << i << " [" << a0 << "," << a1 << ") and " << j << " [" << b0
               << "," << b1 << ") overlap";
      }
    }
  }
  if (plan.arena_bytes > plan.naive_bytes)
    return ::testing::AssertionFailure()
           << "peak " << plan.arena_bytes << " > naive " << plan.naive_bytes;
  if (plan.naive_bytes != naive)
    return ::testing::AssertionFailure() << "naive " << plan.naive_bytes << " != " << naive;
  return ::testing::AssertionSuccess();
}

TEST(MemoryPlanTest, EmptyPlan) {
  MemoryPlan plan = PlanMemory({});
  EXPECT_TRUE(plan.offsets.empty());
  EXPECT_EQ(plan.arena_bytes, 0u);
  EXPECT_EQ(plan.naive_bytes, 0u);
}

TEST(MemoryPlanTest, ChainReusesDeadBuffers) {
  // a -> b -> c -> d: each buffer dies when the next step has read it, so
  // two slots are enough for any length of chain.
  std::vector<BufferRequest> requests = {
      {1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}, {1000, 4, 5}};
  MemoryPlan plan = PlanMemory(requests);
  EXPECT_TRUE(PlanIsValid(requests, plan));
  EXPECT_EQ(plan.arena_bytes, 2 * 1024u);
  EXPECT_EQ(plan.naive_bytes, 5 * 1024u);
  EXPECT_EQ(plan.offsets[0], plan.offsets[2]);
}

TEST(MemoryPlanTest, AllLiveAtOnceNeedsTheSum) {
  std::vector<BufferRequest> requests = {{100, 0, 3}, {200, 1, 3}, {300, 2, 3}};
  MemoryPlan plan = PlanMemory(requests);
  EXPECT_TRUE(PlanIsValid(requests, plan));
  EXPECT_EQ(plan.arena_bytes, plan.naive_bytes);
}

TEST(MemoryPlanTest, SmallBufferFitsInAGap) {
  // A big buffer dies at step 1; a small one born at step 2 goes into its hole
  // rather than above the long-lived buffer.
  std::vector<BufferRequest> requests = {{4096, 0, 1}, {4096, 0, 5}, {128, 2, 3}};
  MemoryPlan plan = PlanMemory(requests);
  EXPECT_TRUE(PlanIsValid(requests, plan));
  EXPECT_EQ(plan.arena_bytes, 8192u);
}

TEST(MemoryPlanTest, ZeroByteBuffersAreHarmless) {
  std::vector<BufferRequest> requests = {{0, 0, 1}, {0, 0, 1}, {64, 0, 1}};
  MemoryPlan plan = PlanMemory(requests);
  EXPECT_TRUE(PlanIsValid(requests, plan));
}

TEST(MemoryPlanTest, RandomPlansAreValidAndNearTheLowerBound) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 50; ++trial) {
    const int steps = 5 + trial;
    std::vector<BufferRequest> requests;
    for (int s = 0; s < steps; ++s) {
      const int outputs = 1 + static_cast<int>(rng() % 3);
      for (int o = 0; o < outputs; ++o) {
        int last = std::min(steps, s + 1 + static_cast<int>(rng() % 6));
        requests.push_back({1 + rng() % 100000, s, last});
      }
    }
    MemoryPlan plan = PlanMemory(requests);
    ASSERT_TRUE(PlanIsValid(requests, plan)) << "trial " << trial;
    // No plan can beat the largest total that is live at one step.
    size_t lower = 0;
    for (int s = 0; s <= steps; ++s) {
      size_t live = 0;
      for (const BufferRequest& r : requests)
        if (r.first_step <= s && s <= r.last_step) live += r.bytes;
      lower = std::max(lower, live);
    }
    EXPECT_GE(plan.arena_bytes, lower);
    EXPECT_LT(plan.arena_bytes, plan.naive_bytes) << "no reuse in trial " << trial;
  }
}

// The executor's plan of a real model reuses memory and its outputs survive
// to the end (they are copied out after the last step).
TEST(MemoryPlanTest, ExecutorPlanReusesMemory) {
  auto g = importers::LoadOnnxModel(std::string(LASGD_SOURCE_DIR) +
                                    "/tests/fixtures/convtranspose_decoder/model.onnx");
  ASSERT_TRUE(g.ok()) << g.status();
  auto ex = Executor::Create(std::move(*g), {});
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_GT((*ex)->arena_bytes(), 0u);
  EXPECT_LE((*ex)->arena_bytes(), (*ex)->naive_bytes());
  EXPECT_NE((*ex)->PlanReport().find("without reuse"), std::string::npos);
}

}  // namespace
}  // namespace lasgd::runtime
