// The layout plan (runtime/layout_plan.h): which values are stored in
// oneDNN's channel-blocked layout, and that plans using it compute exactly
// what the plain reference kernels compute, channel padding included.
#include "runtime/layout_plan.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/onednn_layout.h"
#include "runtime/executor.h"
#include "tests/op_test_util.h"

namespace lasgd::runtime {
namespace {

using graph::Attribute;

// A kernel that accepts the blocked layout on the listed inputs / outputs.
class FakeKernel : public ops::Kernel {
 public:
  FakeKernel(std::vector<bool> in, std::vector<bool> out) : in_(in), out_(out) {}
  absl::Status Run(ops::KernelContext&) override { return absl::OkStatus(); }
  bool AcceptsBlockedLayout(bool output, size_t index) const override {
    const std::vector<bool>& v = output ? out_ : in_;
    return index < v.size() && v[index];
  }
  absl::Status UseBlockedLayouts(const std::vector<bool>& inputs,
                                 const std::vector<bool>& outputs) override {
    ++calls;
    got_in = inputs;
    got_out = outputs;
    return absl::OkStatus();
  }
  int calls = 0;
  std::vector<bool> got_in, got_out;

 private:
  std::vector<bool> in_, out_;
};

TEST(LayoutPlanTest, BlockedOnlyWhereProducerAndEveryReaderAgree) {
  // v0 (graph input) -> A -> v1 -> B -> v2 -> C (plain only) ; v1 -> D.
  //                              B -> v3 -> D
  FakeKernel a({true}, {true}), b({true}, {true, true}), c({false}, {true}), d({true, true}, {});
  std::vector<LayoutStep> steps = {
      {&a, {0}, {1}}, {&b, {1}, {2, 3}}, {&c, {2}, {4}}, {&d, {1, 3}, {}}};
  std::vector<bool> eligible = {false, true, true, true, true};
  LayoutPlan plan = PlanLayouts(steps, eligible);
  EXPECT_FALSE(plan.blocked[0]);  // not eligible (a graph input)
  EXPECT_TRUE(plan.blocked[1]);   // A writes it blocked; B and D read it blocked
  EXPECT_FALSE(plan.blocked[2]);  // C reads plain only
  EXPECT_TRUE(plan.blocked[3]);
  EXPECT_FALSE(plan.blocked[4]);  // nobody reads it
  EXPECT_EQ(plan.blocked_values, 2);
  // v1: A's reorder out + B's and D's reorders in; v3: B's out + D's in.
  EXPECT_EQ(plan.reorders_avoided, 5);
  ASSERT_TRUE(ApplyLayouts(steps, plan, {"a", "b", "c", "d"}).ok());
  EXPECT_EQ(a.calls, 1);
  EXPECT_EQ(a.got_out, std::vector<bool>({true}));
  EXPECT_EQ(b.got_in, std::vector<bool>({true}));
  EXPECT_EQ(b.got_out, std::vector<bool>({false, true}));
  EXPECT_EQ(c.calls, 0);  // nothing of C's is blocked: left alone
  EXPECT_EQ(d.got_in, std::vector<bool>({true, true}));
}

TEST(LayoutPlanTest, ProducerThatRefusesKeepsValuePlain) {
  FakeKernel a({}, {false}), b({true}, {});
  LayoutPlan plan = PlanLayouts({{&a, {}, {0}}, {&b, {0}, {}}}, {true});
  EXPECT_FALSE(plan.blocked[0]);
  EXPECT_EQ(plan.reorders_avoided, 0);
}

// ---- whole plans ----

graph::ValueInfo Value(const std::string& name, Shape shape) {
  graph::ValueInfo v;
  v.name = name;
  v.dtype = DataType::kFloat32;
  v.has_shape = true;
  v.shape = std::move(shape);
  return v;
}

graph::Node Node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                 std::map<std::string, Attribute> attrs = {}) {
  graph::Node n;
  n.name = out[0] + "_node";
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

// conv(5 channels: padded to a whole block) -> relu -> maxpool -> 1x1 conv
// (12) -> batchnorm -> averagepool -> conv + residual -> relu -> global
// average pool -> flatten, plus a second output read off the middle (which
// must then stay plain).
graph::Graph BlockChain() {
  graph::Graph g;
  g.opset_imports[""] = 17;
  g.inputs.push_back(Value("x", {2, 3, 17, 17}));
  g.outputs.push_back(Value("y", {}));
  g.outputs.back().has_shape = false;
  g.outputs.push_back(Value("mid", {}));
  g.outputs.back().has_shape = false;
  uint32_t seed = 1;
  auto init = [&](const std::string& name, Shape shape, float lo = -0.5f, float hi = 0.5f) {
    g.initializers[name] = testing::RandomTensor(shape, seed++, lo, hi);
  };
  init("w1", {5, 3, 3, 3});
  init("b1", {5});
  init("w2", {12, 5, 1, 1});
  init("w3", {12, 12, 3, 3});
  init("w4", {12, 12, 1, 1});
  init("scale", {12}, 0.5f, 1.5f);
  init("shift", {12});
  init("mean", {12});
  init("var", {12}, 0.5f, 2.f);
  auto ints = [](std::vector<int64_t> v) { return Attribute::Ints(std::move(v)); };
  g.nodes = {
      Node("Conv", {"x", "w1", "b1"}, {"c1"}, {{"pads", ints({1, 1, 1, 1})}}),
      Node("Relu", {"c1"}, {"r1"}),
      Node("MaxPool", {"r1"}, {"p1"},
           {{"kernel_shape", ints({3, 3})},
            {"strides", ints({2, 2})},
            {"pads", ints({1, 1, 1, 1})}}),
      Node("Conv", {"p1", "w2"}, {"c2"}),
      Node("BatchNormalization", {"c2", "scale", "shift", "mean", "var"}, {"bn"}),
      Node("AveragePool", {"bn"}, {"p2"},
           {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}}),
      Node("Conv", {"p2", "w3"}, {"c3"}, {{"pads", ints({1, 1, 1, 1})}}),
      Node("Add", {"c3", "p2"}, {"sum"}),
      Node("Relu", {"sum"}, {"r3"}),
      Node("Conv", {"r3", "w4"}, {"mid"}),
      Node("Conv", {"mid", "w4"}, {"c5"}),
      Node("GlobalAveragePool", {"c5"}, {"gap"}),
      Node("Flatten", {"gap"}, {"y"}),
  };
  return g;
}

std::map<std::string, Tensor> RunPlan(const std::string& kernel, std::string* report,
                                      int* blocked) {
  CompileOptions options;
  options.kernel = kernel;
  auto ex = Executor::Create(BlockChain(), options);
  EXPECT_TRUE(ex.ok()) << ex.status();
  if (!ex.ok()) return {};
  if (report) *report = (*ex)->PlanReport();
  if (blocked) *blocked = (*ex)->blocked_values();
  std::map<std::string, Tensor> out;
  for (int run = 0; run < 2; ++run) {  // the second run reuses prepared weights
    auto r = (*ex)->Run({{"x", testing::RandomTensor({2, 3, 17, 17}, 99, -2.f, 2.f)}});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    if (run == 1) {
      for (const auto& [name, t] : out) EXPECT_TRUE(testing::TensorsNear(t, r->at(name), 0, 0));
    }
    out = std::move(*r);
  }
  return out;
}

TEST(LayoutPlanTest, BlockedPlanMatchesPlainReference) {
  std::string report;
  int blocked = 0;
  std::map<std::string, Tensor> fast = RunPlan("", &report, &blocked);
  std::map<std::string, Tensor> reference = RunPlan("reference", nullptr, nullptr);
  ASSERT_EQ(fast.size(), 2u);
  ASSERT_EQ(reference.size(), 2u);
  EXPECT_TRUE(testing::TensorsNear(reference["y"], fast["y"], 1e-4, 1e-5));
  EXPECT_TRUE(testing::TensorsNear(reference["mid"], fast["mid"], 1e-4, 1e-5));
  // r1 (conv c1 fused with its Relu), p1, c2, bn, p2, r3 (c3 + p2, Relu)
  // and c5 pass between oneDNN kernels; mid is a graph output and gap is
  // read by Flatten: both plain.
  EXPECT_EQ(blocked, 7) << report;
  const std::string name = ops::onednn::BlockedLayoutName();
  EXPECT_NE(report.find("out 'p1' float32[2,5,9,9] " + name), std::string::npos) << report;
  EXPECT_NE(report.find("out 'mid' float32[2,12,4,4] plain"), std::string::npos) << report;
  EXPECT_NE(report.find("out 'gap' float32[2,12,1,1] plain"), std::string::npos) << report;
  EXPECT_NE(report.find("7 values stored " + name), std::string::npos) << report;
}

// Kernels whose input and output are stored differently (blocked on one
// side only) reorder the plain side themselves.
graph::Graph MixedLayouts() {
  graph::Graph g;
  g.opset_imports[""] = 17;
  g.inputs.push_back(Value("x", {2, 4, 9, 9}));
  for (const char* out : {"y1", "y2"}) {
    g.outputs.push_back(Value(out, {}));
    g.outputs.back().has_shape = false;
  }
  uint32_t seed = 20;
  auto init = [&](const std::string& name, Shape shape, float lo = -0.5f, float hi = 0.5f) {
    g.initializers[name] = testing::RandomTensor(shape, seed++, lo, hi);
  };
  init("w", {12, 4, 3, 3});
  init("w2", {12, 4, 1, 1});
  for (auto [bn, c] : {std::pair<std::string, int64_t>{"a", 12}, {"b", 4}}) {
    init(bn + "_scale", {c}, 0.5f, 1.5f);
    init(bn + "_shift", {c});
    init(bn + "_mean", {c});
    init(bn + "_var", {c}, 0.5f, 2.f);
  }
  auto ints = [](std::vector<int64_t> v) { return Attribute::Ints(std::move(v)); };
  g.nodes = {
      // conv -> BN (blocked in) -> Sigmoid (plain only): BN writes plain.
      Node("Conv", {"x", "w"}, {"c"}, {{"pads", ints({1, 1, 1, 1})}}),
      Node("BatchNormalization", {"c", "a_scale", "a_shift", "a_mean", "a_var"}, {"bn_a"}),
      Node("Sigmoid", {"bn_a"}, {"y1"}),
      // graph input -> max pool (plain in, blocked out) -> BN -> conv.
      Node("MaxPool", {"x"}, {"p"}, {{"kernel_shape", ints({2, 2})}}),
      Node("BatchNormalization", {"p", "b_scale", "b_shift", "b_mean", "b_var"}, {"bn_b"}),
      Node("Conv", {"bn_b", "w2"}, {"y2"}),
  };
  return g;
}

TEST(LayoutPlanTest, BlockedOnOneSideOnly) {
  std::map<std::string, Tensor> results[2];
  int blocked = 0;
  std::string report;
  for (int k = 0; k < 2; ++k) {
    CompileOptions options;
    options.kernel = k == 0 ? "" : "reference";
    auto ex = Executor::Create(MixedLayouts(), options);
    ASSERT_TRUE(ex.ok()) << ex.status();
    if (k == 0) {
      blocked = (*ex)->blocked_values();
      report = (*ex)->PlanReport();
    }
    auto r = (*ex)->Run({{"x", testing::RandomTensor({2, 4, 9, 9}, 5, -2.f, 2.f)}});
    ASSERT_TRUE(r.ok()) << r.status();
    results[k] = std::move(*r);
  }
  // c (conv -> BN), p (pool -> BN) and bn_b (BN -> conv).
  EXPECT_EQ(blocked, 3) << report;
  EXPECT_TRUE(testing::TensorsNear(results[1]["y1"], results[0]["y1"], 1e-4, 1e-5));
  EXPECT_TRUE(testing::TensorsNear(results[1]["y2"], results[0]["y2"], 1e-4, 1e-5));
}

TEST(LayoutPlanTest, ReferenceKernelsKeepEverythingPlain) {
  int blocked = -1;
  std::string report;
  RunPlan("reference", &report, &blocked);
  EXPECT_EQ(blocked, 0) << report;
}

}  // namespace
}  // namespace lasgd::runtime
