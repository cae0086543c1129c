// TODO(matmul): op family not yet implemented.
#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterMatMulOps(OpRegistry& registry) {}

}  // namespace lasgd::ops
