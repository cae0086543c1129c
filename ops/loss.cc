// Loss ops: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss (opsets
// 12-21; 13 only added types).
//
// Both gather one class per sample from (N, C, d1, ..., dk) scores, weight it,
// and reduce. The weighted mean divides by the sum of the weights of the
// samples that were not ignored (and by the count of non-ignored samples when
// there are no weights), as the spec and PyTorch define it; a mean over no
// samples is 0/0 = NaN, as in PyTorch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "ops/op_registry.h"

namespace lasgd::ops {
namespace {

enum class Reduction { kNone, kSum, kMean };

absl::StatusOr<Reduction> ParseReduction(const graph::Node& node) {
  std::string r = node.GetString("reduction", "mean");
  if (r == "none") return Reduction::kNone;
  if (r == "sum") return Reduction::kSum;
  if (r == "mean") return Reduction::kMean;
  return absl::InvalidArgumentError(
      absl::StrCat("attribute reduction must be 'none', 'sum' or 'mean'; got '", r, "'"));
}

// `softmax` selects SoftmaxCrossEntropyLoss (scores are logits and a second
// output log_prob may be requested) over NegativeLogLikelihoodLoss (input
// already holds log-probabilities).
absl::Status InferClassLoss(InferenceContext& ctx, bool softmax) {
  const char* input_name = softmax ? "scores" : "input";
  const char* label_name = softmax ? "labels" : "target";
  const Shape& x = ctx.input_shape(0);
  DataType dtype = ctx.input_dtype(0);
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat64) {
    return ctx.Error(
        absl::StrCat(input_name, " must be float32 or float64; got ", DataTypeName(dtype)));
  }
  if (x.size() < 2) {
    return ctx.Error(
        absl::StrCat(input_name, " must have shape (N, C, d1, ..., dk); got ", ShapeToString(x)));
  }
  DataType label_dtype = ctx.input_dtype(1);
  if (label_dtype != DataType::kInt32 && label_dtype != DataType::kInt64) {
    return ctx.Error(
        absl::StrCat(label_name, " must be int32 or int64; got ", DataTypeName(label_dtype)));
  }
  Shape expected_labels = x;
  expected_labels.erase(expected_labels.begin() + 1);
  if (ctx.input_shape(1) != expected_labels) {
    return ctx.Error(absl::StrCat(label_name, " has shape ", ShapeToString(ctx.input_shape(1)),
                                  "; expected ", ShapeToString(expected_labels), " for ",
                                  input_name, " of shape ", ShapeToString(x)));
  }
  if (ctx.has_input(2)) {
    if (ctx.input_dtype(2) != dtype) {
      return ctx.Error(absl::StrCat("weights have dtype ", DataTypeName(ctx.input_dtype(2)),
                                    "; expected ", DataTypeName(dtype), " like ", input_name));
    }
    if (ctx.input_shape(2) != Shape{x[1]}) {
      return ctx.Error(absl::StrCat("weights have shape ", ShapeToString(ctx.input_shape(2)),
                                    "; expected [", x[1], "] (one per class)"));
    }
  }
  auto reduction = ParseReduction(ctx.node());
  if (!reduction.ok()) return ctx.Error(std::string(reduction.status().message()));
  ctx.set_output(0, dtype, *reduction == Reduction::kNone ? expected_labels : Shape{});
  if (softmax && ctx.num_outputs() > 1 && ctx.has_output(1)) ctx.set_output(1, dtype, x);
  return absl::OkStatus();
}

std::string IndexToString(int64_t flat, const Shape& shape) {
  std::vector<int64_t> index(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    index[d] = shape[d] == 0 ? 0 : flat % shape[d];
    flat = shape[d] == 0 ? 0 : flat / shape[d];
  }
  return absl::StrCat("[", absl::StrJoin(index, ","), "]");
}

class ClassLossReferenceKernel : public Kernel {
 public:
  ClassLossReferenceKernel(bool softmax, Reduction reduction, bool has_ignore, int64_t ignore_index)
      : softmax_(softmax),
        reduction_(reduction),
        has_ignore_(has_ignore),
        ignore_index_(ignore_index) {}

