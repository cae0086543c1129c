// Conv [-> Add(residual)] [-> Relu | Clip] chains become one com.lasgd
// FusedConv, so that oneDNN applies the add (a sum post-op) and the
// activation (an eltwise post-op) while the output is still in cache:
//   ResNet's   Relu(Add(Conv(x), identity)),  Relu(Conv(x))
//   MobileNet's Clip(Conv(x), 0, 6) (ReLU6),  Add(Conv(x), x)
// Only values read once (by the next op of the chain) are fused through.
#include <limits>
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

bool IsOnnxOp(const Node& node, const char* op_type) {
  return node.op_type == op_type && (node.domain.empty() || node.domain == "ai.onnx");
}

// A float32 scalar initializer's value.
bool ScalarInitializer(const Graph& graph, const std::string& name, float* value) {
  auto it = graph.initializers.find(name);
  if (it == graph.initializers.end() || it->second.dtype() != DataType::kFloat32 ||
      it->second.num_elements() != 1) {
    return false;
  }
  *value = it->second.data<float>()[0];
  return true;
}

// The bounds of a Clip whose min and max are known at compile time
// (attributes before opset 11, constant inputs since); false otherwise.
bool ConstantClipBounds(const Graph& graph, const Node& clip, float* lo, float* hi) {
  *lo = -std::numeric_limits<float>::infinity();
  *hi = std::numeric_limits<float>::infinity();
  if (graph.OpsetFor("") < 11) {
    *lo = clip.GetFloat("min", std::numeric_limits<float>::lowest());
    *hi = clip.GetFloat("max", std::numeric_limits<float>::max());
  } else {
    if (clip.HasInput(1) && !ScalarInitializer(graph, clip.inputs[1], lo)) return false;
    if (clip.HasInput(2) && !ScalarInitializer(graph, clip.inputs[2], hi)) return false;
  }
  // min > max means "everything is max" in ONNX, which no eltwise_clip does.
  return !(*lo > *hi) && *lo == *lo && *hi == *hi;
}

}  // namespace

absl::Status FuseConvActivations(Graph& graph) {
  if (!ops::OpRegistry::Global().Knows("com.lasgd", "FusedConv")) return absl::OkStatus();
  // Readers of every value, so that we only fuse through values read once.
  std::map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    for (const std::string& in : graph.nodes[i].inputs)
      if (!in.empty()) readers[in].push_back(i);
  std::vector<bool> removed(graph.nodes.size(), false);
  // The node that alone reads `value` (and that is still there), or nullptr.
  auto sole_reader = [&](const std::string& value) -> Node* {
    auto it = readers.find(value);
    if (it == readers.end() || it->second.size() != 1 || IsGraphOutput(graph, value))
      return nullptr;
    if (removed[it->second[0]]) return nullptr;
    return &graph.nodes[it->second[0]];
  };
  bool changed = false;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& conv = graph.nodes[i];
    if (removed[i] || !IsOnnxOp(conv, "Conv") || conv.outputs.size() != 1) continue;
    const ValueInfo* y = graph.FindValueInfo(conv.outputs[0]);
    if (!y || y->dtype != DataType::kFloat32 || !y->IsStatic()) continue;
    std::string tail = conv.outputs[0];  // the chain's current output
    Node* add = nullptr;
    std::string residual;
    if (Node* next = sole_reader(tail);
        next && IsOnnxOp(*next, "Add") && next->inputs.size() == 2 && next->outputs.size() == 1) {
      const std::string& other = next->inputs[0] == tail ? next->inputs[1] : next->inputs[0];
      const ValueInfo* z = graph.FindValueInfo(other);
      // Z must have exactly the conv output's shape (no broadcasting).
      if (other != tail && z && z->shape == y->shape && z->dtype == y->dtype) {
        add = next;
        residual = other;
        tail = next->outputs[0];
      }
    }
    Node* activation = nullptr;
    float clip_lo = 0, clip_hi = 0;
    if (Node* next = sole_reader(tail); next && next->outputs.size() == 1) {
      if (IsOnnxOp(*next, "Relu") ||
          (IsOnnxOp(*next, "Clip") && ConstantClipBounds(graph, *next, &clip_lo, &clip_hi))) {
        activation = next;
        tail = next->outputs[0];
      }
    }
    if (!add && !activation) continue;
    conv.domain = "com.lasgd";
    conv.op_type = "FusedConv";
    if (activation) {
      conv.attributes["activation"] = Attribute::String(activation->op_type);
      if (activation->op_type == "Clip") {
        conv.attributes["clip_min"] = Attribute::Float(clip_lo);
        conv.attributes["clip_max"] = Attribute::Float(clip_hi);
      }
      removed[activation - graph.nodes.data()] = true;
    }
    if (add) {
      conv.inputs.resize(3);
      conv.inputs.push_back(residual);
      removed[add - graph.nodes.data()] = true;
    }
    // The chain's inner values vanish; the FusedConv writes the last one.
    graph.value_info.erase(conv.outputs[0]);
    if (add && activation) graph.value_info.erase(add->outputs[0]);
    conv.outputs[0] = tail;
    changed = true;
  }
  if (!changed) return absl::OkStatus();
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  if (!graph.opset_imports.count("com.lasgd")) graph.opset_imports["com.lasgd"] = 1;
  return graph.SortTopologically();
}

}  // namespace lasgd::graph
