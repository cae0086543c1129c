// Tests for Conv, ConvTranspose and com.lasgd FusedConv (ops/conv*.cc).
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

// ((i % mod) - offset) * scale, the pattern the expected values below were
// computed from (numpy / torch scripts quoted next to each test).
Tensor Pattern(Shape shape, int mod, float offset, float scale = 1.f) {
  Tensor t = Tensor::Allocate(DataType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.data<float>()[i] = (static_cast<float>(i % mod) - offset) * scale;
  }
  return t;
}

Tensor Floats(std::vector<float> values, Shape shape) {
  return Tensor::FromFloats(values, std::move(shape));
}

// Runs every kernel against the reference and, for float32 nodes, insists
// that the oneDNN kernel really accepted the node (RunAllKernelsAndCompare
// silently skips candidates that decline).
std::vector<Tensor> CompareKernels(const graph::Node& node, int64_t opset,
                                   const std::vector<Tensor>& inputs, bool expect_onednn = true) {
  if (expect_onednn) {
    auto onednn = ops::EvaluateNode(node, opset, inputs, {"onednn"});
    EXPECT_TRUE(onednn.ok()) << onednn.status();
  }
  return RunAllKernelsAndCompare(node, opset, inputs, 1e-4, 1e-4);
}

graph::Node FusedConvNode(int num_inputs, Attrs attrs) {
  graph::Node node = MakeNode("FusedConv", num_inputs, 1, std::move(attrs));
  node.domain = "com.lasgd";
  return node;
}

// ---- Conv: hand-checked values ----

TEST(ConvTest, Simple2x2KernelWithBias) {
  // X = 0..8 as 3x3, W = ones 2x2: each output sums a 2x2 block, plus bias 1.
  graph::Node node = MakeNode("Conv", 3, 1);
  std::vector<Tensor> out = CompareKernels(
      node, 13,
      {Pattern({1, 1, 3, 3}, 100, 0), Floats({1, 1, 1, 1}, {1, 1, 2, 2}), Floats({1}, {1})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({9, 13, 21, 25}, {1, 1, 2, 2}), out[0]));
}

TEST(ConvTest, StridesAndPaddingMatchOnnxBackendTest) {
  // onnx backend test "conv_with_strides_padding": X = arange(35) as 7x5,
  // W = ones 3x3, strides 2, pads 1.
  graph::Node node = MakeNode("Conv", 2, 1,
                              {{"kernel_shape", Attribute::Ints({3, 3})},
                               {"pads", Attribute::Ints({1, 1, 1, 1})},
                               {"strides", Attribute::Ints({2, 2})}});
  std::vector<Tensor> out = CompareKernels(
      node, 11, {Pattern({1, 1, 7, 5}, 1000, 0), Floats(std::vector<float>(9, 1.f), {1, 1, 3, 3})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(
      Floats({12, 27, 24, 63, 108, 81, 123, 198, 141, 112, 177, 124}, {1, 1, 4, 3}), out[0]));
}

TEST(ConvTest, AutoPadSameLowerMatchesOnnxBackendTest) {
  // onnx backend test "conv_with_autopad_same": X = arange(25) as 5x5,
  // W = ones 3x3, auto_pad SAME_LOWER, strides 2.
  graph::Node node = MakeNode(
      "Conv", 2, 1,
      {{"auto_pad", Attribute::String("SAME_LOWER")}, {"strides", Attribute::Ints({2, 2})}});
  std::vector<Tensor> out = CompareKernels(
      node, 11, {Pattern({1, 1, 5, 5}, 1000, 0), Floats(std::vector<float>(9, 1.f), {1, 1, 3, 3})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({12, 27, 24, 63, 108, 81, 72, 117, 84}, {1, 1, 3, 3}), out[0]));
}

TEST(ConvTest, AutoPadSameUpperPutsOddPadAtEnd) {
  // X = 0..3 (1D), W = [1, 1], SAME_UPPER: total pad 1, at the end, so
  // y = [0+1, 1+2, 2+3, 3+0].
  graph::Node node = MakeNode("Conv", 2, 1, {{"auto_pad", Attribute::String("SAME_UPPER")}});
  std::vector<Tensor> out =
      CompareKernels(node, 11, {Pattern({1, 1, 4}, 100, 0), Floats({1, 1}, {1, 1, 2})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 3, 5, 3}, {1, 1, 4}), out[0]));
  // SAME_LOWER pads at the start: y = [0+0, 0+1, 1+2, 2+3].
  node.attributes["auto_pad"] = Attribute::String("SAME_LOWER");
  out = CompareKernels(node, 11, {Pattern({1, 1, 4}, 100, 0), Floats({1, 1}, {1, 1, 2})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0, 1, 3, 5}, {1, 1, 4}), out[0]));
}

