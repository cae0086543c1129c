// Tests of BatchNormalization, LayerNormalization and InstanceNormalization:
// every kernel against the reference, the reference against values computed
// independently with numpy, and bad inputs.
#include <algorithm>
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

Tensor Doubles(const std::vector<double>& values, Shape shape) {
  Tensor t = Tensor::Allocate(DataType::kFloat64, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.SetFromDouble(i, values[i]);
  return t;
}

Tensor Floats(const std::vector<double>& values, Shape shape) {
  std::vector<float> f(values.begin(), values.end());
  return Tensor::FromFloats(f, std::move(shape));
}

// The shared BatchNormalization example: X (2,3,2) and per-channel params.
struct BnExample {
  Tensor x = Tensor::FromFloats({0.5, -1.0, 2.0, 3.0, -0.5, 0.25, 1.5, 0.0, -2.0, 1.0, 0.75, -0.25},
                                {2, 3, 2});
  Tensor scale = Tensor::FromFloats({1.0, 0.5, 2.0}, {3});
  Tensor bias = Tensor::FromFloats({0.0, 1.0, -1.0}, {3});
  Tensor mean = Tensor::FromFloats({0.5, 0.0, -0.25}, {3});
  Tensor var = Tensor::FromFloats({1.0, 4.0, 0.5}, {3});
  std::vector<Tensor> inputs() const { return {x, scale, bias, mean, var}; }
};

// Expected values below were computed with numpy in float64:
//   y = s*(x-m)/sqrt(v+eps)+b with float64 numpy, m/v the given running stats
//   (inference) or x.mean/x.var over axes (0,2) (training, population var).
const std::vector<double> kBnInferenceY = {0.0,
                                           -1.49999248985236,
                                           1.4999994039542628,
                                           1.7499991059313942,
                                           -1.7070997004063422,
                                           0.41419940081268436,
                                           0.9999949932349067,
                                           -0.49999749661745335,
                                           0.5000005960457372,
                                           1.2499997019771314,
                                           1.8283988016253687,
                                           -1.0};
const std::vector<double> kBnTrainingY = {0.2773483913585347,  -1.3867419567926733,
                                          1.2672608601114683,  1.5345217202229366,
                                          -3.343349559436186,  -0.21888348018793802,
                                          1.3867419567926733,  -0.2773483913585347,
                                          0.19821741966559492, 1.0,
                                          1.8640939059775605,  -2.3018608663534366};
const std::vector<double> kBnRunningMean = {0.475, 0.1, -0.21875};
const std::vector<double> kBnRunningVar = {0.98125, 3.95, 0.473046875};
const std::vector<double> kBnBatchMean = {0.25, 1.0, 0.0625};
const std::vector<double> kBnBatchVar = {0.8125, 3.5, 0.23046875};

TEST(BatchNormalizationTest, InferenceMatchesNumpyAtEveryOpset) {
  BnExample ex;
  for (int64_t opset : {7, 9, 14, 15, 21}) {
    SCOPED_TRACE(opset);
    auto out = RunAllKernelsAndCompare(MakeNode("BatchNormalization", 5, 1), opset, ex.inputs());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(TensorsNear(Floats(kBnInferenceY, {2, 3, 2}), out[0], 1e-5, 1e-5));
  }
}

TEST(BatchNormalizationTest, TrainingModeOpset15) {
  BnExample ex;
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"training_mode", Attribute::Int(1)}});
  for (int64_t opset : {14, 15}) {
    auto out = RunAllKernelsAndCompare(node, opset, ex.inputs());
    ASSERT_EQ(out.size(), 3u);
    EXPECT_TRUE(TensorsNear(Floats(kBnTrainingY, {2, 3, 2}), out[0], 1e-5, 1e-5));
    EXPECT_TRUE(TensorsNear(Floats(kBnRunningMean, {3}), out[1], 1e-6, 1e-6));
    EXPECT_TRUE(TensorsNear(Floats(kBnRunningVar, {3}), out[2], 1e-6, 1e-6));
  }
}

