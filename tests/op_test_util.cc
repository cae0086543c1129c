#include "tests/op_test_util.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace lasgd::testing {

graph::Node MakeNode(const std::string& op_type, int num_inputs, int num_outputs,
                     std::map<std::string, graph::Attribute> attributes) {
  graph::Node node;
  node.name = "test_" + op_type;
  node.op_type = op_type;
  for (int i = 0; i < num_inputs; ++i) node.inputs.push_back(absl::StrCat("in", i));
  for (int i = 0; i < num_outputs; ++i) node.outputs.push_back(absl::StrCat("out", i));
  node.attributes = std::move(attributes);
  return node;
}

Tensor RandomTensor(Shape shape, uint32_t seed, float lo, float hi, DataType dtype) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetFromDouble(i, dist(rng));
  return t;
}

::testing::AssertionResult TensorsNear(const Tensor& expected, const Tensor& actual, double rtol,
                                       double atol) {
  if (expected.dtype() != actual.dtype() || expected.shape() != actual.shape()) {
    return ::testing::AssertionFailure()
           << "expected " << expected.TypeString() << ", got " << actual.TypeString();
  }
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < expected.num_elements(); ++i) {
    double e = expected.GetAsDouble(i), a = actual.GetAsDouble(i);
    bool ok = (std::isnan(e) && std::isnan(a)) || e == a ||
              std::fabs(a - e) <= atol + rtol * std::fabs(e);
    if (!ok && bad++ == 0) first = absl::StrCat("element ", i, ": expected ", e, ", got ", a);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << expected.num_elements() << " elements differ; first " << first;
}

std::vector<Tensor> RunAllKernelsAndCompare(const graph::Node& node, int64_t opset,
                                            const std::vector<Tensor>& inputs, double rtol,
                                            double atol) {
  auto schema = ops::OpRegistry::Global().Find(node, opset);
  EXPECT_TRUE(schema.ok()) << schema.status();
  if (!schema.ok()) return {};
  auto reference = ops::EvaluateNode(node, opset, inputs, {"reference"});
  EXPECT_TRUE(reference.ok()) << reference.status();
  if (!reference.ok()) return {};
  for (const ops::KernelCandidate& k : (*schema)->kernels) {
    if (k.name == "reference") continue;
    auto out = ops::EvaluateNode(node, opset, inputs, {k.name});
    if (!out.ok()) continue;  // this candidate declined the node: nothing to compare
    for (size_t i = 0; i < out->size(); ++i) {
      if (!node.HasOutput(i)) continue;
      EXPECT_TRUE(TensorsNear((*reference)[i], (*out)[i], rtol, atol))
          << "kernel '" << k.name << "' output " << i << " vs reference";
    }
  }
  return *reference;
}

}  // namespace lasgd::testing
