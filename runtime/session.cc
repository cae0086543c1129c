#include "runtime/session.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "importers/onnx_exporter.h"
#include "importers/onnx_importer.h"
#include "runtime/checkpoint.h"

namespace lasgd::runtime {
namespace {

using Clock = std::chrono::steady_clock;

Tensor ScalarFloat(double v) {
  Tensor t = Tensor::Allocate(DataType::kFloat32, {});
  t.SetFromDouble(0, v);
  return t;
}

Tensor ScalarInt64(int64_t v) {
  Tensor t = Tensor::Allocate(DataType::kInt64, {});
  t.data<int64_t>()[0] = v;
  return t;
}

// Micro-batch i of k of a batch tensor: a view of its rows.
Tensor MicroBatch(const Tensor& t, int64_t i, int64_t k) {
  Shape shape = t.shape();
  shape[0] /= k;
  const size_t bytes = t.nbytes() / k;
  return Tensor::Aliasing(t, i * bytes, t.dtype(), shape);
}

// Copies the named tensors into one contiguous buffer and makes each of them
// a view into it, so that averaging, snapshots and checkpoints are a few flat
// operations over the buffer rather than one per tensor.
Tensor PackContiguous(std::map<std::string, Tensor>& tensors,
                      const std::vector<std::string>& names) {
  size_t total = 0;
  for (const std::string& n : names) total += (tensors.at(n).nbytes() + 63) / 64 * 64;
  Tensor arena =
      Tensor::Allocate(DataType::kUint8, {static_cast<int64_t>(std::max<size_t>(total, 1))});
  size_t offset = 0;
  for (const std::string& n : names) {
    Tensor& t = tensors.at(n);
    Tensor view = Tensor::Aliasing(arena, offset, t.dtype(), t.shape());
    view.CopyFrom(t);
    t = view;
    offset += (t.nbytes() + 63) / 64 * 64;
  }
  return arena;
}

void MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
  }
}

std::string FormatDuration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  return s >= 3600 ? absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                   : absl::StrFormat("%d:%02d", s / 60, s % 60);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrainingSession>> TrainingSession::Create(
    TrainConfig config, distributed::Communicator* comm) {
  std::unique_ptr<TrainingSession> s(new TrainingSession());
  s->config_ = std::move(config);
  s->comm_ = comm;
  if (comm) {
    s->rank_ = comm->rank();
    s->world_size_ = comm->size();
  }
  RETURN_IF_ERROR(s->Init());
  return s;
}