TEST(ConvTest, GroupedDilatedAsymmetricPads1dMatchesOnnxReference) {
  // Computed with onnx.reference (and checked with torch.nn.functional.conv1d
  // on the padded input): x = ((arange(28) % 7) - 3) as 1x4x7,
  // w = ((arange(24) % 5) - 2) * 0.5 as 4x2x3, b = [0.5, -1, 2, 0],
  // group 2, dilations [2], pads [1, 2], strides [2].
  graph::Node node = MakeNode("Conv", 3, 1,
                              {{"group", Attribute::Int(2)},
                               {"dilations", Attribute::Ints({2})},
                               {"pads", Attribute::Ints({1, 2})},
                               {"strides", Attribute::Ints({2})}});
  std::vector<Tensor> out = CompareKernels(
      node, 13,
      {Pattern({1, 4, 7}, 7, 3), Pattern({4, 2, 3}, 5, 2, 0.5f), Floats({0.5f, -1, 2, 0}, {4})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(
      TensorsNear(Floats({-0.5f, -0.5f, 1.5f, 1, -2, -3, 2, 6, 2, -2, -1, 2}, {1, 4, 3}), out[0]));
}

TEST(ConvTest, Float64ReferenceMatchesFloat32) {
  graph::Node node = MakeNode(
      "Conv", 3, 1, {{"pads", Attribute::Ints({1, 0, 0, 1})}, {"group", Attribute::Int(2)}});
  std::vector<Tensor> in32 = {RandomTensor({2, 4, 5, 6}, 1), RandomTensor({6, 2, 3, 2}, 2),
                              RandomTensor({6}, 3)};
  std::vector<Tensor> in64 = {RandomTensor({2, 4, 5, 6}, 1, -1, 1, DataType::kFloat64),
                              RandomTensor({6, 2, 3, 2}, 2, -1, 1, DataType::kFloat64),
                              RandomTensor({6}, 3, -1, 1, DataType::kFloat64)};
  auto out32 = ops::EvaluateNode(node, 13, in32, {"reference"});
  auto out64 = ops::EvaluateNode(node, 13, in64, {"reference"});
  ASSERT_TRUE(out32.ok()) << out32.status();
  ASSERT_TRUE(out64.ok()) << out64.status();
  EXPECT_EQ((*out64)[0].dtype(), DataType::kFloat64);
  EXPECT_EQ((*out64)[0].shape(), (Shape{2, 6, 4, 6}));
  std::vector<double> a = (*out32)[0].ToDoubleVector(), b = (*out64)[0].ToDoubleVector();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
  // oneDNN declines float64 and says why.
  auto onednn = ops::EvaluateNode(node, 13, in64, {"onednn"});
  EXPECT_FALSE(onednn.ok());
  EXPECT_NE(std::string(onednn.status().message()).find("float32"), std::string::npos);
}

// ---- Conv: oneDNN against the reference on many configurations ----

struct ConvCase {
  std::string name;
  Shape x, w;
  bool bias;
  Attrs attrs;
};

std::vector<ConvCase> ConvCases() {
  using A = Attribute;
  return {
      {"plain3x3", {2, 3, 8, 8}, {4, 3, 3, 3}, true, {}},
      {"pads1", {1, 3, 7, 9}, {5, 3, 3, 3}, true, {{"pads", A::Ints({1, 1, 1, 1})}}},
      {"asym_pads", {1, 4, 7, 6}, {4, 4, 3, 2}, false, {{"pads", A::Ints({0, 2, 1, 1})}}},
      {"stride2",
       {2, 8, 9, 9},
       {16, 8, 3, 3},
       true,
       {{"strides", A::Ints({2, 2})}, {"pads", A::Ints({1, 1, 1, 1})}}},
      {"stride_hw",
       {1, 3, 11, 10},
       {6, 3, 5, 3},
       true,
       {{"strides", A::Ints({3, 2})}, {"pads", A::Ints({2, 0, 1, 1})}}},
      {"dilation2",
       {1, 4, 10, 10},
       {8, 4, 3, 3},
       true,
       {{"dilations", A::Ints({2, 2})}, {"pads", A::Ints({2, 2, 2, 2})}}},
      {"dilation_hw", {1, 2, 9, 12}, {3, 2, 2, 3}, false, {{"dilations", A::Ints({3, 2})}}},
      {"one_by_one", {2, 16, 5, 5}, {32, 16, 1, 1}, true, {}},
      {"one_by_one_stride2", {1, 8, 8, 8}, {16, 8, 1, 1}, false, {{"strides", A::Ints({2, 2})}}},
      {"group2",
       {1, 8, 6, 6},
       {6, 4, 3, 3},
       true,
       {{"group", A::Int(2)}, {"pads", A::Ints({1, 1, 1, 1})}}},
      {"group4", {2, 16, 7, 7}, {8, 4, 3, 3}, true, {{"group", A::Int(4)}}},
      {"depthwise",
       {2, 16, 9, 9},
       {16, 1, 3, 3},
       true,
       {{"group", A::Int(16)}, {"pads", A::Ints({1, 1, 1, 1})}}},
      {"depthwise_stride2",
       {1, 32, 10, 10},
       {32, 1, 3, 3},
       false,
       {{"group", A::Int(32)}, {"strides", A::Ints({2, 2})}, {"pads", A::Ints({0, 0, 1, 1})}}},
      {"depthwise_multiplier", {1, 4, 6, 6}, {8, 1, 3, 3}, true, {{"group", A::Int(4)}}},
      {"same_upper_s2",
       {1, 3, 10, 7},
       {4, 3, 3, 3},
       true,
       {{"auto_pad", A::String("SAME_UPPER")}, {"strides", A::Ints({2, 2})}}},
      {"same_lower_even_kernel",
       {1, 3, 6, 6},
       {4, 3, 4, 2},
       true,
       {{"auto_pad", A::String("SAME_LOWER")}}},
      {"valid",
       {1, 3, 8, 7},
       {4, 3, 3, 3},
       true,
       {{"auto_pad", A::String("VALID")},
        {"strides", A::Ints({2, 1})},
        {"pads", A::Ints({5, 5, 5, 5})}}},
      {"kernel_shape_attr", {1, 2, 5, 5}, {3, 2, 3, 3}, false, {{"kernel_shape", A::Ints({3, 3})}}},
      {"wide_channels", {1, 64, 8, 8}, {64, 64, 3, 3}, true, {{"pads", A::Ints({1, 1, 1, 1})}}},
      {"conv1d",
       {2, 3, 17},
       {5, 3, 4},
       true,
       {{"strides", A::Ints({2})}, {"pads", A::Ints({1, 2})}}},
      {"conv1d_dilated_group",
       {1, 6, 20},
       {6, 2, 3},
       true,
       {{"group", A::Int(3)}, {"dilations", A::Ints({3})}}},
      {"conv3d",
       {1, 2, 5, 6, 7},
       {4, 2, 3, 3, 3},
       true,
       {{"pads", A::Ints({1, 0, 1, 1, 1, 0})}, {"strides", A::Ints({1, 2, 2})}}},
      {"conv3d_group_dilated",
       {1, 4, 6, 6, 6},
       {4, 2, 2, 2, 2},
       false,
       {{"group", A::Int(2)}, {"dilations", A::Ints({2, 1, 2})}}},
  };
}

TEST(ConvTest, OnednnMatchesReferenceOnManyConfigurations) {
  uint32_t seed = 10;
  for (const ConvCase& c : ConvCases()) {
    SCOPED_TRACE(c.name);
    graph::Node node = MakeNode("Conv", c.bias ? 3 : 2, 1, c.attrs);
    std::vector<Tensor> inputs = {RandomTensor(c.x, seed++), RandomTensor(c.w, seed++)};
    if (c.bias) inputs.push_back(RandomTensor({c.w[0]}, seed++));
    std::vector<Tensor> out = CompareKernels(node, 11, inputs);
    ASSERT_EQ(out.size(), 1u);
  }
}

TEST(ConvTest, KernelRunsRepeatedlyOnNewData) {
  // A plan builds a kernel once and runs it every step with new inputs.
  graph::Node node =
      MakeNode("Conv", 3, 1,
               {{"pads", Attribute::Ints({1, 1, 1, 1})}, {"strides", Attribute::Ints({2, 2})}});
  auto schema = ops::OpRegistry::Global().Find(node, 13);
  ASSERT_TRUE(schema.ok());
  Shape xs = {2, 8, 9, 9}, ws = {16, 8, 3, 3}, bs = {16}, ys = {2, 16, 5, 5};
  ops::KernelBuildContext bctx{node,
                               13,
                               {DataType::kFloat32, DataType::kFloat32, DataType::kFloat32},
                               {xs, ws, bs},
                               {DataType::kFloat32},
                               {ys},
                               {}};
  for (const char* name : {"onednn", "reference"}) {
    SCOPED_TRACE(name);
    auto kernel = ops::BuildKernel(**schema, bctx, name, nullptr, nullptr);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    for (uint32_t step = 0; step < 3; ++step) {
      std::vector<Tensor> in = {RandomTensor(xs, 100 + step), RandomTensor(ws, 200 + step),
                                RandomTensor(bs, 300 + step)};
      Tensor y = Tensor::Allocate(DataType::kFloat32, ys);
      ops::KernelContext kctx(node, {&in[0], &in[1], &in[2]}, {&y});
      ASSERT_TRUE((*kernel)->Run(kctx).ok());
      auto expected = ops::EvaluateNode(node, 13, in, {"reference"});
      ASSERT_TRUE(expected.ok());
      EXPECT_TRUE(TensorsNear((*expected)[0], y, 1e-4, 1e-4)) << "step " << step;
    }
  }
}

TEST(ConvTest, FlopsFollowTheFormula) {
  graph::Node node = MakeNode("Conv", 2, 1, {{"group", Attribute::Int(2)}});
  auto schema = ops::OpRegistry::Global().Find(node, 13);
  ASSERT_TRUE(schema.ok());
  ASSERT_TRUE((*schema)->flops);
  // 2 * N * Cout * out_h * out_w * (Cin / group) * kh * kw
  double flops = (*schema)->flops(node, {{2, 8, 10, 10}, {6, 4, 3, 3}}, {{2, 6, 8, 8}});
  EXPECT_DOUBLE_EQ(flops, 2.0 * 2 * 6 * 64 * 4 * 9);
}

// ---- Conv: bad input ----

::testing::AssertionResult FailsWith(const graph::Node& node, int64_t opset,
                                     const std::vector<Tensor>& inputs, const std::string& needle) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  if (out.ok())
    return ::testing::AssertionFailure() << "expected an error mentioning '" << needle << "'";
  std::string message(out.status().message());
  if (message.find(needle) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "error '" << message << "' does not mention '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

TEST(ConvTest, RejectsBadInputsWithHelpfulMessages) {
  Tensor x = RandomTensor({1, 4, 6, 6}, 1), w = RandomTensor({8, 4, 3, 3}, 2);
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1), 13, {RandomTensor({4, 6}, 1), w}, "rank 3 to 5"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1), 13, {x, RandomTensor({8, 4, 3}, 2)}, "rank of X"));
  EXPECT_TRUE(
      FailsWith(MakeNode("Conv", 2, 1), 13, {x, RandomTensor({8, 3, 3, 3}, 2)}, "input channels"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1, {{"group", Attribute::Int(3)}}), 13, {x, w},
                        "divisible by group"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1, {{"auto_pad", Attribute::String("SAME")}}), 13,
                        {x, w}, "auto_pad"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1, {{"strides", Attribute::Ints({1, 0})}}), 13, {x, w},
                        "'strides'"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1, {{"pads", Attribute::Ints({1, 1})}}), 13, {x, w},
                        "expected 4"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1, {{"kernel_shape", Attribute::Ints({5, 5})}}), 13,
                        {x, w}, "kernel_shape"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 3, 1), 13, {x, w, RandomTensor({4}, 3)},
                        "bias B must have shape [8]"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1), 13, {x, RandomTensor({8, 4, 7, 7}, 2)},
                        "larger than the padded input"));
  EXPECT_TRUE(FailsWith(MakeNode("Conv", 2, 1), 13,
                        {x, RandomTensor({8, 4, 3, 3}, 2, -1, 1, DataType::kFloat64)}, "dtype"));
}

