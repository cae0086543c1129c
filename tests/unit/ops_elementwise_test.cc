// Tests of the elementwise op family (ops/elementwise.cc). Expected values are
// hand-computed, taken from the ONNX backend node tests (named where so), or
// computed here by independent index loops; every case also runs every kernel
// candidate against "reference".
#include <cmath>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

Tensor Make(DataType dtype, Shape shape, const std::vector<double>& values) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.num_elements());
  for (int64_t i = 0; i < t.num_elements() && i < static_cast<int64_t>(values.size()); ++i) {
    t.SetFromDouble(i, values[i]);
  }
  return t;
}
Tensor F32(Shape shape, const std::vector<double>& values) {
  return Make(DataType::kFloat32, std::move(shape), values);
}
Tensor Half(Shape shape, const std::vector<uint16_t>& bits) {
  Tensor t = Tensor::Allocate(DataType::kFloat16, std::move(shape));
  std::memcpy(t.raw_data(), bits.data(), bits.size() * 2);
  return t;
}

// Runs all kernels, checks them against reference, and returns output 0.
Tensor Eval(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs) {
  auto outs = RunAllKernelsAndCompare(node, opset, inputs);
  return outs.empty() ? Tensor() : outs[0];
}

absl::Status RunStatus(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs) {
  return ops::EvaluateNode(node, opset, inputs).status();
}

// The kernel candidates registered for an op, for checking the fast one exists.
std::vector<std::string> KernelNames(const std::string& op, int64_t opset) {
  auto schema = ops::OpRegistry::Global().Find(MakeNode(op, 2, 1), opset);
  std::vector<std::string> names;
  if (schema.ok()) {
    for (const auto& k : (*schema)->kernels) names.push_back(k.name);
  }
  return names;
}

// Independent numpy broadcasting of a binary op over row-major data.
template <typename F>
Tensor BroadcastExpected(const Tensor& a, const Tensor& b, DataType out_dtype, F f) {
  Shape sa = a.shape(), sb = b.shape();
  size_t rank = std::max(sa.size(), sb.size());
  sa.insert(sa.begin(), rank - sa.size(), 1);
  sb.insert(sb.begin(), rank - sb.size(), 1);
  Shape out(rank);
  for (size_t d = 0; d < rank; ++d) out[d] = sa[d] == 1 ? sb[d] : sa[d];
  Tensor y = Tensor::Allocate(out_dtype, out);
  std::vector<int64_t> idx(rank, 0);
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    int64_t rem = i;
    for (int64_t d = rank - 1; d >= 0; --d) {
      idx[d] = rem % out[d];
      rem /= out[d];
    }
    int64_t ia = 0, ib = 0;
    for (size_t d = 0; d < rank; ++d) {
      ia = ia * sa[d] + (sa[d] == 1 ? 0 : idx[d]);
      ib = ib * sb[d] + (sb[d] == 1 ? 0 : idx[d]);
    }
    y.SetFromDouble(i, f(a.GetAsDouble(ia), b.GetAsDouble(ib)));
  }
  return y;
}

// ---- arithmetic ----

TEST(ElementwiseTest, AddSameShapeHandComputed) {
  Tensor y =
      Eval(MakeNode("Add", 2, 1), 14, {F32({2, 2}, {1, 2, 3, 4}), F32({2, 2}, {10, 20, 30, 40.5})});
  EXPECT_TRUE(TensorsNear(F32({2, 2}, {11, 22, 33, 44.5}), y));
}

TEST(ElementwiseTest, ArithmeticHasFastKernel) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow"}) {
    auto names = KernelNames(op, 14);
    ASSERT_EQ(names.size(), 2u) << op;
    EXPECT_EQ(names.front(), "fast") << op;
    EXPECT_EQ(names.back(), "reference") << op;
  }
}

