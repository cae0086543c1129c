#include <set>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "graph/passes/passes.h"

namespace lasgd::graph {
namespace {

// True when a Dropout node is a no-op: inference mode (no training_mode input,
// or a constant false one) and nobody reads the mask.
bool IsInferenceDropout(const Graph& graph, const Node& node) {
  if (node.op_type != "Dropout" || !node.domain.empty()) return false;
  if (node.HasOutput(1)) return false;
  if (node.HasInput(2)) {
    auto it = graph.initializers.find(node.inputs[2]);
    if (it == graph.initializers.end() || it->second.num_elements() != 1 ||
        it->second.GetAsDouble(0) != 0.0) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status SimplifyForInference(Graph& graph) {
  std::map<std::string, std::string> renamed;  // removed output -> its replacement
  std::vector<Node> kept;
  for (Node& node : graph.nodes) {
    for (std::string& in : node.inputs) {
      auto it = renamed.find(in);
      if (it != renamed.end()) in = it->second;
    }
    bool passthrough =
        (node.op_type == "Identity" && node.domain.empty()) || IsInferenceDropout(graph, node);
    if (passthrough && !node.inputs.empty() && !graph.IsRequiredValue(node.outputs[0])) {
      renamed[node.outputs[0]] = node.inputs[0];
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  for (const auto& [from, to] : renamed) graph.value_info.erase(from);
  return absl::OkStatus();
}

absl::Status EliminateDeadNodes(Graph& graph) {
  std::set<std::string> live;
  for (const ValueInfo& out : graph.outputs) live.insert(out.name);
  for (const auto& [state, source] : graph.state_updates) live.insert(source);
  std::vector<bool> keep(graph.nodes.size(), false);
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    const Node& node = graph.nodes[i];
    for (const std::string& out : node.outputs)
      keep[i] = keep[i] || (!out.empty() && live.count(out));
    if (!keep[i]) continue;
    for (const std::string& in : node.inputs)
      if (!in.empty()) live.insert(in);
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  for (auto it = graph.initializers.begin(); it != graph.initializers.end();) {
    if (!live.count(it->first) && graph.constant_names.count(it->first)) {
      graph.constant_names.erase(it->first);
      it = graph.initializers.erase(it);
    } else {
      ++it;
    }
  }
  return absl::OkStatus();
}

}  // namespace lasgd::graph
