// File readers: IDX (MNIST family), CIFAR binary, NPZ.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "runtime/data/dataset.h"
#include "runtime/data/npz.h"

namespace lasgd::data {
namespace {

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

// Reads a whole file, gunzipping it when it is gzip (zlib's gzread passes
// other files through unchanged, so the name need not say .gz).
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
  gzbuffer(f, 1 << 20);
  std::string bytes;
  constexpr size_t kChunk = 1 << 20;
  for (;;) {
    size_t old = bytes.size();
    bytes.resize(old + kChunk);
    int n = gzread(f, bytes.data() + old, kChunk);
    if (n < 0) {
      int code;
      std::string msg = gzerror(f, &code);
      gzclose_r(f);
      return absl::DataLossError(
          absl::StrCat(path, ": corrupt or truncated gzip data (zlib: ", msg, ")"));
    }
    bytes.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  int code;
  std::string msg = gzerror(f, &code);
  int rc = gzclose_r(f);
  if (code != Z_OK || rc != Z_OK)
    return absl::DataLossError(absl::StrCat(path, ": corrupt or truncated gzip data (zlib: ",
                                            msg.empty() ? "unexpected end of file" : msg, ")"));
  return bytes;
}

uint32_t Be32(const std::string& b, size_t pos) {
  const auto* u = reinterpret_cast<const unsigned char*>(b.data() + pos);
  return (static_cast<uint32_t>(u[0]) << 24) | (static_cast<uint32_t>(u[1]) << 16) |
         (static_cast<uint32_t>(u[2]) << 8) | static_cast<uint32_t>(u[3]);
}

// Checks an IDX header of unsigned bytes with `ndim` dimensions and returns
// the dimensions; the data follows at 4 + 4 * ndim.
absl::StatusOr<std::vector<uint32_t>> ParseIdxHeader(const std::string& bytes,
                                                     const std::string& path, int ndim,
                                                     const char* kind) {
  const uint32_t expected_magic = 0x00000800u | static_cast<uint32_t>(ndim);
  if (bytes.size() < 4)
    return absl::DataLossError(
        absl::StrCat(path, ": truncated: ", bytes.size(), " bytes, too short for an IDX header"));
  uint32_t magic = Be32(bytes, 0);
  if (magic != expected_magic) {
    std::string hint;
    if ((magic & 0xFFFFFF00u) == 0x00000800u)
      hint = absl::StrCat(" (an IDX file of ", magic & 0xFF, " dimensions: the ",
                          ndim == 3 ? "labels" : "images", " file?)");
    else if ((magic & 0xFFFF0000u) == 0 && (magic & 0xFF) == static_cast<uint32_t>(ndim))
      hint = absl::StrFormat(" (element type 0x%02X; only unsigned bytes, 0x08, are supported)",
                             (magic >> 8) & 0xFF);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not an IDX %s file: magic number 0x%08X, expected 0x%08X%s", path,
                        kind, magic, expected_magic, hint));
  }
  size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() < header)
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", bytes.size(),
                                            " bytes, the IDX header alone needs ", header));
  std::vector<uint32_t> dims;
  uint64_t payload = 1;
  bool overflow = false;
  for (int i = 0; i < ndim; ++i) {
    dims.push_back(Be32(bytes, 4 + 4 * i));
    overflow |= __builtin_mul_overflow(payload, static_cast<uint64_t>(dims.back()), &payload);
  }
  if (overflow)
    return absl::DataLossError(absl::StrCat(path, ": header dimensions ", absl::StrJoin(dims, "x"),
                                            " are impossibly large"));
  if (bytes.size() - header < payload)
    return absl::DataLossError(absl::StrCat(path, ": truncated: the header promises ",
                                            absl::StrJoin(dims, "x"), " = ", payload, " bytes of ",
                                            kind, " data, the file holds ", bytes.size() - header));
  if (bytes.size() - header > payload)
    return absl::DataLossError(absl::StrCat(path, ": ", bytes.size() - header - payload,
                                            " unexpected bytes after the ",
                                            absl::StrJoin(dims, "x"), " ", kind, " data"));
  return dims;
}

absl::StatusOr<std::string> FindIdxFile(const std::string& prefix, const std::string& kind,
                                        int ndim) {
  std::vector<std::string> tried;
  for (const char* sep : {"-", "."}) {
    for (const char* ext : {".gz", ""}) {
      std::string path = absl::StrCat(prefix, "-", kind, sep, "idx", ndim, "-ubyte", ext);
      if (Exists(path)) return path;
      tried.push_back(path);
    }
  }
  return absl::NotFoundError(
      absl::StrCat("idx:", prefix, ": no ", kind, " file; tried ", absl::StrJoin(tried, ", ")));
}

}  // namespace

