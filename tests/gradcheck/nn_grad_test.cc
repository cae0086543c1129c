// Finite-difference checks (float64) of the gradient builders of the conv,
// pool, norm, matmul and loss families (ops/{conv,pool,norm,matmul,loss}_grad.cc)
// and of the com.lasgd backward ops they emit (ops/*_backward.cc).
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gradcheck_util.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::CheckGradients;
using testing::GradCheckOptions;
using testing::MakeNode;
using Attrs = std::map<std::string, Attribute>;

// The oldest opset checked. Opset 7 itself cannot be: the harness's loss sums
// outputs with com.lasgd.ReduceSumTo, whose own gradient emits Expand
// (opset 8+). Opsets 7 and 8 share every schema used here.
constexpr int64_t kOldOpset = 8;

Tensor Random(Shape shape, uint32_t seed, double lo = -1, double hi = 1) {
  return testing::RandomTensor(std::move(shape), seed, static_cast<float>(lo),
                               static_cast<float>(hi), DataType::kFloat64);
}

GradCheckOptions Wrt(std::vector<int> wrt) {
  GradCheckOptions o;
  o.wrt = std::move(wrt);
  return o;
}

// ---- Conv ----

struct ConvCase {
  const char* name;
  Shape x, w;
  bool bias;
  Attrs attrs;
};

class ConvGradTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradTest, MatchesFiniteDifferences) {
  const ConvCase& c = GetParam();
  graph::Node node = MakeNode("Conv", c.bias ? 3 : 2, 1, c.attrs);
  std::vector<Tensor> inputs = {Random(c.x, 1), Random(c.w, 2)};
  if (c.bias) inputs.push_back(Random({c.w[0]}, 3));
  EXPECT_TRUE(CheckGradients(node, 13, inputs));
}

INSTANTIATE_TEST_SUITE_P(
    Configs, ConvGradTest,
    ::testing::Values(
        ConvCase{"Pads1Bias",
                 {2, 3, 5, 5},
                 {4, 3, 3, 3},
                 true,
                 {{"pads", Attribute::Ints({1, 1, 1, 1})}}},
        ConvCase{"Stride2AsymPadsDilated",
                 {1, 2, 7, 6},
                 {3, 2, 2, 3},
                 false,
                 {{"strides", Attribute::Ints({2, 2})},
                  {"pads", Attribute::Ints({0, 1, 1, 0})},
                  {"dilations", Attribute::Ints({2, 1})}}},
        ConvCase{"Group2", {1, 4, 6, 5}, {6, 2, 3, 2}, true, {{"group", Attribute::Int(2)}}},
        ConvCase{"Depthwise",
                 {2, 3, 5, 5},
                 {3, 1, 3, 3},
                 true,
                 {{"group", Attribute::Int(3)},
                  {"strides", Attribute::Ints({2, 2})},
                  {"pads", Attribute::Ints({1, 1, 1, 1})}}},
        ConvCase{"OneD",
                 {2, 2, 7},
                 {3, 2, 3},
                 true,
                 {{"strides", Attribute::Ints({2})}, {"pads", Attribute::Ints({1, 1})}}},
        ConvCase{"ThreeD",
                 {1, 2, 4, 4, 3},
                 {2, 2, 2, 2, 2},
                 true,
                 {{"pads", Attribute::Ints({1, 0, 1, 0, 1, 0})}}},
        ConvCase{
            "SameUpperStride2",
            {1, 2, 6, 5},
            {3, 2, 3, 3},
            false,
            {{"auto_pad", Attribute::String("SAME_UPPER")}, {"strides", Attribute::Ints({2, 2})}}}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return info.param.name; });

TEST(ConvGradTest, OnlyBiasNeedsGradient) {
  graph::Node node = MakeNode("Conv", 3, 1, {{"pads", Attribute::Ints({1, 1, 1, 1})}});
  EXPECT_TRUE(CheckGradients(
      node, 11, {Random({2, 3, 4, 4}, 1), Random({2, 3, 3, 3}, 2), Random({2}, 3)}, Wrt({2})));
}

TEST(ConvGradTest, OnlyInputNeedsGradient) {
  graph::Node node = MakeNode("Conv", 2, 1, {{"strides", Attribute::Ints({2, 1})}});
  EXPECT_TRUE(CheckGradients(node, kOldOpset, {Random({1, 2, 5, 4}, 1), Random({3, 2, 2, 2}, 2)},
                             Wrt({0})));
}

