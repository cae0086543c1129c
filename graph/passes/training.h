// Builds the training program of an exported forward model: training-mode
// BatchNormalization/Dropout, a loss, the backward graph (autodiff), gradient
// clipping and the optimizer update, with parameters and optimizer state as
// state variables (Graph::state_updates).
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "runtime/train_config.h"

namespace lasgd::graph {

// One ONNX TrainingInfoProto as imported (importers/onnx_importer.h): its
// graphs each on their own; BuildTrainingInfoProgram combines the algorithm
// with the inference graph as the ONNX spec says.
struct TrainingInfo {
  Graph initialization;  // no inputs; empty when the model gives none
  std::vector<std::pair<std::string, std::string>> initialization_binding;  // initializer, output
  Graph algorithm;
  std::vector<std::pair<std::string, std::string>> update_binding;  // initializer, value
};

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

  // Gradient accumulation (train.accumulate = K > 1). `graph` (train_step)
  // then runs the LAST micro-batch of an optimizer step: it reads the
  // accumulators, steps on (accumulator + gradient) / K and leaves them to the
  // session to zero. `accumulate_graph` runs each of the K - 1 earlier
  // micro-batches: forward, backward and accumulator += gradient, with the
  // BN statistics updated as in train_step. Both read the same initializers
  // (share the Tensor handles). Empty/unused when K == 1.
  int64_t accumulate = 1;
  Graph accumulate_graph;
  std::vector<std::string> grad_accumulators;  // "<param>.grad_accum", per parameter

  // Training-mode Dropout draws its mask from (seed, counter), a pure
  // function (ops/stateless_dropout.cc); this int64 scalar state variable is
  // the counter, advanced once per run of either program, so a checkpoint
  // that holds it resumes the same masks. "" when the model has no
  // training-mode Dropout.
  std::string rng_counter;

  // train.program = "training_info": the model's TrainingInfoProto runs as
  // written. `graph` is the inference graph followed by the algorithm graph
  // (its Gradient nodes expanded by autodiff), with the update bindings as
  // state updates; lr_input/step_input are "" (the algorithm owns its
  // learning rate and iteration count), labels_input may be "". The
  // initialization graph runs once before training; its outputs are copied
  // into the initializers `initialization_binding` names.
  Graph initialization;
  std::vector<std::pair<std::string, std::string>> initialization_binding;
};

// `forward` is the graph as imported. `batch_size` binds symbolic dims.
// Trainable parameters are the float initializers that reach the loss through
// differentiable inputs, narrowed by model.trainable / model.frozen.
absl::StatusOr<TrainingProgram> BuildTrainingProgram(const Graph& forward,
                                                     const runtime::TrainConfig& config,
                                                     int64_t batch_size);

// The training program of a model that carries a TrainingInfoProto (`info`,
// exactly one): the inference graph `forward` and the algorithm graph combined
// (inputs, initializers and nodes concatenated; no training-mode rewrite:
// the graph runs as the model says), every ai.onnx.preview.training Gradient
// node replaced by the backward graph of our autodiff, and the update
// bindings as state updates, which take effect after the whole step. The
// data input is model.input (or the inference graph's only input); the
// labels input is the algorithm's only other input, if it has one. The loss
// reported per step is loss.output, else the algorithm's first float scalar
// output. Parameters are the bound initializers of the inference graph,
// optimizer state the bound initializers of the algorithm.
absl::StatusOr<TrainingProgram> BuildTrainingInfoProgram(const Graph& forward,
                                                         const TrainingInfo& info,
                                                         const runtime::TrainConfig& config,
                                                         int64_t batch_size);

// The evaluation program: inference-mode forward at `batch_size`, reading the
// same initializers (share the Tensor handles to see training's updates).
absl::StatusOr<Graph> BuildEvalProgram(const Graph& forward, int64_t batch_size);

}  // namespace lasgd::graph
