#include "graph/verifier.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ops/op_registry.h"

namespace lasgd::graph {

std::vector<std::string> FindUnsupportedOps(const Graph& graph) {
  std::vector<std::string> problems;
  std::set<std::string> reported;
  for (const Node& node : graph.nodes) {
    int64_t opset = graph.OpsetFor(node.domain);
    std::string key = absl::StrCat(node.domain, ".", node.op_type, "@", opset);
    if (opset < 0) {
      problems.push_back(absl::StrCat(node.Describe(), ": the model imports no opset for domain '",
                                      node.domain, "'"));
      continue;
    }
    auto schema = ops::OpRegistry::Global().Find(node, opset);
    if (!schema.ok() && reported.insert(key).second)
      problems.push_back(std::string(schema.status().message()));
  }
  return problems;
}

absl::Status VerifyGraph(const Graph& graph) {
  std::vector<std::string> problems;
  for (const Node& node : graph.nodes) {
    for (const auto& [name, attr] : node.attributes) {
      if (attr.kind == Attribute::Kind::kGraph) {
        problems.push_back(
            absl::StrCat(node.Describe(), ": attribute '", name,
                         "' is a subgraph; control flow (If/Loop/Scan) is not supported"));
      }
    }
  }
  std::set<std::string> names;
  for (const ValueInfo& in : graph.inputs) {
    if (!names.insert(in.name).second)
      problems.push_back(absl::StrCat("graph input '", in.name, "' is listed twice"));
    if (!IsSupportedDataType(in.dtype)) {
      problems.push_back(absl::StrCat("graph input '", in.name, "' has unsupported type ",
                                      DataTypeName(in.dtype)));
    }
  }
  auto order = graph.TopologicalOrder();
  if (!order.ok()) problems.push_back(std::string(order.status().message()));
  std::set<std::string> produced;
  for (const Node& node : graph.nodes)
    for (const std::string& out : node.outputs) produced.insert(out);
  for (const ValueInfo& out : graph.outputs) {
    if (!produced.count(out.name) && !graph.IsInitializer(out.name) &&
        !graph.IsGraphInput(out.name)) {
      problems.push_back(absl::StrCat("graph output '", out.name, "' is not produced by any node"));
    }
  }
  std::vector<std::string> unsupported = FindUnsupportedOps(graph);
  problems.insert(problems.end(), unsupported.begin(), unsupported.end());
  if (problems.empty()) return absl::OkStatus();
  bool only_unsupported = problems.size() == unsupported.size();
  // One problem stays on one line, so that tools print a one-line error.
  std::string msg = problems.size() == 1
                        ? absl::StrCat("graph '", graph.name, "': ", problems[0])
                        : absl::StrCat(problems.size(), " problems in graph '", graph.name,
                                       "':\n  ", absl::StrJoin(problems, "\n  "));
  return only_unsupported ? absl::UnimplementedError(msg) : absl::InvalidArgumentError(msg);
}

}  // namespace lasgd::graph
