// The learning curve (train.curve_every_s): points are due every every_s
// seconds, each copy is evaluated after training, and a point that carries
// the average of all ranks' models is evaluated on it too and written as
// average_top1 / average_loss next to rank 0's own model.
#include "runtime/learning_curve.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lasgd::runtime {
namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(LearningCurve, DueEveryPeriodOrWhenForced) {
  LearningCurve curve(5.0);
  Tensor arena = Tensor::FromFloats({0.f}, {1});
  EXPECT_TRUE(curve.Due(0.1));  // the first point
  curve.Snapshot(0.1, 1, 16, arena);
  EXPECT_FALSE(curve.Due(5.0));
  EXPECT_TRUE(curve.Due(5.0, /*force=*/true));
  EXPECT_TRUE(curve.Due(5.1));
}

TEST(LearningCurve, EvaluatesEachCopyAndItsAverage) {
  LearningCurve curve(1.0);
  Tensor arena = Tensor::FromFloats({0.25f, 0.f}, {2});
  curve.Snapshot(0.5, 1, 64, arena);  // no average (sync, or before the first one)
  arena.data<float>()[0] = 0.5f;
  curve.Snapshot(1.5, 2, 128, arena, Tensor::FromFloats({0.75f, 0.f}, {2}));
  arena.data<float>()[0] = 0.875f;  // the model after training
  // The "evaluation" reports the first float of the model it reads.
  std::vector<float> seen;
  auto evaluate = [&]() -> absl::StatusOr<std::pair<double, double>> {
    seen.push_back(arena.data<float>()[0]);
    return std::make_pair(static_cast<double>(arena.data<float>()[0]), 1.0);
  };
  const std::string path = ::testing::TempDir() + "/learning_curve_test.jsonl";
  auto points = curve.EvaluateAndWrite(arena, evaluate, path);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 2u);
  EXPECT_EQ(seen, (std::vector<float>{0.25f, 0.5f, 0.75f}));
  EXPECT_FALSE((*points)[0].has_average);
  EXPECT_TRUE((*points)[1].has_average);
  EXPECT_DOUBLE_EQ((*points)[1].test_top1, 0.5);
  EXPECT_DOUBLE_EQ((*points)[1].average_top1, 0.75);
  EXPECT_EQ(arena.data<float>()[0], 0.875f) << "the model after training is restored";
  auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].find("average_top1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"test_top1\": 0.500000"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\"average_top1\": 0.750000"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\"samples\": 128"), std::string::npos) << lines[1];
}

TEST(LearningCurve, EvaluationErrorIsReturnedAndTheModelRestored) {
  LearningCurve curve(1.0);
  Tensor arena = Tensor::FromFloats({1.f}, {1});
  curve.Snapshot(0.5, 1, 1, arena, Tensor::FromFloats({2.f}, {1}));
  arena.data<float>()[0] = 3.f;
  int calls = 0;
  auto evaluate = [&]() -> absl::StatusOr<std::pair<double, double>> {
    if (++calls == 2) return absl::InternalError("evaluation failed on the average");
    return std::make_pair(0.5, 1.0);
  };
  auto points =
      curve.EvaluateAndWrite(arena, evaluate, ::testing::TempDir() + "/learning_curve_error.jsonl");
  ASSERT_FALSE(points.ok());
  EXPECT_NE(points.status().message().find("on the average"), std::string::npos);
  EXPECT_EQ(arena.data<float>()[0], 3.f);
}

}  // namespace
}  // namespace lasgd::runtime