// ---- FusedConv ----

TEST(FusedConvTest, ResidualAndReluHandChecked) {
  // Same conv as Simple2x2KernelWithBias ([9, 13, 21, 25]) plus
  // Z = [-10, -20, 0, 1], then Relu: [0, 0, 21, 26].
  graph::Node node = FusedConvNode(4, {{"activation", Attribute::String("Relu")}});
  std::vector<Tensor> out =
      CompareKernels(node, 1,
                     {Pattern({1, 1, 3, 3}, 100, 0), Floats({1, 1, 1, 1}, {1, 1, 2, 2}),
                      Floats({1}, {1}), Floats({-10, -20, 0, 1}, {1, 1, 2, 2})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0, 0, 21, 26}, {1, 1, 2, 2}), out[0]));
}

TEST(FusedConvTest, ClipActivationHandChecked) {
  // [9, 13, 21, 25] + Z = [-1, -7, 21, 26], clipped to [0, 22]: [0, 0, 21, 22].
  graph::Node node = FusedConvNode(4, {{"activation", Attribute::String("Clip")},
                                       {"clip_min", Attribute::Float(0.f)},
                                       {"clip_max", Attribute::Float(22.f)}});
  std::vector<Tensor> out =
      CompareKernels(node, 1,
                     {Pattern({1, 1, 3, 3}, 100, 0), Floats({1, 1, 1, 1}, {1, 1, 2, 2}),
                      Floats({1}, {1}), Floats({-10, -20, 0, 1}, {1, 1, 2, 2})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({0, 0, 21, 22}, {1, 1, 2, 2}), out[0]));
  // Without bounds Clip changes nothing; without Z and activation it is a Conv.
  graph::Node open = FusedConvNode(3, {{"activation", Attribute::String("Clip")}});
  out = CompareKernels(
      open, 1,
      {Pattern({1, 1, 3, 3}, 100, 0), Floats({1, 1, 1, 1}, {1, 1, 2, 2}), Floats({-30}, {1})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({-22, -18, -10, -6}, {1, 1, 2, 2}), out[0]));
}

