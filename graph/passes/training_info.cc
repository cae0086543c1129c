// ONNX's standard training (TrainingInfoProto), executed as written: see
// BuildTrainingInfoProgram in graph/passes/training.h.
//
// The spec defines a step as running the inference graph and the algorithm
// graph combined (inputs, initializers, nodes concatenated in that order),
// then assigning each update_binding value to its initializer. The standard
// ai.onnx.preview.training Gradient node (attributes xs, y) stands for
// "d y / d xs over the graph that computes y"; we build that graph with our
// own autodiff pass, so a model can say "the gradient of this loss" without
// spelling the backward out.
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "graph/passes/autodiff.h"
#include "graph/passes/passes.h"
#include "graph/passes/training.h"

namespace lasgd::graph {
namespace {

constexpr char kTrainingDomain[] = "ai.onnx.preview.training";

bool IsGradientNode(const Node& node) {
  return node.op_type == "Gradient" && node.domain == kTrainingDomain;
}

// Appends the algorithm graph to `g` (the inference graph).
absl::Status Combine(Graph& g, const Graph& algorithm) {
  for (const ValueInfo& in : algorithm.inputs) {
    if (g.IsGraphInput(in.name) || g.IsInitializer(in.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the algorithm's input '", in.name, "' is already defined by the inference graph"));
    }
    g.inputs.push_back(in);
  }
  for (const auto& [name, t] : algorithm.initializers) {
    if (!g.initializers.emplace(name, t).second) {
      return absl::InvalidArgumentError(absl::StrCat("the algorithm's initializer '", name,
                                                     "' is already an initializer of the model"));
    }
  }
  g.constant_names.insert(algorithm.constant_names.begin(), algorithm.constant_names.end());
  for (const auto& [name, vi] : algorithm.value_info) g.value_info.emplace(name, vi);
  for (const auto& [domain, version] : algorithm.opset_imports) {
    int64_t& v = g.opset_imports[domain];
    v = std::max(v, version);
  }
  g.nodes.insert(g.nodes.end(), algorithm.nodes.begin(), algorithm.nodes.end());
  return absl::OkStatus();
}

// Replaces every Gradient node by the backward nodes of autodiff and an
// Identity per output. Gradient nodes, and the nodes that read what they
// compute, leave the graph while the backward is built (the shape inference
// it needs cannot see through a Gradient node), then come back.
absl::Status ExpandGradients(Graph& g, const ShapeBinding& binding) {
  RETURN_IF_ERROR(g.SortTopologically());
  std::vector<Node> kept, gradients, downstream;
  std::set<std::string> pending;  // values computed by or after a Gradient node
  for (Node& node : g.nodes) {
    bool reads_pending = false;
    for (const std::string& in : node.inputs) reads_pending |= pending.count(in) > 0;
    if (IsGradientNode(node) || reads_pending) {
      for (const std::string& out : node.outputs) pending.insert(out);
      (IsGradientNode(node) ? gradients : downstream).push_back(std::move(node));
    } else {
      kept.push_back(std::move(node));
    }
  }
  if (gradients.empty()) {
    g.nodes = std::move(kept);
    return absl::OkStatus();
  }
  g.nodes = std::move(kept);
  std::vector<ValueInfo> outputs = g.outputs;
  g.outputs.clear();
  // The state variables keep their names as their own sources meanwhile
  // (their update sources may be downstream): inference must not fold them.
  std::vector<std::pair<std::string, std::string>> updates = g.state_updates;
  for (auto& [state, source] : g.state_updates) source = state;
  for (const Node& node : gradients) {
    std::string y = node.GetString("y", "");
    if (y.empty()) return absl::InvalidArgumentError(node.Describe() + ": attribute y is missing");
    if (pending.count(y)) {
      return absl::UnimplementedError(absl::StrCat(
          node.Describe(), ": y '", y, "' is computed from another Gradient node's output"));
    }
    ValueInfo vi;
    vi.name = y;
    g.outputs.push_back(vi);
  }
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(g, binding),
                      "while preparing the algorithm graph for its Gradient nodes");
  for (const Node& node : gradients) {
    const Attribute* xs_attr = node.FindAttribute("xs");
    if (xs_attr == nullptr || xs_attr->strings.empty())
      return absl::InvalidArgumentError(node.Describe() + ": attribute xs is missing or empty");
    const std::vector<std::string>& xs = xs_attr->strings;
    const Attribute* zs = node.FindAttribute("zs");
    if (zs != nullptr && !zs->strings.empty()) {
      return absl::UnimplementedError(node.Describe() +
                                      ": attribute zs (inputs held constant) is not supported");
    }
    if (node.outputs.size() != xs.size()) {
      return absl::InvalidArgumentError(absl::StrCat(node.Describe(), " has ", node.outputs.size(),
                                                     " outputs for ", xs.size(), " xs"));
    }
    for (const std::string& x : xs) {
      if (pending.count(x) || !(g.IsInitializer(x) || g.IsGraphInput(x) || g.value_info.count(x))) {
        return absl::InvalidArgumentError(
            absl::StrCat(node.Describe(), ": xs names '", x, "', which is not a value before it"));
      }
    }
    auto grads =
        BuildGradients(g, node.GetString("y", ""), std::set<std::string>(xs.begin(), xs.end()));
    if (!grads.ok())
      return WithContext(grads.status(), absl::StrCat("while expanding ", node.Describe()));
    for (size_t i = 0; i < xs.size(); ++i) {
      if (node.outputs[i].empty()) continue;
      Node identity;
      identity.name = absl::StrCat(node.name, "/grad_", i);
      identity.op_type = "Identity";
      identity.inputs = {grads->gradients.at(xs[i])};
      identity.outputs = {node.outputs[i]};
      g.nodes.push_back(std::move(identity));
    }
  }
  g.nodes.insert(g.nodes.end(), std::make_move_iterator(downstream.begin()),
                 std::make_move_iterator(downstream.end()));
  g.outputs = std::move(outputs);
  g.state_updates = std::move(updates);
  return absl::OkStatus();
}

std::string Known(const std::map<std::string, Tensor>& initializers) {
  std::vector<std::string> names;
  for (const auto& [name, t] : initializers) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<TrainingProgram> BuildTrainingInfoProgram(const Graph& forward,
                                                         const TrainingInfo& info,
                                                         const runtime::TrainConfig& config,
                                                         int64_t batch_size) {
  if (config.train.accumulate > 1) {
    return absl::UnimplementedError(
        "train.accumulate > 1 with train.program = \"training_info\": the model's algorithm "
        "graph steps on every batch it is given");
  }
  TrainingProgram p;
  Graph& g = p.graph;
  g = forward;
  // The data input: model.input, or the inference graph's only input.
  if (!config.model.input.empty()) {
    if (!forward.IsGraphInput(config.model.input)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.input '", config.model.input, "' is not an input of the model"));
    }
    p.data_input = config.model.input;
  } else if (forward.inputs.size() == 1) {
    p.data_input = forward.inputs[0].name;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("the model has ", forward.inputs.size(),
                                                   " inputs; say which one takes the data with "
                                                   "model.input"));
  }
  for (const ValueInfo& in : forward.inputs) {
    if (in.name != p.data_input) {
      return absl::InvalidArgumentError(
          absl::StrCat("the inference graph's input '", in.name, "' is not fed: only the data (",
                       p.data_input, ") and one label input of the algorithm graph are"));
    }
  }
  std::vector<std::string> others;
  for (const ValueInfo& in : info.algorithm.inputs) others.push_back(in.name);
  if (others.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the algorithm graph has ", others.size(), " inputs (", absl::StrJoin(others, ", "),
        "); lasgd feeds one, with the labels of each batch"));
  }
  if (!others.empty()) p.labels_input = others[0];
  p.logits = config.model.output.empty() ? forward.outputs.at(0).name : config.model.output;
  if (!forward.IsGraphOutput(p.logits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.output '", p.logits, "' is not an output of the model"));
  }
  RETURN_IF_ERROR(Combine(g, info.algorithm));

  ShapeBinding binding;
  binding.batch_size = batch_size;
  // Update bindings: state variables, updated after the whole step.
  std::set<std::string> bound;
  for (const auto& [key, value] : info.update_binding) {
    if (!g.initializers.count(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("update_binding names '", key,
                       "', which is not an initializer of the model or the algorithm; they are: ",
                       Known(g.initializers)));
    }
    if (!bound.insert(key).second)
      return absl::InvalidArgumentError(absl::StrCat("update_binding binds '", key, "' twice"));
    g.constant_names.erase(key);
    g.state_updates.push_back({key, value});
    (forward.initializers.count(key) ? p.parameters : p.optimizer_state).push_back(key);
  }
  if (p.parameters.empty()) {
    return absl::InvalidArgumentError(
        "the TrainingInfoProto's update_binding updates no initializer of the inference graph");
  }
  // Initialization: its outputs overwrite initializers once, before training.
  p.initialization = info.initialization;
  p.initialization_binding = info.initialization_binding;
  for (const auto& [key, value] : info.initialization_binding) {
    if (!g.initializers.count(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("initialization_binding names '", key, "', which is not an initializer"));
    }
    if (!p.initialization.IsGraphOutput(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("initialization_binding binds '", key, "' to '", value,
                       "', which is not an output of the initialization graph"));
    }
    g.constant_names.erase(key);  // it changes after compilation: never fold it
  }

  // An integer initializer that only the initialization sets is a variable
  // too until the executor compiles (after the initialization ran): bound to
  // itself while this pass infers shapes, so that it is not folded with its
  // value from the file.
  const size_t real_updates = g.state_updates.size();
  for (const auto& [key, value] : info.initialization_binding)
    if (!bound.count(key)) g.state_updates.push_back({key, key});
  RETURN_IF_ERROR(ExpandGradients(g, binding));

  // What the executor returns: the algorithm's outputs, and the loss.
  g.outputs = info.algorithm.outputs;
  if (!config.loss.output.empty()) {
    p.loss = config.loss.output;
    if (!g.IsGraphOutput(p.loss)) {
      ValueInfo vi;
      vi.name = p.loss;
      g.outputs.push_back(vi);
    }
  }
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(g, binding),
                      "while checking the TrainingInfoProto's algorithm");
  g.state_updates.resize(real_updates);
  for (const auto& [key, value] : g.state_updates) {
    const ValueInfo* vi = g.FindValueInfo(value);
    const Tensor& state = g.initializers.at(key);
    if (vi == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("update_binding binds '", key, "' to '", value,
                                                     "', which nothing computes"));
    if (vi->dtype != state.dtype() || vi->shape != state.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_binding binds '", key, "' (", DataTypeName(state.dtype()),
          ShapeToString(state.shape()), ") to '", value, "' of type ", vi->TypeString()));
    }
  }
  if (p.loss.empty()) {
    for (const ValueInfo& out : info.algorithm.outputs) {
      const ValueInfo* vi = g.FindValueInfo(out.name);
      if (vi && IsFloatingPoint(vi->dtype) && NumElements(vi->shape) == 1) {
        p.loss = out.name;
        break;
      }
    }
  }
  return p;
}

}  // namespace lasgd::graph
