// Dataset readers on small files written here byte by byte (IDX, CIFAR, NPZ
// stored and deflated), NPZ files made by NumPy itself (embedded), the bad
// inputs each reader must name, the synthetic dataset, spec strings, and the
// real Fashion-MNIST files where the package is installed.
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/data/dataset.h"
#include "runtime/data/npz.h"
#include "runtime/npy.h"

namespace lasgd::data {
namespace {

// Substring check with the whole message shown on failure (no gmock here).
#define EXPECT_CONTAINS(haystack, needle)                                         \
  do {                                                                            \
    const std::string h_ = (haystack), n_ = (needle);                             \
    EXPECT_NE(h_.find(n_), std::string::npos) << "'" << n_ << "' not in: " << h_; \
  } while (0)

std::string TempPath(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = ::testing::TempDir() + "/lasgd_data_" + info->test_suite_name() + "_" +
                    info->name() + "_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void PutBe32(std::string* s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s->push_back(static_cast<char>((v >> shift) & 0xFF));
}

// IDX images: magic 0x00000803, N, rows, cols, then pixel bytes.
std::string IdxImages(uint32_t n, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& pix) {
  std::string s;
  PutBe32(&s, 0x00000803);
  PutBe32(&s, n);
  PutBe32(&s, rows);
  PutBe32(&s, cols);
  s.append(pix.begin(), pix.end());
  return s;
}

std::string IdxLabels(const std::vector<uint8_t>& labels) {
  std::string s;
  PutBe32(&s, 0x00000801);
  PutBe32(&s, static_cast<uint32_t>(labels.size()));
  s.append(labels.begin(), labels.end());
  return s;
}

// Three 2x3 images whose pixel j of image i is 10 * i + j.
std::vector<uint8_t> SmallPixels() {
  std::vector<uint8_t> p;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 6; ++j) p.push_back(static_cast<uint8_t>(10 * i + j));
  return p;
}

void ExpectIdxSmall(const Dataset& ds) {
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.sample_shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(ds.target_type(), TargetType::kLabel);
  EXPECT_EQ(ds.num_classes(), 10);  // max label 9 + 1
  std::vector<float> x(6);
  const int64_t want_labels[] = {7, 0, 9};
  for (int i = 0; i < 3; ++i) {
    int64_t label = -1;
    ASSERT_TRUE(ds.GetSample(i, x.data(), &label, nullptr).ok());
    EXPECT_EQ(label, want_labels[i]);
    for (int j = 0; j < 6; ++j) EXPECT_FLOAT_EQ(x[j], (10 * i + j) / 255.0f) << i << "," << j;
  }
}

TEST(IdxReader, ReadsUncompressedFiles) {
  std::string prefix = TempPath("train");
  WriteFile(prefix + "-images-idx3-ubyte", IdxImages(3, 2, 3, SmallPixels()));
  WriteFile(prefix + "-labels-idx1-ubyte", IdxLabels({7, 0, 9}));
  auto ds = ReadIdxDataset(prefix);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ExpectIdxSmall(**ds);
  EXPECT_TRUE((*ds)->Validate(10).ok());
  absl::Status s = (*ds)->Validate(8);
  EXPECT_FALSE(s.ok());
  EXPECT_CONTAINS(std::string(s.message()), "sample 2 has label 9, outside [0, 8)");
  EXPECT_CONTAINS(std::string(s.message()), prefix);
}

TEST(IdxReader, ReadsGzipThroughSpec) {
  std::string prefix = TempPath("t10k");
  WriteGzip(prefix + "-images-idx3-ubyte.gz", IdxImages(3, 2, 3, SmallPixels()));
  WriteGzip(prefix + "-labels-idx1-ubyte.gz", IdxLabels({7, 0, 9}));
  auto ds = OpenDataset("idx:" + prefix);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ExpectIdxSmall(**ds);
  EXPECT_EQ((*ds)->name(), "idx:" + prefix);
}

TEST(IdxReader, WrongMagicNamesFileAndBothNumbers) {
  std::string prefix = TempPath("swapped");
  // A labels file where the images should be.
  WriteFile(prefix + "-images-idx3-ubyte", IdxLabels({1, 2, 3}));
  WriteFile(prefix + "-labels-idx1-ubyte", IdxLabels({1, 2, 3}));
  auto ds = ReadIdxDataset(prefix);
  ASSERT_FALSE(ds.ok());
  std::string msg(ds.status().message());
  EXPECT_CONTAINS(msg, prefix + "-images-idx3-ubyte");
  EXPECT_CONTAINS(msg, "magic number 0x00000801, expected 0x00000803");
  EXPECT_CONTAINS(msg, "labels file?");

  WriteFile(prefix + "-images-idx3-ubyte", std::string("\x1f\x8b\x08\x00garbage", 11));
  ds = ReadIdxDataset(prefix);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), "gzip");
}

