// Tests for the com.lasgd backward ops of the conv, pool, norm and loss
// families (ops/*_backward.cc): hand-computed values, every kernel against
// the reference in float32 (oneDNN / fast candidates), and bad inputs.
// Their use by the gradient builders is checked against finite differences
// in tests/gradcheck/nn_grad_test.cc.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/evaluate_node.h"
#include "ops/op_registry.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;
using Attrs = std::map<std::string, Attribute>;

graph::Node LasgdNode(const std::string& op, int inputs, int outputs, Attrs attrs = {}) {
  graph::Node node = MakeNode(op, inputs, outputs, std::move(attrs));
  node.domain = "com.lasgd";
  return node;
}

Tensor Floats(std::vector<float> values, Shape shape) {
  return Tensor::FromFloats(values, std::move(shape));
}

// Runs every candidate against the reference and insists that `kernel`
// accepted the node (RunAllKernelsAndCompare skips candidates that decline).
std::vector<Tensor> Compare(const graph::Node& node, const std::vector<Tensor>& inputs,
                            const std::string& kernel) {
  if (!kernel.empty()) {
    auto out = ops::EvaluateNode(node, 1, inputs, {kernel});
    EXPECT_TRUE(out.ok()) << kernel << ": " << out.status();
  }
  return RunAllKernelsAndCompare(node, 1, inputs, 1e-4, 1e-4);
}

void ExpectErrorContaining(const graph::Node& node, const std::vector<Tensor>& inputs,
                           const std::string& text) {
  auto out = ops::EvaluateNode(node, 1, inputs);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(std::string(out.status().message()).find(text), std::string::npos) << out.status();
}

// ---- ConvGradInput / ConvGradWeight ----

TEST(ConvGradInputTest, OnesKernelCountsCoveringWindows) {
  // 2x2 kernel of ones over 3x3: each dX pixel = number of windows covering it.
  graph::Node node =
      LasgdNode("ConvGradInput", 2, 1, {{"input_shape", Attribute::Ints({1, 1, 3, 3})}});
  auto out = Compare(node, {Floats({1, 1, 1, 1}, {1, 1, 2, 2}), Floats({1, 1, 1, 1}, {1, 1, 2, 2})},
                     "onednn");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 2, 1, 2, 4, 2, 1, 2, 1}, {1, 1, 3, 3}), out[0]));
}

TEST(ConvGradWeightTest, SumsInputWindows) {
  // X = 0..8 (3x3), dY = ones (2x2): dW[kh, kw] = sum of the 2x2 block at (kh, kw);
  // dB = sum of dY.
  graph::Node node = LasgdNode("ConvGradWeight", 2, 2, {{"kernel_shape", Attribute::Ints({2, 2})}});
  auto out = Compare(
      node, {Floats({0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 3, 3}), Floats({1, 1, 1, 1}, {1, 1, 2, 2})},
      "onednn");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(Floats({8, 12, 20, 24}, {1, 1, 2, 2}), out[0]));
  EXPECT_TRUE(TensorsNear(Floats({4}, {1}), out[1]));
}

struct ConvGradCase {
  const char* name;
  Shape x, w;
  Attrs attrs;
};

class ConvGradKernelsTest : public ::testing::TestWithParam<ConvGradCase> {};

