#include "graph/passes/autodiff.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/evaluate_node.h"
#include "ops/gradient.h"
#include "ops/op_registry.h"

namespace lasgd::graph {
namespace {

// Shared state of one autodiff run: the graph being extended, the known
// types of every value, and a counter for fresh names.
class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& graph) : graph_(graph) {
    for (const ValueInfo& in : graph.inputs) types_[in.name] = {in.dtype, in.shape};
    for (const auto& [name, vi] : graph.value_info) types_[name] = {vi.dtype, vi.shape};
    for (const auto& [name, t] : graph.initializers) types_[name] = {t.dtype(), t.shape()};
  }

  bool Known(const std::string& v) const { return types_.count(v) > 0; }
  DataType dtype(const std::string& v) const {
    auto it = types_.find(v);
    return it == types_.end() ? DataType::kUndefined : it->second.first;
  }
  const Shape& shape(const std::string& v) const {
    static const Shape kEmpty;
    auto it = types_.find(v);
    return it == types_.end() ? kEmpty : it->second.second;
  }
  const Tensor* constant_value(const std::string& v) const {
    auto it = graph_.initializers.find(v);
    if (it == graph_.initializers.end()) return nullptr;
    if (!graph_.constant_names.count(v) && IsFloatingPoint(it->second.dtype())) return nullptr;
    return &it->second;
  }

  std::string FreshName(const std::string& hint) { return absl::StrCat(hint, "__", counter_++); }

  std::string AddConstant(const Tensor& value, const std::string& hint) {
    std::string name = FreshName(hint);
    graph_.initializers[name] = value;
    graph_.constant_names.insert(name);
    types_[name] = {value.dtype(), value.shape()};
    return name;
  }

  // Appends a node and infers its output types right away.
  absl::StatusOr<std::vector<std::string>> AddNode(const std::string& op_type,
                                                   const std::string& domain,
                                                   const std::vector<std::string>& inputs,
                                                   size_t num_outputs,
                                                   std::map<std::string, Attribute> attributes,
                                                   const std::string& name_hint) {
    Node node;
    node.op_type = op_type;
    node.domain = domain;
    node.name = FreshName(name_hint + "/" + op_type);
    node.inputs = inputs;
    node.attributes = std::move(attributes);
    for (size_t o = 0; o < num_outputs; ++o)
      node.outputs.push_back(absl::StrCat(node.name, ":", o));
    if (!domain.empty() && graph_.OpsetFor(domain) < 0) graph_.opset_imports[domain] = 1;
    int64_t opset = graph_.OpsetFor(domain);
    ASSIGN_OR_RETURN(const ops::OpSchema* schema, ops::OpRegistry::Global().Find(node, opset));
    std::vector<const Tensor*> values;
    std::vector<DataType> dtypes;
    std::vector<Shape> shapes;
    for (const std::string& in : node.inputs) {
      if (!in.empty() && !Known(in)) {
        return absl::InternalError(
            absl::StrCat(node.Describe(), ": gradient input '", in, "' has no type"));
      }
      values.push_back(in.empty() ? nullptr : constant_value(in));
      dtypes.push_back(in.empty() ? DataType::kUndefined : dtype(in));
      shapes.push_back(in.empty() ? Shape{} : shape(in));
    }
    ops::InferenceContext ctx(node, opset, values, dtypes, shapes);
    RETURN_IF_ERROR(ops::InferNode(*schema, ctx));
    for (size_t o = 0; o < num_outputs; ++o) {
      types_[node.outputs[o]] = {ctx.output_dtype(o), ctx.output_shape(o)};
      ValueInfo vi;
      vi.name = node.outputs[o];
      vi.dtype = ctx.output_dtype(o);
      vi.shape = ctx.output_shape(o);
      vi.has_shape = true;
      graph_.value_info[vi.name] = vi;
    }
    std::vector<std::string> outs = node.outputs;
    graph_.nodes.push_back(std::move(node));
    return outs;
  }

  Graph& graph() { return graph_; }

 private:
  Graph& graph_;
  std::map<std::string, std::pair<DataType, Shape>> types_;
  int64_t counter_ = 0;
};

