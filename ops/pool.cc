// TODO(pool): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterPoolOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
