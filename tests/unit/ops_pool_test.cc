// Tests for MaxPool, AveragePool, LpPool and the Global* pools (ops/pool.cc).
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

Tensor Floats(std::vector<float> values, Shape shape) {
  return Tensor::FromFloats(values, std::move(shape));
}

// The 6x6 input of the torch-computed cases below:
//   x = ((arange(36) % 7) - 3) + arange(36) * 0.01, as 1x1x6x6.
Tensor SixBySix() {
  Tensor t = Tensor::Allocate(DataType::kFloat32, {1, 1, 6, 6});
  for (int i = 0; i < 36; ++i) t.data<float>()[i] = static_cast<float>(i % 7 - 3) + i * 0.01f;
  return t;
}

// Runs every kernel against the reference and insists that oneDNN accepted
// the node when `expect_onednn` (RunAllKernelsAndCompare skips decliners).
std::vector<Tensor> CompareKernels(const graph::Node& node, int64_t opset,
                                   const std::vector<Tensor>& inputs, bool expect_onednn = true) {
  if (expect_onednn) {
    auto onednn = ops::EvaluateNode(node, opset, inputs, {"onednn"});
    EXPECT_TRUE(onednn.ok()) << onednn.status();
  }
  return RunAllKernelsAndCompare(node, opset, inputs, 1e-5, 1e-5);
}

::testing::AssertionResult FailsWith(const graph::Node& node, int64_t opset,
                                     const std::vector<Tensor>& inputs, const std::string& needle) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  if (out.ok()) {
    return ::testing::AssertionFailure() << "expected an error mentioning '" << needle << "'";
  }
  std::string message(out.status().message());
  if (message.find(needle) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "error '" << message << "' does not mention '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

// ---- MaxPool ----

TEST(MaxPoolTest, CeilModeWithIndicesMatchesTorch) {
  // torch.nn.functional.max_pool2d(x, 3, 2, padding=1, ceil_mode=True,
  // return_indices=True) on SixBySix(): 4x4 output (floor mode gives 3x3).
  graph::Node node = MakeNode("MaxPool", 1, 2,
                              {{"kernel_shape", Attribute::Ints({3, 3})},
                               {"strides", Attribute::Ints({2, 2})},
                               {"pads", Attribute::Ints({1, 1, 1, 1})},
                               {"ceil_mode", Attribute::Int(1)}});
  std::vector<Tensor> out = CompareKernels(node, 12, {SixBySix()}, /*expect_onednn=*/false);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(Floats({3.06f, 0.03f, 2.05f, 2.05f, 3.13f, 3.2f, 1.11f, 1.11f, 2.19f,
                                  3.27f, 3.34f, -0.77f, 0.31f, 2.33f, 3.34f, -2.65f},
                                 {1, 1, 4, 4}),
                          out[0]));
  EXPECT_TRUE(
      TensorsNear(Tensor::FromInt64s({6, 3, 5, 5, 13, 20, 11, 11, 19, 27, 34, 23, 31, 33, 34, 35},
                                     {1, 1, 4, 4}),
                  out[1]));
  // Without the Indices output oneDNN takes the node and must agree.
  graph::Node values_only = node;
  values_only.outputs.resize(1);
  std::vector<Tensor> y = CompareKernels(values_only, 12, {SixBySix()});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_TRUE(TensorsNear(out[0], y[0]));
}

TEST(MaxPoolTest, LastCeilWindowMustStartInsideTheInput) {
  // in 5, kernel 2, stride 3, pads 1: ceil((5 + 2 - 2) / 3) + 1 = 3 windows,
  // but the third would start at 5 (past the input), so there are 2:
  // max(pad, 1) = 1 and max(2, -1) = 2 (torch agrees).
  graph::Node node = MakeNode("MaxPool", 1, 1,
                              {{"kernel_shape", Attribute::Ints({2})},
                               {"strides", Attribute::Ints({3})},
                               {"pads", Attribute::Ints({1, 1})},
                               {"ceil_mode", Attribute::Int(1)}});
  std::vector<Tensor> out = CompareKernels(node, 10, {Floats({1, 5, 2, -1, 7}, {1, 1, 5})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 2}, {1, 1, 2}), out[0]));
}