TEST(IdxReader, TruncatedDataIsReported) {
  std::string prefix = TempPath("short");
  std::vector<uint8_t> pix = SmallPixels();
  pix.resize(pix.size() - 4);
  WriteFile(prefix + "-images-idx3-ubyte", IdxImages(3, 2, 3, pix));
  WriteFile(prefix + "-labels-idx1-ubyte", IdxLabels({7, 0, 9}));
  auto ds = ReadIdxDataset(prefix);
  ASSERT_FALSE(ds.ok());
  std::string msg(ds.status().message());
  EXPECT_CONTAINS(msg, "truncated");
  EXPECT_CONTAINS(msg, "3x2x3 = 18 bytes of image data, the file holds 14");

  // A gzip stream cut short.
  std::string gz_prefix = TempPath("cut");
  WriteGzip(gz_prefix + "-images-idx3-ubyte.gz", IdxImages(3, 2, 3, SmallPixels()));
  std::string bytes = ReadFile(gz_prefix + "-images-idx3-ubyte.gz");
  WriteFile(gz_prefix + "-images-idx3-ubyte.gz", bytes.substr(0, bytes.size() - 12));
  WriteFile(gz_prefix + "-labels-idx1-ubyte", IdxLabels({7, 0, 9}));
  ds = ReadIdxDataset(gz_prefix);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), gz_prefix + "-images-idx3-ubyte.gz");
}

TEST(IdxReader, CountMismatchAndMissingFiles) {
  std::string prefix = TempPath("mismatch");
  WriteFile(prefix + "-images-idx3-ubyte", IdxImages(3, 2, 3, SmallPixels()));
  WriteFile(prefix + "-labels-idx1-ubyte", IdxLabels({7, 0}));
  auto ds = ReadIdxDataset(prefix);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), "image/label count mismatch");
  EXPECT_CONTAINS(std::string(ds.status().message()), "holds 3 images");
  EXPECT_CONTAINS(std::string(ds.status().message()), "holds 2 labels");

  ds = ReadIdxDataset(TempPath("nothing"));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_CONTAINS(std::string(ds.status().message()), "nothing-images-idx3-ubyte.gz");
}

// ---- CIFAR ----

// `records` records of (labels..., 3072 pixels); pixel j of record r is (r * 7 + j) % 256.
std::string CifarRecords(const std::vector<std::vector<uint8_t>>& labels) {
  std::string s;
  for (size_t r = 0; r < labels.size(); ++r) {
    for (uint8_t l : labels[r]) s.push_back(static_cast<char>(l));
    for (int j = 0; j < 3072; ++j) s.push_back(static_cast<char>((r * 7 + j) % 256));
  }
  return s;
}

