// com.lasgd backward ops of the neural-network families (conv, pool, norm,
// loss): the nodes their gradient builders (ops/*_grad.cc) emit where no
// opset-stable ai.onnx op computes the gradient. Each is an ordinary op with
// a schema, a shape function and kernels ("reference" last), registered at
// com.lasgd opset 1.
//
//   ConvGradInput(dY, W) -> dX               attrs: Conv's + input_shape
//   ConvGradWeight(X, dY) -> dW [, dB]       attrs: Conv's (kernel_shape required)
//   MaxPoolGrad(X, dY) -> dX                 attrs: MaxPool's + opset
//   AveragePoolGrad(dY) -> dX                attrs: AveragePool's + opset, input_shape
//   BatchNormGrad(dY, X, scale, mean, var) -> dX, dscale, dB
//                                            attrs: epsilon, training_mode, spatial
//   LayerNormGrad(dY, X, Scale [, B]) -> dX, dScale, dB
//                                            attrs: axis, epsilon
//   InstanceNormGrad(dY, X, scale) -> dX, dscale, dB
//                                            attrs: epsilon
//   SoftmaxCrossEntropyLossGrad(dloss, scores, labels [, weights [, dlog_prob]]) -> dscores
//   NegativeLogLikelihoodLossGrad(dloss, target [, weights]) -> dinput
//                                            attrs: the loss's + input_shape
//
// Pool ops take the forward opset as an attribute because which of the
// forward attributes exist (ceil_mode, dilations) depends on it.
#pragma once

#include "ops/op_registry.h"

namespace lasgd::ops {

// Registers every op listed above; called from OpRegistry::Global().
void RegisterNnBackwardOps(OpRegistry& registry);

namespace backward_internal {
void RegisterConvBackwardOps(OpRegistry& registry);
void RegisterPoolBackwardOps(OpRegistry& registry);
void RegisterNormBackwardOps(OpRegistry& registry);
void RegisterLossBackwardOps(OpRegistry& registry);
}  // namespace backward_internal

}  // namespace lasgd::ops