TEST(ElementwiseTest, BroadcastPatternsMatchIndependentLoops) {
  struct Case {
    Shape a, b;
  };
  // Trailing, leading, middle, two-sided, rank-0 and large (multi-block) patterns.
  std::vector<Case> cases = {{{2, 3, 4}, {4}},
                             {{2, 3, 4}, {3, 1}},
                             {{2, 3, 4}, {2, 1, 1}},
                             {{2, 1, 4}, {3, 1}},
                             {{}, {2, 3}},
                             {{2, 3}, {}},
                             {{}, {}},
                             {{1}, {5}},
                             {{4, 1, 5}, {1, 3, 1}},
                             {{64, 32, 33}, {32, 1}},
                             {{8, 16, 300}, {300}},
                             {{70000}, {1}},
                             {{3, 0, 2}, {1, 2}}};
  struct Op {
    const char* name;
    double (*f)(double, double);
  };
  std::vector<Op> ops = {{"Add", [](double a, double b) { return a + b; }},
                         {"Sub", [](double a, double b) { return a - b; }},
                         {"Mul", [](double a, double b) { return a * b; }},
                         {"Div", [](double a, double b) { return a / b; }}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    Tensor a = RandomTensor(c.a, seed++, -2.f, 2.f);
    Tensor b = RandomTensor(c.b, seed++, 0.5f, 2.f);
    for (const Op& op : ops) {
      Tensor y = Eval(MakeNode(op.name, 2, 1), 14, {a, b});
      EXPECT_TRUE(TensorsNear(BroadcastExpected(a, b, DataType::kFloat32, op.f), y))
          << op.name << " " << ShapeToString(c.a) << " " << ShapeToString(c.b);
    }
  }
}

TEST(ElementwiseTest, Float64AndIntegerArithmetic) {
  Tensor a = RandomTensor({3, 4}, 7, -5, 5, DataType::kFloat64);
  Tensor b = RandomTensor({4}, 8, 1, 5, DataType::kFloat64);
  EXPECT_TRUE(TensorsNear(
      BroadcastExpected(a, b, DataType::kFloat64, [](double x, double y) { return x * y; }),
      Eval(MakeNode("Mul", 2, 1), 14, {a, b})));
  // uint8 add wraps modulo 256 (numpy); int32 overflow wraps too.
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kUint8, {2}, {44, 3}),
      Eval(MakeNode("Add", 2, 1), 14,
           {Make(DataType::kUint8, {2}, {250, 1}), Make(DataType::kUint8, {2}, {50, 2})})));
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kInt32, {1}, {-2147483648.0}),
      Eval(MakeNode("Add", 2, 1), 14,
           {Make(DataType::kInt32, {1}, {2147483647.0}), Make(DataType::kInt32, {1}, {1})})));
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kInt64, {3}, {-6, 6, 12}),
      Eval(MakeNode("Sub", 2, 1), 14,
           {Make(DataType::kInt64, {3}, {-4, 8, 14}), Make(DataType::kInt64, {}, {2})})));
}

TEST(ElementwiseTest, IntegerDivTruncatesTowardZero) {
  // ONNX test_div_int32_trunc.
  EXPECT_TRUE(TensorsNear(Make(DataType::kInt32, {4}, {-1, 1, 1, -1}),
                          Eval(MakeNode("Div", 2, 1), 14,
                               {Make(DataType::kInt32, {4}, {-3, 3, -3, 3}),
                                Make(DataType::kInt32, {4}, {2, 2, -2, -2})})));
  // First values of ONNX test_div_uint8.
  EXPECT_TRUE(TensorsNear(Make(DataType::kUint8, {4}, {1, 7, 2, 0}),
                          Eval(MakeNode("Div", 2, 1), 14,
                               {Make(DataType::kUint8, {4}, {11, 14, 22, 14}),
                                Make(DataType::kUint8, {4}, {10, 2, 10, 15})})));
  // Division by zero and INT_MIN / -1 must not trap.
  EXPECT_TRUE(TensorsNear(Make(DataType::kInt64, {2}, {0, -9223372036854775807.0 - 1}),
                          Eval(MakeNode("Div", 2, 1), 14,
                               {Make(DataType::kInt64, {2}, {5, -9223372036854775807.0 - 1}),
                                Make(DataType::kInt64, {2}, {0, -1})})));
}

TEST(ElementwiseTest, FloatDivByZeroGivesInf) {
  Tensor y = Eval(MakeNode("Div", 2, 1), 14, {F32({3}, {1, -1, 0}), F32({}, {0})});
  EXPECT_EQ(y.GetAsDouble(0), INFINITY);
  EXPECT_EQ(y.GetAsDouble(1), -INFINITY);
  EXPECT_TRUE(std::isnan(y.GetAsDouble(2)));
}

