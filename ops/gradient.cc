#include "ops/gradient.h"

#include "absl/strings/str_cat.h"
#include "ops/autodiff_ops.h"
#include "ops/op_registry.h"

namespace lasgd::ops {

absl::Status GradientContext::Error(const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat(node().Describe(), ": gradient: ", message));
}

const GradientRegistry& GradientRegistry::Global() {
  static const GradientRegistry* registry = [] {
    auto* r = new GradientRegistry();
    RegisterElementwiseGradients(*r);
    RegisterActivationGradients(*r);
    RegisterConvGradients(*r);
    RegisterPoolGradients(*r);
    RegisterNormGradients(*r);
    RegisterMatMulGradients(*r);
    RegisterShapeGradients(*r);
    RegisterReduceGradients(*r);
    RegisterLossGradients(*r);
    RegisterMiscGradients(*r);
    RegisterAutodiffGradients(*r);
    return r;
  }();
  return *registry;
}

void GradientRegistry::Register(const std::string& domain, const std::string& op_type,
                                GradientFn fn) {
  builders_[{CanonicalDomain(domain), op_type}] = std::move(fn);
}

const GradientFn* GradientRegistry::Find(const std::string& domain,
                                         const std::string& op_type) const {
  auto it = builders_.find({CanonicalDomain(domain), op_type});
  return it == builders_.end() ? nullptr : &it->second;
}

}  // namespace lasgd::ops
