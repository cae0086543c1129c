// Finite-difference checks (float64) of the gradient builders of the
// elementwise, activation, shape, reduce and misc families
// (ops/{elementwise,activation,shape,reduce,misc}_grad.cc) and, through them,
// of the com.lasgd backward ops they emit (ops/elementwise_backward.cc,
// ops/shape_backward.cc). Cases cover broadcasting and the opsets where an
// op's form differs (attributes that became inputs, Softmax's 2-D coercion).
// Inputs keep clear of kinks (Relu at 0, Clip bounds, ties in Max).
//
// The lowest opset used is 8: the harness's loss (com.lasgd.ReduceSumTo) has
// a gradient built from ai.onnx Expand, which opset 7 lacks.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "graph/passes/autodiff.h"
#include "graph/passes/passes.h"
#include "gtest/gtest.h"
#include "runtime/executor.h"
#include "tests/gradcheck_util.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::CheckGradients;
using testing::GradCheckOptions;
using Attrs = std::map<std::string, Attribute>;

Tensor Random(Shape shape, uint32_t seed, double lo = -1, double hi = 1) {
  return testing::RandomTensor(std::move(shape), seed, static_cast<float>(lo),
                               static_cast<float>(hi), DataType::kFloat64);
}

// Random values with |x| in [0.1, 1]: away from the kinks at 0.
Tensor AwayFromZero(Shape shape, uint32_t seed) {
  Tensor t = Random(std::move(shape), seed, 0.1, 1.0);
  for (int64_t i = 0; i < t.num_elements(); i += 2) t.SetFromDouble(i, -t.GetAsDouble(i));
  return t;
}

Tensor F64(Shape shape, const std::vector<double>& values) {
  Tensor t = Tensor::Allocate(DataType::kFloat64, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, values[i]);
  return t;
}

// A 1-D int64 tensor.
Tensor I64(const std::vector<int64_t>& values) {
  return Tensor::FromInt64s(values, {static_cast<int64_t>(values.size())});
}
Tensor I64(const std::vector<int64_t>& values, Shape shape) {
  return Tensor::FromInt64s(values, std::move(shape));
}

Tensor Bool(Shape shape, const std::vector<int>& values) {
  Tensor t = Tensor::Allocate(DataType::kBool, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<bool>()[i] = values[i] != 0;
  return t;
}

struct Case {
  std::string name;
  std::string op;
  int64_t opset;
  std::function<std::vector<Tensor>()> inputs;  // "" input names for undefined tensors
  Attrs attrs = {};
  std::vector<int> wrt = {};  // empty: every float input
  int outputs = 1;
  std::string domain = "";
};

graph::Node NodeFor(const Case& c, const std::vector<Tensor>& inputs) {
  graph::Node node = testing::MakeNode(c.op, static_cast<int>(inputs.size()), c.outputs, c.attrs);
  node.domain = c.domain;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) node.inputs[i].clear();
  }
  return node;
}

class EwGradTest : public ::testing::TestWithParam<Case> {};

