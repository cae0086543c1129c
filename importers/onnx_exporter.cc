#include "importers/onnx_exporter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "onnx/onnx_pb.h"

namespace lasgd::importers {
namespace {

using graph::Attribute;
using graph::Graph;
using graph::Node;
using graph::ValueInfo;

// Offsets in the external data file are page aligned so that runtimes may
// memory-map each tensor.
constexpr int64_t kExternalAlignment = 4096;
constexpr int64_t kMaxInlineInitializerBytes = INT_MAX - (int64_t{64} << 20);

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string ErrnoText() { return std::strerror(errno); }

// The IR version that introduced the model's ai.onnx opset (onnx's
// VERSION_TABLE), but at least 4: from IR 4 on initializers need not be
// listed as graph inputs, which is how we write them.
int64_t IrVersionForOpset(int64_t opset) {
  if (opset <= 9) return 4;
  if (opset == 10) return 5;
  if (opset == 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

void FillTensorType(DataType dtype, const Shape& shape, const std::vector<std::string>& dim_params,
                    bool has_shape, onnx::TypeProto* type) {
  auto* tt = type->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(dtype));
  if (!has_shape) return;
  auto* sp = tt->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* d = sp->add_dim();
    if (shape[i] >= 0) {
      d->set_dim_value(shape[i]);
    } else if (i < dim_params.size() && !dim_params[i].empty()) {
      d->set_dim_param(dim_params[i]);
    }  // else: an unknown, unnamed dimension stays empty, as in ONNX
  }
}

void ValueInfoToProto(const ValueInfo& vi, onnx::ValueInfoProto* proto) {
  proto->set_name(vi.name);
  if (vi.dtype == DataType::kUndefined) return;  // the model gave no type
  FillTensorType(vi.dtype, vi.shape, vi.dim_params, vi.has_shape, proto->mutable_type());
}

absl::Status CheckExportableTensor(const Tensor& t, const std::string& what) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(what, " has no value"));
  if (!IsSupportedDataType(t.dtype())) {
    return absl::UnimplementedError(
        absl::StrCat(what, ": data type ", DataTypeName(t.dtype()), " cannot be exported"));
  }
  if (t.num_elements() > 0 && t.raw_data() == nullptr)
    return absl::InvalidArgumentError(absl::StrCat(what, " has no data"));
  return absl::OkStatus();
}

// Inline form: raw_data holds the little-endian bytes (our host order).
absl::Status TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* proto) {
  RETURN_IF_ERROR(CheckExportableTensor(t, name.empty() ? "tensor" : "tensor '" + name + "'"));
  if (!name.empty()) proto->set_name(name);
  proto->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) proto->add_dims(d);
  proto->set_raw_data(std::string(static_cast<const char*>(t.raw_data()), t.nbytes()));
  return absl::OkStatus();
}

absl::Status AttributeToProto(const std::string& name, const Attribute& a, const Node& node,
                              onnx::AttributeProto* proto) {
  using K = Attribute::Kind;
  proto->set_name(name);
  switch (a.kind) {
    case K::kFloat:
      proto->set_type(onnx::AttributeProto::FLOAT);
      proto->set_f(a.f);
      return absl::OkStatus();
    case K::kInt:
      proto->set_type(onnx::AttributeProto::INT);
      proto->set_i(a.i);
      return absl::OkStatus();
    case K::kString:
      proto->set_type(onnx::AttributeProto::STRING);
      proto->set_s(a.s);
      return absl::OkStatus();
    case K::kTensor:
      proto->set_type(onnx::AttributeProto::TENSOR);
      return WithContext(TensorToProto(a.t, "", proto->mutable_t()),
                         absl::StrCat(node.Describe(), ", attribute '", name, "'"));
    case K::kFloats:
      proto->set_type(onnx::AttributeProto::FLOATS);
      for (float f : a.floats) proto->add_floats(f);
      return absl::OkStatus();
    case K::kInts:
      proto->set_type(onnx::AttributeProto::INTS);
      for (int64_t i : a.ints) proto->add_ints(i);
      return absl::OkStatus();
    case K::kStrings:
      proto->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& s : a.strings) proto->add_strings(s);
      return absl::OkStatus();
    case K::kGraph:
      // The importer keeps no subgraph bodies (control flow is not supported).
      return absl::UnimplementedError(
          absl::StrCat(node.Describe(), ": graph attribute '", name,
                       "' cannot be exported (subgraphs are not kept by the importer)"));
    case K::kUndefined:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(node.Describe(), ": attribute '", name, "' has no type"));
}