TEST(FusedConvTest, OnednnMatchesReferenceWithAndWithoutResidual) {
  uint32_t seed = 500;
  for (const ConvCase& c : ConvCases()) {
    for (int variant = 0; variant < 5; ++variant) {
      // 0: Relu only, 1: Z only, 2: Z then Relu, 3: Clip only, 4: Z then Clip.
      SCOPED_TRACE(absl::StrCat(c.name, " variant ", variant));
      Attrs attrs = c.attrs;
      if (variant == 0 || variant == 2) attrs["activation"] = Attribute::String("Relu");
      if (variant >= 3) {
        attrs["activation"] = Attribute::String("Clip");
        attrs["clip_min"] = Attribute::Float(-0.3f);
        attrs["clip_max"] = Attribute::Float(0.6f);
      }
      auto shape = ops::EvaluateNode(MakeNode("Conv", 2, 1, c.attrs), 11,
                                     {RandomTensor(c.x, 1), RandomTensor(c.w, 2)}, {"reference"});
      ASSERT_TRUE(shape.ok()) << shape.status();
      std::vector<Tensor> inputs = {RandomTensor(c.x, seed++), RandomTensor(c.w, seed++),
                                    c.bias ? RandomTensor({c.w[0]}, seed++) : Tensor()};
      if (variant == 1 || variant == 2 || variant == 4)
        inputs.push_back(RandomTensor((*shape)[0].shape(), seed++));
      graph::Node node = FusedConvNode(static_cast<int>(inputs.size()), attrs);
      if (!c.bias) node.inputs[2] = "";
      CompareKernels(node, 1, inputs);
    }
  }
}