TEST_P(EwGradTest, MatchesFiniteDifferences) {
  const Case& c = GetParam();
  std::vector<Tensor> inputs = c.inputs();
  GradCheckOptions options;
  options.wrt = c.wrt;
  EXPECT_TRUE(CheckGradients(NodeFor(c, inputs), c.opset, inputs, options));
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::string CaseName(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

// ---- elementwise ----

std::vector<Case> ElementwiseCases() {
  std::vector<Case> cases;
  for (int64_t opset : {8, 17}) {
    const std::string s = std::to_string(opset);
    cases.push_back({"AddBroadcast" + s, "Add", opset, [] {
                       return std::vector<Tensor>{Random({2, 3, 4}, 1), Random({3, 1}, 2)};
                     }});
    cases.push_back({"SubBroadcastBoth" + s, "Sub", opset, [] {
                       return std::vector<Tensor>{Random({2, 3}, 3), Random({2, 1, 3}, 4)};
                     }});
    cases.push_back({"MulBroadcast" + s, "Mul", opset, [] {
                       return std::vector<Tensor>{Random({4, 1, 3}, 5), Random({2, 3}, 6)};
                     }});
    cases.push_back({"DivBroadcast" + s, "Div", opset, [] {
                       return std::vector<Tensor>{Random({2, 3}, 7), Random({3}, 8, 0.5, 2)};
                     }});
    cases.push_back({"PowBroadcast" + s, "Pow", opset, [] {
                       return std::vector<Tensor>{Random({2, 3}, 9, 0.5, 2), Random({3}, 10)};
                     }});
    cases.push_back(
        {"MaxThree" + s, "Max", opset, [] {
           return std::vector<Tensor>{Random({2, 3}, 11), Random({3}, 12), Random({2, 1}, 13)};
         }});
    cases.push_back(
        {"MinThree" + s, "Min", opset, [] {
           return std::vector<Tensor>{Random({2, 3}, 14), Random({3}, 15), Random({2, 1}, 16)};
         }});
    cases.push_back(
        {"SumBroadcast" + s, "Sum", opset, [] {
           return std::vector<Tensor>{Random({2, 3}, 17), Random({3}, 18), Random({2, 1}, 19)};
         }});
    cases.push_back({"MeanBroadcast" + s, "Mean", opset, [] {
                       return std::vector<Tensor>{Random({2, 3}, 20), Random({1, 3}, 21)};
                     }});
  }
  cases.push_back({"SumSameShape8", "Sum", 8, [] {
                     return std::vector<Tensor>{Random({2, 3}, 22), Random({2, 3}, 23)};
                   }});
  cases.push_back({"MaxSingle13", "Max", 13, [] { return std::vector<Tensor>{Random({4}, 24)}; }});
  // Opset 12 lets the exponent be an integer; only the base has a gradient.
  cases.push_back({"PowIntExponent15", "Pow", 15, [] {
                     return std::vector<Tensor>{Random({2, 3}, 25, -2, 2), I64({2, 3, 1})};
                   }});
  cases.push_back({"Neg", "Neg", 13, [] { return std::vector<Tensor>{Random({2, 3}, 26)}; }});
  cases.push_back({"Sqrt", "Sqrt", 13, [] {
                     return std::vector<Tensor>{Random({2, 3}, 27, 0.2, 2)};
                   }});
  cases.push_back({"Reciprocal", "Reciprocal", 13, [] {
                     return std::vector<Tensor>{AwayFromZero({2, 3}, 28)};
                   }});
  cases.push_back({"Exp", "Exp", 13, [] { return std::vector<Tensor>{Random({2, 3}, 29)}; }});
  cases.push_back({"Log", "Log", 13, [] {
                     return std::vector<Tensor>{Random({2, 3}, 30, 0.2, 2)};
                   }});
  cases.push_back({"Abs", "Abs", 13, [] { return std::vector<Tensor>{AwayFromZero({2, 3}, 31)}; }});
  cases.push_back({"Erf", "Erf", 13, [] {
                     return std::vector<Tensor>{Random({2, 3}, 32, -2, 2)};
                   }});
  // Clip: values in (-1, 1) with bounds at +-0.5 land clear of them.
  cases.push_back({"ClipAttributes8",
                   "Clip",
                   8,
                   [] {
                     return std::vector<Tensor>{F64({6}, {-0.9, -0.6, -0.3, 0.2, 0.4, 0.8})};
                   },
                   {{"min", Attribute::Float(-0.5f)}, {"max", Attribute::Float(0.5f)}}});
  cases.push_back({"ClipInputs13",
                   "Clip",
                   13,
                   [] {
                     return std::vector<Tensor>{F64({6}, {-0.9, -0.6, -0.3, 0.2, 0.4, 0.8}),
                                                F64({}, {-0.5}), F64({}, {0.5})};
                   },
                   {},
                   {0}});
  cases.push_back({"ClipMaxOnly13",
                   "Clip",
                   13,
                   [] {
                     return std::vector<Tensor>{F64({6}, {-0.9, -0.6, -0.3, 0.2, 0.4, 0.8}),
                                                Tensor(), F64({}, {0.5})};
                   },
                   {},
                   {0}});
  cases.push_back({"CastDoubleToDouble",
                   "Cast",
                   13,
                   [] {
                     return std::vector<Tensor>{Random({2, 3}, 33)};
                   },
                   {{"to", Attribute::Int(static_cast<int64_t>(DataType::kFloat64))}}});
  for (int64_t opset : {9, 16}) {
    cases.push_back({"WhereBroadcast" + std::to_string(opset), "Where", opset, [] {
                       return std::vector<Tensor>{Bool({2, 3}, {1, 0, 1, 0, 0, 1}),
                                                  Random({2, 3}, 34), Random({3}, 35)};
                     }});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Elementwise, EwGradTest, ::testing::ValuesIn(ElementwiseCases()),
                         CaseName);

// float64 -> float32 -> loss: the numeric side has float32 precision, so the
// step and tolerance are wider.
TEST(EwGradCast, DoubleToFloatCastsTheGradientBack) {
  graph::Node node = testing::MakeNode(
      "Cast", 1, 1, {{"to", Attribute::Int(static_cast<int64_t>(DataType::kFloat32))}});
  GradCheckOptions options;
  options.eps = 1e-2;
  options.rtol = 1e-3;
  options.atol = 1e-4;
  EXPECT_TRUE(CheckGradients(node, 13, {Random({2, 3}, 36)}, options));
}

// ---- activation ----

std::vector<Case> ActivationCases() {
  auto x = [](uint32_t seed, double lo = -3, double hi = 3) {
    return [=] { return std::vector<Tensor>{Random({2, 3, 4}, seed, lo, hi)}; };
  };
  std::vector<Case> cases = {
      {"Relu", "Relu", 14,
       [] {
         return std::vector<Tensor>{AwayFromZero({2, 3, 4}, 40)};
       }},
      {"LeakyRelu",
       "LeakyRelu",
       16,
       [] {
         return std::vector<Tensor>{AwayFromZero({2, 3, 4}, 41)};
       },
       {{"alpha", Attribute::Float(0.1f)}}},
      {"LeakyReluDefault8", "LeakyRelu", 8,
       [] {
         return std::vector<Tensor>{AwayFromZero({2, 3, 4}, 42)};
       }},
      {"Sigmoid", "Sigmoid", 13, x(43)},
      {"Tanh", "Tanh", 13, x(44)},
      {"HardSigmoid", "HardSigmoid", 13, x(45, -4, 4)},
      {"HardSigmoidAttrs",
       "HardSigmoid",
       13,
       x(46, -4, 4),
       {{"alpha", Attribute::Float(0.3f)}, {"beta", Attribute::Float(0.4f)}}},
      {"HardSwish", "HardSwish", 14, x(47, -5, 5)},
      {"Gelu", "Gelu", 20, x(48)},
      {"GeluTanh", "Gelu", 20, x(49), {{"approximate", Attribute::String("tanh")}}},
      {"MicrosoftGelu", "Gelu", 13, x(50), {}, {}, 1, "com.microsoft"},
      {"Softplus", "Softplus", 13, x(51)},
      {"Elu",
       "Elu",
       13,
       [] {
         return std::vector<Tensor>{AwayFromZero({2, 3, 4}, 52)};
       },
       {{"alpha", Attribute::Float(0.7f)}}},
      {"Selu", "Selu", 13,
       [] {
         return std::vector<Tensor>{AwayFromZero({2, 3, 4}, 53)};
       }},
  };
  // Softmax and LogSoftmax: opset 11 flattens to 2-D at axis; 13 uses one axis.
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    const std::string o = op;
    cases.push_back({o + "Coerce2dDefault11", op, 11, x(54)});
    cases.push_back({o + "Coerce2dAxis2_11", op, 11, x(55), {{"axis", Attribute::Int(2)}}});
    cases.push_back({o + "Coerce2dAxis0_11", op, 11, x(56), {{"axis", Attribute::Int(0)}}});
    cases.push_back({o + "Default13", op, 13, x(57)});
    cases.push_back({o + "InnerAxis13", op, 13, x(58), {{"axis", Attribute::Int(1)}}});
    cases.push_back({o + "Axis0_13", op, 13, x(59), {{"axis", Attribute::Int(0)}}});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Activation, EwGradTest, ::testing::ValuesIn(ActivationCases()), CaseName);

// ---- shape ----

std::vector<Case> ShapeCases() {
  std::vector<Case> cases = {
      {"Reshape", "Reshape", 13,
       [] {
         return std::vector<Tensor>{Random({2, 3, 4}, 60), I64({4, -1})};
       }},
      {"Flatten",
       "Flatten",
       13,
       [] {
         return std::vector<Tensor>{Random({2, 3, 4}, 61)};
       },
       {{"axis", Attribute::Int(2)}}},
      {"SqueezeAttr11",
       "Squeeze",
       11,
       [] {
         return std::vector<Tensor>{Random({2, 1, 3}, 62)};
       },
       {{"axes", Attribute::Ints({-2})}}},
      {"SqueezeInput13", "Squeeze", 13,
       [] {
         return std::vector<Tensor>{Random({2, 1, 3, 1}, 63), I64({1, 3})};
       }},
      {"UnsqueezeAttr11",
       "Unsqueeze",
       11,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 64)};
       },
       {{"axes", Attribute::Ints({0, 3})}}},
      {"UnsqueezeInput13", "Unsqueeze", 13,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 65), I64({-1})};
       }},
      {"Transpose",
       "Transpose",
       13,
       [] {
         return std::vector<Tensor>{Random({2, 3, 4}, 66)};
       },
       {{"perm", Attribute::Ints({1, 2, 0})}}},
      {"TransposeDefault", "Transpose", 13,
       [] {
         return std::vector<Tensor>{Random({2, 3, 4}, 67)};
       }},
      {"ConcatNegativeAxis11",
       "Concat",
       11,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 68), Random({2, 1}, 69), Random({2, 2}, 70)};
       },
       {{"axis", Attribute::Int(-1)}}},
      {"ConcatSomeInputs8",
       "Concat",
       8,
       [] {
         return std::vector<Tensor>{Random({1, 3}, 71), Random({2, 3}, 72)};
       },
       {{"axis", Attribute::Int(0)}},
       {1}},
      {"SplitAttr11",
       "Split",
       11,
       [] {
         return std::vector<Tensor>{Random({2, 5}, 73)};
       },
       {{"axis", Attribute::Int(1)}, {"split", Attribute::Ints({2, 3})}},
       {},
       2},
      {"SplitInput13",
       "Split",
       13,
       [] {
         return std::vector<Tensor>{Random({5, 2}, 74), I64({1, 3, 1})};
       },
       {},
       {},
       3},
      {"SplitNumOutputs18",
       "Split",
       18,
       [] {
         return std::vector<Tensor>{Random({2, 5}, 75)};
       },
       {{"axis", Attribute::Int(-1)}, {"num_outputs", Attribute::Int(3)}},
       {},
       3},
      {"SliceAttr9",
       "Slice",
       9,
       [] {
         return std::vector<Tensor>{Random({4, 5}, 76)};
       },
       {{"starts", Attribute::Ints({1, -4})}, {"ends", Attribute::Ints({100, -1})}}},
      {"SliceSteps13", "Slice", 13,
       [] {
         return std::vector<Tensor>{Random({4, 6, 3}, 77), I64({-1, 1}), I64({-100, 6}),
                                    I64({0, -2}), I64({-2, 2})};
       }},
      {"SliceAxes10", "Slice", 10,
       [] {
         return std::vector<Tensor>{Random({3, 4}, 78), I64({1}), I64({3}), I64({1})};
       }},
      {"GatherAxis1Negative11",
       "Gather",
       11,
       [] {
         return std::vector<Tensor>{Random({2, 4, 3}, 79), I64({-1, 0, 3, 0}, {2, 2})};
       },
       {{"axis", Attribute::Int(1)}}},
      {"GatherScalarIndex13", "Gather", 13,
       [] {
         return std::vector<Tensor>{Random({4, 3}, 80), I64({2}, {})};
       }},
      {"Expand", "Expand", 13,
       [] {
         return std::vector<Tensor>{Random({3, 1}, 81), I64({2, 3, 4})};
       }},
      {"Tile", "Tile", 13,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 82), I64({2, 1})};
       }},
      {"Tile3d", "Tile", 13,
       [] {
         return std::vector<Tensor>{Random({2, 1, 3}, 83), I64({1, 3, 2})};
       }},
      {"PadAttr8",
       "Pad",
       8,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 84)};
       },
       {{"pads", Attribute::Ints({1, 0, 0, 2})}}},
      {"PadCrop11", "Pad", 11,
       [] {
         return std::vector<Tensor>{Random({3, 4}, 85), I64({1, -1, -1, 2})};
       }},
      {"PadConstantValue11",
       "Pad",
       11,
       [] {
         return std::vector<Tensor>{Random({3, 4}, 86), I64({0, 1, 1, 0}), F64({}, {2.5})};
       },
       {},
       {0}},
      {"PadReflect13",
       "Pad",
       13,
       [] {
         return std::vector<Tensor>{Random({3, 4}, 87), I64({1, 2, 2, 1})};
       },
       {{"mode", Attribute::String("reflect")}}},
      {"PadEdge13",
       "Pad",
       13,
       [] {
         return std::vector<Tensor>{Random({3, 4}, 88), I64({2, 0, 1, 3})};
       },
       {{"mode", Attribute::String("edge")}}},
      {"PadWrapAxes19",
       "Pad",
       19,
       [] {
         return std::vector<Tensor>{Random({3, 4}, 89), I64({1, 2}), Tensor(), I64({-1})};
       },
       {{"mode", Attribute::String("wrap")}}},
  };
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shape, EwGradTest, ::testing::ValuesIn(ShapeCases()), CaseName);

