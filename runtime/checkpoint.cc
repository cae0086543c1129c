#include "runtime/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace lasgd::runtime {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the checkpoint format is little-endian and written with memcpy");

constexpr size_t kPreambleBytes = 24;
constexpr uint64_t kDataAlignment = 64;

std::string ErrnoText() { return std::strerror(errno); }

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "host";
  std::string h(buf);
  for (char& c : h)
    if (c == '/' || c == '-') c = '_';  // '-' separates the fields of temp names
  return h.empty() ? "host" : h;
}

// Temporary names carry host and pid so that cleanup can tell a crashed
// writer's leftovers from a file another live process is writing.
std::string TempPrefix(const std::string& path) {
  return absl::StrCat(".", BaseName(path), ".tmp-", HostName(), "-", getpid(), "-");
}

uint32_t Crc32(uint32_t crc, const void* data, uint64_t n) {
  const Bytef* p = static_cast<const Bytef*>(data);
  while (n > 0) {  // zlib's crc32 takes a uInt length
    uInt chunk = static_cast<uInt>(std::min<uint64_t>(n, uint64_t{1} << 30));
    crc = static_cast<uint32_t>(crc32(crc, p, chunk));
    p += chunk;
    n -= chunk;
  }
  return crc;
}

uint32_t HeaderCrc(uint32_t version, uint64_t header_length, const std::string& header) {
  char fields[12];
  std::memcpy(fields, &version, 4);
  std::memcpy(fields + 4, &header_length, 8);
  uint32_t crc = Crc32(static_cast<uint32_t>(crc32(0, Z_NULL, 0)), fields, 12);
  return Crc32(crc, header.data(), header.size());
}

