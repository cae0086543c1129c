// graph::Graph (as imported) + trained values -> an ONNX inference model.
//
// After training, users want back a plain ONNX model that any runtime
// (onnxruntime, TensorRT, ...) can serve. We export from the graph as it was
// imported (the result of LoadOnnxModel, before any pass), because passes
// rewrite the graph for our executor (fusions, training programs) in ways no
// other runtime understands. The export:
//   - keeps initializer names, graph inputs (with symbolic dims), outputs,
//     opset imports, node names and attributes;
//   - replaces initializer values by the trained ones given by name;
//   - puts BatchNormalization into inference mode (opset >= 14:
//     training_mode=0 and only Y; older opsets: only Y) so the running
//     statistics are used; a node or graph output reading a dropped BN output
//     is an error;
//   - removes Dropout (consumers read its input; a graph output produced by
//     Dropout gets an Identity so the output name survives);
//   - writes the importer's Constant-derived constants back as initializers;
//   - stores tensors in raw_data, or, when the initializers exceed the
//     threshold (2 GiB by default, protobuf's message limit), in one external
//     data file `<model file name>.data` beside the model;
//   - writes atomically: a temporary file in the destination folder, fsync,
//     rename, fsync of the folder, so a crash never leaves a half model under
//     the final name.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "runtime/tensor.h"

namespace lasgd::importers {

struct ExportOptions {
  // Above this many bytes of initializers in total, initializers of at least
  // `external_min_tensor_bytes` go to `<model>.data`. Protobuf cannot
  // serialize messages of 2 GiB or more, hence the default; weights too big
  // for one message (less 64 MiB left for the graph) always go out, whatever
  // this says.
  int64_t external_data_threshold_bytes = int64_t{2} << 30;
  // Tensors smaller than this stay inline even in external-data mode (as
  // onnx.save_model's size_threshold does), so scalars stay readable.
  int64_t external_min_tensor_bytes = 1024;
  std::string producer_name = "lasgd";
  std::string producer_version = "0.1.0";
};

// Writes the inference model to `path` (and `path`.data if the weights are
// too big for one protobuf message). `trained_values` replaces initializers
// by name (parameters, BN running statistics); each must name an initializer
// of `original` and match its dtype and shape. Initializers not given keep
// their imported values.
absl::Status ExportInferenceModel(const graph::Graph& original,
                                  const std::map<std::string, Tensor>& trained_values,
                                  const std::string& path,
                                  const ExportOptions& options = ExportOptions());

// The serialized ModelProto. Fails if the weights would need external data.
absl::StatusOr<std::string> ExportInferenceModelToBytes(
    const graph::Graph& original, const std::map<std::string, Tensor>& trained_values,
    const ExportOptions& options = ExportOptions());

// Writes `bytes` to `path` atomically: temporary file in the same folder,
// fsync, rename over `path`, fsync of the folder.
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace lasgd::importers
