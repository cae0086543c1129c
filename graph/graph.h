// The lasgd graph IR.
//
// Close to ONNX on purpose (values are named strings, nodes carry ONNX
// attributes) so that importing and exporting are mechanical, but owned by us
// so that passes can rewrite it freely: shape inference fills `value_info`,
// constant folding moves computed values into `initializers`, later passes add
// training and distributed programs.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace lasgd::graph {

struct Graph;

struct Attribute {
  enum class Kind { kUndefined, kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kGraph };
  Kind kind = Kind::kUndefined;
  float f = 0.f;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  static Attribute Int(int64_t v);
  static Attribute Float(float v);
  static Attribute String(std::string v);
  static Attribute Ints(std::vector<int64_t> v);
  static Attribute Floats(std::vector<float> v);
  static Attribute FromTensor(Tensor v);
  // "3", "[1,1]", "'NOTSET'", "tensor float32[2]"
  std::string ToString() const;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is ai.onnx
  // An empty string is an omitted optional input/output, as in ONNX.
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attributes;

  bool HasInput(size_t i) const { return i < inputs.size() && !inputs[i].empty(); }
  bool HasOutput(size_t i) const { return i < outputs.size() && !outputs[i].empty(); }
  const Attribute* FindAttribute(const std::string& attr_name) const;
  int64_t GetInt(const std::string& attr_name, int64_t default_value) const;
  float GetFloat(const std::string& attr_name, float default_value) const;
  std::string GetString(const std::string& attr_name, const std::string& default_value) const;
  std::vector<int64_t> GetInts(const std::string& attr_name,
                               std::vector<int64_t> default_value = {}) const;
  std::vector<float> GetFloats(const std::string& attr_name,
                               std::vector<float> default_value = {}) const;
  // "node 'conv1' (Conv)" — used as the prefix of every error about this node.
  std::string Describe() const;
};

// Type and shape of a value. dims are -1 where unknown; dim_params names a
// symbolic dimension ("batch_size") where the model gave one.
struct ValueInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  bool has_shape = false;
  Shape shape;
  std::vector<std::string> dim_params;

  bool IsStatic() const;
  // "float32[batch,3,224,224]"
  std::string TypeString() const;
};

struct Graph {
  std::string name;
  // domain -> opset version; "" (and "ai.onnx") is the default domain.
  std::map<std::string, int64_t> opset_imports;
  std::vector<Node> nodes;
  // Inputs the caller feeds (initializers are never listed here).
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  // Weights and constants, by value name.
  std::map<std::string, Tensor> initializers;
  // Initializers that are compile-time constants (Constant nodes, folded
  // values) rather than model parameters; passes may fold through these only.
  std::set<std::string> constant_names;
  // Known type/shape of every other value (from the model, then from inference).
  std::map<std::string, ValueInfo> value_info;
  // State updates, as ONNX TrainingInfoProto's update_binding: after a run,
  // initializer `first` takes the value computed for `second` (parameters,
  // optimizer state, BN running statistics).
  std::vector<std::pair<std::string, std::string>> state_updates;

  int64_t OpsetFor(const std::string& domain) const;
  bool IsInitializer(const std::string& value) const { return initializers.count(value) > 0; }
  bool IsGraphInput(const std::string& value) const;
  bool IsGraphOutput(const std::string& value) const;
  // Graph outputs and state-update sources: values passes must keep.
  bool IsRequiredValue(const std::string& value) const;
  // Type of any value: input, initializer or inferred intermediate.
  const ValueInfo* FindValueInfo(const std::string& value) const;
  // Returns nodes' indices in an order where producers come before consumers;
  // an error names a node on the cycle or the value nobody produces.
  absl::StatusOr<std::vector<size_t>> TopologicalOrder() const;
  // Reorders `nodes` topologically.
  absl::Status SortTopologically();
  // Readable text form used by `lasgd-inspect --dump-after`.
  std::string ToText() const;
};

}  // namespace lasgd::graph
