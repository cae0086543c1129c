// ONNX ModelProto -> graph::Graph, through Debian's libonnx protobuf classes.
//
// Handles every initializer storage form (raw_data, typed fields, external
// data files beside the model), Constant nodes (turned into constant
// initializers), initializers that are also listed as graph inputs (older
// exporters do this), value_info, and symbolic dimensions (kept as dim_params
// until compile time binds them).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/passes/training.h"
#include "runtime/tensor.h"

namespace onnx {
class ModelProto;
class TensorProto;
}  // namespace onnx

namespace lasgd::importers {

// Reads and imports an .onnx file. Errors name the file and what is wrong
// (missing, empty, truncated, not ONNX, a bad node or tensor).
absl::StatusOr<graph::Graph> LoadOnnxModel(const std::string& path);

// Imports an already-parsed model; `model_dir` resolves external data paths.
absl::StatusOr<graph::Graph> ImportModelProto(const onnx::ModelProto& model,
                                              const std::string& model_dir);

// Converts one TensorProto (also used for the backend tests' .pb files).
absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto,
                                       const std::string& model_dir);

// The model's TrainingInfoProtos (ONNX's standard training: an
// initialization graph with its bindings, an algorithm graph with its update
// bindings), each graph imported on its own with the model's opsets; the
// training pass combines the algorithm with the inference graph
// (graph::BuildTrainingInfoProgram). Empty when the model has none.
absl::StatusOr<std::vector<graph::TrainingInfo>> LoadOnnxTrainingInfo(const std::string& path);
absl::StatusOr<std::vector<graph::TrainingInfo>> ImportTrainingInfo(const onnx::ModelProto& model,
                                                                    const std::string& model_dir);

// Reads a serialized TensorProto file (input_0.pb of the ONNX backend tests).
absl::StatusOr<Tensor> LoadTensorProtoFile(const std::string& path);

}  // namespace lasgd::importers
