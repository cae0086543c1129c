#include "distributed/passes/algorithm.h"

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/collective_ops.h"
#include "graph/passes/passes.h"

namespace lasgd::distributed {

size_t PackedFloats(const graph::Graph& graph, const std::vector<std::string>& names) {
  size_t bytes = 0;
  for (const std::string& n : names) {
    auto it = graph.initializers.find(n);
    if (it == graph.initializers.end()) continue;
    bytes += (it->second.nbytes() + 63) / 64 * 64;
  }
  return bytes / sizeof(float);
}

// ---------------------------------------------------------------------------
// ProgramBuilder

ProgramBuilder::ProgramBuilder(std::string name, int64_t context_id) : context_id_(context_id) {
  graph_.name = std::move(name);
  graph_.opset_imports[""] = 17;
  graph_.opset_imports[kCollectiveDomain] = 1;
}

std::string ProgramBuilder::AddBuffer(const std::string& name, float* data, size_t floats) {
  graph_.initializers[name] =
      Tensor::View(DataType::kFloat32, {static_cast<int64_t>(floats)}, data);
  return name;
}

std::string ProgramBuilder::Emit(const std::string& op, std::vector<std::string> inputs,
                                 std::map<std::string, graph::Attribute> attributes) {
  graph::Node n;
  n.name = absl::StrCat(graph_.name, "/", op, "_", counter_++);
  n.op_type = op;
  n.domain = kCollectiveDomain;
  n.inputs = std::move(inputs);
  if (!last_token_.empty()) n.inputs.push_back(last_token_);
  n.attributes = std::move(attributes);
  n.attributes["context"] = graph::Attribute::Int(context_id_);
  n.outputs = {absl::StrCat(n.name, ":token")};
  last_token_ = n.outputs[0];
  graph_.nodes.push_back(std::move(n));
  return last_token_;
}

graph::Graph ProgramBuilder::Finish() {
  graph::ValueInfo out;
  out.name = last_token_;
  graph_.outputs = {out};
  // Types for the dump; the executor infers them again when it compiles.
  graph::ShapeBinding binding;
  (void)graph::InferShapesAndFoldConstants(graph_, binding);
  return std::move(graph_);
}

// ---------------------------------------------------------------------------
// AlgorithmBase

AlgorithmBase::AlgorithmBase(const runtime::DistributedConfig& config, Communicator* comm,
                             graph::TrainingProgram* program)
    : config_(config), comm_(comm), program_(program) {
  context_ = std::make_shared<DistributedContext>();
  context_->comm = comm;
  context_->rank = comm ? comm->rank() : 0;
  context_->size = comm ? comm->size() : 1;
  context_->sync_gradients = true;
  context_id_ = RegisterContext(context_);
  clock_ = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
}

AlgorithmBase::~AlgorithmBase() { UnregisterContext(context_id_); }

absl::Status AlgorithmBase::ValidateCommon() const {
  const std::string& a = config_.algorithm;
  if (config_.segment_steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[distributed] segment_steps = ", config_.segment_steps, ": must be at least 1"));
  }
  if (config_.segment_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("[distributed] segment_ms = ", config_.segment_ms, ": must be 0 or more"));
  }
  if (config_.warmup_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("[distributed] warmup_steps = ", config_.warmup_steps, ": must be 0 or more"));
  }
  if (config_.apply != "boundary" && config_.apply != "when_ready") {
    return absl::InvalidArgumentError(
        absl::StrCat("[distributed] apply = '", config_.apply, "': use boundary or when_ready"));
  }
  if (config_.average_optimizer_state && a != "lasgd" && a != "local") {
    return absl::InvalidArgumentError(absl::StrCat(
        "[distributed] average_optimizer_state = true needs algorithm lasgd or local, not ", a));
  }
  if (a == "sync" && config_.bucket_mb <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("[distributed] bucket_mb = ", config_.bucket_mb, ": must be positive"));
  }
  return absl::OkStatus();
}

void AlgorithmBase::SizeModelFromProgram() {
  model_ = ModelBuffers();
  model_.param_floats = PackedFloats(program_->graph, program_->parameters);
  model_.buffer_floats = PackedFloats(program_->graph, program_->buffers);
}

