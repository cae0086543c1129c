#include "importers/onnx_importer.h"

#include <sys/stat.h>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "onnx/onnx_pb.h"

namespace lasgd::importers {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return absl::NotFoundError(absl::StrCat("file '", path, "' does not exist"));
  if (S_ISDIR(st.st_mode))
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is a directory, not a file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat("cannot open '", path, "' for reading"));
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  in.read(bytes.data(), st.st_size);
  if (in.gcount() != st.st_size)
    return absl::DataLossError(absl::StrCat("could not read all of '", path, "'"));
  return bytes;
}

// Parses with the 2 GiB limit raised as far as protobuf allows; larger
// models must keep their weights in external data files, which we read
// ourselves.
bool ParseProto(const std::string& bytes, google::protobuf::MessageLite* message) {
  google::protobuf::io::ArrayInputStream raw(
      bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX)));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  return message->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::Status ReadExternalData(const onnx::TensorProto& proto, const std::string& model_dir,
                              Tensor& t) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      // Not std::stoll: it throws on junk, and a bad file must not abort us.
      int64_t& field = kv.key() == "offset" ? offset : length;
      if (!absl::SimpleAtoi(kv.value(), &field) || field < 0) {
        return absl::InvalidArgumentError(absl::StrCat("external data '", kv.key(), "' is '",
                                                       kv.value(),
                                                       "'; expected a non-negative integer"));
      }
    }
  }
  if (location.empty()) return absl::InvalidArgumentError("external data without a 'location'");
  if (location.find("..") != std::string::npos || (!location.empty() && location[0] == '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("external data location '", location,
                     "' must be a relative path inside the model's folder"));
  }
  std::string path = model_dir + "/" + location;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("external data file '", path, "' is missing"));
  in.seekg(0, std::ios::end);
  int64_t file_size = in.tellg();
  int64_t need = static_cast<int64_t>(t.nbytes());
  if (length >= 0 && length != need) {
    return absl::InvalidArgumentError(absl::StrCat("external data length ", length,
                                                   " does not match ", t.TypeString(), " (", need,
                                                   " bytes)"));
  }
  if (offset > file_size || need > file_size - offset) {  // no overflow for huge offsets
    return absl::DataLossError(absl::StrCat("external data file '", path, "' has ", file_size,
                                            " bytes; need ", need, " at offset ", offset,
                                            " (truncated?)"));
  }
  in.seekg(offset);
  in.read(static_cast<char*>(t.raw_data()), need);
  if (in.gcount() != need) return absl::DataLossError(absl::StrCat("short read from '", path, "'"));
  return absl::OkStatus();
}

template <typename Field>
absl::Status CheckCount(const Field& field, int64_t expected, const char* name) {
  if (field.size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " holds ", field.size(), " values; the shape needs ", expected));
  }
  return absl::OkStatus();
}

absl::StatusOr<graph::ValueInfo> ValueInfoFromProto(const onnx::ValueInfoProto& proto) {
  graph::ValueInfo vi;
  vi.name = proto.name();
  if (!proto.has_type()) return vi;
  if (!proto.type().has_tensor_type()) {
    return absl::UnimplementedError(
        absl::StrCat("value '", proto.name(),
                     "' is not a tensor (sequences, maps and optionals are not supported)"));
  }
  const auto& tt = proto.type().tensor_type();
  vi.dtype = static_cast<DataType>(tt.elem_type());
  if (tt.has_shape()) {
    vi.has_shape = true;
    for (const auto& d : tt.shape().dim()) {
      vi.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
      vi.dim_params.push_back(d.has_dim_param() ? d.dim_param() : "");
    }
  }
  return vi;
}