TEST(MaxPoolTest, IndicesStorageOrder) {
  // X = [[1, 9, 10], [8, 3, 4]], 2x2 windows: maxima 9 at (0, 1) and 10 at
  // (0, 2). Row-major indices 1 and 2; column-major (h + H * w) 2 and 4.
  Tensor x = Floats({1, 9, 10, 8, 3, 4}, {1, 1, 2, 3});
  graph::Node node = MakeNode("MaxPool", 1, 2, {{"kernel_shape", Attribute::Ints({2, 2})}});
  auto out = ops::EvaluateNode(node, 8, {x});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear(Floats({9, 10}, {1, 1, 1, 2}), (*out)[0]));
  EXPECT_TRUE(TensorsNear(Tensor::FromInt64s({1, 2}, {1, 1, 1, 2}), (*out)[1]));
  node.attributes["storage_order"] = Attribute::Int(1);
  out = ops::EvaluateNode(node, 8, {x});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear(Tensor::FromInt64s({2, 4}, {1, 1, 1, 2}), (*out)[1]));
}

TEST(MaxPoolTest, IndicesCountBatchAndChannels) {
  // N=2, C=2, 1x2 planes: indices are into the whole flattened input.
  graph::Node node = MakeNode("MaxPool", 1, 2, {{"kernel_shape", Attribute::Ints({1, 2})}});
  auto out = ops::EvaluateNode(node, 12, {Floats({1, 2, 4, 3, 5, 6, 8, 7}, {2, 2, 1, 2})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorsNear(Floats({2, 4, 6, 8}, {2, 2, 1, 1}), (*out)[0]));
  EXPECT_TRUE(TensorsNear(Tensor::FromInt64s({1, 2, 5, 6}, {2, 2, 1, 1}), (*out)[1]));
}

TEST(MaxPoolTest, DilationMatchesTorch) {
  // torch max_pool1d([-2, -1, 0, 1, 2, -2], 2, 1, dilation=2) = [0, 1, 2, 1].
  graph::Node node =
      MakeNode("MaxPool", 1, 1,
               {{"kernel_shape", Attribute::Ints({2})}, {"dilations", Attribute::Ints({2})}});
  std::vector<Tensor> out = CompareKernels(node, 12, {Floats({-2, -1, 0, 1, 2, -2}, {1, 1, 6})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0, 1, 2, 1}, {1, 1, 4}), out[0]));
}

TEST(MaxPoolTest, Int8AndUint8FromOpset12) {
  graph::Node node = MakeNode("MaxPool", 1, 1, {{"kernel_shape", Attribute::Ints({2})}});
  Tensor x8 = Tensor::Allocate(DataType::kInt8, {1, 1, 4});
  std::vector<int8_t> v = {-100, -7, 5, -128};
  for (int i = 0; i < 4; ++i) x8.data<int8_t>()[i] = v[i];
  auto out = ops::EvaluateNode(node, 12, {x8});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt8);
  EXPECT_EQ((*out)[0].ToDoubleVector(), (std::vector<double>{-7, 5, 5}));
  Tensor xu = Tensor::Allocate(DataType::kUint8, {1, 1, 3});
  std::vector<uint8_t> u = {200, 3, 255};
  for (int i = 0; i < 3; ++i) xu.data<uint8_t>()[i] = u[i];
  out = ops::EvaluateNode(node, 12, {xu});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].ToDoubleVector(), (std::vector<double>{200, 255}));
  // Before opset 12 MaxPool is float-only.
  EXPECT_TRUE(FailsWith(node, 11, {x8}, "floating-point"));
}

