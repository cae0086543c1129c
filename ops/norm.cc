// TODO(norm): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterNormOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
