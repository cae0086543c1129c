// Gradient builders of the loss op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterLossGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
