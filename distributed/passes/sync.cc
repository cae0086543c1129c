// Synchronous SGD (DDP/Horovod): the gradients are averaged over all ranks
// every step, in buckets launched while backward still runs. Also the
// rewrite that gives lasgd and local SGD their synchronous warm-up.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "distributed/collective_ops.h"
#include "distributed/passes/algorithm.h"
#include "graph/passes/passes.h"

namespace lasgd::distributed {
namespace {

bool IsOptimizerNode(const graph::Node& n, const std::vector<std::string>& params) {
  if (n.domain != "com.lasgd" || (n.op_type != "SGDUpdate" && n.op_type != "AdamUpdate"))
    return false;
  if (n.inputs.size() < 2 + 2 * params.size()) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (n.inputs[2 + i] != params[i]) return false;
  return true;
}

size_t FloatsOf(const graph::Graph& g, const std::string& value) {
  auto init = g.initializers.find(value);
  if (init != g.initializers.end()) return static_cast<size_t>(init->second.num_elements());
  const graph::ValueInfo* vi = g.FindValueInfo(value);
  return vi && vi->IsStatic() ? static_cast<size_t>(NumElements(vi->shape)) : 0;
}

constexpr int kNoGradient = 1 << 20;

// How many nodes away each node is from producing a parameter gradient: 0
// for a node that outputs one (a weight gradient, BatchNormGrad), 1 for a
// node feeding such a node, ...; kNoGradient when it leads to none. `sinks`
// (the optimizer, clipping, the bucket nodes) are not followed.
std::vector<int> GradientDistance(const graph::Graph& g, const std::set<std::string>& gradients,
                                  const std::set<size_t>& sinks) {
  std::map<std::string, std::vector<size_t>> consumers;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const std::string& in : g.nodes[i].inputs)
      if (!in.empty()) consumers[in].push_back(i);
  std::vector<int> distance(g.nodes.size(), kNoGradient);
  // Reverse topological order: consumers are decided first (sinks, which
  // may sit anywhere, are never followed).
  for (size_t i = g.nodes.size(); i-- > 0;) {
    if (sinks.count(i)) continue;
    for (const std::string& out : g.nodes[i].outputs) {
      if (out.empty()) continue;
      if (gradients.count(out)) distance[i] = 0;
      for (size_t c : consumers[out])
        if (!sinks.count(c)) distance[i] = std::min(distance[i], distance[c] + 1);
    }
  }
  return distance;
}

// A topological order that, among the nodes ready at any point, runs the one
// with the lowest `priority` first (ties: the current order). The executor's
// sort is depth-first and, among nodes that become ready together, takes the
// lowest index first; so a node placed here right after its last producer
// runs right there. Ordering by the distance to a parameter gradient makes
// every weight gradient run as soon as its inputs exist, before the
// depth-first walk continues down the gradient with respect to activations
// (which would otherwise postpone every weight gradient, and so every
// All-Reduce, to the end of backward).
absl::StatusOr<std::vector<graph::Node>> PriorityOrder(const graph::Graph& g,
                                                       const std::vector<int>& priority) {
  const size_t n = g.nodes.size();
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < n; ++i)
    for (const std::string& out : g.nodes[i].outputs)
      if (!out.empty()) producer[out] = i;
  std::vector<int> pending(n, 0);
  std::vector<std::vector<size_t>> consumers(n);
  for (size_t i = 0; i < n; ++i) {
    for (const std::string& in : g.nodes[i].inputs) {
      auto it = producer.find(in);
      if (in.empty() || it == producer.end()) continue;
      ++pending[i];
      consumers[it->second].push_back(i);
    }
  }
  std::set<std::pair<int, size_t>> ready;  // (priority, index)
  for (size_t i = 0; i < n; ++i)
    if (pending[i] == 0) ready.insert({priority[i], i});
  std::vector<graph::Node> order;
  order.reserve(n);
  while (!ready.empty()) {
    const size_t i = ready.begin()->second;
    ready.erase(ready.begin());
    order.push_back(g.nodes[i]);
    for (size_t c : consumers[i])
      if (--pending[c] == 0) ready.insert({priority[c], c});
  }
  if (order.size() != n) return absl::InternalError("the training graph has a cycle");
  return order;
}

}  // namespace

