#include "runtime/data/npz.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "runtime/npy.h"

namespace lasgd::data {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t Le16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
uint32_t Le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}
uint64_t Le64(const char* p) { return Le32(p) | (static_cast<uint64_t>(Le32(p + 4)) << 32); }

// Random access to the archive without loading it whole: a dataset .npz may
// hold arrays we do not want (x_test beside x_train).
class ArchiveFile {
 public:
  explicit ArchiveFile(std::string path) : path_(std::move(path)) {}

  absl::Status Open() {
    in_.open(path_, std::ios::binary);
    if (!in_) return absl::NotFoundError(absl::StrCat(path_, ": cannot open file"));
    in_.seekg(0, std::ios::end);
    size_ = static_cast<uint64_t>(in_.tellg());
    return absl::OkStatus();
  }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  absl::StatusOr<std::string> Read(uint64_t offset, uint64_t length, const char* what) {
    if (offset > size_ || length > size_ - offset)
      return Corrupt(absl::StrCat(what, " at byte ", offset, " (", length,
                                  " bytes) runs past the end of the ", size_,
                                  "-byte file: truncated?"));
    std::string bytes(length, '\0');
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(bytes.data(), static_cast<std::streamsize>(length));
    if (!in_) return Corrupt(absl::StrCat("read error in ", what));
    return bytes;
  }

  absl::Status Corrupt(const std::string& why) const {
    return absl::DataLossError(absl::StrCat(path_, ": not a valid .npz (zip) archive: ", why));
  }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
};

struct Member {
  std::string name;
  uint16_t method = 0;
  uint16_t flags = 0;
  uint32_t crc = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_header_offset = 0;
};

// Fills the 0xFFFFFFFF fields of a central header from its zip64 extra
// field, which lists exactly those fields, in this order.
absl::Status ApplyZip64Extra(const std::string& extra, Member* m, bool size_in_extra,
                             bool compressed_in_extra, bool offset_in_extra) {
  size_t pos = 0;
  while (pos + 4 <= extra.size()) {
    uint16_t id = Le16(extra.data() + pos);
    uint16_t len = Le16(extra.data() + pos + 2);
    if (pos + 4 + len > extra.size()) break;
    if (id == kZip64ExtraId) {
      const char* p = extra.data() + pos + 4;
      size_t need = 8 * (size_in_extra + compressed_in_extra + offset_in_extra);
      if (len < need) return absl::DataLossError("zip64 extra field too short");
      if (size_in_extra) m->size = Le64(p), p += 8;
      if (compressed_in_extra) m->compressed_size = Le64(p), p += 8;
      if (offset_in_extra) m->local_header_offset = Le64(p);
      return absl::OkStatus();
    }
    pos += 4 + len;
  }
  return absl::DataLossError("sizes marked as zip64 but no zip64 extra field");
}

absl::StatusOr<std::vector<Member>> ReadCentralDirectory(ArchiveFile& file) {
  // The end record is the last 22 bytes plus a comment of at most 64 KiB.
  uint64_t tail = std::min<uint64_t>(file.size(), 22 + 65535);
  if (file.size() < 22) return file.Corrupt(absl::StrCat("only ", file.size(), " bytes"));
  ASSIGN_OR_RETURN(std::string end, file.Read(file.size() - tail, tail, "end record"));
  size_t eocd = std::string::npos;
  for (size_t i = end.size() - 22 + 1; i-- > 0;) {
    if (Le32(end.data() + i) == kEndSig) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos)
    return file.Corrupt("no end-of-central-directory record (not a zip file, or truncated)");
  const char* e = end.data() + eocd;
  uint64_t entries = Le16(e + 10);
  uint64_t cd_size = Le32(e + 12);
  uint64_t cd_offset = Le32(e + 16);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    uint64_t eocd_abs = file.size() - tail + eocd;
    if (eocd_abs < 20) return file.Corrupt("zip64 end locator missing");
    ASSIGN_OR_RETURN(std::string loc, file.Read(eocd_abs - 20, 20, "zip64 end locator"));
    if (Le32(loc.data()) != kZip64LocatorSig) return file.Corrupt("zip64 end locator missing");
    ASSIGN_OR_RETURN(std::string rec, file.Read(Le64(loc.data() + 8), 56, "zip64 end record"));
    if (Le32(rec.data()) != kZip64EndSig) return file.Corrupt("bad zip64 end record signature");
    entries = Le64(rec.data() + 32);
    cd_size = Le64(rec.data() + 40);
    cd_offset = Le64(rec.data() + 48);
  }
  ASSIGN_OR_RETURN(std::string cd, file.Read(cd_offset, cd_size, "central directory"));
  std::vector<Member> members;
  size_t pos = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    if (pos + 46 > cd.size() || Le32(cd.data() + pos) != kCentralHeaderSig)
      return file.Corrupt(absl::StrCat("central directory entry ", i, " is damaged"));
    const char* h = cd.data() + pos;
    Member m;
    m.flags = Le16(h + 8);
    m.method = Le16(h + 10);
    m.crc = Le32(h + 16);
    m.compressed_size = Le32(h + 20);
    m.size = Le32(h + 24);
    uint16_t name_len = Le16(h + 28), extra_len = Le16(h + 30), comment_len = Le16(h + 32);
    m.local_header_offset = Le32(h + 42);
    if (pos + 46 + name_len + extra_len + comment_len > cd.size())
      return file.Corrupt(absl::StrCat("central directory entry ", i, " is damaged"));
    m.name.assign(h + 46, name_len);
    bool big_size = m.size == 0xFFFFFFFF, big_comp = m.compressed_size == 0xFFFFFFFF,
         big_off = m.local_header_offset == 0xFFFFFFFF;
    if (big_size || big_comp || big_off) {
      absl::Status s = ApplyZip64Extra(std::string(h + 46 + name_len, extra_len), &m, big_size,
                                       big_comp, big_off);
      if (!s.ok()) return file.Corrupt(absl::StrCat("member '", m.name, "': ", s.message()));
    }
    members.push_back(std::move(m));
    pos += 46 + name_len + extra_len + comment_len;
  }
  return members;
}

