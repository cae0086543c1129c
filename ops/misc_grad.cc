// Gradient builders of the misc op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterMiscGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
