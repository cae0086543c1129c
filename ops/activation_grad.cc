// Gradient builders of the activation op family (see ops/gradient.h). Each
// emits one fused com.lasgd backward op (ops/backward_ops_ew.h) that reads
// dY and one saved tensor: the output where the derivative is a function of
// it (Relu, Sigmoid, Tanh, Softmax), else the input.
#include "ops/grad_util_ew.h"

namespace lasgd::ops {
namespace {

using grad_ew::Attribute;
using grad_ew::FloatAttribute;

// A float attribute of the forward node, copied onto the backward node.
struct FloatParam {
  const char* name;
  float default_value;
};

// dX = backward_op(dY, saved) where saved is the forward input (or output
// when `use_output`), with the listed attributes copied.
GradientFn Pointwise(const std::string& backward_op, bool use_output,
                     std::vector<FloatParam> params = {}) {
  return [=](GradientContext& ctx) -> absl::Status {
    if (!ctx.NeedsGI(0)) return absl::OkStatus();
    std::map<std::string, Attribute> attributes;
    for (const FloatParam& p : params) {
      ASSIGN_OR_RETURN(float v, FloatAttribute(ctx, p.name, p.default_value));
      attributes[p.name] = Attribute::Float(v);
    }
    const std::string& saved = use_output ? ctx.O(0) : ctx.I(0);
    ctx.SetGI(0, ctx.Emit1(backward_op, {ctx.GO(0), saved}, std::move(attributes), kLasgdDomain));
    return absl::OkStatus();
  };
}

// ai.onnx Gelu (opset 20) has `approximate`; com.microsoft Gelu always uses erf.
absl::Status GeluGradient(GradientContext& ctx) {
  if (!ctx.NeedsGI(0)) return absl::OkStatus();
  std::string approximate = "none";
  if (ctx.node().domain.empty()) approximate = ctx.node().GetString("approximate", "none");
  ctx.SetGI(0, ctx.Emit1("GeluGrad", {ctx.GO(0), ctx.I(0)},
                         {{"approximate", Attribute::String(approximate)}}, kLasgdDomain));
  return absl::OkStatus();
}

// Before opset 13 Softmax flattens its input to 2-D at `axis` (default 1);
// from 13 it normalises along the single `axis` (default -1). The backward op
// gets the same semantics through `coerce_2d`.
GradientFn SoftmaxGradient(const std::string& backward_op) {
  return [backward_op](GradientContext& ctx) -> absl::Status {
    if (!ctx.NeedsGI(0)) return absl::OkStatus();
    const bool coerce_2d = ctx.opset() < 13;
    const int64_t axis = ctx.node().GetInt("axis", coerce_2d ? 1 : -1);
    ctx.SetGI(0, ctx.Emit1(backward_op, {ctx.GO(0), ctx.O(0)},
                           {{"axis", Attribute::Int(axis)},
                            {"coerce_2d", Attribute::Int(coerce_2d ? 1 : 0)}},
                           kLasgdDomain));
    return absl::OkStatus();
  };
}

}  // namespace

void RegisterActivationGradients(GradientRegistry& registry) {
  registry.Register("", "Relu", Pointwise("ReluGrad", true));
  registry.Register("", "LeakyRelu", Pointwise("LeakyReluGrad", false, {{"alpha", 0.01f}}));
  registry.Register("", "Sigmoid", Pointwise("SigmoidGrad", true));
  registry.Register("", "Tanh", Pointwise("TanhGrad", true));
  registry.Register("", "HardSigmoid",
                    Pointwise("HardSigmoidGrad", false, {{"alpha", 0.2f}, {"beta", 0.5f}}));
  registry.Register("", "HardSwish", Pointwise("HardSwishGrad", false));
  registry.Register("", "Gelu", GeluGradient);
  registry.Register("com.microsoft", "Gelu", GeluGradient);
  registry.Register("", "Softplus", Pointwise("SoftplusGrad", false));
  registry.Register("", "Elu", Pointwise("EluGrad", false, {{"alpha", 1.f}}));
  registry.Register(
      "", "Selu",
      Pointwise("SeluGrad", false,
                {{"alpha", 1.67326319217681884765625f}, {"gamma", 1.05070102214813232421875f}}));
  registry.Register("", "Softmax", SoftmaxGradient("SoftmaxGrad"));
  registry.Register("", "LogSoftmax", SoftmaxGradient("LogSoftmaxGrad"));
}

}  // namespace lasgd::ops
