// Tests of the optimizer update ops (ops/optimizer.h): com.lasgd SGDUpdate,
// AdamUpdate and ClipGradNorm against values computed with PyTorch 2.15
// (torch.optim.SGD / Adam / AdamW, torch.nn.utils.clip_grad_norm_, float64
// tensors; the script is quoted below), the ONNX training ops against
// hand-computed values, every kernel against the reference, and bad inputs.
//
// The torch values come from this script (python3, torch 2.15.0):
//   P0 = [[0.5, -1.0, 2.0], [[0.1, 0.2], [-0.3, 0.4]]]
//   def grads(k):  # the gradient of step k (0-based)
//       g1 = [0.3 - 0.1*k, -0.2 + 0.25*k, 0.1 + 0.05*k]
//       g2 = [[0.01 + 0.1*k, -0.02 + 0.1*k], [0.03 - 0.2*k, 0.5]]
//       return [torch.tensor(g1, dtype=torch.float64), torch.tensor(g2, ...)]
//   def run(opt_cls, steps, **kw):
//       ps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in P0]
//       opt = opt_cls(ps, **kw)
//       for k in range(steps):
//           for p, g in zip(ps, grads(k)): p.grad = g.clone()
//           opt.step()
//       # print every p and opt.state[p]'s momentum_buffer / exp_avg /
//       # exp_avg_sq / max_exp_avg_sq with repr(float(x))
//   clip: gs = grads(2) as .grad of zero tensors,
//         total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=...)
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ops/evaluate_node.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;
using testing::RunAllKernelsAndCompare;
using testing::TensorsNear;

graph::Node LasgdNode(const std::string& op, int inputs, int outputs,
                      std::map<std::string, Attribute> attributes = {}) {
  graph::Node node = MakeNode(op, inputs, outputs, std::move(attributes));
  node.domain = "com.lasgd";
  return node;
}

graph::Node TrainingNode(const std::string& op, int inputs, int outputs,
                         std::map<std::string, Attribute> attributes = {}) {
  graph::Node node = MakeNode(op, inputs, outputs, std::move(attributes));
  node.domain = "ai.onnx.preview.training";
  return node;
}

Tensor Values(const std::vector<double>& values, Shape shape, DataType dtype) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.SetFromDouble(static_cast<int64_t>(i), values[i]);
  return t;
}

Tensor Scalar(double value, DataType dtype = DataType::kFloat64) {
  return Values({value}, {}, dtype);
}

Tensor Step(int64_t step) { return Tensor::FromInt64s({step}, {}); }

const Shape kShape0 = {3};
const Shape kShape1 = {2, 2};

std::vector<Tensor> InitialParams(DataType dtype) {
  return {Values({0.5, -1.0, 2.0}, kShape0, dtype), Values({0.1, 0.2, -0.3, 0.4}, kShape1, dtype)};
}

std::vector<Tensor> Grads(int k, DataType dtype) {
  return {Values({0.3 - 0.1 * k, -0.2 + 0.25 * k, 0.1 + 0.05 * k}, kShape0, dtype),
          Values({0.01 + 0.1 * k, -0.02 + 0.1 * k, 0.03 - 0.2 * k, 0.5}, kShape1, dtype)};
}

// Runs `steps` updates of a com.lasgd update node on the two tensors above,
// feeding the new parameters, state and step (the node's last output) back
// in. Returns the parameters then each state group, flattened per tensor.
std::vector<Tensor> RunSteps(const std::string& op, std::map<std::string, Attribute> attributes,
                             int state_groups, double lr, int steps, DataType dtype) {
  const int n = 2;
  graph::Node node =
      LasgdNode(op, 2 + n * (2 + state_groups), n * (1 + state_groups) + 1, std::move(attributes));
  std::vector<Tensor> params = InitialParams(dtype);
  std::vector<Tensor> state;
  for (int g = 0; g < state_groups; ++g)
    for (const Tensor& p : params) state.push_back(Tensor::Allocate(dtype, p.shape()));
  Tensor step = Step(0);
  for (int k = 0; k < steps; ++k) {
    std::vector<Tensor> inputs = {Scalar(lr), step};
    for (const Tensor& p : params) inputs.push_back(p);
    for (const Tensor& g : Grads(k, dtype)) inputs.push_back(g);
    for (const Tensor& s : state) inputs.push_back(s);
    std::vector<Tensor> out = RunAllKernelsAndCompare(node, 1, inputs, 1e-5, 1e-6);
    EXPECT_EQ(out.size(), static_cast<size_t>(n * (1 + state_groups) + 1));
    if (out.size() != static_cast<size_t>(n * (1 + state_groups) + 1)) return {};
    EXPECT_EQ(out.back().data<int64_t>()[0], k + 1);
    step = out.back();
    for (int i = 0; i < n; ++i) params[i] = out[i];
    for (size_t s = 0; s < state.size(); ++s) state[s] = out[n + s];
  }
  std::vector<Tensor> result = params;
  result.insert(result.end(), state.begin(), state.end());
  return result;
}