TEST_P(ConvGradKernelsTest, OnednnMatchesReference) {
  const ConvGradCase& c = GetParam();
  graph::Node conv = MakeNode("Conv", 2, 1, c.attrs);
  auto y = ops::EvaluateNode(conv, 13, {RandomTensor(c.x, 1), RandomTensor(c.w, 2)});
  ASSERT_TRUE(y.ok()) << y.status();
  const Shape y_shape = (*y)[0].shape();

  Attrs input_attrs = c.attrs;
  input_attrs["input_shape"] = Attribute::Ints(c.x);
  Compare(LasgdNode("ConvGradInput", 2, 1, input_attrs),
          {RandomTensor(y_shape, 3), RandomTensor(c.w, 2)}, "onednn");

  Attrs weight_attrs = c.attrs;
  weight_attrs["kernel_shape"] = Attribute::Ints(Shape(c.w.begin() + 2, c.w.end()));
  Compare(LasgdNode("ConvGradWeight", 2, 2, weight_attrs),
          {RandomTensor(c.x, 1), RandomTensor(y_shape, 3)}, "onednn");
  Compare(LasgdNode("ConvGradWeight", 2, 1, weight_attrs),
          {RandomTensor(c.x, 1), RandomTensor(y_shape, 3)}, "onednn");
  if (c.x.size() == 4 && c.x[1] == 1 && !c.attrs.count("group")) {
    // Compared with the reference above; here it must also have accepted.
    Compare(LasgdNode("ConvGradWeight", 2, 2, weight_attrs),
            {RandomTensor(c.x, 1), RandomTensor(y_shape, 3)}, "single_channel");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ConvGradKernelsTest,
    ::testing::Values(
        ConvGradCase{
            "Pads", {2, 8, 9, 9}, {16, 8, 3, 3}, {{"pads", Attribute::Ints({1, 1, 1, 1})}}},
        ConvGradCase{"StridedDilated",
                     {1, 4, 11, 10},
                     {6, 4, 3, 2},
                     {{"strides", Attribute::Ints({2, 3})},
                      {"dilations", Attribute::Ints({2, 1})},
                      {"pads", Attribute::Ints({1, 0, 2, 1})}}},
        ConvGradCase{"Group", {2, 6, 7, 7}, {9, 2, 3, 3}, {{"group", Attribute::Int(3)}}},
        ConvGradCase{"Depthwise",
                     {2, 8, 8, 8},
                     {8, 1, 3, 3},
                     {{"group", Attribute::Int(8)},
                      {"strides", Attribute::Ints({2, 2})},
                      {"pads", Attribute::Ints({1, 1, 1, 1})}}},
        ConvGradCase{"OneD", {3, 4, 12}, {5, 4, 3}, {{"strides", Attribute::Ints({2})}}},
        // One input channel: the weight gradient's single_channel kernel
        // (no padding, strides with padding at one end, dilation).
        ConvGradCase{"OneInputChannel",
                     {4, 1, 10, 10},
                     {8, 1, 3, 3},
                     {{"pads", Attribute::Ints({1, 1, 1, 1})}}},
        ConvGradCase{
            "OneInputChannelStrided",
            {3, 1, 9, 11},
            {5, 1, 3, 2},
            {{"strides", Attribute::Ints({2, 2})}, {"pads", Attribute::Ints({1, 0, 0, 1})}}},
        ConvGradCase{
            "OneInputChannelDilated",
            {2, 1, 12, 10},
            {3, 1, 3, 3},
            {{"dilations", Attribute::Ints({2, 3})}, {"pads", Attribute::Ints({2, 1, 0, 3})}}},
        ConvGradCase{"ThreeD", {1, 3, 5, 5, 4}, {4, 3, 2, 3, 2}, {}},
        ConvGradCase{
            "SameLower",
            {1, 3, 6, 7},
            {4, 3, 3, 3},
            {{"auto_pad", Attribute::String("SAME_LOWER")}, {"strides", Attribute::Ints({2, 2})}}}),
    [](const ::testing::TestParamInfo<ConvGradCase>& info) { return info.param.name; });

TEST(ConvGradInputTest, Float64UsesReference) {
  graph::Node node =
      LasgdNode("ConvGradInput", 2, 1, {{"input_shape", Attribute::Ints({1, 1, 3, 3})}});
  auto out = ops::EvaluateNode(node, 1,
                               {RandomTensor({1, 1, 2, 2}, 1, -1, 1, DataType::kFloat64),
                                RandomTensor({1, 1, 2, 2}, 2, -1, 1, DataType::kFloat64)},
                               {"onednn"});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(std::string(out.status().message()).find("float32"), std::string::npos);
  Compare(node,
          {RandomTensor({1, 1, 2, 2}, 1, -1, 1, DataType::kFloat64),
           RandomTensor({1, 1, 2, 2}, 2, -1, 1, DataType::kFloat64)},
          "reference");
}

TEST(ConvGradInputTest, BadInputs) {
  // dY does not have the forward output's shape.
  ExpectErrorContaining(
      LasgdNode("ConvGradInput", 2, 1, {{"input_shape", Attribute::Ints({1, 1, 3, 3})}}),
      {RandomTensor({1, 1, 3, 3}, 1), RandomTensor({1, 1, 2, 2}, 2)}, "dY has shape [1,1,3,3]");
  ExpectErrorContaining(LasgdNode("ConvGradInput", 2, 1),
                        {RandomTensor({1, 1, 2, 2}, 1), RandomTensor({1, 1, 2, 2}, 2)},
                        "input_shape");
  ExpectErrorContaining(LasgdNode("ConvGradWeight", 2, 1),
                        {RandomTensor({1, 1, 3, 3}, 1), RandomTensor({1, 1, 2, 2}, 2)},
                        "kernel_shape");
  ExpectErrorContaining(
      LasgdNode("ConvGradWeight", 2, 1,
                {{"kernel_shape", Attribute::Ints({2, 2})}, {"group", Attribute::Int(2)}}),
      {RandomTensor({1, 3, 3, 3}, 1), RandomTensor({1, 2, 2, 2}, 2)}, "group");
}

// ---- MaxPoolGrad / AveragePoolGrad ----

TEST(MaxPoolGradTest, RoutesToArgmaxFirstOnTies) {
  // Two 2x2 windows (stride 2) over a 2x4 plane: the first has its maximum
  // at (0, 1); the second is all 7s, so the first 7 gets the gradient.
  graph::Node node = LasgdNode("MaxPoolGrad", 2, 1,
                               {{"kernel_shape", Attribute::Ints({2, 2})},
                                {"strides", Attribute::Ints({2, 2})},
                                {"opset", Attribute::Int(12)}});
  auto out = Compare(
      node, {Floats({1, 5, 7, 7, 3, 2, 7, 7}, {1, 1, 2, 4}), Floats({10, 20}, {1, 1, 1, 2})}, "");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0, 10, 20, 0, 0, 0, 0, 0}, {1, 1, 2, 4}), out[0]));
}