absl::StatusOr<std::shared_ptr<TensorDataset>> ReadIdxDataset(const std::string& prefix) {
  ASSIGN_OR_RETURN(std::string images_path, FindIdxFile(prefix, "images", 3));
  ASSIGN_OR_RETURN(std::string labels_path, FindIdxFile(prefix, "labels", 1));
  ASSIGN_OR_RETURN(std::string images, ReadMaybeGzipped(images_path));
  ASSIGN_OR_RETURN(std::vector<uint32_t> idims, ParseIdxHeader(images, images_path, 3, "image"));
  ASSIGN_OR_RETURN(std::string labels, ReadMaybeGzipped(labels_path));
  ASSIGN_OR_RETURN(std::vector<uint32_t> ldims, ParseIdxHeader(labels, labels_path, 1, "label"));
  if (idims[0] != ldims[0])
    return absl::InvalidArgumentError(
        absl::StrCat("idx:", prefix, ": image/label count mismatch: ", images_path, " holds ",
                     idims[0], " images, ", labels_path, " holds ", ldims[0], " labels"));
  const int64_t n = idims[0], rows = idims[1], cols = idims[2];
  Tensor x = Tensor::Allocate(DataType::kFloat32, {n, 1, rows, cols});
  Tensor y = Tensor::Allocate(DataType::kInt64, {n});
  const auto* pixels = reinterpret_cast<const unsigned char*>(images.data() + 16);
  float* xf = x.data<float>();
  const int64_t total = n * rows * cols;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) xf[i] = pixels[i] * (1.0f / 255.0f);
  const auto* lab = reinterpret_cast<const unsigned char*>(labels.data() + 8);
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = lab[i];
  return TensorDataset::Create(absl::StrCat("idx:", prefix), std::move(x), std::move(y));
}

absl::StatusOr<std::shared_ptr<TensorDataset>> ReadCifarDataset(const std::string& dir, Split split,
                                                                CifarLabels label_set) {
  auto has = [](const std::string& d, const char* f) { return Exists(d + "/" + f); };
  std::string root = dir;
  int version = 0;
  for (const std::string& candidate :
       {dir, dir + "/cifar-10-batches-bin", dir + "/cifar-100-binary"}) {
    if (has(candidate, "data_batch_1.bin") || has(candidate, "test_batch.bin")) {
      root = candidate, version = 10;
      break;
    }
    if (has(candidate, "train.bin") || has(candidate, "test.bin")) {
      root = candidate, version = 100;
      break;
    }
  }
  if (version == 0)
    return absl::NotFoundError(absl::StrCat(
        "cifar:", dir,
        ": no CIFAR binary files found (expected data_batch_1.bin .. data_batch_5.bin and "
        "test_batch.bin for CIFAR-10, or train.bin and test.bin for CIFAR-100, in the folder or "
        "in its cifar-10-batches-bin / cifar-100-binary subfolder)"));
  std::vector<std::string> files;
  if (version == 10) {
    if (split == Split::kTrain) {
      for (int i = 1; i <= 5; ++i) files.push_back(absl::StrCat("data_batch_", i, ".bin"));
    } else {
      files.push_back("test_batch.bin");
    }
  } else {
    files.push_back(split == Split::kTrain ? "train.bin" : "test.bin");
  }
  for (const std::string& f : files) {
    if (!has(root, f.c_str()))
      return absl::NotFoundError(absl::StrCat("cifar:", dir, ": ", root, "/", f,
                                              " is missing (the CIFAR-", version, " ",
                                              split == Split::kTrain ? "train" : "test",
                                              " split needs ", absl::StrJoin(files, ", "), ")"));
  }
  const int64_t label_bytes = version == 10 ? 1 : 2, image_bytes = 3 * 32 * 32;
  const int64_t record = label_bytes + image_bytes;
  // CIFAR-100 records carry (coarse, fine).
  const int64_t label_offset = version == 100 && label_set == CifarLabels::kFine ? 1 : 0;
  const int64_t num_classes = version == 10 ? 10 : (label_offset == 1 ? 100 : 20);
  std::vector<std::string> contents;
  int64_t n = 0;
  for (const std::string& f : files) {
    std::string path = absl::StrCat(root, "/", f);
    ASSIGN_OR_RETURN(std::string bytes, ReadMaybeGzipped(path));
    if (bytes.empty() || bytes.size() % record != 0)
      return absl::DataLossError(absl::StrCat(
          path, ": ", bytes.size(), " bytes is not a whole number of ", record, "-byte CIFAR-",
          version, " records (", label_bytes, " label byte", label_bytes > 1 ? "s" : "",
          " + 3x32x32 pixels): truncated, or the wrong CIFAR version?"));
    for (size_t r = 0; r * record < bytes.size(); ++r) {
      int label = static_cast<unsigned char>(bytes[r * record + label_offset]);
      if (label >= num_classes)
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": record ", r, " has label ", label, ", outside [0, ", num_classes,
                         ") for CIFAR-", version, version == 10 ? " (a CIFAR-100 file?)" : ""));
    }
    n += static_cast<int64_t>(bytes.size()) / record;
    contents.push_back(std::move(bytes));
  }
  Tensor x = Tensor::Allocate(DataType::kFloat32, {n, 3, 32, 32});
  Tensor y = Tensor::Allocate(DataType::kInt64, {n});
  int64_t i = 0;
  for (const std::string& bytes : contents) {
    int64_t records = static_cast<int64_t>(bytes.size()) / record;
    const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
    float* xf = x.data<float>() + i * image_bytes;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < records; ++r) {
      // The bytes are already channel-major (1024 R, 1024 G, 1024 B).
      const unsigned char* img = u + r * record + label_bytes;
      for (int64_t j = 0; j < image_bytes; ++j) xf[r * image_bytes + j] = img[j] * (1.0f / 255.0f);
    }
    for (int64_t r = 0; r < records; ++r) y.data<int64_t>()[i + r] = u[r * record + label_offset];
    i += records;
  }
  std::string name =
      absl::StrCat("cifar:", dir, ",split=", split == Split::kTrain ? "train" : "test");
  return TensorDataset::Create(std::move(name), std::move(x), std::move(y), num_classes);
}

