// Gradient builders of the activation op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterActivationGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
