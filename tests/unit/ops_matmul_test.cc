// Tests of MatMul and Gemm: every kernel against the reference, the reference
// against hand-computed values and an independent naive product, bad inputs.
#include <string>
#include <vector>

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

void ExpectError(const graph::Node& node, int64_t opset, const std::vector<Tensor>& inputs,
                 const std::string& fragment) {
  auto out = ops::EvaluateNode(node, opset, inputs);
  ASSERT_FALSE(out.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(std::string(out.status().message()).find(fragment), std::string::npos) << out.status();
}

Tensor Typed(DataType dtype, const std::vector<double>& values, Shape shape) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.SetFromDouble(i, values[i]);
  return t;
}

TEST(MatMulTest, HandComputed2D) {
  // [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]]
  for (DataType dtype : {DataType::kFloat32, DataType::kFloat64, DataType::kInt32, DataType::kInt64,
                         DataType::kUint32, DataType::kUint64}) {
    SCOPED_TRACE(DataTypeName(dtype));
    auto out = RunAllKernelsAndCompare(
        MakeNode("MatMul", 2, 1), 13,
        {Typed(dtype, {1, 2, 3, 4}, {2, 2}), Typed(dtype, {5, 6, 7, 8}, {2, 2})});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(TensorsNear(Typed(dtype, {19, 22, 43, 50}, {2, 2}), out[0], 0, 0));
  }
}

TEST(MatMulTest, VectorPromotion) {
  Tensor a = Tensor::FromFloats({1, 2, 3}, {3});
  Tensor b = Tensor::FromFloats({4, 5, 6}, {3});
  auto dot = RunAllKernelsAndCompare(MakeNode("MatMul", 2, 1), 13, {a, b});
  ASSERT_EQ(dot.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({32}, {}), dot[0], 0, 0));

  // [3] x [2,3,2]: each batch's row vector times a 3x2 matrix -> [2,2].
  Tensor m = Tensor::FromFloats({1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 1, -1}, {2, 3, 2});
  auto vm = RunAllKernelsAndCompare(MakeNode("MatMul", 2, 1), 13, {a, m});
  ASSERT_EQ(vm.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({4, 5, 5, 1}, {2, 2}), vm[0], 0, 0));

  // [2,2,3] x [3] -> [2,2]
  Tensor n = Tensor::FromFloats({1, 0, 0, 0, 1, 0, 1, 1, 1, -1, 0, 2}, {2, 2, 3});
  auto mv = RunAllKernelsAndCompare(MakeNode("MatMul", 2, 1), 13, {n, a});
  ASSERT_EQ(mv.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({1, 2, 6, 5}, {2, 2}), mv[0], 0, 0));
}

// An independent naive broadcast product in double.
Tensor NaiveBatchedMatMul(const Tensor& a, const Tensor& b, const Shape& out_shape) {
  Tensor y = Tensor::Allocate(DataType::kFloat32, out_shape);
  int64_t r = static_cast<int64_t>(out_shape.size());
  int64_t k = a.dim(-1);
  std::vector<int64_t> idx(r, 0);
  for (int64_t f = 0; f < y.num_elements(); ++f) {
    int64_t rem = f;
    for (int64_t d = r - 1; d >= 0; --d) {
      idx[d] = rem % out_shape[d];
      rem /= out_shape[d];
    }
    auto offset = [&](const Tensor& t, int64_t row, int64_t col) {
      int64_t off = 0, stride = 1;
      for (int64_t d = t.rank() - 1; d >= 0; --d) {
        int64_t od = d + (r - t.rank());
        int64_t i = d == t.rank() - 1 ? col : d == t.rank() - 2 ? row : idx[od];
        if (t.dim(d) == 1) i = 0;
        off += i * stride;
        stride *= t.dim(d);
      }
      return off;
    };
    double s = 0;
    for (int64_t p = 0; p < k; ++p) {
      s += a.GetAsDouble(offset(a, idx[r - 2], p)) * b.GetAsDouble(offset(b, p, idx[r - 1]));
    }
    y.SetFromDouble(f, s);
  }
  return y;
}