TEST(MaxPoolTest, OpsetDifferences) {
  Tensor x = RandomTensor({1, 2, 5, 5}, 3);
  // MaxPool-7 has no Indices output.
  graph::Node two_outputs = MakeNode("MaxPool", 1, 2, {{"kernel_shape", Attribute::Ints({2, 2})}});
  EXPECT_FALSE(ops::EvaluateNode(two_outputs, 7, {x}).ok());
  EXPECT_TRUE(ops::EvaluateNode(two_outputs, 8, {x}).ok());
  // ceil_mode exists from opset 10: before that it is not part of the op.
  graph::Node ceil = MakeNode("MaxPool", 1, 1,
                              {{"kernel_shape", Attribute::Ints({2, 2})},
                               {"strides", Attribute::Ints({2, 2})},
                               {"ceil_mode", Attribute::Int(1)}});
  auto floor_out = ops::EvaluateNode(ceil, 9, {x});
  auto ceil_out = ops::EvaluateNode(ceil, 10, {x});
  ASSERT_TRUE(floor_out.ok() && ceil_out.ok());
  EXPECT_EQ((*floor_out)[0].shape(), (Shape{1, 2, 2, 2}));
  EXPECT_EQ((*ceil_out)[0].shape(), (Shape{1, 2, 3, 3}));
}

// ---- AveragePool / LpPool ----

TEST(AveragePoolTest, CeilModeCountIncludePadMatchesTorch) {
  // torch avg_pool2d(x, 3, 2, padding=1, ceil_mode=True,
  // count_include_pad=True / False) on SixBySix(). The ceil-mode overhang
  // past the end padding does not count as padding.
  Attrs attrs = {{"kernel_shape", Attribute::Ints({3, 3})},
                 {"strides", Attribute::Ints({2, 2})},
                 {"pads", Attribute::Ints({1, 1, 1, 1})},
                 {"ceil_mode", Attribute::Int(1)},
                 {"count_include_pad", Attribute::Int(1)}};
  std::vector<Tensor> out = CompareKernels(MakeNode("AveragePool", 1, 1, attrs), 19, {SixBySix()},
                                           /*expect_onednn=*/false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(
      Floats({-0.54f, -0.966667f, 0.38f, 0.526667f, 0.972222f, -0.526667f, -0.84f, 0.085f,
              0.496667f, 1.48222f, -0.386667f, -0.855f, -0.065f, 0.66f, 0.503333f, -0.6625f},
             {1, 1, 4, 4}),
      out[0]));
  attrs["count_include_pad"] = Attribute::Int(0);
  out = CompareKernels(MakeNode("AveragePool", 1, 1, attrs), 19, {SixBySix()});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(
      TensorsNear(Floats({-1.215f, -1.45f, 0.57f, 1.58f, 1.45833f, -0.526667f, -0.84f, 0.17f,
                          0.745f, 1.48222f, -0.386667f, -1.71f, -0.195f, 1.32f, 1.00667f, -2.65f},
                         {1, 1, 4, 4}),
                  out[0]));
}

TEST(AveragePoolTest, AutoPadSame) {
  // X = [[1,2,3],[4,5,6],[7,8,9]], 2x2 kernel, stride 1, pads excluded.
  Tensor x = Floats({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  graph::Node node = MakeNode(
      "AveragePool", 1, 1,
      {{"kernel_shape", Attribute::Ints({2, 2})}, {"auto_pad", Attribute::String("SAME_UPPER")}});
  std::vector<Tensor> out = CompareKernels(node, 11, {x});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({3, 4, 4.5f, 6, 7, 7.5f, 7.5f, 8.5f, 9}, {1, 1, 3, 3}), out[0]));
  node.attributes["auto_pad"] = Attribute::String("SAME_LOWER");
  out = CompareKernels(node, 11, {x});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 1.5f, 2.5f, 2.5f, 3, 4, 5.5f, 6, 7}, {1, 1, 3, 3}), out[0]));
}