absl::Status TrainingSession::Init() {
  ASSIGN_OR_RETURN(forward_, importers::LoadOnnxModel(config_.model.path));
  ASSIGN_OR_RETURN(train_data_, data::OpenDataset(config_.data.train, data::Split::kTrain));
  if (!config_.data.test.empty()) {
    ASSIGN_OR_RETURN(test_data_, data::OpenDataset(config_.data.test, data::Split::kTest));
  }
  const std::string& algorithm = config_.distributed.algorithm;
  if (world_size_ > 1 && algorithm == "none") {
    return absl::InvalidArgumentError(absl::StrCat(
        "launched with ", world_size_,
        " ranks but distributed.algorithm = \"none\"; choose lasgd, sync, local or sgp"));
  }
  const int64_t batch = config_.data.batch_size;
  auto program = BuildProgram(batch);
  if (!program.ok())
    return WithContext(program.status(), absl::StrCat("while building the training program of '",
                                                      config_.model.path, "'"));
  program_ = std::move(*program);
  RETURN_IF_ERROR(PackParameters());
  // Optimizer state in a second arena, but for what PackParameters put with
  // the parameters.
  std::vector<std::string> local_state;
  for (const std::string& n : program_.optimizer_state)
    if (std::find(averaged_state_.begin(), averaged_state_.end(), n) == averaged_state_.end())
      local_state.push_back(n);
  state_arena_ = PackContiguous(program_.graph.initializers, local_state);
  // Gradient accumulators (train.accumulate > 1) in a third, zeroed by one
  // memset after each optimizer step.
  accum_arena_ = PackContiguous(program_.graph.initializers, program_.grad_accumulators);
  RETURN_IF_ERROR(RunInitialization());

  const graph::ValueInfo* logits = program_.graph.FindValueInfo(program_.logits);
  if (config_.loss.type == "cross_entropy" && logits && logits->shape.size() == 2) {
    num_classes_ = config_.data.num_classes > 0 ? config_.data.num_classes : logits->shape[1];
    if (num_classes_ != logits->shape[1]) {
      return absl::InvalidArgumentError(absl::StrCat("data.num_classes = ", num_classes_,
                                                     " but the model's output '", program_.logits,
                                                     "' has ", logits->shape[1], " classes"));
    }
    RETURN_IF_ERROR(train_data_->Validate(num_classes_));
    if (test_data_) RETURN_IF_ERROR(test_data_->Validate(num_classes_));
  }
  // The data must fit the model's input.
  const graph::ValueInfo* input = program_.graph.FindValueInfo(program_.data_input);
  Shape expected(input->shape.begin() + 1, input->shape.end());
  if (train_data_->sample_shape() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.train '", train_data_->name(), "' has samples of shape ",
                     ShapeToString(train_data_->sample_shape()), " but model input '",
                     program_.data_input, "' takes ", ShapeToString(expected), " per sample"));
  }
  if (test_data_ && test_data_->sample_shape() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.test '", test_data_->name(), "' has samples of shape ",
        ShapeToString(test_data_->sample_shape()), "; the model takes ", ShapeToString(expected)));
  }
  // Without a communicator (not launched by mpirun) this is one process
  // training alone: the algorithm has nothing to average.
  if (algorithm != "none" && comm_ != nullptr) {
    // The "distributed" phase: sync puts gradient All-Reduce nodes into
    // train_step; the others build the programs run at segment boundaries.
    ASSIGN_OR_RETURN(data_parallel_,
                     distributed::DataParallel::Create(config_.distributed, comm_, &program_));
    straggler_ = std::make_unique<distributed::StragglerEmulator>(config_.distributed, rank_);
  }
  CompileOptions options;
  options.num_threads = static_cast<int>(config_.train.threads);
  // LASGD_PROFILE=1 prints where a training step spends its time at the end.
  options.profile = std::getenv("LASGD_PROFILE") != nullptr;
  // train_step reads the accumulators the accumulate program writes.
  for (const std::string& a : program_.grad_accumulators) options.mutable_initializers.insert(a);
  ASSIGN_OR_RETURN(train_, Executor::Create(program_.graph, options));
  if (program_.accumulate > 1) RETURN_IF_ERROR(CompileAccumulation(options));
  if (data_parallel_) RETURN_IF_ERROR(data_parallel_->Bind(model_buffers_));

  data::DataLoaderOptions lo;
  // One optimizer step's samples: Step() splits them into micro-batches.
  lo.batch_size = batch * program_.accumulate;
  lo.shuffle = config_.data.shuffle;
  lo.seed = config_.data.seed;
  lo.drop_last = true;  // the training program is compiled for one batch size
  lo.mean = config_.data.mean;
  lo.std = config_.data.std;
  lo.crop_padding = config_.data.random_crop ? static_cast<int>(config_.data.crop_padding) : 0;
  lo.horizontal_flip = config_.data.random_flip;
  lo.prefetch_batches = static_cast<int>(config_.data.prefetch);
  // Each rank reads its own equal share, so collectives always match.
  lo.rank = rank_;
  lo.world_size = world_size_;
  ASSIGN_OR_RETURN(train_loader_, data::DataLoader::Create(train_data_, lo));

  int64_t per_epoch = train_loader_->batches_per_epoch();
  total_steps_ = config_.train.steps > 0 ? config_.train.steps : config_.train.epochs * per_epoch;
  ASSIGN_OR_RETURN(LearningRateSchedule schedule,
                   LearningRateSchedule::Create(config_.schedule, config_.optimizer.lr, per_epoch,
                                                total_steps_, batch * program_.accumulate));
  schedule_ = std::make_unique<LearningRateSchedule>(std::move(schedule));
  return absl::OkStatus();
}

