#include "distributed/data_parallel.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/passes/algorithm.h"

namespace lasgd::distributed {
namespace {

// algorithm = none: every rank trains alone; nothing is communicated.
class NoDataParallel : public AlgorithmBase {
 public:
  using AlgorithmBase::AlgorithmBase;
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::Status AfterStep(const StepReport& step) override {
    RecordStep(step);
    return absl::OkStatus();
  }
  absl::Status Finish() override { return absl::OkStatus(); }
  std::string Describe() const override {
    return absl::StrCat("none: no communication (", context_->size, " rank(s) train alone)");
  }

 protected:
  absl::Status BuildPrograms() override { return absl::OkStatus(); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Create(
    const runtime::DistributedConfig& config, Communicator* comm, graph::TrainingProgram* program) {
  if (program == nullptr)
    return absl::InvalidArgumentError("DataParallel::Create needs the training program");
  std::unique_ptr<AlgorithmBase> algorithm;
  const std::string& a = config.algorithm;
  if (a == "lasgd") {
    algorithm = MakeLasgd(config, comm, program);
  } else if (a == "local") {
    algorithm = MakeLocal(config, comm, program);
  } else if (a == "sync") {
    algorithm = MakeSync(config, comm, program);
  } else if (a == "sgp") {
    algorithm = MakeSgp(config, comm, program);
  } else if (a == "none") {
    algorithm = std::make_unique<NoDataParallel>(config, comm, program);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("[distributed] algorithm = '", a, "': use none, lasgd, sync, local or sgp"));
  }
  RETURN_IF_ERROR_CTX(algorithm->Prepare(), "in the distributed pass (algorithm ", a, ")");
  return std::unique_ptr<DataParallel>(std::move(algorithm));
}

}  // namespace lasgd::distributed
