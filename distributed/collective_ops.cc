#include "distributed/collective_ops.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/context.h"

namespace lasgd::distributed {
namespace {

using ops::InferenceContext;
using ops::Kernel;
using ops::KernelBuildContext;
using ops::KernelContext;
using ops::OpSchema;

// The message tag of gossip messages (all-reduces use the backend's own).
constexpr int kGossipTag = 17;

// The ops that update the model write into tensors the graph lists as inputs
// (initializers that view the session's parameter arena or buffers owned by
// the DataParallel): a plan has no in-place outputs, and these buffers must
// outlive the run because an All-Reduce or a message may still be using them.
float* Mutable(const Tensor* t) { return const_cast<float*>(t->data<float>()); }

size_t Floats(const Tensor* t) { return t ? static_cast<size_t>(t->num_elements()) : 0; }

// The model as the node sees it: params, then buffers when given.
struct ModelSpans {
  float* params = nullptr;
  size_t param_floats = 0;
  float* buffers = nullptr;
  size_t buffer_floats = 0;
  size_t total() const { return param_floats + buffer_floats; }
  // Calls fn(span pointer, span length, offset in the flat model) for each span.
  template <typename Fn>
  void ForEach(Fn fn) const {
    if (param_floats) fn(params, param_floats, size_t{0});
    if (buffer_floats) fn(buffers, buffer_floats, param_floats);
  }
};

ModelSpans SpansOf(KernelContext& ctx, size_t params_index, size_t buffers_index) {
  ModelSpans m;
  if (const Tensor* p = ctx.input(params_index)) {
    m.params = Mutable(p);
    m.param_floats = Floats(p);
  }
  if (const Tensor* b = ctx.input(buffers_index)) {
    m.buffers = Mutable(b);
    m.buffer_floats = Floats(b);
  }
  return m;
}

void SetToken(KernelContext& ctx) {
  for (size_t o = 0; o < ctx.num_outputs(); ++o)
    if (Tensor* t = ctx.output(o); t && t->num_elements() == 1 && t->dtype() == DataType::kFloat32)
      t->data<float>()[0] = 0.f;
}

absl::Status NeedComm(const DistributedContext& c, const graph::Node& node) {
  if (c.comm == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        node.Describe(), ": no communicator (the program was built for inspection only)"));
  }
  return absl::OkStatus();
}

// A kernel that finds its context on every run.
class CollectiveKernel : public Kernel {
 public:
  using Fn = std::function<absl::Status(DistributedContext&, KernelContext&)>;
  CollectiveKernel(int64_t context_id, Fn fn) : context_id_(context_id), fn_(std::move(fn)) {}
  absl::Status Run(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(DistributedContext * c, FindContext(context_id_));
    RETURN_IF_ERROR(fn_(*c, ctx));
    SetToken(ctx);
    return absl::OkStatus();
  }

 private:
  int64_t context_id_;
  Fn fn_;
};

absl::Status ExpectFloat(InferenceContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return absl::OkStatus();
  if (ctx.input_dtype(i) != DataType::kFloat32)
    return ctx.Error(absl::StrCat("input ", i, " must be float32"));
  return absl::OkStatus();
}

absl::Status TokenOnly(InferenceContext& ctx) {
  for (size_t i = 0; i < ctx.num_inputs(); ++i) RETURN_IF_ERROR(ExpectFloat(ctx, i));
  ctx.set_output(0, DataType::kFloat32, {});
  return absl::OkStatus();
}

// `required` lists the inputs that must be present; the others (a model's
// absent BN buffers, the ordering token) may be omitted anywhere.
OpSchema MakeSchema(const std::string& op, std::vector<int> required, int max_inputs,
                    std::function<absl::Status(InferenceContext&)> infer,
                    std::function<CollectiveKernel::Fn(const graph::Node&)> make) {
  OpSchema s;
  s.domain = kCollectiveDomain;
  s.op_type = op;
  s.min_opset = 1;
  s.max_opset = 1;
  s.min_inputs = 0;
  s.max_inputs = max_inputs;
  s.min_outputs = 1;
  s.max_outputs = op == "AllReduceWait" ? INT_MAX : 1;
  s.foldable = false;  // side effects on the network and the model
  s.infer = [infer, required](InferenceContext& ctx) -> absl::Status {
    if (ctx.node().FindAttribute("context") == nullptr)
      return ctx.Error("needs the int attribute 'context'");
    for (int i : required)
      if (!ctx.has_input(i)) return ctx.Error(absl::StrCat("required input ", i, " is missing"));
    return infer(ctx);
  };
  s.kernels.push_back(
      {"reference", [make](const KernelBuildContext& b) -> absl::StatusOr<std::unique_ptr<Kernel>> {
         return std::unique_ptr<Kernel>(
             new CollectiveKernel(b.node.GetInt("context", 0), make(b.node)));
       }});
  return s;
}