uint64_t AlignUp(uint64_t v) { return (v + kDataAlignment - 1) / kDataAlignment * kDataAlignment; }

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void PutString32(std::string& out, const std::string& s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// Bounds-checked reader over the header: every read says whether the header
// had enough bytes left, so a damaged length never reads past the buffer.
class HeaderReader {
 public:
  explicit HeaderReader(const std::string& bytes) : bytes_(bytes) {}
  template <typename T>
  bool Get(T* v) {
    if (bytes_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool GetString(uint64_t n, std::string* s) {
    if (bytes_.size() - pos_ < n) return false;
    s->assign(bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == bytes_.size(); }

 private:
  const std::string& bytes_;
  size_t pos_ = 0;
};

struct TensorRecord {
  std::string name;
  DataType dtype;
  Shape shape;
  uint64_t offset, nbytes;
  uint32_t crc;
};

// The FILE* under its temporary name until Commit renames it into place.
class TempFileWriter {
 public:
  ~TempFileWriter() {
    if (file_) fclose(file_);
    if (!temp_.empty()) unlink(temp_.c_str());
  }
  absl::Status Open(const std::string& path) {
    path_ = path;
    std::string templ = absl::StrCat(DirName(path), "/", TempPrefix(path), "XXXXXX");
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    int fd = mkstemp(buf.data());
    if (fd < 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create a temporary file in '", DirName(path), "': ", ErrnoText()));
    }
    temp_ = buf.data();
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    file_ = fdopen(fd, "wb");
    if (!file_) {
      close(fd);
      return absl::InternalError(absl::StrCat("fdopen failed: ", ErrnoText()));
    }
    return absl::OkStatus();
  }
  absl::Status Write(const void* data, uint64_t n) {
    if (n > 0 && fwrite(data, 1, n, file_) != n)
      return absl::DataLossError(absl::StrCat("writing failed: ", ErrnoText()));
    return absl::OkStatus();
  }
  absl::Status Commit() {
    if (fflush(file_) != 0 || fsync(fileno(file_)) != 0)
      return absl::DataLossError(absl::StrCat("flushing to disk failed: ", ErrnoText()));
    FILE* f = file_;
    file_ = nullptr;
    if (fclose(f) != 0) return absl::DataLossError(absl::StrCat("close failed: ", ErrnoText()));
    if (rename(temp_.c_str(), path_.c_str()) != 0)
      return absl::PermissionDeniedError(
          absl::StrCat("cannot rename the temporary file into place: ", ErrnoText()));
    temp_.clear();
    // Makes the rename itself durable.
    int dir_fd = open(DirName(path_).c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) return absl::OkStatus();
    int rc = fsync(dir_fd);
    close(dir_fd);
    if (rc != 0)
      return absl::DataLossError(absl::StrCat("fsync of the folder failed: ", ErrnoText()));
    return absl::OkStatus();
  }

 private:
  std::string path_, temp_;
  FILE* file_ = nullptr;
};

absl::Status WriteCheckpointImpl(const std::string& path, const Checkpoint& ckpt,
                                 const CheckpointWriteOptions& options) {
  // The header's size does not depend on the offsets, so lay it out once with
  // placeholder offsets to learn where the data starts.
  std::vector<TensorRecord> records;
  for (const auto& [name, t] : ckpt.tensors) {
    if (!t.defined() || DataTypeSize(t.dtype()) == 0)
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has ",
                                                     t.defined() ? "unsupported dtype " : "no ",
                                                     DataTypeName(t.dtype()), " value"));
    if (t.nbytes() > 0 && t.raw_data() == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has no data"));
    records.push_back(
        {name, t.dtype(), t.shape(), 0, t.nbytes(), Crc32(0, t.raw_data(), t.nbytes())});
  }
  auto build_header = [&](uint64_t file_size) {
    std::string h;
    Put<uint64_t>(h, file_size);
    Put<uint32_t>(h, static_cast<uint32_t>(ckpt.metadata.size()));
    for (const auto& [key, value] : ckpt.metadata) {
      PutString32(h, key);
      Put<uint64_t>(h, value.size());
      h += value;
    }
    Put<uint32_t>(h, static_cast<uint32_t>(records.size()));
    for (const TensorRecord& r : records) {
      PutString32(h, r.name);
      Put<int32_t>(h, static_cast<int32_t>(r.dtype));
      Put<uint32_t>(h, static_cast<uint32_t>(r.shape.size()));
      for (int64_t d : r.shape) Put<int64_t>(h, d);
      Put<uint64_t>(h, r.offset);
      Put<uint64_t>(h, r.nbytes);
      Put<uint32_t>(h, r.crc);
    }
    return h;
  };
  const uint64_t header_length = build_header(0).size();
  uint64_t pos = AlignUp(kPreambleBytes + header_length);
  int64_t total_data = 0;
  for (TensorRecord& r : records) {
    r.offset = pos;
    pos = AlignUp(pos + r.nbytes);
    total_data += static_cast<int64_t>(r.nbytes);
  }
  const uint64_t file_size = records.empty() ? kPreambleBytes + header_length
                                             : records.back().offset + records.back().nbytes;
  const std::string header = build_header(file_size);

  std::string preamble(kCheckpointMagic, 8);
  Put<uint32_t>(preamble, kCheckpointVersion);
  Put<uint32_t>(preamble, HeaderCrc(kCheckpointVersion, header_length, header));
  Put<uint64_t>(preamble, header_length);

  TempFileWriter file;
  RETURN_IF_ERROR(file.Open(path));
  RETURN_IF_ERROR(file.Write(preamble.data(), preamble.size()));
  RETURN_IF_ERROR(file.Write(header.data(), header.size()));
  uint64_t written = kPreambleBytes + header.size();
  int64_t data_written = 0;
  static const char kZeros[kDataAlignment] = {};
  for (const TensorRecord& r : records) {
    RETURN_IF_ERROR(file.Write(kZeros, r.offset - written));
    RETURN_IF_ERROR(file.Write(ckpt.tensors.at(r.name).raw_data(), r.nbytes));
    written = r.offset + r.nbytes;
    data_written += static_cast<int64_t>(r.nbytes);
    if (options.progress) options.progress(data_written, total_data);
  }
  return file.Commit();
}

absl::StatusOr<Checkpoint> ReadCheckpointImpl(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return absl::NotFoundError("the file does not exist");
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError("not a regular file");
  const uint64_t actual_size = static_cast<uint64_t>(st.st_size);
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "rb"), fclose);
  if (!file) return absl::PermissionDeniedError(absl::StrCat("cannot open: ", ErrnoText()));

  char preamble[kPreambleBytes] = {};
  const size_t got = fread(preamble, 1, kPreambleBytes, file.get());
  const size_t magic_bytes = std::min<size_t>(got, 8);
  if (got == 0) return absl::DataLossError("the file is empty");
  if (std::memcmp(preamble, kCheckpointMagic, magic_bytes) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a lasgd checkpoint (wrong magic: expected \"LASGDCKP\", found \"",
                     absl::CHexEscape(std::string(preamble, magic_bytes)), "\")"));
  }
  if (got < kPreambleBytes) {
    return absl::DataLossError(absl::StrCat("truncated: ", actual_size, " bytes, shorter than the ",
                                            kPreambleBytes, "-byte preamble"));
  }
  uint32_t version, stored_header_crc;
  uint64_t header_length;
  std::memcpy(&version, preamble + 8, 4);
  std::memcpy(&stored_header_crc, preamble + 12, 4);
  std::memcpy(&header_length, preamble + 16, 8);
  if (header_length > actual_size - kPreambleBytes) {
    return absl::DataLossError(absl::StrCat("truncated or corrupt: the header claims ",
                                            header_length, " bytes but the file has only ",
                                            actual_size - kPreambleBytes, " after the preamble"));
  }
  std::string header(header_length, '\0');
  if (fread(header.data(), 1, header_length, file.get()) != header_length)
    return absl::DataLossError(absl::StrCat("short read of the header: ", ErrnoText()));
  uint32_t header_crc = HeaderCrc(version, header_length, header);
  if (header_crc != stored_header_crc) {
    return absl::DataLossError(
        absl::StrFormat("corrupt header: CRC32 mismatch (stored 0x%08x, computed 0x%08x)",
                        stored_header_crc, header_crc));
  }
  if (version != kCheckpointVersion) {
    return absl::UnimplementedError(absl::StrCat("format version ", version,
                                                 " is not supported (this build reads version ",
                                                 kCheckpointVersion, ")"));
  }

  // The header passed its CRC, so what follows was written by us; the
  // checks still guard against a writer bug or a forged file.
  HeaderReader in(header);
  auto bad_header = [](const std::string& what) {
    return absl::DataLossError(absl::StrCat("malformed header: ", what));
  };
  uint64_t file_size;
  uint32_t num_metadata, num_tensors;
  if (!in.Get(&file_size) || !in.Get(&num_metadata)) return bad_header("too short");
  if (actual_size < file_size) {
    return absl::DataLossError(
        absl::StrCat("truncated: ", actual_size, " bytes, expected ", file_size));
  }
  if (actual_size > file_size) {
    return absl::DataLossError(
        absl::StrCat("corrupt: ", actual_size, " bytes, expected ", file_size, " (trailing data)"));
  }
  Checkpoint ckpt;
  for (uint32_t i = 0; i < num_metadata; ++i) {
    uint32_t key_len;
    uint64_t value_len;
    std::string key, value;
    if (!in.Get(&key_len) || !in.GetString(key_len, &key) || !in.Get(&value_len) ||
        !in.GetString(value_len, &value))
      return bad_header(absl::StrCat("metadata entry ", i, " runs past the header"));
    ckpt.metadata[key] = std::move(value);
  }
  if (!in.Get(&num_tensors)) return bad_header("no tensor count");
  std::vector<TensorRecord> records;
  std::set<std::string> seen;
  for (uint32_t i = 0; i < num_tensors; ++i) {
    TensorRecord r;
    uint32_t name_len, rank;
    int32_t dtype;
    if (!in.Get(&name_len) || !in.GetString(name_len, &r.name) || !in.Get(&dtype) || !in.Get(&rank))
      return bad_header(absl::StrCat("tensor entry ", i, " runs past the header"));
    r.dtype = static_cast<DataType>(dtype);
    if (!IsSupportedDataType(r.dtype) || DataTypeSize(r.dtype) == 0)
      return bad_header(absl::StrCat("tensor '", r.name, "' has unknown dtype ", dtype));
    if (rank > 64) return bad_header(absl::StrCat("tensor '", r.name, "' has rank ", rank));
    r.shape.resize(rank);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < rank; ++d) {
      if (!in.Get(&r.shape[d])) return bad_header(absl::StrCat("tensor '", r.name, "' dims"));
      if (r.shape[d] < 0 || (r.shape[d] > 0 && elements > file_size / r.shape[d]))
        return bad_header(absl::StrCat("tensor '", r.name, "' has implausible shape"));
      elements *= static_cast<uint64_t>(r.shape[d]);
    }
    if (!in.Get(&r.offset) || !in.Get(&r.nbytes) || !in.Get(&r.crc))
      return bad_header(absl::StrCat("tensor entry '", r.name, "' runs past the header"));
    if (r.nbytes != elements * DataTypeSize(r.dtype)) {
      return bad_header(absl::StrCat("tensor '", r.name, "' stores ", r.nbytes, " bytes; ",
                                     DataTypeName(r.dtype), ShapeToString(r.shape), " needs ",
                                     elements * DataTypeSize(r.dtype)));
    }
    if (r.offset < kPreambleBytes + header_length || r.offset > file_size ||
        r.nbytes > file_size - r.offset)
      return bad_header(absl::StrCat("tensor '", r.name, "' lies outside the file"));
    if (!seen.insert(r.name).second)
      return bad_header(absl::StrCat("tensor '", r.name, "' appears twice"));
    records.push_back(std::move(r));
  }
  if (!in.AtEnd()) return bad_header("unexpected bytes after the last tensor entry");

  for (const TensorRecord& r : records) {
    Tensor t = Tensor::Allocate(r.dtype, r.shape);
    if (r.nbytes > 0) {
      if (fseeko(file.get(), static_cast<off_t>(r.offset), SEEK_SET) != 0 ||
          fread(t.raw_data(), 1, r.nbytes, file.get()) != r.nbytes)
        return absl::DataLossError(absl::StrCat("tensor '", r.name, "': short read"));
    }
    uint32_t crc = Crc32(0, t.raw_data(), r.nbytes);
    if (crc != r.crc) {
      return absl::DataLossError(absl::StrFormat(
          "tensor '%s' (%s) is corrupt: CRC32 mismatch (stored 0x%08x, computed 0x%08x)", r.name,
          t.TypeString(), r.crc, crc));
    }
    ckpt.tensors[r.name] = std::move(t);
  }
  return ckpt;
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat("'", dir, "' exists and is not a folder"));
  }
  std::string parent = DirName(dir);
  if (parent != dir && parent != "." && parent != "/") RETURN_IF_ERROR(MakeDirs(parent));
  if (mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create folder '", dir, "': ", ErrnoText()));
  return absl::OkStatus();
}