bool IsDefaultDomain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

// A tensor whose bytes go to the external data file at `offset`.
struct ExternalTensor {
  Tensor tensor;
  int64_t offset;
};

struct ExportedModel {
  onnx::ModelProto model;
  std::vector<ExternalTensor> external;  // empty when everything is inline
  int64_t external_bytes = 0;
};

// The inference rewrite on a copy of the nodes: BN to inference mode,
// Dropout removed. Returns the nodes to export.
absl::StatusOr<std::vector<Node>> RewriteForInference(const Graph& g) {
  const int64_t opset = g.OpsetFor("");
  std::map<std::string, std::string> forward;  // Dropout output -> Dropout input
  std::map<std::string, std::string> dropped;  // dropped output -> who dropped it and why
  std::map<std::string, const Node*> dropout_of_output;
  for (const Node& n : g.nodes) {
    if (!IsDefaultDomain(n.domain)) continue;
    if (n.op_type == "Dropout") {
      if (!n.HasInput(0) || !n.HasOutput(0))
        return absl::InvalidArgumentError(absl::StrCat(n.Describe(), " has no data input/output"));
      forward[n.outputs[0]] = n.inputs[0];
      dropout_of_output[n.outputs[0]] = &n;
      for (size_t i = 1; i < n.outputs.size(); ++i) {
        if (!n.outputs[i].empty())
          dropped[n.outputs[i]] =
              absl::StrCat("the mask output of ", n.Describe(), ", which is removed for inference");
      }
    } else if (n.op_type == "BatchNormalization") {
      for (size_t i = 1; i < n.outputs.size(); ++i) {
        if (!n.outputs[i].empty())
          dropped[n.outputs[i]] = absl::StrCat("output ", i, " of ", n.Describe(),
                                               ", a training-mode statistic that inference-mode "
                                               "BatchNormalization does not produce");
      }
    }
  }
  // Follows chains of Dropouts back to the first real value.
  auto resolve = [&](std::string name) {
    for (size_t hops = 0; hops <= forward.size(); ++hops) {
      auto it = forward.find(name);
      if (it == forward.end()) break;
      name = it->second;
    }
    return name;
  };

  std::vector<Node> out;
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  for (const auto& o : g.outputs) {
    auto it = dropped.find(resolve(o.name));
    if (it != dropped.end())
      return absl::FailedPreconditionError(
          absl::StrCat("graph output '", o.name, "' is ", it->second, "; it cannot be exported"));
  }
  for (const Node& original : g.nodes) {
    if (IsDefaultDomain(original.domain) && original.op_type == "Dropout") {
      // A graph output keeps its name through an Identity where the Dropout was.
      if (graph_outputs.count(original.outputs[0])) {
        Node id;
        id.name = original.name;
        id.op_type = "Identity";
        id.inputs = {resolve(original.outputs[0])};
        id.outputs = {original.outputs[0]};
        out.push_back(std::move(id));
      }
      continue;
    }
    Node n = original;
    for (std::string& in : n.inputs) {
      if (in.empty()) continue;
      std::string source = resolve(in);  // through Dropouts, whose inputs may be dropped too
      auto it = dropped.find(source);
      if (it != dropped.end())
        return absl::FailedPreconditionError(absl::StrCat(n.Describe(), " reads '", source, "', ",
                                                          it->second, "; it cannot be exported"));
      in = source;
    }
    if (IsDefaultDomain(n.domain) && n.op_type == "BatchNormalization") {
      n.outputs.resize(1);
      if (opset >= 14) {
        n.attributes["training_mode"] = Attribute::Int(0);
      } else {
        n.attributes.erase("training_mode");  // not an attribute before 14
      }
      // Opset 7-8 defaulted to inference already; `is_test` predates opset 7.
    }
    out.push_back(std::move(n));
  }
  return out;
}

