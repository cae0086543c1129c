#include "tests/gradcheck_util.h"

#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "graph/passes/autodiff.h"
#include "graph/passes/passes.h"
#include "runtime/executor.h"

namespace lasgd::testing {
namespace {

struct LossGraph {
  graph::Graph graph;
  std::string loss;
  std::vector<std::string> wrt_names;
};

absl::StatusOr<LossGraph> BuildLossGraph(const graph::Node& node, int64_t opset,
                                         const std::vector<Tensor>& inputs,
                                         const std::set<int>& wrt, uint32_t seed) {
  LossGraph lg;
  graph::Graph& g = lg.graph;
  g.name = "gradcheck_" + node.op_type;
  g.opset_imports[""] = opset;
  if (!node.domain.empty()) g.opset_imports[node.domain] = node.domain == "com.microsoft" ? 1 : 1;
  g.opset_imports["com.lasgd"] = 1;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    if (!node.HasInput(i) || i >= inputs.size() || !inputs[i].defined()) continue;
    if (wrt.count(static_cast<int>(i))) {
      graph::ValueInfo vi;
      vi.name = node.inputs[i];
      vi.dtype = inputs[i].dtype();
      vi.shape = inputs[i].shape();
      vi.has_shape = true;
      vi.dim_params.assign(vi.shape.size(), "");
      g.inputs.push_back(vi);
      lg.wrt_names.push_back(node.inputs[i]);
    } else {
      g.initializers[node.inputs[i]] = inputs[i].Clone();
      g.constant_names.insert(node.inputs[i]);
    }
  }
  g.nodes.push_back(node);
  for (const std::string& out : node.outputs) {
    if (out.empty()) continue;
    graph::ValueInfo vi;
    vi.name = out;
    g.outputs.push_back(vi);
  }
  RETURN_IF_ERROR(graph::InferShapesAndFoldConstants(g, {}));
  // loss = sum over float outputs of sum(W_o * y_o).
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<std::string> terms;
  int k = 0;
  for (const std::string& out : node.outputs) {
    const graph::ValueInfo* vi = g.FindValueInfo(out);
    if (out.empty() || !vi || !IsFloatingPoint(vi->dtype)) continue;
    Tensor w = Tensor::Allocate(vi->dtype, vi->shape);
    for (int64_t e = 0; e < w.num_elements(); ++e) w.SetFromDouble(e, dist(rng));
    std::string wname = absl::StrCat("gradcheck_w", k);
    g.initializers[wname] = w;
    g.constant_names.insert(wname);
    graph::Node mul;
    mul.name = absl::StrCat("gradcheck_mul", k);
    mul.op_type = "Mul";
    mul.inputs = {out, wname};
    mul.outputs = {absl::StrCat("gradcheck_prod", k)};
    graph::Node sum;
    sum.name = absl::StrCat("gradcheck_sum", k);
    sum.op_type = "ReduceSumTo";
    sum.domain = "com.lasgd";
    sum.inputs = {mul.outputs[0]};
    sum.outputs = {absl::StrCat("gradcheck_term", k)};
    sum.attributes["shape"] = graph::Attribute::Ints({});
    terms.push_back(sum.outputs[0]);
    g.nodes.push_back(mul);
    g.nodes.push_back(sum);
    ++k;
  }
  if (terms.empty()) return absl::InvalidArgumentError("the node has no floating-point output");
  graph::Node total;
  total.name = "gradcheck_total";
  total.op_type = "Sum";
  total.inputs = terms;
  total.outputs = {"gradcheck_loss"};
  g.nodes.push_back(total);
  lg.loss = "gradcheck_loss";
  g.outputs.clear();
  graph::ValueInfo loss_vi;
  loss_vi.name = lg.loss;
  g.outputs.push_back(loss_vi);
  RETURN_IF_ERROR(graph::InferShapesAndFoldConstants(g, {}));
  return lg;
}

runtime::CompileOptions Options() {
  runtime::CompileOptions o;
  o.pipeline.fuse = false;
  return o;
}

}  // namespace

::testing::AssertionResult CheckGradients(const graph::Node& node, int64_t opset,
                                          const std::vector<Tensor>& inputs,
                                          const GradCheckOptions& options) {
  std::set<int> wrt(options.wrt.begin(), options.wrt.end());
  if (wrt.empty()) {
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].defined() && IsFloatingPoint(inputs[i].dtype()) && node.HasInput(i))
        wrt.insert(i);
  }
  auto lg = BuildLossGraph(node, opset, inputs, wrt, options.seed);
  if (!lg.ok()) return ::testing::AssertionFailure() << "building the loss graph: " << lg.status();
  // Forward-only executor for finite differences.
  auto forward = runtime::Executor::Create(lg->graph, Options());
  if (!forward.ok())
    return ::testing::AssertionFailure() << "compiling the forward graph: " << forward.status();
  // Gradient graph: loss and every input gradient as outputs.
  graph::Graph grad_graph = lg->graph;
  std::set<std::string> wrt_names(lg->wrt_names.begin(), lg->wrt_names.end());
  auto grads = graph::BuildGradients(grad_graph, lg->loss, wrt_names);
  if (!grads.ok()) return ::testing::AssertionFailure() << "autodiff: " << grads.status();
  for (const std::string& w : lg->wrt_names) {
    graph::ValueInfo vi;
    vi.name = grads->gradients.at(w);
    grad_graph.outputs.push_back(vi);
  }
  auto backward = runtime::Executor::Create(grad_graph, Options());
  if (!backward.ok())
    return ::testing::AssertionFailure() << "compiling the gradient graph: " << backward.status();

  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (wrt.count(static_cast<int>(i))) feeds[node.inputs[i]] = inputs[i].Clone();
  auto analytic = (*backward)->Run(feeds);
  if (!analytic.ok())
    return ::testing::AssertionFailure() << "running the gradient graph: " << analytic.status();

  auto loss_at = [&](const std::map<std::string, Tensor>& f) -> absl::StatusOr<double> {
    auto out = (*forward)->Run(f);
    if (!out.ok()) return out.status();
    return out->at(lg->loss).GetAsDouble(0);
  };
  int checked = 0;
  for (const std::string& w : lg->wrt_names) {
    const Tensor& g = analytic->at(grads->gradients.at(w));
    Tensor& x = feeds.at(w);
    int64_t n = x.num_elements();
    int64_t stride = 1;
    if (options.max_elements_per_input > 0 && n > options.max_elements_per_input) {
      stride = (n + options.max_elements_per_input - 1) / options.max_elements_per_input;
    }
    for (int64_t e = 0; e < n; e += stride) {
      double original = x.GetAsDouble(e);
      x.SetFromDouble(e, original + options.eps);
      auto plus = loss_at(feeds);
      x.SetFromDouble(e, original - options.eps);
      auto minus = loss_at(feeds);
      x.SetFromDouble(e, original);
      if (!plus.ok() || !minus.ok()) return ::testing::AssertionFailure() << "forward run failed";
      double numeric = (*plus - *minus) / (2 * options.eps);
      double a = g.GetAsDouble(e);
      if (!(std::fabs(a - numeric) <= options.atol + options.rtol * std::fabs(numeric))) {
        return ::testing::AssertionFailure()
               << node.op_type << ": d loss / d " << w << "[" << e << "] analytic " << a
               << " vs numeric " << numeric << " (diff " << std::fabs(a - numeric) << ")";
      }
      ++checked;
    }
  }
  if (checked == 0) return ::testing::AssertionFailure() << "no input elements were checked";
  return ::testing::AssertionSuccess() << checked << " elements checked";
}

}  // namespace lasgd::testing
