#include "runtime/learning_curve.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lasgd::runtime {

void LearningCurve::MaybeSnapshot(double wall_s, int64_t step, int64_t samples, const Tensor& arena,
                                  bool force) {
  if (!force && last_s_ >= 0 && wall_s - last_s_ < every_s_) return;
  last_s_ = wall_s;
  Snapshot s;
  s.point.wall_s = wall_s;
  s.point.step = step;
  s.point.samples = samples;
  s.arena = arena.Clone();
  snapshots_.push_back(std::move(s));
}

absl::StatusOr<std::vector<CurvePoint>> LearningCurve::EvaluateAndWrite(
    Tensor& arena, const std::function<absl::StatusOr<std::pair<double, double>>()>& evaluate,
    const std::string& path) {
  Tensor current = arena.Clone();
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  std::vector<CurvePoint> points;
  absl::Status status;
  for (Snapshot& s : snapshots_) {
    arena.CopyFrom(s.arena);
    auto result = evaluate();
    if (!result.ok()) {
      status = result.status();
      break;
    }
    s.point.test_top1 = result->first;
    s.point.test_loss = result->second;
    out << absl::StrFormat(
        "{\"wall_s\": %.3f, \"step\": %d, \"samples\": %d, \"test_top1\": %.6f, "
        "\"test_loss\": %.6f}\n",
        s.point.wall_s, s.point.step, s.point.samples, s.point.test_top1, s.point.test_loss);
    points.push_back(s.point);
  }
  arena.CopyFrom(current);
  if (!status.ok()) return status;
  if (!out) return absl::DataLossError(absl::StrCat("error writing '", path, "'"));
  return points;
}

}  // namespace lasgd::runtime