TEST(CifarReader, Cifar10TrainAndTestSplits) {
  std::string dir = TempPath("cifar-10-batches-bin");
  for (int b = 1; b <= 5; ++b)
    WriteFile(dir + "/data_batch_" + std::to_string(b) + ".bin",
              CifarRecords({{static_cast<uint8_t>(b)}, {static_cast<uint8_t>(b + 4)}}));
  WriteFile(dir + "/test_batch.bin", CifarRecords({{3}}));
  auto train = ReadCifarDataset(dir, Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_EQ((*train)->size(), 10);
  EXPECT_EQ((*train)->sample_shape(), (Shape{3, 32, 32}));
  EXPECT_EQ((*train)->num_classes(), 10);
  std::vector<float> x(3072);
  int64_t label;
  ASSERT_TRUE((*train)->GetSample(5, x.data(), &label, nullptr).ok());  // batch 3, record 1
  EXPECT_EQ(label, 7);
  EXPECT_FLOAT_EQ(x[0], 7 / 255.0f);
  EXPECT_FLOAT_EQ(x[1024 + 5], ((7 + 1024 + 5) % 256) / 255.0f);  // green plane
  // The parent folder is found too, and split=test in the spec wins.
  auto test =
      OpenDataset("cifar:" + std::filesystem::path(dir).parent_path().string() + ",split=test");
  ASSERT_TRUE(test.ok()) << test.status();
  ASSERT_EQ((*test)->size(), 1);
  ASSERT_TRUE((*test)->GetSample(0, x.data(), &label, nullptr).ok());
  EXPECT_EQ(label, 3);
}

TEST(CifarReader, Cifar100FineAndCoarseLabels) {
  std::string dir = TempPath("c100");
  WriteFile(dir + "/train.bin", CifarRecords({{4, 88}, {19, 99}, {0, 0}}));
  WriteFile(dir + "/test.bin", CifarRecords({{1, 2}}));
  auto fine = OpenDataset("cifar:" + dir);
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ((*fine)->size(), 3);
  EXPECT_EQ((*fine)->num_classes(), 100);
  std::vector<float> x(3072);
  int64_t label;
  ASSERT_TRUE((*fine)->GetSample(1, x.data(), &label, nullptr).ok());
  EXPECT_EQ(label, 99);
  EXPECT_FLOAT_EQ(x[2], ((7 + 2) % 256) / 255.0f);
  auto coarse = OpenDataset("cifar:" + dir + ",labels=coarse");
  ASSERT_TRUE(coarse.ok()) << coarse.status();
  EXPECT_EQ((*coarse)->num_classes(), 20);
  ASSERT_TRUE((*coarse)->GetSample(1, x.data(), &label, nullptr).ok());
  EXPECT_EQ(label, 19);
  auto test = OpenDataset("cifar:" + dir, Split::kTest);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ((*test)->size(), 1);
}

TEST(CifarReader, BadFilesAreNamed) {
  std::string dir = TempPath("bad10");
  for (int b : {1, 2, 4, 5})
    WriteFile(dir + "/data_batch_" + std::to_string(b) + ".bin", CifarRecords({{1}}));
  WriteFile(dir + "/test_batch.bin", CifarRecords({{1}}).substr(0, 3000));
  auto ds = ReadCifarDataset(dir, Split::kTrain);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), dir + "/data_batch_3.bin is missing");

  ds = ReadCifarDataset(dir, Split::kTest);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), dir + "/test_batch.bin: 3000 bytes");
  EXPECT_CONTAINS(std::string(ds.status().message()), "3073-byte CIFAR-10 records");

  WriteFile(dir + "/test_batch.bin", CifarRecords({{1}, {12}}));
  ds = ReadCifarDataset(dir, Split::kTest);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), "record 1 has label 12");

  ds = ReadCifarDataset(TempPath("empty_dir"), Split::kTrain);
  ASSERT_FALSE(ds.ok());
  EXPECT_CONTAINS(std::string(ds.status().message()), "no CIFAR binary files");
}

// ---- NPZ ----

std::string NpyBytes(const Tensor& t) {
  std::string path = TempPath("member.npy");
  EXPECT_TRUE(runtime::WriteNpy(path, t).ok());
  return ReadFile(path);
}

void PutLe16(std::string* s, uint32_t v) {
  s->push_back(static_cast<char>(v & 0xFF));
  s->push_back(static_cast<char>((v >> 8) & 0xFF));
}
void PutLe32(std::string* s, uint32_t v) {
  PutLe16(s, v & 0xFFFF);
  PutLe16(s, v >> 16);
}

