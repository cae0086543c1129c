#include <map>

#include "absl/strings/str_cat.h"
#include "graph/passes/passes.h"
#include "ops/op_registry.h"

namespace lasgd::graph {
namespace {

bool IsGraphOutput(const Graph& graph, const std::string& value) {
  for (const ValueInfo& out : graph.outputs)
    if (out.name == value) return true;
  return false;
}

}  // namespace

absl::Status FuseConvActivations(Graph& graph) {
  if (!ops::OpRegistry::Global().Knows("com.lasgd", "FusedConv")) return absl::OkStatus();
  // Count readers of every value so that we only fuse through values read once.
  std::map<std::string, int> readers;
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& in : graph.nodes[i].inputs) ++readers[in];
    for (const std::string& out : graph.nodes[i].outputs) producer[out] = i;
  }
  auto single_use = [&](const std::string& v) {
    return readers[v] == 1 && !IsGraphOutput(graph, v);
  };
  std::vector<bool> removed(graph.nodes.size(), false);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& relu = graph.nodes[i];
    if (relu.op_type != "Relu" || !relu.domain.empty()) continue;
    // Relu(Conv(x)) or Relu(Add(Conv(x), z)) / Relu(Add(z, Conv(x))).
    auto p = producer.find(relu.inputs[0]);
    if (p == producer.end() || !single_use(relu.inputs[0])) continue;
    Node* add = nullptr;
    Node* conv = &graph.nodes[p->second];
    std::string residual;
    if (conv->op_type == "Add" && conv->domain.empty() && conv->inputs.size() == 2) {
      add = conv;
      conv = nullptr;
      for (int side = 0; side < 2 && !conv; ++side) {
        auto q = producer.find(add->inputs[side]);
        if (q == producer.end() || !single_use(add->inputs[side])) continue;
        Node& cand = graph.nodes[q->second];
        if (cand.op_type != "Conv" || !cand.domain.empty() || cand.outputs.size() != 1) continue;
        // The residual must have exactly the conv output's shape (no broadcasting).
        const ValueInfo* a = graph.FindValueInfo(add->inputs[side]);
        const ValueInfo* b = graph.FindValueInfo(add->inputs[1 - side]);
        if (!a || !b || a->shape != b->shape || a->dtype != b->dtype) continue;
        conv = &cand;
        residual = add->inputs[1 - side];
      }
      if (!conv) continue;
    } else if (conv->op_type != "Conv" || !conv->domain.empty() || conv->outputs.size() != 1) {
      continue;
    }
    const ValueInfo* y = graph.FindValueInfo(conv->outputs[0]);
    if (!y || y->dtype != DataType::kFloat32) continue;
    conv->domain = "com.lasgd";
    conv->op_type = "FusedConv";
    conv->attributes["activation"] = Attribute::String("Relu");
    if (!residual.empty()) {
      conv->inputs.resize(3);
      conv->inputs.push_back(residual);
      removed[&*add - &graph.nodes[0]] = true;
    }
    graph.value_info.erase(conv->outputs[0]);
    conv->outputs[0] = relu.outputs[0];
    removed[i] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  if (!graph.opset_imports.count("com.lasgd")) graph.opset_imports["com.lasgd"] = 1;
  return graph.SortTopologically();
}

}  // namespace lasgd::graph
