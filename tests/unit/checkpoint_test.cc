// Checkpoints: round trip of every dtype and metadata, clear errors (never a
// crash) for truncated, bit-flipped, wrong-magic and missing files,
// compatibility checks, the manager's rotation and recovery, and a writer
// killed with SIGKILL mid-write.
#include "runtime/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/op_test_util.h"

namespace lasgd::runtime {
namespace {

// A fresh folder under gtest's temp dir, removed with its contents.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    std::string templ = ::testing::TempDir() + "/lasgd_ckpt_XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    EXPECT_NE(mkdtemp(buf.data()), nullptr);
    path_ = buf.data();
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

Checkpoint SampleCheckpoint() {
  Checkpoint c;
  c.tensors["conv1.weight"] = lasgd::testing::RandomTensor({4, 3, 3, 3}, 1);
  c.tensors["conv1.weight.momentum"] = lasgd::testing::RandomTensor({4, 3, 3, 3}, 2);
  c.tensors["bn.running_var"] = lasgd::testing::RandomTensor({4}, 3, 0.5f, 2.f);
  c.tensors["scalar_f64"] = Tensor::Allocate(DataType::kFloat64, {});
  c.tensors["scalar_f64"].data<double>()[0] = 0.1;
  c.tensors["steps_i64"] = Tensor::FromInt64s({int64_t{1} << 62, -7}, {2});
  c.tensors["empty"] = Tensor::Allocate(DataType::kFloat32, {0, 5});
  c.tensors["mask_bool"] = Tensor::Allocate(DataType::kBool, {3});
  c.tensors["mask_bool"].data<uint8_t>()[1] = 1;
  c.tensors["half"] = Tensor::Allocate(DataType::kFloat16, {2});
  c.tensors["half"].data<uint16_t>()[0] = 0x3c00;
  c.metadata["step"] = "1200";
  c.metadata["epoch"] = "3";
  c.metadata["rng"] = std::string("\x00\x01\xff binary ok", 14);
  c.metadata["empty"] = "";
  return c;
}

void ExpectSameCheckpoint(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.metadata, b.metadata);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    const Tensor& u = b.tensors.at(name);
    EXPECT_EQ(t.TypeString(), u.TypeString()) << name;
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    if (t.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(t.raw_data(), u.raw_data(), t.nbytes()), 0) << name;
    }
  }
}

TEST(CheckpointTest, RoundTripsEveryDtypeAndMetadata) {
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  Checkpoint c = SampleCheckpoint();
  std::string path = dir + "/a.lasgd";
  ASSERT_TRUE(WriteCheckpoint(path, c).ok());
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"a.lasgd"}));  // no temporaries
  EXPECT_EQ(ReadBytes(path).substr(0, 8), "LASGDCKP");
  auto back = ReadCheckpoint(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameCheckpoint(c, *back);

  // An empty checkpoint is valid too.
  ASSERT_TRUE(WriteCheckpoint(dir + "/empty.lasgd", Checkpoint()).ok());
  auto empty = ReadCheckpoint(dir + "/empty.lasgd");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->tensors.empty());
}

TEST(CheckpointTest, ReportsProgressPerTensor) {
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  Checkpoint c = SampleCheckpoint();
  std::vector<int64_t> seen;
  int64_t total_seen = 0;
  CheckpointWriteOptions options;
  options.progress = [&](int64_t written, int64_t total) {
    seen.push_back(written);
    total_seen = total;
  };
  ASSERT_TRUE(WriteCheckpoint(dir + "/p.lasgd", c, options).ok());
  ASSERT_EQ(seen.size(), c.tensors.size());
  EXPECT_EQ(seen.back(), total_seen);
  int64_t expected_total = 0;
  for (const auto& [name, t] : c.tensors) expected_total += static_cast<int64_t>(t.nbytes());
  EXPECT_EQ(total_seen, expected_total);
}