// ---- reduce ----

std::vector<Case> ReduceCases() {
  std::vector<Case> cases;
  struct Op {
    const char* name;
    int64_t input_from;
    double lo, hi;  // input range keeping clear of kinks and log's domain
  };
  const Op ops[] = {
      {"ReduceSum", 13, -1, 1}, {"ReduceMean", 18, -1, 1},      {"ReduceMax", 18, -1, 1},
      {"ReduceMin", 18, -1, 1}, {"ReduceSumSquare", 18, -1, 1}, {"ReduceL1", 18, 0.1, 1},
      {"ReduceL2", 18, -1, 1},  {"ReduceLogSum", 18, 0.1, 1},   {"ReduceLogSumExp", 18, -1, 1}};
  uint32_t seed = 100;
  for (const Op& op : ops) {
    const std::string n = op.name;
    const double lo = op.lo, hi = op.hi;
    ++seed;
    // Attribute axes, keepdims 0.
    cases.push_back({n + "AttrAxesNoKeep11",
                     op.name,
                     11,
                     [=] {
                       return std::vector<Tensor>{Random({2, 3, 4}, seed, lo, hi)};
                     },
                     {{"axes", Attribute::Ints({0, -1})}, {"keepdims", Attribute::Int(0)}}});
    // Every axis (no axes given), keepdims 1.
    cases.push_back({n + "AllAxes11", op.name, 11, [=] {
                       return std::vector<Tensor>{Random({2, 3}, seed + 50, lo, hi)};
                     }});
    // Axes as an input.
    cases.push_back({n + "InputAxes" + std::to_string(op.input_from),
                     op.name,
                     op.input_from,
                     [=] {
                       return std::vector<Tensor>{Random({2, 3, 4}, seed + 100, lo, hi), I64({1})};
                     },
                     {{"keepdims", Attribute::Int(0)}}});
  }
  cases.push_back({"ReduceSumNoopEmptyAxes13",
                   "ReduceSum",
                   13,
                   [] {
                     return std::vector<Tensor>{Random({2, 3}, 160)};
                   },
                   {{"noop_with_empty_axes", Attribute::Int(1)}}});
  cases.push_back({"ReduceMeanAxesKeep18", "ReduceMean", 18, [] {
                     return std::vector<Tensor>{Random({2, 3, 4}, 161), I64({0, 2})};
                   }});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Reduce, EwGradTest, ::testing::ValuesIn(ReduceCases()), CaseName);

