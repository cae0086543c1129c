// Tests for ops/shape.cc and ops/shape_movement.cc. Expected values marked
// "numpy" were printed by numpy 1.x from the expression in the comment, with
// x = np.arange(24).reshape(2, 3, 4) and y = np.arange(1, 7).reshape(2, 3).
#include <climits>

#include "common/status.h"
#include "ops/evaluate_node.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

// 0, 1, 2, ... in `dtype`.
Tensor Arange(Shape shape, DataType dtype = DataType::kFloat32) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, static_cast<double>(i));
  return t;
}

Tensor Values(std::vector<double> v, Shape shape, DataType dtype = DataType::kFloat32) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, v[i]);
  return t;
}

Tensor I64(std::vector<int64_t> v) {
  Shape s{static_cast<int64_t>(v.size())};
  return Tensor::FromInt64s(v, s);
}

// Runs every kernel and checks output 0 against `expected`.
void ExpectOutput(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                  const Tensor& expected) {
  auto out = RunAllKernelsAndCompare(node, opset, inputs);
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(expected, out[0], 0, 0));
}

// Expects evaluation to fail with a message containing `needle`.
void ExpectError(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                 const std::string& needle) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_NE(std::string(out.status().message()).find(needle), std::string::npos)
      << out.status().message();
}

// Runs only the shape function with input `missing` not known at compile time.
absl::Status InferWithoutValue(const graph::Node& node, int64_t opset,
                               const std::vector<Tensor>& inputs, size_t missing) {
  auto schema = ops::OpRegistry::Global().Find(node, opset);
  if (!schema.ok()) return schema.status();
  std::vector<const Tensor*> values;
  std::vector<DataType> dtypes;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    values.push_back(i == missing ? nullptr : &inputs[i]);
    dtypes.push_back(inputs[i].dtype());
    shapes.push_back(inputs[i].shape());
  }
  ops::InferenceContext ctx(node, opset, values, dtypes, shapes);
  return ops::InferNode(**schema, ctx);
}

TEST(ReshapeTest, ZeroCopiesDimAndMinusOneInfers) {
  auto node = MakeNode("Reshape", 2, 1);
  Tensor x = Arange({2, 3, 4});
  auto out = RunAllKernelsAndCompare(node, 13, {x, I64({0, -1, 2})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{2, 6, 2}));
  EXPECT_TRUE(TensorsNear(x.Reshaped({2, 6, 2}), out[0], 0, 0));
}

TEST(ReshapeTest, AllowZeroKeepsZero) {
  auto node = MakeNode("Reshape", 2, 1, {{"allowzero", Attribute::Int(1)}});
  auto out = RunAllKernelsAndCompare(node, 14, {Arange({0, 3}), I64({3, 0})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{3, 0}));
  // Before opset 14 the attribute does not exist, so 0 copies input dim 1 (3).
  ExpectError(MakeNode("Reshape", 2, 1, {{"allowzero", Attribute::Int(1)}}), 13,
              {Arange({0, 3}), I64({3, 0})}, "to [3,3]");
  ExpectError(node, 14, {Arange({2, 3}), I64({0, -1})}, "both -1 and 0");
}

TEST(ReshapeTest, Errors) {
  auto node = MakeNode("Reshape", 2, 1);
  ExpectError(node, 13, {Arange({2, 3}), I64({4, -1})}, "cannot reshape");
  ExpectError(node, 13, {Arange({2, 3}), I64({-1, -1})}, "more than one -1");
  absl::Status s = InferWithoutValue(node, 13, {Arange({2, 3}), I64({6})}, 1);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("depends on input 1 ('shape')"), std::string::npos)
      << s.message();
}

TEST(FlattenTest, AxesIncludingNegative) {
  Tensor x = Arange({2, 3, 4, 5});
  auto out =
      RunAllKernelsAndCompare(MakeNode("Flatten", 1, 1, {{"axis", Attribute::Int(0)}}), 9, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{1, 120}));
  out = RunAllKernelsAndCompare(MakeNode("Flatten", 1, 1, {{"axis", Attribute::Int(-1)}}), 11, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{24, 5}));
  EXPECT_TRUE(TensorsNear(x.Reshaped({24, 5}), out[0], 0, 0));
  ExpectError(MakeNode("Flatten", 1, 1, {{"axis", Attribute::Int(-1)}}), 9, {x}, "opset >= 11");
  ExpectError(MakeNode("Flatten", 1, 1, {{"axis", Attribute::Int(5)}}), 13, {x}, "out of range");
}

