#include "graph/passes/training.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "graph/model_stats.h"
#include "graph/passes/autodiff.h"
#include "graph/passes/passes.h"

namespace lasgd::graph {
namespace {

// Appends nodes to a graph under construction with predictable names.
class Emitter {
 public:
  Emitter(Graph& graph, std::string prefix) : graph_(graph), prefix_(std::move(prefix)) {}

  std::string Node1(const std::string& op, std::vector<std::string> inputs,
                    std::map<std::string, Attribute> attrs = {}, const std::string& domain = "") {
    return Emit(op, std::move(inputs), 1, std::move(attrs), domain)[0];
  }
  std::vector<std::string> Emit(const std::string& op, std::vector<std::string> inputs,
                                size_t outputs, std::map<std::string, Attribute> attrs = {},
                                const std::string& domain = "") {
    Node n;
    n.name = absl::StrCat(prefix_, "/", op, "_", counter_++);
    n.op_type = op;
    n.domain = domain;
    n.inputs = std::move(inputs);
    n.attributes = std::move(attrs);
    for (size_t o = 0; o < outputs; ++o) n.outputs.push_back(absl::StrCat(n.name, ":", o));
    if (!domain.empty() && graph_.OpsetFor(domain) < 0) graph_.opset_imports[domain] = 1;
    std::vector<std::string> outs = n.outputs;
    graph_.nodes.push_back(std::move(n));
    return outs;
  }
  std::string Scalar(double value, DataType dtype) {
    Tensor t = Tensor::Allocate(dtype, {});
    t.SetFromDouble(0, value);
    std::string name = absl::StrCat(prefix_, "/const_", counter_++);
    graph_.initializers[name] = t;
    graph_.constant_names.insert(name);
    return name;
  }
  // sum(x) / count as a float32 scalar.
  std::string MeanAll(const std::string& x, int64_t count) {
    std::string sum = Node1("ReduceSumTo", {x}, {{"shape", Attribute::Ints({})}}, "com.lasgd");
    return Node1("Mul", {sum, Scalar(1.0 / static_cast<double>(count), DataType::kFloat32)});
  }

