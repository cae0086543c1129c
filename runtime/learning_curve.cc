#include "runtime/learning_curve.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lasgd::runtime {

void LearningCurve::Snapshot(double wall_s, int64_t step, int64_t samples, const Tensor& arena,
                             Tensor average) {
  last_s_ = wall_s;
  Copy c;
  c.point.wall_s = wall_s;
  c.point.step = step;
  c.point.samples = samples;
  c.point.has_average = average.defined();
  c.arena = arena.Clone();
  c.average = std::move(average);
  copies_.push_back(std::move(c));
}

absl::StatusOr<std::vector<CurvePoint>> LearningCurve::EvaluateAndWrite(
    Tensor& arena, const std::function<absl::StatusOr<std::pair<double, double>>()>& evaluate,
    const std::string& path) {
  Tensor current = arena.Clone();
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write '", path, "'"));
  std::vector<CurvePoint> points;
  absl::Status status;
  auto evaluate_copy = [&](const Tensor& copy, double* top1, double* loss) {
    arena.CopyFrom(copy);
    auto result = evaluate();
    if (!result.ok()) return result.status();
    *top1 = result->first;
    *loss = result->second;
    return absl::OkStatus();
  };
  for (Copy& c : copies_) {
    CurvePoint& p = c.point;
    status = evaluate_copy(c.arena, &p.test_top1, &p.test_loss);
    if (status.ok() && p.has_average)
      status = evaluate_copy(c.average, &p.average_top1, &p.average_loss);
    if (!status.ok()) break;
    out << absl::StrFormat(
        "{\"wall_s\": %.3f, \"step\": %d, \"samples\": %d, \"test_top1\": %.6f, "
        "\"test_loss\": %.6f",
        p.wall_s, p.step, p.samples, p.test_top1, p.test_loss);
    if (p.has_average) {
      out << absl::StrFormat(", \"average_top1\": %.6f, \"average_loss\": %.6f", p.average_top1,
                             p.average_loss);
    }
    out << "}\n";
    points.push_back(p);
  }
  arena.CopyFrom(current);
  if (!status.ok()) return status;
  if (!out) return absl::DataLossError(absl::StrCat("error writing '", path, "'"));
  return points;
}

}  // namespace lasgd::runtime
