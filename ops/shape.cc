// TODO(shape): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterShapeOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