// ---- ConvTranspose ----

class ConvTransposeGradTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTransposeGradTest, MatchesFiniteDifferences) {
  const ConvCase& c = GetParam();
  graph::Node node = MakeNode("ConvTranspose", c.bias ? 3 : 2, 1, c.attrs);
  const int64_t group = c.attrs.count("group") ? c.attrs.at("group").i : 1;
  std::vector<Tensor> inputs = {Random(c.x, 1), Random(c.w, 2)};
  if (c.bias) inputs.push_back(Random({c.w[1] * group}, 3));
  EXPECT_TRUE(CheckGradients(node, 13, inputs));
}

INSTANTIATE_TEST_SUITE_P(Configs, ConvTransposeGradTest,
                         ::testing::Values(ConvCase{"Stride2PadsOutputPadding",
                                                    {1, 2, 3, 3},
                                                    {2, 3, 3, 3},
                                                    true,
                                                    {{"strides", Attribute::Ints({2, 2})},
                                                     {"pads", Attribute::Ints({1, 1, 1, 1})},
                                                     {"output_padding", Attribute::Ints({1, 1})}}},
                                           ConvCase{"Group2",
                                                    {1, 4, 3, 4},
                                                    {4, 1, 2, 2},
                                                    true,
                                                    {{"group", Attribute::Int(2)},
                                                     {"strides", Attribute::Ints({1, 2})}}},
                                           ConvCase{"OneDDilated",
                                                    {2, 2, 4},
                                                    {2, 3, 3},
                                                    false,
                                                    {{"dilations", Attribute::Ints({2})},
                                                     {"pads", Attribute::Ints({1, 0})}}},
                                           ConvCase{"OutputShape",
                                                    {1, 1, 3, 3},
                                                    {1, 2, 3, 3},
                                                    true,
                                                    {{"strides", Attribute::Ints({2, 2})},
                                                     {"output_shape", Attribute::Ints({6, 7})}}}),
                         [](const ::testing::TestParamInfo<ConvCase>& info) {
                           return info.param.name;
                         });

// ---- Pooling ----

struct PoolCase {
  const char* name;
  const char* op;
  int64_t opset;
  Shape x;
  Attrs attrs;
  int outputs = 1;
};

class PoolGradTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolGradTest, MatchesFiniteDifferences) {
  const PoolCase& c = GetParam();
  graph::Node node = MakeNode(c.op, 1, c.outputs, c.attrs);
  GradCheckOptions options;
  options.max_elements_per_input = 0;
  EXPECT_TRUE(CheckGradients(node, c.opset, {Random(c.x, 11)}, options));
}

Attrs PoolAttrs(Shape kernel, Shape strides = {}, Shape pads = {}) {
  Attrs a = {{"kernel_shape", Attribute::Ints(kernel)}};
  if (!strides.empty()) a["strides"] = Attribute::Ints(strides);
  if (!pads.empty()) a["pads"] = Attribute::Ints(pads);
  return a;
}