TEST(FusedConvTest, ResidualMayShareTheOutputBuffer) {
  // The memory planner may let Z and Y share storage (in-place add).
  graph::Node node = FusedConvNode(
      4, {{"activation", Attribute::String("Relu")}, {"pads", Attribute::Ints({1, 1, 1, 1})}});
  auto schema = ops::OpRegistry::Global().Find(node, 1);
  ASSERT_TRUE(schema.ok());
  Shape xs = {1, 16, 6, 6}, ws = {16, 16, 3, 3}, bs = {16};
  std::vector<Tensor> in = {RandomTensor(xs, 1), RandomTensor(ws, 2), RandomTensor(bs, 3),
                            RandomTensor(xs, 4)};
  auto expected = ops::EvaluateNode(node, 1, in, {"reference"});
  ASSERT_TRUE(expected.ok()) << expected.status();
  ops::KernelBuildContext bctx{
      node, 1, std::vector<DataType>(4, DataType::kFloat32), {xs, ws, bs, xs}, {DataType::kFloat32},
      {xs}, {}};
  for (const char* name : {"onednn", "reference"}) {
    SCOPED_TRACE(name);
    auto kernel = ops::BuildKernel(**schema, bctx, name, nullptr, nullptr);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    Tensor y = in[3].Clone();
    ops::KernelContext kctx(node, {&in[0], &in[1], &in[2], &y}, {&y});
    ASSERT_TRUE((*kernel)->Run(kctx).ok());
    EXPECT_TRUE(TensorsNear((*expected)[0], y, 1e-4, 1e-4));
  }
}