TEST(TransposeTest, SmallKnownValues) {
  Tensor x = Arange({2, 3, 4});
  // numpy: x.transpose(0, 2, 1)
  ExpectOutput(
      MakeNode("Transpose", 1, 1, {{"perm", Attribute::Ints({0, 2, 1})}}), 13, {x},
      Values({0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 16, 20, 13, 17, 21, 14, 18, 22, 15, 19, 23},
             {2, 4, 3}));
  // numpy: x.transpose()
  ExpectOutput(
      MakeNode("Transpose", 1, 1), 13, {x},
      Values({0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15, 7, 19, 11, 23},
             {4, 3, 2}));
}

TEST(TransposeTest, LargeAndOddDtypesMatchReference) {
  // Big enough for the tiled and threaded paths; several element sizes.
  for (DataType dt : {DataType::kFloat32, DataType::kUint8, DataType::kInt64, DataType::kInt16,
                      DataType::kBool}) {
    Tensor x = RandomTensor({2, 37, 64, 33}, 7, 0.f, 1.f, dt);
    for (auto perm : std::vector<std::vector<int64_t>>{
             {0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 3, 2}}) {
      auto node = MakeNode("Transpose", 1, 1, {{"perm", Attribute::Ints(perm)}});
      auto out = RunAllKernelsAndCompare(node, 13, {x});
      ASSERT_FALSE(out.empty());
      // Spot-check one element by hand: out[i] = x[idx permuted].
      Shape in_strides = ContiguousStrides(x.shape());
      Shape os = out[0].shape();
      std::vector<int64_t> idx = {1, 5, 7, 3};
      int64_t lin = 0, src = 0;
      std::vector<int64_t> out_strides = ContiguousStrides(os);
      for (int d = 0; d < 4; ++d) {
        int64_t i = idx[d] % os[d];
        lin += i * out_strides[d];
        src += i * in_strides[perm[d]];
      }
      EXPECT_EQ(out[0].GetAsDouble(lin), x.GetAsDouble(src));
    }
  }
}

TEST(TransposeTest, BadPerm) {
  Tensor x = Arange({2, 3});
  ExpectError(MakeNode("Transpose", 1, 1, {{"perm", Attribute::Ints({0, 0})}}), 13, {x},
              "not a permutation");
  ExpectError(MakeNode("Transpose", 1, 1, {{"perm", Attribute::Ints({0, 1, 2})}}), 13, {x},
              "rank 2");
}

TEST(ConcatTest, NegativeAxisAndMismatch) {
  Tensor x = Arange({2, 3, 4}), y = Tensor::Allocate(DataType::kFloat32, {2, 3, 2});
  for (int64_t i = 0; i < 12; ++i) y.SetFromDouble(i, 100 + (i / 2) * 4 + i % 2);
  auto node = MakeNode("Concat", 2, 1, {{"axis", Attribute::Int(-1)}});
  // numpy: np.concatenate([x, x[:, :, :2] + 100], axis=-1)
  ExpectOutput(
      node, 13, {x, y},
      Values({0,  1,  2,  3,  100, 101, 4,  5,  6,  7,  104, 105, 8,  9,  10, 11, 108, 109,
              12, 13, 14, 15, 112, 113, 16, 17, 18, 19, 116, 117, 20, 21, 22, 23, 120, 121},
             {2, 3, 6}));
  ExpectError(node, 7, {x, y}, "opset >= 11");
  ExpectError(MakeNode("Concat", 2, 1, {{"axis", Attribute::Int(1)}}), 13, {x, y},
              "does not match");
  ExpectError(MakeNode("Concat", 2, 1), 13, {x, x}, "'axis' is required");
  // Large, several inputs including an empty one, int64.
  Tensor a = RandomTensor({4, 50, 300}, 1, -5, 5, DataType::kInt64);
  Tensor b = RandomTensor({4, 0, 300}, 2, -5, 5, DataType::kInt64);
  Tensor c = RandomTensor({4, 70, 300}, 3, -5, 5, DataType::kInt64);
  auto out = RunAllKernelsAndCompare(MakeNode("Concat", 3, 1, {{"axis", Attribute::Int(1)}}), 13,
                                     {a, b, c});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{4, 120, 300}));
  EXPECT_EQ(out[0].GetAsDouble(1 * 120 * 300 + 60 * 300 + 7),
            c.GetAsDouble(1 * 70 * 300 + 10 * 300 + 7));
}

