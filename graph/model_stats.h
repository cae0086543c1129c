// Facts about a model for lasgd-inspect: trainable parameters and FLOPs.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "graph/graph.h"

namespace lasgd::graph {

// Float initializers that reach a graph output through differentiable inputs
// (BatchNormalization's running statistics, shape tensors and constants are
// excluded), as PyTorch's `parameters()` would list them.
std::set<std::string> FindTrainableParameters(const Graph& graph);

// FLOPs of one pass over a graph whose shapes are inferred, from each op's
// schema (a multiply-add is 2).
double CountFlops(const Graph& graph);

// op type -> number of nodes.
std::map<std::string, int> OpHistogram(const Graph& graph);

}  // namespace lasgd::graph
