// Compiles a graph into a plan (topological schedule, one kernel per node,
// every intermediate tensor at a fixed offset of one arena) and runs it.
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/pass_pipeline.h"
#include "ops/op_registry.h"
#include "runtime/tensor.h"

namespace lasgd::runtime {

struct CompileOptions {
  graph::PipelineOptions pipeline;
  // Use only this kernel candidate for every node ("reference" in tests); "" = fastest.
  std::string kernel;
  // OpenMP threads for kernels; 0 keeps the OpenMP default (OMP_NUM_THREADS).
  int num_threads = 0;
  // Time every step of every Run (see ProfileReport).
  bool profile = false;
  // Initializers that change between runs (parameters shared with another
  // plan, e.g. an evaluation plan reading what training updates): kernels
  // must not prepare them once. State-update targets are always mutable.
  std::set<std::string> mutable_initializers;
};

struct RunOptions {
  // Skip the state updates of this run (keep parameters and optimizer state)
  // when this output holds a NaN or Inf; Run then fails with kDataLoss after
  // computing outputs. "" = always apply them.
  std::string skip_updates_unless_finite;
  // Scan every node's floating-point outputs and fail at the first NaN/Inf,
  // naming the node (slow: for diagnosing a non-finite loss).
  bool check_finite = false;
};

struct KernelChoice {
  std::string node;                  // node name
  std::string op;                    // op type
  std::string kernel;                // candidate that runs
  std::vector<std::string> refused;  // "onednn: reason" for candidates that declined
};

class Executor {
 public:
  // Runs the inference pipeline on `graph` and binds kernels and memory.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(graph::Graph graph,
                                                          const CompileOptions& options);

  // Feeds every graph input by name (dtype and shape must match the compiled
  // ones exactly) and returns every graph output, owned by the caller.
  absl::StatusOr<std::map<std::string, Tensor>> Run(const std::map<std::string, Tensor>& feeds,
                                                    const RunOptions& run_options = {});
  // The live state tensors (targets of Graph::state_updates) by name.
  std::map<std::string, Tensor> StateTensors() const;

  const graph::Graph& graph() const { return graph_; }
  size_t arena_bytes() const { return arena_bytes_; }
  size_t naive_bytes() const { return naive_bytes_; }
  const std::vector<KernelChoice>& kernel_choices() const { return choices_; }
  // Values stored in oneDNN's channel-blocked layout, and the layout
  // conversions that saves per run (runtime/layout_plan.h).
  int blocked_values() const { return blocked_values_; }
  int reorders_avoided() const { return reorders_avoided_; }
  // Human-readable plan: one line per step with its kernel, then one per
  // output with its type and layout.
  std::string PlanReport() const;
  // Time per op type and per step, slowest first (needs CompileOptions::profile).
  std::string ProfileReport(int top_steps = 15) const;

 private:
  struct Step {
    size_t node;
    std::unique_ptr<ops::Kernel> kernel;
    std::vector<int> inputs;   // value slot per node input, -1 = omitted
    std::vector<int> outputs;  // value slot per node output, -1 = omitted
  };
  struct Slot {
    std::string name;
    Tensor tensor;  // a view into the arena, a feed, or an initializer
    enum class Kind { kInput, kInitializer, kArena } kind;
    size_t offset = 0;
    // Stored in oneDNN's channel-blocked layout (runtime/layout_plan.h).
    bool blocked = false;
  };
  Executor() = default;
  absl::Status Build(const CompileOptions& options);
  // Decides which values are stored blocked and tells the kernels.
  absl::Status PlanValueLayouts();

  graph::Graph graph_;
  std::vector<Step> steps_;
  std::vector<Slot> slots_;
  std::map<std::string, int> slot_of_;
  std::vector<KernelChoice> choices_;
  std::shared_ptr<void> arena_;
  size_t arena_bytes_ = 0, naive_bytes_ = 0;
  int blocked_values_ = 0, reorders_avoided_ = 0;
  int num_threads_ = 0;
  bool profile_ = false;
  std::vector<double> step_seconds_;
  int profiled_runs_ = 0;
};

}  // namespace lasgd::runtime
