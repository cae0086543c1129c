// Liveness-based placement of intermediate tensors in one arena.
//
// Each buffer is live from the step that writes it to the last step that
// reads it; two buffers may share bytes when their lifetimes do not overlap.
// Placement is greedy by size (largest first, lowest offset that fits), the
// scheme TFLite's ArenaPlanner uses: simple and close to optimal in practice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lasgd::runtime {

struct BufferRequest {
  size_t bytes;
  int first_step;  // writer
  int last_step;   // last reader (inclusive)
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // per request, 64-byte aligned
  size_t arena_bytes = 0;       // peak
  size_t naive_bytes = 0;       // sum of all buffers, for comparison
};

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests);

}  // namespace lasgd::runtime
