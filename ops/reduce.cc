// TODO(reduce): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterReduceOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