TEST(SplitTest, AttributeInputAndNumOutputs) {
  Tensor x = Arange({2, 7});
  // Opset 11: split attribute, negative axis.
  auto node =
      MakeNode("Split", 1, 2, {{"axis", Attribute::Int(-1)}, {"split", Attribute::Ints({3, 4})}});
  auto out = RunAllKernelsAndCompare(node, 11, {x});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(Values({0, 1, 2, 7, 8, 9}, {2, 3}), out[0], 0, 0));
  EXPECT_TRUE(TensorsNear(Values({3, 4, 5, 6, 10, 11, 12, 13}, {2, 4}), out[1], 0, 0));
  // Opset 13: split input.
  node = MakeNode("Split", 2, 3, {{"axis", Attribute::Int(1)}});
  out = RunAllKernelsAndCompare(node, 13, {x, I64({1, 0, 6})});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].shape(), (Shape{2, 0}));
  EXPECT_TRUE(TensorsNear(Values({0, 7}, {2, 1}), out[0], 0, 0));
  // Opset 18: num_outputs with an uneven last chunk (ceil(7/3) = 3: 3, 3, 1).
  node = MakeNode("Split", 1, 3, {{"axis", Attribute::Int(1)}, {"num_outputs", Attribute::Int(3)}});
  out = RunAllKernelsAndCompare(node, 18, {x});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_TRUE(TensorsNear(Values({6, 13}, {2, 1}), out[2], 0, 0));
  // Equal split without sizes.
  out = RunAllKernelsAndCompare(MakeNode("Split", 1, 2), 13, {x});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(Values({0, 1, 2, 3, 4, 5, 6}, {1, 7}), out[0], 0, 0));
}

TEST(SplitTest, Errors) {
  Tensor x = Arange({2, 7});
  ExpectError(MakeNode("Split", 1, 3, {{"axis", Attribute::Int(1)}}), 13, {x}, "opset >= 18");
  ExpectError(MakeNode("Split", 2, 2, {{"axis", Attribute::Int(1)}}), 13, {x, I64({3, 3})},
              "sums to 6");
  ExpectError(
      MakeNode("Split", 1, 2, {{"axis", Attribute::Int(1)}, {"num_outputs", Attribute::Int(3)}}),
      18, {x}, "num_outputs is 3");
  ExpectError(MakeNode("Split", 1, 2, {{"axis", Attribute::Int(-1)}}), 7, {Arange({2, 8})},
              "opset >= 11");
}

