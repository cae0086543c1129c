#include "runtime/executor.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/evaluate_node.h"
#include "ops/onednn_layout.h"
#include "runtime/layout_plan.h"
#include "runtime/memory_plan.h"

namespace lasgd::runtime {
namespace {

bool AllFinite(const Tensor& t) {
  if (t.dtype() == DataType::kFloat32) {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.num_elements(); ++i)
      if (!std::isfinite(p[i])) return false;
    return true;
  }
  for (int64_t i = 0; i < t.num_elements(); ++i)
    if (!std::isfinite(t.GetAsDouble(i))) return false;
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(graph::Graph graph,
                                                           const CompileOptions& options) {
  std::unique_ptr<Executor> ex(new Executor());
  ex->graph_ = std::move(graph);
  RETURN_IF_ERROR(graph::RunInferencePipeline(ex->graph_, options.pipeline));
  RETURN_IF_ERROR(ex->Build(options));
  return ex;
}

absl::Status Executor::Build(const CompileOptions& options) {
  num_threads_ = options.num_threads;
  std::set<std::string> mutable_values = options.mutable_initializers;
  for (const auto& [state, source] : graph_.state_updates) mutable_values.insert(state);
  profile_ = options.profile;
  if (num_threads_ > 0) omp_set_num_threads(num_threads_);
  auto add_slot = [&](const std::string& name, Slot::Kind kind, Tensor t) {
    slot_of_[name] = static_cast<int>(slots_.size());
    slots_.push_back({name, std::move(t), kind, 0});
  };
  for (const graph::ValueInfo& in : graph_.inputs) add_slot(in.name, Slot::Kind::kInput, Tensor());
  for (auto& [name, t] : graph_.initializers) add_slot(name, Slot::Kind::kInitializer, t);

  std::vector<BufferRequest> requests;
  std::vector<int> request_slot;
  std::map<int, size_t> request_of_slot;
  const int n_steps = static_cast<int>(graph_.nodes.size());
  for (int s = 0; s < n_steps; ++s) {
    const graph::Node& node = graph_.nodes[s];
    int64_t opset = graph_.OpsetFor(node.domain);
    ASSIGN_OR_RETURN(const ops::OpSchema* schema, ops::OpRegistry::Global().Find(node, opset));
    Step step;
    step.node = s;
    ops::KernelBuildContext bctx{node, opset, {}, {}, {}, {}, {}};
    for (const std::string& in : node.inputs) {
      // An inference plan never changes its initializers: kernels may
      // prepare them once (pointers into graph_.initializers stay valid).
      auto init = graph_.initializers.find(in);
      bool fixed = init != graph_.initializers.end() && !mutable_values.count(in);
      bctx.constant_inputs.push_back(fixed ? &init->second : nullptr);
      if (in.empty()) {
        step.inputs.push_back(-1);
        bctx.input_dtypes.push_back(DataType::kUndefined);
        bctx.input_shapes.push_back({});
        continue;
      }
      auto it = slot_of_.find(in);
      if (it == slot_of_.end())
        return absl::InternalError(absl::StrCat(node.Describe(), ": no slot for '", in, "'"));
      step.inputs.push_back(it->second);
      const Slot& slot = slots_[it->second];
      if (slot.kind == Slot::Kind::kInput) {
        const graph::ValueInfo* vi = graph_.FindValueInfo(in);
        bctx.input_dtypes.push_back(vi->dtype);
        bctx.input_shapes.push_back(vi->shape);
      } else {
        bctx.input_dtypes.push_back(slot.tensor.dtype());
        bctx.input_shapes.push_back(slot.tensor.shape());
      }
      auto req = request_of_slot.find(it->second);
      if (req != request_of_slot.end()) requests[req->second].last_step = s;
    }
    for (const std::string& out : node.outputs) {
      if (out.empty()) {
        step.outputs.push_back(-1);
        bctx.output_dtypes.push_back(DataType::kUndefined);
        bctx.output_shapes.push_back({});
        continue;
      }
      const graph::ValueInfo* vi = graph_.FindValueInfo(out);
      if (!vi || !vi->IsStatic()) {
        return absl::InternalError(
            absl::StrCat(node.Describe(), ": output '", out, "' has no static shape"));
      }
      bctx.output_dtypes.push_back(vi->dtype);
      bctx.output_shapes.push_back(vi->shape);
      int slot = static_cast<int>(slots_.size());
      add_slot(out, Slot::Kind::kArena, Tensor::View(vi->dtype, vi->shape, nullptr));
      step.outputs.push_back(slot);
      request_of_slot[slot] = requests.size();
      requests.push_back({slots_[slot].tensor.nbytes(), s, s});
      request_slot.push_back(slot);
    }
    KernelChoice choice{node.name, node.op_type, "", {}};
    auto kernel = ops::BuildKernel(*schema, bctx, options.kernel, &choice.kernel, &choice.refused);
    if (!kernel.ok()) return WithContext(kernel.status(), "while choosing kernels");
    step.kernel = std::move(*kernel);
    choices_.push_back(std::move(choice));
    steps_.push_back(std::move(step));
  }
  // Graph outputs and state-update sources stay live to the end: they are
  // read after the last step.
  std::vector<std::string> read_at_end;
  for (const graph::ValueInfo& out : graph_.outputs) read_at_end.push_back(out.name);
  for (const auto& [state, source] : graph_.state_updates) {
    if (!slot_of_.count(state) || !graph_.IsInitializer(state)) {
      return absl::InvalidArgumentError(absl::StrCat("state '", state, "' is not an initializer"));
    }
    read_at_end.push_back(source);
  }
  for (const std::string& name : read_at_end) {
    auto it = slot_of_.find(name);
    if (it == slot_of_.end())
      return absl::InternalError(absl::StrCat("value '", name, "' read after the run has no slot"));
    auto req = request_of_slot.find(it->second);
    if (req != request_of_slot.end()) requests[req->second].last_step = n_steps;
  }
  RETURN_IF_ERROR(PlanValueLayouts());
  for (size_t r = 0; r < requests.size(); ++r) {
    const Slot& slot = slots_[request_slot[r]];
    if (slot.blocked) requests[r].bytes = ops::onednn::BlockedBytes(slot.tensor.shape());
  }
  MemoryPlan mp = PlanMemory(requests);
  arena_bytes_ = mp.arena_bytes;
  naive_bytes_ = mp.naive_bytes;
  void* arena = std::aligned_alloc(64, std::max<size_t>(64, (arena_bytes_ + 63) / 64 * 64));
  if (!arena)
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate a ", arena_bytes_, "-byte arena"));
  arena_ = std::shared_ptr<void>(arena, [](void* p) { std::free(p); });
  for (size_t r = 0; r < requests.size(); ++r) {
    Slot& slot = slots_[request_slot[r]];
    slot.offset = mp.offsets[r];
    slot.tensor = Tensor::View(slot.tensor.dtype(), slot.tensor.shape(),
                               static_cast<char*>(arena) + slot.offset);
  }
  return absl::OkStatus();
}

absl::Status Executor::PlanValueLayouts() {
  std::set<std::string> graph_outputs;
  for (const graph::ValueInfo& out : graph_.outputs) graph_outputs.insert(out.name);
  for (const auto& [state, source] : graph_.state_updates) graph_outputs.insert(source);
  std::vector<bool> eligible(slots_.size(), false);
  for (size_t v = 0; v < slots_.size(); ++v) {
    const Slot& slot = slots_[v];
    eligible[v] = slot.kind == Slot::Kind::kArena && !graph_outputs.count(slot.name) &&
                  ops::onednn::CanBeBlocked(slot.tensor.dtype(), slot.tensor.shape());
  }
  std::vector<LayoutStep> layout_steps;
  std::vector<std::string> names;
  for (Step& step : steps_) {
    layout_steps.push_back({step.kernel.get(), step.inputs, step.outputs});
    names.push_back(graph_.nodes[step.node].Describe());
  }
  LayoutPlan plan = PlanLayouts(layout_steps, eligible);
  RETURN_IF_ERROR(ApplyLayouts(layout_steps, plan, names));
  for (size_t v = 0; v < slots_.size(); ++v) slots_[v].blocked = plan.blocked[v];
  blocked_values_ = plan.blocked_values;
  reorders_avoided_ = plan.reorders_avoided;
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, Tensor>> Executor::Run(
    const std::map<std::string, Tensor>& feeds, const RunOptions& run_options) {
  if (num_threads_ > 0) omp_set_num_threads(num_threads_);
  for (const graph::ValueInfo& in : graph_.inputs) {
    auto it = feeds.find(in.name);
    if (it == feeds.end())
      return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "' was not given"));
    const Tensor& t = it->second;
    if (t.dtype() != in.dtype || t.shape() != in.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "': expected ", DataTypeName(in.dtype),
                       ShapeToString(in.shape), ", got ", t.TypeString()));
    }
    slots_[slot_of_.at(in.name)].tensor = t;
  }
  for (const auto& [name, t] : feeds) {
    if (!graph_.IsGraphInput(name)) {
      std::vector<std::string> names;
      for (const graph::ValueInfo& in : graph_.inputs) names.push_back(in.name);
      return absl::InvalidArgumentError(absl::StrCat(
          "'", name, "' is not an input of the model; inputs are: ", absl::StrJoin(names, ", ")));
    }
  }
  std::vector<const Tensor*> ins;
  std::vector<Tensor*> outs;
  if (profile_) step_seconds_.resize(steps_.size(), 0.0);
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& step = steps_[i];
    ins.clear();
    outs.clear();
    for (int s : step.inputs) ins.push_back(s < 0 ? nullptr : &slots_[s].tensor);
    for (int s : step.outputs) outs.push_back(s < 0 ? nullptr : &slots_[s].tensor);
    const graph::Node& node = graph_.nodes[step.node];
    ops::KernelContext ctx(node, ins, outs);
    auto start =
        profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    absl::Status st = step.kernel->Run(ctx);
    if (!st.ok()) return WithContext(st, absl::StrCat("while running ", node.Describe()));
    if (run_options.check_finite) {
      for (size_t o = 0; o < outs.size(); ++o) {
        if (!outs[o] || !IsFloatingPoint(outs[o]->dtype()) || AllFinite(*outs[o])) continue;
        return absl::DataLossError(absl::StrCat(
            node.Describe(), " produced a NaN or Inf in output '", node.outputs[o], "'"));
      }
    }
    if (profile_)
      step_seconds_[i] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (profile_) ++profiled_runs_;
  std::map<std::string, Tensor> results;
  for (const graph::ValueInfo& out : graph_.outputs)
    results[out.name] = slots_[slot_of_.at(out.name)].tensor.Clone();
  if (!run_options.skip_updates_unless_finite.empty()) {
    auto it = results.find(run_options.skip_updates_unless_finite);
    if (it != results.end() && !AllFinite(it->second)) {
      return absl::DataLossError(
          absl::StrCat("'", it->first, "' is not finite; state updates skipped"));
    }
  }
  // State updates (TrainingInfoProto's update_binding): the new values were
  // all computed from the old ones, so writing them now is race-free.
  for (const auto& [state, source] : graph_.state_updates) {
    slots_[slot_of_.at(state)].tensor.CopyFrom(slots_[slot_of_.at(source)].tensor);
  }
  return results;
}