TEST(MaxPoolGradTest, TwoByTwoTiesMatchReference) {
  // Pseudo-random 0s and 1s make most 2x2 windows hold tied maxima (in the
  // same row and across rows), which the fast kernel's 2x2 path must route
  // exactly as the reference does.
  std::vector<float> x(2 * 3 * 6 * 7), dy(2 * 3 * 3 * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(((i * 2654435761u) >> 7) % 2);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>(i) + 1;
  graph::Node node = LasgdNode("MaxPoolGrad", 2, 1,
                               {{"kernel_shape", Attribute::Ints({2, 2})},
                                {"strides", Attribute::Ints({2, 2})},
                                {"opset", Attribute::Int(12)}});
  Compare(node, {Floats(x, {2, 3, 6, 7}), Floats(dy, {2, 3, 3, 3})}, "fast");
}

TEST(AveragePoolGradTest, SharesEvenlyAndCountsPadding) {
  // 2x2 windows, stride 1, over 3x3: each dY share is 1/4.
  graph::Node node = LasgdNode("AveragePoolGrad", 1, 1,
                               {{"kernel_shape", Attribute::Ints({2, 2})},
                                {"input_shape", Attribute::Ints({1, 1, 3, 3})},
                                {"opset", Attribute::Int(11)}});
  auto out = Compare(node, {Floats({1, 1, 1, 1}, {1, 1, 2, 2})}, "onednn");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(
      TensorsNear(Floats({.25f, .5f, .25f, .5f, 1, .5f, .25f, .5f, .25f}, {1, 1, 3, 3}), out[0]));

  // 1-D, kernel 2, pad 1 at the start: window 0 covers (pad, x0). Excluding
  // the pad x0 gets all of dY[0]; including it, half.
  Attrs attrs = {{"kernel_shape", Attribute::Ints({2})},
                 {"pads", Attribute::Ints({1, 0})},
                 {"input_shape", Attribute::Ints({1, 1, 2})},
                 {"opset", Attribute::Int(11)}};
  out = Compare(LasgdNode("AveragePoolGrad", 1, 1, attrs), {Floats({4, 2}, {1, 1, 2})}, "onednn");
  EXPECT_TRUE(TensorsNear(Floats({5, 1}, {1, 1, 2}), out[0]));
  attrs["count_include_pad"] = Attribute::Int(1);
  out = Compare(LasgdNode("AveragePoolGrad", 1, 1, attrs), {Floats({4, 2}, {1, 1, 2})}, "onednn");
  EXPECT_TRUE(TensorsNear(Floats({3, 1}, {1, 1, 2}), out[0]));
}

struct PoolGradCase {
  const char* name;
  Shape x;
  Attrs attrs;
};

class PoolGradKernelsTest : public ::testing::TestWithParam<PoolGradCase> {};

TEST_P(PoolGradKernelsTest, FastAndOnednnMatchReference) {
  const PoolGradCase& c = GetParam();
  for (const char* op : {"MaxPool", "AveragePool"}) {
    SCOPED_TRACE(op);
    const int64_t opset = c.attrs.count("dilations") ? 19 : 12;
    auto y = ops::EvaluateNode(MakeNode(op, 1, 1, c.attrs), opset, {RandomTensor(c.x, 1)});
    ASSERT_TRUE(y.ok()) << y.status();
    Attrs attrs = c.attrs;
    attrs["opset"] = Attribute::Int(opset);
    const bool max = std::string(op) == "MaxPool";
    // oneDNN takes AveragePoolGrad except count_include_pad with a ceil_mode
    // overhang; "fast" takes everything (and is compared too).
    const bool onednn = !(c.attrs.count("ceil_mode") && c.attrs.count("count_include_pad"));
    if (max) {
      Compare(LasgdNode("MaxPoolGrad", 2, 1, attrs),
              {RandomTensor(c.x, 1), RandomTensor((*y)[0].shape(), 2)}, "fast");
    } else {
      attrs["input_shape"] = Attribute::Ints(c.x);
      Compare(LasgdNode("AveragePoolGrad", 1, 1, attrs), {RandomTensor((*y)[0].shape(), 2)},
              onednn ? "onednn" : "");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, PoolGradKernelsTest,
    ::testing::Values(
        PoolGradCase{"Stride2Pads",
                     {2, 3, 9, 9},
                     {{"kernel_shape", Attribute::Ints({3, 3})},
                      {"strides", Attribute::Ints({2, 2})},
                      {"pads", Attribute::Ints({1, 1, 1, 1})}}},
        PoolGradCase{"CeilMode",
                     {1, 2, 8, 8},
                     {{"kernel_shape", Attribute::Ints({3, 3})},
                      {"strides", Attribute::Ints({2, 2})},
                      {"ceil_mode", Attribute::Int(1)}}},
        PoolGradCase{"CeilModeIncludePad",
                     {1, 2, 8, 8},
                     {{"kernel_shape", Attribute::Ints({3, 3})},
                      {"strides", Attribute::Ints({2, 2})},
                      {"ceil_mode", Attribute::Int(1)},
                      {"count_include_pad", Attribute::Int(1)}}},
        PoolGradCase{
            "Dilated",
            {1, 2, 9, 8},
            {{"kernel_shape", Attribute::Ints({2, 2})}, {"dilations", Attribute::Ints({2, 2})}}},
        PoolGradCase{"ThreeD", {1, 2, 4, 6, 6}, {{"kernel_shape", Attribute::Ints({2, 2, 2})}}},
        // 2x2 at stride 2: the fast kernel's non-overlapping path, with an
        // even plane, an odd one (a last row and column no window reads)
        // and ceil_mode's partial windows (the general path).
        PoolGradCase{
            "TwoByTwoEven",
            {2, 3, 8, 6},
            {{"kernel_shape", Attribute::Ints({2, 2})}, {"strides", Attribute::Ints({2, 2})}}},
        PoolGradCase{
            "TwoByTwoOdd",
            {1, 2, 7, 9},
            {{"kernel_shape", Attribute::Ints({2, 2})}, {"strides", Attribute::Ints({2, 2})}}},
        PoolGradCase{"TwoByTwoCeilMode",
                     {1, 2, 7, 9},
                     {{"kernel_shape", Attribute::Ints({2, 2})},
                      {"strides", Attribute::Ints({2, 2})},
                      {"ceil_mode", Attribute::Int(1)}}}),
    [](const ::testing::TestParamInfo<PoolGradCase>& info) { return info.param.name; });

TEST(PoolGradTest, BadInputs) {
  ExpectErrorContaining(LasgdNode("MaxPoolGrad", 2, 1, {{"kernel_shape", Attribute::Ints({2, 2})}}),
                        {RandomTensor({1, 1, 4, 4}, 1), RandomTensor({1, 1, 3, 3}, 2)}, "opset");
  ExpectErrorContaining(
      LasgdNode("MaxPoolGrad", 2, 1,
                {{"kernel_shape", Attribute::Ints({2, 2})}, {"opset", Attribute::Int(12)}}),
      {RandomTensor({1, 1, 4, 4}, 1), RandomTensor({1, 1, 2, 2}, 2)}, "dY has shape [1,1,2,2]");
  ExpectErrorContaining(
      LasgdNode("AveragePoolGrad", 1, 1,
                {{"kernel_shape", Attribute::Ints({2, 2})}, {"opset", Attribute::Int(12)}}),
      {RandomTensor({1, 1, 3, 3}, 2)}, "input_shape");
}

// ---- BatchNormGrad ----

TEST(BatchNormGradTest, InferenceModeScalesByInvStd) {
  // scale 2, var 3, epsilon 1: dX = dY * 2 / sqrt(4) = dY; dB = sum dY;
  // dscale = sum dY * (x - mean) / 2.
  graph::Node node =
      LasgdNode("BatchNormGrad", 5, 3,
                {{"training_mode", Attribute::Int(0)}, {"epsilon", Attribute::Float(1.f)}});
  auto out = Compare(node,
                     {Floats({1, 2, 3, 4}, {2, 1, 2}), Floats({1, 3, 5, 7}, {2, 1, 2}),
                      Floats({2}, {1}), Floats({1}, {1}), Floats({3}, {1})},
                     "fast");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Floats({1, 2, 3, 4}, {2, 1, 2}), out[0]));
  // (1*0 + 2*2 + 3*4 + 4*6) / 2 = 20
  EXPECT_TRUE(TensorsNear(Floats({20}, {1}), out[1]));
  EXPECT_TRUE(TensorsNear(Floats({10}, {1}), out[2]));
}

TEST(BatchNormGradTest, TrainingModeConstantGradientCancels) {
  // With batch statistics, a constant dY moves every x̂ equally: dX = 0,
  // dscale = Σ x̂ = 0, dB = Σ dY.
  graph::Node node = LasgdNode("BatchNormGrad", 3, 3, {{"training_mode", Attribute::Int(1)}});
  Tensor dy = Floats(std::vector<float>(12, 0.5f), {3, 2, 2});
  auto out = Compare(node, {dy, RandomTensor({3, 2, 2}, 5), Floats({1.5f, -1}, {2})}, "fast");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Floats(std::vector<float>(12, 0.f), {3, 2, 2}), out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats({0, 0}, {2}), out[1], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats({3, 3}, {2}), out[2]));
}