 private:
  Graph& graph_;
  std::string prefix_;
  int counter_ = 0;
};

ValueInfo MakeInput(const std::string& name, DataType dtype, Shape shape) {
  ValueInfo vi;
  vi.name = name;
  vi.dtype = dtype;
  vi.shape = std::move(shape);
  vi.has_shape = true;
  vi.dim_params.assign(vi.shape.size(), "");
  return vi;
}

std::string NearestName(const std::string& name, const std::map<std::string, Tensor>& candidates) {
  // A cheap "did you mean": the candidate sharing the longest prefix.
  std::string best;
  size_t best_len = 0;
  for (const auto& [c, t] : candidates) {
    size_t n = 0;
    while (n < c.size() && n < name.size() && c[n] == name[n]) ++n;
    if (n > best_len) {
      best_len = n;
      best = c;
    }
  }
  return best.empty() ? "" : absl::StrCat("; did you mean '", best, "'?");
}

absl::StatusOr<std::string> ChooseDataInput(const Graph& g, const std::string& configured) {
  if (!configured.empty()) {
    if (!g.IsGraphInput(configured)) {
      std::vector<std::string> names;
      for (const ValueInfo& in : g.inputs) names.push_back(in.name);
      return absl::InvalidArgumentError(absl::StrCat(
          "model.input '", configured,
          "' is not an input of the model; its inputs are: ", absl::StrJoin(names, ", ")));
    }
    return configured;
  }
  if (g.inputs.size() != 1) {
    std::vector<std::string> names;
    for (const ValueInfo& in : g.inputs) names.push_back(in.name);
    return absl::InvalidArgumentError(
        absl::StrCat("the model has ", g.inputs.size(), " inputs (", absl::StrJoin(names, ", "),
                     "); say which one takes the data with model.input"));
  }
  return g.inputs[0].name;
}

// Makes BN's running-variance update use the unbiased batch variance, as
// PyTorch does: new = r*m + (out - r*m) * n/(n-1), where `out` is ONNX's
// population-variance update r*m + v*(1-m).
absl::Status UseUnbiasedRunningVar(Graph& g, Emitter& emit) {
  for (const Node& node : std::vector<Node>(g.nodes)) {
    if (node.op_type != "BatchNormalization" || !node.domain.empty() || node.outputs.size() < 3)
      continue;
    const ValueInfo* x = g.FindValueInfo(node.inputs[0]);
    if (!x || x->shape.size() < 2)
      return absl::InternalError(absl::StrCat(node.Describe(), ": input shape unknown"));
    int64_t n = NumElements(x->shape) / x->shape[1];
    if (n < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          node.Describe(),
          ": the unbiased running variance needs more than one value per channel (got ", n, ")"));
    }
    double m = node.GetFloat("momentum", 0.9f);
    std::string running = node.inputs[4];
    std::string rm = emit.Node1("Mul", {running, emit.Scalar(m, DataType::kFloat32)});
    std::string diff = emit.Node1("Sub", {node.outputs[2], rm});
    std::string scaled = emit.Node1(
        "Mul", {diff, emit.Scalar(static_cast<double>(n) / (n - 1), DataType::kFloat32)});
    std::string updated = emit.Node1("Add", {rm, scaled});
    for (auto& [state, source] : g.state_updates)
      if (state == running) source = updated;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AddLoss(Graph& g, Emitter& emit, const runtime::TrainConfig& config,
                                    const std::string& logits, const std::string& labels,
                                    int64_t batch_size) {
  const ValueInfo* out = g.FindValueInfo(logits);
  if (!out) return absl::InternalError("logits have no type");
  const std::string& type = config.loss.type;
  int64_t count = NumElements(out->shape);
  if (type == "cross_entropy") {
    if (out->shape.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss.type = cross_entropy needs [batch, classes] logits, but output '",
                       logits, "' is ", out->TypeString()));
    }
    if (g.OpsetFor("") < 12) {
      return absl::InvalidArgumentError(
          absl::StrCat("cross_entropy needs the model exported at opset 12 or later (it is ",
                       g.OpsetFor(""), ")"));
    }
    std::string ce = emit.Node1("SoftmaxCrossEntropyLoss", {logits, labels},
                                {{"reduction", Attribute::String("mean")}});
    float eps = config.loss.label_smoothing;
    if (eps <= 0.f) return ce;
    // (1-eps) * CE + eps * mean over samples of -mean_c log_softmax.
    std::string logp = emit.Node1("LogSoftmax", {logits}, {{"axis", Attribute::Int(1)}});
    std::string smooth = emit.MeanAll(logp, count);
    std::string a = emit.Node1("Mul", {ce, emit.Scalar(1.0 - eps, DataType::kFloat32)});
    std::string b = emit.Node1("Mul", {smooth, emit.Scalar(-eps, DataType::kFloat32)});
    return emit.Node1("Add", {a, b});
  }
  if (type == "mse") {
    std::string d = emit.Node1("Sub", {logits, labels});
    return emit.MeanAll(emit.Node1("Mul", {d, d}), count);
  }
  if (type == "bce_logits") {
    // max(x,0) - x*t + log(1 + exp(-|x|)), averaged: stable for any x.
    std::string pos = emit.Node1("Relu", {logits});
    std::string xt = emit.Node1("Mul", {logits, labels});
    std::string soft = emit.Node1("Softplus", {emit.Node1("Neg", {emit.Node1("Abs", {logits})})});
    return emit.MeanAll(emit.Node1("Add", {emit.Node1("Sub", {pos, xt}), soft}), count);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown loss.type '", type, "'"));
}

// Replaces every training-mode Dropout (training_mode a constant true, as
// ToTrainingMode sets it) with com.lasgd StatelessDropout reading a counter
// state variable that advances once per run: the masks are then a function
// of the counter, which checkpoints hold, instead of a generator hidden in a
// kernel. Runs after autodiff: the backward reads the mask output, which
// keeps its name. Seeds: the node's `seed` attribute, else data.seed, mixed
// with the node's ordinal so that two Dropouts of one shape differ.
absl::Status UseStatelessDropout(Graph& g, Emitter& emit, const runtime::TrainConfig& config,
                                 TrainingProgram& p) {
  uint64_t ordinal = 0;
  for (Node& node : g.nodes) {
    if (node.op_type != "Dropout" || !node.domain.empty() || node.inputs.size() < 3) continue;
    const std::string& mode = node.inputs[2];
    auto it = g.initializers.find(mode);
    if (it == g.initializers.end() || !g.constant_names.count(mode) ||
        it->second.GetAsDouble(0) == 0.0)
      continue;  // inference mode, or decided at run time: leave it to ONNX's kernel
    if (p.rng_counter.empty()) {
      p.rng_counter = "train/dropout_counter";
      if (g.initializers.count(p.rng_counter) || g.FindValueInfo(p.rng_counter))
        return absl::InvalidArgumentError(
            absl::StrCat("the model already has a value named '", p.rng_counter, "'"));
      g.initializers[p.rng_counter] = Tensor::Allocate(DataType::kInt64, {});
      g.state_updates.push_back(
          {p.rng_counter, emit.Node1("Add", {p.rng_counter, emit.Scalar(1, DataType::kInt64)})});
    }
    const uint64_t base = node.FindAttribute("seed") != nullptr
                              ? static_cast<uint64_t>(node.GetInt("seed", 0))
                              : config.data.seed * 0x9e3779b97f4a7c15ULL + 0x5eed;
    const uint64_t seed = base + (++ordinal) * 0xbf58476d1ce4e5b9ULL;
    node.domain = "com.lasgd";
    node.op_type = "StatelessDropout";
    node.inputs = {node.inputs[0], node.inputs[1], p.rng_counter};
    node.attributes.clear();
    node.attributes["seed"] = Attribute::Int(static_cast<int64_t>(seed));
  }
  if (!p.rng_counter.empty()) g.opset_imports["com.lasgd"] = 1;
  return absl::OkStatus();
}

// Gradient accumulation over K micro-batches, as PyTorch with loss / K per
// micro-batch: the step's gradient is the mean of the K micro-batch
// gradients. Adds one zeroed accumulator per parameter, copies the graph
// into the accumulate program (accumulator += gradient), and replaces the
// gradients train_step hands to the optimizer by (accumulator + gradient)/K.
absl::Status AddGradientAccumulation(Graph& g, const runtime::TrainConfig& config,
                                     TrainingProgram& p, std::vector<std::string>& grads,
                                     const ShapeBinding& binding) {
  const int64_t k = config.train.accumulate;
  p.accumulate = k;
  for (const std::string& param : p.parameters) {
    std::string name = absl::StrCat(param, ".grad_accum");
    if (g.initializers.count(name) || g.FindValueInfo(name))
      return absl::InvalidArgumentError(
          absl::StrCat("the model already has a value named '", name, "'"));
    const Tensor& t = g.initializers.at(param);
    g.initializers[name] = Tensor::Allocate(t.dtype(), t.shape());  // zeros
    p.grad_accumulators.push_back(name);
  }
  // The accumulate program: everything so far (forward, loss, backward, BN
  // and Dropout state) with the accumulators as its extra state.
  Graph& acc = p.accumulate_graph;
  acc = g;  // Tensor copies share storage: both programs see one set of state
  Emitter acc_emit(acc, "accumulate");
  for (size_t i = 0; i < grads.size(); ++i) {
    const std::string& a = p.grad_accumulators[i];
    acc.state_updates.push_back({a, acc_emit.Node1("Add", {a, grads[i]})});
  }
  std::vector<ValueInfo> inputs;
  for (const ValueInfo& in : acc.inputs)
    if (in.name != p.lr_input && in.name != p.step_input) inputs.push_back(in);
  acc.inputs = std::move(inputs);
  ValueInfo loss_out;
  loss_out.name = p.loss;
  acc.outputs = {loss_out};
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(acc, binding),
                      "while building the gradient accumulation program");

