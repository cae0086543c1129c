// TODO(loss): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterLossOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