TEST(BatchNormGradTest, FastMatchesReference) {
  for (int training : {0, 1}) {
    SCOPED_TRACE(training);
    graph::Node node =
        LasgdNode("BatchNormGrad", 5, 3, {{"training_mode", Attribute::Int(training)}});
    Compare(node,
            {RandomTensor({4, 8, 5, 5}, 1), RandomTensor({4, 8, 5, 5}, 2), RandomTensor({8}, 3),
             RandomTensor({8}, 4), RandomTensor({8}, 5, 0.5f, 2.f)},
            "fast");
  }
}

TEST(BatchNormGradTest, NonSpatialIsPerPositionStatistics) {
  // spatial=0 on X [N, C, D] is spatial=1 on X viewed as [N, C*D].
  for (int training : {0, 1}) {
    SCOPED_TRACE(training);
    Tensor dy = RandomTensor({3, 2, 2}, 1), x = RandomTensor({3, 2, 2}, 2);
    std::vector<Tensor> stats = {RandomTensor({4}, 3), RandomTensor({4}, 4),
                                 RandomTensor({4}, 5, 0.5f, 2.f)};
    auto per_position = Compare(
        LasgdNode("BatchNormGrad", 5, 3,
                  {{"training_mode", Attribute::Int(training)}, {"spatial", Attribute::Int(0)}}),
        {dy, x, stats[0], stats[1], stats[2]}, "fast");
    auto flat =
        Compare(LasgdNode("BatchNormGrad", 5, 3, {{"training_mode", Attribute::Int(training)}}),
                {dy.Reshaped({3, 4}), x.Reshaped({3, 4}), stats[0], stats[1], stats[2]}, "fast");
    ASSERT_EQ(per_position.size(), 3u);
    ASSERT_EQ(flat.size(), 3u);
    EXPECT_TRUE(TensorsNear(flat[0].Reshaped({3, 2, 2}), per_position[0]));
    EXPECT_TRUE(TensorsNear(flat[1], per_position[1]));
    EXPECT_TRUE(TensorsNear(flat[2], per_position[2]));
  }
}

