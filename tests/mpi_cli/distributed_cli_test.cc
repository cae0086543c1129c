// `mpirun -np N lasgd-run train CONFIG` end to end: a LASGD job trains and
// only rank 0 writes; a rank killed (SIGKILL) or hung (SIGSTOP) mid-run ends
// the whole job with a non-zero exit within the timeout, naming the rank; a
// run resumes from its checkpoint on another number of ranks. These tests
// launch mpirun themselves (ctest label `mpi`, not run under mpirun).
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/fixture_util.h"

namespace lasgd {
namespace {

using testing::RunCommand;
using testing::ShellQuote;

const std::string kRun = std::string(LASGD_BINARY_DIR) + "/bin/lasgd-run";
const std::string kModel =
    std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/cnn_op17/model.onnx";

std::string WorkDir(const std::string& name) {
  std::string dir = std::string(LASGD_BINARY_DIR) + "/distributed_cli/" + name;
  RunCommand("rm -rf " + ShellQuote(dir) + " && mkdir -p " + ShellQuote(dir));
  return dir;
}

// A small CNN on synthetic 3x8x8 images: 512 training samples, 128 test.
std::string WriteConfig(const std::string& dir, const std::string& distributed) {
  std::string path = dir + "/config.toml";
  std::ofstream out(path);
  out << "[model]\npath = \"" << kModel << "\"\n"
      << "[data]\ntrain = \"synthetic:n=512,classes=10,shape=3x8x8,seed=3\"\n"
      << "test = \"synthetic:n=128,classes=10,shape=3x8x8,seed=3,split=test\"\n"
      << "batch_size = 16\nseed = 5\n"
      << "[optimizer]\ntype = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n"
      << "[train]\nepochs = 2\nthreads = 1\nprogress = false\nlog_every_steps = 4\n"
      << "out_dir = \"" << dir << "/out\"\nexport = \"model.onnx\"\n"
      << "[distributed]\n"
      << distributed;
  return path;
}

struct Launch {
  testing::CommandResult result;
  double seconds = 0;
};

// mpirun under `timeout`, so that a hang fails the test instead of blocking it.
Launch MpiRun(int ranks, const std::string& args, int timeout_s = 240) {
  auto start = std::chrono::steady_clock::now();
  Launch l;
  l.result =
      RunCommand(absl::StrCat("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout ",
                              timeout_s, " mpirun --bind-to none --oversubscribe -np ", ranks, " ",
                              ShellQuote(kRun), " train ", args));
  l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return l;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int CountOccurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST(DistributedCli, LasgdJobTrainsAndOnlyRankZeroWrites) {
  std::string dir = WorkDir("lasgd");
  std::string config = WriteConfig(dir, "algorithm = \"lasgd\"\nsegment_steps = 4\n");
  Launch l = MpiRun(2, ShellQuote(config));
  ASSERT_EQ(l.result.exit_code, 0) << l.result.output;
  // One banner, one result line: the other rank is silent.
  EXPECT_EQ(CountOccurrences(l.result.output, "distributed: 2 ranks"), 1) << l.result.output;
  EXPECT_EQ(CountOccurrences(l.result.output, "final test accuracy"), 1) << l.result.output;
  std::string metrics = ReadFile(dir + "/out/metrics.jsonl");
  EXPECT_EQ(CountOccurrences(metrics, "\"epoch\""), 2) << metrics;
  EXPECT_EQ(CountOccurrences(metrics, "\"world_size\": 2"), 2) << metrics;
  // Per-rank timing of both ranks in every line: 512 samples / 2 ranks / 16 = 16 steps per
  // epoch on each rank.
  EXPECT_EQ(CountOccurrences(metrics, "\"rank\": 1"), 2) << metrics;
  EXPECT_NE(metrics.find("\"steps\": 32"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"wait_s\""), std::string::npos) << metrics;
  std::ifstream exported(dir + "/out/model.onnx");
  EXPECT_TRUE(exported.good()) << "rank 0 did not export";
}

TEST(DistributedCli, SigkillOfOneRankEndsTheJobNonZeroWithinTheTimeout) {
  std::string dir = WorkDir("kill");
  std::string config =
      WriteConfig(dir,
                  "algorithm = \"lasgd\"\nsegment_steps = 2\ntimeout_s = 20\nfault = \"kill\"\n"
                  "fault_rank = 1\nfault_step = 5\n");
  Launch l = MpiRun(2, ShellQuote(config) + " --set train.epochs=50");
  EXPECT_NE(l.result.exit_code, 0) << l.result.output;
  EXPECT_NE(l.result.exit_code, 124) << "the job hung until `timeout` killed it\n"
                                     << l.result.output;
  EXPECT_LT(l.seconds, 20 + 40) << l.result.output;
  EXPECT_NE(l.result.output.find("injecting fault 'kill'"), std::string::npos) << l.result.output;
}

TEST(DistributedCli, HungRankBecomesAnErrorNamingItWithinTheTimeout) {
  std::string dir = WorkDir("hang");
  std::string config =
      WriteConfig(dir,
                  "algorithm = \"lasgd\"\nsegment_steps = 2\ntimeout_s = 5\nfault = \"hang\"\n"
                  "fault_rank = 1\nfault_step = 5\n");
  Launch l = MpiRun(2, ShellQuote(config) + " --set train.epochs=50");
  EXPECT_NE(l.result.exit_code, 0) << l.result.output;
  EXPECT_NE(l.result.exit_code, 124) << "the job hung until `timeout` killed it\n"
                                     << l.result.output;
  EXPECT_LT(l.seconds, 5 + 40) << l.result.output;
  EXPECT_NE(l.result.output.find("rank 1"), std::string::npos) << l.result.output;
  EXPECT_NE(l.result.output.find("error"), std::string::npos) << l.result.output;
}

TEST(DistributedCli, ResumesOnAnotherNumberOfRanks) {
  std::string dir = WorkDir("resume");
  std::string config = WriteConfig(dir, "algorithm = \"lasgd\"\nsegment_steps = 4\n");
  Launch first = MpiRun(2, ShellQuote(config) + " --set train.epochs=1");
  ASSERT_EQ(first.result.exit_code, 0) << first.result.output;
  Launch second = MpiRun(4, ShellQuote(config) + " --set train.resume=auto");
  ASSERT_EQ(second.result.exit_code, 0) << second.result.output;
  // 1 epoch on 2 ranks = 16 steps; on 4 ranks an epoch is 8 steps, so the run
  // goes on from step 8 and ends at 16 after epoch 2.
  EXPECT_NE(second.result.output.find("at step 8"), std::string::npos) << second.result.output;
  std::string metrics = ReadFile(dir + "/out/metrics.jsonl");
  EXPECT_NE(metrics.find("\"epoch\": 2, \"step\": 16"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"world_size\": 4"), std::string::npos) << metrics;
}

TEST(DistributedCli, AlgorithmNoneUnderSeveralRanksIsAnError) {
  std::string dir = WorkDir("none");
  std::string config = WriteConfig(dir, "algorithm = \"none\"\n");
  Launch l = MpiRun(2, ShellQuote(config));
  EXPECT_NE(l.result.exit_code, 0) << l.result.output;
  EXPECT_NE(l.result.output.find("distributed.algorithm = \"none\""), std::string::npos)
      << l.result.output;
}

}  // namespace
}  // namespace lasgd
