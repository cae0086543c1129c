// Test accuracy against wall time without evaluations slowing the run
// ([train] curve_every_s): rank 0 copies its model (the flat parameter arena)
// every so often during training, and after training each copy is evaluated
// and written to OUT_DIR/curve.jsonl. The straggler experiment plots these.
//
// Under lasgd and local SGD each rank's model wanders from the others between
// averages, and the model the run ends with is their average; so a point can
// also carry the newest exact average of all ranks' models that rank 0 holds
// (DataParallel::LatestAverage), evaluated next to rank 0's own model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace lasgd::runtime {

struct CurvePoint {
  double wall_s = 0;
  int64_t step = 0;
  int64_t samples = 0;   // over all ranks
  double test_top1 = 0;  // rank 0's own model
  double test_loss = 0;
  bool has_average = false;  // the newest average of all ranks' models, when there is one
  double average_top1 = 0;
  double average_loss = 0;
};

class LearningCurve {
 public:
  explicit LearningCurve(double every_s) : every_s_(every_s) {}

  // Whether a point is due after a step at `wall_s` seconds of training:
  // every_s has passed since the last one (or `force`).
  bool Due(double wall_s, bool force = false) const {
    return force || last_s_ < 0 || wall_s - last_s_ >= every_s_;
  }
  // Adds a point: a copy of `arena` and, when defined, `average` (an arena
  // of the same size holding the average of all ranks' models).
  void Snapshot(double wall_s, int64_t step, int64_t samples, const Tensor& arena,
                Tensor average = Tensor());

  // Loads each copy (and average) into `arena`, calls `evaluate` (which
  // reads the model through it) and writes one JSON line per point to `path`;
  // `arena` holds its current contents again afterwards.
  absl::StatusOr<std::vector<CurvePoint>> EvaluateAndWrite(
      Tensor& arena, const std::function<absl::StatusOr<std::pair<double, double>>()>& evaluate,
      const std::string& path);

 private:
  struct Copy {
    CurvePoint point;
    Tensor arena, average;
  };
  double every_s_;
  double last_s_ = -1;
  std::vector<Copy> copies_;
};

}  // namespace lasgd::runtime