TEST(BatchNormGradTest, BadInputs) {
  ExpectErrorContaining(
      LasgdNode("BatchNormGrad", 3, 3),
      {RandomTensor({2, 3, 2}, 1), RandomTensor({2, 3, 2}, 2), RandomTensor({2}, 3)},
      "scale has shape [2]");
  ExpectErrorContaining(
      LasgdNode("BatchNormGrad", 3, 3, {{"training_mode", Attribute::Int(0)}}),
      {RandomTensor({2, 3, 2}, 1), RandomTensor({2, 3, 2}, 2), RandomTensor({3}, 3)},
      "mean and var");
  ExpectErrorContaining(
      LasgdNode("BatchNormGrad", 3, 3),
      {RandomTensor({2, 3, 2}, 1), RandomTensor({2, 3, 3}, 2), RandomTensor({3}, 3)}, "dY and X");
}

// ---- LayerNormGrad / InstanceNormGrad ----

TEST(LayerNormGradTest, ConstantGradientCancels) {
  graph::Node node = LasgdNode("LayerNormGrad", 4, 3);
  auto out = Compare(node,
                     {Floats(std::vector<float>(6, 1.f), {2, 3}), RandomTensor({2, 3}, 1),
                      Floats({1, 1, 1}, {3}), Floats({0, 0, 0}, {3})},
                     "fast");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Floats(std::vector<float>(6, 0.f), {2, 3}), out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats({2, 2, 2}, {3}), out[2]));
}

