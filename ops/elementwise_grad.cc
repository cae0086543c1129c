// Gradient builders of the elementwise op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterElementwiseGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
