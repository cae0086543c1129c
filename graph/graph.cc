#include "graph/graph.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lasgd::graph {

Attribute Attribute::Int(int64_t v) {
  Attribute a;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}
Attribute Attribute::Float(float v) {
  Attribute a;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}
Attribute Attribute::String(std::string v) {
  Attribute a;
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}
Attribute Attribute::Ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute Attribute::Floats(std::vector<float> v) {
  Attribute a;
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
Attribute Attribute::FromTensor(Tensor v) {
  Attribute a;
  a.kind = Kind::kTensor;
  a.t = std::move(v);
  return a;
}

std::string Attribute::ToString() const {
  switch (kind) {
    case Kind::kFloat:
      return absl::StrCat(f);
    case Kind::kInt:
      return absl::StrCat(i);
    case Kind::kString:
      return absl::StrCat("'", s, "'");
    case Kind::kTensor:
      return absl::StrCat("tensor ", t.TypeString());
    case Kind::kFloats:
      return absl::StrCat("[", absl::StrJoin(floats, ","), "]");
    case Kind::kInts:
      return absl::StrCat("[", absl::StrJoin(ints, ","), "]");
    case Kind::kStrings:
      return absl::StrCat("['", absl::StrJoin(strings, "','"), "']");
    case Kind::kGraph:
      return "<graph>";
    default:
      return "<undefined>";
  }
}

const Attribute* Node::FindAttribute(const std::string& attr_name) const {
  auto it = attributes.find(attr_name);
  return it == attributes.end() ? nullptr : &it->second;
}

int64_t Node::GetInt(const std::string& attr_name, int64_t default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  return a ? a->i : default_value;
}

float Node::GetFloat(const std::string& attr_name, float default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  return a ? a->f : default_value;
}

std::string Node::GetString(const std::string& attr_name, const std::string& default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  return a ? a->s : default_value;
}

std::vector<int64_t> Node::GetInts(const std::string& attr_name,
                                   std::vector<int64_t> default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  return a ? a->ints : default_value;
}

std::vector<float> Node::GetFloats(const std::string& attr_name,
                                   std::vector<float> default_value) const {
  const Attribute* a = FindAttribute(attr_name);
  return a ? a->floats : default_value;
}

std::string Node::Describe() const {
  std::string op =
      domain.empty() || domain == "ai.onnx" ? op_type : absl::StrCat(domain, ".", op_type);
  return absl::StrCat("node '", name, "' (", op, ")");
}

bool ValueInfo::IsStatic() const {
  if (!has_shape) return false;
  for (int64_t d : shape)
    if (d < 0) return false;
  return true;
}

std::string ValueInfo::TypeString() const {
  std::string out = DataTypeName(dtype);
  if (!has_shape) return out + "[?]";
  std::vector<std::string> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] >= 0) {
      dims.push_back(absl::StrCat(shape[i]));
    } else if (i < dim_params.size() && !dim_params[i].empty()) {
      dims.push_back(dim_params[i]);
    } else {
      dims.push_back("?");
    }
  }
  return absl::StrCat(out, "[", absl::StrJoin(dims, ","), "]");
}

int64_t Graph::OpsetFor(const std::string& domain) const {
  auto it = opset_imports.find(domain);
  if (it == opset_imports.end() && (domain.empty() || domain == "ai.onnx")) {
    it = opset_imports.find(domain.empty() ? "ai.onnx" : "");
  }
  return it == opset_imports.end() ? -1 : it->second;
}

bool Graph::IsGraphInput(const std::string& value) const {
  for (const ValueInfo& in : inputs)
    if (in.name == value) return true;
  return false;
}

bool Graph::IsGraphOutput(const std::string& value) const {
  for (const ValueInfo& out : outputs)
    if (out.name == value) return true;
  return false;
}

bool Graph::IsRequiredValue(const std::string& value) const {
  if (IsGraphOutput(value)) return true;
  for (const auto& [state, source] : state_updates)
    if (source == value) return true;
  return false;
}

const ValueInfo* Graph::FindValueInfo(const std::string& value) const {
  for (const ValueInfo& in : inputs)
    if (in.name == value) return &in;
  auto it = value_info.find(value);
  if (it != value_info.end()) return &it->second;
  for (const ValueInfo& out : outputs)
    if (out.name == value) return &out;
  return nullptr;
}