TEST(LayerNormGradTest, FastMatchesReference) {
  Compare(LasgdNode("LayerNormGrad", 4, 3, {{"axis", Attribute::Int(1)}}),
          {RandomTensor({64, 4, 32}, 1), RandomTensor({64, 4, 32}, 2), RandomTensor({4, 32}, 3),
           RandomTensor({4, 32}, 4)},
          "fast");
  // B varying over a non-normalized axis: the fast kernel declines.
  auto out = ops::EvaluateNode(LasgdNode("LayerNormGrad", 4, 3), 1,
                               {RandomTensor({2, 3, 4}, 1), RandomTensor({2, 3, 4}, 2),
                                RandomTensor({4}, 3), RandomTensor({3, 1}, 4)},
                               {"fast"});
  EXPECT_FALSE(out.ok());
}

TEST(LayerNormGradTest, BadInputs) {
  ExpectErrorContaining(LasgdNode("LayerNormGrad", 3, 2, {{"axis", Attribute::Int(3)}}),
                        {RandomTensor({2, 3}, 1), RandomTensor({2, 3}, 2), RandomTensor({3}, 3)},
                        "axis");
  ExpectErrorContaining(LasgdNode("LayerNormGrad", 3, 2),
                        {RandomTensor({2, 3}, 1), RandomTensor({2, 3}, 2), RandomTensor({2}, 3)},
                        "does not broadcast");
}