Attrs With(Attrs a, const std::string& name, Attribute value) {
  a[name] = std::move(value);
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Configs, PoolGradTest,
    ::testing::Values(
        PoolCase{
            "MaxStride2Pads", "MaxPool", 12, {2, 2, 5, 5}, PoolAttrs({3, 3}, {2, 2}, {1, 1, 1, 1})},
        PoolCase{"MaxCeilMode",
                 "MaxPool",
                 10,
                 {1, 2, 6, 6},
                 With(PoolAttrs({3, 3}, {2, 2}), "ceil_mode", Attribute::Int(1))},
        PoolCase{"MaxDilated",
                 "MaxPool",
                 12,
                 {1, 1, 7, 7},
                 With(PoolAttrs({2, 2}), "dilations", Attribute::Ints({2, 2}))},
        PoolCase{"MaxWithIndices", "MaxPool", 8, {1, 2, 4, 4}, PoolAttrs({2, 2}, {2, 2}), 2},
        PoolCase{"MaxOneDSameUpper",
                 "MaxPool",
                 11,
                 {2, 3, 8},
                 With(PoolAttrs({3}, {2}), "auto_pad", Attribute::String("SAME_UPPER"))},
        PoolCase{"MaxOpset8",
                 "MaxPool",
                 kOldOpset,
                 {1, 2, 5, 5},
                 PoolAttrs({2, 2}, {1, 1}, {0, 0, 1, 1})},
        PoolCase{"MaxThreeD", "MaxPool", 13, {1, 1, 4, 4, 4}, PoolAttrs({2, 2, 2}, {2, 1, 2})},
        PoolCase{"AvgExcludePad",
                 "AveragePool",
                 11,
                 {2, 2, 5, 5},
                 PoolAttrs({3, 3}, {2, 2}, {1, 1, 1, 1})},
        PoolCase{
            "AvgIncludePad",
            "AveragePool",
            11,
            {2, 2, 5, 5},
            With(PoolAttrs({3, 3}, {2, 2}, {1, 1, 1, 1}), "count_include_pad", Attribute::Int(1))},
        PoolCase{"AvgCeilIncludePad",
                 "AveragePool",
                 19,
                 {1, 2, 6, 6},
                 With(With(PoolAttrs({3, 3}, {2, 2}, {1, 1, 0, 0}), "ceil_mode", Attribute::Int(1)),
                      "count_include_pad", Attribute::Int(1))},
        PoolCase{"AvgCeilThreeD",
                 "AveragePool",
                 10,
                 {1, 1, 5, 4, 5},
                 With(PoolAttrs({2, 2, 2}, {2, 2, 2}), "ceil_mode", Attribute::Int(1))},
        PoolCase{"AvgDilated",
                 "AveragePool",
                 19,
                 {1, 2, 7, 6},
                 With(PoolAttrs({2, 2}, {1, 2}), "dilations", Attribute::Ints({2, 2}))},
        PoolCase{"AvgOpset8SameLower",
                 "AveragePool",
                 kOldOpset,
                 {1, 2, 5, 5},
                 With(PoolAttrs({2, 2}, {2, 2}), "auto_pad", Attribute::String("SAME_LOWER"))},
        PoolCase{"GlobalAverage", "GlobalAveragePool", 13, {2, 3, 4, 5}, {}},
        PoolCase{"GlobalAverageOneD", "GlobalAveragePool", kOldOpset, {2, 3, 4}, {}},
        PoolCase{"GlobalAverageNoSpatial", "GlobalAveragePool", 13, {2, 3}, {}},
        PoolCase{"GlobalMax", "GlobalMaxPool", 13, {2, 3, 4, 5}, {}},
        PoolCase{"GlobalMaxThreeD", "GlobalMaxPool", kOldOpset, {1, 2, 3, 2, 3}, {}}),
    [](const ::testing::TestParamInfo<PoolCase>& info) { return info.param.name; });

// ---- BatchNormalization ----

std::vector<Tensor> BatchNormInputs(Shape x, int64_t channels) {
  return {Random(x, 21), Random({channels}, 22, 0.5, 1.5), Random({channels}, 23),
          Random({channels}, 24), Random({channels}, 25, 0.5, 2.0)};
}

TEST(BatchNormGradTest, TrainingModeOpset15) {
  graph::Node node = MakeNode("BatchNormalization", 5, 1, {{"training_mode", Attribute::Int(1)}});
  EXPECT_TRUE(CheckGradients(node, 15, BatchNormInputs({4, 3, 2, 3}, 3), Wrt({0, 1, 2})));
}

TEST(BatchNormGradTest, TrainingMode2dInput) {
  graph::Node node =
      MakeNode("BatchNormalization", 5, 1,
               {{"training_mode", Attribute::Int(1)}, {"epsilon", Attribute::Float(0.01f)}});
  EXPECT_TRUE(CheckGradients(node, 14, BatchNormInputs({5, 3}, 3), Wrt({0, 1, 2})));
}

TEST(BatchNormGradTest, TrainingModeOpset12ByOutputs) {
  // Opsets 9-13 train when the running statistics are requested. With
  // momentum 1 they equal the input statistics, so they do not depend on X
  // and the loss's weighted sum over them adds nothing to the gradients.
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"momentum", Attribute::Float(1.f)}});
  EXPECT_TRUE(CheckGradients(node, 12, BatchNormInputs({3, 2, 3, 2}, 2), Wrt({0, 1, 2})));
}

TEST(BatchNormGradTest, InferenceMode) {
  graph::Node node = MakeNode("BatchNormalization", 5, 1);
  EXPECT_TRUE(CheckGradients(node, 14, BatchNormInputs({2, 3, 3, 2}, 3), Wrt({0, 1, 2})));
  EXPECT_TRUE(CheckGradients(node, 9, BatchNormInputs({2, 3, 4}, 3), Wrt({0, 1, 2})));
}