TEST(BatchNormalizationTest, TrainingKernelsAgreeOnLargeOffsetChannels) {
  // Planes of 35 (the fast kernel's 8-wide loop and its tail), and a channel
  // whose mean is far from zero next to its spread (1000 + U(-0.01, 0.01)):
  // normalising it as x * a + (bias - mean * a) in float loses the value to
  // the rounding of x * a (the fast kernel did until it subtracted the mean
  // first), and statistics summed in float would lose the variance.
  const Shape x_shape = {4, 3, 5, 7};
  Tensor x = RandomTensor(x_shape, 7);
  float* px = x.data<float>();
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 35; ++j) {
      float& v = px[(i * 3 + 1) * 35 + j];
      v = 1000.f + 0.01f * v;
    }
  }
  std::vector<Tensor> inputs = {x, RandomTensor({3}, 8, 0.5f, 1.5f), RandomTensor({3}, 9),
                                RandomTensor({3}, 10), RandomTensor({3}, 11, 0.5f, 1.5f)};
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"training_mode", Attribute::Int(1)}});
  auto fast = ops::EvaluateNode(node, 15, inputs, {"fast"});
  ASSERT_TRUE(fast.ok()) << fast.status();
  auto out = RunAllKernelsAndCompare(node, 15, inputs);
  ASSERT_EQ(out.size(), 3u);
  // The offset channel's normalised values (sample 0) spread over about
  // 3.4 standard deviations times its scale (>= 0.5): it was not flattened.
  const float* y = out[0].data<float>();
  float lo = y[35], hi = y[35];
  for (int64_t j = 0; j < 35; ++j) lo = std::min(lo, y[35 + j]), hi = std::max(hi, y[35 + j]);
  EXPECT_GT(hi - lo, 1.0f);
}

TEST(BatchNormalizationTest, FiveOutputTrainingFormOpset9) {
  BnExample ex;
  auto out = RunAllKernelsAndCompare(MakeNode("BatchNormalization", 5, 5), 9, ex.inputs());
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(TensorsNear(Floats(kBnTrainingY, {2, 3, 2}), out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats(kBnRunningMean, {3}), out[1], 1e-6, 1e-6));
  EXPECT_TRUE(TensorsNear(Floats(kBnRunningVar, {3}), out[2], 1e-6, 1e-6));
  EXPECT_TRUE(TensorsNear(Floats(kBnBatchMean, {3}), out[3], 1e-6, 1e-6));
  EXPECT_TRUE(TensorsNear(Floats(kBnBatchVar, {3}), out[4], 1e-6, 1e-6));
}

TEST(BatchNormalizationTest, OneExtraOutputMeansTrainingInOldOpsets) {
  BnExample ex;
  graph::Node node = MakeNode("BatchNormalization", 5, 3);
  node.outputs[2].clear();  // only Y and the running mean
  auto out = RunAllKernelsAndCompare(node, 13, ex.inputs());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Floats(kBnTrainingY, {2, 3, 2}), out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats(kBnRunningMean, {3}), out[1], 1e-6, 1e-6));
}

TEST(BatchNormalizationTest, Float64Reference) {
  BnExample ex;
  std::vector<Tensor> inputs;
  for (const Tensor& t : ex.inputs()) inputs.push_back(Doubles(t.ToDoubleVector(), t.shape()));
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"training_mode", Attribute::Int(1)}});
  auto out = RunAllKernelsAndCompare(node, 15, inputs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Doubles(kBnTrainingY, {2, 3, 2}), out[0], 1e-12, 1e-12));
  // momentum is a float attribute (0.9f, not 0.9), hence the looser tolerance.
  EXPECT_TRUE(TensorsNear(Doubles(kBnRunningVar, {3}), out[2], 1e-7, 1e-7));
}

