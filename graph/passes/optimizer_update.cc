// The optimizer part of the training program: gradient clipping and the
// parameter update, emitted as com.lasgd update nodes whose outputs are bound
// back into the parameters and the optimizer state (Graph::state_updates).
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "graph/passes/training.h"

namespace lasgd::graph {

absl::Status EmitOptimizerUpdate(Graph& g, const runtime::TrainConfig& config, TrainingProgram& program,
                                 const std::vector<std::string>& grads) {
  return absl::UnimplementedError(absl::StrCat("optimizer '", config.optimizer.type, "' is not wired yet"));
}

}  // namespace lasgd::graph
