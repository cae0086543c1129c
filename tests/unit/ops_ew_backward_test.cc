// Tests of the com.lasgd backward ops of ops/elementwise_backward.cc and
// ops/shape_backward.cc. Expected values come from the derivative formulas
// evaluated here in double or from hand computation (noted per case); every
// case also runs every kernel candidate against "reference", with inputs
// large enough for the OpenMP paths where that matters.
#include <cmath>
#include <functional>

#include "gtest/gtest.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;
using Attrs = std::map<std::string, Attribute>;

constexpr int64_t kOpset = 1;

graph::Node Lasgd(const std::string& op, int inputs, int outputs, Attrs attrs = {}) {
  graph::Node node = testing::MakeNode(op, inputs, outputs, std::move(attrs));
  node.domain = "com.lasgd";
  return node;
}

Tensor Filled(DataType dtype, Shape shape, const std::vector<double>& values) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.num_elements());
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, values[i]);
  return t;
}
Tensor F32(Shape shape, const std::vector<double>& values) {
  return Filled(DataType::kFloat32, std::move(shape), values);
}
Tensor F64(Shape shape, const std::vector<double>& values) {
  return Filled(DataType::kFloat64, std::move(shape), values);
}

Tensor Eval(const graph::Node& node, const std::vector<Tensor>& inputs, double rtol = 1e-4,
            double atol = 1e-5) {
  auto outs = RunAllKernelsAndCompare(node, kOpset, inputs, rtol, atol);
  return outs.empty() ? Tensor() : outs[0];
}

absl::Status Status(const graph::Node& node, const std::vector<Tensor>& inputs) {
  return ops::EvaluateNode(node, kOpset, inputs).status();
}

// ---- pointwise gradients ----

struct PointwiseCase {
  const char* op;
  Attrs attrs;
  // dX from dy and the saved value v (X or Y as the op takes it).
  std::function<double(double dy, double v)> grad;
  double lo = -3, hi = 3;  // range of v
};

std::vector<PointwiseCase> PointwiseCases() {
  const double pi = M_PI;
  auto sigmoid = [](double x) { return 1 / (1 + std::exp(-x)); };
  return {
      {"ReluGrad", {}, [](double dy, double y) { return y > 0 ? dy : 0; }},
      {"LeakyReluGrad",
       {{"alpha", Attribute::Float(0.25f)}},
       [](double dy, double x) { return x > 0 ? dy : 0.25 * dy; }},
      {"LeakyReluGrad", {}, [](double dy, double x) { return x > 0 ? dy : double(0.01f) * dy; }},
      {"SigmoidGrad", {}, [](double dy, double y) { return dy * y * (1 - y); }, 0.01, 0.99},
      {"TanhGrad", {}, [](double dy, double y) { return dy * (1 - y * y); }, -0.99, 0.99},
      {"HardSigmoidGrad",
       {{"alpha", Attribute::Float(0.5f)}, {"beta", Attribute::Float(0.25f)}},
       [](double dy, double x) {
         double v = 0.5 * x + 0.25;
         return v > 0 && v < 1 ? 0.5 * dy : 0;
       }},
      {"HardSwishGrad",
       {},
       [](double dy, double x) { return x < -3 ? 0 : (x > 3 ? dy : dy * (2 * x + 3) / 6); },
       -5,
       5},
      {"GeluGrad",
       {},
       [=](double dy, double x) {
         return dy * (0.5 * (1 + std::erf(x / std::sqrt(2.0))) +
                      x * std::exp(-x * x / 2) / std::sqrt(2 * pi));
       }},
      {"GeluGrad",
       {{"approximate", Attribute::String("tanh")}},
       [=](double dy, double x) {
         // d/dx of 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
         const double k = std::sqrt(2 / pi);
         const double u = k * (x + 0.044715 * x * x * x), t = std::tanh(u);
         const double du = k * (1 + 3 * 0.044715 * x * x);
         return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du);
       }},
      {"SoftplusGrad", {}, [=](double dy, double x) { return dy * sigmoid(x); }, -30, 30},
      {"EluGrad",
       {{"alpha", Attribute::Float(0.5f)}},
       [](double dy, double x) { return x < 0 ? dy * 0.5 * std::exp(x) : dy; }},
      {"SeluGrad",
       {},
       [](double dy, double x) {
         const double a = 1.67326319217681884765625, g = 1.05070102214813232421875;
         return x > 0 ? g * dy : g * a * std::exp(x) * dy;
       }},
      {"AbsGrad", {}, [](double dy, double x) { return x > 0 ? dy : (x < 0 ? -dy : 0); }},
      {"ErfGrad",
       {},
       [=](double dy, double x) { return dy * 2 / std::sqrt(pi) * std::exp(-x * x); }},
  };
}

