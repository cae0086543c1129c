// com.lasgd ops that the autodiff pass itself emits (independent of any op
// family): ReduceSumTo, which undoes numpy broadcasting in gradients.
#pragma once

#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterAutodiffOps(OpRegistry& registry);

class GradientRegistry;
// ReduceSumTo's gradient: broadcast back with com.lasgd.ExpandTo.
void RegisterAutodiffGradients(GradientRegistry& registry);

}  // namespace lasgd::ops
