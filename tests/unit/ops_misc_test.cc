// Tests for ops/misc.cc (Identity, Constant, Dropout, EyeLike) and the fill
// value conversion they share with the shape ops.
#include <cstring>

#include "ops/evaluate_node.h"
#include "ops/shape_util.h"
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

void ExpectError(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                 const std::string& needle) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_NE(std::string(out.status().message()).find(needle), std::string::npos)
      << out.status().message();
}

TEST(IdentityTest, CopiesAnyDtype) {
  Tensor x = Values({1, -2, 3}, {3}, DataType::kInt64);
  auto out = RunAllKernelsAndCompare(MakeNode("Identity", 1, 1), 16, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(x, out[0], 0, 0));
}

TEST(ConstantTest, ValueAttributes) {
  Tensor v = Values({1, 2, 3, 4}, {2, 2});
  auto out = RunAllKernelsAndCompare(
      MakeNode("Constant", 0, 1, {{"value", Attribute::FromTensor(v)}}), 9, {});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(v, out[0], 0, 0));
  out = RunAllKernelsAndCompare(
      MakeNode("Constant", 0, 1, {{"value_float", Attribute::Float(2.5f)}}), 13, {});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({2.5}, {}), out[0], 0, 0));
  out = RunAllKernelsAndCompare(
      MakeNode("Constant", 0, 1, {{"value_floats", Attribute::Floats({1.5f, -1})}}), 13, {});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({1.5, -1}, {2}), out[0], 0, 0));
  out = RunAllKernelsAndCompare(MakeNode("Constant", 0, 1, {{"value_int", Attribute::Int(-7)}}), 13,
                                {});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({-7}, {}, DataType::kInt64), out[0], 0, 0));
  out = RunAllKernelsAndCompare(
      MakeNode("Constant", 0, 1, {{"value_ints", Attribute::Ints({4, 5, 6})}}), 13, {});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({4, 5, 6}, {3}, DataType::kInt64), out[0], 0, 0));
}

TEST(ConstantTest, Errors) {
  ExpectError(MakeNode("Constant", 0, 1, {{"value_float", Attribute::Float(1)}}), 11, {},
              "opset >= 12");
  ExpectError(MakeNode("Constant", 0, 1,
                       {{"value_float", Attribute::Float(1)}, {"value_int", Attribute::Int(1)}}),
              13, {}, "exactly one");
  ExpectError(MakeNode("Constant", 0, 1), 13, {}, "got none");
  ExpectError(
      MakeNode("Constant", 0, 1, {{"sparse_value", Attribute::FromTensor(Values({1}, {1}))}}), 13,
      {}, "sparse_value");
}

TEST(DropoutTest, InferenceIsIdentityWithTrueMask) {
  Tensor x = RandomTensor({4, 5}, 1);
  for (int64_t opset : {7, 10, 12, 13}) {
    auto node = MakeNode("Dropout", 1, 2, {{"ratio", Attribute::Float(0.3f)}});
    if (opset >= 12) node.attributes.clear();
    auto out = RunAllKernelsAndCompare(node, opset, {x});
    ASSERT_EQ(out.size(), 2u) << opset;
    EXPECT_TRUE(TensorsNear(x, out[0], 0, 0));
    // The mask had the data's dtype before opset 10 and is bool since.
    EXPECT_EQ(out[1].dtype(), opset < 10 ? DataType::kFloat32 : DataType::kBool);
    for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(out[1].GetAsDouble(i), 1.0);
  }
  // training_mode = false explicitly.
  Tensor off = Values({0}, {}, DataType::kBool);
  auto out = RunAllKernelsAndCompare(MakeNode("Dropout", 3, 2), 13, {x, Values({0.5}, {}), off});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(x, out[0], 0, 0));
}

