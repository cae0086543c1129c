// Gradient builders: for every differentiable op, a function that emits
// ordinary graph nodes computing the gradients of the op's inputs from the
// gradients of its outputs (after ORT's GO/GI/I/O gradient DSL). Because a
// gradient is plain graph, every backend and every later pass sees it.
//
// Builders live in their op family's file next to the schema and kernels and
// are registered by `Register<Family>Gradients(GradientRegistry&)`. They run
// after shape inference, so every forward value's dtype and static shape is
// known. Emitted ai.onnx nodes are interpreted at the model's opset: prefer
// ops whose form does not depend on the opset (Mul, Add, Neg, Where, ...) or
// our own com.lasgd backward ops, and use ReduceToShape for broadcasting.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "graph/graph.h"
#include "runtime/tensor.h"

namespace lasgd::ops {

class GradientContext {
 public:
  virtual ~GradientContext() = default;

  virtual const graph::Node& node() const = 0;
  virtual int64_t opset() const = 0;

  // The forward node's inputs and outputs (value names; "" when omitted).
  const std::string& I(size_t i) const { return node().inputs[i]; }
  const std::string& O(size_t i) const { return node().outputs[i]; }
  size_t num_inputs() const { return node().inputs.size(); }
  size_t num_outputs() const { return node().outputs.size(); }
  virtual DataType dtype(const std::string& value) const = 0;
  virtual const Shape& shape(const std::string& value) const = 0;
  // The value when it is a compile-time constant (or a parameter's initial
  // value is NOT returned: parameters change), else nullptr.
  virtual const Tensor* constant_value(const std::string& value) const = 0;

  // Gradient flowing into output o ("" when no gradient reaches it).
  virtual const std::string& GO(size_t o) const = 0;
  bool HasGO(size_t o) const { return !GO(o).empty(); }
  // Whether input i needs a gradient (it leads to a trainable parameter).
  virtual bool NeedsGI(size_t i) const = 0;
  // Declares `value` as the gradient of input i (its shape must equal the input's).
  virtual void SetGI(size_t i, const std::string& value) = 0;

  // Emits a node with fresh output names and returns them.
  virtual std::vector<std::string> Emit(const std::string& op_type,
                                        const std::vector<std::string>& inputs,
                                        size_t num_outputs = 1,
                                        std::map<std::string, graph::Attribute> attributes = {},
                                        const std::string& domain = "") = 0;
  // Single-output convenience form of Emit.
  std::string Emit1(const std::string& op_type, const std::vector<std::string>& inputs,
                    std::map<std::string, graph::Attribute> attributes = {},
                    const std::string& domain = "") {
    return Emit(op_type, inputs, 1, std::move(attributes), domain)[0];
  }
  // A new constant initializer holding `value`.
  virtual std::string Constant(const Tensor& value) = 0;
  // A scalar constant of `dtype` (e.g. 1.0 for a derivative).
  virtual std::string ScalarConstant(double value, DataType dtype) = 0;
  // Sums `grad` (shaped like the broadcast result `from`) down to `to`, the
  // shape of the operand that was broadcast; returns `grad` when they match.
  virtual std::string ReduceToShape(const std::string& grad, const Shape& from,
                                    const Shape& to) = 0;

  // An InvalidArgument/Unimplemented error naming the node.
  absl::Status Error(const std::string& message) const;
};

using GradientFn = std::function<absl::Status(GradientContext&)>;

class GradientRegistry {
 public:
  static const GradientRegistry& Global();
  void Register(const std::string& domain, const std::string& op_type, GradientFn fn);
  // nullptr when the op has no gradient builder.
  const GradientFn* Find(const std::string& domain, const std::string& op_type) const;

 private:
  std::map<std::pair<std::string, std::string>, GradientFn> builders_;
};

// One registration function per op family (in ops/<family>.cc or
// ops/<family>_grad.cc).
void RegisterElementwiseGradients(GradientRegistry& registry);
void RegisterActivationGradients(GradientRegistry& registry);
void RegisterConvGradients(GradientRegistry& registry);
void RegisterPoolGradients(GradientRegistry& registry);
void RegisterNormGradients(GradientRegistry& registry);
void RegisterMatMulGradients(GradientRegistry& registry);
void RegisterShapeGradients(GradientRegistry& registry);
void RegisterReduceGradients(GradientRegistry& registry);
void RegisterLossGradients(GradientRegistry& registry);
void RegisterMiscGradients(GradientRegistry& registry);

}  // namespace lasgd::ops