TEST(FusedConvTest, ConstantWeightsArePreparedOnce) {
  // Weights the plan marks constant are reordered into oneDNN's layout on the
  // first run and reused: a later run ignores the tensor it is handed.
  graph::Node node = FusedConvNode(
      3, {{"activation", Attribute::String("Relu")}, {"pads", Attribute::Ints({1, 1, 1, 1})}});
  auto schema = ops::OpRegistry::Global().Find(node, 1);
  ASSERT_TRUE(schema.ok());
  Shape xs = {2, 16, 7, 7}, ws = {16, 16, 3, 3}, bs = {16};
  Tensor x = RandomTensor(xs, 1), w = RandomTensor(ws, 2), b = RandomTensor(bs, 3);
  Tensor other_w = RandomTensor(ws, 4);
  auto expected = ops::EvaluateNode(node, 1, {x, w, b}, {"reference"});
  ASSERT_TRUE(expected.ok()) << expected.status();
  ops::KernelBuildContext bctx{node,
                               1,
                               std::vector<DataType>(3, DataType::kFloat32),
                               {xs, ws, bs},
                               {DataType::kFloat32},
                               {expected->at(0).shape()},
                               {nullptr, &w, &b}};
  auto kernel = ops::BuildKernel(**schema, bctx, "onednn", nullptr, nullptr);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  for (const Tensor* weights : {&w, &w, &other_w}) {
    Tensor y = Tensor::Allocate(DataType::kFloat32, expected->at(0).shape());
    ops::KernelContext kctx(node, {&x, weights, &b}, {&y});
    ASSERT_TRUE((*kernel)->Run(kctx).ok());
    EXPECT_TRUE(TensorsNear((*expected)[0], y, 1e-4, 1e-4));
  }
}

TEST(FusedConvTest, RejectsBadActivationAndResidualShape) {
  Tensor x = RandomTensor({1, 2, 4, 4}, 1), w = RandomTensor({3, 2, 3, 3}, 2);
  EXPECT_TRUE(FailsWith(FusedConvNode(2, {{"activation", Attribute::String("Sigmoid")}}), 1, {x, w},
                        "activation"));
  EXPECT_TRUE(FailsWith(FusedConvNode(2, {{"activation", Attribute::String("Clip")},
                                          {"clip_min", Attribute::Float(1.f)},
                                          {"clip_max", Attribute::Float(0.f)}}),
                        1, {x, w}, "clip_min <= clip_max"));
  graph::Node node = FusedConvNode(4, {});
  node.inputs[2] = "";
  EXPECT_TRUE(
      FailsWith(node, 1, {x, w, Tensor(), RandomTensor({1, 3, 3, 3}, 3)}, "residual input Z"));
}

// ---- ConvTranspose ----

TEST(ConvTransposeTest, MatchesOnnxBackendTest) {
  // onnx backend test "convtranspose": X = arange(9) as 3x3, W = ones 1x2x3x3.
  graph::Node node = MakeNode("ConvTranspose", 2, 1);
  std::vector<Tensor> out = CompareKernels(
      node, 11, {Pattern({1, 1, 3, 3}, 100, 0), Floats(std::vector<float>(18, 1.f), {1, 2, 3, 3})});
  ASSERT_EQ(out.size(), 1u);
  std::vector<float> plane = {0,  1,  3, 3,  2,  3,  8,  15, 12, 7,  9,  21, 36,
                              27, 15, 9, 20, 33, 24, 13, 6,  13, 21, 15, 8};
  std::vector<float> expected = plane;
  expected.insert(expected.end(), plane.begin(), plane.end());
  EXPECT_TRUE(TensorsNear(Floats(expected, {1, 2, 5, 5}), out[0]));
}

TEST(ConvTransposeTest, OutputShapeLargerThanNaturalMatchesOnnxReference) {
  // onnx backend test "convtranspose_output_shape" (values from
  // onnx.reference): strides [3, 2], output_shape [10, 8]; the natural output
  // is 9x7, so the last row and column only get the (zero) bias.
  graph::Node node =
      MakeNode("ConvTranspose", 2, 1,
               {{"strides", Attribute::Ints({3, 2})}, {"output_shape", Attribute::Ints({10, 8})}});
  std::vector<Tensor> out = CompareKernels(
      node, 11, {Pattern({1, 1, 3, 3}, 100, 0), Floats(std::vector<float>(18, 1.f), {1, 2, 3, 3})},
      /*expect_onednn=*/true);
  ASSERT_EQ(out.size(), 1u);
  std::vector<float> plane = {0,  0, 1, 1, 3, 2, 2,  0, 0,  0, 1,  1, 3,  2, 2, 0, 0, 0, 1,  1,
                              3,  2, 2, 0, 3, 3, 7,  4, 9,  5, 5,  0, 3,  3, 7, 4, 9, 5, 5,  0,
                              3,  3, 7, 4, 9, 5, 5,  0, 6,  6, 13, 7, 15, 8, 8, 0, 6, 6, 13, 7,
                              15, 8, 8, 0, 6, 6, 13, 7, 15, 8, 8,  0, 0,  0, 0, 0, 0, 0, 0,  0};
  std::vector<float> expected = plane;
  expected.insert(expected.end(), plane.begin(), plane.end());
  EXPECT_TRUE(TensorsNear(Floats(expected, {1, 2, 10, 8}), out[0]));
}

