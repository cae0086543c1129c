// LASGD, Local Asynchronous SGD (DESIGN.md "LASGD, the algorithm"): local
// steps, and at every segment boundary
//     wait for the previous average; x <- x + (avg - s); s <- x;
//     start the mean All-Reduce of s into avg
// so that each average is computed while the next segment trains. With
// apply = when_ready an average is merged at the first step after it
// completes instead of at the next boundary. The progress slots the average
// carries are committed at boundaries only, so every rank sees the same
// global sample count after the same average (segment_ms stopping).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/passes/algorithm.h"

namespace lasgd::distributed {
namespace {

class LasgdAlgorithm : public AlgorithmBase {
 public:
  using AlgorithmBase::AlgorithmBase;

  absl::Status Prepare() override {
    RETURN_IF_ERROR(ValidateCommon());
    if (config_.warmup_steps > 0) RETURN_IF_ERROR(AddGradientBuckets());
    SizeModelFromProgram();
    return BuildPrograms();
  }

  absl::Status AfterStep(const StepReport& step) override {
    if (!bound()) return absl::FailedPreconditionError("AfterStep before Bind");
    if (RecordStep(step)) return absl::OkStatus();  // synchronous warm-up
    if (config_.apply == "when_ready" && context_->pending && context_->pending->Test()) {
      RETURN_IF_ERROR_CTX(RunProgram("apply_average"), "after step ", step.step);
    }
    if (BoundaryDue(step)) {
      // Wall-time segments with when_ready never block on the network: while
      // the previous average is still in flight the boundary moves to the
      // first step after it completes (a segment_ms shorter than an average
      // then means back-to-back averages instead of waiting). Every rank still
      // starts the averages in the same order and commits the same progress
      // with each, so they stop after the same one. Step-counted segments keep
      // the wait: deferring there would let ranks start different numbers of
      // averages in the same number of steps.
      if (config_.segment_ms > 0 && config_.apply == "when_ready" && context_->pending) {
        ++deferred_boundaries_;
        return absl::OkStatus();
      }
      RETURN_IF_ERROR_CTX(RunAveragingProgram("segment_boundary"),
                          "at the segment boundary after step ", step.step);
    }
    return absl::OkStatus();
  }

  int64_t deferred_boundaries() const override { return deferred_boundaries_; }

  // For LatestAverage: the average in flight was started from snapshots taken
  // before now. when_ready merges it as the next step would have; boundary
  // only waits for it and still merges it at the next boundary.
  absl::Status CompleteAverageInFlight() override {
    if (!context_->pending) return absl::OkStatus();
    return RunProgram(config_.apply == "when_ready" ? "apply_average" : "wait_average");
  }

  std::string Describe() const override {
    std::string segment = config_.segment_ms > 0
                              ? absl::StrCat("segment_ms = ", config_.segment_ms)
                              : absl::StrCat("segment_steps = ", config_.segment_steps);
    std::string warmup =
        config_.warmup_steps > 0
            ? absl::StrCat(", warm-up ", config_.warmup_steps, " synchronous steps in ",
                           buckets_.size(), " gradient bucket(s)")
            : "";
    return absl::StrCat("lasgd: ", segment, ", apply = ", config_.apply,
                        config_.average_buffers ? ", BN statistics averaged" : "",
                        config_.average_optimizer_state ? ", optimizer state averaged" : "", warmup,
                        ", ", context_->size, " rank(s); each average is one All-Reduce of ",
                        ModelFloats(config_.average_buffers), " model floats + ",
                        context_->size * kProgressSlots, " progress floats");
  }

 protected:
  absl::Status BuildPrograms() override {
    const bool with_buffers = config_.average_buffers;
    const size_t progress = static_cast<size_t>(context_->size) * kProgressSlots;
    const size_t segment_floats = ModelFloats(with_buffers);
    const size_t avg_floats = progress + ModelFloats(true);
    float* snapshot = Buffer("lasgd/snapshot", segment_floats);
    float* average = Buffer("lasgd/average", avg_floats);
    set_average_buffer(average, with_buffers);
    auto begin = [&](const std::string& name, bool buffers, std::string* p, std::string* b,
                     std::string* s, std::string* a) {
      auto builder = std::make_unique<ProgramBuilder>(name, context_id_);
      AddModelInputs(*builder, buffers, p, b);
      *s = builder->AddBuffer("lasgd/snapshot", snapshot, segment_floats);
      *a = builder->AddBuffer("lasgd/average", average, avg_floats);
      return builder;
    };
    std::string p, b, s, a;
    {
      auto prog = begin("segment_boundary", with_buffers, &p, &b, &s, &a);
      prog->Emit("AverageWait", {a});
      prog->Emit("ApplyAverage", {p, b, s, a});
      prog->Emit("Snapshot", {p, b, s, a});
      prog->Emit("AverageStart", {a},
                 {{"model_floats", graph::Attribute::Int(static_cast<int64_t>(segment_floats))}});
      SetProgram("segment_boundary", prog->Finish());
    }
    if (config_.apply == "when_ready") {
      auto prog = begin("apply_average", with_buffers, &p, &b, &s, &a);
      prog->Emit("AverageWait", {a});
      prog->Emit("ApplyAverage", {p, b, s, a});
      SetProgram("apply_average", prog->Finish());
    } else {
      // Only the wait, for LatestAverage (the learning curve) between boundaries.
      auto prog = begin("wait_average", with_buffers, &p, &b, &s, &a);
      prog->Emit("AverageWait", {a});
      SetProgram("wait_average", prog->Finish());
    }
    {
      // Merge what is in flight, then one blocking average of everything
      // (BN statistics included) so that every rank ends with one model.
      auto prog = begin("finish", with_buffers, &p, &b, &s, &a);
      prog->Emit("AverageWait", {a});
      prog->Emit("ApplyAverage", {p, b, s, a});
      std::string all_buffers =
          model_.buffer_floats > 0
              ? prog->AddBuffer("model/buffers", model_.buffers, model_.buffer_floats)
              : "";
      prog->Emit("AverageBlocking", {p, all_buffers, a});
      SetProgram("finish", prog->Finish());
    }
    return absl::OkStatus();
  }

 private:
  int64_t deferred_boundaries_ = 0;  // steps whose due boundary waited for an average
};

}  // namespace

std::unique_ptr<AlgorithmBase> MakeLasgd(const runtime::DistributedConfig& config,
                                         Communicator* comm, graph::TrainingProgram* program) {
  return std::make_unique<LasgdAlgorithm>(config, comm, program);
}

}  // namespace lasgd::distributed
