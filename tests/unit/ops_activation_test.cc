// Tests of the activation op family (ops/activation.cc). Expected values come
// from the defining formulas evaluated here in double, from hand computation,
// or from the ONNX backend node tests (named where so); every case also runs
// every kernel candidate against "reference".
#include <cmath>
#include <functional>

#include "gtest/gtest.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

Tensor F32(Shape shape, const std::vector<double>& values) {
  Tensor t = Tensor::Allocate(DataType::kFloat32, std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.num_elements());
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, values[i]);
  return t;
}

Tensor Eval(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs) {
  auto outs = RunAllKernelsAndCompare(node, opset, inputs);
  return outs.empty() ? Tensor() : outs[0];
}

absl::Status EvalStatus(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs) {
  return ops::EvaluateNode(node, opset, inputs).status();
}

Tensor Apply(const Tensor& x, const std::function<double(double)>& f) {
  Tensor y = Tensor::Allocate(x.dtype(), x.shape());
  for (int64_t i = 0; i < x.num_elements(); ++i) y.SetFromDouble(i, f(x.GetAsDouble(i)));
  return y;
}

const std::vector<double> kPoints = {-20, -3, -1, -0.25, 0, 0.25, 1, 3, 20};

struct Case {
  const char* op;
  int64_t opset;
  std::map<std::string, Attribute> attributes;
  std::function<double(double)> f;
};

