#include "graph/pass_pipeline.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "graph/verifier.h"

namespace lasgd::graph {

std::vector<std::string> PassPipeline::Phases() const {
  std::vector<std::string> names;
  for (const Entry& e : passes_) names.push_back(e.phase);
  return names;
}

absl::Status PassPipeline::Run(Graph& graph, const PipelineOptions& options) const {
  if (!options.dump_after.empty()) {
    bool known = false;
    for (const Entry& e : passes_) known = known || e.phase == options.dump_after;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown phase '", options.dump_after, "'; phases are: ", absl::StrJoin(Phases(), ", ")));
    }
  }
  for (const Entry& e : passes_) {
    RETURN_IF_ERROR(e.fn(graph));
    if (options.dump && e.phase == options.dump_after) {
      *options.dump << "# after phase '" << e.phase << "'\n" << graph.ToText();
    }
    if (e.phase == options.stop_after) break;
  }
  return absl::OkStatus();
}

PassPipeline MakeInferencePipeline(const PipelineOptions& options) {
  PassPipeline p;
  p.Add("import", [](Graph&) { return absl::OkStatus(); });
  p.Add("verify", [](Graph& g) { return VerifyGraph(g); });
  p.Add("shape_inference",
        [binding = options.binding](Graph& g) { return InferShapesAndFoldConstants(g, binding); });
  if (options.simplify) p.Add("simplify", [](Graph& g) { return SimplifyForInference(g); });
  if (options.fuse) p.Add("fuse", [](Graph& g) { return FuseConvActivations(g); });
  p.Add("dce", [](Graph& g) { return EliminateDeadNodes(g); });
  return p;
}

absl::Status RunInferencePipeline(Graph& graph, const PipelineOptions& options) {
  return MakeInferencePipeline(options).Run(graph, options);
}

}  // namespace lasgd::graph