std::string RawDeflate(const std::string& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A minimal zip writer (no zip64), so the tests do not need Python.
std::string MakeZip(const std::vector<std::pair<std::string, std::string>>& members,
                    bool deflated) {
  std::string zip, central;
  for (const auto& [name, data] : members) {
    std::string body = deflated ? RawDeflate(data) : data;
    uint32_t crc = crc32(0, reinterpret_cast<const Bytef*>(data.data()), data.size());
    uint32_t offset = static_cast<uint32_t>(zip.size());
    auto common = [&](std::string* s) {
      PutLe16(s, 20);  // version needed
      PutLe16(s, 0);   // flags
      PutLe16(s, deflated ? 8 : 0);
      PutLe32(s, 0);  // time, date
      PutLe32(s, crc);
      PutLe32(s, static_cast<uint32_t>(body.size()));
      PutLe32(s, static_cast<uint32_t>(data.size()));
      PutLe16(s, static_cast<uint32_t>(name.size()));
      PutLe16(s, 0);  // extra
    };
    PutLe32(&zip, 0x04034b50);
    common(&zip);
    zip += name + body;
    PutLe32(&central, 0x02014b50);
    PutLe16(&central, 20);  // version made by
    common(&central);
    PutLe16(&central, 0);  // comment
    PutLe16(&central, 0);  // disk
    PutLe16(&central, 0);  // internal attributes
    PutLe32(&central, 0);  // external attributes
    PutLe32(&central, offset);
    central += name;
  }
  uint32_t cd_offset = static_cast<uint32_t>(zip.size());
  zip += central;
  PutLe32(&zip, 0x06054b50);
  PutLe32(&zip, 0);
  PutLe16(&zip, static_cast<uint32_t>(members.size()));
  PutLe16(&zip, static_cast<uint32_t>(members.size()));
  PutLe32(&zip, static_cast<uint32_t>(central.size()));
  PutLe32(&zip, cd_offset);
  PutLe16(&zip, 0);
  return zip;
}

TEST(NpzReader, StoredAndDeflatedMembers) {
  Tensor x = Tensor::FromFloats({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2});
  Tensor y = Tensor::FromInt64s({0, 3, 1, 2}, {4});
  for (bool deflated : {false, true}) {
    std::string path = TempPath(deflated ? "d.npz" : "s.npz");
    WriteFile(path, MakeZip({{"x.npy", NpyBytes(x)}, {"y.npy", NpyBytes(y)}}, deflated));
    auto ds = OpenDataset("npz:" + path);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ((*ds)->size(), 4);
    EXPECT_EQ((*ds)->sample_shape(), (Shape{2}));
    EXPECT_EQ((*ds)->num_classes(), 4);
    float v[2];
    int64_t label;
    ASSERT_TRUE((*ds)->GetSample(2, v, &label, nullptr).ok());
    EXPECT_EQ(v[0], 5);
    EXPECT_EQ(v[1], 6);
    EXPECT_EQ(label, 1);
  }
}

// Made with numpy 2.4:
//   x = np.array([[0.5,-1.0],[2.0,3.25],[4.0,-0.125]], dtype=np.float32)
//   y = np.array([2,0,1], dtype=np.int64)
//   np.savez_compressed(f, x=x, y=y)   /   np.savez(f, x=x, y=y)
// NumPy writes zip64 local headers whose sizes are 0xFFFFFFFF.
const char kNumpyCompressed[] =
    "\x50\x4b\x03\x04\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\x24\x5b\x85\x44\xff\xff\xff\xff\xff"
    "\xff"
    "\xff\xff\x05\x00\x14\x00\x78\x2e\x6e\x70\x79\x01\x00\x10\x00\x98\x00\x00\x00\x00\x00\x00\x00"
    "\x5a"
    "\x00\x00\x00\x00\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8\x50\xc6\x50\xad\x9e\x92\x5a\x9c"
    "\x5c"
    "\xa4\x6e\xa5\xa0\x6e\x93\x66\xa2\xae\xa3\xa0\x9e\x96\x5f\x54\x52\x94\x98\x17\x9f\x5f\x94\x92"
    "\x0a"
    "\x12\x77\x4b\xcc\x29\x4e\x05\x8a\x17\x67\x24\x16\xa4\x02\xf9\x1a\xc6\x3a\x0a\x46\x9a\x3a\x0a"
    "\xb5"
    "\x0a\x64\x03\x2e\x06\x06\x06\x7b\x06\x86\x86\xfd\x40\xda\x81\x81\x21\x00\x88\x1b\x80\x98\x61"
    "\x1f"
    "\x00\x50\x4b\x03\x04\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\x8a\x1a\xce\x13\xff\xff\xff\xff"
    "\xff"
    "\xff\xff\xff\x05\x00\x14\x00\x79\x2e\x6e\x70\x79\x01\x00\x10\x00\x98\x00\x00\x00\x00\x00\x00"
    "\x00"
    "\x4a\x00\x00\x00\x00\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8\x50\xc6\x50\xad\x9e\x92\x5a"
    "\x9c"
    "\x5c\xa4\x6e\xa5\xa0\x6e\x93\x69\xa1\xae\xa3\xa0\x9e\x96\x5f\x54\x52\x94\x98\x17\x9f\x5f\x94"
    "\x92"
    "\x0a\x12\x77\x4b\xcc\x29\x4e\x05\x8a\x17\x67\x24\x16\xa4\x02\xf9\x1a\xc6\x3a\x9a\x3a\x0a\xb5"
    "\x0a"
    "\x14\x00\x2e\x26\x06\x54\xc0\x08\xa5\x01\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00\x08\x00\x00"
    "\x00"
    "\x21\x00\x24\x5b\x85\x44\x5a\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00"
    "\x00\x00\x80\x01\x00\x00\x00\x00\x78\x2e\x6e\x70\x79\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00"
    "\x08"
    "\x00\x00\x00\x21\x00\x8a\x1a\xce\x13\x4a\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00\x00"
    "\x00"
    "\x00\x00\x00\x00\x00\x80\x01\x91\x00\x00\x00\x79\x2e\x6e\x70\x79\x50\x4b\x05\x06\x00\x00\x00"
    "\x00"
    "\x02\x00\x02\x00\x66\x00\x00\x00\x12\x01\x00\x00\x00\x00";
const char kNumpyStored[] =
    "\x50\x4b\x03\x04\x2d\x00\x00\x00\x00\x00\x00\x00\x21\x00\x24\x5b\x85\x44\xff\xff\xff\xff\xff"
    "\xff"
    "\xff\xff\x05\x00\x14\x00\x78\x2e\x6e\x70\x79\x01\x00\x10\x00\x98\x00\x00\x00\x00\x00\x00\x00"
    "\x98"
    "\x00\x00\x00\x00\x00\x00\x00\x93\x4e\x55\x4d\x50\x59\x01\x00\x76\x00\x7b\x27\x64\x65\x73\x63"
    "\x72"
    "\x27\x3a\x20\x27\x3c\x66\x34\x27\x2c\x20\x27\x66\x6f\x72\x74\x72\x61\x6e\x5f\x6f\x72\x64\x65"
    "\x72"
    "\x27\x3a\x20\x46\x61\x6c\x73\x65\x2c\x20\x27\x73\x68\x61\x70\x65\x27\x3a\x20\x28\x33\x2c\x20"
    "\x32"
    "\x29\x2c\x20\x7d\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x0a\x00\x00\x00\x3f\x00\x00\x80\xbf"
    "\x00"
    "\x00\x00\x40\x00\x00\x50\x40\x00\x00\x80\x40\x00\x00\x00\xbe\x50\x4b\x03\x04\x2d\x00\x00\x00"
    "\x00"
    "\x00\x00\x00\x21\x00\x8a\x1a\xce\x13\xff\xff\xff\xff\xff\xff\xff\xff\x05\x00\x14\x00\x79\x2e"
    "\x6e"
    "\x70\x79\x01\x00\x10\x00\x98\x00\x00\x00\x00\x00\x00\x00\x98\x00\x00\x00\x00\x00\x00\x00\x93"
    "\x4e"
    "\x55\x4d\x50\x59\x01\x00\x76\x00\x7b\x27\x64\x65\x73\x63\x72\x27\x3a\x20\x27\x3c\x69\x38\x27"
    "\x2c"
    "\x20\x27\x66\x6f\x72\x74\x72\x61\x6e\x5f\x6f\x72\x64\x65\x72\x27\x3a\x20\x46\x61\x6c\x73\x65"
    "\x2c"
    "\x20\x27\x73\x68\x61\x70\x65\x27\x3a\x20\x28\x33\x2c\x29\x2c\x20\x7d\x20\x20\x20\x20\x20\x20"
    "\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20"
    "\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20"
    "\x20"
    "\x20\x20\x20\x20\x20\x0a\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
    "\x00"
    "\x00\x00\x00\x00\x00\x00\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00\x00\x00\x00\x00\x21\x00\x24"
    "\x5b"
    "\x85\x44\x98\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80"
    "\x01"
    "\x00\x00\x00\x00\x78\x2e\x6e\x70\x79\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00\x00\x00\x00\x00"
    "\x21"
    "\x00\x8a\x1a\xce\x13\x98\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00"
    "\x00\x80\x01\xcf\x00\x00\x00\x79\x2e\x6e\x70\x79\x50\x4b\x05\x06\x00\x00\x00\x00\x02\x00\x02"
    "\x00"
    "\x66\x00\x00\x00\x9e\x01\x00\x00\x00\x00";

TEST(NpzReader, FilesWrittenByNumpy) {
  for (bool compressed : {true, false}) {
    std::string path = TempPath("numpy.npz");
    WriteFile(path, compressed ? std::string(kNumpyCompressed, sizeof(kNumpyCompressed) - 1)
                               : std::string(kNumpyStored, sizeof(kNumpyStored) - 1));
    auto arrays = ReadNpz(path);
    ASSERT_TRUE(arrays.ok()) << arrays.status();
    ASSERT_EQ(arrays->size(), 2u);
    EXPECT_EQ((*arrays)["x"].TypeString(), "float32[3,2]");
    EXPECT_EQ((*arrays)["x"].ToDoubleVector(),
              (std::vector<double>{0.5, -1.0, 2.0, 3.25, 4.0, -0.125}));
    EXPECT_EQ((*arrays)["y"].ToDoubleVector(), (std::vector<double>{2, 0, 1}));
    auto ds = ReadNpzDataset(path);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ((*ds)->num_classes(), 3);
  }
}

// Every truncation and every single corrupted byte of a real NumPy archive
// and of an IDX pair must give a result or an error, never a crash (the ASan
// build makes "never" strict); truncations must all be errors.
TEST(NpzReader, DamagedFilesNeverCrash) {
  const std::string good(kNumpyCompressed, sizeof(kNumpyCompressed) - 1);
  std::string path = TempPath("damaged.npz");
  for (size_t len = 0; len < good.size(); ++len) {
    WriteFile(path, good.substr(0, len));
    EXPECT_FALSE(ReadNpzDataset(path).ok()) << "truncated to " << len;
  }
  int errors = 0;
  for (size_t pos = 0; pos < good.size(); ++pos) {
    std::string bad = good;
    bad[pos] ^= 0xA5;
    WriteFile(path, bad);
    errors += !ReadNpzDataset(path).ok();
  }
  EXPECT_GT(errors, static_cast<int>(good.size()) / 2);

  std::string prefix = TempPath("damaged");
  const std::string images = IdxImages(3, 2, 3, SmallPixels());
  WriteFile(prefix + "-labels-idx1-ubyte", IdxLabels({7, 0, 9}));
  for (size_t len = 0; len < images.size(); ++len) {
    WriteFile(prefix + "-images-idx3-ubyte", images.substr(0, len));
    EXPECT_FALSE(ReadIdxDataset(prefix).ok()) << "truncated to " << len;
  }
  for (size_t pos = 0; pos < 16; ++pos) {
    std::string bad = images;
    bad[pos] ^= 0xFF;
    WriteFile(prefix + "-images-idx3-ubyte", bad);
    EXPECT_FALSE(ReadIdxDataset(prefix).ok()) << "header byte " << pos;
  }
}

TEST(NpzReader, ConversionsAndOtherNames) {
  // uint8 images scale to [0,1]; Keras-style [N,1] labels; float targets.
  Tensor x = Tensor::Allocate(DataType::kUint8, {2, 1, 2});
  x.data<uint8_t>()[0] = 255;
  x.data<uint8_t>()[3] = 51;
  Tensor y = Tensor::Allocate(DataType::kInt32, {2, 1});
  y.data<int32_t>()[1] = 5;
  Tensor t = Tensor::FromFloats({0.5f, 1.5f, -2, 4}, {2, 2});
  std::string path = TempPath("keras.npz");
  WriteFile(
      path,
      MakeZip({{"x_train.npy", NpyBytes(x)}, {"y_train.npy", NpyBytes(y)}, {"t.npy", NpyBytes(t)}},
              true));
  auto ds = OpenDataset("npz:" + path + ",x=x_train,y=y_train");
  ASSERT_TRUE(ds.ok()) << ds.status();
  float v[2];
  int64_t label;
  ASSERT_TRUE((*ds)->GetSample(0, v, &label, nullptr).ok());
  EXPECT_FLOAT_EQ(v[0], 1.0f);
  ASSERT_TRUE((*ds)->GetSample(1, v, &label, nullptr).ok());
  EXPECT_FLOAT_EQ(v[1], 0.2f);
  EXPECT_EQ(label, 5);

  auto reg = ReadNpzDataset(path, "x_train", "t");
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_EQ((*reg)->target_type(), TargetType::kFloat);
  EXPECT_EQ((*reg)->target_shape(), (Shape{2}));
  EXPECT_EQ((*reg)->num_classes(), 0);
  float target[2];
  ASSERT_TRUE((*reg)->GetSample(1, v, nullptr, target).ok());
  EXPECT_EQ(target[0], -2);
  EXPECT_EQ(target[1], 4);
  EXPECT_TRUE((*reg)->Validate(10).ok());
}

TEST(NpzReader, WrongShapesAndMissingArrays) {
  Tensor x2 = Tensor::FromFloats({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor x1 = Tensor::FromFloats({1, 2, 3}, {3});
  Tensor y3 = Tensor::FromInt64s({0, 1, 2}, {3});
  Tensor y2 = Tensor::FromInt64s({0, 1}, {2});
  Tensor onehot = Tensor::FromInt64s({1, 0, 0, 1, 0, 0}, {3, 2});
  Tensor neg = Tensor::FromInt64s({0, -1, 2}, {3});
  struct Case {
    Tensor x, y;
    std::string expected;
  };
  std::vector<Case> cases = {
      {x1, y3, "array 'x' has shape [3]; expected [N, ...] with at least 2 dimensions"},
      {x2, y2, "'x' holds 3 samples (shape [3,2]) but 'y' has shape [2]; expected [3] labels"},
      {x2, onehot, "array 'y' has integer shape [3,2]; expected class indices [3]"},
      {x2, neg, "sample 1 has negative label -1"},
  };
  for (const Case& c : cases) {
    std::string path = TempPath("bad.npz");
    WriteFile(path, MakeZip({{"x.npy", NpyBytes(c.x)}, {"y.npy", NpyBytes(c.y)}}, false));
    auto ds = ReadNpzDataset(path);
    ASSERT_FALSE(ds.ok()) << c.expected;
    EXPECT_CONTAINS(std::string(ds.status().message()), c.expected);
    EXPECT_CONTAINS(std::string(ds.status().message()), path);
  }
  std::string path = TempPath("noy.npz");
  WriteFile(path, MakeZip({{"x.npy", NpyBytes(x2)}, {"labels.npy", NpyBytes(y3)}}, false));
  auto ds = ReadNpzDataset(path);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_CONTAINS(std::string(ds.status().message()),
                  "no array 'y' in the archive; it holds: x, labels");
}

TEST(NpzReader, CorruptArchives) {
  Tensor x = Tensor::FromFloats({1, 2, 3, 4, 5, 6}, {3, 2});
  std::string good = MakeZip({{"x.npy", NpyBytes(x)}}, true);
  std::string path = TempPath("corrupt.npz");

  WriteFile(path, good.substr(0, good.size() - 30));  // end record cut off
  auto arrays = ReadNpz(path);
  ASSERT_FALSE(arrays.ok());
  EXPECT_CONTAINS(std::string(arrays.status().message()), path);
  EXPECT_CONTAINS(std::string(arrays.status().message()), "end-of-central-directory");

  std::string flipped = good;
  flipped[40] ^= 0x55;  // inside the deflate stream
  WriteFile(path, flipped);
  arrays = ReadNpz(path);
  ASSERT_FALSE(arrays.ok());
  EXPECT_CONTAINS(std::string(arrays.status().message()), "member 'x.npy'");

  WriteFile(path, "not a zip file at all, just some text that is long enough");
  arrays = ReadNpz(path);
  ASSERT_FALSE(arrays.ok());
  EXPECT_CONTAINS(std::string(arrays.status().message()), "not a valid .npz");

  arrays = ReadNpz(TempPath("absent.npz"));
  ASSERT_FALSE(arrays.ok());
  EXPECT_EQ(arrays.status().code(), absl::StatusCode::kNotFound);
}

// ---- synthetic, specs, statistics ----

TEST(Synthetic, DeterministicAndSharedMeansAcrossSplits) {
  SyntheticOptions o;
  o.num_samples = 400;
  o.num_classes = 4;
  o.sample_shape = {2, 3, 3};
  o.seed = 11;
  o.noise = 0.5f;
  auto a = MakeSyntheticDataset(o);
  auto b = MakeSyntheticDataset(o);
  ASSERT_TRUE(a.ok() && b.ok());
  const Tensor& xa = (*a)->inputs();
  ASSERT_EQ(xa.shape(), (Shape{400, 2, 3, 3}));
  EXPECT_EQ(0, std::memcmp(xa.raw_data(), (*b)->inputs().raw_data(), xa.nbytes()));
  o.split = Split::kTest;
  auto test = MakeSyntheticDataset(o);
  ASSERT_TRUE(test.ok());
  EXPECT_NE(0, std::memcmp(xa.raw_data(), (*test)->inputs().raw_data(), xa.nbytes()));
  // Class means agree between splits to within the noise's standard error
  // (0.5 / sqrt(100) = 0.05): the splits pose the same problem.
  for (int c = 0; c < 4; ++c) {
    for (int j = 0; j < 18; ++j) {
      double ma = 0, mt = 0;
      for (int i = c; i < 400; i += 4) {
        EXPECT_EQ((*a)->targets().data<int64_t>()[i], c);
        ma += xa.data<float>()[i * 18 + j] / 100.0;
        mt += (*test)->inputs().data<float>()[i * 18 + j] / 100.0;
      }
      EXPECT_NEAR(ma, mt, 0.3) << c << "," << j;
    }
  }
}

TEST(Synthetic, DefaultProblemIsLearnable) {
  // Nearest class mean, estimated on train, classifies the test split: the
  // problem a trainer smoke test relies on.
  auto train = OpenDataset("synthetic");
  auto test = OpenDataset("synthetic", Split::kTest);
  ASSERT_TRUE(train.ok() && test.ok());
  const int64_t d = (*train)->sample_numel(), k = (*train)->num_classes();
  std::vector<double> means(k * d, 0.0);
  std::vector<int64_t> counts(k, 0);
  std::vector<float> x(d);
  int64_t label;
  for (int64_t i = 0; i < (*train)->size(); ++i) {
    ASSERT_TRUE((*train)->GetSample(i, x.data(), &label, nullptr).ok());
    ++counts[label];
    for (int64_t j = 0; j < d; ++j) means[label * d + j] += x[j];
  }
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < d; ++j) means[c * d + j] /= counts[c];
  int64_t correct = 0;
  for (int64_t i = 0; i < (*test)->size(); ++i) {
    ASSERT_TRUE((*test)->GetSample(i, x.data(), &label, nullptr).ok());
    int64_t best = -1;
    double best_dist = 1e300;
    for (int64_t c = 0; c < k; ++c) {
      double dist = 0;
      for (int64_t j = 0; j < d; ++j) dist += (x[j] - means[c * d + j]) * (x[j] - means[c * d + j]);
      if (dist < best_dist) best_dist = dist, best = c;
    }
    correct += best == label;
  }
  EXPECT_GT(correct, (*test)->size() * 9 / 10);
}

TEST(Spec, OptionsAndErrors) {
  auto ds = OpenDataset("synthetic:n=50,classes=5,shape=3x4x4,seed=2,noise=0.1,limit=20");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 20);
  EXPECT_EQ((*ds)->sample_shape(), (Shape{3, 4, 4}));
  EXPECT_EQ((*ds)->num_classes(), 5);
  auto plain = OpenDataset("synthetic");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->size(), 4096);
  auto test = OpenDataset("synthetic", Split::kTest);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ((*test)->size(), 1024);

  struct Case {
    std::string spec, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"mnist:/tmp/x",
            "unknown scheme 'mnist'; known: idx:PREFIX, cifar:DIR, npz:FILE, "
            "synthetic"},
           {"idx:", "'idx:' needs a file prefix"},
           {"npz", "'npz:' needs a file"},
           {"synthetic:n=0", "n=0 is not a positive integer"},
           {"synthetic:shape=3xfoo", "shape=foo is not a positive integer"},
           {"synthetic:colour=red", "unknown option 'colour=red' for synthetic; known: limit="},
           {"cifar:/tmp,split=val", "split=val: expected train or test"},
           {"idx:/tmp/x,split=test", "unknown option 'split=test' for idx"},
       }) {
    auto r = OpenDataset(c.spec);
    ASSERT_FALSE(r.ok()) << c.spec;
    EXPECT_CONTAINS(std::string(r.status().message()), c.expected);
  }
}

