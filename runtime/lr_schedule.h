// The learning rate of every optimizer step, from the [schedule] section of
// the training config (runtime/train_config.h).
//
//   lr(s) = base * warmup(s) * decay(s)       for the 0-based optimizer step s
//   base  = optimizer.lr * batch / base_batch_size   (when base_batch_size > 0)
//
// where s counts optimizer updates done before this one, so lr(s) is the rate
// torch uses in the (s+1)-th optimizer.step() when its scheduler is stepped
// after every optimizer step (epoch-based schedulers: after every epoch).
// Each part matches a torch.optim.lr_scheduler class exactly (up to rounding):
//
//   constant   decay = 1.
//   step       decay = gamma^(epoch / step_size) with epoch = s / steps_per_epoch
//              (integer division): StepLR(step_size, gamma) stepped per epoch.
//   multistep  decay = gamma^(number of milestones <= epoch), milestones in
//              epochs, duplicates counting twice: MultiStepLR(milestones, gamma)
//              stepped per epoch.
//   cosine     lr = min_lr + (base - min_lr) (1 + cos(pi s / T)) / 2 over the
//              whole run, T = total_steps, stepped per optimizer step:
//              CosineAnnealingLR(T_max=T, eta_min=min_lr); held at min_lr for
//              s >= T (torch would start rising again).
//   warm-up    warmup(s) = (s + 1) / W for s < W, then 1, W = warmup_steps:
//              LinearLR(start_factor=1/W, end_factor=1, total_iters=W-1)
//              stepped per optimizer step, so the first step uses base/W
//              (never 0) and step W-1 the full rate. Warm-up multiplies the
//              other schedule, as ChainedScheduler([LinearLR, X]) does for
//              constant, step, multistep and cosine with min_lr = 0 (with
//              min_lr > 0 torch's chained cosine is not a product; ours is).
//   scaling    the linear scaling rule of Goyal et al. (2017): the caller
//              passes the global batch (per-rank batch x ranks x accumulate).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/train_config.h"

namespace lasgd::runtime {

class LearningRateSchedule {
 public:
  // `steps_per_epoch` >= 1 (optimizer steps, not micro-batches); `total_steps`
  // is the length of the run (needed by cosine only, may be 0 otherwise);
  // `batch_size` is the global batch the linear scaling rule compares with
  // config.base_batch_size. Errors name the offending [schedule] key.
  static absl::StatusOr<LearningRateSchedule> Create(const ScheduleConfig& config, double base_lr,
                                                     int64_t steps_per_epoch, int64_t total_steps,
                                                     int64_t batch_size);

  // The rate for 0-based optimizer step `step` (< 0 is treated as 0).
  double LearningRate(int64_t step) const;
  // The base rate after batch scaling, before warm-up and decay.
  double base_lr() const { return base_lr_; }
  // "cosine from 0.1 to 0 over 1000 steps, linear warm-up over 100 steps".
  std::string Describe() const;

 private:
  enum class Kind { kConstant, kStep, kMultiStep, kCosine };

  Kind kind_ = Kind::kConstant;
  double base_lr_ = 0;
  int64_t steps_per_epoch_ = 1;
  int64_t total_steps_ = 0;
  int64_t warmup_steps_ = 0;
  int64_t step_size_ = 0;
  std::vector<int64_t> milestones_;  // sorted
  double gamma_ = 0.1;
  double min_lr_ = 0;
};

}  // namespace lasgd::runtime