absl::Status TrainingSession::PackParameters() {
  // Every float initializer that is not a constant lives in one arena, in
  // the order trainable parameters (then the optimizer state the algorithm
  // averages, if any), BN statistics, the rest: the averaged spans of
  // distributed training are then two flat ranges.
  std::vector<std::string> order;
  std::set<std::string> seen;
  auto add = [&](const std::string& name) {
    auto it = forward_.initializers.find(name);
    if (it == forward_.initializers.end() || !IsFloatingPoint(it->second.dtype()) ||
        forward_.constant_names.count(name) || !seen.insert(name).second)
      return;
    order.push_back(name);
  };
  for (const std::string& n : program_.parameters) add(n);
  // average_optimizer_state: the float32 optimizer state joins the parameter
  // span, so that every average (and the final one) carries it by the same
  // rule as the weights. It lives in program_.graph only; forward_ holds it
  // while packing so that one arena holds both.
  const bool distributed = config_.distributed.algorithm != "none" && comm_ != nullptr;
  if (distributed && config_.distributed.average_optimizer_state) {
    for (const std::string& n : program_.optimizer_state) {
      const Tensor& t = program_.graph.initializers.at(n);
      if (t.dtype() != DataType::kFloat32 || forward_.initializers.count(n)) continue;
      forward_.initializers[n] = t;
      averaged_state_.push_back(n);
      order.push_back(n);
      seen.insert(n);
    }
  }
  const size_t num_params = order.size();
  for (const std::string& n : program_.buffers) add(n);
  for (const auto& [name, t] : forward_.initializers) add(name);
  param_arena_ = PackContiguous(forward_.initializers, order);
  for (const std::string& n : order) {
    auto it = program_.graph.initializers.find(n);
    if (it != program_.graph.initializers.end()) it->second = forward_.initializers.at(n);
  }
  if (!distributed) return absl::OkStatus();
  // The spans the algorithms average: float32 only (they are flat float
  // buffers on the wire).
  for (const std::string& n : order) {
    if (forward_.initializers.at(n).dtype() != DataType::kFloat32) {
      return absl::UnimplementedError(
          absl::StrCat("distributed training averages float32 parameters; initializer '", n,
                       "' is ", DataTypeName(forward_.initializers.at(n).dtype())));
    }
  }
  auto span_end = [&](size_t to) {
    const Tensor& last = forward_.initializers.at(order[to - 1]);
    return reinterpret_cast<const char*>(last.raw_data()) + last.nbytes();
  };
  char* base = static_cast<char*>(param_arena_.raw_data());
  if (num_params > 0) {
    model_buffers_.params = reinterpret_cast<float*>(base);
    model_buffers_.param_floats = (span_end(num_params) - base) / sizeof(float);
  }
  if (order.size() > num_params) {
    char* start = static_cast<char*>(forward_.initializers.at(order[num_params]).raw_data());
    model_buffers_.buffers = reinterpret_cast<float*>(start);
    model_buffers_.buffer_floats = (span_end(order.size()) - start) / sizeof(float);
  }
  // The optimizer state is not part of the model (exports, evaluation).
  for (const std::string& n : averaged_state_) forward_.initializers.erase(n);
  return absl::OkStatus();
}

absl::StatusOr<Tensor> TrainingSession::LatestAverageArena() {
  Tensor average = param_arena_.Clone();
  char* base = static_cast<char*>(param_arena_.raw_data());
  char* copy = static_cast<char*>(average.raw_data());
  auto at = [&](float* span) {
    return span ? reinterpret_cast<float*>(copy + (reinterpret_cast<char*>(span) - base)) : nullptr;
  };
  absl::StatusOr<bool> found =
      data_parallel_->LatestAverage(at(model_buffers_.params), at(model_buffers_.buffers));
  if (!found.ok()) return WithContext(found.status(), "while copying the learning curve's average");
  return *found ? std::move(average) : Tensor();
}