absl::Status AlgorithmBase::AddGradientBuckets() {
  ASSIGN_OR_RETURN(buckets_, InsertGradientAllReduce(*program_, context_id_, config_.bucket_mb));
  return absl::OkStatus();
}

float* AlgorithmBase::Buffer(const std::string& name, size_t floats) {
  if (!bound_) return nullptr;
  std::vector<float>& v = storage_[name];
  if (v.size() != floats) v.assign(floats, 0.f);
  return v.data();
}

void AlgorithmBase::SetProgram(const std::string& name, graph::Graph g) {
  for (auto& [n, existing] : programs_) {
    if (n == name) {
      existing = std::move(g);
      return;
    }
  }
  programs_.push_back({name, std::move(g)});
}

std::string AlgorithmBase::AddModelInputs(ProgramBuilder& b, bool with_buffers, std::string* params,
                                          std::string* buffers) {
  *params = b.AddBuffer("model/params", model_.params, model_.param_floats);
  *buffers = (with_buffers && model_.buffer_floats > 0)
                 ? b.AddBuffer("model/buffers", model_.buffers, model_.buffer_floats)
                 : "";
  return *params;
}

absl::Status AlgorithmBase::Bind(const ModelBuffers& buffers) {
  if (bound_) return absl::FailedPreconditionError("DataParallel::Bind called twice");
  if (buffers.params == nullptr || buffers.param_floats == 0)
    return absl::InvalidArgumentError("DataParallel::Bind: no parameters");
  if (buffers.buffer_floats > 0 && buffers.buffers == nullptr)
    return absl::InvalidArgumentError("DataParallel::Bind: buffer_floats without buffers");
  const size_t expected = PackedFloats(program_->graph, program_->parameters);
  if (buffers.param_floats * sizeof(float) + 64 * program_->parameters.size() <
      expected * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat("DataParallel::Bind: ", buffers.param_floats,
                                                   " parameter floats cannot hold the program's ",
                                                   program_->parameters.size(), " parameters (",
                                                   expected, " floats packed)"));
  }
  model_ = buffers;
  context_->model = buffers;
  bound_ = true;
  RETURN_IF_ERROR_CTX(BuildPrograms(), "while building the ", config_.algorithm, " programs");
  executors_.clear();
  for (const auto& [name, g] : programs_) {
    runtime::CompileOptions options;
    // Every initializer is a live buffer the nodes update.
    for (const auto& [init, t] : g.initializers) options.mutable_initializers.insert(init);
    options.pipeline.simplify = false;
    options.pipeline.fuse = false;
    auto ex = runtime::Executor::Create(g, options);
    if (!ex.ok())
      return WithContext(ex.status(), absl::StrCat("while compiling program '", name, "'"));
    executors_[name] = std::move(*ex);
  }
  segment_origin_s_ = Now();
  return absl::OkStatus();
}

absl::Status AlgorithmBase::BroadcastModel() {
  if (!bound_) return absl::FailedPreconditionError("BroadcastModel before Bind");
  if (comm_ != nullptr && comm_->size() > 1) {
    RETURN_IF_ERROR_CTX(comm_->Broadcast(model_.params, model_.param_floats * sizeof(float), 0),
                        "while broadcasting rank 0's parameters");
    if (model_.buffer_floats > 0) {
      RETURN_IF_ERROR_CTX(comm_->Broadcast(model_.buffers, model_.buffer_floats * sizeof(float), 0),
                          "while broadcasting rank 0's buffers");
    }
  }
  segment_origin_s_ = Now();
  return absl::OkStatus();
}

absl::Status AlgorithmBase::RunProgram(const std::string& name) {
  auto it = executors_.find(name);
  if (it == executors_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("program '", name, "' is not compiled (was DataParallel::Bind called?)"));
  }
  return it->second->Run({}).status();
}

absl::Status AlgorithmBase::RunAveragingProgram(const std::string& name) {
  context_->progress_out = MyProgress();
  RETURN_IF_ERROR(RunProgram(name));
  CommitProgress();
  return absl::OkStatus();
}

absl::Status AlgorithmBase::Finish() {
  if (!bound()) return absl::FailedPreconditionError("Finish before Bind");
  RETURN_IF_ERROR_CTX(RunAveragingProgram("finish"), "while averaging the final model");
  return absl::OkStatus();
}

