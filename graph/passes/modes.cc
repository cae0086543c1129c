// Switching a forward graph between training and inference behaviour:
// BatchNormalization (batch statistics + running-stat updates vs running
// statistics) and Dropout (random mask vs identity).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "graph/passes/passes.h"

namespace lasgd::graph {
namespace {

bool IsOp(const Node& node, const char* op) { return node.op_type == op && node.domain.empty(); }

// Fails if any node reads one of `dropped` (outputs we are about to remove).
absl::Status CheckUnread(const Graph& graph, const Node& owner,
                         const std::vector<std::string>& dropped) {
  for (const std::string& v : dropped) {
    if (v.empty()) continue;
    if (graph.IsRequiredValue(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(owner.Describe(), ": output '", v,
                       "' is a graph output but has no meaning in inference mode"));
    }
    for (const Node& n : graph.nodes) {
      for (const std::string& in : n.inputs) {
        if (in == v) {
          return absl::InvalidArgumentError(
              absl::StrCat(owner.Describe(), ": output '", v, "' is read by ", n.Describe(),
                           ", but it does not exist in inference mode"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ToInferenceMode(Graph& graph) {
  const int64_t opset = graph.OpsetFor("");
  std::map<std::string, std::string> renamed;
  std::vector<Node> kept;
  for (Node& node : graph.nodes) {
    for (std::string& in : node.inputs) {
      auto it = renamed.find(in);
      if (it != renamed.end()) in = it->second;
    }
    if (IsOp(node, "BatchNormalization")) {
      if (node.outputs.size() > 1) {
        RETURN_IF_ERROR(CheckUnread(graph, node, {node.outputs.begin() + 1, node.outputs.end()}));
        node.outputs.resize(1);
      }
      if (opset >= 14) node.attributes["training_mode"] = Attribute::Int(0);
    } else if (IsOp(node, "Dropout")) {
      if (node.outputs.size() > 1) RETURN_IF_ERROR(CheckUnread(graph, node, {node.outputs[1]}));
      if (graph.IsRequiredValue(node.outputs[0])) {
        Node identity;
        identity.name = node.name;
        identity.op_type = "Identity";
        identity.inputs = {node.inputs[0]};
        identity.outputs = {node.outputs[0]};
        kept.push_back(std::move(identity));
      } else {
        renamed[node.outputs[0]] = node.inputs[0];
      }
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  for (auto& [from, to] : renamed) graph.value_info.erase(from);
  return absl::OkStatus();
}

absl::Status ToTrainingMode(Graph& graph) {
  const int64_t opset = graph.OpsetFor("");
  const std::string kTrue = "lasgd_training_mode_true";
  for (Node& node : graph.nodes) {
    if (IsOp(node, "BatchNormalization")) {
      if (node.inputs.size() < 5)
        return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": needs 5 inputs"));
      if (!graph.IsInitializer(node.inputs[3]) || !graph.IsInitializer(node.inputs[4])) {
        return absl::InvalidArgumentError(
            absl::StrCat(node.Describe(),
                         ": running mean and variance must be initializers to be "
                         "updated during training"));
      }
      size_t n_out = opset >= 14 ? 3 : 5;
      node.outputs.resize(n_out);
      for (size_t o = 1; o < n_out; ++o) {
        if (node.outputs[o].empty()) node.outputs[o] = absl::StrCat(node.outputs[0], "__bn_out", o);
      }
      if (opset >= 14) node.attributes["training_mode"] = Attribute::Int(1);
      graph.state_updates.push_back({node.inputs[3], node.outputs[1]});
      graph.state_updates.push_back({node.inputs[4], node.outputs[2]});
      // The running statistics are state now: never fold through them.
      graph.constant_names.erase(node.inputs[3]);
      graph.constant_names.erase(node.inputs[4]);
    } else if (IsOp(node, "Dropout") && opset >= 12) {
      if (!graph.initializers.count(kTrue)) {
        Tensor t = Tensor::Allocate(DataType::kBool, {});
        t.SetFromDouble(0, 1.0);
        graph.initializers[kTrue] = t;
        graph.constant_names.insert(kTrue);
      }
      node.inputs.resize(3);
      node.inputs[2] = kTrue;
    }
  }
  return absl::OkStatus();
}

}  // namespace lasgd::graph