int64_t TrainingSession::ScheduleStep() const {
  if (data_parallel_ && config_.distributed.segment_ms > 0) {
    return data_parallel_->global_samples() /
           (config_.data.batch_size * config_.train.accumulate * world_size_);
  }
  return step_;
}

bool TrainingSession::Done() const {
  if (data_parallel_ && config_.distributed.segment_ms > 0) {
    return data_parallel_->ShouldStop(total_steps_ * config_.data.batch_size *
                                      config_.train.accumulate * world_size_);
  }
  return step_ >= total_steps_;
}

absl::StatusOr<Executor*> TrainingSession::EvalExecutorFor(int64_t batch_size) {
  auto it = eval_.find(batch_size);
  if (it != eval_.end()) return it->second.get();
  ASSIGN_OR_RETURN(graph::Graph g, graph::BuildEvalProgram(forward_, batch_size));
  CompileOptions options;
  options.num_threads = static_cast<int>(config_.train.threads);
  // Training updates these between evaluations: never prepare them once.
  for (const auto& [name, t] : g.initializers)
    if (!g.constant_names.count(name)) options.mutable_initializers.insert(name);
  ASSIGN_OR_RETURN(auto ex, Executor::Create(std::move(g), options));
  Executor* raw = ex.get();
  eval_[batch_size] = std::move(ex);
  return raw;
}

absl::StatusOr<double> TrainingSession::Step(const data::Batch& batch) {
  // K = train.accumulate micro-batches: the first K - 1 run the accumulate
  // program, the last one train_step, which updates the parameters.
  const int64_t k = program_.accumulate;
  const int64_t micro = batch.size() / k;
  if (micro * k != batch.size() || (k > 1 && micro != config_.data.batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat("step ", step_, ": a batch of ", batch.size(),
                                                   " samples is not ", k, " micro-batches of ",
                                                   config_.data.batch_size));
  }
  RunOptions run;
  run.skip_updates_unless_finite = program_.loss;
  double loss_sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const bool last = i == k - 1;
    std::map<std::string, Tensor> feeds = {
        {program_.data_input, k == 1 ? batch.inputs : MicroBatch(batch.inputs, i, k)}};
    // A TrainingInfoProto's algorithm may take no labels, and owns its
    // learning rate and iteration count.
    if (!program_.labels_input.empty())
      feeds[program_.labels_input] = k == 1 ? batch.labels : MicroBatch(batch.labels, i, k);
    if (last && !program_.lr_input.empty())
      feeds[program_.lr_input] = ScalarFloat(schedule_->LearningRate(ScheduleStep()));
    if (last && !program_.step_input.empty()) feeds[program_.step_input] = ScalarInt64(step_);
    Executor* program = last ? train_.get() : accumulate_.get();
    auto out = program->Run(feeds, run);
    if (!out.ok()) ZeroAccumulators();  // the step is dropped or fails
    if (!out.ok() && absl::IsDataLoss(out.status())) {
      if (config_.train.on_nan == "skip") {
        ++skipped_steps_;
        ++step_;
        return std::nan("");
      }
      // Find the first node that produced a non-finite value (updates are
      // skipped on this run too).
      run.check_finite = true;
      auto diagnose = program->Run(feeds, run);
      std::string where = diagnose.ok() ? "" : absl::StrCat(": ", diagnose.status().message());
      std::string micro_batch = k > 1 ? absl::StrCat(", micro-batch ", i + 1, " of ", k) : "";
      return absl::DataLossError(absl::StrCat("step ", step_, " (epoch ", batch.position.epoch,
                                              ", batch ", batch.position.batch, micro_batch,
                                              "): the loss is not finite", where,
                                              " (set train.on_nan = \"skip\" to drop such steps)"));
    }
    if (!out.ok()) return WithContext(out.status(), absl::StrCat("at step ", step_));
    loss_sum += program_.loss.empty() ? std::nan("") : out->at(program_.loss).GetAsDouble(0);
  }
  ZeroAccumulators();
  ++step_;
  return loss_sum / k;
}

