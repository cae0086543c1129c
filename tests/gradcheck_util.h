// Finite-difference gradient checks for gradient builders (ops/gradient.h).
#pragma once

#include <vector>

#include "common/status.h"
#include "graph/graph.h"
#include "gtest/gtest.h"
#include "runtime/tensor.h"

namespace lasgd::testing {

struct GradCheckOptions {
  // Which node inputs to differentiate; empty = every floating-point input.
  // The others become compile-time constants (so Reshape's shape etc. work).
  std::vector<int> wrt;
  double eps = 1e-6;   // central-difference step
  double rtol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double atol = 1e-7;
  // Check at most this many elements per input (evenly spaced); 0 = all.
  int max_elements_per_input = 64;
  uint32_t seed = 7;  // for the random output weights
};

// Builds a one-node graph, a loss sum_o sum(W_o * output_o) with random
// constant W_o, differentiates it with the autodiff pass, and compares every
// requested input gradient with central finite differences of the loss.
// Inputs should be float64 for a meaningful check.
::testing::AssertionResult CheckGradients(const graph::Node& node, int64_t opset,
                                          const std::vector<Tensor>& inputs,
                                          const GradCheckOptions& options = {});

}  // namespace lasgd::testing
