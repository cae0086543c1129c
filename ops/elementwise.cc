// TODO(elementwise): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterElementwiseOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