TEST(ElementwiseTest, BinaryRejectsBadInputs) {
  auto st =
      RunStatus(MakeNode("Add", 2, 1), 14, {F32({2}, {1, 2}), Make(DataType::kInt64, {2}, {1, 2})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("same dtype"), std::string::npos) << st;
  st = RunStatus(MakeNode("Mul", 2, 1), 14, {F32({2, 3}, {1, 2, 3, 4, 5, 6}), F32({2}, {1, 2})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("broadcast"), std::string::npos) << st;
  st = RunStatus(MakeNode("Add", 2, 1), 14,
                 {Make(DataType::kBool, {1}, {1}), Make(DataType::kBool, {1}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("bool"), std::string::npos) << st;
  EXPECT_FALSE(RunStatus(MakeNode("Add", 1, 1), 14, {F32({1}, {1})}).ok());
}

// ---- Pow ----

TEST(ElementwiseTest, PowFloatAndMixedTypes) {
  // ONNX test_pow_example / test_pow_bcast_scalar.
  EXPECT_TRUE(
      TensorsNear(F32({3}, {1, 32, 729}),
                  Eval(MakeNode("Pow", 2, 1), 15, {F32({3}, {1, 2, 3}), F32({3}, {4, 5, 6})})));
  EXPECT_TRUE(TensorsNear(F32({3}, {1, 4, 9}),
                          Eval(MakeNode("Pow", 2, 1), 15, {F32({3}, {1, 2, 3}), F32({}, {2})})));
  // ONNX test_pow_types_*: the output has the base's dtype.
  EXPECT_TRUE(TensorsNear(Make(DataType::kInt32, {3}, {1, 32, 729}),
                          Eval(MakeNode("Pow", 2, 1), 15,
                               {Make(DataType::kInt32, {3}, {1, 2, 3}), F32({3}, {4, 5, 6})})));
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kInt64, {3}, {1, 32, 729}),
      Eval(MakeNode("Pow", 2, 1), 15,
           {Make(DataType::kInt64, {3}, {1, 2, 3}), Make(DataType::kInt64, {3}, {4, 5, 6})})));
  EXPECT_TRUE(TensorsNear(F32({3}, {1, 32, 729}),
                          Eval(MakeNode("Pow", 2, 1), 15,
                               {F32({3}, {1, 2, 3}), Make(DataType::kUint64, {3}, {4, 5, 6})})));
  // Exact integer power beyond double's 53 bits: 3^39 = 4052555153018976267.
  Tensor big = Eval(MakeNode("Pow", 2, 1), 15,
                    {Make(DataType::kInt64, {1}, {3}), Make(DataType::kInt64, {1}, {39})});
  EXPECT_EQ(big.data<int64_t>()[0], 4052555153018976267LL);
  // Fractional exponent of a negative base is NaN; x ** 0.5 is sqrt.
  Tensor y = Eval(MakeNode("Pow", 2, 1), 15, {F32({2}, {-8, 16}), F32({}, {0.5})});
  EXPECT_TRUE(std::isnan(y.GetAsDouble(0)));
  EXPECT_FLOAT_EQ(y.GetAsDouble(1), 4.f);
}

TEST(ElementwiseTest, PowRandomBroadcastFastMatchesReference) {
  Tensor x = RandomTensor({16, 8, 40}, 3, 0.1f, 3.f);
  for (float e : {2.f, 3.f, -1.5f}) {
    Tensor y = Eval(MakeNode("Pow", 2, 1), 13, {x, F32({}, {e})});
    EXPECT_TRUE(TensorsNear(BroadcastExpected(x, F32({}, {e}), DataType::kFloat32,
                                              [](double a, double b) { return std::pow(a, b); }),
                            y, 1e-5, 1e-6));
  }
  Eval(MakeNode("Pow", 2, 1), 13, {x, RandomTensor({8, 1}, 4, -2, 2)});
}

TEST(ElementwiseTest, PowOpset7RequiresSameFloatTypes) {
  auto st = RunStatus(MakeNode("Pow", 2, 1), 7, {F32({1}, {2}), Make(DataType::kInt64, {1}, {2})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("same dtype"), std::string::npos) << st;
  EXPECT_FALSE(RunStatus(MakeNode("Pow", 2, 1), 15,
                         {Make(DataType::kUint8, {1}, {2}), Make(DataType::kUint8, {1}, {2})})
                   .ok());
}

// ---- variadic ----

TEST(ElementwiseTest, VariadicMaxMinSumMean) {
  // ONNX test_max_example / test_min_example / test_sum_example / test_mean_example.
  std::vector<Tensor> in = {F32({3}, {3, 2, 1}), F32({3}, {1, 4, 4}), F32({3}, {2, 5, 0})};
  EXPECT_TRUE(TensorsNear(F32({3}, {3, 5, 4}), Eval(MakeNode("Max", 3, 1), 13, in)));
  EXPECT_TRUE(TensorsNear(F32({3}, {1, 2, 0}), Eval(MakeNode("Min", 3, 1), 13, in)));
  EXPECT_TRUE(TensorsNear(F32({3}, {6, 11, 5}), Eval(MakeNode("Sum", 3, 1), 13, in)));
  EXPECT_TRUE(TensorsNear(F32({3}, {2, 11.0 / 3, 5.0 / 3}), Eval(MakeNode("Mean", 3, 1), 13, in)));
  // One input is a copy.
  EXPECT_TRUE(TensorsNear(in[0], Eval(MakeNode("Max", 1, 1), 13, {in[0]})));
  EXPECT_TRUE(TensorsNear(in[0], Eval(MakeNode("Mean", 1, 1), 13, {in[0]})));
}

TEST(ElementwiseTest, VariadicBroadcastsAllInputs) {
  Tensor a = RandomTensor({2, 1, 5}, 11), b = RandomTensor({3, 1}, 12), c = RandomTensor({5}, 13);
  Tensor y = Eval(MakeNode("Sum", 3, 1), 13, {a, b, c});
  auto add = [](double x, double z) { return x + z; };
  Tensor ab = BroadcastExpected(a, b, DataType::kFloat64, add);
  EXPECT_TRUE(TensorsNear(BroadcastExpected(ab, c, DataType::kFloat32, add), y));
  Tensor m = Eval(MakeNode("Max", 3, 1), 13, {a, b, c});
  auto mx = [](double x, double z) { return std::max(x, z); };
  EXPECT_TRUE(TensorsNear(
      BroadcastExpected(BroadcastExpected(a, b, DataType::kFloat64, mx), c, DataType::kFloat32, mx),
      m));
  // Many inputs, big enough for several parallel blocks.
  std::vector<Tensor> many;
  for (uint32_t s = 0; s < 5; ++s) many.push_back(RandomTensor({40, 1000}, 20 + s));
  many.push_back(RandomTensor({1000}, 30));
  Eval(MakeNode("Mean", 6, 1), 13, many);
  Eval(MakeNode("Min", 6, 1), 13, many);
}

TEST(ElementwiseTest, MaxMinPropagateNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const char* op : {"Max", "Min"}) {
    Tensor y = Eval(MakeNode(op, 2, 1), 13, {F32({3}, {nan, 1, 2}), F32({3}, {1, nan, 3})});
    EXPECT_TRUE(std::isnan(y.GetAsDouble(0))) << op;
    EXPECT_TRUE(std::isnan(y.GetAsDouble(1))) << op;
    EXPECT_FALSE(std::isnan(y.GetAsDouble(2))) << op;
  }
}

TEST(ElementwiseTest, MaxMinIntegerAndFloat16) {
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kUint64, {3}, {3, 4, 4}),
      Eval(MakeNode("Max", 2, 1), 13,
           {Make(DataType::kUint64, {3}, {3, 2, 1}), Make(DataType::kUint64, {3}, {1, 4, 4})})));
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kInt8, {3}, {-3, 2, -128}),
      Eval(MakeNode("Min", 2, 1), 13,
           {Make(DataType::kInt8, {3}, {-3, 2, -128}), Make(DataType::kInt8, {3}, {1, 4, 127})})));
  // ONNX test_max_float16: [3,2,1] max [1,4,4] = [3,4,4] (float16 bits).
  Tensor y = Eval(MakeNode("Max", 2, 1), 13,
                  {Half({3}, {0x4200, 0x4000, 0x3c00}), Half({3}, {0x3c00, 0x4400, 0x4400})});
  ASSERT_EQ(y.dtype(), DataType::kFloat16);
  EXPECT_EQ(y.data<uint16_t>()[0], 0x4200);
  EXPECT_EQ(y.data<uint16_t>()[1], 0x4400);
  EXPECT_EQ(y.data<uint16_t>()[2], 0x4400);
}