class NodeGradientContext : public ops::GradientContext {
 public:
  NodeGradientContext(GraphBuilder& builder, const Node& node, int64_t opset,
                      std::vector<std::string> output_grads, std::vector<bool> needs)
      : builder_(builder),
        node_(node),
        opset_(opset),
        output_grads_(std::move(output_grads)),
        needs_(std::move(needs)),
        input_grads_(node.inputs.size()) {}

  const Node& node() const override { return node_; }
  int64_t opset() const override { return opset_; }
  DataType dtype(const std::string& v) const override { return builder_.dtype(v); }
  const Shape& shape(const std::string& v) const override { return builder_.shape(v); }
  const Tensor* constant_value(const std::string& v) const override {
    return builder_.constant_value(v);
  }
  const std::string& GO(size_t o) const override {
    static const std::string kNone;
    return o < output_grads_.size() ? output_grads_[o] : kNone;
  }
  bool NeedsGI(size_t i) const override { return i < needs_.size() && needs_[i]; }
  void SetGI(size_t i, const std::string& value) override {
    if (i < input_grads_.size()) input_grads_[i] = value;
  }
  std::vector<std::string> Emit(const std::string& op_type, const std::vector<std::string>& inputs,
                                size_t num_outputs, std::map<std::string, Attribute> attributes,
                                const std::string& domain) override {
    if (!status_.ok()) return std::vector<std::string>(num_outputs, "");
    auto outs = builder_.AddNode(op_type, domain, inputs, num_outputs, std::move(attributes),
                                 "grad/" + node_.name);
    if (!outs.ok()) {
      status_ = outs.status();
      return std::vector<std::string>(num_outputs, "");
    }
    return *outs;
  }
  std::string Constant(const Tensor& value) override {
    return builder_.AddConstant(value, "grad/" + node_.name + "/const");
  }
  std::string ScalarConstant(double value, DataType dtype) override {
    Tensor t = Tensor::Allocate(dtype, {});
    t.SetFromDouble(0, value);
    return Constant(t);
  }
  std::string ReduceToShape(const std::string& grad, const Shape& from, const Shape& to) override {
    if (from == to) return grad;
    return Emit1("ReduceSumTo", {grad}, {{"shape", Attribute::Ints(to)}}, "com.lasgd");
  }

  const absl::Status& emit_status() const { return status_; }
  const std::vector<std::string>& input_grads() const { return input_grads_; }

 private:
  GraphBuilder& builder_;
  const Node& node_;
  int64_t opset_;
  std::vector<std::string> output_grads_;
  std::vector<bool> needs_;
  std::vector<std::string> input_grads_;
  absl::Status status_;
};

// Dropout in training mode must expose its mask so the backward pass can
// reuse it instead of drawing a new one.
void ExposeDropoutMasks(Graph& graph) {
  for (Node& node : graph.nodes) {
    if (node.op_type != "Dropout" || !node.domain.empty() || node.HasOutput(1)) continue;
    if (graph.OpsetFor("") < 12 || !node.HasInput(2)) continue;
    node.outputs.resize(2);
    node.outputs[1] = node.outputs[0] + "__mask";
    ValueInfo vi;
    vi.name = node.outputs[1];
    vi.dtype = DataType::kBool;
    const ValueInfo* y = graph.FindValueInfo(node.outputs[0]);
    if (y) vi.shape = y->shape;
    vi.has_shape = y != nullptr;
    graph.value_info[vi.name] = vi;
  }
}

}  // namespace

