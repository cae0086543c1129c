// com.lasgd SoftmaxCrossEntropyLossGrad and NegativeLogLikelihoodLossGrad
// (see ops/backward_ops.h): schemas, shape functions and reference kernels.
//
// Per sample s (an (n, d1..dk) position) with label y ≠ ignore_index, the
// loss is l_s = −w[y]·logp[s, y]. Its upstream gradient is g_s = dloss[s]
// (reduction none), dloss (sum) or dloss / Σ w[y_s] over the kept samples
// (mean). So
//   NLL:      dinput[s, c] = −g_s·w[y]·[c = y]
//   softmax:  dscores[s, c] = g_s·w[y]·(p[s, c] − [c = y])
//             + dlogp[s, c] − p[s, c]·Σ_c' dlogp[s, c']   (when log_prob has one)
// where p = softmax(scores) over the class axis.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "ops/backward_ops.h"

namespace lasgd::ops::backward_internal {
namespace {

enum class Reduction { kNone, kSum, kMean };

absl::StatusOr<Reduction> ParseReduction(const graph::Node& node) {
  const std::string r = node.GetString("reduction", "mean");
  if (r == "none") return Reduction::kNone;
  if (r == "sum") return Reduction::kSum;
  if (r == "mean") return Reduction::kMean;
  return absl::InvalidArgumentError(
      absl::StrCat("attribute reduction must be 'none', 'sum' or 'mean'; got '", r, "'"));
}

// Input positions: softmax (dloss, scores, labels, weights, dlog_prob);
// NLL (dloss, target, weights).
struct LossInputs {
  bool softmax;
  size_t labels() const { return softmax ? 2 : 1; }
  size_t weights() const { return softmax ? 3 : 2; }
};

absl::StatusOr<Shape> InputShapeAttribute(const graph::Node& node) {
  const graph::Attribute* attr = node.FindAttribute("input_shape");
  if (attr == nullptr || attr->kind != graph::Attribute::Kind::kInts) {
    return absl::InvalidArgumentError(
        "attribute 'input_shape' (ints: the shape of the loss input) is required");
  }
  return Shape(attr->ints.begin(), attr->ints.end());
}

absl::Status InferLossGrad(InferenceContext& ctx, bool softmax) {
  LossInputs in{softmax};
  Shape x;
  DataType dtype;
  if (softmax) {
    x = ctx.input_shape(1);
    dtype = ctx.input_dtype(1);
  } else {
    auto attr = InputShapeAttribute(ctx.node());
    if (!attr.ok()) return ctx.Error(std::string(attr.status().message()));
    x = *attr;
    dtype = ctx.input_dtype(0);
  }
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
    return ctx.Error(
        absl::StrCat("the loss input must be float32 or float64; got ", DataTypeName(dtype)));
  }
  if (x.size() < 2) {
    return ctx.Error(
        absl::StrCat("the loss input must have shape (N, C, d1, ..., dk); got ", ShapeToString(x)));
  }
  auto reduction = ParseReduction(ctx.node());
  if (!reduction.ok()) return ctx.Error(std::string(reduction.status().message()));
  Shape samples = x;
  samples.erase(samples.begin() + 1);
  const DataType label_dtype = ctx.input_dtype(in.labels());
  if ((label_dtype != DataType::kInt32 && label_dtype != DataType::kInt64) ||
      ctx.input_shape(in.labels()) != samples) {
    return ctx.Error(absl::StrCat("labels must be int32 or int64 of shape ", ShapeToString(samples),
                                  "; got ", DataTypeName(label_dtype),
                                  ShapeToString(ctx.input_shape(in.labels()))));
  }
  if (ctx.num_inputs() > in.weights() && ctx.has_input(in.weights()) &&
      (ctx.input_dtype(in.weights()) != dtype || ctx.input_shape(in.weights()) != Shape{x[1]})) {
    return ctx.Error(absl::StrCat("weights must be ", DataTypeName(dtype), "[", x[1], "]; got ",
                                  DataTypeName(ctx.input_dtype(in.weights())),
                                  ShapeToString(ctx.input_shape(in.weights()))));
  }
  if (ctx.has_input(0)) {
    const Shape expected = *reduction == Reduction::kNone ? samples : Shape{};
    if (ctx.input_dtype(0) != dtype || ctx.input_shape(0) != expected) {
      return ctx.Error(absl::StrCat("dloss must be ", DataTypeName(dtype), ShapeToString(expected),
                                    "; got ", DataTypeName(ctx.input_dtype(0)),
                                    ShapeToString(ctx.input_shape(0))));
    }
  } else if (!softmax) {
    return ctx.Error("dloss is required");
  }
  if (softmax && ctx.num_inputs() > 4 && ctx.has_input(4) &&
      (ctx.input_dtype(4) != dtype || ctx.input_shape(4) != x)) {
    return ctx.Error(absl::StrCat("dlog_prob must be ", DataTypeName(dtype), ShapeToString(x),
                                  "; got ", DataTypeName(ctx.input_dtype(4)),
                                  ShapeToString(ctx.input_shape(4))));
  }
  if (softmax && !ctx.has_input(0) && !(ctx.num_inputs() > 4 && ctx.has_input(4))) {
    return ctx.Error("needs dloss, dlog_prob or both");
  }
  ctx.set_output(0, dtype, x);
  return absl::OkStatus();
}

class LossGradReferenceKernel : public Kernel {
 public:
  LossGradReferenceKernel(bool softmax, Reduction reduction, bool has_ignore, int64_t ignore_index)
      : in_{softmax}, reduction_(reduction), has_ignore_(has_ignore), ignore_index_(ignore_index) {}

