// Runs the graph passes in named phases so that any phase can be dumped
// (`lasgd-inspect --dump-after=shape_inference MODEL`).
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "graph/graph.h"
#include "graph/passes/passes.h"

namespace lasgd::graph {

struct PipelineOptions {
  ShapeBinding binding;
  // Rewrite for inference (drop Identity and inference Dropout) and fuse
  // Conv+Add+Relu for oneDNN post-ops.
  bool simplify = true;
  bool fuse = true;
  // Print the graph after this phase to `dump` ("" = none). "import" dumps
  // the graph as imported.
  std::string dump_after;
  std::ostream* dump = nullptr;
  // Stop after this phase ("" = run all).
  std::string stop_after;
};

class PassPipeline {
 public:
  using PassFn = std::function<absl::Status(Graph&)>;
  void Add(std::string phase, PassFn fn) { passes_.push_back({std::move(phase), std::move(fn)}); }
  std::vector<std::string> Phases() const;
  absl::Status Run(Graph& graph, const PipelineOptions& options) const;

 private:
  struct Entry {
    std::string phase;
    PassFn fn;
  };
  std::vector<Entry> passes_;
};

// The inference compile pipeline: import (no-op), verify, shape_inference,
// simplify, fuse, dce.
PassPipeline MakeInferencePipeline(const PipelineOptions& options);

// Runs MakeInferencePipeline(options) on `graph`.
absl::Status RunInferencePipeline(Graph& graph, const PipelineOptions& options);

}  // namespace lasgd::graph