absl::StatusOr<EvalResult> TrainingSession::Evaluate() {
  EvalResult r;
  if (!test_data_) return r;
  data::DataLoaderOptions lo;
  lo.batch_size =
      config_.data.test_batch_size > 0 ? config_.data.test_batch_size : config_.data.batch_size;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.mean = config_.data.mean;
  lo.std = config_.data.std;
  lo.prefetch_batches = 2;
  ASSIGN_OR_RETURN(auto loader, data::DataLoader::Create(test_data_, lo));
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  for (int64_t b = 0; b < loader->batches_per_epoch(); ++b) {
    ASSIGN_OR_RETURN(data::Batch batch, loader->Next());
    ASSIGN_OR_RETURN(Executor * ex, EvalExecutorFor(batch.size()));
    ASSIGN_OR_RETURN(auto out, ex->Run({{program_.data_input, batch.inputs}}));
    const Tensor& logits = out.at(program_.logits);
    const int64_t n = batch.size();
    const int64_t width = logits.num_elements() / std::max<int64_t>(n, 1);
    const float* z = logits.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      const float* row = z + i * width;
      if (num_classes_ > 0) {
        int64_t label = batch.labels.data<int64_t>()[i];
        double mx = *std::max_element(row, row + width), sum = 0;
        for (int64_t c = 0; c < width; ++c) sum += std::exp(static_cast<double>(row[c]) - mx);
        loss_sum += std::log(sum) + mx - row[label];
        int64_t higher = 0;
        for (int64_t c = 0; c < width; ++c) higher += row[c] > row[label];
        top1 += higher == 0;
        top5 += higher < 5;
      } else if (config_.loss.type == "mse") {
        const float* t = batch.labels.data<float>() + i * width;
        for (int64_t c = 0; c < width; ++c) loss_sum += (row[c] - t[c]) * (row[c] - t[c]) / width;
      } else if (config_.loss.type == "bce_logits") {
        const float* t = batch.labels.data<float>() + i * width;
        for (int64_t c = 0; c < width; ++c) {
          double x = row[c];
          loss_sum += (std::max(x, 0.0) - x * t[c] + std::log1p(std::exp(-std::fabs(x)))) / width;
        }
      }
    }
    r.samples += n;
  }
  if (r.samples > 0) {
    r.loss = loss_sum / r.samples;
    r.top1 = static_cast<double>(top1) / r.samples;
    r.top5 = static_cast<double>(top5) / r.samples;
  }
  last_eval_ = r;
  return r;
}

std::map<std::string, Tensor> TrainingSession::State() const { return train_->StateTensors(); }

Checkpoint TrainingSession::MakeCheckpoint() const {
  Checkpoint ckpt;
  ckpt.tensors = State();
  ckpt.metadata["step"] = absl::StrCat(step_);
  data::LoaderPosition pos = train_loader_->position();
  ckpt.metadata["data_epoch"] = absl::StrCat(pos.epoch);
  ckpt.metadata["data_batch"] = absl::StrCat(pos.batch);
  ckpt.metadata["model"] = config_.model.path;
  ckpt.metadata["optimizer"] = config_.optimizer.type;
  ckpt.metadata["world_size"] = absl::StrCat(world_size_);
  ckpt.metadata["accumulate"] = absl::StrCat(program_.accumulate);
  return ckpt;
}

absl::Status TrainingSession::SaveCheckpoint(const std::string& path) const {
  return WriteCheckpoint(path, MakeCheckpoint());
}