// Expected values per tensor: p0, p1, then state0 of tensor 0, of tensor 1, ...
void ExpectRun(const std::string& op, std::map<std::string, Attribute> attributes, int state_groups,
               double lr, int steps, const std::vector<std::vector<double>>& expected) {
  for (DataType dtype : {DataType::kFloat64, DataType::kFloat32}) {
    SCOPED_TRACE(DataTypeName(dtype));
    std::vector<Tensor> got = RunSteps(op, attributes, state_groups, lr, steps, dtype);
    ASSERT_EQ(got.size(), expected.size());
    // float64 runs must agree with torch's float64 to rounding; float32 ones
    // to float32 accuracy (the fast kernel computes in float32, like torch).
    const double tol = dtype == DataType::kFloat64 ? 1e-12 : 2e-6;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(TensorsNear(Values(expected[i], got[i].shape(), dtype), got[i], tol, tol))
          << "output group entry " << i;
    }
  }
}

TEST(SGDUpdateTest, MomentumDampeningWeightDecayMatchesTorch) {
  // SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01), 4 steps.
  ExpectRun(
      "SGDUpdate",
      {{"momentum", Attribute::Float(0.9f)},
       {"dampening", Attribute::Float(0.1f)},
       {"weight_decay", Attribute::Float(0.01f)}},
      1, 0.1, 4,
      {{0.32702532175923443, -1.035861770974309, 1.855516602211748},
       {0.005133383330201889, 0.1297137553314878, -0.15179911935223164, -0.027189913401658442},
       {0.459355685357655, 0.59763207984309, 0.63148198068252},
       {0.5392736877879811, 0.44762732126512206, -0.9236966183476831, 1.592750645776584}});
}

TEST(SGDUpdateTest, NesterovMatchesTorch) {
  // SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001), 4 steps.
  ExpectRun("SGDUpdate",
            {{"momentum", Attribute::Float(0.8f)},
             {"nesterov", Attribute::Int(1)},
             {"weight_decay", Attribute::Float(0.001f)}},
            1, 0.05, 4,
            {{0.40760983231899295, -1.0593411533518495, 1.9131058418108093},
             {0.028514970160995298, 0.14429046406263202, -0.18335760405749793, 0.13598471075655538},
             {0.3629370767700509, 0.7166724414806066, 0.5630254505320057},
             {0.5537718744990467, 0.46552461872652245, -0.9602682284947838, 1.4768871835642512}});
}

TEST(SGDUpdateTest, PlainMaximizeMatchesTorch) {
  // SGD(lr=0.2, weight_decay=0.1, maximize=True), 3 steps: no momentum state.
  ExpectRun("SGDUpdate",
            {{"weight_decay", Attribute::Float(0.1f)}, {"maximize", Attribute::Int(1)}}, 0, 0.2, 3,
            {{0.58742, -0.9098080000000001, 1.9709919999999999},
             {0.15960000000000002, 0.2360768, -0.38391519999999996, 0.6705168}});
}

TEST(SGDUpdateTest, FirstStepBufferIsTheUndampenedGradient) {
  // SGD(lr=0.1, momentum=0.9, dampening=0.5), 1 step: torch starts the buffer
  // as a copy of the gradient, ignoring dampening.
  ExpectRun("SGDUpdate",
            {{"momentum", Attribute::Float(0.9f)}, {"dampening", Attribute::Float(0.5f)}}, 1, 0.1,
            1,
            {{0.47, -0.98, 1.99},
             {0.099, 0.202, -0.303, 0.35000000000000003},
             {0.3, -0.2, 0.1},
             {0.01, -0.02, 0.03, 0.5}});
}

