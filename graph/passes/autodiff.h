// Reverse-mode automatic differentiation over the graph IR.
//
// Walks the forward graph backwards from a scalar loss and asks each op's
// gradient builder (ops/gradient.h) for ordinary nodes that compute input
// gradients from output gradients; gradients reaching a value along several
// paths are summed. The emitted nodes are shape-inferred as they are emitted,
// so builders can ask for the shapes of anything, and errors name the node.
#pragma once

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "graph/graph.h"

namespace lasgd::graph {

struct AutodiffResult {
  // value -> the value holding d(loss)/d(value), for every requested value.
  std::map<std::string, std::string> gradients;
};

// Appends the backward nodes to `graph` (whose shapes must already be
// inferred) and returns the gradient of `loss` (a scalar) with respect to each
// of `wrt` (initializers or graph inputs). A value the loss does not depend on
// gets a zero gradient. An op on the path without a gradient builder is an
// error naming the node and op.
absl::StatusOr<AutodiffResult> BuildGradients(Graph& graph, const std::string& loss,
                                              const std::set<std::string>& wrt);

}  // namespace lasgd::graph