// ---- misc ----

std::vector<Case> MiscCases() {
  return {
      {"Identity", "Identity", 13,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 170)};
       }},
      {"DropoutInference8",
       "Dropout",
       8,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 171)};
       },
       {{"ratio", Attribute::Float(0.3f)}}},
      {"DropoutInferenceMask10",
       "Dropout",
       10,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 172)};
       },
       {},
       {},
       2},
      {"DropoutTrainingFalse13",
       "Dropout",
       13,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 173), F64({}, {0.4}), Bool({}, {0})};
       },
       {},
       {0}},
      // Training with ratio 0 keeps every unit and scales by 1: deterministic.
      {"DropoutTrainingRatio0_13",
       "Dropout",
       13,
       [] {
         return std::vector<Tensor>{Random({2, 3}, 174), F64({}, {0.0}), Bool({}, {1})};
       },
       {},
       {0}},
  };
}

INSTANTIATE_TEST_SUITE_P(Misc, EwGradTest, ::testing::ValuesIn(MiscCases()), CaseName);

// ---- whole-graph checks the single-node harness cannot express ----

struct GraphRun {
  std::map<std::string, Tensor> outputs;
  std::string grad;  // name of dX
};

// loss = sum(W * node_output_0) over `node` fed X; returns the node's outputs
// and dloss/dX.
absl::StatusOr<GraphRun> RunWithGradient(graph::Node node, int64_t opset, const Tensor& x,
                                         const Tensor& w,
                                         const std::map<std::string, Tensor>& constants) {
  graph::Graph g;
  g.opset_imports[""] = opset;
  g.opset_imports["com.lasgd"] = 1;
  graph::ValueInfo in;
  in.name = "x";
  in.dtype = x.dtype();
  in.shape = x.shape();
  in.has_shape = true;
  in.dim_params.assign(in.shape.size(), "");
  g.inputs.push_back(in);
  for (const auto& [name, t] : constants) {
    g.initializers[name] = t;
    g.constant_names.insert(name);
  }
  g.initializers["w"] = w;
  g.constant_names.insert("w");
  g.nodes.push_back(node);
  graph::Node mul;
  mul.name = "mul";
  mul.op_type = "Mul";
  mul.inputs = {node.outputs[0], "w"};
  mul.outputs = {"prod"};
  graph::Node sum;
  sum.name = "sum";
  sum.op_type = "ReduceSumTo";
  sum.domain = "com.lasgd";
  sum.inputs = {"prod"};
  sum.outputs = {"loss"};
  sum.attributes["shape"] = Attribute::Ints({});
  g.nodes.push_back(mul);
  g.nodes.push_back(sum);
  graph::ValueInfo loss;
  loss.name = "loss";
  g.outputs.push_back(loss);
  RETURN_IF_ERROR(graph::InferShapesAndFoldConstants(g, {}));
  ASSIGN_OR_RETURN(graph::AutodiffResult grads, graph::BuildGradients(g, "loss", {"x"}));
  GraphRun run;
  run.grad = grads.gradients.at("x");
  for (const std::string& name : node.outputs) {
    graph::ValueInfo vi;
    vi.name = name;
    g.outputs.push_back(vi);
  }
  graph::ValueInfo gv;
  gv.name = run.grad;
  g.outputs.push_back(gv);
  runtime::CompileOptions options;
  options.pipeline.fuse = false;
  ASSIGN_OR_RETURN(auto exec, runtime::Executor::Create(g, options));
  ASSIGN_OR_RETURN(run.outputs, exec->Run({{"x", x.Clone()}}));
  return run;
}