TEST(MatMulTest, BatchBroadcastingAgainstNaiveProduct) {
  struct Case {
    Shape a, b, out;
  };
  for (const Case& c : std::vector<Case>{{{2, 1, 3, 4}, {5, 4, 2}, {2, 5, 3, 2}},
                                         {{4, 3, 5}, {5, 6}, {4, 3, 6}},
                                         {{4, 3, 5}, {4, 5, 6}, {4, 3, 6}},
                                         {{3, 5}, {2, 5, 6}, {2, 3, 6}},
                                         {{1, 3, 5}, {2, 5, 6}, {2, 3, 6}},
                                         {{2, 3, 3, 5}, {1, 1, 5, 2}, {2, 3, 3, 2}},
                                         {{7, 9}, {9, 11}, {7, 11}}}) {
    SCOPED_TRACE(ShapeToString(c.a) + " x " + ShapeToString(c.b));
    Tensor a = RandomTensor(c.a, 11), b = RandomTensor(c.b, 12);
    auto out = RunAllKernelsAndCompare(MakeNode("MatMul", 2, 1), 13, {a, b});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(TensorsNear(NaiveBatchedMatMul(a, b, c.out), out[0], 1e-5, 1e-6));
    // oneDNN must take every float32 case, not silently leave it to the reference.
    auto fast = ops::EvaluateNode(MakeNode("MatMul", 2, 1), 13, {a, b}, {"onednn"});
    EXPECT_TRUE(fast.ok()) << fast.status();
  }
}

TEST(MatMulTest, LargeFloat32AgreesWithReference) {
  RunAllKernelsAndCompare(MakeNode("MatMul", 2, 1), 13,
                          {RandomTensor({8, 64, 96}, 1), RandomTensor({96, 80}, 2)}, 1e-4, 1e-4);
}

TEST(MatMulTest, IntegerWrapsLikeTwosComplement) {
  Tensor a = Typed(DataType::kInt32, {65536, 0}, {1, 2});
  Tensor b = Typed(DataType::kInt32, {65536, 1}, {2, 1});
  auto out = RunAllKernelsAndCompare(MakeNode("MatMul", 2, 1), 13, {a, b});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data<int32_t>()[0], 0);  // 2^32 wraps to 0
}

TEST(MatMulTest, EmptyInnerDimensionGivesZeros) {
  auto out = RunAllKernelsAndCompare(
      MakeNode("MatMul", 2, 1), 13,
      {Tensor::Allocate(DataType::kFloat32, {2, 0}), Tensor::Allocate(DataType::kFloat32, {0, 3})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({0, 0, 0, 0, 0, 0}, {2, 3}), out[0], 0, 0));
}

TEST(MatMulTest, RejectsBadInputs) {
  ExpectError(MakeNode("MatMul", 2, 1), 13, {RandomTensor({2, 3}, 1), RandomTensor({4, 2}, 2)},
              "inner dimensions differ");
  ExpectError(MakeNode("MatMul", 2, 1), 13,
              {RandomTensor({2, 2, 3}, 1), RandomTensor({3, 3, 2}, 2)}, "do not broadcast");
  ExpectError(MakeNode("MatMul", 2, 1), 13, {Tensor::FromFloats({1}, {}), RandomTensor({1}, 2)},
              "rank >= 1");
  ExpectError(MakeNode("MatMul", 2, 1), 13,
              {RandomTensor({2, 3}, 1), RandomTensor({3, 2}, 2, -1, 1, DataType::kFloat64)},
              "same dtype");
  Tensor i = Typed(DataType::kInt64, {1, 2, 3, 4}, {2, 2});
  ExpectError(MakeNode("MatMul", 2, 1), 8, {i, i}, "float32 or float64 inputs at opset 8");
}

TEST(MatMulTest, Flops) {
  auto schema = ops::OpRegistry::Global().Find(MakeNode("MatMul", 2, 1), 13);
  ASSERT_TRUE(schema.ok());
  ASSERT_TRUE((*schema)->flops);
  // 2 * batch(2) * M(3) * N(5) * K(4)
  EXPECT_EQ((*schema)->flops(MakeNode("MatMul", 2, 1), {{2, 3, 4}, {4, 5}}, {{2, 3, 5}}), 240.0);
}

