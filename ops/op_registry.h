// The op registry: for every (domain, op_type, opset range) we support, one
// OpSchema holding its shape function and its ordered list of CPU kernels.
//
// Each op family file (ops/conv.cc, ops/elementwise.cc, ...) defines a
// `RegisterXxxOps(OpRegistry&)` function listed in ops/all_ops.cc; we register
// explicitly rather than through static initialisers, which a static library
// link would silently drop.
//
// Kernel choice is an ordered list with reasons (after oneDNN's
// cpu_*_list.cpp): the plan tries candidates from fastest to reference, and a
// candidate that cannot handle the node returns a Status saying why; the plan
// records which one ran and why the others were refused.
#pragma once

#include <climits>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "runtime/tensor.h"

namespace lasgd::ops {

// The newest ai.onnx opset we accept (ONNX 1.22).
constexpr int64_t kLatestOnnxOpset = 27;

// What a shape function sees of one node. All input shapes are static: the
// symbolic batch dimension has been bound before inference runs.
class InferenceContext {
 public:
  InferenceContext(const graph::Node& node, int64_t opset, std::vector<const Tensor*> input_values,
                   std::vector<DataType> input_dtypes, std::vector<Shape> input_shapes)
      : node_(node),
        opset_(opset),
        input_values_(std::move(input_values)),
        input_dtypes_(std::move(input_dtypes)),
        input_shapes_(std::move(input_shapes)) {
    output_dtypes_.resize(node.outputs.size(), DataType::kUndefined);
    output_shapes_.resize(node.outputs.size());
  }

  const graph::Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  size_t num_inputs() const { return node_.inputs.size(); }
  size_t num_outputs() const { return node_.outputs.size(); }
  bool has_input(size_t i) const { return node_.HasInput(i); }
  bool has_output(size_t i) const { return node_.HasOutput(i); }
  DataType input_dtype(size_t i) const { return input_dtypes_[i]; }
  const Shape& input_shape(size_t i) const { return input_shapes_[i]; }
  int64_t input_rank(size_t i) const { return static_cast<int64_t>(input_shapes_[i].size()); }
  // The input's value when it is known at compile time (a constant or folded
  // value), else nullptr. Ops whose output shape depends on an input's value
  // (Reshape, Expand, Slice, ...) need it.
  const Tensor* input_value(size_t i) const {
    return i < input_values_.size() ? input_values_[i] : nullptr;
  }

  void set_output(size_t i, DataType dtype, Shape shape) {
    output_dtypes_[i] = dtype;
    output_shapes_[i] = std::move(shape);
  }
  DataType output_dtype(size_t i) const { return output_dtypes_[i]; }
  const Shape& output_shape(size_t i) const { return output_shapes_[i]; }

  // An InvalidArgument error prefixed with the node ("node 'x' (Conv): ...").
  absl::Status Error(const std::string& message) const;

 private:
  const graph::Node& node_;
  int64_t opset_;
  std::vector<const Tensor*> input_values_;
  std::vector<DataType> input_dtypes_;
  std::vector<Shape> input_shapes_;
  std::vector<DataType> output_dtypes_;
  std::vector<Shape> output_shapes_;
};

using ShapeFn = std::function<absl::Status(InferenceContext&)>;

// What a kernel sees when it runs. Inputs are read-only; outputs are already
// allocated (in the arena) with the shapes shape inference computed.
class KernelContext {
 public:
  KernelContext(const graph::Node& node, std::vector<const Tensor*> inputs,
                std::vector<Tensor*> outputs)
      : node_(node), inputs_(std::move(inputs)), outputs_(std::move(outputs)) {}
  const graph::Node& node() const { return node_; }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  // nullptr for an omitted optional input or output.
  const Tensor* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  Tensor* output(size_t i) const { return i < outputs_.size() ? outputs_[i] : nullptr; }

 private:
  const graph::Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor*> outputs_;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual absl::Status Run(KernelContext& ctx) = 0;