// spatial=0: every (channel, position) pair has its own statistics.
// Disabled: spatial exists at opsets 7 and 8 (BatchNormalization-7), but the
// forward shape function (ops/norm.cc) accepts it at opset 7 only, and the
// harness cannot run opset 7 (see kOldOpset). BatchNormGrad's spatial=0 path
// is covered by tests/unit/ops_nn_backward_test.cc.
TEST(BatchNormGradTest, DISABLED_Opset8NonSpatial) {
  graph::Node node = MakeNode("BatchNormalization", 5, 1, {{"spatial", Attribute::Int(0)}});
  EXPECT_TRUE(CheckGradients(node, kOldOpset, BatchNormInputs({3, 2, 2}, 4), Wrt({0, 1, 2})));
}

// ---- LayerNormalization / InstanceNormalization ----

TEST(LayerNormGradTest, LastAxis) {
  graph::Node node = MakeNode("LayerNormalization", 3, 1);
  EXPECT_TRUE(CheckGradients(node, 17, {Random({2, 3, 4}, 31), Random({4}, 32), Random({4}, 33)}));
}

TEST(LayerNormGradTest, AxisOneNoBiasEpsilon) {
  graph::Node node = MakeNode("LayerNormalization", 2, 1,
                              {{"axis", Attribute::Int(1)}, {"epsilon", Attribute::Float(0.1f)}});
  EXPECT_TRUE(CheckGradients(node, 17, {Random({2, 3, 4}, 31), Random({3, 4}, 32)}));
}

TEST(LayerNormGradTest, BroadcastScaleAndBias) {
  // Scale [1, 4] and B [3, 1] broadcast over X [2, 3, 4]; B varies over a
  // non-normalized axis (the reference kernel's general path).
  graph::Node node = MakeNode("LayerNormalization", 3, 1);
  EXPECT_TRUE(
      CheckGradients(node, 17, {Random({2, 3, 4}, 31), Random({1, 4}, 32), Random({3, 1}, 33)}));
}

TEST(InstanceNormGradTest, FourD) {
  graph::Node node =
      MakeNode("InstanceNormalization", 3, 1, {{"epsilon", Attribute::Float(0.01f)}});
  EXPECT_TRUE(CheckGradients(node, kOldOpset,
                             {Random({2, 3, 4, 3}, 41), Random({3}, 42), Random({3}, 43)}));
}

// ---- MatMul / Gemm ----

struct MatMulCase {
  const char* name;
  Shape a, b;
};

class MatMulGradTest : public ::testing::TestWithParam<MatMulCase> {};

TEST_P(MatMulGradTest, MatchesFiniteDifferences) {
  const MatMulCase& c = GetParam();
  graph::Node node = MakeNode("MatMul", 2, 1);
  EXPECT_TRUE(CheckGradients(node, 13, {Random(c.a, 51), Random(c.b, 52)}));
}

INSTANTIATE_TEST_SUITE_P(
    Configs, MatMulGradTest,
    ::testing::Values(MatMulCase{"TwoD", {3, 4}, {4, 5}}, MatMulCase{"BatchedA", {2, 3, 4}, {4, 5}},
                      MatMulCase{"BothBatched", {2, 3, 4}, {2, 4, 5}},
                      MatMulCase{"BroadcastBatch", {2, 1, 3, 4}, {3, 4, 2}},
                      MatMulCase{"BatchedB", {3, 4}, {2, 4, 5}}, MatMulCase{"VectorA", {4}, {4, 5}},
                      MatMulCase{"VectorB", {3, 4}, {4}}, MatMulCase{"Dot", {4}, {4}},
                      MatMulCase{"BatchedAVectorB", {2, 3, 4}, {4}},
                      MatMulCase{"VectorABatchedB", {4}, {2, 4, 3}}),
    [](const ::testing::TestParamInfo<MatMulCase>& info) { return info.param.name; });

struct GemmCase {
  const char* name;
  int64_t opset;
  bool trans_a, trans_b;
  Shape c;  // {} with has_c = false: no C
  bool has_c;
  float alpha, beta;
};