absl::StatusOr<std::string> Inflate(const std::string& compressed, uint64_t size,
                                    const std::string& what) {
  // One spare byte so that inflate can reach the end-of-stream marker with
  // room left: a full output buffer alone would stop it just before.
  std::string out(size + 1, '\0');
  z_stream zs{};
  // Negative window bits: raw deflate, as zip stores it (no zlib header).
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
    return absl::InternalError(absl::StrCat(what, ": inflateInit2 failed"));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(std::min<uint64_t>(compressed.size(), 1u << 30));
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(std::min<uint64_t>(size + 1, 1u << 30));
  // avail_in/avail_out are 32-bit; members over 4 GiB go through in chunks.
  uint64_t in_left = compressed.size() - zs.avail_in, out_left = size + 1 - zs.avail_out;
  int rc;
  for (;;) {
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
    if (zs.avail_in == 0 && in_left > 0) {
      uInt n = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      zs.avail_in = n, in_left -= n;
    } else if (zs.avail_out == 0 && out_left > 0) {
      uInt n = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
      zs.avail_out = n, out_left -= n;
    } else {
      break;
    }
  }
  uint64_t produced = zs.total_out;
  std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  if (rc != Z_STREAM_END)
    return absl::DataLossError(absl::StrCat(what, ": deflate stream is corrupt or truncated",
                                            msg.empty() ? "" : " (zlib: " + msg + ")"));
  if (produced != size)
    return absl::DataLossError(
        absl::StrCat(what, ": inflated to ", produced, " bytes, the directory says ", size));
  out.resize(size);
  return out;
}

uint32_t Crc32(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t pos = 0;
  while (pos < bytes.size()) {
    uInt n = static_cast<uInt>(std::min<size_t>(bytes.size() - pos, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + pos), n);
    pos += n;
  }
  return static_cast<uint32_t>(crc);
}

absl::StatusOr<Tensor> ReadMember(ArchiveFile& file, const Member& m) {
  std::string what = absl::StrCat(file.path(), ": member '", m.name, "'");
  if (m.flags & 1)
    return absl::UnimplementedError(absl::StrCat(what, " is encrypted; not supported"));
  ASSIGN_OR_RETURN(std::string local, file.Read(m.local_header_offset, 30, "local header"));
  if (Le32(local.data()) != kLocalHeaderSig)
    return file.Corrupt(absl::StrCat("bad local header signature for '", m.name, "'"));
  uint64_t data_offset =
      m.local_header_offset + 30 + Le16(local.data() + 26) + Le16(local.data() + 28);
  ASSIGN_OR_RETURN(std::string data, file.Read(data_offset, m.compressed_size, "member data"));
  std::string raw;
  if (m.method == 0) {
    if (m.compressed_size != m.size)
      return file.Corrupt(absl::StrCat("stored member '", m.name, "' has compressed size ",
                                       m.compressed_size, " != size ", m.size));
    raw = std::move(data);
  } else if (m.method == 8) {
    // Deflate expands at most ~1032:1; a larger claim is a damaged directory,
    // and believing it would try to allocate it.
    if (m.size / 1032 > m.compressed_size + 1)
      return file.Corrupt(absl::StrCat("member '", m.name, "' claims ", m.size, " bytes from ",
                                       m.compressed_size, " compressed"));
    ASSIGN_OR_RETURN(raw, Inflate(data, m.size, what));
  } else {
    return absl::UnimplementedError(
        absl::StrCat(what, " uses zip compression method ", m.method,
                     "; only stored (0) and deflate (8) are supported, as np.savez and "
                     "np.savez_compressed write"));
  }
  if (Crc32(raw) != m.crc)
    return absl::DataLossError(absl::StrCat(what, ": CRC-32 mismatch (corrupt data)"));
  return runtime::ParseNpy(raw, what);
}

}  // namespace

absl::StatusOr<std::map<std::string, Tensor>> ReadNpz(const std::string& path,
                                                      const std::vector<std::string>& names) {
  ArchiveFile file(path);
  RETURN_IF_ERROR(file.Open());
  ASSIGN_OR_RETURN(std::vector<Member> members, ReadCentralDirectory(file));
  std::vector<std::string> present;
  for (const Member& m : members) present.push_back(std::string(absl::StripSuffix(m.name, ".npy")));
  for (const std::string& name : names) {
    if (std::find(present.begin(), present.end(), name) == present.end())
      return absl::NotFoundError(
          absl::StrCat(path, ": no array '", name, "' in the archive; it holds: ",
                       present.empty() ? "nothing" : absl::StrJoin(present, ", ")));
  }
  std::map<std::string, Tensor> arrays;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!names.empty() && std::find(names.begin(), names.end(), present[i]) == names.end())
      continue;
    ASSIGN_OR_RETURN(Tensor t, ReadMember(file, members[i]));
    arrays[present[i]] = std::move(t);
  }
  return arrays;
}

}  // namespace lasgd::data