TEST(AveragePoolTest, DilationsOnlyFromOpset19) {
  // [0..5], kernel 2, dilation 2: averages of (0,2), (1,3), (2,4), (3,5).
  graph::Node node =
      MakeNode("AveragePool", 1, 1,
               {{"kernel_shape", Attribute::Ints({2})}, {"dilations", Attribute::Ints({2})}});
  Tensor x = Floats({0, 1, 2, 3, 4, 5}, {1, 1, 6});
  std::vector<Tensor> out = CompareKernels(node, 19, {x});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 2, 3, 4}, {1, 1, 4}), out[0]));
  out = CompareKernels(node, 18, {x});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0.5f, 1.5f, 2.5f, 3.5f, 4.5f}, {1, 1, 5}), out[0]));
}

TEST(LpPoolTest, P2AndP1) {
  // sqrt(3^2 + 4^2) = 5, sqrt(1 + 4) = 2.236068 (torch lp_pool1d agrees).
  graph::Node node = MakeNode(
      "LpPool", 1, 1, {{"kernel_shape", Attribute::Ints({2})}, {"strides", Attribute::Ints({2})}});
  std::vector<Tensor> out =
      CompareKernels(node, 18, {Floats({3, -4, 1, 2}, {1, 1, 4})}, /*expect_onednn=*/false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({5, 2.236068f}, {1, 1, 2}), out[0]));
  node.attributes["p"] = Attribute::Int(1);
  out = CompareKernels(node, 11, {Floats({3, -4, 1, 2}, {1, 1, 4})}, /*expect_onednn=*/false);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({7, 3}, {1, 1, 2}), out[0]));
}

// ---- Global pools ----

TEST(GlobalPoolTest, HandChecked) {
  Tensor x = Floats({1, 2, 3, 4, -1, -5, 0, 2}, {1, 2, 2, 2});
  auto avg = CompareKernels(MakeNode("GlobalAveragePool", 1, 1), 13, {x});
  auto max = CompareKernels(MakeNode("GlobalMaxPool", 1, 1), 13, {x});
  graph::Node lp = MakeNode("GlobalLpPool", 1, 1, {{"p", Attribute::Int(1)}});
  auto l1 = CompareKernels(lp, 13, {x}, /*expect_onednn=*/false);
  ASSERT_EQ(avg.size(), 1u);
  ASSERT_EQ(max.size(), 1u);
  ASSERT_EQ(l1.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({2.5f, -1}, {1, 2, 1, 1}), avg[0]));
  EXPECT_TRUE(TensorsNear(Floats({4, 2}, {1, 2, 1, 1}), max[0]));
  EXPECT_TRUE(TensorsNear(Floats({10, 8}, {1, 2, 1, 1}), l1[0]));
}

TEST(GlobalPoolTest, OnednnMatchesReference) {
  uint32_t seed = 40;
  for (Shape shape :
       {Shape{2, 3, 7}, Shape{4, 16, 7, 7}, Shape{1, 8, 1, 1}, Shape{2, 5, 3, 4, 5}}) {
    SCOPED_TRACE(ShapeToString(shape));
    for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"}) {
      std::vector<Tensor> out =
          CompareKernels(MakeNode(op, 1, 1), 13, {RandomTensor(shape, seed++)});
      ASSERT_EQ(out.size(), 1u);
      Shape expected = {shape[0], shape[1]};
      expected.resize(shape.size(), 1);
      EXPECT_EQ(out[0].shape(), expected);
    }
  }
}

// ---- oneDNN against the reference on many configurations ----

