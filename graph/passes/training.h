// Builds the training program of an exported forward model: training-mode
// BatchNormalization/Dropout, a loss, the backward graph (autodiff), gradient
// clipping and the optimizer update, with parameters and optimizer state as
// state variables (Graph::state_updates).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "runtime/train_config.h"

namespace lasgd::graph {

struct TrainingProgram {
  Graph graph;               // the train_step program
  std::string data_input;    // graph input fed with samples
  std::string labels_input;  // graph input fed with labels/targets
  std::string lr_input;      // float scalar input: the learning rate of this step
  std::string step_input;    // int64 scalar input: updates done before this one (0-based)
  std::string loss;          // scalar loss output
  std::string logits;        // model output the loss reads
  std::vector<std::string> parameters;       // trainable initializers, in a fixed order
  std::vector<std::string> buffers;          // BN running statistics
  std::vector<std::string> optimizer_state;  // momentum buffers, Adam moments
  std::string grad_norm;                     // scalar output when clipping ("" otherwise)
};

// `forward` is the graph as imported. `batch_size` binds symbolic dims.
// Trainable parameters are the float initializers that reach the loss through
// differentiable inputs, narrowed by model.trainable / model.frozen.
absl::StatusOr<TrainingProgram> BuildTrainingProgram(const Graph& forward,
                                                     const runtime::TrainConfig& config,
                                                     int64_t batch_size);

// The evaluation program: inference-mode forward at `batch_size`, reading the
// same initializers (share the Tensor handles to see training's updates).
absl::StatusOr<Graph> BuildEvalProgram(const Graph& forward, int64_t batch_size);

}  // namespace lasgd::graph
