// The "distributed" pass as a graph rewrite: which gradients go into which
// bucket, where the AllReduceStart/Wait nodes land in the compiled train_step
// (Start right after the bucket's last gradient producer, so the All-Reduce
// overlaps the rest of backward; Waits after every Start; the optimizer after
// every Wait), clipping reading the averaged gradients, the boundary
// programs of lasgd/local/sgp, and configuration errors.
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "common/status.h"
#include "distributed/data_parallel.h"
#include "distributed/passes/algorithm.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "runtime/executor.h"
#include "tests/e2e/fixture_util.h"

namespace lasgd {
namespace {

const std::string kFixtures = std::string(LASGD_SOURCE_DIR) + "/tests/fixtures/train/";

struct Built {
  graph::TrainingProgram program;
  std::unique_ptr<distributed::DataParallel> dp;
  distributed::AlgorithmBase& algorithm() {
    return *static_cast<distributed::AlgorithmBase*>(dp.get());
  }
};

runtime::TrainConfig Config(const std::string& fixture, const std::string& algorithm) {
  runtime::TrainConfig c;
  c.model.path = kFixtures + fixture + "/model.onnx";
  c.optimizer.type = "sgd";
  c.optimizer.lr = 0.1;
  c.optimizer.momentum = 0.9;
  c.distributed.algorithm = algorithm;
  return c;
}

absl::StatusOr<Built> Build(const runtime::TrainConfig& config, int64_t batch = 4) {
  ASSIGN_OR_RETURN(graph::Graph forward, importers::LoadOnnxModel(config.model.path));
  Built b;
  ASSIGN_OR_RETURN(b.program, graph::BuildTrainingProgram(forward, config, batch));
  ASSIGN_OR_RETURN(b.dp,
                   distributed::DataParallel::Create(config.distributed, nullptr, &b.program));
  return b;
}

size_t FloatsOf(const graph::Graph& g, const std::string& v) {
  auto it = g.initializers.find(v);
  if (it != g.initializers.end()) return it->second.num_elements();
  const graph::ValueInfo* vi = g.FindValueInfo(v);
  return vi ? NumElements(vi->shape) : 0;
}

TEST(GradientBuckets, CoverEveryGradientOnceAndRespectTheSize) {
  for (double mb : {1e-9, 0.001, 0.004, 0.01, 100.0}) {
    runtime::TrainConfig config = Config("cnn_op17", "sync");
    config.distributed.bucket_mb = mb;
    auto built = Build(config);
    ASSERT_TRUE(built.ok()) << built.status();
    const auto& buckets = built->algorithm().gradient_buckets();
    const graph::Graph& g = built->program.graph;
    std::multiset<std::string> grads;
    const double threshold = mb * 1024 * 1024;
    for (size_t b = 0; b < buckets.size(); ++b) {
      size_t floats = 0;
      for (const std::string& v : buckets[b].gradients) {
        grads.insert(v);
        floats += FloatsOf(g, v);
      }
      EXPECT_EQ(floats, buckets[b].floats);
      if (b + 1 < buckets.size()) {
        // Full, and not by more than its last gradient (greedy filling).
        const double bytes = 4.0 * floats;
        const double last = 4.0 * FloatsOf(g, buckets[b].gradients.back());
        EXPECT_GE(bytes, threshold) << "bucket_mb " << mb << " bucket " << b;
        EXPECT_LT(bytes - last, threshold) << "bucket_mb " << mb << " bucket " << b;
      }
    }
    EXPECT_EQ(grads.size(), built->program.parameters.size()) << "bucket_mb " << mb;
    EXPECT_EQ(std::set<std::string>(grads.begin(), grads.end()).size(), grads.size());
    if (mb == 100.0) EXPECT_EQ(buckets.size(), 1u);
    if (mb == 1e-9) EXPECT_EQ(buckets.size(), built->program.parameters.size());
  }
}

// Node order as the executor will run it.
struct CompiledOrder {
  std::vector<graph::Node> nodes;
  std::map<std::string, size_t> producer;
};

CompiledOrder Compile(const graph::Graph& g) {
  runtime::CompileOptions options;
  auto ex = runtime::Executor::Create(g, options);
  EXPECT_TRUE(ex.ok()) << ex.status();
  CompiledOrder c;
  if (!ex.ok()) return c;
  c.nodes = (*ex)->graph().nodes;
  for (size_t i = 0; i < c.nodes.size(); ++i)
    for (const std::string& o : c.nodes[i].outputs) c.producer[o] = i;
  return c;
}

void CheckNodeOrder(const std::string& fixture, double bucket_mb) {
  runtime::TrainConfig config = Config(fixture, "sync");
  config.distributed.bucket_mb = bucket_mb;
  auto built = Build(config);
  ASSERT_TRUE(built.ok()) << built.status();
  CompiledOrder c = Compile(built->program.graph);
  ASSERT_FALSE(c.nodes.empty());
  std::vector<size_t> starts, waits;
  size_t optimizer = 0;
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    if (c.nodes[i].op_type == "AllReduceStart") starts.push_back(i);
    if (c.nodes[i].op_type == "AllReduceWait") waits.push_back(i);
    if (c.nodes[i].op_type == "SGDUpdate") optimizer = i;
  }
  const auto& buckets = built->algorithm().gradient_buckets();
  ASSERT_EQ(starts.size(), buckets.size());
  ASSERT_EQ(waits.size(), buckets.size());
  for (size_t s : starts) {
    const graph::Node& start = c.nodes[s];
    // Right after the producer of its last gradient.
    size_t last = 0;
    for (const std::string& in : start.inputs) {
      ASSERT_TRUE(c.producer.count(in)) << in;
      last = std::max(last, c.producer.at(in));
    }
    // (Other buckets' Starts after the same producer may come between: a
    // BatchNormGrad node yields two parameter gradients.)
    ASSERT_LT(last, s);
    for (size_t i = last + 1; i < s; ++i) {
      EXPECT_EQ(c.nodes[i].op_type, "AllReduceStart")
          << start.name << " runs at " << s << ", its last gradient (from '" << c.nodes[last].name
          << "') at " << last << ", and '" << c.nodes[i].name << "' between";
    }
  }
  // Buckets hold the gradients in the order backward produces them (the
  // last layers' first): every gradient of bucket b exists before any of
  // bucket b + 1 (or at the same node).
  for (size_t b = 0; b + 1 < buckets.size(); ++b) {
    size_t latest = 0, earliest = c.nodes.size();
    for (const std::string& v : buckets[b].gradients) latest = std::max(latest, c.producer.at(v));
    for (const std::string& v : buckets[b + 1].gradients)
      earliest = std::min(earliest, c.producer.at(v));
    EXPECT_LE(latest, earliest) << "bucket " << b;  // equal: one BatchNormGrad, two buckets
  }
  // The classifier's gradients come first in backward, so in bucket 0.
  bool classifier_first = false;
  for (const std::string& v : buckets.front().gradients)
    classifier_first = classifier_first || v.find("classifier") != std::string::npos ||
                       v.find("Gemm") != std::string::npos;
  EXPECT_TRUE(classifier_first) << buckets.front().gradients.front();
  // Every Wait after the last Start; the optimizer after every Wait.
  for (size_t w : waits) EXPECT_GT(w, starts.back());
  EXPECT_GT(optimizer, waits.back());
  // Buckets launch in backward's order: bucket 0 first.
  for (size_t b = 0; b + 1 < starts.size(); ++b)
    EXPECT_EQ(c.nodes[starts[b]].attributes.at("bucket").i, static_cast<int64_t>(b));
  if (buckets.size() > 1) {
    // Overlap: backward work remains after the first bucket is launched.
    size_t backward_after = 0;
    for (size_t i = starts.front() + 1; i < waits.front(); ++i)
      if (c.nodes[i].domain != "com.lasgd" || c.nodes[i].op_type.find("Grad") != std::string::npos)
        ++backward_after;
    EXPECT_GT(backward_after, 0u);
  }
}

TEST(GradientBuckets, StartFollowsItsLastGradientMlp) { CheckNodeOrder("mlp", 1e-9); }
TEST(GradientBuckets, StartFollowsItsLastGradientCnn) { CheckNodeOrder("cnn_op17", 1e-9); }
TEST(GradientBuckets, StartFollowsItsLastGradientCnnTwoBuckets) {
  CheckNodeOrder("cnn_op17", 0.004);
}

TEST(GradientBuckets, ClippingReadsTheAveragedGradients) {
  runtime::TrainConfig config = Config("mlp", "sync");
  config.optimizer.clip_grad_norm = 1.0;
  config.distributed.bucket_mb = 1e-9;
  auto built = Build(config);
  ASSERT_TRUE(built.ok()) << built.status();
  std::set<std::string> averaged;
  for (const graph::Node& n : built->program.graph.nodes)
    if (n.op_type == "AllReduceWait") averaged.insert(n.outputs.begin(), n.outputs.end());
  int clips = 0;
  for (const graph::Node& n : built->program.graph.nodes) {
    if (n.op_type != "ClipGradNorm") continue;
    ++clips;
    for (size_t i = 1; i < n.inputs.size(); ++i)
      EXPECT_TRUE(averaged.count(n.inputs[i])) << "clip reads '" << n.inputs[i] << "'";
  }
  EXPECT_EQ(clips, 1);
}

TEST(GradientBuckets, OnlyWarmupInsertsThemIntoLasgd) {
  for (int64_t warmup : {0, 5}) {
    runtime::TrainConfig config = Config("mlp", "lasgd");
    config.distributed.warmup_steps = warmup;
    auto built = Build(config);
    ASSERT_TRUE(built.ok()) << built.status();
    int starts = 0;
    for (const graph::Node& n : built->program.graph.nodes) starts += n.op_type == "AllReduceStart";
    EXPECT_EQ(starts > 0, warmup > 0) << "warmup_steps " << warmup;
  }
}

std::vector<std::string> OpSequence(const graph::Graph& g) {
  std::vector<std::string> ops;
  for (const graph::Node& n : g.nodes) ops.push_back(n.op_type);
  return ops;
}

const graph::Graph* FindProgram(distributed::DataParallel& dp, const std::string& name) {
  for (const auto& [n, g] : dp.programs())
    if (n == name) return g;
  return nullptr;
}

TEST(BoundaryPrograms, LasgdSegmentBoundaryWaitsMergesSnapshotsStarts) {
  for (const char* apply : {"boundary", "when_ready"}) {
    runtime::TrainConfig config = Config("cnn_op17", "lasgd");
    config.distributed.apply = apply;
    auto built = Build(config);
    ASSERT_TRUE(built.ok()) << built.status();
    const graph::Graph* boundary = FindProgram(*built->dp, "segment_boundary");
    ASSERT_NE(boundary, nullptr);
    EXPECT_EQ(OpSequence(*boundary), (std::vector<std::string>{"AverageWait", "ApplyAverage",
                                                               "Snapshot", "AverageStart"}));
    // One All-Reduce of the parameters and BN statistics, as packed.
    const size_t model =
        distributed::PackedFloats(built->program.graph, built->program.parameters) +
        distributed::PackedFloats(built->program.graph, built->program.buffers);
    EXPECT_EQ(boundary->nodes.back().attributes.at("model_floats").i, static_cast<int64_t>(model));
    const graph::Graph* finish = FindProgram(*built->dp, "finish");
    ASSERT_NE(finish, nullptr);
    EXPECT_EQ(OpSequence(*finish),
              (std::vector<std::string>{"AverageWait", "ApplyAverage", "AverageBlocking"}));
    EXPECT_EQ(FindProgram(*built->dp, "apply_average") != nullptr,
              std::string(apply) == "when_ready");
  }
}

TEST(BoundaryPrograms, WithoutBufferAveragingTheSegmentLeavesBnAlone) {
  runtime::TrainConfig config = Config("cnn_op17", "lasgd");
  config.distributed.average_buffers = false;
  auto built = Build(config);
  ASSERT_TRUE(built.ok()) << built.status();
  const graph::Graph* boundary = FindProgram(*built->dp, "segment_boundary");
  ASSERT_NE(boundary, nullptr);
  EXPECT_FALSE(boundary->initializers.count("model/buffers"));
  // The end still averages them: one model everywhere.
  const graph::Graph* finish = FindProgram(*built->dp, "finish");
  ASSERT_NE(finish, nullptr);
  EXPECT_TRUE(finish->initializers.count("model/buffers"));
}

TEST(BoundaryPrograms, LocalAndSgp) {
  auto local = Build(Config("mlp", "local"));
  ASSERT_TRUE(local.ok()) << local.status();
  const graph::Graph* avg = FindProgram(*local->dp, "segment_boundary");
  ASSERT_NE(avg, nullptr);
  EXPECT_EQ(OpSequence(*avg), (std::vector<std::string>{"AverageBlocking"}));
  auto sgp = Build(Config("mlp", "sgp"));
  ASSERT_TRUE(sgp.ok()) << sgp.status();
  const graph::Graph* gossip = FindProgram(*sgp->dp, "gossip_step");
  ASSERT_NE(gossip, nullptr);
  EXPECT_EQ(OpSequence(*gossip), (std::vector<std::string>{"GossipMerge", "GossipSend"}));
}

TEST(DistributedConfigErrors, NameTheKeyAndTheChoices) {
  struct Case {
    std::function<void(runtime::DistributedConfig&)> set;
    std::string expect;
  };
  std::vector<Case> cases = {
      {[](auto& d) { d.algorithm = "gossip"; }, "none, lasgd, sync, local or sgp"},
      {[](auto& d) { d.segment_steps = 0; }, "segment_steps"},
      {[](auto& d) { d.apply = "later"; }, "boundary or when_ready"},
      {[](auto& d) { d.warmup_steps = -1; }, "warmup_steps"},
      {[](auto& d) {
         d.algorithm = "sync";
         d.bucket_mb = 0;
       },
       "bucket_mb"},
      {[](auto& d) {
         d.algorithm = "sgp";
         d.average_optimizer_state = true;
       },
       "average_optimizer_state = true needs algorithm lasgd or local, not sgp"},
  };
  for (const Case& c : cases) {
    runtime::TrainConfig config = Config("mlp", "lasgd");
    c.set(config.distributed);
    auto built = Build(config);
    ASSERT_FALSE(built.ok()) << c.expect;
    EXPECT_NE(built.status().message().find(c.expect), std::string::npos) << built.status();
  }
}

TEST(DistributedConfigErrors, BindBeforeRunAndTwice) {
  auto built = Build(Config("mlp", "lasgd"));
  ASSERT_TRUE(built.ok()) << built.status();
  distributed::StepReport step;
  step.step = 1;
  EXPECT_FALSE(built->dp->AfterStep(step).ok());
  distributed::ModelBuffers none;
  EXPECT_FALSE(built->dp->Bind(none).ok());
}

TEST(LasgdInspect, DumpsTrainStepAfterTheDistributedPassAndTheBoundaryPrograms) {
  const std::string config = std::string(LASGD_BINARY_DIR) + "/distributed_pass_test.toml";
  {
    std::ofstream out(config);
    out << "[model]\npath = \"" << kFixtures << "cnn_op17/model.onnx\"\n"
        << "[data]\ntrain = \"npz:" << kFixtures << "cnn_op17/data.npz\"\nbatch_size = 4\n"
        << "[distributed]\nalgorithm = \"lasgd\"\nwarmup_steps = 2\n";
  }
  const std::string tool = std::string(LASGD_BINARY_DIR) + "/bin/lasgd-inspect";
  auto r = testing::RunCommand(tool + " --config=" + testing::ShellQuote(config) +
                               " --dump-after=distributed");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expect :
       {"# after phase 'distributed': train_step", "com.lasgd.AllReduceStart",
        "com.lasgd.AllReduceWait", "# after phase 'distributed': segment_boundary",
        "com.lasgd.Snapshot", "# after phase 'distributed': finish", "warm-up 2"}) {
    EXPECT_NE(r.output.find(expect), std::string::npos) << expect << " in\n" << r.output;
  }
  // Before the pass: no collective in train_step.
  r = testing::RunCommand(tool + " --config=" + testing::ShellQuote(config) +
                          " --dump-after=training");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("AllReduce"), std::string::npos);
  EXPECT_NE(r.output.find("SGDUpdate"), std::string::npos);
  // Inference phases are for models, not training configs.
  r = testing::RunCommand(tool + " --config=" + testing::ShellQuote(config) + " --dump-after=fuse");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("training, distributed"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lasgd
