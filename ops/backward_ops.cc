#include "ops/backward_ops.h"

namespace lasgd::ops {

void RegisterNnBackwardOps(OpRegistry& registry) {
  backward_internal::RegisterConvBackwardOps(registry);
  backward_internal::RegisterPoolBackwardOps(registry);
  backward_internal::RegisterNormBackwardOps(registry);
  backward_internal::RegisterLossBackwardOps(registry);
}

}  // namespace lasgd::ops
