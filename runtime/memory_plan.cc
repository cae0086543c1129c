#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace lasgd::runtime {

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests) {
  constexpr size_t kAlign = 64;
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  struct Placed {
    size_t offset, end;
    int first, last;
  };
  std::vector<Placed> placed;
  for (size_t idx : order) {
    const BufferRequest& r = requests[idx];
    size_t size = (std::max<size_t>(r.bytes, 1) + kAlign - 1) / kAlign * kAlign;
    plan.naive_bytes += size;
    // Blocks whose lifetimes overlap this one, by offset.
    std::vector<Placed> conflicts;
    for (const Placed& p : placed)
      if (p.first <= r.last_step && r.first_step <= p.last) conflicts.push_back(p);
    std::sort(conflicts.begin(), conflicts.end(),
              [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
    size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (const Placed& c : conflicts) {
      if (c.offset >= cursor && c.offset - cursor >= size && c.offset - cursor < best_gap) {
        best = cursor;
        best_gap = c.offset - cursor;
      }
      cursor = std::max(cursor, c.end);
    }
    if (best == SIZE_MAX) best = cursor;
    plan.offsets[idx] = best;
    placed.push_back({best, best + size, r.first_step, r.last_step});
    plan.arena_bytes = std::max(plan.arena_bytes, best + size);
  }
  return plan;
}

}  // namespace lasgd::runtime
