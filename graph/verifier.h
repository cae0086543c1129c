// Structural checks on an imported graph, reporting every problem at once:
// SSA form, cycles, dangling inputs, unknown ops and opsets, control flow.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "graph/graph.h"

namespace lasgd::graph {

// Every node whose (domain, op, opset) has no schema, as
// "node 'x' (Foo): op 'Foo' of domain 'ai.onnx' is not supported ..." lines.
std::vector<std::string> FindUnsupportedOps(const Graph& graph);

// OK, or an InvalidArgument/Unimplemented error listing every problem found.
absl::Status VerifyGraph(const Graph& graph);

}  // namespace lasgd::graph
