#include "graph/model_stats.h"

#include "absl/strings/str_cat.h"
#include "ops/op_registry.h"

namespace lasgd::graph {

std::set<std::string> FindTrainableParameters(const Graph& graph) {
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    for (const std::string& out : graph.nodes[i].outputs) producer[out] = i;
  std::set<std::string> reached, params;
  std::vector<std::string> work;
  for (const ValueInfo& out : graph.outputs) work.push_back(out.name);
  while (!work.empty()) {
    std::string v = work.back();
    work.pop_back();
    if (!reached.insert(v).second) continue;
    auto init = graph.initializers.find(v);
    if (init != graph.initializers.end()) {
      if (IsFloatingPoint(init->second.dtype()) && !graph.constant_names.count(v)) params.insert(v);
      continue;
    }
    auto p = producer.find(v);
    if (p == producer.end()) continue;
    const Node& node = graph.nodes[p->second];
    auto schema = ops::OpRegistry::Global().Find(node, graph.OpsetFor(node.domain));
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.inputs[i].empty()) continue;
      if (schema.ok() && (*schema)->non_differentiable_inputs.count(static_cast<int>(i))) continue;
      work.push_back(node.inputs[i]);
    }
  }
  return params;
}

double CountFlops(const Graph& graph) {
  double total = 0;
  auto shape_of = [&](const std::string& v) -> Shape {
    auto it = graph.initializers.find(v);
    if (it != graph.initializers.end()) return it->second.shape();
    const ValueInfo* vi = graph.FindValueInfo(v);
    return vi ? vi->shape : Shape{};
  };
  for (const Node& node : graph.nodes) {
    auto schema = ops::OpRegistry::Global().Find(node, graph.OpsetFor(node.domain));
    if (!schema.ok() || !(*schema)->flops) continue;
    std::vector<Shape> ins, outs;
    for (const std::string& in : node.inputs) ins.push_back(in.empty() ? Shape{} : shape_of(in));
    for (const std::string& out : node.outputs)
      outs.push_back(out.empty() ? Shape{} : shape_of(out));
    total += (*schema)->flops(node, ins, outs);
  }
  return total;
}

std::map<std::string, int> OpHistogram(const Graph& graph) {
  std::map<std::string, int> histogram;
  for (const Node& node : graph.nodes) {
    ++histogram[node.domain.empty() ? node.op_type : absl::StrCat(node.domain, ".", node.op_type)];
  }
  return histogram;
}

}  // namespace lasgd::graph
