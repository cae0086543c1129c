#include "runtime/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lasgd::runtime {

absl::StatusOr<LearningRateSchedule> LearningRateSchedule::Create(const ScheduleConfig& config,
                                                                  double base_lr,
                                                                  int64_t steps_per_epoch,
                                                                  int64_t total_steps,
                                                                  int64_t batch_size) {
  LearningRateSchedule s;
  if (config.type == "constant") {
    s.kind_ = Kind::kConstant;
  } else if (config.type == "step") {
    s.kind_ = Kind::kStep;
  } else if (config.type == "multistep") {
    s.kind_ = Kind::kMultiStep;
  } else if (config.type == "cosine") {
    s.kind_ = Kind::kCosine;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "schedule.type must be one of constant, step, multistep, cosine; got '", config.type, "'"));
  }
  if (!std::isfinite(base_lr) || base_lr < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.lr must be a finite number >= 0; got ", base_lr));
  }
  if (steps_per_epoch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the learning-rate schedule needs at least one optimizer step per epoch; got ",
                     steps_per_epoch, " (is the data set smaller than one batch?)"));
  }
  if (config.warmup_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule.warmup_steps must be >= 0; got ", config.warmup_steps));
  }
  if (config.base_batch_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schedule.base_batch_size must be >= 0 (0 = off); got ", config.base_batch_size));
  }
  if (config.base_batch_size > 0 && batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schedule.base_batch_size scales the learning rate by the batch size, which must be >= 1; "
        "got ",
        batch_size));
  }
  if (s.kind_ == Kind::kStep || s.kind_ == Kind::kMultiStep) {
    if (!std::isfinite(config.gamma) || config.gamma <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("schedule.gamma must be > 0; got ", config.gamma));
    }
  }
  if (s.kind_ == Kind::kStep && config.step_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schedule.type = step needs schedule.step_size >= 1 (epochs between decays); got ",
        config.step_size));
  }
  if (s.kind_ == Kind::kMultiStep) {
    if (config.milestones.empty()) {
      return absl::InvalidArgumentError(
          "schedule.type = multistep needs schedule.milestones (epochs at which lr *= gamma)");
    }
    for (int64_t m : config.milestones) {
      if (m < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("schedule.milestones must be epochs >= 0; got [",
                         absl::StrJoin(config.milestones, ", "), "]"));
      }
    }
  }
  if (s.kind_ == Kind::kCosine) {
    if (total_steps < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "schedule.type = cosine anneals over the whole run, which must have at least one step; "
          "got ",
          total_steps));
    }
    if (!std::isfinite(config.min_lr) || config.min_lr < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("schedule.min_lr must be >= 0; got ", config.min_lr));
    }
  }

  s.base_lr_ = base_lr;
  if (config.base_batch_size > 0) {
    s.base_lr_ =
        base_lr * static_cast<double>(batch_size) / static_cast<double>(config.base_batch_size);
  }
  s.steps_per_epoch_ = steps_per_epoch;
  s.total_steps_ = total_steps;
  s.warmup_steps_ = config.warmup_steps;
  s.step_size_ = config.step_size;
  s.milestones_ = config.milestones;
  std::sort(s.milestones_.begin(), s.milestones_.end());
  s.gamma_ = config.gamma;
  s.min_lr_ = config.min_lr;
  return s;
}

double LearningRateSchedule::LearningRate(int64_t step) const {
  step = std::max<int64_t>(step, 0);
  const int64_t epoch = step / steps_per_epoch_;
  double lr = base_lr_;
  switch (kind_) {
    case Kind::kConstant:
      break;
    case Kind::kStep:
      lr = base_lr_ * std::pow(gamma_, static_cast<double>(epoch / step_size_));
      break;
    case Kind::kMultiStep: {
      // bisect_right, as torch's MultiStepLR closed form: a milestone counts
      // from its own epoch on.
      auto passed =
          std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
      lr = base_lr_ * std::pow(gamma_, static_cast<double>(passed));
      break;
    }
    case Kind::kCosine: {
      const double t = static_cast<double>(std::min(step, total_steps_));
      const double pi = std::acos(-1.0);
      lr = min_lr_ +
           (base_lr_ - min_lr_) * (1 + std::cos(pi * t / static_cast<double>(total_steps_))) / 2;
      break;
    }
  }
  if (step < warmup_steps_) {
    lr *= static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  }
  return lr;
}

std::string LearningRateSchedule::Describe() const {
  std::string text;
  switch (kind_) {
    case Kind::kConstant:
      text = absl::StrCat("constant ", base_lr_);
      break;
    case Kind::kStep:
      text = absl::StrCat(base_lr_, " times ", gamma_, " every ", step_size_, " epochs");
      break;
    case Kind::kMultiStep:
      text = absl::StrCat(base_lr_, " times ", gamma_, " at epochs ",
                          absl::StrJoin(milestones_, ", "));
      break;
    case Kind::kCosine:
      text =
          absl::StrCat("cosine from ", base_lr_, " to ", min_lr_, " over ", total_steps_, " steps");
      break;
  }
  if (warmup_steps_ > 0) absl::StrAppend(&text, ", linear warm-up over ", warmup_steps_, " steps");
  return text;
}

}  // namespace lasgd::runtime
