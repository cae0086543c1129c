// ClipGrad with saved_output = 1: input 1 is Clip's output Y and dY passes
// where min < Y < max (PyTorch's rule for in-place ReLU6/Hardtanh). The Clip
// gradient builder emits this form so that training keeps Y, not X, for
// backward. Expected values are hand-computed (noted per case); every case
// runs every kernel candidate against "reference".
#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "ops/evaluate_node.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

graph::Node ClipGradNode(int inputs, int64_t saved_output) {
  graph::Node node =
      testing::MakeNode("ClipGrad", inputs, 1, {{"saved_output", Attribute::Int(saved_output)}});
  node.domain = "com.lasgd";
  return node;
}

Tensor F32(Shape shape, const std::vector<double>& values) {
  Tensor t = Tensor::Allocate(DataType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, values[i]);
  return t;
}

Tensor Eval(const graph::Node& node, const std::vector<Tensor>& inputs) {
  auto outs = RunAllKernelsAndCompare(node, /*opset=*/1, inputs, 1e-6, 1e-7);
  return outs.empty() ? Tensor() : outs[0];
}

TEST(ClipGradSavedOutput, PassesStrictlyInsideTheBounds) {
  // Y = Clip(X, 0, 6) of X = {-2, 0, 0.5, 3, 6, 9}: {0, 0, 0.5, 3, 6, 6}.
  // Only Y strictly inside (0, 6) passes: elements 2 and 3.
  Tensor dy = F32({6}, {1, 2, 3, 4, 5, 6});
  Tensor y = F32({6}, {0, 0, 0.5, 3, 6, 6});
  Tensor dx = Eval(ClipGradNode(4, 1), {dy, y, F32({}, {0}), F32({}, {6})});
  EXPECT_TRUE(TensorsNear(F32({6}, {0, 0, 3, 4, 0, 0}), dx));
  // The same Y read as X (saved_output = 0) passes the bounds too: the two
  // forms differ exactly there.
  dx = Eval(ClipGradNode(4, 0), {dy, y, F32({}, {0}), F32({}, {6})});
  EXPECT_TRUE(TensorsNear(F32({6}, {1, 2, 3, 4, 5, 6}), dx));
}

TEST(ClipGradSavedOutput, AnAbsentBoundNeverBlocks) {
  // Max only (6): Y = {-1e30, 2, 6}; the first passes (no lower bound), the
  // last sits on the upper bound.
  Tensor dy = F32({3}, {1, 2, 3});
  Tensor y = F32({3}, {-1e30, 2, 6});
  graph::Node max_only = ClipGradNode(4, 1);
  max_only.inputs[2].clear();
  EXPECT_TRUE(TensorsNear(F32({3}, {1, 2, 0}), Eval(max_only, {dy, y, Tensor(), F32({}, {6})})));
  // No bounds at all: everything but NaN passes.
  Tensor y_nan = F32({3}, {-5, std::nan(""), 7});
  EXPECT_TRUE(TensorsNear(F32({3}, {1, 0, 3}), Eval(ClipGradNode(2, 1), {dy, y_nan})));
}

TEST(ClipGradSavedOutput, AgreesWithTheInputFormAwayFromTheBounds) {
  // For X off the bounds, reading Y = clip(X) with the strict rule gives
  // the same dX as reading X with the inclusive rule; large enough for the
  // OpenMP path.
  Tensor dy = RandomTensor({300, 200}, 5);
  Tensor x = RandomTensor({300, 200}, 6);
  Tensor y = x.Clone();
  const float lo = -0.3f, hi = 0.6f;
  for (int64_t i = 0; i < y.num_elements(); ++i)
    y.data<float>()[i] = std::min(std::max(y.data<float>()[i], lo), hi);
  Tensor from_x = Eval(ClipGradNode(4, 0), {dy, x, F32({}, {lo}), F32({}, {hi})});
  Tensor from_y = Eval(ClipGradNode(4, 1), {dy, y, F32({}, {lo}), F32({}, {hi})});
  ASSERT_EQ(from_x.num_elements(), from_y.num_elements());
  int64_t passed = 0;
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    ASSERT_NE(x.data<float>()[i], lo);
    ASSERT_NE(x.data<float>()[i], hi);
    ASSERT_EQ(from_x.data<float>()[i], from_y.data<float>()[i]) << i;
    passed += from_y.data<float>()[i] != 0;
  }
  // Both regions are exercised.
  EXPECT_GT(passed, 0);
  EXPECT_LT(passed, x.num_elements());
}

TEST(ClipGradSavedOutput, RejectsOtherAttributeValues) {
  auto s = ops::EvaluateNode(ClipGradNode(2, 2), 1, {F32({1}, {1}), F32({1}, {1})}).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("saved_output"), std::string::npos) << s;
}

}  // namespace
}  // namespace lasgd
