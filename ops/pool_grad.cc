// Gradient builders of the pool op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterPoolGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