std::vector<Case> PointwiseCases() {
  const double kSqrt2OverPi = std::sqrt(2.0 / M_PI);
  return {
      {"Relu", 14, {}, [](double x) { return std::max(0.0, x); }},
      {"LeakyRelu", 16, {}, [](double x) { return x < 0 ? double(0.01f) * x : x; }},
      {"LeakyRelu",
       16,
       {{"alpha", Attribute::Float(0.5f)}},
       [](double x) { return x < 0 ? 0.5 * x : x; }},
      {"Sigmoid", 13, {}, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {"Tanh", 13, {}, [](double x) { return std::tanh(x); }},
      {"HardSigmoid", 7, {}, [](double x) { return std::clamp(double(0.2f) * x + 0.5, 0.0, 1.0); }},
      {"HardSigmoid",
       7,
       {{"alpha", Attribute::Float(0.5f)}, {"beta", Attribute::Float(0.6f)}},
       [](double x) { return std::clamp(0.5 * x + double(0.6f), 0.0, 1.0); }},
      {"HardSwish", 14, {}, [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); }},
      {"Gelu", 20, {}, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
      {"Gelu",
       20,
       {{"approximate", Attribute::String("tanh")}},
       [=](double x) {
         return 0.5 * x * (1 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
       }},
      {"Softplus", 7, {}, [](double x) { return std::log(1 + std::exp(x)); }},
      {"Elu", 7, {}, [](double x) { return x < 0 ? std::exp(x) - 1 : x; }},
      {"Elu",
       7,
       {{"alpha", Attribute::Float(2.f)}},
       [](double x) { return x < 0 ? 2 * (std::exp(x) - 1) : x; }},
      {"Selu",
       7,
       {},
       [](double x) {
         const double a = 1.67326319217681884765625, g = 1.05070102214813232421875;
         return x > 0 ? g * x : g * (a * std::exp(x) - a);
       }},
      {"Selu",
       7,
       {{"alpha", Attribute::Float(2.f)}, {"gamma", Attribute::Float(3.f)}},
       [](double x) { return x > 0 ? 3 * x : 3 * (2 * std::exp(x) - 2); }},
  };
}

TEST(ActivationTest, PointwiseMatchFormulas) {
  Tensor x = F32({3, 3}, kPoints);
  Tensor xd = Tensor::Allocate(DataType::kFloat64, {3, 3});
  for (int i = 0; i < 9; ++i) xd.SetFromDouble(i, kPoints[i]);
  for (const Case& c : PointwiseCases()) {
    graph::Node node = MakeNode(c.op, 1, 1, c.attributes);
    EXPECT_TRUE(TensorsNear(Apply(x, c.f), Eval(node, c.opset, {x}), 1e-5, 1e-6)) << c.op;
    EXPECT_TRUE(TensorsNear(Apply(xd, c.f), Eval(node, c.opset, {xd}), 1e-12, 1e-14)) << c.op;
  }
}

TEST(ActivationTest, PointwiseFastMatchesReferenceOnLargeInputs) {
  Tensor x = RandomTensor({128, 1000}, 17, -8, 8);
  for (const Case& c : PointwiseCases()) {
    Tensor y = Eval(MakeNode(c.op, 1, 1, c.attributes), c.opset, {x});
    EXPECT_TRUE(TensorsNear(Apply(x, c.f), y, 1e-5, 1e-6)) << c.op;
  }
}

TEST(ActivationTest, ActivationsHaveFastAndReferenceKernels) {
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Gelu", "Softmax", "LogSoftmax"}) {
    auto schema = ops::OpRegistry::Global().Find(MakeNode(op, 1, 1), 20);
    ASSERT_TRUE(schema.ok()) << schema.status();
    ASSERT_EQ((*schema)->kernels.size(), 2u) << op;
    EXPECT_EQ((*schema)->kernels.front().name, "fast");
    EXPECT_EQ((*schema)->kernels.back().name, "reference");
  }
}

TEST(ActivationTest, ReluIntegerAndHalf) {
  Tensor x = Tensor::Allocate(DataType::kInt32, {3});
  x.data<int32_t>()[0] = -5;
  x.data<int32_t>()[1] = 0;
  x.data<int32_t>()[2] = 7;
  Tensor y = Eval(MakeNode("Relu", 1, 1), 14, {x});
  ASSERT_EQ(y.dtype(), DataType::kInt32);
  EXPECT_EQ(y.data<int32_t>()[0], 0);
  EXPECT_EQ(y.data<int32_t>()[2], 7);
  // float16: -1.5 (0xbe00) -> 0, 2.0 (0x4000) -> 2.0.
  Tensor h = Tensor::Allocate(DataType::kFloat16, {2});
  h.data<uint16_t>()[0] = 0xbe00;
  h.data<uint16_t>()[1] = 0x4000;
  Tensor hy = Eval(MakeNode("Relu", 1, 1), 14, {h});
  EXPECT_EQ(hy.data<uint16_t>()[0], 0);
  EXPECT_EQ(hy.data<uint16_t>()[1], 0x4000);
  // Sigmoid in float16 is computed in float and rounded once: sigmoid(2) = 0.880797.
  Tensor hs = Eval(MakeNode("Sigmoid", 1, 1), 13, {h});
  EXPECT_NEAR(hs.GetAsDouble(1), 0.880797, 5e-4);
}

TEST(ActivationTest, SigmoidAndSoftplusDoNotOverflow) {
  Tensor x = F32({4}, {-200, -100, 100, 200});
  Tensor s = Eval(MakeNode("Sigmoid", 1, 1), 13, {x});
  EXPECT_EQ(s.GetAsDouble(0), 0.0);
  EXPECT_EQ(s.GetAsDouble(3), 1.0);
  Tensor p = Eval(MakeNode("Softplus", 1, 1), 7, {x});
  EXPECT_NEAR(p.GetAsDouble(0), 0.0, 1e-30);
  EXPECT_FLOAT_EQ(p.GetAsDouble(2), 100.f);
  EXPECT_FLOAT_EQ(p.GetAsDouble(3), 200.f);
}

TEST(ActivationTest, GeluDomainsAndAttributes) {
  Tensor x = F32({3}, {-1, 0.5, 2});
  auto erf_gelu = [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); };
  // com.microsoft.Gelu (domain opset 1) is the erf form.
  graph::Node ms = MakeNode("Gelu", 1, 1);
  ms.domain = "com.microsoft";
  EXPECT_TRUE(TensorsNear(Apply(x, erf_gelu), Eval(ms, 1, {x})));
  // ai.onnx Gelu exists from opset 20 only.
  auto st = EvalStatus(MakeNode("Gelu", 1, 1), 19, {x});
  EXPECT_FALSE(st.ok());
  st = EvalStatus(MakeNode("Gelu", 1, 1, {{"approximate", Attribute::String("fast")}}), 20, {x});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("approximate"), std::string::npos) << st;
}