namespace {

template <typename T>
void ConvertToFloat(const Tensor& t, float scale, float* out) {
  const T* in = t.data<T>();
  const int64_t n = t.num_elements();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]) * scale;
}

absl::StatusOr<Tensor> ToFloat32(const Tensor& t, const std::string& what) {
  Tensor out = Tensor::Allocate(DataType::kFloat32, t.shape());
  float* o = out.data<float>();
  switch (t.dtype()) {
    case DataType::kFloat32:
      out.CopyFrom(t);
      break;
    case DataType::kFloat64:
      ConvertToFloat<double>(t, 1.0f, o);
      break;
    case DataType::kUint8:
      ConvertToFloat<uint8_t>(t, 1.0f / 255.0f, o);
      break;
    case DataType::kInt8:
      ConvertToFloat<int8_t>(t, 1.0f, o);
      break;
    case DataType::kInt16:
      ConvertToFloat<int16_t>(t, 1.0f, o);
      break;
    case DataType::kUint16:
      ConvertToFloat<uint16_t>(t, 1.0f, o);
      break;
    case DataType::kInt32:
      ConvertToFloat<int32_t>(t, 1.0f, o);
      break;
    case DataType::kInt64:
      ConvertToFloat<int64_t>(t, 1.0f, o);
      break;
    case DataType::kBool:
      ConvertToFloat<bool>(t, 1.0f, o);
      break;
    default:
      return absl::UnimplementedError(absl::StrCat(
          what, " has dtype ", DataTypeName(t.dtype()),
          "; supported: float32, float64, bool and 8- to 64-bit integers (convert with "
          "x.astype(np.float32))"));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TensorDataset>> ReadNpzDataset(const std::string& path,
                                                              const std::string& x_name,
                                                              const std::string& y_name) {
  ASSIGN_OR_RETURN(auto arrays, ReadNpz(path, {x_name, y_name}));
  const Tensor& x = arrays[x_name];
  const Tensor& y = arrays[y_name];
  std::string xw = absl::StrCat(path, ": array '", x_name, "'");
  std::string yw = absl::StrCat(path, ": array '", y_name, "'");
  if (x.rank() < 2)
    return absl::InvalidArgumentError(absl::StrCat(
        xw, " has shape ", ShapeToString(x.shape()),
        "; expected [N, ...] with at least 2 dimensions (samples first, e.g. [N,1,28,28] or "
        "[N,features])"));
  if (y.rank() < 1 || y.dim(0) != x.dim(0))
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": '", x_name, "' holds ", x.dim(0), " samples (shape ", ShapeToString(x.shape()),
        ") but '", y_name, "' has shape ", ShapeToString(y.shape()), "; expected [", x.dim(0),
        "] labels or [", x.dim(0), ", ...] targets"));
  ASSIGN_OR_RETURN(Tensor xf, ToFloat32(x, xw));
  Tensor targets;
  if (IsInteger(y.dtype()) && y.dtype() != DataType::kBool) {
    // Keras stores CIFAR labels as [N,1].
    if (!(y.rank() == 1 || (y.rank() == 2 && y.dim(1) == 1)))
      return absl::InvalidArgumentError(absl::StrCat(
          yw, " has integer shape ", ShapeToString(y.shape()), "; expected class indices [",
          y.dim(0), "] (or [", y.dim(0),
          ",1]); for one-hot labels store np.argmax(y, axis=1), for regression store floats"));
    ASSIGN_OR_RETURN(std::vector<int64_t> labels, y.ToInt64Vector());
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0)
        return absl::InvalidArgumentError(
            absl::StrCat(yw, ": sample ", i, " has negative label ", labels[i]));
    targets = Tensor::FromInt64s(labels, {y.dim(0)});
  } else if (IsFloatingPoint(y.dtype())) {
    ASSIGN_OR_RETURN(targets, ToFloat32(y, yw));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(yw, " has dtype ", DataTypeName(y.dtype()),
                                                   "; expected integer labels or float targets"));
  }
  return TensorDataset::Create(absl::StrCat("npz:", path), std::move(xf), std::move(targets));
}

}  // namespace lasgd::data