TEST(ConvTransposeTest, GroupedDilatedOutputPaddingMatchesTorch) {
  // torch.nn.functional.conv_transpose1d(x, w, b, stride=2, padding=0,
  // output_padding=1, groups=2, dilation=2)[:, :, 1:] (pads [1, 0] crop one
  // pixel at the start) with x = ((arange(12) % 5) - 2) as 1x4x3,
  // w = ((arange(8) % 3) - 1) as 4x1x2, b = [1, -1].
  graph::Node node = MakeNode("ConvTranspose", 3, 1,
                              {{"group", Attribute::Int(2)},
                               {"strides", Attribute::Ints({2})},
                               {"dilations", Attribute::Ints({2})},
                               {"output_padding", Attribute::Ints({1})},
                               {"pads", Attribute::Ints({1, 0})}});
  std::vector<Tensor> out = CompareKernels(
      node, 11, {Pattern({1, 4, 3}, 5, 2), Pattern({4, 1, 2}, 3, 1), Floats({1, -1}, {2})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(
      TensorsNear(Floats({1, 3, 1, -3, 1, 3, 1, -1, 0, -1, 0, -1, 0, -1}, {1, 2, 7}), out[0]));
}

TEST(ConvTransposeTest, OutputShapeFormulas) {
  Tensor x = RandomTensor({1, 2, 3, 4}, 1), w = RandomTensor({2, 3, 3, 3}, 2);
  struct Case {
    Attrs attrs;
    Shape expected;
  };
  std::vector<Case> cases = {
      // stride * (in - 1) + output_padding + (k - 1) * d + 1 - pads
      {{}, {1, 3, 5, 6}},
      {{{"strides", Attribute::Ints({2, 3})}}, {1, 3, 7, 12}},
      {{{"strides", Attribute::Ints({2, 3})}, {"output_padding", Attribute::Ints({1, 2})}},
       {1, 3, 8, 14}},
      {{{"strides", Attribute::Ints({2, 2})}, {"pads", Attribute::Ints({1, 0, 0, 2})}},
       {1, 3, 6, 7}},
      {{{"dilations", Attribute::Ints({2, 1})}, {"group", Attribute::Int(2)}}, {1, 6, 7, 6}},
      // SAME_*: input * stride.
      {{{"strides", Attribute::Ints({2, 2})}, {"auto_pad", Attribute::String("SAME_UPPER")}},
       {1, 3, 6, 8}},
      {{{"strides", Attribute::Ints({2, 2})}, {"auto_pad", Attribute::String("SAME_LOWER")}},
       {1, 3, 6, 8}},
      {{{"output_shape", Attribute::Ints({4, 5})}}, {1, 3, 4, 5}},
      // Some exporters give output_shape with N and C.
      {{{"output_shape", Attribute::Ints({1, 3, 4, 5})}}, {1, 3, 4, 5}},
  };
  for (const Case& c : cases) {
    graph::Node node = MakeNode("ConvTranspose", 2, 1, c.attrs);
    SCOPED_TRACE(ShapeToString(c.expected));
    auto out = ops::EvaluateNode(node, 11, {x, w}, {"reference"});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].shape(), c.expected);
  }
}

TEST(ConvTransposeTest, SamePadsFollowTheSpec) {
  // X = [1, 2] (1D), W = [1, 1, 1] (one channel), stride 2, SAME_*: output
  // 4, total padding = 2*1 + 3 - 4 = 1. The full output is
  // [1, 1, 3, 2, 2]; SAME_UPPER drops the last pixel, SAME_LOWER the first.
  Tensor x = Floats({1, 2}, {1, 1, 2}), w = Floats({1, 1, 1}, {1, 1, 3});
  graph::Node node =
      MakeNode("ConvTranspose", 2, 1,
               {{"strides", Attribute::Ints({2})}, {"auto_pad", Attribute::String("SAME_UPPER")}});
  std::vector<Tensor> out = CompareKernels(node, 11, {x, w});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 1, 3, 2}, {1, 1, 4}), out[0]));
  node.attributes["auto_pad"] = Attribute::String("SAME_LOWER");
  out = CompareKernels(node, 11, {x, w});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Floats({1, 3, 2, 2}, {1, 1, 4}), out[0]));
}

