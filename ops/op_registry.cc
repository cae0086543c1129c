#include "ops/op_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "distributed/collective_ops.h"
#include "ops/autodiff_ops.h"
#include "ops/backward_ops.h"
#include "ops/backward_ops_ew.h"
#include "ops/optimizer.h"

namespace lasgd::ops {

std::string CanonicalDomain(const std::string& domain) {
  return domain == "ai.onnx" ? std::string() : domain;
}

absl::Status InferenceContext::Error(const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat(node_.Describe(), ": ", message));
}

const OpRegistry& OpRegistry::Global() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterElementwiseOps(*r);
    RegisterActivationOps(*r);
    RegisterConvOps(*r);
    RegisterPoolOps(*r);
    RegisterNormOps(*r);
    RegisterMatMulOps(*r);
    RegisterShapeOps(*r);
    RegisterReduceOps(*r);
    RegisterLossOps(*r);
    RegisterMiscOps(*r);
    RegisterStatelessDropoutOps(*r);
    RegisterAutodiffOps(*r);
    RegisterOptimizerOps(*r);
    RegisterNnBackwardOps(*r);
    RegisterElementwiseBackwardOps(*r);
    distributed::RegisterCollectiveOps(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::Register(OpSchema schema) {
  schema.domain = CanonicalDomain(schema.domain);
  // Opsets 22-27 changed only the type lists of the ai.onnx ops we support
  // (bfloat16, float8, int4; Range's stash_type and Cast's round_mode only
  // matter for those types), so a schema written up to 21 holds to the latest.
  if (schema.domain.empty() && schema.max_opset == 21) schema.max_opset = kLatestOnnxOpset;
  schemas_[{schema.domain, schema.op_type}].push_back(std::move(schema));
}

bool OpRegistry::Knows(const std::string& domain, const std::string& op_type) const {
  return schemas_.count({CanonicalDomain(domain), op_type}) > 0;
}

absl::StatusOr<const OpSchema*> OpRegistry::Find(const graph::Node& node, int64_t opset) const {
  auto it = schemas_.find({CanonicalDomain(node.domain), node.op_type});
  if (it == schemas_.end()) {
    std::string domain = node.domain.empty() ? "ai.onnx" : node.domain;
    return absl::UnimplementedError(absl::StrCat(
        node.Describe(), ": op '", node.op_type, "' of domain '", domain,
        "' is not supported by lasgd (run `lasgd-inspect --supported-ops` for the list)"));
  }
  std::vector<std::string> ranges;
  for (const OpSchema& s : it->second) {
    if (opset >= s.min_opset && opset <= s.max_opset) return &s;
    ranges.push_back(absl::StrCat(s.min_opset, "-", s.max_opset));
  }
  return absl::UnimplementedError(
      absl::StrCat(node.Describe(), ": opset ", opset, " is not supported for ", node.op_type,
                   "; supported opsets: ", absl::StrJoin(ranges, ", ")));
}

std::vector<std::string> OpRegistry::SupportedOpsSummary() const {
  std::vector<std::string> lines;
  for (const auto& [key, list] : schemas_) {
    int64_t lo = INT64_MAX, hi = 0;
    for (const OpSchema& s : list) {
      lo = std::min(lo, s.min_opset);
      hi = std::max(hi, s.max_opset);
    }
    std::vector<std::string> kernels;
    for (const KernelCandidate& k : list.front().kernels) kernels.push_back(k.name);
    lines.push_back(absl::StrCat(key.first.empty() ? "" : key.first + ".", key.second, " (opsets ",
                                 lo, "-", hi, "; kernels: ", absl::StrJoin(kernels, ", "), ")"));
  }
  return lines;
}

absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("shapes ", ShapeToString(a), " and ",
                                                     ShapeToString(b), " do not broadcast (dim ", i,
                                                     ": ", da, " vs ", db, ")"));
    }
  }
  return out;
}

absl::StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  int64_t lo = rank == 0 ? -1 : -rank, hi = rank == 0 ? 0 : rank - 1;
  if (axis < lo || axis > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for a tensor of rank ", rank));
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace lasgd::ops
