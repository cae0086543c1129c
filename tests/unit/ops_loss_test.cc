// Tests of SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss against the
// spec's worked examples and numpy-computed values, plus bad inputs.
#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/evaluate_node.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

void ExpectError(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                 const std::vector<std::string>& fragments) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error";
  for (const std::string& fragment : fragments) {
    EXPECT_NE(std::string(out.status().message()).find(fragment), std::string::npos)
        << "missing '" << fragment << "' in: " << out.status();
  }
}

Tensor Labels32(const std::vector<int32_t>& values, Shape shape) {
  Tensor t = Tensor::Allocate(DataType::kInt32, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

// The NegativeLogLikelihoodLoss examples of the ONNX spec (N, C, d1 = 2, 3, 2).
Tensor NllInput() {
  return Tensor::FromFloats({1.0, 2.0, 2.0, 2.0, 3.0, 2.0, 0.0, 1.0, 2.0, 2.0, 1.0, 2.0},
                            {2, 3, 2});
}
Tensor NllTarget() { return Tensor::FromInt64s({2, 1, 0, 2}, {2, 2}); }
Tensor NllWeight() { return Tensor::FromFloats({0.2, 0.3, 0.1}, {3}); }

graph::Node Reduced(const std::string& op, int inputs, const std::string& reduction,
                    int outputs = 1) {
  return MakeNode(op, inputs, outputs, {{"reduction", Attribute::String(reduction)}});
}

TEST(NegativeLogLikelihoodLossTest, SpecExamples) {
  auto none = RunAllKernelsAndCompare(Reduced("NegativeLogLikelihoodLoss", 2, "none"), 13,
                                      {NllInput(), NllTarget()});
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({-3, -2, -0, -2}, {2, 2}), none[0], 0, 0));

  auto sum = RunAllKernelsAndCompare(Reduced("NegativeLogLikelihoodLoss", 3, "sum"), 13,
                                     {NllInput(), NllTarget(), NllWeight()});
  ASSERT_EQ(sum.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({-1.1f}, {}), sum[0], 1e-6, 1e-6));

  auto mean = RunAllKernelsAndCompare(Reduced("NegativeLogLikelihoodLoss", 3, "mean"), 12,
                                      {NllInput(), NllTarget(), NllWeight()});
  ASSERT_EQ(mean.size(), 1u);
  // The spec prints -1.57, rounded: sum -1.1 over weights 0.1+0.3+0.2+0.1.
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({-1.1f / 0.7f}, {}), mean[0], 1e-6, 1e-6));

  // Default reduction is mean: (-3 - 2 - 0 - 2) / 4.
  auto dflt = RunAllKernelsAndCompare(MakeNode("NegativeLogLikelihoodLoss", 2, 1), 13,
                                      {NllInput(), NllTarget()});
  ASSERT_EQ(dflt.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({-1.75f}, {}), dflt[0], 0, 0));
}

TEST(NegativeLogLikelihoodLossTest, WeightedMeanDividesByNonIgnoredWeights) {
  // Target [[2,1],[0,2]] with ignore_index 2: only (0,1)->class 1 (w 0.3,
  // input 2) and (1,0)->class 0 (w 0.2, input 0) count:
  // (-2*0.3 - 0*0.2) / (0.3 + 0.2) = -1.2
  graph::Node node =
      MakeNode("NegativeLogLikelihoodLoss", 3, 1, {{"ignore_index", Attribute::Int(2)}});
  auto out = RunAllKernelsAndCompare(node, 13, {NllInput(), NllTarget(), NllWeight()});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({-1.2f}, {}), out[0], 1e-6, 1e-6));

  // Without weights the mean counts non-ignored samples: (-2 - 0) / 2.
  auto unweighted = RunAllKernelsAndCompare(
      MakeNode("NegativeLogLikelihoodLoss", 2, 1, {{"ignore_index", Attribute::Int(2)}}), 13,
      {NllInput(), NllTarget()});
  ASSERT_EQ(unweighted.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({-1.f}, {}), unweighted[0], 0, 0));
}

TEST(NegativeLogLikelihoodLossTest, TwoDimensionalInputAndInt32Labels) {
  // (N, C) = (3, 2): loss = -input[n, t[n]]
  Tensor input = Tensor::FromFloats({-0.1, -2.0, -1.5, -0.3, -0.7, -0.8}, {3, 2});
  auto out = RunAllKernelsAndCompare(Reduced("NegativeLogLikelihoodLoss", 2, "none"), 13,
                                     {input, Labels32({0, 1, 1}, {3})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({0.1, 0.3, 0.8}, {3}), out[0], 1e-7, 1e-7));
}

// numpy, float64: scores (2,3,2) below, labels [[2,0],[1,-1]], weights
// [0.5,2,1], ignore_index -1; log_prob = x - max - log(sum(exp(x - max))) over axis 1.
Tensor SceScores() {
  return Tensor::FromFloats({1.0, 2.0, 0.5, -1.0, 3.0, 0.0, -2.0, 1.5, 0.0, 0.5, 1.0, 2.5},
                            {2, 3, 2});
}
const std::vector<float> kSceLogProb = {
    -2.196734096919617,   -0.16984601955628548, -2.696734096919617,  -3.1698460195562856,
    -0.19673409691961713, -2.1698460195562856,  -3.3490122167681866, -1.4076059644443804,
    -1.3490122167681866,  -2.4076059644443806,  -0.3490122167681865, -0.4076059644443804};