  absl::Status Run(KernelContext& ctx) override {
    Tensor& out = *ctx.output(0);
    const Tensor& labels = *ctx.input(in_.labels());
    const Tensor* weights = ctx.input(in_.weights());
    if (weights != nullptr && !weights->defined()) weights = nullptr;
    const Tensor* dloss = ctx.input(0);
    if (dloss != nullptr && !dloss->defined()) dloss = nullptr;
    const Tensor* dlogp = in_.softmax ? ctx.input(4) : nullptr;
    if (dlogp != nullptr && !dlogp->defined()) dlogp = nullptr;
    const int64_t n = out.dim(0), classes = out.dim(1);
    const int64_t inner = n * classes == 0 ? 0 : out.num_elements() / (n * classes);
    auto at = [&](int64_t i, int64_t c, int64_t j) { return (i * classes + c) * inner + j; };

    // The label and weight of every sample (weight 0 when ignored).
    std::vector<int64_t> label(n * inner, -1);
    std::vector<double> weight(n * inner, 0.0);
    double weight_sum = 0;
    for (int64_t s = 0; s < n * inner; ++s) {
      const int64_t y = labels.dtype() == DataType::kInt64 ? labels.data<int64_t>()[s]
                                                           : labels.data<int32_t>()[s];
      if (has_ignore_ && y == ignore_index_) continue;
      if (y < 0 || y >= classes) {
        return absl::InvalidArgumentError(absl::StrCat(ctx.node().Describe(), ": label value ", y,
                                                       " at sample ", s, " is outside [0, ",
                                                       classes, ")"));
      }
      label[s] = y;
      weight[s] = weights != nullptr ? weights->GetAsDouble(y) : 1.0;
      weight_sum += weight[s];
    }

    std::vector<double> p(classes);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t s = i * inner + j;
        double g = 0;
        if (dloss != nullptr && label[s] >= 0) {
          g = reduction_ == Reduction::kNone ? dloss->GetAsDouble(s) : dloss->GetAsDouble(0);
          if (reduction_ == Reduction::kMean) g /= weight_sum;
          g *= weight[s];
        }
        if (!in_.softmax) {
          for (int64_t c = 0; c < classes; ++c) {
            out.SetFromDouble(at(i, c, j), c == label[s] ? -g : 0.0);
          }
          continue;
        }
        const Tensor& scores = *ctx.input(1);
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < classes; ++c) max = std::max(max, scores.GetAsDouble(at(i, c, j)));
        double sum = 0;
        for (int64_t c = 0; c < classes; ++c) {
          p[c] = std::exp(scores.GetAsDouble(at(i, c, j)) - max);
          sum += p[c];
        }
        double dlogp_sum = 0;
        for (int64_t c = 0; c < classes; ++c) {
          p[c] /= sum;
          if (dlogp != nullptr) dlogp_sum += dlogp->GetAsDouble(at(i, c, j));
        }
        for (int64_t c = 0; c < classes; ++c) {
          double v = g * (p[c] - (c == label[s] ? 1.0 : 0.0));
          if (dlogp != nullptr) v += dlogp->GetAsDouble(at(i, c, j)) - p[c] * dlogp_sum;
          out.SetFromDouble(at(i, c, j), v);
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  LossInputs in_;
  Reduction reduction_;
  bool has_ignore_;
  int64_t ignore_index_;
};

OpSchema LossGradSchema(const std::string& op_type, bool softmax) {
  OpSchema s;
  s.domain = "com.lasgd";
  s.op_type = op_type;
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = softmax ? 3 : 2;
  s.max_inputs = softmax ? 5 : 3;
  s.min_outputs = 1;
  s.max_outputs = 1;
  s.infer = [softmax](InferenceContext& ctx) { return InferLossGrad(ctx, softmax); };
  s.flops = [softmax](const graph::Node&, const std::vector<Shape>&,
                      const std::vector<Shape>& out) {
    return out.empty() ? 0.0 : (softmax ? 5.0 : 1.0) * static_cast<double>(NumElements(out[0]));
  };
  s.kernels = {
      {"reference",
       [softmax](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(Reduction reduction, ParseReduction(ctx.node));
         const graph::Attribute* ignore = ctx.node.FindAttribute("ignore_index");
         return std::unique_ptr<Kernel>(new LossGradReferenceKernel(
             softmax, reduction, ignore != nullptr, ignore != nullptr ? ignore->i : 0));
       }},
  };
  return s;
}

}  // namespace

void RegisterLossBackwardOps(OpRegistry& registry) {
  registry.Register(LossGradSchema("SoftmaxCrossEntropyLossGrad", /*softmax=*/true));
  registry.Register(LossGradSchema("NegativeLogLikelihoodLossGrad", /*softmax=*/false));
}

}  // namespace lasgd::ops::backward_internal