TEST(InstanceNormGradTest, ConstantGradientCancels) {
  graph::Node node = LasgdNode("InstanceNormGrad", 3, 3);
  auto out = Compare(
      node,
      {Floats(std::vector<float>(8, 2.f), {2, 1, 4}), RandomTensor({2, 1, 4}, 1), Floats({3}, {1})},
      "");
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Floats(std::vector<float>(8, 0.f), {2, 1, 4}), out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats({16}, {1}), out[2]));
}

// ---- Loss gradients ----

TEST(SoftmaxCrossEntropyLossGradTest, MeanOfTwoSamples) {
  // Equal scores: p = 1/2 everywhere; mean over 2 samples halves dloss.
  // dscores = dloss / 2 * (p - onehot).
  graph::Node node = LasgdNode("SoftmaxCrossEntropyLossGrad", 3, 1);
  auto out = Compare(
      node, {Floats({2}, {}), Floats({0, 0, 0, 0}, {2, 2}), Tensor::FromInt64s({0, 1}, {2})}, "");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({-0.5f, 0.5f, 0.5f, -0.5f}, {2, 2}), out[0]));
}

TEST(NegativeLogLikelihoodLossGradTest, WeightedMeanWithIgnoredSample) {
  // Weights [1, 3]; sample 2 is ignored; mean divides by 1 + 3.
  graph::Node node =
      LasgdNode("NegativeLogLikelihoodLossGrad", 3, 1,
                {{"ignore_index", Attribute::Int(-100)}, {"input_shape", Attribute::Ints({3, 2})}});
  auto out = Compare(
      node, {Floats({4}, {}), Tensor::FromInt64s({1, 0, -100}, {3}), Floats({1, 3}, {2})}, "");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0, -3, -1, 0, 0, 0}, {3, 2}), out[0]));
}

TEST(LossGradTest, BadInputs) {
  ExpectErrorContaining(
      LasgdNode("SoftmaxCrossEntropyLossGrad", 3, 1, {{"reduction", Attribute::String("avg")}}),
      {Floats({1}, {}), Floats({0, 0}, {1, 2}), Tensor::FromInt64s({0}, {1})}, "reduction");
  ExpectErrorContaining(LasgdNode("SoftmaxCrossEntropyLossGrad", 3, 1),
                        {Floats({1}, {}), Floats({0, 0}, {1, 2}), Tensor::FromInt64s({0, 1}, {2})},
                        "labels must be");
  ExpectErrorContaining(LasgdNode("SoftmaxCrossEntropyLossGrad", 3, 1),
                        {Floats({1}, {}), Floats({0, 0}, {1, 2}), Tensor::FromInt64s({5}, {1})},
                        "label value 5");
  ExpectErrorContaining(LasgdNode("NegativeLogLikelihoodLossGrad", 2, 1),
                        {Floats({1}, {}), Tensor::FromInt64s({0}, {1})}, "input_shape");
}

}  // namespace
}  // namespace lasgd
