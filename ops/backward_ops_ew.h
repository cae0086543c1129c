// com.lasgd backward ops emitted by the gradient builders of the
// elementwise, activation, shape, reduce and misc families
// (ops/*_grad.cc). They exist because the ai.onnx ops that could express
// these gradients change form between opsets (Reshape, Expand, Slice, Pad,
// Split, ReduceSum) or would take several passes over memory where one fused
// kernel does (ReluGrad, SoftmaxGrad, ...). All are com.lasgd opset 1.
//
// Pointwise gradients, inputs (dY, V) of one shape and float dtype, output dX:
//   ReluGrad(dY, Y)        dY where Y > 0
//   LeakyReluGrad(dY, X)   alpha
//   SigmoidGrad(dY, Y), TanhGrad(dY, Y)
//   HardSigmoidGrad(dY, X) alpha, beta
//   HardSwishGrad(dY, X), SoftplusGrad(dY, X), AbsGrad(dY, X), ErfGrad(dY, X)
//   GeluGrad(dY, X)        approximate ("none" | "tanh")
//   EluGrad(dY, X)         alpha
//   SeluGrad(dY, X)        alpha, gamma
//   ClipGrad(dY, X, [min], [max])  dY where min <= X <= max
// Softmax along one axis (attributes axis, coerce_2d: 1 = the opset < 13
// semantics that flatten the input to 2-D at `axis`):
//   SoftmaxGrad(dY, Y)     Y * (dY - sum(dY * Y))
//   LogSoftmaxGrad(dY, Y)  dY - exp(Y) * sum(dY)
// Data movement (any dtype):
//   ReshapeTo(X)           shape: the output's static shape (same element count)
//   ExpandTo(X)            shape: numpy-broadcast X to it
//   SliceGrad(dY)          shape, starts, steps (one per dim): zeros of `shape`
//                          with dY[k] written at starts + k * steps; positions
//                          outside `shape` are dropped (Pad's crop)
//   PadGrad(dY)            shape, pads (begin..., end... per dim), mode: sums
//                          each padded element back onto the input element it
//                          copied (reflect, edge, wrap; constant = SliceGrad)
//   GatherGrad(dY, indices) shape, axis: scatter-add into zeros
//   ConcatGrad(dY)         axis, sizes: N outputs, the pieces along axis
#pragma once

#include "ops/op_registry.h"

namespace lasgd::ops {

inline constexpr char kLasgdDomain[] = "com.lasgd";

// Registers every op listed above.
void RegisterElementwiseBackwardOps(OpRegistry& registry);

namespace backward_internal {
// The data-movement part (ops/shape_backward.cc), called by the function above.
void RegisterShapeBackwardOps(OpRegistry& registry);
}  // namespace backward_internal

}  // namespace lasgd::ops