// "ckpt-<step>.lasgd" -> step.
bool ParseCheckpointName(const std::string& name, int64_t* step) {
  static const std::string kPrefix = "ckpt-", kSuffix = ".lasgd";
  if (name.size() <= kPrefix.size() + kSuffix.size()) return false;
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  if (name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) return false;
  std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  return absl::SimpleAtoi(digits, step);
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint,
                             const CheckpointWriteOptions& options) {
  return WithContext(WriteCheckpointImpl(path, checkpoint, options),
                     absl::StrCat("while writing checkpoint '", path, "'"));
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  auto ckpt = ReadCheckpointImpl(path);
  if (!ckpt.ok()) return WithContext(ckpt.status(), absl::StrCat("checkpoint '", path, "'"));
  return ckpt;
}

std::map<std::string, TensorSpec> SpecsOf(const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, TensorSpec> specs;
  for (const auto& [name, t] : tensors) specs[name] = {t.dtype(), t.shape()};
  return specs;
}

absl::Status CheckCompatible(const Checkpoint& checkpoint,
                             const std::map<std::string, TensorSpec>& expected,
                             bool allow_extra_tensors) {
  auto type_string = [](DataType dtype, const Shape& shape) {
    return DataTypeName(dtype) + ShapeToString(shape);
  };
  std::vector<std::string> problems;
  auto e = expected.begin();
  auto c = checkpoint.tensors.begin();
  // Both maps are sorted: one merge pass finds the first problem in name order.
  while (e != expected.end() || c != checkpoint.tensors.end()) {
    if (c == checkpoint.tensors.end() || (e != expected.end() && e->first < c->first)) {
      problems.push_back(absl::StrCat("the checkpoint has no tensor '", e->first, "' (",
                                      type_string(e->second.dtype, e->second.shape),
                                      ") that the model expects"));
      ++e;
    } else if (e == expected.end() || c->first < e->first) {
      if (!allow_extra_tensors)
        problems.push_back(absl::StrCat("the checkpoint holds tensor '", c->first, "' (",
                                        c->second.TypeString(), ") that the model does not have"));
      ++c;
    } else {
      if (c->second.dtype() != e->second.dtype || c->second.shape() != e->second.shape) {
        problems.push_back(absl::StrCat("checkpoint tensor '", c->first, "' is ",
                                        c->second.TypeString(), "; the model expects ",
                                        type_string(e->second.dtype, e->second.shape)));
      }
      ++e;
      ++c;
    }
  }
  if (problems.empty()) return absl::OkStatus();
  std::string msg = problems[0];
  if (problems.size() > 1)
    absl::StrAppend(&msg, " (and ", problems.size() - 1, " more mismatches)");
  return absl::FailedPreconditionError(msg);
}

