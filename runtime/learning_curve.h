// Test accuracy against wall time without evaluations slowing the run
// ([train] curve_every_s): rank 0 copies its model (the flat parameter arena)
// every so often during training, and after training each copy is evaluated
// and written to OUT_DIR/curve.jsonl. The straggler experiment plots these.
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
  int64_t samples = 0;  // over all ranks
  double test_top1 = 0;
  double test_loss = 0;
};

class LearningCurve {
 public:
  explicit LearningCurve(double every_s) : every_s_(every_s) {}

  // After a step at `wall_s` seconds of training: copies `arena` when
  // every_s has passed since the last copy (or `force`).
  void MaybeSnapshot(double wall_s, int64_t step, int64_t samples, const Tensor& arena,
                     bool force = false);

  // Loads each copy into `arena`, calls `evaluate` (which reads the model
  // through it) and writes one JSON line per copy to `path`; `arena` holds
  // its current contents again afterwards.
  absl::StatusOr<std::vector<CurvePoint>> EvaluateAndWrite(
      Tensor& arena, const std::function<absl::StatusOr<std::pair<double, double>>()>& evaluate,
      const std::string& path);

 private:
  struct Snapshot {
    CurvePoint point;
    Tensor arena;
  };
  double every_s_;
  double last_s_ = -1;
  std::vector<Snapshot> snapshots_;
};

}  // namespace lasgd::runtime
