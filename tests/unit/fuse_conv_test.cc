// The Conv fusion pass (graph/passes/fuse_conv.cc): which chains become a
// com.lasgd FusedConv, which are left alone, and that fused plans compute
// what the unfused ones do.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "graph/passes/passes.h"
#include "gtest/gtest.h"
#include "runtime/executor.h"
#include "tests/op_test_util.h"

namespace lasgd::graph {
namespace {

ValueInfo Value(const std::string& name, Shape shape) {
  ValueInfo v;
  v.name = name;
  v.dtype = DataType::kFloat32;
  v.has_shape = !shape.empty();
  v.shape = std::move(shape);
  return v;
}

Node MakeOp(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
            std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.name = out[0] + "_node";
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

// x [1, 8, 6, 6] with weights w (8 -> 8, 3x3, pads 1) and scalar constants.
Graph Base(int64_t opset) {
  Graph g;
  g.opset_imports[""] = opset;
  g.inputs.push_back(Value("x", {1, 8, 6, 6}));
  g.initializers["w"] = testing::RandomTensor({8, 8, 3, 3}, 1, -0.3f, 0.3f);
  g.initializers["w2"] = testing::RandomTensor({8, 8, 3, 3}, 2, -0.3f, 0.3f);
  g.initializers["b"] = testing::RandomTensor({8}, 3);
  g.initializers["zero"] = Tensor::FromFloats({0.f}, {});
  g.initializers["six"] = Tensor::FromFloats({0.25f}, {});
  g.initializers["bias"] = testing::RandomTensor({8, 1, 1}, 4);
  g.constant_names = {"zero", "six"};
  return g;
}

Attribute Pads() { return Attribute::Ints({1, 1, 1, 1}); }

// Runs shape inference and the fusion pass; returns "op[activation]" per node.
std::vector<std::string> Fuse(Graph& g) {
  ShapeBinding binding;
  EXPECT_TRUE(InferShapesAndFoldConstants(g, binding).ok());
  absl::Status st = FuseConvActivations(g);
  EXPECT_TRUE(st.ok()) << st;
  std::vector<std::string> ops;
  for (const Node& n : g.nodes) {
    std::string s = n.op_type;
    if (n.op_type == "FusedConv") {
      s += "[" + n.GetString("activation", "") + (n.HasInput(3) ? "+Z" : "") + "]";
    }
    ops.push_back(s);
  }
  return ops;
}

// Output y of the graph compiled with and without fusion, on the same input.
void ExpectFusionKeepsResults(const Graph& g) {
  std::map<std::string, Tensor> feeds = {{"x", testing::RandomTensor({1, 8, 6, 6}, 7, -2, 2)}};
  std::vector<Tensor> results;
  for (bool fuse : {false, true}) {
    runtime::CompileOptions options;
    options.pipeline.fuse = fuse;
    auto ex = runtime::Executor::Create(g, options);
    ASSERT_TRUE(ex.ok()) << ex.status();
    auto out = (*ex)->Run(feeds);
    ASSERT_TRUE(out.ok()) << out.status();
    results.push_back(out->at("y"));
  }
  EXPECT_TRUE(testing::TensorsNear(results[0], results[1], 1e-5, 1e-5));
}

TEST(FuseConvTest, ConvClipWithConstantBoundsBecomesFusedClip) {
  // MobileNetV2's ReLU6 (here clipped to [0, 0.25] so that it bites).
  Graph g = Base(17);
  g.outputs.push_back(Value("y", {}));
  g.nodes = {MakeOp("Conv", {"x", "w", "b"}, {"c"}, {{"pads", Pads()}}),
             MakeOp("Clip", {"c", "zero", "six"}, {"y"})};
  Graph copy = g;
  EXPECT_EQ(Fuse(g), std::vector<std::string>({"FusedConv[Clip]"}));
  EXPECT_FLOAT_EQ(g.nodes[0].GetFloat("clip_min", -1), 0.f);
  EXPECT_FLOAT_EQ(g.nodes[0].GetFloat("clip_max", -1), 0.25f);
  EXPECT_EQ(g.nodes[0].outputs[0], "y");
  ExpectFusionKeepsResults(copy);
}

TEST(FuseConvTest, ClipBoundsFromAttributesBeforeOpset11) {
  Graph g = Base(10);
  g.outputs.push_back(Value("y", {}));
  g.nodes = {MakeOp("Conv", {"x", "w"}, {"c"}, {{"pads", Pads()}}),
             MakeOp("Clip", {"c"}, {"y"}, {{"min", Attribute::Float(-0.1f)}})};
  Graph copy = g;
  EXPECT_EQ(Fuse(g), std::vector<std::string>({"FusedConv[Clip]"}));
  EXPECT_FLOAT_EQ(g.nodes[0].GetFloat("clip_min", 0), -0.1f);
  ExpectFusionKeepsResults(copy);
}

TEST(FuseConvTest, ResidualAddWithoutActivation) {
  // MobileNetV2's inverted residual: y = x + conv(conv(x)); Add's operands
  // in either order.
  for (bool conv_first : {true, false}) {
    Graph g = Base(17);
    g.outputs.push_back(Value("y", {}));
    std::vector<std::string> add_in = {"c2", "x"};
    if (!conv_first) std::swap(add_in[0], add_in[1]);
    g.nodes = {MakeOp("Conv", {"x", "w"}, {"c1"}, {{"pads", Pads()}}),
               MakeOp("Conv", {"c1", "w2", "b"}, {"c2"}, {{"pads", Pads()}}),
               MakeOp("Add", add_in, {"y"})};
    Graph copy = g;
    EXPECT_EQ(Fuse(g), std::vector<std::string>({"Conv", "FusedConv[+Z]"}));
    EXPECT_EQ(g.nodes[1].inputs, std::vector<std::string>({"c1", "w2", "b", "x"}));
    ExpectFusionKeepsResults(copy);
  }
}

TEST(FuseConvTest, ResidualAddThenReluAndThenClip) {
  Graph g = Base(17);
  g.outputs.push_back(Value("y", {}));
  g.nodes = {MakeOp("Conv", {"x", "w"}, {"c1"}, {{"pads", Pads()}}), MakeOp("Relu", {"c1"}, {"r1"}),
             MakeOp("Conv", {"r1", "w2"}, {"c2"}, {{"pads", Pads()}}),
             MakeOp("Add", {"c2", "x"}, {"s"}), MakeOp("Clip", {"s", "zero", "six"}, {"y"})};
  Graph copy = g;
  EXPECT_EQ(Fuse(g), std::vector<std::string>({"FusedConv[Relu]", "FusedConv[Clip+Z]"}));
  ExpectFusionKeepsResults(copy);
}

TEST(FuseConvTest, LeavesUnfusableChainsAlone) {
  {
    // Clip whose max is a graph input: not known at compile time.
    Graph g = Base(17);
    g.inputs.push_back(Value("hi", {}));
    g.inputs.back().has_shape = true;
    g.outputs.push_back(Value("y", {}));
    g.nodes = {MakeOp("Conv", {"x", "w"}, {"c"}, {{"pads", Pads()}}),
               MakeOp("Clip", {"c", "zero", "hi"}, {"y"})};
    EXPECT_EQ(Fuse(g), std::vector<std::string>({"Conv", "Clip"}));
  }
  {
    // The conv output is read twice; Sigmoid and HardSwish are not fused.
    Graph g = Base(17);
    g.outputs.push_back(Value("y", {}));
    g.outputs.push_back(Value("s", {}));
    g.nodes = {MakeOp("Conv", {"x", "w"}, {"c"}, {{"pads", Pads()}}), MakeOp("Relu", {"c"}, {"y"}),
               MakeOp("Conv", {"x", "w2"}, {"c2"}, {{"pads", Pads()}}),
               MakeOp("Sigmoid", {"c2"}, {"s"}), MakeOp("Add", {"c", "x"}, {"unused"})};
    g.outputs.push_back(Value("unused", {}));
    std::vector<std::string> ops = Fuse(g);
    std::sort(ops.begin(), ops.end());  // shape inference may reorder independent nodes
    EXPECT_EQ(ops, std::vector<std::string>({"Add", "Conv", "Conv", "Relu", "Sigmoid"}));
  }
  {
    // An Add that broadcasts (a bias of shape [8, 1, 1]) is not a residual.
    Graph g = Base(17);
    g.outputs.push_back(Value("y", {}));
    g.nodes = {MakeOp("Conv", {"x", "w"}, {"c"}, {{"pads", Pads()}}),
               MakeOp("Add", {"c", "bias"}, {"y"})};
    EXPECT_EQ(Fuse(g), std::vector<std::string>({"Conv", "Add"}));
  }
}

}  // namespace
}  // namespace lasgd::graph