TEST(SliceTest, NegativeStepsAndClamping) {
  Tensor x = Arange({2, 3, 4});
  auto node = MakeNode("Slice", 5, 1);
  // numpy: x[:, 2::-2, -1:-4:-1]
  ExpectOutput(node, 13, {x, I64({2, -1}), I64({INT64_MIN, -4}), I64({1, -1}), I64({-2, -1})},
               Values({11, 10, 9, 3, 2, 1, 23, 22, 21, 15, 14, 13}, {2, 2, 3}));
  // Starts clamp to 0 and ends to the dim: numpy x[:, -1000:1000][:, 1:] == x[:, 1:].
  ExpectOutput(MakeNode("Slice", 3, 1), 13, {x, I64({0, 1}), I64({INT64_MAX, 1000})},
               Values({4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23}, {2, 2, 4}));
  // An empty result when start >= end.
  auto out =
      RunAllKernelsAndCompare(MakeNode("Slice", 4, 1), 13, {x, I64({3}), I64({1}), I64({2})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{2, 3, 0}));
  // int32 starts/ends.
  Tensor s32 = Values({1}, {1}, DataType::kInt32), e32 = Values({2}, {1}, DataType::kInt32);
  ExpectOutput(MakeNode("Slice", 3, 1), 13, {x, s32, e32},
               Values({12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, {1, 3, 4}));
}

TEST(SliceTest, AttributesBeforeOpset10) {
  Tensor x = Arange({2, 3, 4});
  auto node = MakeNode("Slice", 1, 1,
                       {{"starts", Attribute::Ints({1, 0})},
                        {"ends", Attribute::Ints({3, -1})},
                        {"axes", Attribute::Ints({1, 2})}});
  // numpy: x[:, 1:3, 0:-1]
  ExpectOutput(node, 9, {x}, Values({4, 5, 6, 8, 9, 10, 16, 17, 18, 20, 21, 22}, {2, 2, 3}));
  ExpectError(MakeNode("Slice", 1, 1), 9, {x}, "'starts' and 'ends'");
}

TEST(SliceTest, LargeMatchesReference) {
  Tensor x = RandomTensor({3, 64, 40, 50}, 11);
  auto out = RunAllKernelsAndCompare(
      MakeNode("Slice", 5, 1), 13,
      {x, I64({1, 60, 3}), I64({3, 2, 49}), I64({0, 1, -1}), I64({1, -3, 2})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{2, 20, 40, 23}));
}

TEST(SliceTest, Errors) {
  Tensor x = Arange({2, 3});
  ExpectError(MakeNode("Slice", 5, 1), 13, {x, I64({0}), I64({1}), I64({0}), I64({0})},
              "steps[0] is 0");
  ExpectError(MakeNode("Slice", 4, 1), 13, {x, I64({0, 0}), I64({1, 1}), I64({0, 0})},
              "more than once");
  ExpectError(MakeNode("Slice", 4, 1), 10, {x, I64({0}), I64({1}), I64({-1})}, "opset >= 11");
  ExpectError(MakeNode("Slice", 3, 1), 13, {x, I64({0}), I64({1, 2})}, "ends has 2");
  absl::Status s = InferWithoutValue(MakeNode("Slice", 3, 1), 13, {x, I64({0}), I64({1})}, 2);
  EXPECT_NE(std::string(s.message()).find("input 2 ('ends')"), std::string::npos) << s.message();
}

TEST(SqueezeTest, AttributeAndInput) {
  Tensor x = Arange({1, 3, 1, 2});
  auto out = RunAllKernelsAndCompare(MakeNode("Squeeze", 1, 1), 11, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
  out = RunAllKernelsAndCompare(MakeNode("Squeeze", 1, 1, {{"axes", Attribute::Ints({-2})}}), 11,
                                {x});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{1, 3, 2}));
  out = RunAllKernelsAndCompare(MakeNode("Squeeze", 2, 1), 13, {x, I64({0})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{3, 1, 2}));
  EXPECT_TRUE(TensorsNear(x.Reshaped({3, 1, 2}), out[0], 0, 0));
  ExpectError(MakeNode("Squeeze", 2, 1), 13, {x, I64({1})}, "not 1");
  ExpectError(MakeNode("Squeeze", 1, 1, {{"axes", Attribute::Ints({-1})}}), 7, {x}, "opset >= 11");
}

TEST(UnsqueezeTest, AttributeAndInput) {
  Tensor x = Arange({3, 2});
  auto out = RunAllKernelsAndCompare(
      MakeNode("Unsqueeze", 1, 1, {{"axes", Attribute::Ints({0, -1})}}), 11, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{1, 3, 2, 1}));
  out = RunAllKernelsAndCompare(MakeNode("Unsqueeze", 2, 1), 13, {x, I64({1, 3})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{3, 1, 2, 1}));
  ExpectError(MakeNode("Unsqueeze", 2, 1), 13, {x, I64({4})}, "out of range");
  ExpectError(MakeNode("Unsqueeze", 2, 1), 13, {x, I64({1, 1})}, "more than once");
  ExpectError(MakeNode("Unsqueeze", 1, 1), 11, {x}, "needs axes");
}

TEST(GatherTest, AxisAndNegativeIndices) {
  Tensor x = Arange({2, 3, 4});
  // numpy: np.take(x, [2, -3, 0], axis=1)
  ExpectOutput(
      MakeNode("Gather", 2, 1, {{"axis", Attribute::Int(1)}}), 13, {x, I64({2, -3, 0})},
      Values({8, 9, 10, 11, 0, 1, 2, 3, 0, 1, 2, 3, 20, 21, 22, 23, 12, 13, 14, 15, 12, 13, 14, 15},
             {2, 3, 4}));
  // 2-D int32 indices on axis 0.
  Tensor idx = Values({1, 0, 1, 1}, {2, 2}, DataType::kInt32);
  auto out = RunAllKernelsAndCompare(MakeNode("Gather", 2, 1), 13, {x, idx});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{2, 2, 3, 4}));
  EXPECT_EQ(out[0].GetAsDouble(0), 12);
  EXPECT_EQ(out[0].GetAsDouble(12), 0);
  // Scalar index drops the axis.
  out = RunAllKernelsAndCompare(MakeNode("Gather", 2, 1, {{"axis", Attribute::Int(-1)}}), 13,
                                {x, Tensor::FromInt64s({3}, {})});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({3, 7, 11, 15, 19, 23}, {2, 3}), out[0], 0, 0));
  ExpectError(MakeNode("Gather", 2, 1), 13, {x, I64({2})}, "out of range");
  ExpectError(MakeNode("Gather", 2, 1, {{"axis", Attribute::Int(3)}}), 13, {x, I64({0})},
              "out of range");
}

