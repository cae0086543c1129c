// Local SGD: local steps, and a blocking model average every segment_steps
// (or at each rank's first step after k * segment_ms), after an optional
// synchronous warm-up (post-local SGD).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/passes/algorithm.h"

namespace lasgd::distributed {
namespace {

class LocalAlgorithm : public AlgorithmBase {
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
    if (RecordStep(step)) return absl::OkStatus();
    if (!BoundaryDue(step)) return absl::OkStatus();
    RETURN_IF_ERROR_CTX(RunAveragingProgram("segment_boundary"), "at the model average after step ",
                        step.step);
    return absl::OkStatus();
  }

  std::string Describe() const override {
    std::string segment = config_.segment_ms > 0
                              ? absl::StrCat("segment_ms = ", config_.segment_ms)
                              : absl::StrCat("segment_steps = ", config_.segment_steps);
    return absl::StrCat("local: blocking model average every ", segment,
                        config_.average_buffers ? " (BN statistics averaged)" : "",
                        config_.average_optimizer_state ? " (optimizer state averaged)" : "",
                        config_.warmup_steps > 0
                            ? absl::StrCat(", warm-up ", config_.warmup_steps, " synchronous steps")
                            : "",
                        ", ", context_->size, " rank(s)");
  }

 protected:
  absl::Status BuildPrograms() override {
    const size_t avg_floats =
        static_cast<size_t>(context_->size) * kProgressSlots + ModelFloats(true);
    float* average = Buffer("local/average", avg_floats);
    // After each blocking average it holds the average, BN statistics
    // included when they are averaged.
    set_average_buffer(average, config_.average_buffers);
    for (const char* name : {"segment_boundary", "finish"}) {
      // The end always averages the BN statistics too: one model on every rank.
      const bool with_buffers = config_.average_buffers || std::string(name) == "finish";
      ProgramBuilder b(name, context_id_);
      std::string p, buffers;
      AddModelInputs(b, with_buffers, &p, &buffers);
      std::string a = b.AddBuffer("local/average", average, avg_floats);
      b.Emit("AverageBlocking", {p, buffers, a});
      SetProgram(name, b.Finish());
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<AlgorithmBase> MakeLocal(const runtime::DistributedConfig& config,
                                         Communicator* comm, graph::TrainingProgram* program) {
  return std::make_unique<LocalAlgorithm>(config, comm, program);
}

}  // namespace lasgd::distributed