absl::StatusOr<graph::Attribute> AttributeFromProto(const onnx::AttributeProto& a,
                                                    const std::string& model_dir) {
  graph::Attribute out;
  using K = graph::Attribute::Kind;
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT:
      out.kind = K::kFloat;
      out.f = a.f();
      break;
    case onnx::AttributeProto::INT:
      out.kind = K::kInt;
      out.i = a.i();
      break;
    case onnx::AttributeProto::STRING:
      out.kind = K::kString;
      out.s = a.s();
      break;
    case onnx::AttributeProto::TENSOR: {
      out.kind = K::kTensor;
      ASSIGN_OR_RETURN(out.t, TensorFromProto(a.t(), model_dir));
      break;
    }
    case onnx::AttributeProto::FLOATS:
      out.kind = K::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.kind = K::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = K::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      out.kind = K::kGraph;
      break;  // control flow: rejected by the verifier
    case onnx::AttributeProto::UNDEFINED: {
      // Old exporters leave `type` unset; infer it from which field is filled.
      if (a.has_f()) {
        out.kind = K::kFloat;
        out.f = a.f();
      } else if (a.has_i()) {
        out.kind = K::kInt;
        out.i = a.i();
      } else if (a.has_s()) {
        out.kind = K::kString;
        out.s = a.s();
      } else if (a.ints_size()) {
        out.kind = K::kInts;
        out.ints.assign(a.ints().begin(), a.ints().end());
      } else if (a.floats_size()) {
        out.kind = K::kFloats;
        out.floats.assign(a.floats().begin(), a.floats().end());
      } else if (a.has_t()) {
        out.kind = K::kTensor;
        ASSIGN_OR_RETURN(out.t, TensorFromProto(a.t(), model_dir));
      } else
        return absl::InvalidArgumentError(
            absl::StrCat("attribute '", a.name(), "' has no type and no value"));
      break;
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("attribute '", a.name(), "' has unsupported type ", a.type()));
  }
  return out;
}

// Constant nodes become constant initializers so that every later pass sees
// their values directly.
absl::StatusOr<Tensor> ConstantNodeValue(const graph::Node& node) {
  using K = graph::Attribute::Kind;
  for (const auto& [name, a] : node.attributes) {
    if (name == "value" && a.kind == K::kTensor) return a.t;
    if (name == "value_float" && a.kind == K::kFloat) return Tensor::FromFloats({a.f}, {});
    if (name == "value_floats")
      return Tensor::FromFloats(a.floats, {static_cast<int64_t>(a.floats.size())});
    if (name == "value_int" && a.kind == K::kInt) return Tensor::FromInt64s({a.i}, {});
    if (name == "value_ints")
      return Tensor::FromInt64s(a.ints, {static_cast<int64_t>(a.ints.size())});
  }
  return absl::UnimplementedError(
      absl::StrCat(node.Describe(),
                   ": needs one of the attributes value, value_float(s), value_int(s) "
                   "(sparse and string constants are not supported)"));
}

}  // namespace

absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto,
                                       const std::string& model_dir) {
  auto dtype = static_cast<DataType>(proto.data_type());
  std::string where = proto.name().empty() ? "tensor" : absl::StrCat("tensor '", proto.name(), "'");
  if (!IsSupportedDataType(dtype)) {
    return absl::UnimplementedError(
        absl::StrCat(where, ": data type ", DataTypeName(dtype), " is not supported"));
  }
  if (proto.segment().begin() != 0 || proto.segment().end() != 0) {
    return absl::UnimplementedError(absl::StrCat(where, ": segmented tensors are not supported"));
  }
  Shape shape(proto.dims().begin(), proto.dims().end());
  for (int64_t d : shape) {
    if (d < 0)
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": negative dimension in ", ShapeToString(shape)));
  }
  if (NumElements(shape) > (int64_t{1} << 40)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": implausibly large shape ", ShapeToString(shape)));
  }
  Tensor t = Tensor::Allocate(dtype, shape);
  const int64_t n = t.num_elements();
  auto ctx = [&](absl::Status s) { return WithContext(s, where); };
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    RETURN_IF_ERROR(ctx(ReadExternalData(proto, model_dir, t)));
    return t;
  }
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != t.nbytes()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": raw_data has ",
                                                     proto.raw_data().size(), " bytes; ",
                                                     t.TypeString(), " needs ", t.nbytes()));
    }
    std::memcpy(t.raw_data(), proto.raw_data().data(), t.nbytes());
    return t;
  }
  // An empty repeated field's data() is null, which memcpy must not see even
  // for zero bytes; hence the n > 0 guards.
  switch (dtype) {
    case DataType::kFloat32:
      RETURN_IF_ERROR(ctx(CheckCount(proto.float_data(), n, "float_data")));
      if (n > 0) std::memcpy(t.raw_data(), proto.float_data().data(), n * 4);
      break;
    case DataType::kFloat64:
      RETURN_IF_ERROR(ctx(CheckCount(proto.double_data(), n, "double_data")));
      if (n > 0) std::memcpy(t.raw_data(), proto.double_data().data(), n * 8);
      break;
    case DataType::kInt64:
      RETURN_IF_ERROR(ctx(CheckCount(proto.int64_data(), n, "int64_data")));
      if (n > 0) std::memcpy(t.raw_data(), proto.int64_data().data(), n * 8);
      break;
    case DataType::kUint32:
      RETURN_IF_ERROR(ctx(CheckCount(proto.uint64_data(), n, "uint64_data")));
      for (int64_t i = 0; i < n; ++i)
        t.data<uint32_t>()[i] = static_cast<uint32_t>(proto.uint64_data(i));
      break;
    case DataType::kUint64:  // not through double: values above 2^53 must stay exact
      RETURN_IF_ERROR(ctx(CheckCount(proto.uint64_data(), n, "uint64_data")));
      if (n > 0) std::memcpy(t.raw_data(), proto.uint64_data().data(), n * 8);
      break;
    case DataType::kFloat16:
    case DataType::kBFloat16:
      RETURN_IF_ERROR(ctx(CheckCount(proto.int32_data(), n, "int32_data")));
      for (int64_t i = 0; i < n; ++i)
        t.data<uint16_t>()[i] = static_cast<uint16_t>(proto.int32_data(i));
      break;
    default:  // int32, int16, int8, uint16, uint8, bool live in int32_data
      RETURN_IF_ERROR(ctx(CheckCount(proto.int32_data(), n, "int32_data")));
      for (int64_t i = 0; i < n; ++i) t.SetFromDouble(i, proto.int32_data(i));
      break;
  }
  return t;
}

absl::StatusOr<Tensor> LoadTensorProtoFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  onnx::TensorProto proto;
  if (!ParseProto(bytes, &proto))
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a TensorProto"));
  return TensorFromProto(proto, DirName(path));
}

namespace {

// One GraphProto (the model's graph, or a TrainingInfoProto's initialization
// or algorithm graph) with the model's opsets.
absl::StatusOr<graph::Graph> ImportGraphProto(const onnx::GraphProto& gp,
                                              const onnx::ModelProto& model,
                                              const std::string& model_dir) {
  graph::Graph g;
  g.name = gp.name();
  for (const auto& op : model.opset_import())
    g.opset_imports[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  if (model.opset_import_size() == 0) g.opset_imports[""] = 1;  // IR < 3 default

  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) return absl::InvalidArgumentError("an initializer has no name");
    ASSIGN_OR_RETURN(Tensor t, TensorFromProto(init, model_dir));
    if (!g.initializers.emplace(init.name(), std::move(t)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("initializer '", init.name(), "' is defined twice"));
    }
  }
  if (gp.sparse_initializer_size() > 0)
    return absl::UnimplementedError("sparse initializers are not supported");
  for (const auto& in : gp.input()) {
    if (g.initializers.count(in.name())) continue;  // an initializer with a default value
    ASSIGN_OR_RETURN(graph::ValueInfo vi, ValueInfoFromProto(in));
    if (vi.dtype == DataType::kUndefined) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph input '", in.name(), "' has no tensor type"));
    }
    g.inputs.push_back(std::move(vi));
  }
  for (const auto& out : gp.output()) {
    ASSIGN_OR_RETURN(graph::ValueInfo vi, ValueInfoFromProto(out));
    g.outputs.push_back(std::move(vi));
  }
  for (const auto& v : gp.value_info()) {
    auto vi = ValueInfoFromProto(v);
    if (vi.ok()) g.value_info[v.name()] = *vi;  // a hint only: a bad one is ignored
  }
  int unnamed = 0;
  for (const auto& np : gp.node()) {
    graph::Node node;
    node.name = np.name().empty() ? absl::StrCat(np.op_type(), "_", unnamed++) : np.name();
    node.op_type = np.op_type();
    node.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    node.inputs.assign(np.input().begin(), np.input().end());
    node.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) {
      auto attr = AttributeFromProto(a, model_dir);
      if (!attr.ok())
        return WithContext(attr.status(), absl::StrCat("while importing ", node.Describe()));
      node.attributes[a.name()] = std::move(*attr);
    }
    if (node.op_type == "Constant" && node.domain.empty() && node.outputs.size() == 1) {
      auto value = ConstantNodeValue(node);
      if (!value.ok()) return WithContext(value.status(), "while importing");
      if (g.initializers.count(node.outputs[0])) {
        return absl::InvalidArgumentError(
            absl::StrCat(node.Describe(), " redefines '", node.outputs[0], "'"));
      }
      g.initializers[node.outputs[0]] = *value;
      g.constant_names.insert(node.outputs[0]);
      continue;
    }
    g.nodes.push_back(std::move(node));
  }
  return g;
}