absl::Status TrainingSession::RestoreCheckpoint(const std::string& path) {
  ASSIGN_OR_RETURN(Checkpoint ckpt, ReadCheckpoint(path));
  std::map<std::string, Tensor> state = State();
  RETURN_IF_ERROR_CTX(CheckCompatible(ckpt, SpecsOf(state)), "checkpoint '", path,
                      "' does not fit this model and optimizer");
  for (auto& [name, t] : state) t.CopyFrom(ckpt.tensors.at(name));
  int64_t step = 0, epoch = 0, batch = 0;
  if (!absl::SimpleAtoi(ckpt.metadata["step"], &step) ||
      !absl::SimpleAtoi(ckpt.metadata["data_epoch"], &epoch) ||
      !absl::SimpleAtoi(ckpt.metadata["data_batch"], &batch)) {
    return absl::DataLossError(
        absl::StrCat("checkpoint '", path, "' lacks its step or data position"));
  }
  // A checkpoint of a run with another number of ranks: an epoch holds
  // another number of steps here, so the position is carried over as the
  // fraction of the epoch done (exact at epoch ends, where checkpoints are
  // written) and the step count follows from it.
  int64_t saved_world = 1;
  if (ckpt.metadata.count("world_size") &&
      !absl::SimpleAtoi(ckpt.metadata["world_size"], &saved_world)) {
    return absl::DataLossError(absl::StrCat("checkpoint '", path, "' has a bad world_size"));
  }
  // The same for another train.accumulate: a loader batch holds K micro-batches.
  int64_t saved_accumulate = 1;
  if (ckpt.metadata.count("accumulate") &&
      !absl::SimpleAtoi(ckpt.metadata["accumulate"], &saved_accumulate)) {
    return absl::DataLossError(absl::StrCat("checkpoint '", path, "' has a bad accumulate"));
  }
  const int64_t saved_share = saved_world * saved_accumulate;
  const int64_t share = world_size_ * program_.accumulate;
  if (saved_share != share && saved_share > 0) {
    batch = batch * saved_share / share;
    step = epoch * train_loader_->batches_per_epoch() + batch;
  }
  step_ = step;
  return train_loader_->Seek({epoch, batch});
}

absl::Status TrainingSession::Export(const std::string& path) const {
  std::map<std::string, Tensor> trained;
  for (const auto& [name, t] : forward_.initializers) trained[name] = t;
  return importers::ExportInferenceModel(forward_, trained, path);
}

absl::Status TrainingSession::WriteMetrics(int64_t epoch, double train_loss, double wall_s,
                                           double samples_per_s,
                                           const std::vector<distributed::RankTiming>& timings) {
  std::string path = config_.train.out_dir + "/metrics.jsonl";
  std::ofstream out(path, std::ios::app);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  out << absl::StrFormat(
      "{\"epoch\": %d, \"step\": %d, \"wall_s\": %.3f, \"train_loss\": %.6f, \"test_loss\": %.6f, "
      "\"test_top1\": %.6f, \"test_top5\": %.6f, \"samples_per_s\": %.2f, \"lr\": %.6g, "
      "\"skipped_steps\": %d",
      epoch, step_, wall_s, train_loss, last_eval_.loss, last_eval_.top1, last_eval_.top5,
      samples_per_s, schedule_->LearningRate(std::max<int64_t>(ScheduleStep() - 1, 0)),
      skipped_steps_);
  if (data_parallel_) {
    // Where every rank's time went: compute, communication in flight, and
    // the part of it the rank waited for.
    out << absl::StrFormat(", \"world_size\": %d, \"algorithm\": \"%s\", \"ranks\": [", world_size_,
                           config_.distributed.algorithm);
    for (size_t i = 0; i < timings.size(); ++i) {
      const distributed::RankTiming& t = timings[i];
      out << absl::StrFormat(
          "%s{\"rank\": %d, \"steps\": %d, \"samples\": %d, \"compute_s\": %.3f, "
          "\"comm_s\": %.3f, \"wait_s\": %.3f}",
          i ? ", " : "", t.rank, t.steps, t.samples, t.compute_s, t.comm_s, t.wait_s);
    }
    out << "]";
  }
  out << "}\n";
  return absl::OkStatus();
}

