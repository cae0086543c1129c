// Tests for ops/reduce.cc. Values marked "numpy" were printed by numpy from
// the expression in the comment with x = (np.arange(24).reshape(2, 3, 4) - 10) / 4.
#include <cmath>
#include <limits>

#include "ops/evaluate_node.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

Tensor Values(std::vector<double> v, Shape shape, DataType dtype = DataType::kFloat32) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, v[i]);
  return t;
}

Tensor X(DataType dtype = DataType::kFloat32) {
  Tensor t = Tensor::Allocate(dtype, {2, 3, 4});
  for (int64_t i = 0; i < 24; ++i) t.SetFromDouble(i, (i - 10) / 4.0);
  return t;
}

Tensor I64(std::vector<int64_t> v) {
  Shape s{static_cast<int64_t>(v.size())};
  return Tensor::FromInt64s(v, s);
}

// Checks the reference output (and every other kernel against it).
void Expect(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
            const Tensor& expected, double rtol = 1e-6) {
  auto out = RunAllKernelsAndCompare(node, opset, inputs);
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(expected, out[0], rtol, 1e-6)) << node.op_type << " opset " << opset;
}

void ExpectError(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                 const std::string& needle) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_NE(std::string(out.status().message()).find(needle), std::string::npos)
      << out.status().message();
}

TEST(ReduceTest, AttributeAxesKnownValues) {
  // numpy: x.sum(axis=1, keepdims=True)
  Expect(MakeNode("ReduceSum", 1, 1, {{"axes", Attribute::Ints({1})}}), 11, {X()},
         Values({-4.5, -3.75, -3.0, -2.25, 4.5, 5.25, 6.0, 6.75}, {2, 1, 4}));
  // numpy: x.mean(axis=(0, 2))
  Expect(MakeNode("ReduceMean", 1, 1,
                  {{"axes", Attribute::Ints({0, -1})}, {"keepdims", Attribute::Int(0)}}),
         13, {X()}, Values({-0.625, 0.375, 1.375}, {3}));
  // numpy: x.max(axis=-1, keepdims=True)
  Expect(MakeNode("ReduceMax", 1, 1, {{"axes", Attribute::Ints({-1})}}), 13, {X()},
         Values({-1.75, -0.75, 0.25, 1.25, 2.25, 3.25}, {2, 3, 1}));
  // numpy: x.min() (no axes: everything), keepdims=0 gives a scalar
  Expect(MakeNode("ReduceMin", 1, 1, {{"keepdims", Attribute::Int(0)}}), 13, {X()},
         Values({-2.5}, {}));
  // numpy: x.prod(axis=0)
  Expect(MakeNode("ReduceProd", 1, 1,
                  {{"axes", Attribute::Ints({0})}, {"keepdims", Attribute::Int(0)}}),
         13, {X()},
         Values({-1.25, -1.6875, -2.0, -2.1875, -2.25, -2.1875, -2.0, -1.6875, -1.25, -0.6875, 0.0,
                 0.8125},
                {3, 4}));
  // numpy: (x * x).sum(axis=2)
  Expect(MakeNode("ReduceSumSquare", 1, 1,
                  {{"axes", Attribute::Ints({2})}, {"keepdims", Attribute::Int(0)}}),
         13, {X()}, Values({18.375, 5.375, 0.375, 3.375, 14.375, 33.375}, {2, 3}));
  // numpy: np.abs(x).sum(axis=1)
  Expect(
      MakeNode("ReduceL1", 1, 1, {{"axes", Attribute::Ints({1})}, {"keepdims", Attribute::Int(0)}}),
      13, {X()}, Values({4.5, 3.75, 3.0, 2.75, 4.5, 5.25, 6.0, 6.75}, {2, 4}));
  // numpy: np.sqrt((x * x).sum(keepdims=True))
  Expect(MakeNode("ReduceL2", 1, 1), 13, {X()}, Values({8.67467579}, {1, 1, 1}));
  // numpy: np.log(np.abs(x).sum(axis=1))  (ReduceLogSum of |x| via ReduceL1's values)
  Tensor ax = X();
  for (int64_t i = 0; i < 24; ++i) ax.SetFromDouble(i, std::fabs(ax.GetAsDouble(i)));
  Expect(MakeNode("ReduceLogSum", 1, 1,
                  {{"axes", Attribute::Ints({1})}, {"keepdims", Attribute::Int(0)}}),
         13, {ax},
         Values({std::log(4.5), std::log(3.75), std::log(3.0), std::log(2.75), std::log(4.5),
                 std::log(5.25), std::log(6.0), std::log(6.75)},
                {2, 4}));
  // numpy: np.log(np.exp(x).sum(axis=2))
  Expect(MakeNode("ReduceLogSumExp", 1, 1,
                  {{"axes", Attribute::Ints({2})}, {"keepdims", Attribute::Int(0)}}),
         13, {X()},
         Values({-0.699983596, 0.300016404, 1.3000164, 2.3000164, 3.3000164, 4.3000164}, {2, 3}));
}