CheckpointManager::CheckpointManager(std::string dir, int keep_last)
    : dir_(dir.empty() ? "." : std::move(dir)), keep_last_(keep_last) {}

std::string CheckpointManager::PathForStep(int64_t step) const {
  return absl::StrCat(dir_, "/ckpt-", step, ".lasgd");
}

absl::StatusOr<std::vector<CheckpointManager::Entry>> CheckpointManager::List() const {
  std::vector<Entry> entries;
  DIR* d = opendir(dir_.c_str());
  if (!d) {
    if (errno == ENOENT) return entries;
    return absl::PermissionDeniedError(
        absl::StrCat("cannot list checkpoint folder '", dir_, "': ", ErrnoText()));
  }
  while (dirent* ent = readdir(d)) {
    int64_t step;
    if (ParseCheckpointName(ent->d_name, &step))
      entries.push_back({step, absl::StrCat(dir_, "/", ent->d_name)});
  }
  closedir(d);
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.step < b.step; });
  return entries;
}

absl::StatusOr<std::string> CheckpointManager::Save(int64_t step, const Checkpoint& checkpoint,
                                                    const CheckpointWriteOptions& options) {
  if (step < 0) return absl::InvalidArgumentError(absl::StrCat("negative step ", step));
  RETURN_IF_ERROR(MakeDirs(dir_));
  const std::string path = PathForStep(step);
  if (checkpoint.metadata.count("step")) {
    RETURN_IF_ERROR(WriteCheckpoint(path, checkpoint, options));
  } else {
    Checkpoint with_step = checkpoint;  // copies tensor handles, not data
    with_step.metadata["step"] = std::to_string(step);
    RETURN_IF_ERROR(WriteCheckpoint(path, with_step, options));
  }

  ASSIGN_OR_RETURN(std::vector<Entry> entries, List());
  std::vector<Entry> kept;
  for (const Entry& e : entries) {
    if (e.step > step) {
      unlink(e.path.c_str());
    } else {
      kept.push_back(e);
    }
  }
  if (keep_last_ > 0 && kept.size() > static_cast<size_t>(keep_last_)) {
    for (size_t i = 0; i + keep_last_ < kept.size(); ++i) unlink(kept[i].path.c_str());
  }

  // Leftovers of writers on this host that died mid-write: ".ckpt-N.lasgd.tmp-HOST-PID-XXXXXX".
  const std::string host_tag = absl::StrCat(".tmp-", HostName(), "-");
  if (DIR* d = opendir(dir_.c_str())) {
    std::vector<std::string> stale;
    while (dirent* ent = readdir(d)) {
      std::string name = ent->d_name;
      if (name.compare(0, 6, ".ckpt-") != 0) continue;
      size_t at = name.find(host_tag);
      if (at == std::string::npos) continue;
      size_t pid_begin = at + host_tag.size();
      size_t pid_end = name.find('-', pid_begin);
      int64_t pid;
      if (pid_end == std::string::npos ||
          !absl::SimpleAtoi(name.substr(pid_begin, pid_end - pid_begin), &pid) || pid <= 0)
        continue;
      if (pid != getpid() && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        stale.push_back(absl::StrCat(dir_, "/", name));
    }
    closedir(d);
    for (const auto& p : stale) unlink(p.c_str());
  }
  return path;
}

absl::StatusOr<CheckpointManager::Loaded> CheckpointManager::LoadLatest() const {
  ASSIGN_OR_RETURN(std::vector<Entry> entries, List());
  if (entries.empty())
    return absl::NotFoundError(absl::StrCat("no checkpoint (ckpt-<step>.lasgd) in '", dir_, "'"));
  Loaded loaded;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    auto ckpt = ReadCheckpoint(it->path);
    if (!ckpt.ok()) {
      loaded.warnings.push_back(
          absl::StrCat("skipping damaged checkpoint: ", ckpt.status().message()));
      continue;
    }
    loaded.step = it->step;
    loaded.path = it->path;
    loaded.checkpoint = std::move(*ckpt);
    return loaded;
  }
  return absl::DataLossError(
      absl::StrCat("no checkpoint in '", dir_, "' reads: ", absl::StrJoin(loaded.warnings, "; ")));
}

}  // namespace lasgd::runtime