absl::StatusOr<std::vector<GradientBucketInfo>> InsertGradientAllReduce(
    graph::TrainingProgram& program, int64_t context_id, double bucket_mb) {
  graph::Graph& g = program.graph;
  RETURN_IF_ERROR_CTX(g.SortTopologically(), "before inserting the gradient All-Reduce");
  const size_t n = program.parameters.size();
  int optimizer = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (IsOptimizerNode(g.nodes[i], program.parameters)) optimizer = static_cast<int>(i);
  if (optimizer < 0) {
    return absl::InvalidArgumentError(
        "the training program has no com.lasgd SGDUpdate/AdamUpdate node over its parameters; "
        "the gradient All-Reduce is inserted in front of one");
  }
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const std::string& out : g.nodes[i].outputs)
      if (!out.empty()) producer[out] = i;
  // The raw gradients: what the optimizer reads, or what clipping reads.
  int clip = -1;
  struct Grad {
    std::string value;
    int64_t position;  // index of the producing node, -1 for an initializer
    size_t param;
    size_t floats;
  };
  std::vector<Grad> grads;
  std::set<std::string> seen;
  for (size_t i = 0; i < n; ++i) {
    std::string v = g.nodes[optimizer].inputs[2 + n + i];
    auto p = producer.find(v);
    if (p != producer.end() && g.nodes[p->second].op_type == "ClipGradNorm") {
      const graph::Node& c = g.nodes[p->second];
      clip = static_cast<int>(p->second);
      for (size_t j = 0; j < c.outputs.size(); ++j)
        if (c.outputs[j] == v) v = c.inputs[1 + j];
      p = producer.find(v);
    }
    if (!seen.insert(v).second) continue;
    const size_t floats = FloatsOf(g, v);
    if (floats == 0) {
      return absl::InternalError(absl::StrCat("gradient '", v, "' of parameter '",
                                              program.parameters[i], "' has no static shape"));
    }
    grads.push_back({v, p == producer.end() ? -1 : static_cast<int64_t>(p->second), i, floats});
  }
  // Weight gradients as early as backward allows; then backward's order is
  // the order the gradients come into existence, and the first ones are sent
  // first.
  std::set<size_t> sinks = {static_cast<size_t>(optimizer)};
  if (clip >= 0) sinks.insert(static_cast<size_t>(clip));
  std::set<std::string> raw;
  for (const Grad& gr : grads) raw.insert(gr.value);
  {
    const std::string optimizer_name = g.nodes[optimizer].name;
    const std::string clip_name = clip >= 0 ? g.nodes[clip].name : "";
    ASSIGN_OR_RETURN(g.nodes, PriorityOrder(g, GradientDistance(g, raw, sinks)));
    producer.clear();
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (const std::string& out : g.nodes[i].outputs)
        if (!out.empty()) producer[out] = i;
      if (g.nodes[i].name == optimizer_name) optimizer = static_cast<int>(i);
      if (!clip_name.empty() && g.nodes[i].name == clip_name) clip = static_cast<int>(i);
    }
    for (Grad& gr : grads) {
      auto p = producer.find(gr.value);
      gr.position = p == producer.end() ? -1 : static_cast<int64_t>(p->second);
    }
  }
  std::stable_sort(grads.begin(), grads.end(),
                   [](const Grad& a, const Grad& b) { return a.position < b.position; });
  const double bucket_bytes = std::max(1.0, bucket_mb * 1024 * 1024);
  std::vector<std::vector<Grad>> buckets(1);
  double bytes = 0;
  for (const Grad& gr : grads) {
    if (bytes >= bucket_bytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(gr);
    bytes += static_cast<double>(gr.floats) * sizeof(float);
  }
  const size_t num_buckets = buckets.size();
  std::vector<GradientBucketInfo> info(num_buckets);
  std::vector<std::string> tokens(num_buckets);
  std::map<int64_t, std::vector<graph::Node>> starts_after;  // node position -> Starts
  std::map<std::string, std::string> averaged;
  std::vector<graph::Node> waits;
  for (size_t b = 0; b < num_buckets; ++b) {
    tokens[b] = absl::StrCat("distributed/bucket", b, ":token");
  }
  for (size_t b = 0; b < num_buckets; ++b) {
    graph::Node start;
    start.name = absl::StrCat("distributed/AllReduceStart_", b);
    start.op_type = "AllReduceStart";
    start.domain = kCollectiveDomain;
    start.attributes["context"] = graph::Attribute::Int(context_id);
    start.attributes["bucket"] = graph::Attribute::Int(static_cast<int64_t>(b));
    start.outputs = {tokens[b]};
    graph::Node wait;
    wait.name = absl::StrCat("distributed/AllReduceWait_", b);
    wait.op_type = "AllReduceWait";
    wait.domain = kCollectiveDomain;
    wait.attributes = start.attributes;
    wait.attributes["tokens"] = graph::Attribute::Int(static_cast<int64_t>(num_buckets));
    wait.inputs = tokens;
    int64_t last = -1;
    for (const Grad& gr : buckets[b]) {
      start.inputs.push_back(gr.value);
      wait.inputs.push_back(gr.value);
      const std::string avg = absl::StrCat(gr.value, "__avg");
      wait.outputs.push_back(avg);
      averaged[gr.value] = avg;
      last = std::max(last, gr.position);
      info[b].gradients.push_back(gr.value);
      info[b].floats += gr.floats;
    }
    info[b].start_node = start.name;
    info[b].wait_node = wait.name;
    starts_after[last].push_back(std::move(start));
    waits.push_back(std::move(wait));
  }
  // Only the optimizer and clipping read the averages: a gradient value may
  // also feed the rest of backward (a bias gradient can be the upstream
  // gradient itself), which must keep reading the local one.
  for (int consumer : {optimizer, clip}) {
    if (consumer < 0) continue;
    for (std::string& in : g.nodes[consumer].inputs) {
      auto it = averaged.find(in);
      if (it != averaged.end()) in = it->second;
    }
  }
  // Starts come first of all: each lands right after its bucket's last
  // gradient, so its All-Reduce overlaps the rest of backward.
  const size_t first_start = g.nodes.size();
  for (auto& [position, list] : starts_after)
    for (graph::Node& st : list) g.nodes.push_back(std::move(st));
  const size_t first_wait = g.nodes.size();
  for (graph::Node& w : waits) g.nodes.push_back(std::move(w));
  for (size_t i = first_start; i < g.nodes.size(); ++i) sinks.insert(i);
  std::vector<int> priority = GradientDistance(g, raw, sinks);
  for (size_t i = first_start; i < first_wait; ++i) priority[i] = -1;
  ASSIGN_OR_RETURN(g.nodes, PriorityOrder(g, priority));
  g.opset_imports[kCollectiveDomain] = 1;
  graph::ShapeBinding binding;
  RETURN_IF_ERROR_CTX(graph::InferShapesAndFoldConstants(g, binding),
                      "after inserting the gradient All-Reduce");
  return info;
}