absl::Status TrainingSession::Train(FILE* log) {
  // Only rank 0 prints, evaluates and writes files; the other ranks train.
  const bool root = rank_ == 0;
  std::unique_ptr<FILE, int (*)(FILE*)> devnull(nullptr, &std::fclose);
  if (!root) {
    devnull.reset(std::fopen("/dev/null", "w"));
    if (devnull) log = devnull.get();
  }
  if (root) MakeDirs(config_.train.out_dir);
  CheckpointManager checkpoints(config_.train.out_dir + "/checkpoints",
                                static_cast<int>(config_.train.keep_checkpoints));
  if (!config_.train.resume.empty()) {
    std::string path = config_.train.resume;
    if (path == "auto") {
      auto latest = checkpoints.LoadLatest();
      if (latest.ok()) {
        for (const std::string& w : latest->warnings) std::fprintf(log, "warning: %s\n", w.c_str());
        path = latest->path;
      } else if (absl::IsNotFound(latest.status())) {
        path.clear();
      } else {
        return latest.status();
      }
    }
    if (!path.empty()) {
      RETURN_IF_ERROR(RestoreCheckpoint(path));
      std::fprintf(log, "resumed from %s at step %lld\n", path.c_str(),
                   static_cast<long long>(step_));
    }
  }
  if (data_parallel_) {
    // Every rank starts from rank 0's model (fresh or restored).
    RETURN_IF_ERROR_CTX(data_parallel_->BroadcastModel(), "while broadcasting rank 0's model");
  }
  const int64_t per_epoch = steps_per_epoch();
  const int64_t batch = config_.data.batch_size * program_.accumulate;  // per optimizer step
  const bool tty = config_.train.progress && isatty(fileno(log));
  const std::string algorithm_desc =
      config_.train.program == "training_info"
          ? std::string("the model's TrainingInfoProto")
          : absl::StrCat(config_.optimizer.type, ", lr ", schedule_->Describe());
  std::fprintf(
      log, "training %s: %zu parameter tensors, %lld steps (%lld per epoch, batch %lld), %s\n",
      config_.model.path.c_str(), program_.parameters.size(), static_cast<long long>(total_steps_),
      static_cast<long long>(per_epoch), static_cast<long long>(batch), algorithm_desc.c_str());
  if (data_parallel_) {
    std::fprintf(log, "distributed: %d ranks, %s, %s\n", world_size_,
                 comm_ ? comm_->Describe().c_str() : "no communicator",
                 data_parallel_->Describe().c_str());
  }
  if (root && config_.train.curve_every_s > 0 && test_data_)
    curve_ = std::make_unique<LearningCurve>(config_.train.curve_every_s);
  auto run_start = Clock::now();
  auto epoch_start = Clock::now();
  double epoch_loss = 0;
  int64_t epoch_steps = 0;
  int64_t epoch_batches = 0;
  while (!Done()) {
    ASSIGN_OR_RETURN(data::Batch b, train_loader_->Next());
    auto step_start = Clock::now();
    ASSIGN_OR_RETURN(double loss, Step(b));
    ++epoch_batches;
    if (data_parallel_) {
      double compute_s = std::chrono::duration<double>(Clock::now() - step_start).count();
      straggler_->SleepAfterStep(compute_s);
      straggler_->MaybeInjectFault(step_);
      RETURN_IF_ERROR_CTX(data_parallel_->AfterStep({step_, b.size(), compute_s}), "rank ", rank_,
                          " after step ", step_);
    }
    if (std::isfinite(loss)) {
      epoch_loss += loss;
      ++epoch_steps;
    }
    const bool last = Done();
    // The end of a run: wait for what is in flight and average once more, so
    // that every rank holds the same model for evaluation and export.
    if (last && data_parallel_) {
      RETURN_IF_ERROR_CTX(data_parallel_->Finish(), "rank ", rank_, " in the final average");
    }
    const double now_s = std::chrono::duration<double>(Clock::now() - run_start).count();
    if (curve_ && curve_->Due(now_s, last)) {
      Tensor average;
      // After Finish() (the last point) rank 0's model is the average.
      if (data_parallel_ && !last) {
        ASSIGN_OR_RETURN(average, LatestAverageArena());
      }
      curve_->Snapshot(now_s, step_, ScheduleStep() * batch * world_size_, param_arena_,
                       std::move(average));
    }
    const int64_t epoch = b.position.epoch + 1;
    const bool end_of_epoch = b.last_in_epoch || last;
    double elapsed = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    // Samples per second over all ranks.
    double rate = epoch_batches * batch * world_size_ / std::max(elapsed, 1e-9);
    if (tty) {
      int64_t done = b.position.batch + 1;
      int width = 30, filled = static_cast<int>(width * std::min(done, per_epoch) / per_epoch);
      double eta = (per_epoch - done) * batch * world_size_ / std::max(rate, 1e-9);
      std::fprintf(log, "\repoch %lld [%s%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %s ",
                   static_cast<long long>(epoch), std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                   static_cast<long long>(per_epoch), epoch_steps ? epoch_loss / epoch_steps : 0.0,
                   rate, FormatDuration(std::max(eta, 0.0)).c_str());
      std::fflush(log);
    } else if (config_.train.log_every_steps > 0 && step_ % config_.train.log_every_steps == 0) {
      std::fprintf(log, "epoch %lld step %lld/%lld loss %.4f %.0f samples/s\n",
                   static_cast<long long>(epoch), static_cast<long long>(step_),
                   static_cast<long long>(total_steps_),
                   epoch_steps ? epoch_loss / epoch_steps : 0.0, rate);
      std::fflush(log);
    }
    if (!end_of_epoch) continue;
    if (tty) std::fprintf(log, "\n");
    // Every rank's timing (a collective at the same point on every rank).
    std::vector<distributed::RankTiming> timings;
    if (data_parallel_) {
      ASSIGN_OR_RETURN(timings, data_parallel_->GatherTimings());
    }
    double wall = std::chrono::duration<double>(Clock::now() - run_start).count();
    double train_loss = epoch_steps ? epoch_loss / epoch_steps : std::nan("");
    if (root) {
      if (test_data_ && (last || (config_.train.eval_every_epochs > 0 &&
                                  epoch % config_.train.eval_every_epochs == 0))) {
        RETURN_IF_ERROR(Evaluate().status());
      }
      std::fprintf(log,
                   "epoch %lld: train_loss %.4f  test_loss %.4f  test_top1 %.2f%%  test_top5 "
                   "%.2f%%  (%s, %.0f samples/s)\n",
                   static_cast<long long>(epoch), train_loss, last_eval_.loss,
                   100 * last_eval_.top1, 100 * last_eval_.top5, FormatDuration(wall).c_str(),
                   rate);
      RETURN_IF_ERROR(WriteMetrics(epoch, train_loss, wall, rate, timings));
      if (config_.train.checkpoint_every_epochs > 0 &&
          (last || epoch % config_.train.checkpoint_every_epochs == 0)) {
        RETURN_IF_ERROR(checkpoints.Save(step_, MakeCheckpoint()).status());
      }
    }
    epoch_loss = 0;
    epoch_steps = 0;
    epoch_batches = 0;
    epoch_start = Clock::now();
    if (last) break;
  }
  if (curve_) {
    std::string path = config_.train.out_dir + "/curve.jsonl";
    auto evaluate = [this]() -> absl::StatusOr<std::pair<double, double>> {
      ASSIGN_OR_RETURN(EvalResult r, Evaluate());
      return std::make_pair(r.top1, r.loss);
    };
    EvalResult final_eval = last_eval_;
    auto points = curve_->EvaluateAndWrite(param_arena_, evaluate, path);
    RETURN_IF_ERROR_CTX(points.status(), "while evaluating the learning curve");
    last_eval_ = final_eval;
    std::fprintf(log, "learning curve: %zu points in %s\n", points->size(), path.c_str());
  }
  if (root && !config_.train.export_path.empty()) {
    std::string path = config_.train.export_path;
    if (path[0] != '/') path = config_.train.out_dir + "/" + path;
    RETURN_IF_ERROR(Export(path));
    std::fprintf(log, "exported the trained model to %s\n", path.c_str());
  }
  if (std::getenv("LASGD_PROFILE")) std::fputs(train_->ProfileReport(25).c_str(), log);
  if (test_data_ && root) std::fprintf(log, "final test accuracy: %.2f%%\n", 100 * last_eval_.top1);
  return absl::OkStatus();
}

}  // namespace lasgd::runtime