absl::StatusOr<ExportedModel> BuildModel(const Graph& g,
                                         const std::map<std::string, Tensor>& trained_values,
                                         const ExportOptions& options,
                                         const std::string& model_file_name) {
  // Trained values must replace something, with the same type.
  for (const auto& [name, t] : trained_values) {
    auto it = g.initializers.find(name);
    if (it == g.initializers.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trained value '", name, "' is not an initializer of the model (", g.initializers.size(),
          " initializers); export takes parameters and BN statistics only"));
    }
    if (t.dtype() != it->second.dtype() || t.shape() != it->second.shape()) {
      return absl::InvalidArgumentError(
          absl::StrCat("trained value '", name, "' is ", t.TypeString(),
                       "; the model's initializer is ", it->second.TypeString()));
    }
  }
  ASSIGN_OR_RETURN(std::vector<Node> nodes, RewriteForInference(g));

  std::set<std::string> used;
  for (const Node& n : nodes)
    for (const auto& in : n.inputs) used.insert(in);
  for (const auto& o : g.outputs) used.insert(o.name);
  std::set<std::string> produced;
  for (const Node& n : nodes)
    for (const auto& o : n.outputs) produced.insert(o);

  // Initializers to write: every parameter, and the constants still read.
  std::vector<std::pair<std::string, Tensor>> inits;
  int64_t total_bytes = 0;
  for (const auto& [name, original] : g.initializers) {
    if (g.constant_names.count(name) && !used.count(name)) continue;  // e.g. Dropout's ratio
    auto it = trained_values.find(name);
    const Tensor& t = it != trained_values.end() ? it->second : original;
    RETURN_IF_ERROR(CheckExportableTensor(t, absl::StrCat("initializer '", name, "'")));
    total_bytes += static_cast<int64_t>(t.nbytes());
    inits.emplace_back(name, t);
  }
  // Whatever the threshold, weights that cannot fit one protobuf message
  // (with room for the graph itself) go out.
  const bool external = total_bytes > options.external_data_threshold_bytes ||
                        total_bytes > kMaxInlineInitializerBytes;
  if (external && model_file_name.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the initializers hold ", total_bytes, " bytes, more than the ",
                     options.external_data_threshold_bytes,
                     " that fit one protobuf message; export to a file so they can go to "
                     "external data"));
  }

  ExportedModel result;
  onnx::ModelProto& model = result.model;
  const int64_t opset = g.OpsetFor("");
  model.set_ir_version(IrVersionForOpset(opset));
  model.set_producer_name(options.producer_name);
  model.set_producer_version(options.producer_version);
  for (const auto& [domain, version] : g.opset_imports) {
    auto* op = model.add_opset_import();
    op->set_domain(domain == "ai.onnx" ? "" : domain);
    op->set_version(version);
  }
  onnx::GraphProto* gp = model.mutable_graph();
  gp->set_name(g.name.empty() ? "lasgd_inference" : g.name);

  for (const auto& vi : g.inputs) ValueInfoToProto(vi, gp->add_input());
  for (const auto& vi : g.outputs) ValueInfoToProto(vi, gp->add_output());
  for (const auto& [name, vi] : g.value_info) {
    // Hints for values that still exist; inputs/outputs are typed above.
    if (!produced.count(name) || vi.dtype == DataType::kUndefined) continue;
    bool is_output = false;
    for (const auto& o : g.outputs) is_output |= o.name == name;
    if (is_output) continue;
    ValueInfo named = vi;
    named.name = name;
    ValueInfoToProto(named, gp->add_value_info());
  }

  const std::string location = model_file_name + ".data";
  for (auto& [name, t] : inits) {
    onnx::TensorProto* tp = gp->add_initializer();
    if (external && static_cast<int64_t>(t.nbytes()) >= options.external_min_tensor_bytes) {
      tp->set_name(name);
      tp->set_data_type(static_cast<int32_t>(t.dtype()));
      for (int64_t d : t.shape()) tp->add_dims(d);
      tp->set_data_location(onnx::TensorProto::EXTERNAL);
      int64_t offset = (result.external_bytes + kExternalAlignment - 1) / kExternalAlignment *
                       kExternalAlignment;
      auto add_kv = [&](const char* key, const std::string& value) {
        auto* kv = tp->add_external_data();
        kv->set_key(key);
        kv->set_value(value);
      };
      add_kv("location", location);
      add_kv("offset", std::to_string(offset));
      add_kv("length", std::to_string(t.nbytes()));
      result.external.push_back({t, offset});
      result.external_bytes = offset + static_cast<int64_t>(t.nbytes());
    } else {
      RETURN_IF_ERROR(TensorToProto(t, name, tp));
    }
  }

  for (const Node& n : nodes) {
    onnx::NodeProto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (const auto& in : n.inputs) np->add_input(in);
    for (const auto& o : n.outputs) np->add_output(o);
    for (const auto& [name, a] : n.attributes)
      RETURN_IF_ERROR(AttributeToProto(name, a, n, np->add_attribute()));
  }
  if (model.ByteSizeLong() >= static_cast<size_t>(INT_MAX)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model is ", model.ByteSizeLong(),
        " bytes, over protobuf's 2 GiB limit; lower ExportOptions::external_data_threshold_bytes"));
  }
  return result;
}