  Emitter emit(g, "train/accumulate");
  for (size_t i = 0; i < grads.size(); ++i) {
    const DataType dtype = g.initializers.at(p.parameters[i]).dtype();
    std::string sum = emit.Node1("Add", {p.grad_accumulators[i], grads[i]});
    grads[i] = emit.Node1("Mul", {sum, emit.Scalar(1.0 / static_cast<double>(k), dtype)});
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EmitOptimizerUpdate(Graph& g, const runtime::TrainConfig& config,
                                 TrainingProgram& program, const std::vector<std::string>& grads);

absl::StatusOr<TrainingProgram> BuildTrainingProgram(const Graph& forward,
                                                     const runtime::TrainConfig& config,
                                                     int64_t batch_size) {
  TrainingProgram p;
  Graph& g = p.graph;
  g = forward;
  RETURN_IF_ERROR(ToTrainingMode(g));
  ASSIGN_OR_RETURN(p.data_input, ChooseDataInput(g, config.model.input));
  const bool graph_loss = config.loss.type == "graph";
  if (graph_loss) {
    if (config.loss.output.empty())
      return absl::InvalidArgumentError("loss.type = graph needs loss.output");
    if (!g.IsGraphOutput(config.loss.output)) {
      return absl::InvalidArgumentError(
          absl::StrCat("loss.output '", config.loss.output, "' is not an output of the model"));
    }
    for (const ValueInfo& in : g.inputs)
      if (in.name != p.data_input) p.labels_input = in.name;
    if (p.labels_input.empty())
      return absl::InvalidArgumentError("loss.type = graph: the model has no labels input");
    p.logits = config.model.output.empty() ? g.outputs[0].name : config.model.output;
  } else {
    p.logits = config.model.output.empty() ? g.outputs[0].name : config.model.output;
    if (!g.IsGraphOutput(p.logits)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.output '", p.logits, "' is not an output of the model"));
    }
  }
  // Bind shapes and infer so that the loss knows the logits' shape.
  ShapeBinding binding;
  binding.batch_size = batch_size;
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(g, binding),
                      "while preparing the training graph");
  Emitter emit(g, "train");
  if (config.train.bn_running_var == "unbiased") RETURN_IF_ERROR(UseUnbiasedRunningVar(g, emit));
  const ValueInfo* logits_info = g.FindValueInfo(p.logits);
  if (!graph_loss) {
    p.labels_input = "labels";
    if (config.loss.type == "cross_entropy") {
      g.inputs.push_back(MakeInput(p.labels_input, DataType::kInt64, {logits_info->shape[0]}));
    } else {
      g.inputs.push_back(MakeInput(p.labels_input, logits_info->dtype, logits_info->shape));
    }
    ASSIGN_OR_RETURN(p.loss, AddLoss(g, emit, config, p.logits, p.labels_input, batch_size));
  } else {
    p.loss = config.loss.output;
  }
  p.lr_input = "lr";
  p.step_input = "step";
  g.inputs.push_back(MakeInput(p.lr_input, DataType::kFloat32, {}));
  g.inputs.push_back(MakeInput(p.step_input, DataType::kInt64, {}));
  ValueInfo loss_out;
  loss_out.name = p.loss;
  g.outputs = {loss_out};
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(g, binding), "while adding the loss");

