// The optimizer part of the training program: gradient clipping and the
// parameter update, emitted as com.lasgd update nodes (ops/optimizer.h) whose
// outputs are bound back into the parameters and the optimizer state
// (Graph::state_updates). Optimizer state starts at zero, as in PyTorch.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "graph/passes/training.h"

namespace lasgd::graph {
namespace {

// A zero-filled state tensor shaped like `like`, registered as an initializer.
std::string AddZeroState(Graph& g, const std::string& like, const std::string& kind) {
  const Tensor& param = g.initializers.at(like);
  std::string name = absl::StrCat(like, ".", kind);
  g.initializers[name] = Tensor::Allocate(param.dtype(), param.shape());
  return name;
}

}  // namespace

absl::Status EmitOptimizerUpdate(Graph& g, const runtime::TrainConfig& config,
                                 TrainingProgram& program,
                                 const std::vector<std::string>& grads_in) {
  const runtime::OptimizerConfig& opt = config.optimizer;
  g.opset_imports["com.lasgd"] = 1;
  std::vector<std::string> grads = grads_in;
  const size_t n = program.parameters.size();
  if (opt.clip_grad_norm > 0) {
    Tensor max_norm = Tensor::Allocate(DataType::kFloat32, {});
    max_norm.SetFromDouble(0, opt.clip_grad_norm);
    g.initializers["train/clip_max_norm"] = max_norm;
    g.constant_names.insert("train/clip_max_norm");
    Node clip;
    clip.name = "train/ClipGradNorm";
    clip.op_type = "ClipGradNorm";
    clip.domain = "com.lasgd";
    clip.inputs.push_back("train/clip_max_norm");
    for (const std::string& grad : grads) clip.inputs.push_back(grad);
    for (size_t i = 0; i < n; ++i) clip.outputs.push_back(absl::StrCat(grads[i], "__clipped"));
    clip.outputs.push_back("train/grad_norm");
    program.grad_norm = "train/grad_norm";
    for (size_t i = 0; i < n; ++i) grads[i] = clip.outputs[i];
    g.nodes.push_back(std::move(clip));
  }
  Node update;
  update.name = "train/optimizer";
  update.domain = "com.lasgd";
  update.inputs = {program.lr_input, program.step_input};
  for (const std::string& p : program.parameters) update.inputs.push_back(p);
  for (const std::string& grad : grads) update.inputs.push_back(grad);
  std::vector<std::vector<std::string>> states;  // per state kind, per parameter
  if (opt.type == "sgd") {
    update.op_type = "SGDUpdate";
    update.attributes["momentum"] = Attribute::Float(static_cast<float>(opt.momentum));
    update.attributes["dampening"] = Attribute::Float(static_cast<float>(opt.dampening));
    update.attributes["nesterov"] = Attribute::Int(opt.nesterov ? 1 : 0);
    update.attributes["weight_decay"] = Attribute::Float(static_cast<float>(opt.weight_decay));
    if (opt.momentum != 0) {
      states.emplace_back();
      for (const std::string& p : program.parameters)
        states.back().push_back(AddZeroState(g, p, "momentum_buffer"));
    }
  } else if (opt.type == "adam" || opt.type == "adamw") {
    update.op_type = "AdamUpdate";
    update.attributes["beta1"] = Attribute::Float(static_cast<float>(opt.beta1));
    update.attributes["beta2"] = Attribute::Float(static_cast<float>(opt.beta2));
    update.attributes["eps"] = Attribute::Float(static_cast<float>(opt.eps));
    update.attributes["weight_decay"] = Attribute::Float(static_cast<float>(opt.weight_decay));
    update.attributes["decoupled_weight_decay"] = Attribute::Int(opt.type == "adamw" ? 1 : 0);
    for (const char* kind : {"exp_avg", "exp_avg_sq"}) {
      states.emplace_back();
      for (const std::string& p : program.parameters)
        states.back().push_back(AddZeroState(g, p, kind));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown optimizer.type '", opt.type, "' (sgd, adam, adamw)"));
  }
  for (const auto& kind : states)
    for (const std::string& s : kind) update.inputs.push_back(s);
  // Outputs: new parameters, then new states, bound back as state updates.
  for (const std::string& p : program.parameters) {
    update.outputs.push_back(absl::StrCat(p, "__new"));
    g.state_updates.push_back({p, update.outputs.back()});
  }
  for (const auto& kind : states) {
    for (const std::string& s : kind) {
      update.outputs.push_back(absl::StrCat(s, "__new"));
      g.state_updates.push_back({s, update.outputs.back()});
      program.optimizer_state.push_back(s);
    }
  }
  g.nodes.push_back(std::move(update));
  return absl::OkStatus();
}

}  // namespace lasgd::graph