absl::StatusOr<std::vector<size_t>> Graph::TopologicalOrder() const {
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const std::string& out : nodes[i].outputs) {
      if (out.empty()) continue;
      auto [it, inserted] = producer.emplace(out, i);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("value '", out, "' is produced by both ", nodes[it->second].Describe(),
                         " and ", nodes[i].Describe(), "; ONNX graphs must be in SSA form"));
      }
      if (IsInitializer(out) || IsGraphInput(out)) {
        return absl::InvalidArgumentError(
            absl::StrCat(nodes[i].Describe(), " writes '", out,
                         "', which is already a graph input or initializer"));
      }
    }
  }
  // Kahn's algorithm, stable with respect to the original order.
  std::vector<int> pending(nodes.size(), 0);
  std::vector<std::vector<size_t>> consumers(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const std::string& in : nodes[i].inputs) {
      if (in.empty() || IsInitializer(in) || IsGraphInput(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(nodes[i].Describe(), " reads '", in,
                         "', which is not a graph input, an initializer, or any node's output"));
      }
      ++pending[i];
      consumers[it->second].push_back(i);
    }
  }
  std::vector<size_t> order;
  std::vector<size_t> ready;
  for (size_t i = nodes.size(); i-- > 0;)
    if (pending[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    size_t n = ready.back();
    ready.pop_back();
    order.push_back(n);
    std::vector<size_t> newly;
    for (size_t c : consumers[n])
      if (--pending[c] == 0) newly.push_back(c);
    // keep original relative order: push in reverse so smallest index pops first
    std::sort(newly.rbegin(), newly.rend());
    for (size_t c : newly) ready.push_back(c);
  }
  if (order.size() != nodes.size()) {
    // A node left pending may merely sit downstream of the cycle; walking
    // from it to pending producers must revisit a node, and that node is on
    // the cycle. Naming the whole loop tells the user what to cut.
    size_t start = 0;
    while (pending[start] == 0) ++start;
    std::vector<size_t> path;
    std::map<size_t, size_t> position;
    size_t current = start;
    while (!position.count(current)) {
      position[current] = path.size();
      path.push_back(current);
      for (const std::string& in : nodes[current].inputs) {
        auto it = in.empty() ? producer.end() : producer.find(in);
        if (it != producer.end() && pending[it->second] > 0) {
          current = it->second;
          break;
        }
      }
    }
    // path runs consumer -> producer; print producer -> consumer, from `current` back to it.
    std::vector<std::string> loop = {nodes[current].name};
    for (size_t k = path.size(); k-- > position[current] + 1;) loop.push_back(nodes[path[k]].name);
    loop.push_back(nodes[current].name);
    return absl::InvalidArgumentError(
        absl::StrCat("the graph has a cycle: ", nodes[current].Describe(),
                     " depends on its own output through '", absl::StrJoin(loop, "' -> '"), "'"));
  }
  return order;
}

absl::Status Graph::SortTopologically() {
  auto order = TopologicalOrder();
  if (!order.ok()) return order.status();
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  for (size_t i : *order) sorted.push_back(std::move(nodes[i]));
  nodes = std::move(sorted);
  return absl::OkStatus();
}

std::string Graph::ToText() const {
  std::ostringstream os;
  os << "graph '" << name << "' opsets {";
  bool first = true;
  for (const auto& [domain, version] : opset_imports) {
    os << (first ? "" : ", ") << (domain.empty() ? "ai.onnx" : domain) << ":" << version;
    first = false;
  }
  os << "}\n";
  for (const ValueInfo& in : inputs)
    os << "  input  " << in.name << ": " << in.TypeString() << "\n";
  for (const auto& [name, t] : initializers) {
    os << "  " << (constant_names.count(name) ? "const  " : "init   ") << name << ": "
       << t.TypeString() << "\n";
  }
  auto type_of = [&](const std::string& v) -> std::string {
    if (v.empty()) return "";
    auto it = initializers.find(v);
    if (it != initializers.end()) return it->second.TypeString();
    const ValueInfo* vi = FindValueInfo(v);
    return vi ? vi->TypeString() : "?";
  };
  for (const Node& n : nodes) {
    std::vector<std::string> outs;
    for (const std::string& o : n.outputs)
      outs.push_back(o.empty() ? "_" : absl::StrCat(o, ": ", type_of(o)));
    std::vector<std::string> ins;
    for (const std::string& i : n.inputs) ins.push_back(i.empty() ? "_" : i);
    std::vector<std::string> attrs;
    for (const auto& [k, a] : n.attributes) attrs.push_back(absl::StrCat(k, "=", a.ToString()));
    os << "  " << absl::StrJoin(outs, ", ") << " = " << (n.domain.empty() ? "" : n.domain + ".")
       << n.op_type << "(" << absl::StrJoin(ins, ", ") << ")";
    if (!attrs.empty()) os << " {" << absl::StrJoin(attrs, ", ") << "}";
    os << "  # " << n.name << "\n";
  }
  for (const ValueInfo& out : outputs)
    os << "  output " << out.name << ": " << type_of(out.name) << "\n";
  return os.str();
}

}  // namespace lasgd::graph