std::map<std::string, Tensor> Executor::StateTensors() const {
  std::map<std::string, Tensor> state;
  for (const auto& [name, source] : graph_.state_updates)
    state[name] = slots_[slot_of_.at(name)].tensor;
  return state;
}

std::string Executor::ProfileReport(int top_steps) const {
  std::ostringstream os;
  if (profiled_runs_ == 0) return "no profiled runs\n";
  double total = 0;
  std::map<std::string, std::pair<double, int>> by_op;
  for (size_t i = 0; i < step_seconds_.size(); ++i) {
    total += step_seconds_[i];
    auto& [seconds, count] = by_op[choices_[i].op + " [" + choices_[i].kernel + "]"];
    seconds += step_seconds_[i];
    ++count;
  }
  std::vector<std::pair<double, std::string>> ops;
  for (const auto& [op, v] : by_op) ops.push_back({v.first, absl::StrCat(op, " x", v.second)});
  std::sort(ops.rbegin(), ops.rend());
  os << "profile over " << profiled_runs_ << " run(s): " << 1e3 * total / profiled_runs_
     << " ms per run\n";
  for (const auto& [seconds, op] : ops) {
    os << absl::StrFormat("  %8.2f ms %5.1f%%  %s\n", 1e3 * seconds / profiled_runs_,
                          100 * seconds / total, op);
  }
  std::vector<size_t> order(step_seconds_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return step_seconds_[a] > step_seconds_[b]; });
  os << "slowest steps:\n";
  for (int k = 0; k < top_steps && k < static_cast<int>(order.size()); ++k) {
    size_t i = order[k];
    os << absl::StrFormat("  %8.2f ms  %s '%s' [%s]\n", 1e3 * step_seconds_[i] / profiled_runs_,
                          choices_[i].op, choices_[i].node, choices_[i].kernel);
  }
  return os.str();
}

std::string Executor::PlanReport() const {
  std::ostringstream os;
  os << "plan: " << steps_.size() << " steps, arena " << arena_bytes_ << " bytes (" << naive_bytes_
     << " without reuse)\n";
  os << "layouts: " << blocked_values_ << " values stored " << ops::onednn::BlockedLayoutName()
     << ", " << reorders_avoided_ << " reorders avoided\n";
  for (size_t i = 0; i < steps_.size(); ++i) {
    const KernelChoice& c = choices_[i];
    os << "  " << i << ": " << c.op << " '" << c.node << "' -> " << c.kernel;
    if (!c.refused.empty()) os << "  (refused: " << absl::StrJoin(c.refused, "; ") << ")";
    os << "\n";
    for (int v : steps_[i].outputs) {
      if (v < 0) continue;
      const Slot& slot = slots_[v];
      os << "      out '" << slot.name << "' " << slot.tensor.TypeString() << " "
         << (slot.blocked ? ops::onednn::BlockedLayoutName() : "plain") << "\n";
    }
  }
  return os.str();
}

}  // namespace lasgd::runtime
