// Gradient builders of the shape op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterShapeGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