absl::StatusOr<AutodiffResult> BuildGradients(Graph& graph, const std::string& loss,
                                              const std::set<std::string>& wrt) {
  RETURN_IF_ERROR(graph.SortTopologically());
  ExposeDropoutMasks(graph);
  GraphBuilder builder(graph);
  if (!builder.Known(loss))
    return absl::InvalidArgumentError(absl::StrCat("loss value '", loss, "' does not exist"));
  if (NumElements(builder.shape(loss)) != 1 || !IsFloatingPoint(builder.dtype(loss))) {
    return absl::InvalidArgumentError(
        absl::StrCat("the loss '", loss, "' must be a floating-point scalar, got ",
                     DataTypeName(builder.dtype(loss)), ShapeToString(builder.shape(loss))));
  }
  const size_t num_forward = graph.nodes.size();
  // Forward pass: which values depend on something we differentiate for.
  std::set<std::string> requires_grad(wrt.begin(), wrt.end());
  std::vector<std::vector<bool>> needs(num_forward);
  for (size_t n = 0; n < num_forward; ++n) {
    const Node& node = graph.nodes[n];
    auto schema = ops::OpRegistry::Global().Find(node, graph.OpsetFor(node.domain));
    needs[n].assign(node.inputs.size(), false);
    bool any = false;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const std::string& in = node.inputs[i];
      if (in.empty() || !requires_grad.count(in) || !IsFloatingPoint(builder.dtype(in))) continue;
      if (schema.ok() && (*schema)->non_differentiable_inputs.count(static_cast<int>(i))) continue;
      needs[n][i] = true;
      any = true;
    }
    if (!any) continue;
    for (const std::string& out : node.outputs)
      if (!out.empty() && IsFloatingPoint(builder.dtype(out))) requires_grad.insert(out);
  }

  // Backward pass in reverse topological order.
  std::map<std::string, std::vector<std::string>> contributions;
  Tensor one = Tensor::Allocate(builder.dtype(loss), builder.shape(loss));
  one.SetFromDouble(0, 1.0);
  contributions[loss].push_back(builder.AddConstant(one, "grad/seed"));
  auto accumulate = [&](const std::string& value) -> absl::StatusOr<std::string> {
    auto it = contributions.find(value);
    if (it == contributions.end() || it->second.empty()) return std::string();
    if (it->second.size() == 1) return it->second[0];
    ASSIGN_OR_RETURN(auto outs,
                     builder.AddNode("Sum", "", it->second, 1, {}, "grad/accumulate/" + value));
    it->second = {outs[0]};
    return outs[0];
  };
  for (size_t n = num_forward; n-- > 0;) {
    const Node node = graph.nodes[n];  // copy: emitting nodes may reallocate graph.nodes
    bool wanted = false;
    for (bool b : needs[n]) wanted = wanted || b;
    if (!wanted) continue;
    std::vector<std::string> output_grads;
    bool any_grad = false;
    for (const std::string& out : node.outputs) {
      ASSIGN_OR_RETURN(std::string g,
                       out.empty() ? absl::StatusOr<std::string>(std::string()) : accumulate(out));
      any_grad = any_grad || !g.empty();
      output_grads.push_back(g);
    }
    if (!any_grad) continue;
    const ops::GradientFn* fn = ops::GradientRegistry::Global().Find(node.domain, node.op_type);
    if (!fn) {
      return absl::UnimplementedError(
          absl::StrCat(node.Describe(), ": op '", node.op_type,
                       "' has no gradient builder, but the loss depends on a "
                       "trainable value through it"));
    }
    NodeGradientContext ctx(builder, node, graph.OpsetFor(node.domain), output_grads, needs[n]);
    absl::Status st = (*fn)(ctx);
    if (st.ok()) st = ctx.emit_status();
    RETURN_IF_ERROR_CTX(st, "while building the gradient of ", node.Describe());
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const std::string& gi = ctx.input_grads()[i];
      if (gi.empty() || !needs[n][i]) continue;
      if (builder.shape(gi) != builder.shape(node.inputs[i])) {
        return absl::InternalError(absl::StrCat(node.Describe(), ": gradient of input ", i,
                                                " has shape ", ShapeToString(builder.shape(gi)),
                                                ", the input has ",
                                                ShapeToString(builder.shape(node.inputs[i]))));
      }
      contributions[node.inputs[i]].push_back(gi);
    }
  }
  AutodiffResult result;
  for (const std::string& v : wrt) {
    ASSIGN_OR_RETURN(std::string g, accumulate(v));
    if (g.empty()) {
      // The loss does not depend on v: its gradient is zero.
      g = builder.AddConstant(Tensor::Allocate(builder.dtype(v), builder.shape(v)),
                              "grad/zero/" + v);
    }
    result.gradients[v] = g;
  }
  return result;
}

}  // namespace lasgd::graph