class PointwiseGradTest : public ::testing::TestWithParam<PointwiseCase> {};

TEST_P(PointwiseGradTest, MatchesTheDerivativeFormula) {
  const PointwiseCase& c = GetParam();
  graph::Node node = Lasgd(c.op, 2, 1, c.attrs);
  for (DataType dtype : {DataType::kFloat32, DataType::kFloat64}) {
    // 48 * 1024 elements: above the threshold where the fast kernel goes parallel.
    Tensor dy = RandomTensor({48, 1024}, 1, -2, 2, dtype);
    Tensor v = RandomTensor({48, 1024}, 2, c.lo, c.hi, dtype);
    Tensor dx = Eval(node, {dy, v});
    Tensor expected = Tensor::Allocate(dtype, dy.shape());
    for (int64_t i = 0; i < dy.num_elements(); ++i) {
      expected.SetFromDouble(i, c.grad(dy.GetAsDouble(i), v.GetAsDouble(i)));
    }
    EXPECT_TRUE(TensorsNear(expected, dx, dtype == DataType::kFloat64 ? 1e-12 : 1e-5,
                            dtype == DataType::kFloat64 ? 1e-12 : 1e-6))
        << c.op << " " << DataTypeName(dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(All, PointwiseGradTest, ::testing::ValuesIn(PointwiseCases()),
                         [](const ::testing::TestParamInfo<PointwiseCase>& info) {
                           return std::string(info.param.op) + std::to_string(info.index);
                         });

TEST(PointwiseGrad, RejectsMismatchedShapesTypesAndAttributes) {
  absl::Status s = Status(Lasgd("TanhGrad", 2, 1),
                          {F32({2, 3}, {1, 2, 3, 4, 5, 6}), F32({3, 2}, {1, 2, 3, 4, 5, 6})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("same shape"), std::string::npos) << s;
  s = Status(Lasgd("TanhGrad", 2, 1), {F32({2}, {1, 2}), F64({2}, {1, 2})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("same dtype"), std::string::npos) << s;
  s = Status(Lasgd("ReluGrad", 2, 1),
             {Tensor::FromInt64s({1, 2}, {2}), Tensor::FromInt64s({1, 2}, {2})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("int64"), std::string::npos) << s;
  s = Status(Lasgd("GeluGrad", 2, 1, {{"approximate", Attribute::String("erf")}}),
             {F32({1}, {1}), F32({1}, {1})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("approximate"), std::string::npos) << s;
}

// ---- ClipGrad ----

TEST(ClipGrad, PassesTheGradientInsideTheBoundsInclusive) {
  // Hand-computed: x in [-1, 1] passes, the bounds themselves included.
  Tensor dy = F32({6}, {1, 2, 3, 4, 5, 6});
  Tensor x = F32({6}, {-2, -1, 0, 0.5, 1, 3});
  Tensor dx = Eval(Lasgd("ClipGrad", 4, 1), {dy, x, F32({}, {-1}), F32({}, {1})});
  EXPECT_TRUE(TensorsNear(F32({6}, {0, 2, 3, 4, 5, 0}), dx));
  graph::Node max_only = Lasgd("ClipGrad", 4, 1);
  max_only.inputs[2].clear();
  dx = Eval(max_only, {dy, x, Tensor(), F32({}, {0})});
  EXPECT_TRUE(TensorsNear(F32({6}, {1, 2, 3, 0, 0, 0}), dx));
  dx = Eval(Lasgd("ClipGrad", 2, 1), {dy, x});
  EXPECT_TRUE(TensorsNear(dy, dx));
}

TEST(ClipGrad, LargeInputAgreesAcrossKernels) {
  Tensor dy = RandomTensor({300, 200}, 3);
  Tensor x = RandomTensor({300, 200}, 4);
  Tensor dx = Eval(Lasgd("ClipGrad", 4, 1), {dy, x, F32({}, {-0.3}), F32({}, {0.6})});
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    const double v = x.GetAsDouble(i);
    ASSERT_EQ(dx.GetAsDouble(i), v >= double(-0.3f) && v <= double(0.6f) ? dy.GetAsDouble(i) : 0);
  }
}

TEST(ClipGrad, RejectsNonScalarBounds) {
  absl::Status s =
      Status(Lasgd("ClipGrad", 3, 1), {F32({2}, {1, 2}), F32({2}, {1, 2}), F32({2}, {0, 1})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("one element"), std::string::npos) << s;
}

// ---- SoftmaxGrad / LogSoftmaxGrad ----

// Reference formulas over an explicit [outer, n, inner] view.
Tensor SoftmaxGradExpected(const Tensor& dy, const Tensor& y, int64_t outer, int64_t n,
                           int64_t inner, bool log) {
  Tensor dx = Tensor::Allocate(dy.dtype(), dy.shape());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        const int64_t at = (o * n + k) * inner + i;
        sum += log ? dy.GetAsDouble(at) : dy.GetAsDouble(at) * y.GetAsDouble(at);
      }
      for (int64_t k = 0; k < n; ++k) {
        const int64_t at = (o * n + k) * inner + i;
        const double d = dy.GetAsDouble(at), v = y.GetAsDouble(at);
        dx.SetFromDouble(at, log ? d - std::exp(v) * sum : v * (d - sum));
      }
    }
  }
  return dx;
}

struct SoftmaxCase {
  int64_t axis;
  bool coerce_2d;
  int64_t outer, n, inner;  // the view of shape {6, 40, 300} it implies
};

TEST(SoftmaxGrad, MatchesTheFormulaForBothAxisSemantics) {
  const Shape shape = {6, 40, 300};
  const SoftmaxCase cases[] = {
      {-1, false, 240, 300, 1}, {1, false, 6, 40, 300},  {0, false, 1, 6, 12000},
      {1, true, 6, 12000, 1},   {2, true, 240, 300, 1},  {0, true, 1, 72000, 1},
      {3, true, 72000, 1, 1},   {-2, true, 6, 12000, 1},
  };
  for (bool log : {false, true}) {
    for (const SoftmaxCase& c : cases) {
      graph::Node node = Lasgd(
          log ? "LogSoftmaxGrad" : "SoftmaxGrad", 2, 1,
          {{"axis", Attribute::Int(c.axis)}, {"coerce_2d", Attribute::Int(c.coerce_2d ? 1 : 0)}});
      Tensor dy = RandomTensor(shape, 5);
      // Small probabilities (as in a wide softmax) keep the float32 sums of
      // up to 72000 terms from cancelling against the result.
      Tensor y = log ? RandomTensor(shape, 6, -12, -8) : RandomTensor(shape, 6, 0, 0.1f);
      Tensor dx = Eval(node, {dy, y}, 1e-3, 1e-4);
      EXPECT_TRUE(
          TensorsNear(SoftmaxGradExpected(dy, y, c.outer, c.n, c.inner, log), dx, 1e-3, 1e-4))
          << node.op_type << " axis " << c.axis << " coerce_2d " << c.coerce_2d;
    }
  }
}

TEST(SoftmaxGrad, Float64ReferenceIsExact) {
  // Hand-computed: y = [0.25, 0.75], dy = [1, 3]: sum(dy*y) = 2.5,
  // dx = y * (dy - 2.5) = [-0.375, 0.375].
  Tensor dx = Eval(Lasgd("SoftmaxGrad", 2, 1), {F64({1, 2}, {1, 3}), F64({1, 2}, {0.25, 0.75})});
  EXPECT_TRUE(TensorsNear(F64({1, 2}, {-0.375, 0.375}), dx, 0, 1e-15));
  // LogSoftmax: y = log([0.25, 0.75]), dy = [1, 3]: dx = dy - p * 4 = [0, 0].
  dx = Eval(Lasgd("LogSoftmaxGrad", 2, 1),
            {F64({1, 2}, {1, 3}), F64({1, 2}, {std::log(0.25), std::log(0.75)})});
  EXPECT_TRUE(TensorsNear(F64({1, 2}, {0, 0}), dx, 0, 1e-15));
}

TEST(SoftmaxGrad, RejectsBadAxisAndScalars) {
  absl::Status s = Status(Lasgd("SoftmaxGrad", 2, 1, {{"axis", Attribute::Int(2)}}),
                          {F32({2, 3}, {1, 2, 3, 4, 5, 6}), F32({2, 3}, {1, 2, 3, 4, 5, 6})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("axis 2 is out of range"), std::string::npos) << s;
  s = Status(Lasgd("LogSoftmaxGrad", 2, 1), {F32({}, {1}), F32({}, {1})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank >= 1"), std::string::npos) << s;
}

// ---- ReshapeTo / ExpandTo ----

TEST(ReshapeTo, KeepsTheDataAndChecksTheCount) {
  Tensor x = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y = Eval(Lasgd("ReshapeTo", 1, 1, {{"shape", Attribute::Ints({3, 1, 2})}}), {x});
  EXPECT_TRUE(TensorsNear(F32({3, 1, 2}, {1, 2, 3, 4, 5, 6}), y));
  absl::Status s = Status(Lasgd("ReshapeTo", 1, 1, {{"shape", Attribute::Ints({4})}}), {x});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot reshape [2,3]"), std::string::npos) << s;
  s = Status(Lasgd("ReshapeTo", 1, 1), {x});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'shape'"), std::string::npos) << s;
}

TEST(ExpandTo, BroadcastsLikeNumpy) {
  // Hand-computed: [[1], [2]] broadcast to [2, 2, 3].
  Tensor x = F64({2, 1}, {1, 2});
  Tensor y = Eval(Lasgd("ExpandTo", 1, 1, {{"shape", Attribute::Ints({2, 2, 3})}}), {x});
  EXPECT_TRUE(TensorsNear(F64({2, 2, 3}, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2}), y));
  // Large and int64: every candidate must agree.
  Tensor big = Tensor::FromInt64s(std::vector<int64_t>(500, 7), {500, 1});
  Eval(Lasgd("ExpandTo", 1, 1, {{"shape", Attribute::Ints({3, 500, 200})}}), {big});
  absl::Status s = Status(Lasgd("ExpandTo", 1, 1, {{"shape", Attribute::Ints({3, 3})}}), {x});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not broadcast to [3,3]"), std::string::npos) << s;
}

// ---- SliceGrad ----

TEST(SliceGrad, ScattersIntoZerosWithAnySteps) {
  // Hand-computed: shape [2, 5], rows from 1 step -1 (rows 1, 0), columns
  // from 4 step -2 (columns 4, 2, 0).
  Tensor dy = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  graph::Node node = Lasgd("SliceGrad", 1, 1,
                           {{"shape", Attribute::Ints({2, 5})},
                            {"starts", Attribute::Ints({1, 4})},
                            {"steps", Attribute::Ints({-1, -2})}});
  Tensor dx = Eval(node, {dy});
  EXPECT_TRUE(TensorsNear(F32({2, 5}, {6, 0, 5, 0, 4, 3, 0, 2, 0, 1}), dx));
  // Negative start (Pad's crop): positions outside the output are dropped.
  node = Lasgd("SliceGrad", 1, 1,
               {{"shape", Attribute::Ints({3})},
                {"starts", Attribute::Ints({-1})},
                {"steps", Attribute::Ints({1})}});
  dx = Eval(node, {F32({5}, {1, 2, 3, 4, 5})});
  EXPECT_TRUE(TensorsNear(F32({3}, {2, 3, 4}), dx));
}

TEST(SliceGrad, LargeStridedWindowAgreesAcrossKernels) {
  Tensor dy = RandomTensor({30, 50, 40}, 7);
  graph::Node node = Lasgd("SliceGrad", 1, 1,
                           {{"shape", Attribute::Ints({64, 100, 41})},
                            {"starts", Attribute::Ints({2, 99, 0})},
                            {"steps", Attribute::Ints({2, -2, 1})}});
  Tensor dx = Eval(node, {dy});
  ASSERT_TRUE(dx.defined());
  // Spot checks: dY[k] lands at starts + k * steps.
  EXPECT_EQ(dx.GetAsDouble((2 * 100 + 99) * 41 + 0), dy.GetAsDouble(0));
  EXPECT_EQ(dx.GetAsDouble((4 * 100 + 97) * 41 + 5), dy.GetAsDouble((1 * 50 + 1) * 40 + 5));
  EXPECT_EQ(dx.GetAsDouble((3 * 100 + 99) * 41), 0.0);  // odd rows untouched
}

TEST(SliceGrad, RejectsBadAttributes) {
  absl::Status s = Status(Lasgd("SliceGrad", 1, 1,
                                {{"shape", Attribute::Ints({4})},
                                 {"starts", Attribute::Ints({0, 0})},
                                 {"steps", Attribute::Ints({1})}}),
                          {F32({2}, {1, 2})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("one entry per dim"), std::string::npos) << s;
  s = Status(Lasgd("SliceGrad", 1, 1,
                   {{"shape", Attribute::Ints({4})},
                    {"starts", Attribute::Ints({0})},
                    {"steps", Attribute::Ints({0})}}),
             {F32({2}, {1, 2})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("steps[0] is 0"), std::string::npos) << s;
}

// ---- PadGrad ----

TEST(PadGrad, SumsEveryCopyBack) {
  // Hand-computed: reflect-padding [a, b, c] by (2, 1) gives
  // [c, b, a, b, c, b], so da = d2, db = d1 + d3 + d5, dc = d0 + d4.
  Tensor dy = F64({6}, {1, 2, 4, 8, 16, 32});
  graph::Node node = Lasgd("PadGrad", 1, 1,
                           {{"shape", Attribute::Ints({3})},
                            {"pads", Attribute::Ints({2, 1})},
                            {"mode", Attribute::String("reflect")}});
  EXPECT_TRUE(TensorsNear(F64({3}, {4, 42, 17}), Eval(node, {dy})));
  // edge: [a, a, a, b, c, c] -> da = d0 + d1 + d2, db = d3, dc = d4 + d5.
  node.attributes["mode"] = Attribute::String("edge");
  EXPECT_TRUE(TensorsNear(F64({3}, {7, 8, 48}), Eval(node, {dy})));
  // wrap: [b, c, a, b, c, a] -> da = d2 + d5, db = d0 + d3, dc = d1 + d4.
  node.attributes["mode"] = Attribute::String("wrap");
  EXPECT_TRUE(TensorsNear(F64({3}, {36, 9, 18}), Eval(node, {dy})));
  // constant, with a crop at the end: [0, 0, a, b] (pads 2, -1) -> [d2, d3, 0].
  node.attributes["mode"] = Attribute::String("constant");
  node.attributes["pads"] = Attribute::Ints({2, -1});
  EXPECT_TRUE(TensorsNear(F64({3}, {4, 8, 0}), Eval(node, {F64({4}, {1, 2, 4, 8})})));
}

TEST(PadGrad, RejectsInconsistentPads) {
  absl::Status s = Status(Lasgd("PadGrad", 1, 1,
                                {{"shape", Attribute::Ints({3})},
                                 {"pads", Attribute::Ints({1, 1})},
                                 {"mode", Attribute::String("reflect")}}),
                          {F32({6}, {1, 2, 3, 4, 5, 6})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("do not give dY's size 6"), std::string::npos) << s;
  s = Status(Lasgd("PadGrad", 1, 1,
                   {{"shape", Attribute::Ints({3})},
                    {"pads", Attribute::Ints({1, 1})},
                    {"mode", Attribute::String("mirror")}}),
             {F32({5}, {1, 2, 3, 4, 5})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mode 'mirror'"), std::string::npos) << s;
}

// ---- GatherGrad ----

TEST(GatherGrad, ScatterAddsWithNegativeAndRepeatedIndices) {
  // Hand-computed: data [2, 3] gathered on axis 1 with [[0, -1], [0, 1]]:
  // column 0 gets dY[.., 0, 0] + dY[.., 1, 0], column 2 gets dY[.., 0, 1],
  // column 1 gets dY[.., 1, 1].
  Tensor dy = F32({2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40});
  Tensor idx = Tensor::FromInt64s({0, -1, 0, 1}, {2, 2});
  graph::Node node =
      Lasgd("GatherGrad", 2, 1, {{"shape", Attribute::Ints({2, 3})}, {"axis", Attribute::Int(1)}});
  EXPECT_TRUE(TensorsNear(F32({2, 3}, {4, 4, 2, 40, 40, 20}), Eval(node, {dy, idx})));
}

TEST(GatherGrad, EmbeddingSizedAgreesAcrossKernels) {
  Tensor dy = RandomTensor({64, 8, 300}, 8);
  Tensor idx = Tensor::Allocate(DataType::kInt32, {64, 8});
  for (int64_t i = 0; i < idx.num_elements(); ++i) idx.data<int32_t>()[i] = (i * 7) % 50 - 25;
  graph::Node node = Lasgd("GatherGrad", 2, 1,
                           {{"shape", Attribute::Ints({50, 300})}, {"axis", Attribute::Int(0)}});
  Tensor dx = Eval(node, {dy, idx});
  ASSERT_TRUE(dx.defined());
  double expected = 0;  // row 0 collects every position whose index is 0 or -50
  for (int64_t p = 0; p < idx.num_elements(); ++p) {
    if (idx.data<int32_t>()[p] == 0) expected += dy.GetAsDouble(p * 300 + 3);
  }
  EXPECT_NEAR(dx.GetAsDouble(3), expected, 1e-4);
}

TEST(GatherGrad, RejectsOutOfRangeIndicesAndWrongShapes) {
  graph::Node node =
      Lasgd("GatherGrad", 2, 1, {{"shape", Attribute::Ints({3})}, {"axis", Attribute::Int(0)}});
  absl::Status s = Status(node, {F32({1}, {1}), Tensor::FromInt64s({3}, {1})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("index 3 is out of range"), std::string::npos) << s;
  s = Status(node, {F32({2}, {1, 2}), Tensor::FromInt64s({1}, {1})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("dY has shape [2]"), std::string::npos) << s;
}

// ---- ConcatGrad ----

TEST(ConcatGrad, SplitsAlongTheAxis) {
  // Hand-computed: [2, 5] split on axis 1 into 2 + 0 + 3 columns.
  Tensor dy = F32({2, 5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  graph::Node node = Lasgd("ConcatGrad", 1, 3,
                           {{"axis", Attribute::Int(-1)}, {"sizes", Attribute::Ints({2, 0, 3})}});
  auto outs = RunAllKernelsAndCompare(node, kOpset, {dy});
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_TRUE(TensorsNear(F32({2, 2}, {0, 1, 5, 6}), outs[0]));
  EXPECT_EQ(outs[1].shape(), (Shape{2, 0}));
  EXPECT_TRUE(TensorsNear(F32({2, 3}, {2, 3, 4, 7, 8, 9}), outs[2]));
}

TEST(ConcatGrad, RejectsSizesThatDoNotAddUp) {
  absl::Status s = Status(
      Lasgd("ConcatGrad", 1, 2, {{"axis", Attribute::Int(0)}, {"sizes", Attribute::Ints({1, 1})}}),
      {F32({3}, {1, 2, 3})});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sum to dim 0"), std::string::npos) << s;
}

}  // namespace
}  // namespace lasgd