TEST(PoolTest, OnednnMatchesReferenceOnManyConfigurations) {
  using A = Attribute;
  struct Case {
    std::string name;
    Shape x;
    Attrs attrs;
  };
  std::vector<Case> cases = {
      {"k2s2", {2, 3, 8, 8}, {{"kernel_shape", A::Ints({2, 2})}, {"strides", A::Ints({2, 2})}}},
      // An odd plane: the last row and column belong to no window.
      {"k2s2_odd", {2, 3, 7, 9}, {{"kernel_shape", A::Ints({2, 2})}, {"strides", A::Ints({2, 2})}}},
      {"k2s2_ceil",
       {1, 3, 7, 9},
       {{"kernel_shape", A::Ints({2, 2})}, {"strides", A::Ints({2, 2})}, {"ceil_mode", A::Int(1)}}},
      {"k3s2p1",
       {1, 16, 9, 9},
       {{"kernel_shape", A::Ints({3, 3})},
        {"strides", A::Ints({2, 2})},
        {"pads", A::Ints({1, 1, 1, 1})}}},
      {"asym_pads",
       {1, 4, 7, 6},
       {{"kernel_shape", A::Ints({3, 2})}, {"pads", A::Ints({0, 1, 2, 1})}}},
      {"rect_stride",
       {2, 2, 9, 10},
       {{"kernel_shape", A::Ints({3, 3})}, {"strides", A::Ints({3, 2})}}},
      {"ceil",
       {1, 3, 7, 8},
       {{"kernel_shape", A::Ints({2, 3})}, {"strides", A::Ints({2, 2})}, {"ceil_mode", A::Int(1)}}},
      {"ceil_pads",
       {1, 3, 10, 10},
       {{"kernel_shape", A::Ints({3, 3})},
        {"strides", A::Ints({2, 3})},
        {"pads", A::Ints({1, 0, 1, 1})},
        {"ceil_mode", A::Int(1)}}},
      {"dilated",
       {1, 2, 9, 9},
       {{"kernel_shape", A::Ints({2, 3})},
        {"dilations", A::Ints({2, 2})},
        {"pads", A::Ints({1, 1, 1, 1})}}},
      {"dilated_ceil",
       {1, 2, 10, 9},
       {{"kernel_shape", A::Ints({3, 2})},
        {"dilations", A::Ints({2, 1})},
        {"strides", A::Ints({2, 2})},
        {"ceil_mode", A::Int(1)}}},
      {"same_upper",
       {1, 3, 7, 6},
       {{"kernel_shape", A::Ints({3, 3})},
        {"strides", A::Ints({2, 2})},
        {"auto_pad", A::String("SAME_UPPER")}}},
      {"same_lower",
       {1, 3, 6, 7},
       {{"kernel_shape", A::Ints({2, 2})}, {"auto_pad", A::String("SAME_LOWER")}}},
      {"valid",
       {1, 3, 7, 7},
       {{"kernel_shape", A::Ints({3, 3})},
        {"strides", A::Ints({2, 2})},
        {"auto_pad", A::String("VALID")}}},
      {"pool1d",
       {2, 5, 17},
       {{"kernel_shape", A::Ints({3})}, {"strides", A::Ints({2})}, {"pads", A::Ints({1, 1})}}},
      {"pool3d",
       {1, 2, 6, 7, 8},
       {{"kernel_shape", A::Ints({2, 3, 2})},
        {"strides", A::Ints({2, 2, 2})},
        {"pads", A::Ints({0, 1, 0, 1, 1, 0})}}},
      {"pool3d_ceil",
       {1, 2, 5, 5, 5},
       {{"kernel_shape", A::Ints({2, 2, 2})},
        {"strides", A::Ints({2, 2, 2})},
        {"ceil_mode", A::Int(1)}}},
  };
  uint32_t seed = 70;
  for (const Case& c : cases) {
    Tensor x = RandomTensor(c.x, seed++);
    const bool has_ceil = c.attrs.count("ceil_mode") > 0;
    for (const char* op : {"MaxPool", "AveragePool"}) {
      for (int include_pad = 0; include_pad < 2; ++include_pad) {
        if (std::string(op) == "MaxPool" && include_pad) continue;
        SCOPED_TRACE(absl::StrCat(c.name, " ", op, " count_include_pad=", include_pad));
        Attrs attrs = c.attrs;
        if (include_pad) attrs["count_include_pad"] = A::Int(1);
        // oneDNN declines only count_include_pad with a ceil-mode overhang.
        CompareKernels(MakeNode(op, 1, 1, attrs), 19, {x}, !(include_pad && has_ceil));
      }
    }
  }
}

