// Gradient builders of the norm op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterNormGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