TEST(AdamUpdateTest, AdamL2MatchesTorch) {
  // Adam(lr=0.01, weight_decay=0.3), 5 steps (betas 0.9/0.999, eps 1e-8).
  ExpectRun("AdamUpdate", {{"weight_decay", Attribute::Float(0.3f)}}, 2, 0.01, 5,
            {{0.45389899410930984, -0.9723421111426662, 1.9498142708131883},
             {0.05330775852799523, 0.1533077585279952, -0.2538968744249409, 0.3500216195297177},
             {0.09114752034556277, 0.023749885663125567, 0.32918293745999216},
             {0.10431104474604941, 0.10431104474604941, -0.20302364749599042, 0.2511819967265101},
             {0.00040257646646922146, 0.0006351840790756387, 0.0031685940379356276},
             {0.00036879058304257643, 0.00036879058304257643, 0.0014204790276649464,
              0.0018812731572277188}});
}

TEST(AdamUpdateTest, AdamWMatchesTorch) {
  // AdamW(lr=0.02, betas=(0.8, 0.99), weight_decay=0.05, eps=1e-6), 5 steps.
  ExpectRun(
      "AdamUpdate",
      {{"beta1", Attribute::Float(0.8f)},
       {"beta2", Attribute::Float(0.99f)},
       {"eps", Attribute::Float(1e-6f)},
       {"weight_decay", Attribute::Float(0.05f)},
       {"decoupled_weight_decay", Attribute::Int(1)}},
      2, 0.02, 5,
      {{0.4215844213407635, -1.007171957114935, 1.8886829867828303},
       {0.005779462756199446, 0.15264908118596304, -0.25044935717739664, 0.29820399570198014},
       {0.03785599999999999, 0.27513599999999994, 0.14915199999999998},
       {0.1705632, 0.1503936, -0.30751039999999996, 0.33615999999999996},
       {0.0014506660090000012, 0.01068533587900001, 0.0022251668760000023},
       {0.0031829808750100034, 0.0026036539200400026, 0.01077632867509001, 0.01225248752500001}});
}

TEST(AdamUpdateTest, AmsgradMaximizeMatchesTorch) {
  // Adam(lr=0.01, amsgrad=True, maximize=True), 5 steps.
  const std::vector<double> v0 = {0.00014950066960009014, 0.001074350337337541,
                                  0.00022475016743751024};
  const std::vector<double> v1 = {0.0003202790809875005, 0.0002618360539920007,
                                  0.001083811228967502, 0.0012475024987502511};
  ExpectRun(
      "AdamUpdate", {{"amsgrad", Attribute::Int(1)}, {"maximize", Attribute::Int(1)}}, 3, 0.01, 5,
      {{0.540521824631721, -0.9975879348005413, 2.0495784313294405},
       {0.14453716371700798, 0.2203200895785857, -0.321253018470172, 0.4499999989999999},
       {-0.03236299999999998, -0.14432299999999998, -0.086196},
       {-0.09458509999999999, -0.08229979999999999, 0.16869469999999998, -0.20475499999999996},
       v0,
       v1,
       v0,
       v1});
}

TEST(ClipGradNormTest, MatchesTorch) {
  struct Case {
    double max_norm;
    float norm_type;
    double total;
    std::vector<double> g0, g1;
  };
  const std::vector<Case> cases = {
      {0.5,
       2.0f,
       0.776788259437538,
       {0.06436752232671739, 0.19310256698015218, 0.1287350446534348},
       {0.13517179688610656, 0.11586154018809133, -0.23815983260885437, 0.321837611633587}},
      // Below max_norm: unchanged.
      {100.0, 2.0f, 0.776788259437538, {0.1, 0.3, 0.2}, {0.21, 0.18, -0.37, 0.5}},
      {0.3,
       INFINITY,
       0.5,
       {0.05999988000023998, 0.17999964000071997, 0.11999976000047999},
       {0.12599974800050398, 0.107999784000432, -0.22199955600088797, 0.29999940000119996}},
      {0.4,
       1.0f,
       1.8599999999999999,
       {0.021505364782061945, 0.06451609434618585, 0.043010729564123905},
       {0.0451612660423301, 0.038709656607711515, -0.07956984969362922, 0.10752682391030975}},
  };
  for (const Case& c : cases) {
    for (DataType dtype : {DataType::kFloat64, DataType::kFloat32}) {
      SCOPED_TRACE(absl::StrCat("max_norm ", c.max_norm, " norm_type ", c.norm_type, " ",
                                DataTypeName(dtype)));
      graph::Node node =
          LasgdNode("ClipGradNorm", 3, 3, {{"norm_type", Attribute::Float(c.norm_type)}});
      std::vector<Tensor> grads = Grads(2, dtype);
      auto out = RunAllKernelsAndCompare(node, 1, {Scalar(c.max_norm), grads[0], grads[1]});
      ASSERT_EQ(out.size(), 3u);
      const double tol = dtype == DataType::kFloat64 ? 1e-12 : 1e-6;
      EXPECT_TRUE(TensorsNear(Values(c.g0, kShape0, dtype), out[0], tol, tol));
      EXPECT_TRUE(TensorsNear(Values(c.g1, kShape1, dtype), out[1], tol, tol));
      EXPECT_TRUE(TensorsNear(Scalar(c.total, dtype), out[2], tol, tol));
    }
  }
}

