// com.lasgd StatelessDropout (ops/stateless_dropout.cc): the mask is a pure
// function of (seed, counter, element), so the same counter gives the same
// mask in any process, another counter or seed another mask; kept elements
// are scaled by 1 / (1 - ratio) and about 1 - ratio of them are kept.
#include <cmath>

#include "ops/evaluate_node.h"
#include "tests/op_test_util.h"

namespace lasgd {
namespace {

using graph::Attribute;
using testing::MakeNode;
using testing::RandomTensor;

Tensor Scalar(double v, DataType dtype) {
  Tensor t = Tensor::Allocate(dtype, {});
  t.SetFromDouble(0, v);
  return t;
}

graph::Node DropoutNode(int64_t seed) {
  graph::Node node = MakeNode("StatelessDropout", 3, 2, {{"seed", Attribute::Int(seed)}});
  node.domain = "com.lasgd";
  return node;
}

std::vector<Tensor> RunDropout(const Tensor& x, double ratio, int64_t counter, int64_t seed) {
  auto out =
      ops::EvaluateNode(DropoutNode(seed), 1,
                        {x, Scalar(ratio, DataType::kFloat32), Scalar(counter, DataType::kInt64)});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<Tensor>{};
}

int64_t Differences(const Tensor& a, const Tensor& b) {
  int64_t n = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) n += a.GetAsDouble(i) != b.GetAsDouble(i);
  return n;
}

TEST(StatelessDropoutTest, ScalesKeptElementsAndKeepsAboutOneMinusRatio) {
  const Tensor x = RandomTensor({200, 300}, 5, 0.5f, 1.5f);
  for (double ratio : {0.1, 0.5, 0.9}) {
    auto out = RunDropout(x, ratio, 7, 11);
    ASSERT_EQ(out.size(), 2u);
    ASSERT_EQ(out[1].dtype(), DataType::kBool);
    int64_t kept = 0;
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      const bool keep = out[1].GetAsDouble(i) != 0;
      kept += keep;
      const double want = keep ? x.GetAsDouble(i) / (1 - ratio) : 0.0;
      ASSERT_NEAR(out[0].GetAsDouble(i), want, 1e-6 * std::fabs(want)) << i;
    }
    const double n = static_cast<double>(x.num_elements());
    const double sd = std::sqrt(n * ratio * (1 - ratio));
    EXPECT_NEAR(kept, n * (1 - ratio), 5 * sd) << "ratio " << ratio;
  }
  // ratio 0 keeps everything.
  auto all = RunDropout(x, 0.0, 3, 11);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(Differences(all[0], x), 0);
}

TEST(StatelessDropoutTest, MaskIsAFunctionOfSeedAndCounter) {
  const Tensor x = RandomTensor({64, 64}, 6, 0.5f, 1.5f);
  auto a = RunDropout(x, 0.5, 42, 1);
  auto again = RunDropout(x, 0.5, 42, 1);
  auto next = RunDropout(x, 0.5, 43, 1);
  auto other_seed = RunDropout(x, 0.5, 42, 2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(Differences(a[1], again[1]), 0);
  EXPECT_EQ(Differences(a[0], again[0]), 0);
  // Independent masks agree on about half of the elements.
  const int64_t n = x.num_elements();
  EXPECT_NEAR(Differences(a[1], next[1]), n / 2, n / 10);
  EXPECT_NEAR(Differences(a[1], other_seed[1]), n / 2, n / 10);
}

TEST(StatelessDropoutTest, BadRatioAndCounterAreErrors) {
  const Tensor x = RandomTensor({4, 4}, 7);
  auto bad_ratio = ops::EvaluateNode(
      DropoutNode(0), 1, {x, Scalar(1.0, DataType::kFloat32), Scalar(0, DataType::kInt64)});
  EXPECT_FALSE(bad_ratio.ok());
  auto bad_counter = ops::EvaluateNode(
      DropoutNode(0), 1, {x, Scalar(0.5, DataType::kFloat32), Scalar(0, DataType::kFloat32)});
  EXPECT_FALSE(bad_counter.ok());
}

}  // namespace
}  // namespace lasgd