  // Layout negotiation (runtime/layout_plan.h). A float32 rank-4 value may be
  // stored in oneDNN's channel-blocked layout (ops/onednn_layout.h) instead of
  // plain NCHW when its producer and all its readers say they take it that
  // way natively, so that no reorder runs between them. Default: plain only.
  virtual bool AcceptsBlockedLayout(bool /*output*/, size_t /*index*/) const { return false; }
  // Called at most once, after planning and before the first Run, with one
  // flag per node input / output (true = blocked); only indices the kernel
  // accepted are ever true. The kernel re-creates whatever depends on it.
  virtual absl::Status UseBlockedLayouts(const std::vector<bool>& /*inputs*/,
                                         const std::vector<bool>& /*outputs*/) {
    return absl::OkStatus();
  }
};

// Everything a kernel factory may look at to decide whether it can run a node
// and to prepare (oneDNN primitives are created here, once per plan).
struct KernelBuildContext {
  const graph::Node& node;
  int64_t opset;
  std::vector<DataType> input_dtypes;
  std::vector<Shape> input_shapes;
  std::vector<DataType> output_dtypes;
  std::vector<Shape> output_shapes;
  // Per input: its value when that value is fixed for the kernel's whole
  // life (an inference plan's weights), else nullptr (or the vector is
  // shorter). Kernels may prepare such inputs once at build time (oneDNN
  // weight reorders) and must then ignore the run-time tensor; inputs not
  // listed here (trainable weights) must be read on every Run.
  std::vector<const Tensor*> constant_inputs;

  const Tensor* constant_input(size_t i) const {
    return i < constant_inputs.size() ? constant_inputs[i] : nullptr;
  }
};

struct KernelCandidate {
  // "onednn", "reference", ...
  std::string name;
  // Returns the kernel, or a Status whose message says why this candidate
  // refuses the node (e.g. "oneDNN has no float64 convolution").
  std::function<absl::StatusOr<std::unique_ptr<Kernel>>(const KernelBuildContext&)> build;
};

// Floating-point operations of one node for the given static shapes (a
// multiply-add counts as 2). Used by lasgd-inspect.
using FlopsFn = std::function<double(const graph::Node&, const std::vector<Shape>& inputs,
                                     const std::vector<Shape>& outputs)>;

struct OpSchema {
  std::string domain;  // "" for ai.onnx
  std::string op_type;
  // Opsets for which this schema is right; the registry picks the schema whose
  // range contains the model's opset for the domain.
  int64_t min_opset = 1;
  int64_t max_opset = 21;
  int min_inputs = 0;
  int max_inputs = INT_MAX;
  int min_outputs = 1;
  int max_outputs = INT_MAX;
  ShapeFn infer;
  // Fastest first, plain reference kernel last.
  std::vector<KernelCandidate> kernels;
  // Inputs that never carry a gradient (BatchNormalization's running mean and
  // variance, Reshape's shape, ...). Integer-typed inputs never do either.
  std::set<int> non_differentiable_inputs;
  // Whether constant folding may evaluate this op at compile time (false for
  // random ops and anything with side effects).
  bool foldable = true;
  FlopsFn flops;  // may be empty: counts as 0
};

class OpRegistry {
 public:
  // The registry with every op family registered.
  static const OpRegistry& Global();

  void Register(OpSchema schema);
  // The schema for a node at the model's opset, or an error that names the
  // node, the op and the opsets we support for it.
  absl::StatusOr<const OpSchema*> Find(const graph::Node& node, int64_t opset) const;
  // "Conv (opsets 1-21)" lines for the README and error messages.
  std::vector<std::string> SupportedOpsSummary() const;
  bool Knows(const std::string& domain, const std::string& op_type) const;

 private:
  std::map<std::pair<std::string, std::string>, std::vector<OpSchema>> schemas_;
};

// Normalises "ai.onnx" to "".
std::string CanonicalDomain(const std::string& domain);

// Helpers for shape functions and kernels.

// Numpy-style multidirectional broadcast of two shapes.
absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b);
// Normalises a possibly negative axis against `rank`, or fails naming it.
absl::StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank);

// One registration function per op family (ops/<family>.cc).
void RegisterElementwiseOps(OpRegistry& registry);
void RegisterActivationOps(OpRegistry& registry);
void RegisterConvOps(OpRegistry& registry);
void RegisterPoolOps(OpRegistry& registry);
void RegisterNormOps(OpRegistry& registry);
void RegisterMatMulOps(OpRegistry& registry);
void RegisterShapeOps(OpRegistry& registry);
void RegisterReduceOps(OpRegistry& registry);
void RegisterLossOps(OpRegistry& registry);
void RegisterMiscOps(OpRegistry& registry);
void RegisterStatelessDropoutOps(OpRegistry& registry);  // ops/stateless_dropout.cc

}  // namespace lasgd::ops