TEST(ClipGradNormTest, TotalNormOutputIsOptional) {
  graph::Node node = LasgdNode("ClipGradNorm", 2, 1);
  auto out = RunAllKernelsAndCompare(
      node, 1, {Scalar(1.0, DataType::kFloat32), Values({3, 4}, {2}, DataType::kFloat32)});
  ASSERT_EQ(out.size(), 1u);
  // Norm 5: scale 1 / (5 + 1e-6).
  const double s = 1.0 / (5.0 + 1e-6);
  EXPECT_TRUE(TensorsNear(Values({3 * s, 4 * s}, {2}, DataType::kFloat32), out[0], 1e-6, 1e-7));
}

// ---- ai.onnx.preview.training ----

TEST(OnnxMomentumTest, StandardAndNesterovByHand) {
  // The inputs of ONNX's test_momentum: R 0.1, X [1.2, 2.8], G [-0.94, -2.5],
  // V [1.7, 3.6], norm_coefficient 0.001, alpha 0.95, beta 0.1.
  std::vector<Tensor> inputs = {
      Scalar(0.1, DataType::kFloat32), Step(0), Values({1.2, 2.8}, {2}, DataType::kFloat64),
      Values({-0.94, -2.5}, {2}, DataType::kFloat64), Values({1.7, 3.6}, {2}, DataType::kFloat64)};
  std::map<std::string, Attribute> attrs = {{"alpha", Attribute::Float(0.95f)},
                                            {"beta", Attribute::Float(0.1f)},
                                            {"norm_coefficient", Attribute::Float(0.001f)},
                                            {"mode", Attribute::String("standard")}};
  // T = 0: beta counts as 1. G' = G + 0.001 X = [-0.9388, -2.4972];
  // V' = 0.95 V + G' = [0.6762, 0.9228]; X' = X - 0.1 V' = [1.13238, 2.70772].
  auto out = RunAllKernelsAndCompare(TrainingNode("Momentum", 5, 2, attrs), 1, inputs);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(Values({1.13238, 2.70772}, {2}, DataType::kFloat64), out[0], 1e-7));
  EXPECT_TRUE(TensorsNear(Values({0.6762, 0.9228}, {2}, DataType::kFloat64), out[1], 1e-7));
  // T = 3: V' = 0.95 V + 0.1 G' = [1.52112, 3.17028]; X' = X - 0.1 V'.
  inputs[1] = Step(3);
  out = RunAllKernelsAndCompare(TrainingNode("Momentum", 5, 2, attrs), 1, inputs);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(Values({1.047888, 2.482972}, {2}, DataType::kFloat64), out[0], 1e-7));
  EXPECT_TRUE(TensorsNear(Values({1.52112, 3.17028}, {2}, DataType::kFloat64), out[1], 1e-7));
  // Nesterov, T = 3: X' = X - 0.1 (G' + 0.95 V').
  attrs["mode"] = Attribute::String("nesterov");
  out = RunAllKernelsAndCompare(TrainingNode("Momentum", 5, 2, attrs), 1, inputs);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(TensorsNear(
      Values({1.2 - 0.1 * (-0.9388 + 0.95 * 1.52112), 2.8 - 0.1 * (-2.4972 + 0.95 * 3.17028)}, {2},
             DataType::kFloat64),
      out[0], 1e-7));
}

TEST(OnnxAdagradTest, ByHand) {
  // r = 0.1 / (1 + 2 * 0.1); G' = 1 + 0.5 * 2 = 2; H' = 1 + 4 = 5;
  // X' = 2 - r * 2 / (sqrt(5) + 1e-6).
  graph::Node node = TrainingNode(
      "Adagrad", 5, 2,
      {{"decay_factor", Attribute::Float(0.1f)}, {"norm_coefficient", Attribute::Float(0.5f)}});
  auto out = RunAllKernelsAndCompare(
      node, 1,
      {Scalar(0.1), Step(2), Values({2}, {1}, DataType::kFloat64),
       Values({1}, {1}, DataType::kFloat64), Values({1}, {1}, DataType::kFloat64)});
  ASSERT_EQ(out.size(), 2u);
  const double r = 0.1 / 1.2;
  EXPECT_TRUE(TensorsNear(Values({2 - r * 2 / (std::sqrt(5.0) + 1e-6)}, {1}, DataType::kFloat64),
                          out[0], 1e-12, 1e-12));
  EXPECT_TRUE(TensorsNear(Values({5}, {1}, DataType::kFloat64), out[1], 0, 0));
}

