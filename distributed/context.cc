#include "distributed/context.h"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace lasgd::distributed {
namespace {

constexpr double kHalf = 65536.0;

std::mutex& RegistryMutex() {
  static std::mutex* m = new std::mutex();
  return *m;
}

std::map<int64_t, std::shared_ptr<DistributedContext>>& Registry() {
  static auto* r = new std::map<int64_t, std::shared_ptr<DistributedContext>>();
  return *r;
}

int64_t& NextId() {
  static int64_t next = 1;
  return next;
}

}  // namespace

void EncodeProgress(const RankProgress& mine, int rank, int size, float* slots) {
  for (int i = 0; i < size * kProgressSlots; ++i) slots[i] = 0.f;
  float* s = slots + rank * kProgressSlots;
  // Counts below 2^32 split into two exact 16-bit halves.
  s[kSamplesHigh] = static_cast<float>(mine.samples / static_cast<int64_t>(kHalf));
  s[kSamplesLow] = static_cast<float>(mine.samples % static_cast<int64_t>(kHalf));
  s[kStepsHigh] = static_cast<float>(mine.steps / static_cast<int64_t>(kHalf));
  s[kStepsLow] = static_cast<float>(mine.steps % static_cast<int64_t>(kHalf));
  s[kComputeSeconds] = static_cast<float>(mine.compute_s);
  s[kCommSeconds] = static_cast<float>(mine.comm_s);
  s[kWaitSeconds] = static_cast<float>(mine.wait_s);
}

std::vector<RankProgress> DecodeProgress(const float* averaged_slots, int size) {
  std::vector<RankProgress> out(size);
  auto whole = [&](float mean) { return std::llround(static_cast<double>(mean) * size); };
  for (int r = 0; r < size; ++r) {
    const float* s = averaged_slots + r * kProgressSlots;
    out[r].samples = whole(s[kSamplesHigh]) * static_cast<int64_t>(kHalf) + whole(s[kSamplesLow]);
    out[r].steps = whole(s[kStepsHigh]) * static_cast<int64_t>(kHalf) + whole(s[kStepsLow]);
    out[r].compute_s = static_cast<double>(s[kComputeSeconds]) * size;
    out[r].comm_s = static_cast<double>(s[kCommSeconds]) * size;
    out[r].wait_s = static_cast<double>(s[kWaitSeconds]) * size;
  }
  return out;
}

absl::Status DistributedContext::TimedWait(Request& request, const std::string& what) {
  auto start = std::chrono::steady_clock::now();
  absl::Status st = request.Wait();
  wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return WithContext(st, absl::StrCat("rank ", rank, " of ", size, ": ", what));
}

int64_t RegisterContext(std::shared_ptr<DistributedContext> context) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  int64_t id = NextId()++;
  Registry()[id] = std::move(context);
  return id;
}

void UnregisterContext(int64_t id) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry().erase(id);
}

absl::StatusOr<DistributedContext*> FindContext(int64_t id) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto it = Registry().find(id);
  if (it == Registry().end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("distributed context ", id,
                     " is not registered (its DataParallel was destroyed, or the graph was "
                     "compiled without one)"));
  }
  return it->second.get();
}

}  // namespace lasgd::distributed