absl::Status CheckModel(const onnx::ModelProto& model) {
  if (!model.has_graph()) return absl::InvalidArgumentError("the model has no graph");
  if (model.ir_version() <= 0)
    return absl::InvalidArgumentError("the model has no ir_version (is it really ONNX?)");
  if (model.functions_size() > 0) {
    return absl::UnimplementedError("model-local functions are not supported");
  }
  return absl::OkStatus();
}

absl::StatusOr<onnx::ModelProto> ReadModelProto(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  if (bytes.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is empty; expected an ONNX model"));
  onnx::ModelProto model;
  if (!ParseProto(bytes, &model)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a valid ONNX model (", bytes.size(),
                     " bytes that do not parse as onnx.ModelProto; truncated or "
                     "not ONNX?)"));
  }
  return model;
}

}  // namespace

absl::StatusOr<graph::Graph> ImportModelProto(const onnx::ModelProto& model,
                                              const std::string& model_dir) {
  RETURN_IF_ERROR(CheckModel(model));
  return ImportGraphProto(model.graph(), model, model_dir);
}

absl::StatusOr<std::vector<graph::TrainingInfo>> ImportTrainingInfo(const onnx::ModelProto& model,
                                                                    const std::string& model_dir) {
  RETURN_IF_ERROR(CheckModel(model));
  std::vector<graph::TrainingInfo> infos;
  for (int i = 0; i < model.training_info_size(); ++i) {
    const onnx::TrainingInfoProto& tp = model.training_info(i);
    graph::TrainingInfo info;
    const std::string where = absl::StrCat("training_info[", i, "]");
    if (tp.has_initialization()) {
      auto g = ImportGraphProto(tp.initialization(), model, model_dir);
      if (!g.ok()) return WithContext(g.status(), absl::StrCat("in ", where, ".initialization"));
      info.initialization = std::move(*g);
    }
    if (tp.has_algorithm()) {
      auto g = ImportGraphProto(tp.algorithm(), model, model_dir);
      if (!g.ok()) return WithContext(g.status(), absl::StrCat("in ", where, ".algorithm"));
      info.algorithm = std::move(*g);
    }
    for (const auto& b : tp.initialization_binding())
      info.initialization_binding.push_back({b.key(), b.value()});
    for (const auto& b : tp.update_binding()) info.update_binding.push_back({b.key(), b.value()});
    infos.push_back(std::move(info));
  }
  return infos;
}

absl::StatusOr<std::vector<graph::TrainingInfo>> LoadOnnxTrainingInfo(const std::string& path) {
  ASSIGN_OR_RETURN(onnx::ModelProto model, ReadModelProto(path));
  auto infos = ImportTrainingInfo(model, DirName(path));
  if (!infos.ok()) return WithContext(infos.status(), absl::StrCat("while importing '", path, "'"));
  return infos;
}

absl::StatusOr<graph::Graph> LoadOnnxModel(const std::string& path) {
  ASSIGN_OR_RETURN(onnx::ModelProto model, ReadModelProto(path));
  auto g = ImportModelProto(model, DirName(path));
  if (!g.ok()) return WithContext(g.status(), absl::StrCat("while importing '", path, "'"));
  return g;
}

}  // namespace lasgd::importers