TEST(BatchNormalizationTest, Opset15MixedParameterTypes) {
  // T1 (scale, B) float64 and T2 (mean, var) float32 with float32 X.
  BnExample ex;
  std::vector<Tensor> inputs = ex.inputs();
  inputs[1] = Doubles(ex.scale.ToDoubleVector(), {3});
  inputs[2] = Doubles(ex.bias.ToDoubleVector(), {3});
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"training_mode", Attribute::Int(1)}});
  auto out = RunAllKernelsAndCompare(node, 15, inputs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(Floats(kBnTrainingY, {2, 3, 2}), out[0], 1e-5, 1e-5));
  EXPECT_EQ(out[1].dtype(), DataType::kFloat32);
}

TEST(BatchNormalizationTest, Opset7NonSpatial) {
  BnExample ex;
  // Per-position parameters of shape (C, D) = (3, 2); numpy as above with the
  // statistics over axis 0 only.
  std::vector<Tensor> inputs = {ex.x, Floats({0.5, 1.0, 1.5, 2.0, 2.5, 3.0}, {3, 2}),
                                Floats({0, 0.1, 0.2, 0.3, 0.4, 0.5}, {3, 2}),
                                Floats({0, 0, 0, 0, 0, 0}, {3, 2}),
                                Floats({1, 1, 1, 1, 1, 1}, {3, 2})};
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"spatial", Attribute::Int(0)}});
  auto out = RunAllKernelsAndCompare(node, 7, inputs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(
      Floats({-0.49999000029998997, -0.89998000059998, 1.6999981250035154, 2.2999900000749998,
              -2.0999680006143873, 3.4997600287961608, 0.49999000029998997, 1.09998000059998,
              -1.2999981250035155, -1.6999900000749995, 2.899968000614387, -2.4997600287961608},
             {2, 3, 2}),
      out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats({0.1, -0.05, 0.0, 0.2, 0.0125, 0.0}, {3, 2}), out[1], 1e-6, 1e-6));
  EXPECT_TRUE(TensorsNear(Floats({0.925, 0.925, 1.3, 1.0, 0.9390625, 0.90625}, {3, 2}), out[2],
                          1e-6, 1e-6));
}

TEST(BatchNormalizationTest, KernelsAgreeOnManyShapes) {
  for (Shape shape :
       std::vector<Shape>{{4, 3}, {2, 5, 7}, {3, 4, 5, 6}, {2, 3, 2, 3, 4}, {2, 2, 2, 2, 2, 3}}) {
    SCOPED_TRACE(ShapeToString(shape));
    int64_t c = shape[1];
    std::vector<Tensor> inputs = {RandomTensor(shape, 1, -2, 3), RandomTensor({c}, 2),
                                  RandomTensor({c}, 3), RandomTensor({c}, 4),
                                  RandomTensor({c}, 5, 0.5, 2)};
    RunAllKernelsAndCompare(MakeNode("BatchNormalization", 5, 1), 15, inputs);
    RunAllKernelsAndCompare(MakeNode("BatchNormalization", 5, 3,
                                     {{"training_mode", Attribute::Int(1)},
                                      {"momentum", Attribute::Float(0.7f)},
                                      {"epsilon", Attribute::Float(1e-3f)}}),
                            15, inputs);
  }
}

TEST(BatchNormalizationTest, FastKernelsAcceptFloat32) {
  // Inference runs on oneDNN; training on the OpenMP "fast" kernel, which
  // beats oneDNN 2.6's plain-layout forward_training.
  BnExample ex;
  for (int training : {0, 1}) {
    auto out = ops::EvaluateNode(MakeNode("BatchNormalization", 5, training ? 3 : 1,
                                          {{"training_mode", Attribute::Int(training)}}),
                                 15, ex.inputs(), {training ? "fast" : "onednn"});
    EXPECT_TRUE(out.ok()) << out.status();
  }
}

