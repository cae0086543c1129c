// The graph passes, one file each. Every pass takes the graph by reference
// and either rewrites it or returns an error naming the node at fault.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "graph/graph.h"
#include "runtime/tensor.h"

namespace lasgd::graph {

struct ShapeBinding {
  // Exact shapes for some inputs (by name); wins over everything else.
  std::map<std::string, Shape> input_shapes;
  // Value for every symbolic or unknown dimension of the inputs (the batch);
  // -1 leaves them unbound, which is an error naming the input and dim.
  int64_t batch_size = -1;
};

// Binds the inputs' symbolic dims, infers dtype and static shape of every
// value into `value_info`, checks them against what the model declared, and
// folds nodes whose inputs are all compile-time constants into constant
// initializers (shape subgraphs such as Shape->Gather->Concat->Reshape vanish).
absl::Status InferShapesAndFoldConstants(Graph& graph, const ShapeBinding& binding);

// Removes nodes that do nothing at inference: Identity, and Dropout in
// inference mode whose mask nobody reads. Rewires their consumers.
absl::Status SimplifyForInference(Graph& graph);

// Rewrites Conv[->Add(residual)][->Relu|Clip(constant bounds)] chains (at
// least one of the two) into com.lasgd.FusedConv so oneDNN applies the add
// and activation as post-ops.
absl::Status FuseConvActivations(Graph& graph);

// BatchNormalization in inference mode (running statistics, one output) and
// Dropout removed: the graph a trained model is evaluated and exported with.
// Fails if a dropped output is read.
absl::Status ToInferenceMode(Graph& graph);

// BatchNormalization in training mode (batch statistics) with its running
// statistics bound as state updates, and Dropout with training_mode=true
// (opset 12+; older Dropout has no switch and stays as exported).
absl::Status ToTrainingMode(Graph& graph);

// Drops nodes none of whose outputs reach a graph output, and initializers
// nobody reads any more.
absl::Status EliminateDeadNodes(Graph& graph);

}  // namespace lasgd::graph
