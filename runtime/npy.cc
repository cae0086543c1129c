#include "runtime/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lasgd::runtime {
namespace {

struct DescrEntry {
  const char* descr;
  DataType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"f4", DataType::kFloat32}, {"f8", DataType::kFloat64}, {"i8", DataType::kInt64},
    {"i4", DataType::kInt32},   {"i2", DataType::kInt16},   {"i1", DataType::kInt8},
    {"u1", DataType::kUint8},   {"u2", DataType::kUint16},  {"u4", DataType::kUint32},
    {"u8", DataType::kUint64},  {"b1", DataType::kBool},    {"f2", DataType::kFloat16},
};

// Finds `'key': value` in the header dict and returns value's text.
bool HeaderField(const std::string& header, const std::string& key, std::string* value) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return false;
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) return false;
  size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  size_t end = start;
  if (header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) return false;
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  *value = header.substr(start, end - start);
  return true;
}

}  // namespace

absl::StatusOr<Tensor> ParseNpy(const std::string& bytes, const std::string& what) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a valid .npy file (", why, ")"));
  };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    return bad("missing \\x93NUMPY magic");
  int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated preamble");
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  } else {
    return bad(absl::StrCat("unknown format version ", major));
  }
  if (header_start + header_len > bytes.size()) return bad("truncated header");
  std::string header = bytes.substr(header_start, header_len);
  std::string descr, fortran, shape_text;
  if (!HeaderField(header, "descr", &descr) || !HeaderField(header, "fortran_order", &fortran) ||
      !HeaderField(header, "shape", &shape_text)) {
    return bad("header lacks descr, fortran_order or shape");
  }
  descr = std::string(absl::StripSuffix(absl::StripPrefix(descr, "'"), "'"));
  if (fortran.find("True") != std::string::npos) {
    return absl::UnimplementedError(
        absl::StrCat(what, ": Fortran-order arrays are not supported; save with C order"));
  }
  if (descr.size() < 3 || descr[0] == '>') {
    return absl::UnimplementedError(
        absl::StrCat(what, ": dtype '", descr, "' is not supported (little-endian numeric only)"));
  }
  DataType dtype = DataType::kUndefined;
  for (const DescrEntry& e : kDescrs)
    if (descr.substr(1) == e.descr) dtype = e.dtype;
  if (dtype == DataType::kUndefined) {
    return absl::UnimplementedError(absl::StrCat(what, ": dtype '", descr, "' is not supported"));
  }
  Shape shape;
  std::string inner = shape_text.substr(1, shape_text.size() - 2);
  for (absl::string_view piece : absl::StrSplit(inner, ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(piece), &d) || d < 0)
      return bad("bad shape " + shape_text);
    shape.push_back(d);
  }
  size_t data_start = header_start + header_len;
  Tensor t = Tensor::Allocate(dtype, shape);
  if (bytes.size() - data_start != t.nbytes()) {
    return bad(absl::StrCat("shape ", ShapeToString(shape), " of ", DataTypeName(dtype), " needs ",
                            t.nbytes(), " data bytes, file has ", bytes.size() - data_start));
  }
  std::memcpy(t.raw_data(), bytes.data() + data_start, t.nbytes());
  return t;
}

absl::StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseNpy(ss.str(), absl::StrCat("'", path, "'"));
}

absl::Status WriteNpy(const std::string& path, const Tensor& tensor) {
  const char* code = nullptr;
  for (const DescrEntry& e : kDescrs)
    if (e.dtype == tensor.dtype()) code = e.descr;
  if (!code)
    return absl::UnimplementedError(
        absl::StrCat("cannot write ", DataTypeName(tensor.dtype()), " to .npy"));
  std::string shape;
  for (int64_t d : tensor.shape()) absl::StrAppend(&shape, d, ",");
  if (tensor.rank() > 1) shape.pop_back();  // (3,) for rank 1, (2,3) otherwise
  char order = tensor.dtype() == DataType::kBool || DataTypeSize(tensor.dtype()) == 1 ? '|' : '<';
  std::string header = absl::StrCat("{'descr': '", std::string(1, order), code,
                                    "', 'fortran_order': False, 'shape': (", shape, "), }");
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", tmp, "'"));
    uint16_t len = static_cast<uint16_t>(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(&len), 2);
    out << header;
    out.write(static_cast<const char*>(tensor.raw_data()), tensor.nbytes());
    if (!out) return absl::DataLossError(absl::StrCat("short write to '", tmp, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot rename '", tmp, "' to '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace lasgd::runtime