// A file written under a temporary name and renamed over the final one only
// when complete and on disk.
class AtomicFile {
 public:
  ~AtomicFile() {
    if (fd_ >= 0) close(fd_);
    if (!temp_.empty()) unlink(temp_.c_str());
  }
  absl::Status Open(const std::string& path) {
    path_ = path;
    std::string dir = DirName(path);
    std::string templ = absl::StrCat(dir, "/.", BaseName(path), ".tmp-XXXXXX");
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    fd_ = mkstemp(buf.data());
    if (fd_ < 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot create a temporary file in '", dir,
                                                      "' to write '", path, "': ", ErrnoText()));
    }
    temp_ = buf.data();
    // mkstemp makes 0600 files; a model is an ordinary user file.
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd_, 0666 & ~mask);
    return absl::OkStatus();
  }
  absl::Status Write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        return absl::DataLossError(absl::StrCat("writing '", path_, "' failed: ", ErrnoText()));
      p += w;
      n -= static_cast<size_t>(w);
    }
    return absl::OkStatus();
  }
  absl::Status Commit() {
    if (fsync(fd_) != 0)
      return absl::DataLossError(absl::StrCat("fsync of '", path_, "' failed: ", ErrnoText()));
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0)
      return absl::DataLossError(absl::StrCat("closing '", path_, "' failed: ", ErrnoText()));
    if (rename(temp_.c_str(), path_.c_str()) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot rename the temporary file to '", path_, "': ", ErrnoText()));
    }
    temp_.clear();
    // The rename itself is durable only once the folder is synced.
    int dir_fd = open(DirName(path_).c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd >= 0) {
      fsync(dir_fd);
      close(dir_fd);
    }
    return absl::OkStatus();
  }

 private:
  std::string path_, temp_;
  int fd_ = -1;
};

absl::Status WriteExternalData(const std::string& path, const ExportedModel& exported) {
  AtomicFile file;
  RETURN_IF_ERROR(file.Open(path));
  int64_t pos = 0;
  const std::string zeros(kExternalAlignment, '\0');
  for (const ExternalTensor& e : exported.external) {
    RETURN_IF_ERROR(file.Write(zeros.data(), static_cast<size_t>(e.offset - pos)));
    RETURN_IF_ERROR(file.Write(e.tensor.raw_data(), e.tensor.nbytes()));
    pos = e.offset + static_cast<int64_t>(e.tensor.nbytes());
  }
  return file.Commit();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  AtomicFile file;
  RETURN_IF_ERROR(file.Open(path));
  RETURN_IF_ERROR(file.Write(bytes.data(), bytes.size()));
  return file.Commit();
}

absl::Status ExportInferenceModel(const graph::Graph& original,
                                  const std::map<std::string, Tensor>& trained_values,
                                  const std::string& path, const ExportOptions& options) {
  auto ctx = absl::StrCat("while exporting the inference model to '", path, "'");
  std::string base = BaseName(path);
  if (base.empty() || base == "." || base == "..")
    return absl::InvalidArgumentError(absl::StrCat(ctx, ": the path names no file"));
  auto exported = BuildModel(original, trained_values, options, base);
  if (!exported.ok()) return WithContext(exported.status(), ctx);
  // Data first: a model on disk never points at data that is not there yet.
  if (!exported->external.empty())
    RETURN_IF_ERROR_CTX(WriteExternalData(path + ".data", *exported), ctx);
  std::string bytes;
  if (!exported->model.SerializeToString(&bytes))
    return absl::InternalError(absl::StrCat(ctx, ": protobuf could not serialize the model"));
  RETURN_IF_ERROR_CTX(WriteFileAtomically(path, bytes), ctx);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ExportInferenceModelToBytes(
    const graph::Graph& original, const std::map<std::string, Tensor>& trained_values,
    const ExportOptions& options) {
  auto exported = BuildModel(original, trained_values, options, "");
  if (!exported.ok()) return WithContext(exported.status(), "while exporting the inference model");
  std::string bytes;
  if (!exported->model.SerializeToString(&bytes))
    return absl::InternalError("protobuf could not serialize the exported model");
  return bytes;
}

}  // namespace lasgd::importers