absl::StatusOr<bool> AlgorithmBase::LatestAverage(float* params, float* buffers) {
  if (!bound()) return absl::FailedPreconditionError("LatestAverage before Bind");
  if (average_ == nullptr) return false;
  RETURN_IF_ERROR_CTX(CompleteAverageInFlight(), "while waiting for the average in flight");
  // The average buffer holds an average once one has arrived; before that it
  // holds zeros or a snapshot on its way.
  if (context_->averages_applied == 0 && !context_->arrived_unapplied) return false;
  const float* a = average_ + static_cast<size_t>(context_->size) * kProgressSlots;
  std::memcpy(params, a, model_.param_floats * sizeof(float));
  if (average_has_buffers_ && model_.buffer_floats > 0 && buffers != nullptr)
    std::memcpy(buffers, a + model_.param_floats, model_.buffer_floats * sizeof(float));
  return true;
}

bool AlgorithmBase::RecordStep(const StepReport& step) {
  steps_ = step.step;
  samples_ += step.samples;
  compute_s_ += step.compute_s;
  const bool warmup = step.step <= config_.warmup_steps;
  if (config_.algorithm != "sync" && context_->sync_gradients &&
      step.step >= config_.warmup_steps) {
    // The next step is local: the bucket nodes pass gradients through, and
    // wall-time segments count from here.
    context_->sync_gradients = false;
    if (config_.warmup_steps > 0) segment_origin_s_ = Now();
  }
  return warmup;
}

bool AlgorithmBase::BoundaryDue(const StepReport& step) const {
  if (step.step <= config_.warmup_steps) return false;
  if (config_.segment_ms > 0) {
    // Average number k (1-based) starts at this rank's first step after k*T.
    const double elapsed = Now() - segment_origin_s_;
    return elapsed * 1e3 >=
           static_cast<double>(context_->averages_started + 1) * config_.segment_ms;
  }
  return (step.step - config_.warmup_steps) % config_.segment_steps == 0;
}

RankProgress AlgorithmBase::MyProgress() const {
  RankProgress p;
  p.samples = samples_;
  p.steps = steps_;
  p.compute_s = compute_s_;
  p.comm_s = comm_ ? comm_->stats().comm_s : 0;
  p.wait_s = context_->wait_s;
  return p;
}

void AlgorithmBase::CommitProgress() {
  if (!context_->progress_in.empty()) committed_ = context_->progress_in;
}

int64_t AlgorithmBase::global_samples() const {
  if (config_.segment_ms > 0) {
    int64_t total = 0;
    for (const RankProgress& p : committed_) total += p.samples;
    return total;
  }
  return samples_ * context_->size;
}

bool AlgorithmBase::ShouldStop(int64_t total_samples) const {
  return config_.segment_ms > 0 && global_samples() >= total_samples;
}

absl::StatusOr<std::vector<RankTiming>> AlgorithmBase::GatherTimings() {
  const int size = context_->size;
  std::vector<RankProgress> all;
  if (config_.segment_ms > 0) {
    // Ranks reach their epoch ends at different steps: read what the last
    // average carried rather than meet in a collective (every rank then
    // reports the same table, as of that average).
    all = committed_;
    all.resize(size);
  } else if (comm_ != nullptr && size > 1) {
    std::vector<float> slots(static_cast<size_t>(size) * kProgressSlots);
    EncodeProgress(MyProgress(), context_->rank, size, slots.data());
    RETURN_IF_ERROR_CTX(comm_->AllReduce(slots.data(), slots.size(), ReduceOp::kMean),
                        "while gathering every rank's timings");
    all = DecodeProgress(slots.data(), size);
  } else {
    all.resize(size);
    all[context_->rank] = MyProgress();
  }
  std::vector<RankTiming> out(size);
  for (int r = 0; r < size; ++r) {
    out[r].rank = r;
    out[r].steps = all[r].steps;
    out[r].samples = all[r].samples;
    out[r].compute_s = all[r].compute_s;
    out[r].comm_s = all[r].comm_s;
    out[r].wait_s = all[r].wait_s;
  }
  return out;
}

std::vector<std::pair<std::string, const graph::Graph*>> AlgorithmBase::programs() const {
  std::vector<std::pair<std::string, const graph::Graph*>> out;
  for (const auto& [name, g] : programs_) out.push_back({name, &g});
  return out;
}

}  // namespace lasgd::distributed