  absl::Status Run(KernelContext& ctx) override {
    const Tensor& x = *ctx.input(0);
    const Tensor& labels = *ctx.input(1);
    const Tensor* weights = ctx.input(2);
    const int64_t n = x.dim(0), classes = x.dim(1);
    const int64_t inner = n * classes == 0 ? 0 : x.num_elements() / (n * classes);

    // Log-probabilities, (N, C, D) row-major like x.
    std::vector<double> log_prob = x.ToDoubleVector();
    if (softmax_) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < inner; ++j) {
          auto at = [&](int64_t c) { return (i * classes + c) * inner + j; };
          double max = -std::numeric_limits<double>::infinity();
          for (int64_t c = 0; c < classes; ++c) max = std::max(max, log_prob[at(c)]);
          double sum = 0;
          for (int64_t c = 0; c < classes; ++c) sum += std::exp(log_prob[at(c)] - max);
          double log_sum = max + std::log(sum);
          for (int64_t c = 0; c < classes; ++c) log_prob[at(c)] -= log_sum;
        }
      }
      if (Tensor* out = ctx.output(1)) {
        for (int64_t k = 0; k < out->num_elements(); ++k) out->SetFromDouble(k, log_prob[k]);
      }
    }

    std::vector<double> loss(n * inner, 0.0);
    double loss_sum = 0, weight_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t sample = i * inner + j;
        const int64_t label = labels.dtype() == DataType::kInt64 ? labels.data<int64_t>()[sample]
                                                                 : labels.data<int32_t>()[sample];
        if (has_ignore_ && label == ignore_index_) continue;
        if (label < 0 || label >= classes) {
          std::string ignore = has_ignore_
                                   ? absl::StrCat(" and is not ignore_index (", ignore_index_, ")")
                                   : " (no ignore_index is set)";
          return absl::InvalidArgumentError(
              absl::StrCat(ctx.node().Describe(), ": label value ", label, " at index ",
                           IndexToString(sample, labels.shape()), " is outside [0, ", classes,
                           ") for ", classes, " classes", ignore));
        }
        double w = weights != nullptr ? weights->GetAsDouble(label) : 1.0;
        loss[sample] = -log_prob[(i * classes + label) * inner + j] * w;
        loss_sum += loss[sample];
        weight_sum += w;
      }
    }

    Tensor& out = *ctx.output(0);
    switch (reduction_) {
      case Reduction::kNone:
        for (int64_t k = 0; k < out.num_elements(); ++k) out.SetFromDouble(k, loss[k]);
        break;
      case Reduction::kSum:
        out.SetFromDouble(0, loss_sum);
        break;
      case Reduction::kMean:
        out.SetFromDouble(0, loss_sum / weight_sum);
        break;
    }
    return absl::OkStatus();
  }

 private:
  bool softmax_;
  Reduction reduction_;
  bool has_ignore_;
  int64_t ignore_index_;
};

OpSchema MakeClassLossSchema(const std::string& op_type, bool softmax) {
  OpSchema s;
  s.op_type = op_type;
  s.min_opset = 12;
  s.max_opset = 21;
  s.min_inputs = 2;
  s.max_inputs = 3;
  s.min_outputs = 1;
  s.max_outputs = softmax ? 2 : 1;
  s.infer = [softmax](InferenceContext& ctx) { return InferClassLoss(ctx, softmax); };
  // Class weights are constants of the loss, not something one trains.
  s.non_differentiable_inputs = {1, 2};
  s.flops = [softmax](const graph::Node&, const std::vector<Shape>& in, const std::vector<Shape>&) {
    // Softmax: max, exp, sum and subtract per score; the gather is negligible.
    return in.empty() || !softmax ? 0.0 : 4.0 * static_cast<double>(NumElements(in[0]));
  };
  s.kernels = {
      {"reference",
       [softmax](const KernelBuildContext& ctx) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         ASSIGN_OR_RETURN(Reduction reduction, ParseReduction(ctx.node));
         const graph::Attribute* ignore = ctx.node.FindAttribute("ignore_index");
         return std::unique_ptr<Kernel>(new ClassLossReferenceKernel(
             softmax, reduction, ignore != nullptr, ignore != nullptr ? ignore->i : 0));
       }},
  };
  return s;
}

}  // namespace

void RegisterLossOps(OpRegistry& registry) {
  registry.Register(MakeClassLossSchema("SoftmaxCrossEntropyLoss", /*softmax=*/true));
  registry.Register(MakeClassLossSchema("NegativeLogLikelihoodLoss", /*softmax=*/false));
}

}  // namespace lasgd::ops