TEST(SoftmaxCrossEntropyLossTest, WeightsIgnoreIndexAndLogProb) {
  Tensor labels = Tensor::FromInt64s({2, 0, 1, -1}, {2, 2});
  Tensor weights = Tensor::FromFloats({0.5, 2.0, 1.0}, {3});
  auto node = [](const std::string& reduction) {
    return MakeNode(
        "SoftmaxCrossEntropyLoss", 3, 2,
        {{"reduction", Attribute::String(reduction)}, {"ignore_index", Attribute::Int(-1)}});
  };
  auto none = RunAllKernelsAndCompare(node("none"), 13, {SceScores(), labels, weights});
  ASSERT_EQ(none.size(), 2u);
  EXPECT_TRUE(
      TensorsNear(Tensor::FromFloats(
                      {0.19673409691961713, 0.08492300977814274, 2.6980244335363732, 0.0}, {2, 2}),
                  none[0], 1e-6, 1e-6));
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats(kSceLogProb, {2, 3, 2}), none[1], 1e-6, 1e-6));

  auto sum = RunAllKernelsAndCompare(node("sum"), 13, {SceScores(), labels, weights});
  ASSERT_EQ(sum.size(), 2u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({2.9796815402341332}, {}), sum[0], 1e-6, 1e-6));

  auto mean = RunAllKernelsAndCompare(node("mean"), 12, {SceScores(), labels, weights});
  ASSERT_EQ(mean.size(), 2u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({0.851337582924038}, {}), mean[0], 1e-6, 1e-6));
}

TEST(SoftmaxCrossEntropyLossTest, UnweightedMeans) {
  // Ignored samples leave the denominator: 3 counted of 4.
  auto ii = RunAllKernelsAndCompare(
      MakeNode("SoftmaxCrossEntropyLoss", 2, 1, {{"ignore_index", Attribute::Int(-1)}}), 13,
      {SceScores(), Labels32({2, 0, 1, -1}, {2, 2})});
  ASSERT_EQ(ii.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({0.571864111081363}, {}), ii[0], 1e-6, 1e-6));

  auto plain = RunAllKernelsAndCompare(MakeNode("SoftmaxCrossEntropyLoss", 2, 1), 13,
                                       {SceScores(), Tensor::FromInt64s({2, 0, 1, 1}, {2, 2})});
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({1.0307995744221174}, {}), plain[0], 1e-6, 1e-6));
}

TEST(SoftmaxCrossEntropyLossTest, Float64AndHigherRank) {
  Tensor scores = RandomTensor({2, 4, 3, 2}, 5, -3, 3, DataType::kFloat64);
  Tensor labels = Tensor::FromInt64s({0, 1, 2, 3, 0, 1, 2, 3, 3, 2, 1, 0}, {2, 3, 2});
  auto out = RunAllKernelsAndCompare(
      MakeNode("SoftmaxCrossEntropyLoss", 2, 2, {{"reduction", Attribute::String("none")}}), 13,
      {scores, labels});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(out[0].dtype(), DataType::kFloat64);
  // Each loss is logsumexp(scores[n,:,i,j]) - scores[n,label,i,j]; check one by hand.
  double lse = 0;
  for (int c = 0; c < 4; ++c) lse += std::exp(scores.GetAsDouble(c * 6));
  EXPECT_NEAR(out[0].GetAsDouble(0), std::log(lse) - scores.GetAsDouble(0), 1e-12);
}

TEST(SoftmaxCrossEntropyLossTest, OutOfRangeLabelNamesValueIndexAndClassCount) {
  ExpectError(MakeNode("SoftmaxCrossEntropyLoss", 2, 1), 13,
              {SceScores(), Tensor::FromInt64s({2, 0, 7, 1}, {2, 2})},
              {"label value 7", "index [1,0]", "3 classes"});
  // -1 is an error unless it is the ignore_index.
  ExpectError(MakeNode("NegativeLogLikelihoodLoss", 2, 1, {{"ignore_index", Attribute::Int(5)}}),
              13, {NllInput(), Tensor::FromInt64s({2, -1, 0, 2}, {2, 2})},
              {"label value -1", "index [0,1]", "ignore_index (5)"});
}

TEST(SoftmaxCrossEntropyLossTest, RejectsBadInputs) {
  ExpectError(Reduced("SoftmaxCrossEntropyLoss", 2, "avg"), 13,
              {SceScores(), Tensor::FromInt64s({2, 0, 1, 1}, {2, 2})}, {"'avg'"});
  ExpectError(MakeNode("SoftmaxCrossEntropyLoss", 2, 1), 13,
              {SceScores(), Tensor::FromInt64s({2, 0}, {2})}, {"labels has shape [2]", "[2,2]"});
  ExpectError(MakeNode("SoftmaxCrossEntropyLoss", 2, 1), 13,
              {SceScores(), Tensor::FromFloats({2, 0, 1, 1}, {2, 2})}, {"int32 or int64"});
  ExpectError(
      MakeNode("SoftmaxCrossEntropyLoss", 3, 1), 13,
      {SceScores(), Tensor::FromInt64s({2, 0, 1, 1}, {2, 2}), Tensor::FromFloats({1, 1}, {2})},
      {"weights have shape [2]"});
  ExpectError(MakeNode("NegativeLogLikelihoodLoss", 2, 1), 13,
              {Tensor::FromFloats({1, 2}, {2}), Tensor::FromInt64s({0}, {})}, {"(N, C"});
  ExpectError(MakeNode("NegativeLogLikelihoodLoss", 2, 2), 13, {NllInput(), NllTarget()},
              {"outputs"});
}

TEST(SoftmaxCrossEntropyLossTest, LabelsAndWeightsAreNotDifferentiable) {
  auto schema = ops::OpRegistry::Global().Find(MakeNode("SoftmaxCrossEntropyLoss", 2, 1), 13);
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ((*schema)->non_differentiable_inputs, (std::set<int>{1, 2}));
}

}  // namespace
}  // namespace lasgd