TEST(BatchNormalizationTest, RunsRepeatedlyWithTheSameResult) {
  BnExample ex;
  graph::Node node = MakeNode("BatchNormalization", 5, 3, {{"training_mode", Attribute::Int(1)}});
  auto first = ops::EvaluateNode(node, 15, ex.inputs());
  auto second = ops::EvaluateNode(node, 15, ex.inputs());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE(TensorsNear((*first)[0], (*second)[0], 0, 0));
}

void ExpectError(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                 const std::string& fragment) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(std::string(out.status().message()).find(fragment), std::string::npos) << out.status();
}

TEST(BatchNormalizationTest, RejectsBadInputs) {
  BnExample ex;
  std::vector<Tensor> inputs = ex.inputs();
  inputs[0] = Tensor::FromFloats({1, 2, 3}, {3});
  ExpectError(MakeNode("BatchNormalization", 5, 1), 15, inputs, "rank >= 2");

  inputs = ex.inputs();
  inputs[1] = Tensor::FromFloats({1, 2}, {2});
  ExpectError(MakeNode("BatchNormalization", 5, 1), 15, inputs, "input scale has shape [2]");

  ExpectError(MakeNode("BatchNormalization", 5, 3), 15, ex.inputs(), "training_mode=0");
  ExpectError(MakeNode("BatchNormalization", 5, 1, {{"spatial", Attribute::Int(0)}}), 9,
              ex.inputs(), "spatial");

  inputs = ex.inputs();
  inputs[3] = Doubles({0, 0, 0}, {3});
  ExpectError(MakeNode("BatchNormalization", 5, 1), 14, inputs, "input mean has dtype float64");
}

TEST(BatchNormalizationTest, MeanAndVarAreNotDifferentiable) {
  auto schema = ops::OpRegistry::Global().Find(MakeNode("BatchNormalization", 5, 1), 15);
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ((*schema)->non_differentiable_inputs, (std::set<int>{3, 4}));
}

// numpy: X (2,2,3), axis=1, mean/var over axes (1,2), eps 1e-5, Scale/B of shape (2,3).
TEST(LayerNormalizationTest, MatchesNumpyWithOptionalOutputs) {
  Tensor x = Floats({1, 2, 3, 4, 5, 6, -1, 0.5, 2, -3, 1, 0}, {2, 2, 3});
  Tensor scale = Floats({1, 2, 0.5, 0.25, -1, 1.5}, {2, 3});
  Tensor bias = Floats({0, 0.1, 0.2, 0.3, 0.4, 0.5}, {2, 3});
  graph::Node node = MakeNode("LayerNormalization", 3, 3, {{"axis", Attribute::Int(1)}});
  auto out = RunAllKernelsAndCompare(node, 17, {x, scale, bias});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(TensorsNear(
      Floats({-1.4638475999719223, -1.6566171199663065, 0.05361524000280779, 0.3731923799985961,
              -0.47830855998315325, 2.6957713999578834, -0.5757651790943856, 0.8327920461201271,
              0.8542786126072563, -0.1579950288250795, -0.2804497571115466, 0.5785134335128708},
             {2, 2, 3}),
      out[0], 1e-5, 1e-5));
  EXPECT_TRUE(TensorsNear(Floats({3.5, -0.08333333333333333}, {2, 1, 1}), out[1], 1e-6, 1e-6));
  EXPECT_TRUE(
      TensorsNear(Floats({0.5855390399887689, 0.6281074681029661}, {2, 1, 1}), out[2], 1e-6, 1e-6));
  // The fast kernel must actually take this common case.
  EXPECT_TRUE(ops::EvaluateNode(node, 17, {x, scale, bias}, {"fast"}).ok());
}