TEST(ActivationTest, RejectsBadInputs) {
  Tensor i = Tensor::Allocate(DataType::kInt64, {2});
  auto st = EvalStatus(MakeNode("Sigmoid", 1, 1), 13, {i});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("int64"), std::string::npos) << st;
  st = EvalStatus(MakeNode("LeakyRelu", 1, 1, {{"alpha", Attribute::String("x")}}), 16,
                  {F32({1}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("alpha"), std::string::npos) << st;
  EXPECT_FALSE(EvalStatus(MakeNode("HardSwish", 1, 1), 13, {F32({1}, {1})}).ok());
}

// ---- Softmax / LogSoftmax ----

// Softmax over [outer, n, inner] in double, written independently of the kernels.
Tensor SoftmaxExpected(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log) {
  Tensor y = Tensor::Allocate(x.dtype(), x.shape());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += std::exp(x.GetAsDouble((o * n + k) * inner + i));
      for (int64_t k = 0; k < n; ++k) {
        int64_t at = (o * n + k) * inner + i;
        y.SetFromDouble(
            at, log ? x.GetAsDouble(at) - std::log(sum) : std::exp(x.GetAsDouble(at)) / sum);
      }
    }
  }
  return y;
}

TEST(ActivationTest, SoftmaxHandComputed) {
  // e^[-2,-1,0] / sum = [0.09003057, 0.24472847, 0.66524096].
  Tensor y = Eval(MakeNode("Softmax", 1, 1), 13, {F32({3}, {1, 2, 3})});
  EXPECT_TRUE(TensorsNear(F32({3}, {0.09003057, 0.24472847, 0.66524096}), y, 1e-6));
  Tensor l = Eval(MakeNode("LogSoftmax", 1, 1), 13, {F32({3}, {1, 2, 3})});
  EXPECT_TRUE(TensorsNear(F32({3}, {-2.40760596, -1.40760596, -0.40760596}), l, 1e-6));
}

TEST(ActivationTest, SoftmaxLargeNumbersAreStable) {
  // ONNX test_softmax_large_number.
  Tensor x = F32({2, 4}, {0, 1, 2, 3, 10000, 10001, 10002, 10003});
  const std::vector<double> row = {0.0320586, 0.08714432, 0.23688284, 0.64391428};
  std::vector<double> both = row;
  both.insert(both.end(), row.begin(), row.end());
  for (int64_t opset : {11, 13}) {
    EXPECT_TRUE(TensorsNear(F32({2, 4}, both), Eval(MakeNode("Softmax", 1, 1), opset, {x}), 1e-5))
        << opset;
    Tensor l = Eval(MakeNode("LogSoftmax", 1, 1), opset, {x});
    EXPECT_NEAR(l.GetAsDouble(7), std::log(0.64391428), 1e-5);
    EXPECT_NEAR(l.GetAsDouble(4), std::log(0.0320586), 1e-5);
  }
}

TEST(ActivationTest, SoftmaxDefaultAxisDependsOnOpset) {
  Tensor x = RandomTensor({3, 4, 5}, 21, -3, 3);
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    bool log = std::string(op) == "LogSoftmax";
    // Opset < 13: coerced to 2D at axis 1 -> [3, 20].
    EXPECT_TRUE(TensorsNear(SoftmaxExpected(x, 3, 20, 1, log), Eval(MakeNode(op, 1, 1), 11, {x})))
        << op;
    // Opset >= 13: along axis -1 only.
    EXPECT_TRUE(TensorsNear(SoftmaxExpected(x, 12, 5, 1, log), Eval(MakeNode(op, 1, 1), 13, {x})))
        << op;
  }
}