TEST(OnnxAdamTest, ByHand) {
  // alpha 0.9, beta 0.999, eps 1e-6, post 0.1, T = 1:
  // V' = 0.1 G, H' = 0.001 G^2 with G = 2: V' = 0.2, H' = 0.004;
  // R' = 0.01 sqrt(0.001) / 0.1; X' = 0.9 (1 - R' 0.2 / (sqrt(0.004) + 1e-6)).
  graph::Node node =
      TrainingNode("Adam", 6, 3, {{"norm_coefficient_post", Attribute::Float(0.1f)}});
  auto out = RunAllKernelsAndCompare(
      node, 1,
      {Scalar(0.01), Step(1), Values({1}, {1}, DataType::kFloat64),
       Values({2}, {1}, DataType::kFloat64), Values({0}, {1}, DataType::kFloat64),
       Values({0}, {1}, DataType::kFloat64)});
  ASSERT_EQ(out.size(), 3u);
  const double r = 0.01 * std::sqrt(0.001) / 0.1;
  EXPECT_TRUE(TensorsNear(
      Values({0.9 * (1 - r * 0.2 / (std::sqrt(0.004) + 1e-6))}, {1}, DataType::kFloat64), out[0],
      1e-12, 1e-12));
  EXPECT_TRUE(TensorsNear(Values({0.2}, {1}, DataType::kFloat64), out[1], 1e-12, 1e-15));
  EXPECT_TRUE(TensorsNear(Values({0.004}, {1}, DataType::kFloat64), out[2], 1e-12, 1e-15));
}

// Big and many tensors exercise the fast kernels' chunked parallel loop.
TEST(OptimizerKernelsTest, FastMatchesReferenceOnLargeTensors) {
  const Shape big = {70001}, small = {3, 5};
  auto f32 = [](Shape s, uint32_t seed, float lo = -1, float hi = 1) {
    return RandomTensor(s, seed, lo, hi);
  };
  RunAllKernelsAndCompare(
      LasgdNode("SGDUpdate", 8, 5,
                {{"momentum", Attribute::Float(0.9f)}, {"nesterov", Attribute::Int(1)}}),
      1,
      {Scalar(0.1), Step(3), f32(big, 1), f32(small, 2), f32(big, 3), f32(small, 4), f32(big, 5),
       f32(small, 6)});
  RunAllKernelsAndCompare(
      LasgdNode("AdamUpdate", 10, 7,
                {{"weight_decay", Attribute::Float(0.01f)},
                 {"decoupled_weight_decay", Attribute::Int(1)}}),
      1,
      {Scalar(1e-3), Step(7), f32(big, 1), f32(small, 2), f32(big, 3), f32(small, 4), f32(big, 5),
       f32(small, 6), f32(big, 7, 0, 1), f32(small, 8, 0, 1)});
  RunAllKernelsAndCompare(LasgdNode("ClipGradNorm", 3, 3), 1,
                          {Scalar(1.0), f32(big, 1), f32(small, 2)});
  RunAllKernelsAndCompare(TrainingNode("Adagrad", 8, 4), 1,
                          {Scalar(0.1, DataType::kFloat32), Step(3), f32(big, 1), f32(small, 2),
                           f32(big, 3), f32(small, 4), f32(big, 5, 0, 1), f32(small, 6, 0, 1)});
  RunAllKernelsAndCompare(TrainingNode("Adam", 6, 3), 1,
                          {Scalar(0.1, DataType::kFloat32), Step(3), f32(big, 1), f32(big, 3),
                           f32(big, 5), f32(big, 7, 0, 1)});
}

// ---- bad inputs ----