  // Trainable parameters, in the model's initializer order.
  std::set<std::string> reachable = FindTrainableParameters(g);
  std::set<std::string> only(config.model.trainable.begin(), config.model.trainable.end());
  for (const std::string& name : config.model.trainable) {
    if (!g.initializers.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat("model.trainable names '", name,
                                                     "', which is not an initializer",
                                                     NearestName(name, g.initializers)));
    }
  }
  for (const std::string& name : config.model.frozen) {
    if (!g.initializers.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat("model.frozen names '", name,
                                                     "', which is not an initializer",
                                                     NearestName(name, g.initializers)));
    }
  }
  std::set<std::string> frozen(config.model.frozen.begin(), config.model.frozen.end());
  for (const std::string& name : reachable) {
    if (frozen.count(name) || (!only.empty() && !only.count(name))) continue;
    p.parameters.push_back(name);
  }
  if (p.parameters.empty())
    return absl::InvalidArgumentError("the model has no trainable parameters");
  for (const auto& [state, source] : g.state_updates) p.buffers.push_back(state);

  std::set<std::string> wrt(p.parameters.begin(), p.parameters.end());
  ASSIGN_OR_RETURN(AutodiffResult grads, BuildGradients(g, p.loss, wrt));
  std::vector<std::string> grad_values;
  for (const std::string& param : p.parameters) grad_values.push_back(grads.gradients.at(param));
  RETURN_IF_ERROR(UseStatelessDropout(g, emit, config, p));
  if (config.train.accumulate > 1)
    RETURN_IF_ERROR(AddGradientAccumulation(g, config, p, grad_values, binding));
  RETURN_IF_ERROR(EmitOptimizerUpdate(g, config, p, grad_values));
  ValueInfo logits_out;
  logits_out.name = p.logits;
  if (p.logits != p.loss) g.outputs.push_back(logits_out);
  if (!p.grad_norm.empty()) {
    ValueInfo norm_out;
    norm_out.name = p.grad_norm;
    g.outputs.push_back(norm_out);
  }
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(g, binding), "while checking the training graph");
  return p;
}

absl::StatusOr<Graph> BuildEvalProgram(const Graph& forward, int64_t batch_size) {
  Graph g = forward;
  RETURN_IF_ERROR(ToInferenceMode(g));
  ShapeBinding binding;
  binding.batch_size = batch_size;
  RETURN_IF_ERROR_CTX(InferShapesAndFoldConstants(g, binding),
                      "while preparing the evaluation graph");
  return g;
}

}  // namespace lasgd::graph
