// Gradient builders of the matmul op family (see ops/gradient.h).
#include "ops/gradient.h"

namespace lasgd::ops {

void RegisterMatMulGradients(GradientRegistry& registry) {}

}  // namespace lasgd::ops
