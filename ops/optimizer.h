// Optimizer update ops. Each node updates many tensors at once and follows
// ONNX TrainingInfoProto's update_binding semantics: it computes the NEW
// values of parameters and optimizer state as outputs; the executor copies
// them back into the state variables after the step. The lead scalars (the
// learning rate and the step count) are inputs, so a schedule changes them
// without recompiling.
//
// Domain ai.onnx.preview.training, opset 1 (exactly as the ONNX spec):
//   Momentum(R, T, X1..Xn, G1..Gn, V1..Vn) -> (X1_new..Xn_new, V1_new..Vn_new)
//       attributes alpha, beta, norm_coefficient (float), mode ("standard" |
//       "nesterov"), all required.
//   Adagrad(R, T, X1..Xn, G1..Gn, H1..Hn) -> (X_new..., H_new...)
//       attributes decay_factor = 0, epsilon = 1e-6, norm_coefficient = 0.
//   Adam(R, T, X..., G..., V..., H...) -> (X_new..., V_new..., H_new...)
//       attributes alpha = 0.9, beta = 0.999, epsilon = 1e-6,
//       norm_coefficient = 0, norm_coefficient_post = 0.
//   R: float32/float64 scalar; T: int64 scalar (updates done so far);
//   X, G and the state of one tensor share a shape; float32 or float64.
//
// Domain com.lasgd, opset 1 (PyTorch's semantics, torch.optim, foreach=False):
//   SGDUpdate(lr, step, P1..Pn, G1..Gn[, B1..Bn])
//       -> (P1_new..Pn_new[, B1_new..Bn_new][, step_new])
//       attributes momentum = 0, dampening = 0, nesterov = 0,
//       weight_decay = 0 (L2: added to the gradient), maximize = 0.
//       The momentum buffers B are inputs and outputs exactly when
//       momentum != 0. On the first step (step == 0) the buffer becomes the
//       gradient itself, undampened, as torch does when it has no buffer yet.
//   AdamUpdate(lr, step, P..., G..., M..., V...)
//       -> (P_new..., M_new..., V_new...[, step_new])
//       attributes beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0,
//       decoupled_weight_decay = 0 (1 = AdamW: p *= 1 - lr * weight_decay;
//       0 = Adam: L2 added to the gradient), maximize = 0. M and V are
//       torch's exp_avg and exp_avg_sq; bias correction uses step + 1.
//   ClipGradNorm(max_norm, G1..Gn) -> (G1_clipped..Gn_clipped[, total_norm])
//       attribute norm_type = 2 (any p > 0, or inf); torch's
//       clip_grad_norm_: total_norm is the p-norm over all gradients,
//       scale = min(1, max_norm / (total_norm + 1e-6)).
//   lr / max_norm: float32 or float64 scalar (float64 keeps a Python-float
//   learning rate exact); step: int64 scalar = updates done before this one
//   (0 on the first step, like torch's state['step'] before its increment);
//   the optional trailing step_new output is step + 1, so the step counter
//   can be a state variable updated by the same node.
//
// Float attributes are read back as the shortest decimal that rounds to the
// stored float32 (0.999f -> 0.999), so hyperparameters act with the double
// value the user wrote, as a Python float does in torch.
#pragma once

#include "ops/op_registry.h"

namespace lasgd::ops {

void RegisterOptimizerOps(OpRegistry& registry);

}  // namespace lasgd::ops
