// Gradient builders of the reduce op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterReduceGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