TEST(CheckpointTest, ClearErrorsForBadFiles) {
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  std::string path = dir + "/c.lasgd";
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  const std::string good = ReadBytes(path);

  auto missing = ReadCheckpoint(dir + "/nope.lasgd");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "nope.lasgd")) << missing.status();
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  std::string bad = dir + "/bad.lasgd";
  WriteBytes(bad, "");
  auto empty = ReadCheckpoint(bad);
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(absl::StrContains(empty.status().message(), "bad.lasgd")) << empty.status();
  EXPECT_TRUE(absl::StrContains(empty.status().message(), "empty")) << empty.status();

  WriteBytes(bad, "PK\x03\x04 this is a zip file, not a checkpoint at all");
  auto magic = ReadCheckpoint(bad);
  ASSERT_FALSE(magic.ok());
  EXPECT_TRUE(absl::StrContains(magic.status().message(), "wrong magic")) << magic.status();

  WriteBytes(bad, good.substr(0, good.size() - 10));
  auto truncated = ReadCheckpoint(bad);
  ASSERT_FALSE(truncated.ok());
  EXPECT_TRUE(absl::StrContains(truncated.status().message(), "truncated")) << truncated.status();
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);

  // A flipped bit in the last tensor's data: the error names that tensor.
  std::string flipped = good;
  flipped[flipped.size() - 1] ^= 0x10;
  WriteBytes(bad, flipped);
  auto crc = ReadCheckpoint(bad);
  ASSERT_FALSE(crc.ok());
  EXPECT_TRUE(absl::StrContains(crc.status().message(), "CRC32 mismatch")) << crc.status();
  EXPECT_TRUE(absl::StrContains(crc.status().message(), "tensor 'steps_i64'")) << crc.status();

  // A flipped bit in the header (a tensor name).
  std::string header_flip = good;
  size_t at = header_flip.find("conv1.weight");
  ASSERT_NE(at, std::string::npos);
  header_flip[at] ^= 0x01;
  WriteBytes(bad, header_flip);
  auto header = ReadCheckpoint(bad);
  ASSERT_FALSE(header.ok());
  EXPECT_TRUE(absl::StrContains(header.status().message(), "corrupt header")) << header.status();

  // A newer format version, with the header CRC recomputed so that the
  // version is what fails.
  std::string newer = good;
  uint32_t version = 2;
  uint64_t header_length;
  std::memcpy(&newer[8], &version, 4);
  std::memcpy(&header_length, &newer[16], 8);
  uLong crc32_value = crc32(0, Z_NULL, 0);
  crc32_value = crc32(crc32_value, reinterpret_cast<const Bytef*>(&newer[8]), 4);
  crc32_value = crc32(crc32_value, reinterpret_cast<const Bytef*>(&newer[16]), 8);
  crc32_value = crc32(crc32_value, reinterpret_cast<const Bytef*>(&newer[24]),
                      static_cast<uInt>(header_length));
  uint32_t stored = static_cast<uint32_t>(crc32_value);
  std::memcpy(&newer[12], &stored, 4);
  WriteBytes(bad, newer);
  auto unsupported = ReadCheckpoint(bad);
  ASSERT_FALSE(unsupported.ok());
  EXPECT_TRUE(absl::StrContains(unsupported.status().message(), "version 2 is not supported"))
      << unsupported.status();
}

TEST(CheckpointTest, FuzzedTruncationsAndBitFlipsNeverCrashOrPass) {
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  std::string path = dir + "/f.lasgd";
  ASSERT_TRUE(WriteCheckpoint(path, SampleCheckpoint()).ok());
  const std::string good = ReadBytes(path);
  std::mt19937 rng(1234);
  std::string bad = dir + "/fuzz.lasgd";
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = good;
    std::string what;
    if (trial % 3 == 0) {
      size_t keep = std::uniform_int_distribution<size_t>(0, good.size() - 1)(rng);
      bytes.resize(keep);
      what = absl::StrCat("truncated to ", keep);
    } else {
      size_t pos = std::uniform_int_distribution<size_t>(0, good.size() - 1)(rng);
      int bit = std::uniform_int_distribution<int>(0, 7)(rng);
      bytes[pos] ^= static_cast<char>(1 << bit);
      what = absl::StrCat("bit ", bit, " of byte ", pos, " flipped");
    }
    WriteBytes(bad, bytes);
    auto r = ReadCheckpoint(bad);
    if (r.ok()) {
      // Only a flip in the zero padding between tensors (covered by no CRC:
      // it carries nothing) may go unnoticed, and then nothing read differs.
      ExpectSameCheckpoint(SampleCheckpoint(), *r);
      continue;
    }
    EXPECT_TRUE(absl::StrContains(r.status().message(), "fuzz.lasgd"))
        << what << ": " << r.status();
  }
}

TEST(CheckpointTest, CheckCompatibleNamesFirstMismatch) {
  Checkpoint c = SampleCheckpoint();
  auto specs = SpecsOf(c.tensors);
  EXPECT_TRUE(CheckCompatible(c, specs).ok());

  auto wrong = specs;
  wrong["conv1.weight"].shape = {8, 3, 3, 3};
  wrong["steps_i64"].dtype = DataType::kInt32;
  auto st = CheckCompatible(c, wrong);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "'conv1.weight' is float32[4,3,3,3]")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "expects float32[8,3,3,3]")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "1 more")) << st;

  auto missing = specs;
  missing["fc.bias"] = {DataType::kFloat32, {10}};
  st = CheckCompatible(c, missing);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "no tensor 'fc.bias' (float32[10])")) << st;

  auto fewer = specs;
  fewer.erase("conv1.weight.momentum");
  st = CheckCompatible(c, fewer);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "'conv1.weight.momentum'")) << st;
  EXPECT_TRUE(CheckCompatible(c, fewer, /*allow_extra_tensors=*/true).ok());
}

Checkpoint StepCheckpoint(int64_t step) {
  Checkpoint c;
  c.tensors["w"] = Tensor::FromFloats({static_cast<float>(step)}, {1});
  return c;
}