// A random mask cannot be finite-differenced; check dX = W * mask / (1 - ratio)
// against the mask the forward run drew.
TEST(EwGradDropout, TrainingUsesTheForwardMaskAndScale) {
  graph::Node node = testing::MakeNode("Dropout", 3, 1);
  node.inputs = {"x", "ratio", "training"};
  node.outputs = {"y"};  // the autodiff pass adds the mask output
  const double ratio = 0.25;
  Tensor x = Random({8, 16}, 180, 0.5, 1.5);
  Tensor w = Random({8, 16}, 181);
  auto run =
      RunWithGradient(node, 13, x, w, {{"ratio", F64({}, {ratio})}, {"training", Bool({}, {1})}});
  ASSERT_TRUE(run.ok()) << run.status();
  const Tensor& y = run->outputs.at("y");
  const Tensor& dx = run->outputs.at(run->grad);
  int dropped = 0;
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    // x > 0, so y == 0 exactly when the unit was dropped.
    const bool kept = y.GetAsDouble(i) != 0.0;
    dropped += kept ? 0 : 1;
    const double expected = kept ? w.GetAsDouble(i) / (1 - ratio) : 0.0;
    ASSERT_NEAR(dx.GetAsDouble(i), expected, 1e-12) << "element " << i;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, x.num_elements());
}