// A = [[1,2,3],[4,5,6]] (2x3), B = [[1,0],[0,1],[1,1]] (3x2): AB = [[4,5],[10,11]].
Tensor GemmA() { return Tensor::FromFloats({1, 2, 3, 4, 5, 6}, {2, 3}); }
Tensor GemmB() { return Tensor::FromFloats({1, 0, 0, 1, 1, 1}, {3, 2}); }
Tensor Transposed(const Tensor& t) {
  Tensor out = Tensor::Allocate(t.dtype(), {t.dim(1), t.dim(0)});
  for (int64_t i = 0; i < t.dim(0); ++i) {
    for (int64_t j = 0; j < t.dim(1); ++j)
      out.SetFromDouble(j * t.dim(0) + i, t.GetAsDouble(i * t.dim(1) + j));
  }
  return out;
}

TEST(GemmTest, HandComputedWithEveryCBroadcast) {
  struct Case {
    Tensor c;
    std::vector<float> expected;  // AB + C
  };
  std::vector<Case> cases = {
      {Tensor::FromFloats({10, 20, 30, 40}, {2, 2}), {14, 25, 40, 51}},
      {Tensor::FromFloats({10, 20}, {2}), {14, 25, 20, 31}},
      {Tensor::FromFloats({10, 20}, {1, 2}), {14, 25, 20, 31}},
      {Tensor::FromFloats({10, 20}, {2, 1}), {14, 15, 30, 31}},
      {Tensor::FromFloats({10}, {}), {14, 15, 20, 21}},
      {Tensor::FromFloats({10}, {1}), {14, 15, 20, 21}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.c.TypeString());
    auto out = RunAllKernelsAndCompare(MakeNode("Gemm", 3, 1), 13, {GemmA(), GemmB(), c.c});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(TensorsNear(Tensor::FromFloats(c.expected, {2, 2}), out[0], 0, 0));
    EXPECT_TRUE(
        ops::EvaluateNode(MakeNode("Gemm", 3, 1), 13, {GemmA(), GemmB(), c.c}, {"onednn"}).ok());
  }
}

TEST(GemmTest, AlphaBetaAndTransposes) {
  // 0.5 * AB + 2 * C with C = [[1,2],[3,4]]: [[4,6.5],[11,13.5]]
  Tensor c = Tensor::FromFloats({1, 2, 3, 4}, {2, 2});
  Tensor expected = Tensor::FromFloats({4, 6.5, 11, 13.5}, {2, 2});
  for (int ta : {0, 1}) {
    for (int tb : {0, 1}) {
      SCOPED_TRACE(ta * 10 + tb);
      graph::Node node = MakeNode("Gemm", 3, 1,
                                  {{"alpha", Attribute::Float(0.5f)},
                                   {"beta", Attribute::Float(2.f)},
                                   {"transA", Attribute::Int(ta)},
                                   {"transB", Attribute::Int(tb)}});
      Tensor a = ta ? Transposed(GemmA()) : GemmA();
      Tensor b = tb ? Transposed(GemmB()) : GemmB();
      for (int64_t opset : {7, 9, 11, 13, 21}) {
        auto out = RunAllKernelsAndCompare(node, opset, {a, b, c});
        ASSERT_EQ(out.size(), 1u);
        EXPECT_TRUE(TensorsNear(expected, out[0], 0, 0));
      }
      EXPECT_TRUE(ops::EvaluateNode(node, 13, {a, b, c}, {"onednn"}).ok());
    }
  }
}

TEST(GemmTest, OptionalCFromOpset11) {
  auto out = RunAllKernelsAndCompare(MakeNode("Gemm", 2, 1, {{"alpha", Attribute::Float(2.f)}}), 11,
                                     {GemmA(), GemmB()});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(TensorsNear(Tensor::FromFloats({8, 10, 20, 22}, {2, 2}), out[0], 0, 0));
  ExpectError(MakeNode("Gemm", 2, 1), 10, {GemmA(), GemmB()}, "takes 3 to 3");
}

TEST(GemmTest, KernelsAgreeOnLargerShapes) {
  for (Shape c_shape : std::vector<Shape>{{33}, {17, 33}, {17, 1}, {}}) {
    for (float beta : {0.f, 1.f, -0.5f}) {
      graph::Node node = MakeNode("Gemm", 3, 1,
                                  {{"transB", Attribute::Int(1)},
                                   {"alpha", Attribute::Float(beta == 1.f ? 1.f : 1.5f)},
                                   {"beta", Attribute::Float(beta)}});
      RunAllKernelsAndCompare(
          node, 13,
          {RandomTensor({17, 40}, 1), RandomTensor({33, 40}, 2), RandomTensor(c_shape, 3)}, 1e-4,
          1e-5);
    }
  }
}