TEST(ReduceTest, AxesInputAndNoop) {
  // ReduceSum takes axes as an input from opset 13, the others from 18.
  Expect(MakeNode("ReduceSum", 2, 1), 13, {X(), I64({1})},
         Values({-4.5, -3.75, -3.0, -2.25, 4.5, 5.25, 6.0, 6.75}, {2, 1, 4}));
  Expect(MakeNode("ReduceMean", 2, 1, {{"keepdims", Attribute::Int(0)}}), 18, {X(), I64({0, 2})},
         Values({-0.625, 0.375, 1.375}, {3}));
  // Omitted axes: reduce everything (sum of x is 9).
  Expect(MakeNode("ReduceSum", 1, 1, {{"keepdims", Attribute::Int(0)}}), 13, {X()},
         Values({9}, {}));
  // Empty axes with noop_with_empty_axes: each element alone, so
  // ReduceSumSquare squares (as the ONNX reference implementation does).
  Tensor x = X();
  Tensor sq = Tensor::Allocate(DataType::kFloat32, {2, 3, 4});
  for (int64_t i = 0; i < 24; ++i) sq.SetFromDouble(i, x.GetAsDouble(i) * x.GetAsDouble(i));
  Expect(MakeNode("ReduceSumSquare", 2, 1, {{"noop_with_empty_axes", Attribute::Int(1)}}), 18,
         {x, I64({})}, sq);
  Expect(MakeNode("ReduceSum", 2, 1, {{"noop_with_empty_axes", Attribute::Int(1)}}), 13,
         {x, I64({})}, x);
  // Empty axes without noop: everything.
  Expect(MakeNode("ReduceMax", 2, 1, {{"keepdims", Attribute::Int(0)}}), 18, {x, I64({})},
         Values({3.25}, {}));
}

TEST(ReduceTest, IntegerAndDoubleDtypes) {
  Tensor xi = Values({1, -2, 3, 4, 5, -6}, {2, 3}, DataType::kInt64);
  Expect(MakeNode("ReduceSum", 1, 1, {{"axes", Attribute::Ints({1})}}), 11, {xi},
         Values({2, 3}, {2, 1}, DataType::kInt64));
  Expect(MakeNode("ReduceProd", 1, 1, {{"axes", Attribute::Ints({0})}}), 11, {xi},
         Values({4, -10, -18}, {1, 3}, DataType::kInt64));
  Tensor x8 = Values({1, -2, 3, 4, 5, -6}, {2, 3}, DataType::kInt8);
  Expect(MakeNode("ReduceMax", 1, 1,
                  {{"axes", Attribute::Ints({1})}, {"keepdims", Attribute::Int(0)}}),
         13, {x8}, Values({3, 5}, {2}, DataType::kInt8));
  Expect(MakeNode("ReduceMean", 1, 1,
                  {{"axes", Attribute::Ints({2})}, {"keepdims", Attribute::Int(0)}}),
         13, {X(DataType::kFloat64)},
         Values({-2.125, -1.125, -0.125, 0.875, 1.875, 2.875}, {2, 3}, DataType::kFloat64));
  ExpectError(MakeNode("ReduceSum", 1, 1), 11, {x8}, "int8");
  // Bool max is "any", min is "all" (opset 20).
  Tensor b = Values({1, 0, 0, 1, 1, 1}, {2, 3}, DataType::kBool);
  Expect(MakeNode("ReduceMax", 2, 1, {{"keepdims", Attribute::Int(0)}}), 20, {b, I64({1})},
         Values({1, 1}, {2}, DataType::kBool));
  Expect(MakeNode("ReduceMin", 2, 1, {{"keepdims", Attribute::Int(0)}}), 20, {b, I64({1})},
         Values({0, 1}, {2}, DataType::kBool));
}

TEST(ReduceTest, EmptyReductions) {
  Tensor empty = Tensor::Allocate(DataType::kFloat32, {2, 0});
  auto axes = [] { return std::map<std::string, Attribute>{{"axes", Attribute::Ints({1})}}; };
  // ReduceSum reads axes from an input from opset 13, so use 12 here.
  Expect(MakeNode("ReduceSum", 1, 1, axes()), 12, {empty}, Values({0, 0}, {2, 1}));
  Expect(MakeNode("ReduceProd", 1, 1, axes()), 13, {empty}, Values({1, 1}, {2, 1}));
  double inf = std::numeric_limits<double>::infinity();
  Expect(MakeNode("ReduceMax", 1, 1, axes()), 13, {empty}, Values({-inf, -inf}, {2, 1}));
  Expect(MakeNode("ReduceLogSumExp", 1, 1, axes()), 13, {empty}, Values({-inf, -inf}, {2, 1}));
  auto out = RunAllKernelsAndCompare(MakeNode("ReduceMean", 1, 1, axes()), 13, {empty});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(std::isnan(out[0].GetAsDouble(0)));
}

