#include <set>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "graph/passes/passes.h"
#include "ops/evaluate_node.h"
#include "ops/op_registry.h"

namespace lasgd::graph {
namespace {

// Folding is only worth it (and only safe for memory) for modest tensors.
constexpr int64_t kMaxFoldedElements = int64_t{1} << 24;

absl::Status BindInputs(Graph& graph, const ShapeBinding& binding) {
  for (ValueInfo& in : graph.inputs) {
    auto given = binding.input_shapes.find(in.name);
    if (given != binding.input_shapes.end()) {
      if (in.has_shape && in.shape.size() != given->second.size()) {
        return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "': the model declares ",
                                                       in.TypeString(), " but the given shape is ",
                                                       ShapeToString(given->second)));
      }
      for (size_t d = 0; in.has_shape && d < in.shape.size(); ++d) {
        if (in.shape[d] >= 0 && in.shape[d] != given->second[d]) {
          return absl::InvalidArgumentError(absl::StrCat(
              "input '", in.name, "': the model declares ", in.TypeString(),
              " but the given shape is ", ShapeToString(given->second), " (dim ", d, ")"));
        }
      }
      in.shape = given->second;
      in.has_shape = true;
      in.dim_params.assign(in.shape.size(), "");
      continue;
    }
    if (!in.has_shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "' has no declared shape; give it explicitly"));
    }
    for (size_t d = 0; d < in.shape.size(); ++d) {
      if (in.shape[d] >= 0) continue;
      if (binding.batch_size <= 0) {
        std::string param =
            d < in.dim_params.size() && !in.dim_params[d].empty() ? in.dim_params[d] : "?";
        return absl::InvalidArgumentError(
            absl::StrCat("input '", in.name, "' (", in.TypeString(), ") has symbolic dimension ", d,
                         " ('", param, "'); bind it with a batch size or an explicit shape"));
      }
      in.shape[d] = binding.batch_size;
    }
  }
  return absl::OkStatus();
}

bool DeclaredShapeFits(const ValueInfo& declared, DataType dtype, const Shape& shape) {
  if (declared.dtype != DataType::kUndefined && declared.dtype != dtype) return false;
  if (!declared.has_shape) return true;
  if (declared.shape.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (declared.shape[d] >= 0 && declared.shape[d] != shape[d]) return false;
  }
  return true;
}

}  // namespace

absl::Status InferShapesAndFoldConstants(Graph& graph, const ShapeBinding& binding) {
  RETURN_IF_ERROR(BindInputs(graph, binding));
  RETURN_IF_ERROR(graph.SortTopologically());

  struct Known {
    DataType dtype;
    Shape shape;
  };
  std::map<std::string, Known> types;
  for (const ValueInfo& in : graph.inputs) types[in.name] = {in.dtype, in.shape};
  for (const auto& [name, t] : graph.initializers) types[name] = {t.dtype(), t.shape()};
  // Values known at compile time: Constant nodes, folded values, and integer
  // initializers (shape tensors). Float initializers are parameters: never folded.
  // Neither are state variables of any type (an int64 step or RNG counter).
  std::set<std::string> states;
  for (const auto& [state, source] : graph.state_updates) states.insert(state);
  auto is_constant = [&](const std::string& name) {
    auto it = graph.initializers.find(name);
    return it != graph.initializers.end() && !states.count(name) &&
           (graph.constant_names.count(name) || !IsFloatingPoint(it->second.dtype()));
  };
  // Declared types of intermediate values are checked against what we infer.
  std::map<std::string, ValueInfo> declared = graph.value_info;
  for (const ValueInfo& out : graph.outputs) declared[out.name] = out;
  graph.value_info.clear();

  std::vector<Node> kept;
  for (Node& node : graph.nodes) {
    int64_t opset = graph.OpsetFor(node.domain);
    ASSIGN_OR_RETURN(const ops::OpSchema* schema, ops::OpRegistry::Global().Find(node, opset));
    std::vector<const Tensor*> values;
    std::vector<DataType> dtypes;
    std::vector<Shape> shapes;
    bool all_constant = schema->foldable;
    // Shape and Size read only their input's shape, which is static here, so
    // they fold even when the value itself is not a constant; that is what
    // makes shape subgraphs such as Shape(x)->Gather->Concat->Reshape vanish.
    const bool reads_only_shape =
        node.domain.empty() && (node.op_type == "Shape" || node.op_type == "Size");
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const std::string& in = node.inputs[i];
      if (in.empty()) {
        values.push_back(nullptr);
        dtypes.push_back(DataType::kUndefined);
        shapes.push_back({});
        continue;
      }
      auto it = types.find(in);
      if (it == types.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(node.Describe(), ": input '", in, "' has no known type"));
      }
      bool constant = is_constant(in);
      all_constant = all_constant && constant;
      values.push_back(constant ? &graph.initializers.at(in) : nullptr);
      dtypes.push_back(it->second.dtype);
      shapes.push_back(it->second.shape);
    }
    ops::InferenceContext ctx(node, opset, values, dtypes, shapes);
    RETURN_IF_ERROR_CTX(ops::InferNode(*schema, ctx), "while inferring shapes (opset ", opset, ")");
    int64_t out_elements = 0;
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      if (!node.HasOutput(o)) continue;
      const std::string& name = node.outputs[o];
      types[name] = {ctx.output_dtype(o), ctx.output_shape(o)};
      out_elements += NumElements(ctx.output_shape(o));
      auto d = declared.find(name);
      if (d != declared.end() &&
          !DeclaredShapeFits(d->second, ctx.output_dtype(o), ctx.output_shape(o))) {
        return absl::InvalidArgumentError(
            absl::StrCat(node.Describe(), ": output '", name, "' is declared as ",
                         d->second.TypeString(), " but its inputs make it ",
                         DataTypeName(ctx.output_dtype(o)), ShapeToString(ctx.output_shape(o))));
      }
    }
    if ((all_constant || reads_only_shape) && !node.inputs.empty() &&
        out_elements <= kMaxFoldedElements) {
      std::vector<Tensor> inputs;
      for (size_t i = 0; i < values.size(); ++i) {
        if (values[i])
          inputs.push_back(*values[i]);
        else if (reads_only_shape && node.HasInput(i))
          inputs.push_back(Tensor::View(dtypes[i], shapes[i], nullptr));  // shape only, no data
        else
          inputs.push_back(Tensor());
      }
      auto folded = ops::EvaluateNode(node, opset, inputs);
      if (folded.ok()) {
        for (size_t o = 0; o < node.outputs.size(); ++o) {
          if (!node.HasOutput(o)) continue;
          graph.initializers[node.outputs[o]] = (*folded)[o];
          graph.constant_names.insert(node.outputs[o]);
        }
        continue;  // the node is gone; its outputs are constants now
      }
      return WithContext(folded.status(), "while folding constants");
    }
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      if (!node.HasOutput(o)) continue;
      ValueInfo vi;
      vi.name = node.outputs[o];
      vi.dtype = ctx.output_dtype(o);
      vi.shape = ctx.output_shape(o);
      vi.has_shape = true;
      graph.value_info[vi.name] = vi;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  for (ValueInfo& out : graph.outputs) {
    auto it = types.find(out.name);
    if (it == types.end()) continue;
    out.dtype = it->second.dtype;
    out.shape = it->second.shape;
    out.has_shape = true;
    out.dim_params.assign(out.shape.size(), "");
  }
  return absl::OkStatus();
}

}  // namespace lasgd::graph