TEST(GemmTest, IntegerAndFloat64) {
  for (DataType dtype : {DataType::kFloat64, DataType::kInt32, DataType::kInt64}) {
    SCOPED_TRACE(DataTypeName(dtype));
    auto out = RunAllKernelsAndCompare(
        MakeNode("Gemm", 3, 1), 13,
        {Typed(dtype, {1, 2, 3, 4, 5, 6}, {2, 3}), Typed(dtype, {1, 0, 0, 1, 1, 1}, {3, 2}),
         Typed(dtype, {-10, 20}, {2})});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(TensorsNear(Typed(dtype, {-6, 25, 0, 31}, {2, 2}), out[0], 0, 0));
  }
}

TEST(GemmTest, RejectsBadInputs) {
  ExpectError(MakeNode("Gemm", 2, 1), 13, {RandomTensor({2, 3, 1}, 1), GemmB()}, "must be 2-D");
  ExpectError(MakeNode("Gemm", 2, 1), 13, {GemmA(), GemmA()}, "inner dimensions differ");
  ExpectError(MakeNode("Gemm", 3, 1), 13, {GemmA(), GemmB(), RandomTensor({3}, 1)},
              "does not broadcast");
  ExpectError(MakeNode("Gemm", 3, 1), 13, {GemmA(), GemmB(), RandomTensor({2, 2, 1}, 1)},
              "does not broadcast");
  Tensor i = Typed(DataType::kInt32, {1, 2, 3, 4}, {2, 2});
  ExpectError(MakeNode("Gemm", 3, 1), 7, {i, i, i}, "at opset 7");
}

TEST(GemmTest, Flops) {
  graph::Node node = MakeNode("Gemm", 3, 1, {{"transA", Attribute::Int(1)}});
  auto schema = ops::OpRegistry::Global().Find(node, 13);
  ASSERT_TRUE(schema.ok());
  // A' = A^T with A [K=4, M=3]; 2*M*N*K + 2*M*N for the C term.
  EXPECT_EQ((*schema)->flops(node, {{4, 3}, {4, 5}, {5}}, {{3, 5}}), 2.0 * 3 * 5 * 4 + 2.0 * 15);
}

// A plan may mark B constant (an inference model's weights): the oneDNN
// kernel then lets oneDNN choose B's layout and reorders B into it once.
TEST(GemmTest, ConstantWeightsAreReadOnce) {
  for (const char* op : {"Gemm", "MatMul"}) {
    SCOPED_TRACE(op);
    const bool gemm = std::string(op) == "Gemm";
    graph::Node node = MakeNode(op, gemm ? 3 : 2, 1);
    if (gemm) node.attributes["transB"] = Attribute::Int(1);
    Tensor a = RandomTensor({6, 40}, 1), b = RandomTensor(gemm ? Shape{24, 40} : Shape{40, 24}, 2);
    Tensor c = RandomTensor({24}, 3);
    std::vector<Tensor> inputs = {a, b};
    if (gemm) inputs.push_back(c);
    auto expected = ops::EvaluateNode(node, 13, inputs, {"reference"});
    ASSERT_TRUE(expected.ok()) << expected.status();
    auto schema = ops::OpRegistry::Global().Find(node, 13);
    ASSERT_TRUE(schema.ok());
    ops::KernelBuildContext bctx{node, 13, {}, {}, {DataType::kFloat32}, {{6, 24}}, {nullptr, &b}};
    for (const Tensor& t : inputs) {
      bctx.input_dtypes.push_back(t.dtype());
      bctx.input_shapes.push_back(t.shape());
    }
    auto kernel = ops::BuildKernel(**schema, bctx, "onednn", nullptr, nullptr);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    for (int run = 0; run < 2; ++run) {
      Tensor y = Tensor::Allocate(DataType::kFloat32, {6, 24});
      std::vector<const Tensor*> ins = {&a, &b};
      if (gemm) ins.push_back(&c);
      ops::KernelContext kctx(node, ins, {&y});
      ASSERT_TRUE((*kernel)->Run(kctx).ok());
      EXPECT_TRUE(TensorsNear((*expected)[0], y, 1e-4, 1e-5)) << "run " << run;
    }
  }
}

}  // namespace
}  // namespace lasgd