TEST(ReduceTest, FastMatchesReferenceOnLargeInputs) {
  Tensor x = RandomTensor({8, 64, 28, 28}, 3, -2.f, 2.f);
  // Covers every folded pattern (trailing, leading, middle, R K R, R K R K)
  // and one that does not fold ({1, 3}).
  const std::vector<std::vector<int64_t>> axes_sets = {{2, 3}, {0},          {1},    {0, 2, 3},
                                                       {3},    {0, 1, 2, 3}, {1, 3}, {0, 2}};
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare",
                         "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceLogSum"}) {
    for (const auto& axes : axes_sets) {
      for (int64_t keep : {0, 1}) {
        auto node = MakeNode(op, 1, 1,
                             {{"axes", Attribute::Ints(axes)}, {"keepdims", Attribute::Int(keep)}});
        auto out = RunAllKernelsAndCompare(node, 13, {x});
        EXPECT_FALSE(out.empty()) << op;
      }
    }
  }
  // Prod on values near 1 so that it stays finite.
  Tensor near_one = RandomTensor({16, 300}, 4, 0.99f, 1.01f);
  RunAllKernelsAndCompare(MakeNode("ReduceProd", 1, 1, {{"axes", Attribute::Ints({1})}}), 13,
                          {near_one});
  // A spot check of the fast mean over H, W against a direct sum.
  auto out = RunAllKernelsAndCompare(
      MakeNode("ReduceMean", 1, 1, {{"axes", Attribute::Ints({2, 3})}}), 13, {x});
  ASSERT_FALSE(out.empty());
  double sum = 0;
  for (int64_t i = 0; i < 784; ++i) sum += x.GetAsDouble(5 * 64 * 784 + 7 * 784 + i);
  EXPECT_NEAR(out[0].GetAsDouble(5 * 64 + 7), sum / 784, 1e-5);
}

TEST(ReduceTest, Errors) {
  ExpectError(MakeNode("ReduceSum", 1, 1, {{"axes", Attribute::Ints({3})}}), 11, {X()},
              "out of range");
  ExpectError(MakeNode("ReduceSum", 1, 1, {{"axes", Attribute::Ints({-1})}}), 7, {X()},
              "opset >= 11");
  ExpectError(MakeNode("ReduceMean", 2, 1), 18, {X(), I64({1, 1})}, "more than once");
  // Before opset 18 ReduceMean has no axes input.
  ExpectError(MakeNode("ReduceMean", 2, 1), 13, {X(), I64({1})}, "inputs");
}

TEST(ArgTest, MaxMinAndSelectLast) {
  // numpy: np.argmax(x, axis=1)
  Expect(MakeNode("ArgMax", 1, 1, {{"axis", Attribute::Int(1)}, {"keepdims", Attribute::Int(0)}}),
         13, {X()}, Values({2, 2, 2, 2, 2, 2, 2, 2}, {2, 4}, DataType::kInt64));
  Tensor y = Values({1, 3, 3, 2, 5, 5, 0, 5}, {2, 4});
  // numpy: 3 - np.argmax(y[:, ::-1], axis=1) (last index of the max)
  Expect(MakeNode("ArgMax", 1, 1,
                  {{"axis", Attribute::Int(-1)}, {"select_last_index", Attribute::Int(1)}}),
         12, {y}, Values({2, 3}, {2, 1}, DataType::kInt64));
  Expect(MakeNode("ArgMax", 1, 1, {{"axis", Attribute::Int(-1)}}), 12, {y},
         Values({1, 0}, {2, 1}, DataType::kInt64));
  // numpy: np.argmin(y, axis=1)
  Expect(MakeNode("ArgMin", 1, 1, {{"axis", Attribute::Int(1)}, {"keepdims", Attribute::Int(0)}}),
         11, {y}, Values({0, 2}, {2}, DataType::kInt64));
  // select_last_index does not exist before opset 12.
  Expect(MakeNode("ArgMax", 1, 1,
                  {{"axis", Attribute::Int(1)}, {"select_last_index", Attribute::Int(1)}}),
         11, {y}, Values({1, 0}, {2, 1}, DataType::kInt64));
  Expect(MakeNode("ArgMin", 1, 1), 13, {Values({4, 2, 7, 1}, {4}, DataType::kInt32)},
         Values({3}, {1}, DataType::kInt64));
  ExpectError(MakeNode("ArgMax", 1, 1, {{"axis", Attribute::Int(2)}}), 13, {y}, "out of range");
  ExpectError(MakeNode("ArgMax", 1, 1, {{"axis", Attribute::Int(1)}}), 13,
              {Tensor::Allocate(DataType::kFloat32, {2, 0})}, "empty axis");
}

}  // namespace
}  // namespace lasgd