class GemmGradTest : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmGradTest, MatchesFiniteDifferences) {
  const GemmCase& c = GetParam();
  const int64_t m = 3, k = 4, n = 5;
  Attrs attrs = {{"transA", Attribute::Int(c.trans_a)},
                 {"transB", Attribute::Int(c.trans_b)},
                 {"alpha", Attribute::Float(c.alpha)},
                 {"beta", Attribute::Float(c.beta)}};
  graph::Node node = MakeNode("Gemm", c.has_c ? 3 : 2, 1, attrs);
  std::vector<Tensor> inputs = {Random(c.trans_a ? Shape{k, m} : Shape{m, k}, 61),
                                Random(c.trans_b ? Shape{n, k} : Shape{k, n}, 62)};
  if (c.has_c) inputs.push_back(Random(c.c, 63));
  EXPECT_TRUE(CheckGradients(node, c.opset, inputs));
}

INSTANTIATE_TEST_SUITE_P(
    Configs, GemmGradTest,
    ::testing::Values(GemmCase{"Plain", 13, false, false, {5}, true, 1.f, 1.f},
                      GemmCase{"TransA", 13, true, false, {3, 5}, true, 0.7f, 1.3f},
                      GemmCase{"TransB", 9, false, true, {3, 1}, true, 1.f, 0.5f},
                      GemmCase{"TransAB", kOldOpset, true, true, {1}, true, 2.f, 1.f},
                      GemmCase{"ScalarC", kOldOpset, false, false, {}, true, 1.f, 2.f},
                      GemmCase{"NoC", 13, true, true, {}, false, 0.5f, 1.f}),
    [](const ::testing::TestParamInfo<GemmCase>& info) { return info.param.name; });

// ---- Losses ----

struct LossCase {
  const char* name;
  const char* op;
  Shape x;
  std::vector<int64_t> labels;
  bool weights;
  Attrs attrs;
  int outputs = 1;
};

class LossGradTest : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossGradTest, MatchesFiniteDifferences) {
  const LossCase& c = GetParam();
  graph::Node node = MakeNode(c.op, c.weights ? 3 : 2, c.outputs, c.attrs);
  Shape label_shape = c.x;
  label_shape.erase(label_shape.begin() + 1);
  std::vector<Tensor> inputs = {Random(c.x, 71, -2, 2), Tensor::FromInt64s(c.labels, label_shape)};
  if (c.weights) inputs.push_back(Random({c.x[1]}, 72, 0.2, 2.0));
  GradCheckOptions options = Wrt({0});
  options.max_elements_per_input = 0;
  EXPECT_TRUE(CheckGradients(node, 13, inputs, options));
}

Attrs Reduction(const char* r) { return {{"reduction", Attribute::String(r)}}; }

INSTANTIATE_TEST_SUITE_P(
    Configs, LossGradTest,
    ::testing::Values(
        LossCase{"SceMean", "SoftmaxCrossEntropyLoss", {4, 3}, {0, 2, 1, 2}, false, {}},
        LossCase{"SceSumWeights",
                 "SoftmaxCrossEntropyLoss",
                 {4, 3},
                 {0, 2, 1, 2},
                 true,
                 Reduction("sum")},
        LossCase{"SceNoneSpatial",
                 "SoftmaxCrossEntropyLoss",
                 {2, 3, 2},
                 {0, 2, 1, 1},
                 false,
                 Reduction("none")},
        LossCase{"SceMeanWeightsIgnore",
                 "SoftmaxCrossEntropyLoss",
                 {3, 4, 2},
                 {0, -1, 3, 1, -1, 2},
                 true,
                 {{"ignore_index", Attribute::Int(-1)}}},
        LossCase{"SceWithLogProb", "SoftmaxCrossEntropyLoss", {4, 3}, {1, 2, 0, 0}, true, {}, 2},
        LossCase{"NllMean", "NegativeLogLikelihoodLoss", {4, 3}, {0, 2, 1, 2}, false, {}},
        LossCase{"NllSumWeights",
                 "NegativeLogLikelihoodLoss",
                 {4, 3},
                 {0, 2, 1, 2},
                 true,
                 Reduction("sum")},
        LossCase{"NllNoneSpatialIgnore",
                 "NegativeLogLikelihoodLoss",
                 {2, 3, 3},
                 {0, 1, 2, 1, 1, 0},
                 false,
                 {{"reduction", Attribute::String("none")}, {"ignore_index", Attribute::Int(1)}}},
        LossCase{"NllMeanWeightsIgnore",
                 "NegativeLogLikelihoodLoss",
                 {3, 4, 2},
                 {0, 3, 3, 1, 2, 2},
                 true,
                 {{"ignore_index", Attribute::Int(3)}}}),
    [](const ::testing::TestParamInfo<LossCase>& info) { return info.param.name; });

}  // namespace
}  // namespace lasgd
