// The autodiff pass itself: errors, zero gradients, fan-out accumulation.
// (Per-op gradients are checked against finite differences in tests/gradcheck.)
#include "graph/passes/autodiff.h"

#include <map>
#include <set>

#include "graph/passes/passes.h"
#include "gtest/gtest.h"
#include "runtime/executor.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

graph::Graph TwoInputGraph(const std::string& op) {
  graph::Graph g;
  g.opset_imports[""] = 17;
  g.opset_imports["com.lasgd"] = 1;
  for (const char* name : {"a", "b"}) {
    graph::ValueInfo vi;
    vi.name = name;
    vi.dtype = DataType::kFloat64;
    vi.shape = {2, 3};
    vi.has_shape = true;
    g.inputs.push_back(vi);
  }
  graph::Node n;
  n.name = "the_op";
  n.op_type = op;
  n.inputs = {"a", "b"};
  n.outputs = {"y"};
  g.nodes.push_back(n);
  graph::Node s;
  s.name = "to_scalar";
  s.op_type = "ReduceSumTo";
  s.domain = "com.lasgd";
  s.inputs = {"y"};
  s.outputs = {"loss"};
  s.attributes["shape"] = graph::Attribute::Ints({});
  g.nodes.push_back(s);
  graph::ValueInfo out;
  out.name = "loss";
  g.outputs.push_back(out);
  return g;
}

TEST(AutodiffTest, MissingBuilderNamesNodeAndOp) {
  // Floor has no gradient builder (its derivative is zero almost everywhere,
  // and silently training through it would hide a modelling mistake).
  graph::Graph g = TwoInputGraph("Add");
  g.nodes[0].op_type = "Floor";
  g.nodes[0].inputs = {"a"};
  ASSERT_TRUE(graph::InferShapesAndFoldConstants(g, {}).ok());
  auto result = graph::BuildGradients(g, "loss", {"a"});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(std::string(result.status().message()).find("node 'the_op' (Floor)"), std::string::npos)
      << result.status();
  EXPECT_NE(std::string(result.status().message()).find("no gradient builder"), std::string::npos);
}

TEST(AutodiffTest, NonScalarLossIsAnError) {
  graph::Graph g = TwoInputGraph("Add");
  ASSERT_TRUE(graph::InferShapesAndFoldConstants(g, {}).ok());
  auto result = graph::BuildGradients(g, "y", {"a"});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(std::string(result.status().message()).find("must be a floating-point scalar"),
            std::string::npos)
      << result.status();
}

TEST(AutodiffTest, UnknownLossIsAnError) {
  graph::Graph g = TwoInputGraph("Add");
  ASSERT_TRUE(graph::InferShapesAndFoldConstants(g, {}).ok());
  auto result = graph::BuildGradients(g, "nope", {"a"});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(std::string(result.status().message()).find("'nope'"), std::string::npos);
}

// Compiles `g` with the gradients of `wrt` as extra outputs and runs it.
std::map<std::string, Tensor> RunWithGradients(graph::Graph g, const std::set<std::string>& wrt,
                                               std::map<std::string, std::string>* grad_names) {
  auto result = graph::BuildGradients(g, "loss", wrt);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return {};
  *grad_names = result->gradients;
  for (const auto& [v, grad] : result->gradients) {
    graph::ValueInfo vi;
    vi.name = grad;
    g.outputs.push_back(vi);
  }
  auto ex = runtime::Executor::Create(g, {});
  EXPECT_TRUE(ex.ok()) << ex.status();
  if (!ex.ok()) return {};
  std::map<std::string, Tensor> feeds = {
      {"a", testing::RandomTensor({2, 3}, 1, -1, 1, DataType::kFloat64)},
      {"b", testing::RandomTensor({2, 3}, 2, -1, 1, DataType::kFloat64)}};
  auto outs = (*ex)->Run(feeds);
  EXPECT_TRUE(outs.ok()) << outs.status();
  if (!outs.ok()) return {};
  outs->insert(feeds.begin(), feeds.end());
  return *outs;
}

TEST(AutodiffTest, ReduceSumToGradientIsOnesAndUnusedValueGetsZero) {
  // loss = sum(a): d loss/d a = ones. 'b' is unused: zero gradient.
  graph::Graph g = TwoInputGraph("Add");
  g.nodes.erase(g.nodes.begin());
  g.nodes[0].inputs = {"a"};
  ASSERT_TRUE(graph::InferShapesAndFoldConstants(g, {}).ok());
  std::map<std::string, std::string> grads;
  auto outs = RunWithGradients(g, {"a", "b"}, &grads);
  ASSERT_FALSE(outs.empty());
  const Tensor& ga = outs.at(grads.at("a"));
  const Tensor& gb = outs.at(grads.at("b"));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(ga.GetAsDouble(i), 1.0);
    EXPECT_EQ(gb.GetAsDouble(i), 0.0);
  }
}

TEST(AutodiffTest, FanOutGradientsAreSummed) {
  // loss = sum(a * a): 'a' feeds both inputs of Mul, so its two gradient
  // contributions (b*dy with b = a, twice) must be summed: 2a.
  graph::Graph g = TwoInputGraph("Mul");
  g.nodes[0].inputs = {"a", "a"};
  ASSERT_TRUE(graph::InferShapesAndFoldConstants(g, {}).ok());
  std::map<std::string, std::string> grads;
  auto outs = RunWithGradients(g, {"a"}, &grads);
  ASSERT_FALSE(outs.empty());
  const Tensor& a = outs.at("a");
  const Tensor& ga = outs.at(grads.at("a"));
  for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(ga.GetAsDouble(i), 2 * a.GetAsDouble(i));
}

}  // namespace
}  // namespace lasgd