namespace {

class SyncAlgorithm : public AlgorithmBase {
 public:
  using AlgorithmBase::AlgorithmBase;

  absl::Status Prepare() override {
    RETURN_IF_ERROR(ValidateCommon());
    RETURN_IF_ERROR(AddGradientBuckets());
    SizeModelFromProgram();
    return BuildPrograms();
  }

  absl::Status AfterStep(const StepReport& step) override {
    RecordStep(step);
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    if (!has_finish_) return absl::OkStatus();
    RETURN_IF_ERROR_CTX(RunAveragingProgram("finish"),
                        "while averaging the BN statistics at the end");
    return absl::OkStatus();
  }

  std::string Describe() const override {
    std::string sizes;
    for (const GradientBucketInfo& b : buckets_)
      absl::StrAppend(&sizes, sizes.empty() ? "" : ", ",
                      absl::StrFormat("%.2f", b.floats * 4.0 / (1 << 20)));
    return absl::StrCat("sync: gradient All-Reduce every step in ", buckets_.size(),
                        " bucket(s) of [", sizes, "] MiB (bucket_mb = ", config_.bucket_mb, "), ",
                        context_->size, " rank(s)");
  }

 protected:
  // Parameters stay identical on every rank (every rank applies the same
  // averaged gradients); BN running statistics do not, so the end averages
  // them.
  absl::Status BuildPrograms() override {
    has_finish_ = model_.buffer_floats > 0;
    if (!has_finish_) return absl::OkStatus();
    const size_t avg_floats =
        static_cast<size_t>(context_->size) * kProgressSlots + model_.buffer_floats;
    ProgramBuilder b("finish", context_id_);
    std::string buffers = b.AddBuffer("model/buffers", model_.buffers, model_.buffer_floats);
    std::string avg = b.AddBuffer("sync/average", Buffer("sync/average", avg_floats), avg_floats);
    b.Emit("AverageBlocking", {"", buffers, avg});
    SetProgram("finish", b.Finish());
    return absl::OkStatus();
  }

 private:
  bool has_finish_ = false;
};

}  // namespace

std::unique_ptr<AlgorithmBase> MakeSync(const runtime::DistributedConfig& config,
                                        Communicator* comm, graph::TrainingProgram* program) {
  return std::make_unique<SyncAlgorithm>(config, comm, program);
}

}  // namespace lasgd::distributed
