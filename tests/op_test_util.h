// Shared helpers for op tests: build a node, run it on every kernel candidate
// and compare against the reference kernel or expected values.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"
#include "gtest/gtest.h"
#include "ops/evaluate_node.h"
#include "runtime/tensor.h"

namespace lasgd::testing {

// Makes a node with inputs named in0.., outputs out0.. and the given attributes.
graph::Node MakeNode(const std::string& op_type, int num_inputs, int num_outputs,
                     std::map<std::string, graph::Attribute> attributes = {});

// A tensor of `shape` filled with deterministic pseudo-random values in [lo, hi).
Tensor RandomTensor(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f,
                    DataType dtype = DataType::kFloat32);

// Fails the test unless `actual` has `expected`'s dtype and shape and every
// element satisfies |a - e| <= atol + rtol * |e|.
::testing::AssertionResult TensorsNear(const Tensor& expected, const Tensor& actual,
                                       double rtol = 1e-5, double atol = 1e-6);

// Runs the node with every kernel candidate registered for it and checks each
// against the "reference" candidate. Returns the reference outputs.
std::vector<Tensor> RunAllKernelsAndCompare(const graph::Node& node, int64_t opset,
                                            const std::vector<Tensor>& inputs, double rtol = 1e-4,
                                            double atol = 1e-5);

}  // namespace lasgd::testing