TEST(PoolTest, Float64Reference) {
  graph::Node node = MakeNode("AveragePool", 1, 1,
                              {{"kernel_shape", Attribute::Ints({2, 2})},
                               {"pads", Attribute::Ints({1, 1, 1, 1})},
                               {"count_include_pad", Attribute::Int(1)}});
  Tensor x = Tensor::Allocate(DataType::kFloat64, {1, 1, 2, 2});
  for (int i = 0; i < 4; ++i) x.data<double>()[i] = i + 1;  // [[1,2],[3,4]]
  auto out = ops::EvaluateNode(node, 11, {x});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat64);
  // Every 2x2 window holds 4 taps (padding counts): corners x/4, edges sums/4.
  EXPECT_EQ((*out)[0].ToDoubleVector(),
            (std::vector<double>{0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0}));
}

// ---- bad input ----

TEST(PoolTest, RejectsBadInputsWithHelpfulMessages) {
  Tensor x = RandomTensor({1, 2, 5, 5}, 1);
  EXPECT_TRUE(FailsWith(MakeNode("MaxPool", 1, 1), 12, {x}, "kernel_shape"));
  EXPECT_TRUE(FailsWith(MakeNode("MaxPool", 1, 1, {{"kernel_shape", Attribute::Ints({2})}}), 12,
                        {x}, "expected 2"));
  EXPECT_TRUE(FailsWith(MakeNode("MaxPool", 1, 1, {{"kernel_shape", Attribute::Ints({2, 2})}}), 12,
                        {RandomTensor({5, 5}, 1)}, "rank 3 to 5"));
  EXPECT_TRUE(FailsWith(MakeNode("MaxPool", 1, 1, {{"kernel_shape", Attribute::Ints({6, 2})}}), 12,
                        {x}, "larger than the padded input"));
  EXPECT_TRUE(FailsWith(
      MakeNode("MaxPool", 1, 2,
               {{"kernel_shape", Attribute::Ints({2, 2})}, {"storage_order", Attribute::Int(2)}}),
      12, {x}, "storage_order"));
  EXPECT_TRUE(FailsWith(MakeNode("AveragePool", 1, 1,
                                 {{"kernel_shape", Attribute::Ints({2, 2})},
                                  {"auto_pad", Attribute::String("FULL")}}),
                        12, {x}, "auto_pad"));
  EXPECT_TRUE(FailsWith(
      MakeNode("AveragePool", 1, 1,
               {{"kernel_shape", Attribute::Ints({2, 2})}, {"strides", Attribute::Ints({0, 1})}}),
      12, {x}, "'strides'"));
  EXPECT_TRUE(FailsWith(MakeNode("AveragePool", 1, 1, {{"kernel_shape", Attribute::Ints({2, 2})}}),
                        12, {Tensor::FromInt64s({1, 2, 3, 4}, {1, 1, 2, 2})}, "floating-point"));
  EXPECT_TRUE(
      FailsWith(MakeNode("GlobalAveragePool", 1, 1), 12, {RandomTensor({4}, 1)}, "rank >= 2"));
  EXPECT_TRUE(
      FailsWith(MakeNode("LpPool", 1, 1,
                         {{"kernel_shape", Attribute::Ints({2, 2})}, {"p", Attribute::Int(0)}}),
                12, {x}, "'p'"));
}

}  // namespace
}  // namespace lasgd
