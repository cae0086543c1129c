// The com.lasgd collective ops (opset 1) that the distributed passes insert.
// Every node carries `context` (int): the DistributedContext id its kernel
// looks up (distributed/context.h). Tokens are float32 scalars that only
// order the nodes and keep them alive through dead-code elimination; the
// ops that update the model write it in place (the model, snapshot and
// average tensors are initializers viewing persistent buffers, compiled as
// mutable initializers), because an All-Reduce in flight needs memory that
// outlives one run of a plan.
//
// Gradient All-Reduce inside train_step (sync, and the warm-up of lasgd/local):
//   AllReduceStart(G1..Gn) -> token             attr bucket
//       copies the bucket's gradients into one flat buffer and starts its
//       mean All-Reduce (nothing once warm-up is over).
//   AllReduceWait(T1..Tk, G1..Gn) -> (A1..An)   attrs bucket, tokens = k
//       waits for the bucket and writes the averaged gradients (a copy of G
//       once warm-up is over). The k tokens are every bucket's Start token,
//       so that no Wait is scheduled before the last Start.
//
// Model averaging (programs segment_boundary, apply_average, finish):
//   AverageWait(avg[, token]) -> token          waits for the average in flight, if any
//   ApplyAverage(params, buffers?, s, avg[, token]) -> token
//       x <- x + (avg - s) when an average arrived and was not merged yet.
//   Snapshot(params, buffers?, s, avg[, token]) -> token
//       s <- x; avg <- [progress slots | x].
//   AverageStart(avg[, token]) -> token         starts the mean All-Reduce of avg
//   AverageBlocking(params?, buffers?, avg[, token]) -> token
//       x <- mean over ranks of x, blocking (local SGD, finish).
//   An omitted buffers input means BN statistics are not part of the average.
//
// Push-sum gossip (sgp; x holds the numerator then the weight w):
//   GossipMerge(params, buffers?, x, recv[, token]) -> token
//       x += (z - x/w) (the optimizer's progress), adds the message that
//       arrived, z <- x/w.
//   GossipSend(x, send, recv[, token]) -> token
//       halves x and w, sends one half to this round's peer, posts the
//       receive of the half its other peer sends.
//   GossipAverage(params, buffers?, x[, token]) -> token
//       exact: z <- sum(x) / sum(w) over all ranks (finish).
#pragma once

#include "ops/op_registry.h"

namespace lasgd::distributed {

inline constexpr char kCollectiveDomain[] = "com.lasgd";

void RegisterCollectiveOps(ops::OpRegistry& registry);

}  // namespace lasgd::distributed
