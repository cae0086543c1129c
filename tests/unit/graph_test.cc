// The graph IR: topological order, the errors for graphs that are not DAGs
// in SSA form, and the text form lasgd-inspect prints.
#include "graph/graph.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "graph/verifier.h"
#include "gtest/gtest.h"

namespace lasgd::graph {
namespace {

Node MakeNode(std::string name, std::string op, std::vector<std::string> inputs,
              std::vector<std::string> outputs) {
  Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

ValueInfo Info(std::string name, DataType dtype, Shape shape) {
  ValueInfo vi;
  vi.name = std::move(name);
  vi.dtype = dtype;
  vi.has_shape = true;
  vi.shape = std::move(shape);
  vi.dim_params.assign(vi.shape.size(), "");
  return vi;
}

// x -> relu -> a -> add(a, w) -> b -> sigmoid -> y, with the nodes stored
// backwards.
Graph Chain() {
  Graph g;
  g.name = "chain";
  g.opset_imports[""] = 13;
  g.inputs.push_back(Info("x", DataType::kFloat32, {2, 3}));
  g.outputs.push_back(Info("y", DataType::kFloat32, {2, 3}));
  g.initializers["w"] = Tensor::FromFloats({1, 2, 3}, {3});
  g.nodes.push_back(MakeNode("sig", "Sigmoid", {"b"}, {"y"}));
  g.nodes.push_back(MakeNode("add", "Add", {"a", "w"}, {"b"}));
  g.nodes.push_back(MakeNode("relu", "Relu", {"x"}, {"a"}));
  return g;
}

size_t PositionOf(const Graph& g, const std::vector<size_t>& order, const std::string& name) {
  for (size_t i = 0; i < order.size(); ++i)
    if (g.nodes[order[i]].name == name) return i;
  return SIZE_MAX;
}

TEST(GraphTest, TopologicalOrderPutsProducersFirst) {
  Graph g = Chain();
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status();
  ASSERT_EQ(order->size(), 3u);
  EXPECT_LT(PositionOf(g, *order, "relu"), PositionOf(g, *order, "add"));
  EXPECT_LT(PositionOf(g, *order, "add"), PositionOf(g, *order, "sig"));
  ASSERT_TRUE(g.SortTopologically().ok());
  EXPECT_EQ(g.nodes[0].name, "relu");
  EXPECT_EQ(g.nodes[1].name, "add");
  EXPECT_EQ(g.nodes[2].name, "sig");
}

TEST(GraphTest, TopologicalOrderIsStableForIndependentNodes) {
  Graph g;
  g.inputs.push_back(Info("x", DataType::kFloat32, {1}));
  for (const char* name : {"n0", "n1", "n2", "n3"})
    g.nodes.push_back(MakeNode(name, "Relu", {"x"}, {std::string(name) + "_out"}));
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(*order, (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(GraphTest, DiamondOrder) {
  Graph g;
  g.inputs.push_back(Info("x", DataType::kFloat32, {1}));
  g.nodes.push_back(MakeNode("join", "Add", {"l", "r"}, {"y"}));
  g.nodes.push_back(MakeNode("right", "Neg", {"s"}, {"r"}));
  g.nodes.push_back(MakeNode("left", "Relu", {"s"}, {"l"}));
  g.nodes.push_back(MakeNode("split", "Abs", {"x"}, {"s"}));
  auto order = g.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(PositionOf(g, *order, "split"), 0u);
  EXPECT_EQ(PositionOf(g, *order, "join"), 3u);
}

TEST(GraphTest, CycleErrorNamesTheLoop) {
  Graph g = Chain();
  // relu now reads b, closing relu -> add -> relu; sig is only downstream.
  g.nodes[2].inputs = {"b"};
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  const std::string msg(order.status().message());
  EXPECT_TRUE(absl::StrContains(msg, "cycle")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "'relu'")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "'add'")) << msg;
  EXPECT_FALSE(absl::StrContains(msg, "'sig'")) << msg;
  EXPECT_FALSE(g.SortTopologically().ok());
}

TEST(GraphTest, SelfLoop) {
  Graph g;
  g.inputs.push_back(Info("x", DataType::kFloat32, {1}));
  g.nodes.push_back(MakeNode("loop", "Add", {"x", "y"}, {"y"}));
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_TRUE(absl::StrContains(order.status().message(), "node 'loop' (Add)")) << order.status();
}

TEST(GraphTest, UndefinedInputIsNamed) {
  Graph g = Chain();
  g.nodes[1].inputs[1] = "nowhere";
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_TRUE(absl::StrContains(order.status().message(), "node 'add' (Add) reads 'nowhere'"))
      << order.status();
}

TEST(GraphTest, SsaViolations) {
  Graph g = Chain();
  g.nodes.push_back(MakeNode("again", "Neg", {"x"}, {"a"}));
  auto order = g.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_TRUE(absl::StrContains(order.status().message(), "'a' is produced by both"))
      << order.status();

  Graph h = Chain();
  h.nodes.push_back(MakeNode("clobber", "Neg", {"a"}, {"w"}));
  order = h.TopologicalOrder();
  ASSERT_FALSE(order.ok());
  EXPECT_TRUE(absl::StrContains(order.status().message(), "node 'clobber' (Neg) writes 'w'"))
      << order.status();
}

TEST(GraphTest, OmittedOptionalInputsAreIgnored) {
  Graph g;
  g.inputs.push_back(Info("x", DataType::kFloat32, {1}));
  g.nodes.push_back(MakeNode("clip", "Clip", {"x", "", ""}, {"y", ""}));
  EXPECT_TRUE(g.TopologicalOrder().ok());
}

TEST(GraphTest, ToTextShowsEverything) {
  Graph g = Chain();
  g.constant_names.insert("w");
  g.initializers["scale"] = Tensor::FromFloats({2}, {});
  g.nodes[1].attributes["alpha"] = Attribute::Float(0.5f);
  g.nodes[1].attributes["perm"] = Attribute::Ints({1, 0});
  g.nodes[1].attributes["mode"] = Attribute::String("nearest");
  g.value_info["a"] = Info("a", DataType::kFloat32, {2, 3});
  const std::string text = g.ToText();
  for (const char* piece :
       {"graph 'chain' opsets {ai.onnx:13}", "input  x: float32[2,3]", "const  w: float32[3]",
        "init   scale: float32[]", "a: float32[2,3] = Relu(x)  # relu",
        "b: ? = Add(a, w) {alpha=0.5, mode='nearest', perm=[1,0]}  # add",
        "output y: float32[2,3]"}) {
    EXPECT_TRUE(absl::StrContains(text, piece)) << "missing \"" << piece << "\" in:\n" << text;
  }
}

TEST(GraphTest, ValueInfoTypeString) {
  ValueInfo vi = Info("x", DataType::kFloat32, {-1, 3, -1});
  vi.dim_params = {"batch", "", ""};
  EXPECT_EQ(vi.TypeString(), "float32[batch,3,?]");
  EXPECT_FALSE(vi.IsStatic());
  EXPECT_TRUE(Info("s", DataType::kInt64, {}).IsStatic());
  EXPECT_EQ(Info("s", DataType::kInt64, {}).TypeString(), "int64[]");
  ValueInfo unknown;
  unknown.dtype = DataType::kBool;
  EXPECT_EQ(unknown.TypeString(), "bool[?]");
  EXPECT_FALSE(unknown.IsStatic());
}

TEST(GraphTest, NodeHelpers) {
  Node n = MakeNode("q", "QuantizeLinear", {"x", "", "z"}, {"y"});
  n.domain = "com.microsoft";
  EXPECT_EQ(n.Describe(), "node 'q' (com.microsoft.QuantizeLinear)");
  EXPECT_TRUE(n.HasInput(0));
  EXPECT_FALSE(n.HasInput(1));
  EXPECT_TRUE(n.HasInput(2));
  EXPECT_FALSE(n.HasInput(3));
  n.attributes["axis"] = Attribute::Int(-1);
  EXPECT_EQ(n.GetInt("axis", 1), -1);
  EXPECT_EQ(n.GetInt("missing", 7), 7);
  EXPECT_EQ(n.GetInts("missing", {1, 2}), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(Attribute::Floats({1.5f, 2}).ToString(), "[1.5,2]");
  EXPECT_EQ(Attribute::FromTensor(Tensor::FromInt64s({1, 2}, {2})).ToString(), "tensor int64[2]");
}

TEST(GraphTest, OpsetForDefaultDomainAliases) {
  Graph g;
  g.opset_imports["ai.onnx"] = 17;
  g.opset_imports["com.microsoft"] = 1;
  EXPECT_EQ(g.OpsetFor(""), 17);
  EXPECT_EQ(g.OpsetFor("ai.onnx"), 17);
  EXPECT_EQ(g.OpsetFor("com.microsoft"), 1);
  EXPECT_EQ(g.OpsetFor("org.pytorch"), -1);
}

TEST(GraphTest, FindValueInfo) {
  Graph g = Chain();
  g.value_info["a"] = Info("a", DataType::kFloat32, {2, 3});
  ASSERT_NE(g.FindValueInfo("x"), nullptr);
  EXPECT_EQ(g.FindValueInfo("x")->shape, (Shape{2, 3}));
  ASSERT_NE(g.FindValueInfo("a"), nullptr);
  ASSERT_NE(g.FindValueInfo("y"), nullptr);
  EXPECT_EQ(g.FindValueInfo("b"), nullptr);
  EXPECT_TRUE(g.IsGraphInput("x"));
  EXPECT_FALSE(g.IsGraphInput("w"));
  EXPECT_TRUE(g.IsInitializer("w"));
}

TEST(GraphTest, VerifierReportsEveryProblem) {
  Graph g = Chain();
  g.inputs.push_back(Info("x", DataType::kFloat32, {2, 3}));  // listed twice
  g.outputs.push_back(Info("ghost", DataType::kFloat32, {1}));
  g.nodes.push_back(MakeNode("odd", "NoSuchOp", {"x"}, {"z"}));
  absl::Status st = VerifyGraph(g);
  ASSERT_FALSE(st.ok());
  const std::string msg(st.message());
  EXPECT_TRUE(absl::StrContains(msg, "3 problems")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "graph input 'x' is listed twice")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "graph output 'ghost'")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "node 'odd' (NoSuchOp)")) << msg;
}

}  // namespace
}  // namespace lasgd::graph