void ExpectError(const graph::Node& node, const std::vector<Tensor>& inputs,
                 const std::vector<std::string>& fragments) {
  auto out = ops::EvaluateNode(node, 1, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error containing '" << fragments.front() << "'";
  for (const std::string& fragment : fragments) {
    EXPECT_NE(std::string(out.status().message()).find(fragment), std::string::npos)
        << "missing '" << fragment << "' in: " << out.status();
  }
}

TEST(OptimizerBadInputTest, ClearErrors) {
  const DataType f = DataType::kFloat32;
  Tensor p = Values({1, 2}, {2}, f), g = Values({1, 2}, {2}, f);
  graph::Attribute momentum = Attribute::Float(0.9f);
  // With momentum the buffers are a third group: 6 inputs is not 2 + 3N.
  ExpectError(LasgdNode("SGDUpdate", 6, 2, {{"momentum", momentum}}),
              {Scalar(0.1), Step(0), p, p, g, g}, {"2 + 3*N", "got 6 inputs", "B1..BN"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1), {Scalar(0.1), Step(0), p, Values({1, 2, 3}, {3}, f)},
              {"G1 (input 3) has shape [3] but P1 has [2]"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1),
              {Scalar(0.1), Step(0), p, Values({1, 2}, {2}, DataType::kFloat64)},
              {"G1 (input 3) has dtype float64 but P1 has float32"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1), {Values({0.1, 0.2}, {2}, f), Step(0), p, g},
              {"input lr must be a scalar", "[2]"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1), {Scalar(0.1), Scalar(0), p, g},
              {"input step must be an int64 scalar", "float64"});
  ExpectError(LasgdNode("SGDUpdate", 4, 3), {Scalar(0.1), Step(0), p, g},
              {"expects 1 outputs", "new step", "got 3"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1),
              {Scalar(0.1), Step(0), Values({1, 2}, {2}, DataType::kInt64),
               Values({1, 2}, {2}, DataType::kInt64)},
              {"P1 (input 2) must be float32 or float64; got int64"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1, {{"nesterov", Attribute::Int(1)}}),
              {Scalar(0.1), Step(0), p, g}, {"nesterov momentum requires momentum > 0"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1, {{"momentum", Attribute::Float(-0.5f)}}),
              {Scalar(0.1), Step(0), p, g}, {"momentum must be >= 0"});
  ExpectError(LasgdNode("SGDUpdate", 4, 1), {Scalar(0.1), Step(-1), p, g},
              {"input step must be >= 0; got -1"});
  ExpectError(LasgdNode("AdamUpdate", 6, 3, {{"beta2", Attribute::Float(1.0f)}}),
              {Scalar(0.1), Step(0), p, g, p, p}, {"beta2 must be in [0, 1)"});
  ExpectError(LasgdNode("AdamUpdate", 6, 3), {Scalar(0.1), Step(0), p, g, p, Values({1}, {1}, f)},
              {"V1 (input 5) has shape [1] but P1 has [2]"});
  ExpectError(TrainingNode("Momentum", 5, 2,
                           {{"alpha", Attribute::Float(0.9f)},
                            {"beta", Attribute::Float(0.1f)},
                            {"norm_coefficient", Attribute::Float(0.f)}}),
              {Scalar(0.1), Step(0), p, g, p}, {"Momentum needs the attribute 'mode'"});
  ExpectError(TrainingNode("Momentum", 5, 2,
                           {{"alpha", Attribute::Float(0.9f)},
                            {"beta", Attribute::Float(0.1f)},
                            {"norm_coefficient", Attribute::Float(0.f)},
                            {"mode", Attribute::String("heavy-ball")}}),
              {Scalar(0.1), Step(0), p, g, p}, {"'standard' or 'nesterov'", "heavy-ball"});
  ExpectError(TrainingNode("Momentum", 5, 2, {{"mode", Attribute::String("standard")}}),
              {Scalar(0.1), Step(0), p, g, p}, {"needs the float attribute 'alpha'"});
  ExpectError(TrainingNode("Adam", 7, 3), {Scalar(0.1), Step(0), p, g, p, p, p},
              {"2 + 4*N", "got 7 inputs"});
  ExpectError(LasgdNode("ClipGradNorm", 2, 2, {{"norm_type", Attribute::Float(-1.f)}}),
              {Scalar(1.0), g}, {"norm_type must be > 0"});
  ExpectError(LasgdNode("ClipGradNorm", 3, 2),
              {Scalar(1.0), g, Values({1}, {1}, DataType::kFloat64)},
              {"G2 (input 2) has dtype float64 but G1 has float32"});
  ExpectError(LasgdNode("ClipGradNorm", 2, 4), {Scalar(1.0), g}, {"expects 1 outputs", "got 4"});
}

}  // namespace
}  // namespace lasgd
