#include "runtime/layout_plan.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace lasgd::runtime {

LayoutPlan PlanLayouts(const std::vector<LayoutStep>& steps, const std::vector<bool>& eligible) {
  const size_t n_values = eligible.size();
  std::vector<bool> producer_ok(n_values, false), readers_ok(n_values, true);
  std::vector<int> readers(n_values, 0);
  auto valid = [&](int v) { return v >= 0 && static_cast<size_t>(v) < n_values; };
  for (const LayoutStep& step : steps) {
    for (size_t i = 0; i < step.outputs.size(); ++i) {
      const int v = step.outputs[i];
      if (valid(v) && step.kernel) producer_ok[v] = step.kernel->AcceptsBlockedLayout(true, i);
    }
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      const int v = step.inputs[i];
      if (!valid(v)) continue;
      ++readers[v];
      if (!step.kernel || !step.kernel->AcceptsBlockedLayout(false, i)) readers_ok[v] = false;
    }
  }
  LayoutPlan plan;
  plan.blocked.assign(n_values, false);
  for (size_t v = 0; v < n_values; ++v) {
    plan.blocked[v] = eligible[v] && producer_ok[v] && readers[v] > 0 && readers_ok[v];
    if (plan.blocked[v]) {
      ++plan.blocked_values;
      plan.reorders_avoided += 1 + readers[v];
    }
  }
  for (const LayoutStep& step : steps) {
    std::vector<bool> in(step.inputs.size()), out(step.outputs.size());
    for (size_t i = 0; i < in.size(); ++i)
      in[i] = valid(step.inputs[i]) && plan.blocked[step.inputs[i]];
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = valid(step.outputs[i]) && plan.blocked[step.outputs[i]];
    plan.step_inputs.push_back(std::move(in));
    plan.step_outputs.push_back(std::move(out));
  }
  return plan;
}

absl::Status ApplyLayouts(const std::vector<LayoutStep>& steps, const LayoutPlan& plan,
                          const std::vector<std::string>& step_names) {
  for (size_t s = 0; s < steps.size(); ++s) {
    bool any = false;
    for (bool b : plan.step_inputs[s]) any = any || b;
    for (bool b : plan.step_outputs[s]) any = any || b;
    if (!any) continue;
    absl::Status st = steps[s].kernel->UseBlockedLayouts(plan.step_inputs[s], plan.step_outputs[s]);
    if (!st.ok()) {
      return WithContext(
          st, absl::StrCat("while switching ", s < step_names.size() ? step_names[s] : "",
                           " to the blocked layout"));
    }
  }
  return absl::OkStatus();
}

}  // namespace lasgd::runtime