TEST(Stats, PerChannelMeanAndStd) {
  // Channel 0 holds {0, 2}, channel 1 holds {10, 10} across two samples.
  Tensor x = Tensor::FromFloats({0, 0, 10, 10, 2, 2, 10, 10}, {2, 2, 2});
  auto ds = TensorDataset::Create("tiny", x, Tensor::FromInt64s({0, 1}, {2}));
  ASSERT_TRUE(ds.ok());
  auto stats = ComputeChannelStats(**ds);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->mean, (std::vector<float>{1, 10}));
  EXPECT_EQ(stats->std, (std::vector<float>{1, 0}));
}

// ---- the real thing ----

TEST(FashionMnist, InstalledFilesLoad) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << dir << " is absent (apt install dataset-fashion-mnist)";
  for (const auto& [split, count] :
       std::vector<std::pair<std::string, int64_t>>{{"train", 60000}, {"t10k", 10000}}) {
    auto ds = OpenDataset("idx:" + dir + "/" + split);
    ASSERT_TRUE(ds.ok()) << ds.status();
    ASSERT_EQ((*ds)->size(), count);
    EXPECT_EQ((*ds)->sample_shape(), (Shape{1, 28, 28}));
    EXPECT_EQ((*ds)->num_classes(), 10);
    EXPECT_TRUE((*ds)->Validate(10).ok());
    auto* tensor_ds = dynamic_cast<const TensorDataset*>(ds->get());
    ASSERT_NE(tensor_ds, nullptr);
    std::map<int64_t, int64_t> per_class;
    for (int64_t i = 0; i < count; ++i) ++per_class[tensor_ds->targets().data<int64_t>()[i]];
    ASSERT_EQ(per_class.size(), 10u);
    for (const auto& [label, n] : per_class) EXPECT_EQ(n, count / 10) << "class " << label;
    const float* x = tensor_ds->inputs().data<float>();
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < tensor_ds->inputs().num_elements(); ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    EXPECT_EQ(lo, 0.0f);
    EXPECT_EQ(hi, 1.0f);
  }
}

}  // namespace
}  // namespace lasgd::data
