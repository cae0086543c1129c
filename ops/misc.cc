// TODO(misc): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterMiscOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