TEST(DropoutTest, TrainingDropsAndScales) {
  Tensor x = RandomTensor({100, 100}, 2, 0.5f, 1.5f);
  Tensor on = Values({1}, {}, DataType::kBool);
  auto node = MakeNode("Dropout", 3, 2, {{"seed", Attribute::Int(3)}});
  auto out = ops::EvaluateNode(node, 13, {x, Values({0.25}, {}), on});
  ASSERT_TRUE(out.ok()) << out.status();
  int64_t kept = 0;
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    bool keep = (*out)[1].GetAsDouble(i) != 0;
    kept += keep;
    double expected = keep ? x.GetAsDouble(i) / 0.75 : 0.0;
    ASSERT_NEAR((*out)[0].GetAsDouble(i), expected, 1e-5) << i;
  }
  EXPECT_GT(kept, 7200);
  EXPECT_LT(kept, 7800);
  // The same seed gives the same mask in a fresh kernel.
  auto again = ops::EvaluateNode(node, 13, {x, Values({0.25}, {}), on});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(TensorsNear((*out)[1], (*again)[1], 0, 0));
  // Ratio 0 in training mode is the identity.
  auto zero = ops::EvaluateNode(node, 13, {x, Values({0.0}, {}), on});
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(TensorsNear(x, (*zero)[0], 0, 0));
  ExpectError(node, 13, {x, Values({1.0}, {}), on}, "must be in [0, 1)");
  ExpectError(MakeNode("Dropout", 1, 1, {{"ratio", Attribute::Float(1.5f)}}), 10, {x},
              "must be in [0, 1)");
  ExpectError(MakeNode("Dropout", 3, 1), 13,
              {x, Values({0.5}, {}), Values({1}, {}, DataType::kInt64)}, "training_mode");
  auto schema = ops::OpRegistry::Global().Find(node, 13);
  ASSERT_TRUE(schema.ok());
  EXPECT_FALSE((*schema)->foldable);
}

TEST(EyeLikeTest, DiagonalAndDtype) {
  Tensor x = Tensor::Allocate(DataType::kFloat32, {3, 4});
  auto out = RunAllKernelsAndCompare(MakeNode("EyeLike", 1, 1, {{"k", Attribute::Int(1)}}), 9, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, {3, 4}), out[0], 0, 0));
  out = RunAllKernelsAndCompare(
      MakeNode("EyeLike", 1, 1, {{"k", Attribute::Int(-1)}, {"dtype", Attribute::Int(7)}}), 9, {x});
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(TensorsNear(Values({0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0}, {3, 4}, DataType::kInt64),
                          out[0], 0, 0));
  // float16 ones are 0x3c00.
  out = RunAllKernelsAndCompare(MakeNode("EyeLike", 1, 1, {{"dtype", Attribute::Int(10)}}), 9, {x});
  ASSERT_FALSE(out.empty());
  uint16_t first;
  std::memcpy(&first, out[0].raw_data(), 2);
  EXPECT_EQ(first, 0x3c00);
  ExpectError(MakeNode("EyeLike", 1, 1), 9, {Tensor::Allocate(DataType::kFloat32, {3})}, "2-D");
}

TEST(ElementBytesTest, HalfAndBFloat16Rounding) {
  // numpy: hex(np.array(v, dtype=np.float16).view(np.uint16))
  const std::vector<std::pair<double, uint16_t>> half = {
      {1.0, 0x3c00},  {65504, 0x7bff}, {1e-7, 0x2},    {0.1, 0x2e66},
      {-2.5, 0xc100}, {70000, 0x7c00}, {6e-8, 0x1},    {3e-8, 0x1},
      {1e-5, 0xa8},   {65519, 0x7bff}, {65520, 0x7c00}};
  for (auto [v, bits] : half) {
    auto b = ops::shape_internal::ElementBytes(DataType::kFloat16, v);
    uint16_t got;
    std::memcpy(&got, b.data(), 2);
    EXPECT_EQ(got, bits) << v;
  }
  // bfloat16 rounds the float32 bits to nearest even: 0.1f = 0x3dcccccd -> 0x3dcd.
  for (auto [v, bits] :
       std::vector<std::pair<double, uint16_t>>{{1.0, 0x3f80}, {0.1, 0x3dcd}, {-2.5, 0xc020}}) {
    auto b = ops::shape_internal::ElementBytes(DataType::kBFloat16, v);
    uint16_t got;
    std::memcpy(&got, b.data(), 2);
    EXPECT_EQ(got, bits) << v;
  }
}

}  // namespace
}  // namespace lasgd