// ---------------------------------------------------------------------------
// Gradient buckets

absl::Status StartBucket(DistributedContext& c, KernelContext& ctx, int64_t bucket) {
  if (!c.sync_gradients || c.size == 1) return absl::OkStatus();
  RETURN_IF_ERROR(NeedComm(c, ctx.node()));
  if (bucket < 0) return absl::InvalidArgumentError(ctx.node().Describe() + ": negative bucket");
  if (c.buckets.size() <= static_cast<size_t>(bucket)) c.buckets.resize(bucket + 1);
  DistributedContext::GradientBucket& b = c.buckets[bucket];
  if (b.request) {
    return absl::InternalError(absl::StrCat(ctx.node().Describe(), ": bucket ", bucket,
                                            " started again before its All-Reduce was waited for"));
  }
  size_t total = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) total += Floats(ctx.input(i));
  b.data.resize(total);
  size_t offset = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor* g = ctx.input(i);
    if (!g) continue;
    std::memcpy(b.data.data() + offset, g->data<float>(), g->nbytes());
    offset += Floats(g);
  }
  b.request = c.comm->AllReduceAsync(b.data.data(), total, ReduceOp::kMean);
  return absl::OkStatus();
}

absl::Status WaitBucket(DistributedContext& c, KernelContext& ctx, int64_t bucket, int64_t tokens) {
  const size_t n = ctx.num_inputs() - static_cast<size_t>(tokens);
  if (!c.sync_gradients || c.size == 1) {
    for (size_t i = 0; i < n; ++i) {
      const Tensor* g = ctx.input(tokens + i);
      if (Tensor* out = ctx.output(i)) std::memcpy(out->raw_data(), g->raw_data(), g->nbytes());
    }
    return absl::OkStatus();
  }
  if (static_cast<size_t>(bucket) >= c.buckets.size() || !c.buckets[bucket].request) {
    return absl::InternalError(
        absl::StrCat(ctx.node().Describe(), ": bucket ", bucket, " was never started"));
  }
  DistributedContext::GradientBucket& b = c.buckets[bucket];
  std::shared_ptr<Request> request = std::move(b.request);
  b.request.reset();
  RETURN_IF_ERROR(c.TimedWait(*request, absl::StrCat("gradient All-Reduce of bucket ", bucket)));
  size_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    Tensor* out = ctx.output(i);
    const size_t count = Floats(ctx.input(tokens + i));
    if (out) std::memcpy(out->raw_data(), b.data.data() + offset, count * sizeof(float));
    offset += count;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Model averaging. The average buffer is [progress slots | params | buffers].

size_t ProgressFloats(const DistributedContext& c) {
  return static_cast<size_t>(c.size) * kProgressSlots;
}

absl::Status CheckAverageBuffer(const DistributedContext& c, const graph::Node& node,
                                const Tensor* avg, size_t model_floats) {
  if (Floats(avg) < ProgressFloats(c) + model_floats) {
    return absl::InternalError(absl::StrCat(node.Describe(), ": the average buffer holds ",
                                            Floats(avg), " floats; ", ProgressFloats(c), " + ",
                                            model_floats, " needed"));
  }
  return absl::OkStatus();
}

absl::Status WaitAverage(DistributedContext& c, KernelContext&) {
  if (!c.pending) return absl::OkStatus();
  std::shared_ptr<Request> request = std::move(c.pending);
  c.pending.reset();
  RETURN_IF_ERROR(c.TimedWait(*request, absl::StrCat("model average ", c.averages_started - 1)));
  c.arrived_unapplied = true;
  return absl::OkStatus();
}

void ReadProgress(DistributedContext& c, const float* avg) {
  c.progress_in = DecodeProgress(avg, c.size);
  c.progress_in_average = c.averages_applied;
  ++c.averages_applied;
}

// ApplyAverage(params, buffers?, s, avg[, token])
absl::Status ApplyAverage(DistributedContext& c, KernelContext& ctx) {
  if (!c.arrived_unapplied) return absl::OkStatus();
  ModelSpans m = SpansOf(ctx, 0, 1);
  const Tensor* s = ctx.input(2);
  const Tensor* avg = ctx.input(3);
  RETURN_IF_ERROR(CheckAverageBuffer(c, ctx.node(), avg, m.total()));
  if (Floats(s) < m.total())
    return absl::InternalError(ctx.node().Describe() + ": the snapshot is too small");
  const float* a = avg->data<float>() + ProgressFloats(c);
  const float* snap = s->data<float>();
  // x <- x + (avg - s): the average of the snapshots plus this rank's own
  // progress since its snapshot.
  m.ForEach([&](float* x, size_t n, size_t offset) {
    const float* ap = a + offset;
    const float* sp = snap + offset;
    for (size_t i = 0; i < n; ++i) x[i] += ap[i] - sp[i];
  });
  ReadProgress(c, avg->data<float>());
  c.arrived_unapplied = false;
  return absl::OkStatus();
}

// Snapshot(params, buffers?, s, avg[, token])
absl::Status TakeSnapshot(DistributedContext& c, KernelContext& ctx) {
  if (c.pending) {
    return absl::InternalError(ctx.node().Describe() +
                               ": snapshot taken while the previous average is still in flight");
  }
  ModelSpans m = SpansOf(ctx, 0, 1);
  float* s = Mutable(ctx.input(2));
  const Tensor* avg_t = ctx.input(3);
  RETURN_IF_ERROR(CheckAverageBuffer(c, ctx.node(), avg_t, m.total()));
  if (Floats(ctx.input(2)) < m.total())
    return absl::InternalError(ctx.node().Describe() + ": the snapshot is too small");
  float* avg = Mutable(avg_t);
  EncodeProgress(c.progress_out, c.rank, c.size, avg);
  float* a = avg + ProgressFloats(c);
  m.ForEach([&](float* x, size_t n, size_t offset) {
    std::memcpy(s + offset, x, n * sizeof(float));
    std::memcpy(a + offset, x, n * sizeof(float));
  });
  c.arrived_unapplied = false;
  return absl::OkStatus();
}

// AverageStart(avg[, token]): averages the floats the last Snapshot filled.
absl::Status StartAverage(DistributedContext& c, KernelContext& ctx, int64_t model_floats) {
  RETURN_IF_ERROR(NeedComm(c, ctx.node()));
  const Tensor* avg = ctx.input(0);
  RETURN_IF_ERROR(CheckAverageBuffer(c, ctx.node(), avg, model_floats));
  c.pending =
      c.comm->AllReduceAsync(Mutable(avg), ProgressFloats(c) + model_floats, ReduceOp::kMean);
  ++c.averages_started;
  return absl::OkStatus();
}

// AverageBlocking(params?, buffers?, avg[, token])
absl::Status BlockingAverage(DistributedContext& c, KernelContext& ctx) {
  RETURN_IF_ERROR(NeedComm(c, ctx.node()));
  if (c.pending) {
    return absl::InternalError(ctx.node().Describe() +
                               ": blocking average while another average is in flight");
  }
  ModelSpans m = SpansOf(ctx, 0, 1);
  const Tensor* avg_t = ctx.input(2);
  RETURN_IF_ERROR(CheckAverageBuffer(c, ctx.node(), avg_t, m.total()));
  float* avg = Mutable(avg_t);
  EncodeProgress(c.progress_out, c.rank, c.size, avg);
  float* a = avg + ProgressFloats(c);
  m.ForEach(
      [&](float* x, size_t n, size_t offset) { std::memcpy(a + offset, x, n * sizeof(float)); });
  auto request = c.comm->AllReduceAsync(avg, ProgressFloats(c) + m.total(), ReduceOp::kMean);
  ++c.averages_started;
  RETURN_IF_ERROR(
      c.TimedWait(*request, absl::StrCat("blocking model average ", c.averages_started - 1)));
  m.ForEach(
      [&](float* x, size_t n, size_t offset) { std::memcpy(x, a + offset, n * sizeof(float)); });
  ReadProgress(c, avg);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Push-sum gossip. x = [numerator of the model | w].

// Distinct offsets 1, 2, 4, ... below `size`: the exponential graph's period.
int GossipPeriod(int size) {
  int period = 0;
  while ((int64_t{1} << period) < size) ++period;
  return std::max(period, 1);
}

absl::Status FinishGossipRound(DistributedContext& c) {
  if (c.gossip_send) {
    std::shared_ptr<Request> send = std::move(c.gossip_send);
    c.gossip_send.reset();
    RETURN_IF_ERROR(c.TimedWait(*send, absl::StrCat("gossip send of round ", c.gossip_round - 1)));
  }
  return absl::OkStatus();
}

// GossipMerge(params, buffers?, x, recv[, token])
absl::Status GossipMerge(DistributedContext& c, KernelContext& ctx) {
  ModelSpans m = SpansOf(ctx, 0, 1);
  const Tensor* x_t = ctx.input(2);
  const Tensor* recv_t = ctx.input(3);
  if (Floats(x_t) != m.total() + 1 || Floats(recv_t) != m.total() + 1) {
    return absl::InternalError(absl::StrCat(ctx.node().Describe(), ": push-sum buffers of ",
                                            Floats(x_t), " and ", Floats(recv_t), " floats for a ",
                                            m.total(), "-float model"));
  }
  float* x = Mutable(x_t);
  float& w = x[m.total()];
  // The optimizer moved z = x/w by (z_now - x/w); push-sum adds that step to
  // the numerator unscaled, as SGP's x <- x - lr * grad(z).
  const float inv_w = 1.f / w;
  m.ForEach([&](float* z, size_t n, size_t offset) {
    float* xp = x + offset;
    for (size_t i = 0; i < n; ++i) xp[i] += z[i] - xp[i] * inv_w;
  });
  if (c.gossip_recv) {
    std::shared_ptr<Request> recv = std::move(c.gossip_recv);
    c.gossip_recv.reset();
    RETURN_IF_ERROR(
        c.TimedWait(*recv, absl::StrCat("gossip receive of round ", c.gossip_round - 1)));
    const float* r = recv_t->data<float>();
    for (size_t i = 0; i <= m.total(); ++i) x[i] += r[i];
  }
  RETURN_IF_ERROR(FinishGossipRound(c));
  const float new_inv_w = 1.f / w;
  m.ForEach([&](float* z, size_t n, size_t offset) {
    const float* xp = x + offset;
    for (size_t i = 0; i < n; ++i) z[i] = xp[i] * new_inv_w;
  });
  return absl::OkStatus();
}

// GossipSend(x, send, recv[, token])
absl::Status GossipSend(DistributedContext& c, KernelContext& ctx) {
  if (c.size == 1) return absl::OkStatus();
  RETURN_IF_ERROR(NeedComm(c, ctx.node()));
  const Tensor* x_t = ctx.input(0);
  const Tensor* send_t = ctx.input(1);
  const Tensor* recv_t = ctx.input(2);
  const size_t n = Floats(x_t);
  if (Floats(send_t) != n || Floats(recv_t) != n) {
    return absl::InternalError(ctx.node().Describe() + ": push-sum buffers differ in size");
  }
  if (c.gossip_send || c.gossip_recv) {
    return absl::InternalError(ctx.node().Describe() +
                               ": a gossip round started before the previous one was merged");
  }
  float* x = Mutable(x_t);
  float* send = Mutable(send_t);
  // Keep half, send half: multiplying by 1/2 is exact, so x/w is unchanged.
  for (size_t i = 0; i < n; ++i) {
    x[i] *= 0.5f;
    send[i] = x[i];
  }
  const int64_t offset = int64_t{1} << (c.gossip_round % GossipPeriod(c.size));
  const int to = static_cast<int>((c.rank + offset) % c.size);
  const int from = static_cast<int>(((c.rank - offset) % c.size + c.size) % c.size);
  ++c.gossip_round;
  c.gossip_recv = c.comm->RecvAsync(Mutable(recv_t), n * sizeof(float), from, kGossipTag);
  c.gossip_send = c.comm->SendAsync(send, n * sizeof(float), to, kGossipTag);
  return absl::OkStatus();
}

// GossipAverage(params, buffers?, x[, token]): the exact push-sum average.
absl::Status GossipAverage(DistributedContext& c, KernelContext& ctx) {
  ModelSpans m = SpansOf(ctx, 0, 1);
  const Tensor* x_t = ctx.input(2);
  if (Floats(x_t) != m.total() + 1)
    return absl::InternalError(ctx.node().Describe() + ": push-sum buffer size");
  if (c.gossip_recv || c.gossip_send) {
    return absl::InternalError(ctx.node().Describe() +
                               ": exact average while a gossip message is in flight");
  }
  float* x = Mutable(x_t);
  if (c.size > 1) {
    RETURN_IF_ERROR(NeedComm(c, ctx.node()));
    auto request = c.comm->AllReduceAsync(x, m.total() + 1, ReduceOp::kSum);
    RETURN_IF_ERROR(c.TimedWait(*request, "exact push-sum average"));
  }
  // sum(x) / sum(w): the mass every rank's numerator and weight carried.
  const float w = x[m.total()];
  m.ForEach([&](float* z, size_t n, size_t offset) {
    float* xp = x + offset;
    for (size_t i = 0; i < n; ++i) {
      z[i] = xp[i] / w;
      xp[i] = z[i];
    }
  });
  x[m.total()] = 1.f;
  return absl::OkStatus();
}

}  // namespace

void RegisterCollectiveOps(ops::OpRegistry& registry) {
  registry.Register(MakeSchema("AllReduceStart", {0}, INT_MAX, TokenOnly, [](const graph::Node& n) {
    const int64_t bucket = n.GetInt("bucket", 0);
    return
        [bucket](DistributedContext& c, KernelContext& ctx) { return StartBucket(c, ctx, bucket); };
  }));
  registry.Register(MakeSchema(
      "AllReduceWait", {0}, INT_MAX,
      [](InferenceContext& ctx) -> absl::Status {
        const int64_t tokens = ctx.node().GetInt("tokens", 0);
        if (tokens < 0 || static_cast<size_t>(tokens) + ctx.num_outputs() != ctx.num_inputs()) {
          return ctx.Error(absl::StrCat("takes 'tokens' (", tokens,
                                        ") token inputs and then one gradient per output; it has ",
                                        ctx.num_inputs(), " inputs and ", ctx.num_outputs(),
                                        " outputs"));
        }
        for (size_t i = 0; i < ctx.num_outputs(); ++i) {
          RETURN_IF_ERROR(ExpectFloat(ctx, tokens + i));
          ctx.set_output(i, DataType::kFloat32, ctx.input_shape(tokens + i));
        }
        return absl::OkStatus();
      },
      [](const graph::Node& n) {
        const int64_t bucket = n.GetInt("bucket", 0);
        const int64_t tokens = n.GetInt("tokens", 0);
        return [bucket, tokens](DistributedContext& c, KernelContext& ctx) {
          return WaitBucket(c, ctx, bucket, tokens);
        };
      }));
  auto plain = [](absl::Status (*fn)(DistributedContext&, KernelContext&)) {
    return [fn](const graph::Node&) -> CollectiveKernel::Fn { return fn; };
  };
  registry.Register(MakeSchema("AverageWait", {0}, 2, TokenOnly, plain(WaitAverage)));
  registry.Register(MakeSchema("ApplyAverage", {0, 2, 3}, 5, TokenOnly, plain(ApplyAverage)));
  registry.Register(MakeSchema("Snapshot", {0, 2, 3}, 5, TokenOnly, plain(TakeSnapshot)));
  registry.Register(MakeSchema("AverageStart", {0}, 2, TokenOnly, [](const graph::Node& n) {
    const int64_t floats = n.GetInt("model_floats", 0);
    return [floats](DistributedContext& c, KernelContext& ctx) {
      return StartAverage(c, ctx, floats);
    };
  }));
  registry.Register(MakeSchema("AverageBlocking", {2}, 4, TokenOnly, plain(BlockingAverage)));
  registry.Register(MakeSchema("GossipMerge", {0, 2, 3}, 5, TokenOnly, plain(GossipMerge)));
  registry.Register(MakeSchema("GossipSend", {0, 1, 2}, 4, TokenOnly, plain(GossipSend)));
  registry.Register(MakeSchema("GossipAverage", {0, 2}, 4, TokenOnly, plain(GossipAverage)));
}

}  // namespace lasgd::distributed
