// TODO(activation): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterActivationOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