TEST(ConvTransposeTest, OnednnMatchesReferenceOnManyConfigurations) {
  using A = Attribute;
  struct Case {
    std::string name;
    Shape x, w;
    bool bias;
    Attrs attrs;
  };
  std::vector<Case> cases = {
      {"plain", {2, 3, 5, 5}, {3, 4, 3, 3}, true, {}},
      {"stride2", {1, 8, 6, 6}, {8, 4, 3, 3}, true, {{"strides", A::Ints({2, 2})}}},
      {"stride2_pads_outpad",
       {1, 4, 5, 7},
       {4, 6, 3, 3},
       true,
       {{"strides", A::Ints({2, 2})},
        {"pads", A::Ints({1, 1, 1, 1})},
        {"output_padding", A::Ints({1, 1})}}},
      {"asym_pads",
       {1, 3, 4, 4},
       {3, 2, 4, 3},
       false,
       {{"strides", A::Ints({2, 3})}, {"pads", A::Ints({0, 1, 2, 1})}}},
      {"outpad_beyond_pads",
       {1, 2, 4, 4},
       {2, 2, 3, 3},
       true,
       {{"strides", A::Ints({3, 2})}, {"output_padding", A::Ints({2, 1})}}},
      {"dilated",
       {1, 4, 5, 5},
       {4, 4, 3, 3},
       true,
       {{"dilations", A::Ints({2, 2})}, {"pads", A::Ints({1, 1, 1, 1})}}},
      {"group2",
       {2, 8, 5, 5},
       {8, 3, 3, 3},
       true,
       {{"group", A::Int(2)}, {"strides", A::Ints({2, 2})}}},
      {"depthwise",
       {1, 8, 6, 6},
       {8, 1, 4, 4},
       true,
       {{"group", A::Int(8)}, {"strides", A::Ints({2, 2})}, {"pads", A::Ints({1, 1, 1, 1})}}},
      {"same_upper",
       {1, 3, 5, 4},
       {3, 2, 3, 3},
       true,
       {{"strides", A::Ints({2, 2})}, {"auto_pad", A::String("SAME_UPPER")}}},
      {"same_lower",
       {1, 3, 5, 4},
       {3, 2, 4, 3},
       true,
       {{"strides", A::Ints({2, 2})}, {"auto_pad", A::String("SAME_LOWER")}}},
      {"output_shape",
       {1, 2, 4, 4},
       {2, 2, 3, 3},
       true,
       {{"strides", A::Ints({2, 2})}, {"output_shape", A::Ints({8, 9})}}},
      {"conv1d",
       {2, 3, 9},
       {3, 5, 3},
       true,
       {{"strides", A::Ints({3})}, {"pads", A::Ints({1, 0})}}},
      {"conv3d",
       {1, 2, 3, 4, 3},
       {2, 3, 2, 3, 3},
       true,
       {{"strides", A::Ints({2, 1, 2})}, {"pads", A::Ints({0, 1, 1, 1, 0, 0})}}},
  };
  uint32_t seed = 900;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    graph::Node node = MakeNode("ConvTranspose", c.bias ? 3 : 2, 1, c.attrs);
    std::vector<Tensor> inputs = {RandomTensor(c.x, seed++), RandomTensor(c.w, seed++)};
    int64_t group = c.attrs.count("group") ? c.attrs.at("group").i : 1;
    if (c.bias) inputs.push_back(RandomTensor({c.w[1] * group}, seed++));
    CompareKernels(node, 11, inputs);
  }
}

TEST(ConvTransposeTest, RejectsBadInputs) {
  Tensor x = RandomTensor({1, 4, 3, 3}, 1), w = RandomTensor({4, 2, 3, 3}, 2);
  EXPECT_TRUE(FailsWith(MakeNode("ConvTranspose", 2, 1), 11, {x, RandomTensor({3, 2, 3, 3}, 2)},
                        "input channels"));
  EXPECT_TRUE(
      FailsWith(MakeNode("ConvTranspose", 2, 1, {{"output_padding", Attribute::Ints({1, 1})}}), 11,
                {x, w}, "output_padding"));
  EXPECT_TRUE(
      FailsWith(MakeNode("ConvTranspose", 2, 1, {{"output_shape", Attribute::Ints({4, 4, 4})}}), 11,
                {x, w}, "output_shape"));
  EXPECT_TRUE(FailsWith(MakeNode("ConvTranspose", 2, 1, {{"pads", Attribute::Ints({3, 3, 3, 3})}}),
                        11, {x, w}, "empty output"));
  EXPECT_TRUE(FailsWith(MakeNode("ConvTranspose", 3, 1), 11, {x, w, RandomTensor({4}, 3)},
                        "bias B must have shape [2]"));
}

}  // namespace
}  // namespace lasgd