TEST(ActivationTest, SoftmaxExplicitAxes) {
  Tensor x = RandomTensor({3, 4, 5}, 22, -3, 3);
  struct AxisCase {
    int64_t opset, axis, outer, n, inner;
  };
  const std::vector<AxisCase> cases = {{13, 0, 1, 3, 20},  {13, 1, 3, 4, 5},  {13, 2, 12, 5, 1},
                                       {13, -2, 3, 4, 5},  {11, 0, 1, 60, 1}, {11, 2, 12, 5, 1},
                                       {11, -1, 12, 5, 1}, {11, 3, 60, 1, 1}};
  for (const AxisCase& c : cases) {
    for (bool log : {false, true}) {
      graph::Node node =
          MakeNode(log ? "LogSoftmax" : "Softmax", 1, 1, {{"axis", Attribute::Int(c.axis)}});
      EXPECT_TRUE(
          TensorsNear(SoftmaxExpected(x, c.outer, c.n, c.inner, log), Eval(node, c.opset, {x})))
          << "opset " << c.opset << " axis " << c.axis << " log " << log;
    }
  }
}

TEST(ActivationTest, SoftmaxLargeInputsFastMatchesReference) {
  Tensor rows = RandomTensor({512, 300}, 23, -10, 10);
  Eval(MakeNode("Softmax", 1, 1), 13, {rows});
  Eval(MakeNode("LogSoftmax", 1, 1), 13, {rows});
  // Strided axis with a ragged last column block (inner = 300 > 256).
  Tensor cols = RandomTensor({4, 50, 300}, 24, -10, 10);
  graph::Node node = MakeNode("Softmax", 1, 1, {{"axis", Attribute::Int(1)}});
  EXPECT_TRUE(TensorsNear(SoftmaxExpected(cols, 4, 50, 300, false), Eval(node, 13, {cols})));
  node.op_type = "LogSoftmax";
  EXPECT_TRUE(
      TensorsNear(SoftmaxExpected(cols, 4, 50, 300, true), Eval(node, 13, {cols}), 1e-5, 1e-5));
  // float64 and float16 through the reference kernel.
  Tensor xd = RandomTensor({6, 7}, 25, -3, 3, DataType::kFloat64);
  EXPECT_TRUE(TensorsNear(SoftmaxExpected(xd, 6, 7, 1, false),
                          Eval(MakeNode("Softmax", 1, 1), 13, {xd}), 1e-12));
  // float16 is computed in float and rounded once: compare with float32 math.
  Tensor xh = RandomTensor({2, 8}, 26, -3, 3, DataType::kFloat16);
  Tensor xf = Tensor::Allocate(DataType::kFloat32, {2, 8});
  for (int i = 0; i < 16; ++i) xf.SetFromDouble(i, xh.GetAsDouble(i));
  Tensor expected = SoftmaxExpected(xf, 2, 8, 1, false);
  Tensor yh = Eval(MakeNode("Softmax", 1, 1), 13, {xh});
  ASSERT_EQ(yh.dtype(), DataType::kFloat16);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(yh.GetAsDouble(i), expected.GetAsDouble(i), 1e-3) << i;
}

TEST(ActivationTest, SoftmaxRejectsBadInputs) {
  Tensor x = RandomTensor({2, 3}, 1);
  auto st = EvalStatus(MakeNode("Softmax", 1, 1, {{"axis", Attribute::Int(2)}}), 13, {x});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("axis"), std::string::npos) << st;
  st = EvalStatus(MakeNode("Softmax", 1, 1, {{"axis", Attribute::Int(-3)}}), 11, {x});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("axis"), std::string::npos) << st;
  st = EvalStatus(MakeNode("LogSoftmax", 1, 1), 13, {F32({}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("rank"), std::string::npos) << st;
  st = EvalStatus(MakeNode("Softmax", 1, 1), 13, {Tensor::Allocate(DataType::kInt32, {3})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("int32"), std::string::npos) << st;
}

}  // namespace
}  // namespace lasgd