// Only output 0 of the Split reaches the loss: output 1's part of dX is zero.
TEST(EwGradSplit, OutputsWithoutGradientContributeZeros) {
  graph::Node node = testing::MakeNode("Split", 1, 2, {{"axis", Attribute::Int(1)}});
  node.inputs = {"x"};
  node.outputs = {"a", "b"};
  Tensor x = Random({2, 4}, 182);
  Tensor w = Random({2, 2}, 183);
  auto run = RunWithGradient(node, 13, x, w, {});
  ASSERT_TRUE(run.ok()) << run.status();
  const Tensor& dx = run->outputs.at(run->grad);
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t c = 0; c < 4; ++c) {
      const double expected = c < 2 ? w.GetAsDouble(r * 2 + c) : 0.0;
      EXPECT_DOUBLE_EQ(dx.GetAsDouble(r * 4 + c), expected);
    }
  }
}

// Ties in ReduceMax share the gradient evenly among the winners.
TEST(EwGradReduceMax, TiesShareTheGradient) {
  graph::Node node = testing::MakeNode(
      "ReduceMax", 1, 1, {{"axes", Attribute::Ints({1})}, {"keepdims", Attribute::Int(0)}});
  node.inputs = {"x"};
  node.outputs = {"y"};
  Tensor x = F64({2, 3}, {1, 3, 3, 2, 0, -1});
  Tensor w = F64({2}, {6, 10});
  auto run = RunWithGradient(node, 11, x, w, {});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(
      testing::TensorsNear(F64({2, 3}, {0, 3, 3, 10, 0, 0}), run->outputs.at(run->grad), 0, 1e-12));
}

}  // namespace
}  // namespace lasgd