TEST(LayerNormalizationTest, KernelsAgreeAcrossAxesAndBroadcasts) {
  Tensor x = RandomTensor({3, 4, 5}, 7, -3, 3);
  for (int64_t axis : {-3, -2, -1, 0, 1, 2}) {
    SCOPED_TRACE(axis);
    int64_t a = axis < 0 ? axis + 3 : axis;
    Shape param(x.shape().begin() + a, x.shape().end());
    graph::Node node = MakeNode("LayerNormalization", 3, 3, {{"axis", Attribute::Int(axis)}});
    RunAllKernelsAndCompare(node, 17, {x, RandomTensor(param, 8), RandomTensor(param, 9)});
    graph::Node no_bias = MakeNode("LayerNormalization", 2, 1, {{"axis", Attribute::Int(axis)}});
    RunAllKernelsAndCompare(no_bias, 17, {x, RandomTensor(param, 8)});
  }
  // Scale of shape (4, 1) broadcasts over the normalized axis: reference only.
  graph::Node node = MakeNode("LayerNormalization", 2, 1, {{"axis", Attribute::Int(1)}});
  auto out = RunAllKernelsAndCompare(node, 17, {x, RandomTensor({4, 1}, 10)});
  EXPECT_EQ(out.size(), 1u);
}

TEST(LayerNormalizationTest, StashTypeSetsStatisticsDtype) {
  Tensor x = Doubles({1, 2, 3, 4}, {2, 2});
  Tensor scale = Doubles({1, 1}, {2});
  auto f32 = RunAllKernelsAndCompare(MakeNode("LayerNormalization", 2, 2), 17, {x, scale});
  ASSERT_EQ(f32.size(), 2u);
  EXPECT_EQ(f32[1].dtype(), DataType::kFloat32);
  auto f64 = RunAllKernelsAndCompare(
      MakeNode("LayerNormalization", 2, 2, {{"stash_type", Attribute::Int(11)}}), 17, {x, scale});
  ASSERT_EQ(f64.size(), 2u);
  EXPECT_TRUE(TensorsNear(Doubles({1.5, 3.5}, {2, 1}), f64[1], 0, 0));
  // numpy: 0.5 / sqrt(0.25 + float64(float32(1e-5))) = 0.9999800006004852
  EXPECT_TRUE(TensorsNear(
      Doubles({-0.9999800006004852, 0.9999800006004852, -0.9999800006004852, 0.9999800006004852},
              {2, 2}),
      f64[0], 1e-12, 1e-12));
}

TEST(LayerNormalizationTest, RejectsBadInputs) {
  Tensor x = RandomTensor({2, 3}, 1);
  ExpectError(MakeNode("LayerNormalization", 2, 1, {{"axis", Attribute::Int(2)}}), 17,
              {x, RandomTensor({3}, 2)}, "axis 2 is out of range");
  ExpectError(MakeNode("LayerNormalization", 2, 1), 17, {x, RandomTensor({4}, 2)},
              "does not broadcast");
  ExpectError(MakeNode("LayerNormalization", 2, 1, {{"stash_type", Attribute::Int(7)}}), 17,
              {x, RandomTensor({3}, 2)}, "stash_type");
  ExpectError(MakeNode("LayerNormalization", 2, 1), 16, {x, RandomTensor({3}, 2)},
              "opset 16 is not supported");
}

TEST(InstanceNormalizationTest, MatchesNumpy) {
  // numpy: per (n, c) mean/var over the last axis, eps 1e-5.
  Tensor x = Floats({1, 2, 4, -1, 0, 3}, {1, 2, 3});
  auto out = RunAllKernelsAndCompare(MakeNode("InstanceNormalization", 3, 1), 7,
                                     {x, Floats({2.0, 0.5}, {2}), Floats({0.5, -1.0}, {2})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({-1.6380830629005954, -0.03452076572514906, 3.1726038286257436,
                                  -1.4902894892682321, -1.1961157957072928, -0.3135947150244749},
                                 {1, 2, 3}),
                          out[0], 1e-5, 1e-5));
  ExpectError(MakeNode("InstanceNormalization", 3, 1), 13,
              {x, Floats({2.0}, {1}), Floats({0.5, -1.0}, {2})}, "scale has shape [1]");
}

}  // namespace
}  // namespace lasgd