TEST(CheckpointManagerTest, KeepsLastNAndLoadsLatest) {
  ScopedTempDir tmp;
  std::string dir = tmp.path() + "/nested/ckpts";  // created on first save
  CheckpointManager manager(dir, 2);
  auto none = manager.LoadLatest();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);

  for (int64_t step : {100, 200, 300, 1000}) {
    auto path = manager.Save(step, StepCheckpoint(step));
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(*path, manager.PathForStep(step));
  }
  // 1000 sorts numerically after 300 (no zero padding needed).
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"ckpt-1000.lasgd", "ckpt-300.lasgd"}));
  auto latest = manager.LoadLatest();
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step, 1000);
  EXPECT_TRUE(latest->warnings.empty());
  EXPECT_EQ(latest->checkpoint.metadata.at("step"), "1000");
  EXPECT_EQ(latest->checkpoint.tensors.at("w").ToDoubleVector(), (std::vector<double>{1000}));

  // A damaged newest checkpoint is skipped with a warning naming it.
  std::string newest = manager.PathForStep(1000);
  std::string bytes = ReadBytes(newest);
  bytes[bytes.size() - 1] ^= 0x40;
  WriteBytes(newest, bytes);
  latest = manager.LoadLatest();
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step, 300);
  ASSERT_EQ(latest->warnings.size(), 1u);
  EXPECT_TRUE(absl::StrContains(latest->warnings[0], "ckpt-1000.lasgd")) << latest->warnings[0];
  EXPECT_TRUE(absl::StrContains(latest->warnings[0], "CRC32")) << latest->warnings[0];

  // Resuming from 300 and saving 400 retires the abandoned 1000.
  ASSERT_TRUE(manager.Save(400, StepCheckpoint(400)).ok());
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"ckpt-300.lasgd", "ckpt-400.lasgd"}));

  // Every checkpoint damaged: DataLoss listing them.
  for (const char* name : {"ckpt-300.lasgd", "ckpt-400.lasgd"}) WriteBytes(dir + "/" + name, "x");
  auto all_bad = manager.LoadLatest();
  ASSERT_FALSE(all_bad.ok());
  EXPECT_EQ(all_bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(all_bad.status().message(), "ckpt-300.lasgd")) << all_bad.status();
  EXPECT_TRUE(absl::StrContains(all_bad.status().message(), "ckpt-400.lasgd")) << all_bad.status();
}

TEST(CheckpointManagerTest, SigkillMidWriteKeepsPreviousCheckpoint) {
  ScopedTempDir tmp;
  std::string dir = tmp.path();
  CheckpointManager manager(dir, 3);
  ASSERT_TRUE(manager.Save(1, StepCheckpoint(1)).ok());

  // ~96 MB in 24 tensors: the child stops after the first few tensors
  // (told through a pipe) and is killed there; a second run is killed after
  // a short random delay, wherever it is.
  Checkpoint big;
  for (int i = 0; i < 24; ++i)
    big.tensors[absl::StrCat("t", i)] = Tensor::Allocate(DataType::kFloat32, {1 << 20});
  for (int round = 0; round < 2; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      CheckpointWriteOptions options;
      options.progress = [&](int64_t written, int64_t total) {
        if (round == 0 && written * 4 >= total) {
          char c = 'w';
          (void)!write(fds[1], &c, 1);
          for (;;) pause();  // parked mid-write until the SIGKILL
        }
      };
      if (round == 1) {
        char c = 's';
        (void)!write(fds[1], &c, 1);
      }
      auto st = manager.Save(2, big, options);
      _exit(st.ok() ? 0 : 1);
    }
    close(fds[1]);
    char c = 0;
    ASSERT_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    if (round == 1) usleep(1000 * (std::random_device()() % 50));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (round == 0) {
      ASSERT_TRUE(WIFSIGNALED(status));
      // The partial file exists only under its temporary name.
      bool saw_temp = false;
      for (const auto& n : ListDir(dir)) saw_temp |= absl::StrContains(n, ".tmp-");
      EXPECT_TRUE(saw_temp);
      EXPECT_FALSE(ListDir(dir).size() > 1 && !saw_temp);
      struct stat st;
      EXPECT_NE(stat(manager.PathForStep(2).c_str(), &st), 0)
          << "a partial checkpoint appeared under the final name";
    }
    // Whatever the kill interrupted, the latest loadable checkpoint is whole:
    // step 1, or step 2 if the write finished before the kill.
    auto latest = manager.LoadLatest();
    ASSERT_TRUE(latest.ok()) << latest.status();
    EXPECT_TRUE(latest->warnings.empty());
    if (latest->step == 2) {
      EXPECT_EQ(round, 1);
      EXPECT_EQ(latest->checkpoint.tensors.size(), 24u);
    } else {
      EXPECT_EQ(latest->step, 1);
      EXPECT_EQ(latest->checkpoint.tensors.at("w").ToDoubleVector(), (std::vector<double>{1}));
    }
  }
  // The next save in this (live) process removes the dead writers' temporaries.
  ASSERT_TRUE(manager.Save(3, StepCheckpoint(3)).ok());
  for (const auto& n : ListDir(dir)) EXPECT_FALSE(absl::StrContains(n, ".tmp-")) << n;
}

}  // namespace
}  // namespace lasgd::runtime
