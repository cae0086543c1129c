// TODO(conv): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterConvOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