TEST(ShapeTest, StartEndAndSize) {
  Tensor x = Arange({2, 3, 4});
  ExpectOutput(MakeNode("Shape", 1, 1), 13, {x}, I64({2, 3, 4}));
  ExpectOutput(MakeNode("Shape", 1, 1, {{"start", Attribute::Int(-1)}}), 15, {x}, I64({4}));
  ExpectOutput(MakeNode("Shape", 1, 1, {{"start", Attribute::Int(1)}, {"end", Attribute::Int(2)}}),
               15, {x}, I64({3}));
  ExpectOutput(
      MakeNode("Shape", 1, 1, {{"end", Attribute::Int(10)}, {"start", Attribute::Int(-10)}}), 15,
      {x}, I64({2, 3, 4}));
  // start/end do not exist before opset 15.
  ExpectOutput(MakeNode("Shape", 1, 1, {{"start", Attribute::Int(1)}}), 13, {x}, I64({2, 3, 4}));
  ExpectOutput(MakeNode("Size", 1, 1), 13, {x}, Tensor::FromInt64s({24}, {}));
}

TEST(ExpandTest, BroadcastsBothWays) {
  Tensor x = Values({1, 2, 3}, {3, 1});
  // numpy: np.broadcast_to(x, (2, 3, 4))
  ExpectOutput(
      MakeNode("Expand", 2, 1), 13, {x, I64({2, 1, 4})},
      Values({1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, {2, 3, 4}));
  // A shape of 1s keeps the input's dims.
  ExpectOutput(MakeNode("Expand", 2, 1), 8, {x, I64({1, 1})}, x);
  Tensor big = RandomTensor({1, 64, 1, 1}, 3);
  auto out = RunAllKernelsAndCompare(MakeNode("Expand", 2, 1), 13, {big, I64({8, 64, 30, 30})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].GetAsDouble(5 * 64 * 900 + 17 * 900 + 123), big.GetAsDouble(17));
  ExpectError(MakeNode("Expand", 2, 1), 13, {x, I64({2, 2})}, "do not broadcast");
}

TEST(TileTest, Repeats) {
  // numpy: np.tile([[1, 2], [3, 4]], (2, 3))
  ExpectOutput(
      MakeNode("Tile", 2, 1), 13, {Values({1, 2, 3, 4}, {2, 2}), I64({2, 3})},
      Values({1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4}, {4, 6}));
  auto out = RunAllKernelsAndCompare(MakeNode("Tile", 2, 1), 13,
                                     {RandomTensor({3, 50, 40}, 5), I64({2, 1, 3})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{6, 50, 120}));
  ExpectError(MakeNode("Tile", 2, 1), 13, {Arange({2, 2}), I64({2})}, "rank 2");
}

TEST(PadTest, Modes) {
  Tensor y = Values({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor fill = Tensor::FromFloats({9.5f}, {});
  // numpy: np.pad(y, ((1, 0), (2, 1)), constant_values=9.5)
  ExpectOutput(
      MakeNode("Pad", 3, 1), 13, {y, I64({1, 2, 0, 1}), fill},
      Values({9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 1, 2, 3, 9.5, 9.5, 9.5, 4, 5, 6, 9.5},
             {3, 6}));
  // numpy: np.pad(y, ((1, 1), (2, 2)), 'reflect')
  ExpectOutput(
      MakeNode("Pad", 2, 1, {{"mode", Attribute::String("reflect")}}), 13, {y, I64({1, 2, 1, 2})},
      Values({6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1},
             {4, 7}));
  // numpy: np.pad(y, ((0, 1), (2, 0)), 'edge')
  ExpectOutput(MakeNode("Pad", 2, 1, {{"mode", Attribute::String("edge")}}), 13,
               {y, I64({0, 2, 1, 0})},
               Values({1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 4, 4, 4, 5, 6}, {3, 5}));
  // numpy: np.pad(y, ((1, 0), (1, 2)), 'wrap')
  ExpectOutput(MakeNode("Pad", 2, 1, {{"mode", Attribute::String("wrap")}}), 19,
               {y, I64({1, 1, 0, 2})},
               Values({6, 4, 5, 6, 4, 5, 3, 1, 2, 3, 1, 2, 6, 4, 5, 6, 4, 5}, {3, 6}));
  // Negative pads crop first: numpy np.pad(y[:, 1:], ((0, 0), (0, 2)), 'reflect')
  ExpectOutput(MakeNode("Pad", 2, 1, {{"mode", Attribute::String("reflect")}}), 13,
               {y, I64({0, -1, 0, 2})}, Values({2, 3, 2, 3, 5, 6, 5, 6}, {2, 4}));
  ExpectError(MakeNode("Pad", 2, 1, {{"mode", Attribute::String("wrap")}}), 18,
              {y, I64({0, 0, 0, 0})}, "opset 19");
}

TEST(PadTest, AttributesBeforeOpset11AndAxes) {
  Tensor y = Values({1, 2, 3, 4, 5, 6}, {2, 3});
  auto node = MakeNode(
      "Pad", 1, 1, {{"pads", Attribute::Ints({1, 2, 0, 1})}, {"value", Attribute::Float(9.5f)}});
  ExpectOutput(
      node, 7, {y},
      Values({9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 1, 2, 3, 9.5, 9.5, 9.5, 4, 5, 6, 9.5},
             {3, 6}));
  // Opset 18 axes: pad only the last axis by (1, 1) with zeros.
  auto with_axes = MakeNode("Pad", 4, 1);
  with_axes.inputs[2].clear();  // constant_value omitted
  ExpectOutput(with_axes, 18, {y, I64({1, 1}), Tensor(), I64({-1})},
               Values({0, 1, 2, 3, 0, 0, 4, 5, 6, 0}, {2, 5}));
  // int64 data, large, through the threaded fast path.
  Tensor big = RandomTensor({4, 30, 60, 60}, 9, -100, 100, DataType::kInt64);
  for (std::string mode : {"constant", "reflect", "edge"}) {
    auto out = RunAllKernelsAndCompare(MakeNode("Pad", 2, 1, {{"mode", Attribute::String(mode)}}),
                                       13, {big, I64({0, 0, 3, 2, 0, 1, -1, 5})});
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out[0].shape(), (Shape{4, 31, 62, 67}));
  }
  ExpectError(MakeNode("Pad", 2, 1), 13, {y, I64({1, 1})}, "expected 2 * 2");
  ExpectError(MakeNode("Pad", 2, 1), 13, {y, I64({0, -4, 0, 0})}, "crop more");
  ExpectError(MakeNode("Pad", 2, 1, {{"mode", Attribute::String("mirror")}}), 13,
              {y, I64({0, 0, 0, 0})}, "'mirror'");
}

TEST(ConstantOfShapeTest, ValueAndDefault) {
  ExpectOutput(MakeNode("ConstantOfShape", 1, 1), 9, {I64({2, 2})}, Values({0, 0, 0, 0}, {2, 2}));
  auto node = MakeNode("ConstantOfShape", 1, 1,
                       {{"value", Attribute::FromTensor(Tensor::FromInt64s({7}, {1}))}});
  ExpectOutput(node, 20, {I64({3})}, I64({7, 7, 7}));
  auto out = RunAllKernelsAndCompare(node, 20, {I64({})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), Shape{});
  ExpectError(node, 20, {I64({2, -1})}, "negative");
}

TEST(RangeTest, FloatAndInt) {
  auto node = MakeNode("Range", 3, 1);
  ExpectOutput(node, 11,
               {Tensor::FromFloats({1.f}, {}), Tensor::FromFloats({2.f}, {}),
                Tensor::FromFloats({0.25f}, {})},
               Values({1, 1.25, 1.5, 1.75}, {4}));
  ExpectOutput(
      node, 11,
      {Tensor::FromInt64s({10}, {}), Tensor::FromInt64s({3}, {}), Tensor::FromInt64s({-3}, {})},
      I64({10, 7, 4}));
  auto out = RunAllKernelsAndCompare(
      node, 11,
      {Tensor::FromInt64s({3}, {}), Tensor::FromInt64s({1}, {}), Tensor::FromInt64s({2}, {})});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].shape(), (Shape{0}));
  ExpectError(
      node, 11,
      {Tensor::FromInt64s({3}, {}), Tensor::FromInt64s({1}, {}), Tensor::FromInt64s({0}, {})},
      "delta is 0");
  ExpectError(
      node, 11,
      {Tensor::FromInt64s({3}, {}), Tensor::FromFloats({1}, {}), Tensor::FromInt64s({1}, {})},
      "share a dtype");
}

}  // namespace
}  // namespace lasgd