TEST(ElementwiseTest, VariadicOpsetDifferences) {
  // Opset 7 Max does not broadcast; opset 8 does.
  std::vector<Tensor> in = {F32({2, 2}, {1, 5, 3, 4}), F32({2}, {2, 2})};
  auto st = RunStatus(MakeNode("Max", 2, 1), 7, in);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("same shape"), std::string::npos) << st;
  EXPECT_TRUE(TensorsNear(F32({2, 2}, {2, 5, 3, 4}), Eval(MakeNode("Max", 2, 1), 8, in)));
  // Sum is float-only; Max of ints came with opset 12.
  EXPECT_FALSE(RunStatus(MakeNode("Sum", 2, 1), 13,
                         {Make(DataType::kInt32, {1}, {1}), Make(DataType::kInt32, {1}, {1})})
                   .ok());
  EXPECT_FALSE(RunStatus(MakeNode("Max", 2, 1), 7,
                         {Make(DataType::kInt32, {1}, {1}), Make(DataType::kInt32, {1}, {1})})
                   .ok());
}

// ---- unary ----

TEST(ElementwiseTest, UnaryMathHandComputed) {
  Tensor x = F32({4}, {-2.5, -0.5, 0.5, 4});
  EXPECT_TRUE(TensorsNear(F32({2}, {2, 3}), Eval(MakeNode("Sqrt", 1, 1), 13, {F32({2}, {4, 9})})));
  EXPECT_TRUE(
      TensorsNear(F32({4}, {-0.4, -2, 2, 0.25}), Eval(MakeNode("Reciprocal", 1, 1), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({4}, {2.5, 0.5, -0.5, -4}), Eval(MakeNode("Neg", 1, 1), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({4}, {2.5, 0.5, 0.5, 4}), Eval(MakeNode("Abs", 1, 1), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({4}, {-3, -1, 0, 4}), Eval(MakeNode("Floor", 1, 1), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({4}, {-2, -0, 1, 4}), Eval(MakeNode("Ceil", 1, 1), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({4}, {-1, -1, 1, 1}), Eval(MakeNode("Sign", 1, 1), 13, {x})));
  // exp/log/erf values from the C library in double.
  EXPECT_TRUE(TensorsNear(F32({4}, {std::exp(-2.5), std::exp(-0.5), std::exp(0.5), std::exp(4.0)}),
                          Eval(MakeNode("Exp", 1, 1), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({2}, {0, std::log(4.0)}),
                          Eval(MakeNode("Log", 1, 1), 13, {F32({2}, {1, 4})})));
  EXPECT_TRUE(TensorsNear(F32({4}, {std::erf(-2.5), std::erf(-0.5), std::erf(0.5), std::erf(4.0)}),
                          Eval(MakeNode("Erf", 1, 1), 13, {x})));
  // Sign of 0 is 0, of NaN is NaN.
  Tensor s = Eval(MakeNode("Sign", 1, 1), 13, {F32({2}, {0, NAN})});
  EXPECT_EQ(s.GetAsDouble(0), 0.0);
  EXPECT_TRUE(std::isnan(s.GetAsDouble(1)));
}

TEST(ElementwiseTest, UnaryIntegerDtypes) {
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kInt32, {3}, {3, 0, -2147483648.0}),
      Eval(MakeNode("Neg", 1, 1), 13, {Make(DataType::kInt32, {3}, {-3, 0, -2147483648.0})})));
  EXPECT_TRUE(
      TensorsNear(Make(DataType::kInt8, {3}, {3, 0, 5}),
                  Eval(MakeNode("Abs", 1, 1), 13, {Make(DataType::kInt8, {3}, {-3, 0, 5})})));
  EXPECT_TRUE(
      TensorsNear(Make(DataType::kUint8, {2}, {0, 1}),
                  Eval(MakeNode("Sign", 1, 1), 13, {Make(DataType::kUint8, {2}, {0, 200})})));
  EXPECT_TRUE(
      TensorsNear(Make(DataType::kInt64, {3}, {-1, 0, 1}),
                  Eval(MakeNode("Sign", 1, 1), 13, {Make(DataType::kInt64, {3}, {-7, 0, 9})})));
  auto st = RunStatus(MakeNode("Sqrt", 1, 1), 13, {Make(DataType::kInt32, {1}, {4})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("int32"), std::string::npos) << st;
  EXPECT_FALSE(RunStatus(MakeNode("Neg", 1, 1), 13, {Make(DataType::kUint32, {1}, {4})}).ok());
}

TEST(ElementwiseTest, UnaryRandomFastMatchesReference) {
  Tensor x = RandomTensor({64, 1000}, 5, -3, 3);
  Tensor pos = RandomTensor({64, 1000}, 6, 0.01f, 5);
  for (const char* op : {"Neg", "Exp", "Abs", "Floor", "Ceil", "Sign", "Erf"}) {
    Eval(MakeNode(op, 1, 1), 13, {x});
  }
  for (const char* op : {"Sqrt", "Reciprocal", "Log"}) Eval(MakeNode(op, 1, 1), 13, {pos});
  // Double path against the C library.
  Tensor xd = RandomTensor({100}, 9, -3, 3, DataType::kFloat64);
  Tensor y = Eval(MakeNode("Exp", 1, 1), 13, {xd});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(y.data<double>()[i], std::exp(xd.data<double>()[i]));
}

// ---- Clip ----

TEST(ElementwiseTest, ClipOpset11PlusInputs) {
  // ONNX test_clip_example / test_clip_min_greater_than_max.
  Tensor x = F32({3}, {-2, 0, 2});
  EXPECT_TRUE(TensorsNear(F32({3}, {-1, 0, 1}),
                          Eval(MakeNode("Clip", 3, 1), 13, {x, F32({}, {-1}), F32({}, {1})})));
  EXPECT_TRUE(TensorsNear(
      F32({3}, {1, 1, 1}),
      Eval(MakeNode("Clip", 3, 1), 13, {F32({3}, {-2, 0, 6}), F32({}, {2}), F32({}, {1})})));
  // Only max (min omitted by an empty name), only min, neither.
  graph::Node only_max = MakeNode("Clip", 3, 1);
  only_max.inputs[1] = "";
  EXPECT_TRUE(
      TensorsNear(F32({3}, {-2, 0, 0.5}), Eval(only_max, 13, {x, Tensor(), F32({}, {0.5})})));
  EXPECT_TRUE(
      TensorsNear(F32({3}, {0, 0, 2}), Eval(MakeNode("Clip", 2, 1), 13, {x, F32({}, {0})})));
  EXPECT_TRUE(TensorsNear(x, Eval(MakeNode("Clip", 1, 1), 13, {x})));
  // ONNX test_clip_default_int8_min (opset 12+ accepts integers).
  EXPECT_TRUE(
      TensorsNear(Make(DataType::kInt8, {3}, {0, 0, 5}),
                  Eval(MakeNode("Clip", 2, 1), 13,
                       {Make(DataType::kInt8, {3}, {-5, 0, 5}), Make(DataType::kInt8, {}, {0})})));
  // NaN passes through.
  EXPECT_TRUE(
      std::isnan(Eval(MakeNode("Clip", 3, 1), 13, {F32({1}, {NAN}), F32({}, {-1}), F32({}, {1})})
                     .GetAsDouble(0)));
  Eval(MakeNode("Clip", 3, 1), 13,
       {RandomTensor({100, 500}, 3, -3, 3), F32({}, {-1}), F32({}, {0.5})});
}

TEST(ElementwiseTest, ClipOpset6To10Attributes) {
  Tensor x = F32({4}, {-3, -0.5, 0.5, 3});
  EXPECT_TRUE(TensorsNear(
      F32({4}, {-1, -0.5, 0.5, 2}),
      Eval(MakeNode("Clip", 1, 1, {{"min", Attribute::Float(-1)}, {"max", Attribute::Float(2)}}),
           10, {x})));
  EXPECT_TRUE(TensorsNear(F32({4}, {-3, -0.5, 0, 0}),
                          Eval(MakeNode("Clip", 1, 1, {{"max", Attribute::Float(0)}}), 7, {x})));
  // Opset 10 has no min/max inputs.
  EXPECT_FALSE(RunStatus(MakeNode("Clip", 3, 1), 10, {x, F32({}, {0}), F32({}, {1})}).ok());
}

TEST(ElementwiseTest, ClipRejectsBadBounds) {
  Tensor x = F32({3}, {-2, 0, 2});
  auto st = RunStatus(MakeNode("Clip", 3, 1), 13, {x, F32({2}, {0, 1}), F32({}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("scalar"), std::string::npos) << st;
  st = RunStatus(MakeNode("Clip", 2, 1), 13, {x, Make(DataType::kFloat64, {}, {0})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("same dtype"), std::string::npos) << st;
  // Integer Clip came with opset 12.
  EXPECT_FALSE(RunStatus(MakeNode("Clip", 1, 1), 11, {Make(DataType::kInt32, {1}, {1})}).ok());
}

// ---- Cast ----

graph::Node CastTo(DataType to) {
  return MakeNode("Cast", 1, 1, {{"to", Attribute::Int(static_cast<int64_t>(to))}});
}

TEST(ElementwiseTest, CastNumericAndBool) {
  Tensor x = F32({5}, {-2.7, -0.5, 0, 1.9, 300});
  EXPECT_TRUE(TensorsNear(Make(DataType::kInt32, {5}, {-2, 0, 0, 1, 300}),
                          Eval(CastTo(DataType::kInt32), 13, {x})));
  EXPECT_TRUE(TensorsNear(Make(DataType::kBool, {5}, {1, 1, 0, 1, 1}),
                          Eval(CastTo(DataType::kBool), 13, {x})));
  EXPECT_TRUE(TensorsNear(Make(DataType::kFloat64, {5}, {-2.7f, -0.5, 0, 1.9f, 300}),
                          Eval(CastTo(DataType::kFloat64), 13, {x})));
  EXPECT_TRUE(TensorsNear(F32({3}, {1, 0, 1}), Eval(CastTo(DataType::kFloat32), 13,
                                                    {Make(DataType::kBool, {3}, {1, 0, 1})})));
  // Integer narrowing is modular (numpy astype).
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kUint8, {3}, {44, 255, 1}),
      Eval(CastTo(DataType::kUint8), 13, {Make(DataType::kInt64, {3}, {300, -1, 257})})));
  // Same dtype is a copy; empty tensors are fine.
  EXPECT_TRUE(TensorsNear(x, Eval(CastTo(DataType::kFloat32), 13, {x})));
  EXPECT_EQ(Eval(CastTo(DataType::kInt64), 13, {F32({0, 3}, {})}).shape(), (Shape{0, 3}));
  // NaN to int is 0 instead of undefined behaviour.
  EXPECT_EQ(Eval(CastTo(DataType::kInt64), 13, {F32({1}, {NAN})}).data<int64_t>()[0], 0);
}

TEST(ElementwiseTest, CastHalfPrecision) {
  // float16 bit patterns from numpy: np.array(v, np.float32).astype(np.float16).view(np.uint16).
  Tensor x = F32({8}, {1.0, 0.1, -2.5, 65504, 65520, 1e-7, 5.96e-8, 0.33325195});
  Tensor h = Eval(CastTo(DataType::kFloat16), 13, {x});
  const uint16_t expected[] = {0x3c00, 0x2e66, 0xc100, 0x7bff, 0x7c00, 0x0002, 0x0001, 0x3555};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(h.data<uint16_t>()[i], expected[i]) << "element " << i;
  // And back: every float16 value is exact in float32.
  Tensor back = Eval(CastTo(DataType::kFloat32), 13, {h});
  EXPECT_EQ(back.GetAsDouble(0), 1.0);
  EXPECT_EQ(back.GetAsDouble(1), 0.0999755859375);
  EXPECT_EQ(back.GetAsDouble(4), INFINITY);
  EXPECT_EQ(back.GetAsDouble(7), 0.333251953125);
  Tensor nan = Eval(CastTo(DataType::kFloat16), 13, {F32({1}, {NAN})});
  EXPECT_EQ(nan.data<uint16_t>()[0] & 0x7c00, 0x7c00);
  EXPECT_NE(nan.data<uint16_t>()[0] & 0x3ff, 0);
  // double -> float16 rounds once: 1 + 2^-11 + 2^-40 is just above the tie, so it
  // rounds up to 1 + 2^-10 (0x3c01); rounding via float first would give 1.0.
  Tensor d =
      Eval(CastTo(DataType::kFloat16), 13,
           {Make(DataType::kFloat64, {1}, {1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)})});
  EXPECT_EQ(d.data<uint16_t>()[0], 0x3c01);
}

TEST(ElementwiseTest, CastBFloat16) {
  // ONNX test_cast_FLOAT_to_BFLOAT16 (round to nearest even).
  Tensor x = F32({4}, {0.47892547, 0.48033667, 0.49968487, 0.81910545});
  Tensor b = Eval(CastTo(DataType::kBFloat16), 13, {x});
  const double expected[] = {0.478516, 0.480469, 0.5, 0.820312};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(b.GetAsDouble(i), expected[i], 1e-6) << i;
  Tensor f = Eval(CastTo(DataType::kFloat32), 13, {b});
  EXPECT_NEAR(f.GetAsDouble(3), 0.8203125, 1e-9);
}

TEST(ElementwiseTest, CastRejectsBadTargets) {
  auto st = RunStatus(MakeNode("Cast", 1, 1), 13, {F32({1}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("'to'"), std::string::npos) << st;
  st = RunStatus(CastTo(DataType::kString), 13, {F32({1}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("not supported"), std::string::npos) << st;
  EXPECT_FALSE(RunStatus(MakeNode("Cast", 1, 1, {{"to", Attribute::Int(17)}}), 19, {F32({1}, {1})})
                   .ok());  // float8e4m3fn
}

// ---- comparisons, logic, Where ----

TEST(ElementwiseTest, ComparisonsBroadcast) {
  Tensor a = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = F32({3}, {2, 2, 7});
  auto check = [&](const char* op, int64_t opset, std::vector<double> expected) {
    Tensor y = Eval(MakeNode(op, 2, 1), opset, {a, b});
    EXPECT_TRUE(TensorsNear(Make(DataType::kBool, {2, 3}, expected), y)) << op;
  };
  check("Equal", 13, {0, 1, 0, 0, 0, 0});
  check("Less", 13, {1, 0, 1, 0, 0, 1});
  check("Greater", 13, {0, 0, 0, 1, 1, 0});
  check("LessOrEqual", 16, {1, 1, 1, 0, 0, 1});
  check("GreaterOrEqual", 16, {0, 1, 0, 1, 1, 0});
  // NaN compares unequal to everything.
  Tensor n = Eval(MakeNode("Equal", 2, 1), 13, {F32({1}, {NAN}), F32({1}, {NAN})});
  EXPECT_EQ(n.data<uint8_t>()[0], 0);
  EXPECT_TRUE(
      TensorsNear(Make(DataType::kBool, {2}, {1, 0}),
                  Eval(MakeNode("Equal", 2, 1), 13,
                       {Make(DataType::kBool, {2}, {1, 0}), Make(DataType::kBool, {}, {1})})));
  EXPECT_TRUE(TensorsNear(
      Make(DataType::kBool, {2}, {0, 1}),
      Eval(MakeNode("Greater", 2, 1), 13,
           {Make(DataType::kUint32, {2}, {1, 4000000000.0}), Make(DataType::kUint32, {}, {2})})));
  // LessOrEqual was added in opset 12.
  EXPECT_FALSE(RunStatus(MakeNode("LessOrEqual", 2, 1), 11, {a, b}).ok());
}

TEST(ElementwiseTest, LogicalOps) {
  Tensor a = Make(DataType::kBool, {2, 2}, {0, 0, 1, 1});
  Tensor b = Make(DataType::kBool, {2}, {0, 1});
  EXPECT_TRUE(TensorsNear(Make(DataType::kBool, {2, 2}, {0, 0, 0, 1}),
                          Eval(MakeNode("And", 2, 1), 7, {a, b})));
  EXPECT_TRUE(TensorsNear(Make(DataType::kBool, {2, 2}, {0, 1, 1, 1}),
                          Eval(MakeNode("Or", 2, 1), 7, {a, b})));
  EXPECT_TRUE(TensorsNear(Make(DataType::kBool, {2, 2}, {1, 1, 0, 0}),
                          Eval(MakeNode("Not", 1, 1), 7, {a})));
  auto st = RunStatus(MakeNode("And", 2, 1), 7, {F32({1}, {1}), F32({1}, {1})});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("bool"), std::string::npos) << st;
}

TEST(ElementwiseTest, WhereBroadcastsThreeWays) {
  // ONNX test_where_long_example.
  Tensor y = Eval(
      MakeNode("Where", 3, 1), 16,
      {Make(DataType::kBool, {2, 2}, {1, 0, 1, 1}), Make(DataType::kInt64, {2, 2}, {1, 2, 3, 4}),
       Make(DataType::kInt64, {2, 2}, {9, 8, 7, 6})});
  EXPECT_TRUE(TensorsNear(Make(DataType::kInt64, {2, 2}, {1, 8, 3, 4}), y));
  // cond [3,1], x [1,4] scalar-ish rows, y rank 0.
  Tensor c = Make(DataType::kBool, {3, 1}, {1, 0, 1});
  Tensor x = F32({1, 4}, {1, 2, 3, 4});
  Tensor z = F32({}, {-1});
  EXPECT_TRUE(TensorsNear(F32({3, 4}, {1, 2, 3, 4, -1, -1, -1, -1, 1, 2, 3, 4}),
                          Eval(MakeNode("Where", 3, 1), 16, {c, x, z})));
  // Large, float16 (2-byte elements) and float64.
  Tensor big_c = Make(DataType::kBool, {50, 1, 700}, std::vector<double>(35000, 0));
  for (int64_t i = 0; i < 35000; i += 3) big_c.data<uint8_t>()[i] = 1;
  Eval(MakeNode("Where", 3, 1), 16,
       {big_c, RandomTensor({4, 700}, 1, -1, 1, DataType::kFloat64),
        RandomTensor({700}, 2, -1, 1, DataType::kFloat64)});
  Eval(MakeNode("Where", 3, 1), 16,
       {c, RandomTensor({1, 4}, 3, -1, 1, DataType::kFloat16),
        RandomTensor({3, 4}, 4, -1, 1, DataType::kFloat16)});
  auto st = RunStatus(MakeNode("Where", 3, 1), 16, {F32({1}, {1}), x, z});
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("bool"), std::string::npos) << st;
}

}  // namespace
}  // namespace lasgd
