// Stochastic gradient push (Assran et al., 2019) with one-step overlap:
// push-sum gossip over a time-varying directed exponential graph. At round k
// rank i keeps half of its numerator x and weight w and sends the other half
// to (i + 2^(k mod log2 N)) mod N; the message is merged one step later, so
// sending overlaps the next step's computation. The optimizer updates the
// de-biased model z = x/w (the parameters the session holds); its change is
// added to the numerator before each merge. Mass is conserved: the sum over
// ranks of x (and w), counting messages in flight, changes only by the
// optimizer's steps, and z converges to the average. Finish() merges what is
// in flight and sets every rank to sum(x) / sum(w), exactly.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "distributed/passes/algorithm.h"

namespace lasgd::distributed {
namespace {

class SgpAlgorithm : public AlgorithmBase {
 public:
  using AlgorithmBase::AlgorithmBase;

  absl::Status Prepare() override {
    RETURN_IF_ERROR(ValidateCommon());
    SizeModelFromProgram();
    return BuildPrograms();
  }

  absl::Status AfterStep(const StepReport& step) override {
    if (!bound()) return absl::FailedPreconditionError("AfterStep before Bind");
    RecordStep(step);
    RETURN_IF_ERROR_CTX(RunProgram("gossip_step"), "at the gossip round after step ", step.step);
    return absl::OkStatus();
  }

  std::string Describe() const override {
    int period = 0;
    while ((1 << period) < context_->size) ++period;
    return absl::StrCat("sgp: push-sum gossip, one peer per step over a ", period,
                        "-round exponential graph, overlapped by one step",
                        config_.average_buffers ? ", BN statistics gossiped" : "", ", ",
                        context_->size, " rank(s)");
  }

 protected:
  absl::Status BuildPrograms() override {
    const bool with_buffers = config_.average_buffers;
    const size_t n = ModelFloats(with_buffers) + 1;  // numerator, then w
    float* x = Buffer("sgp/x", n);
    // x = 0 with w = 1: the first merge adds z - x/w = z, so x starts at z.
    if (x) x[n - 1] = 1.f;
    float* send = Buffer("sgp/send", n);
    float* recv = Buffer("sgp/recv", n);
    std::string p, b;
    {
      ProgramBuilder prog("gossip_step", context_id_);
      AddModelInputs(prog, with_buffers, &p, &b);
      std::string xs = prog.AddBuffer("sgp/x", x, n);
      std::string ss = prog.AddBuffer("sgp/send", send, n);
      std::string rs = prog.AddBuffer("sgp/recv", recv, n);
      prog.Emit("GossipMerge", {p, b, xs, rs});
      prog.Emit("GossipSend", {xs, ss, rs});
      SetProgram("gossip_step", prog.Finish());
    }
    {
      ProgramBuilder prog("finish", context_id_);
      AddModelInputs(prog, with_buffers, &p, &b);
      std::string xs = prog.AddBuffer("sgp/x", x, n);
      std::string rs = prog.AddBuffer("sgp/recv", recv, n);
      prog.Emit("GossipMerge", {p, b, xs, rs});
      prog.Emit("GossipAverage", {p, b, xs});
      if (!with_buffers && model_.buffer_floats > 0) {
        // BN statistics were not gossiped: a plain mean makes them agree.
        const size_t avg_floats =
            static_cast<size_t>(context_->size) * kProgressSlots + model_.buffer_floats;
        std::string buffers = prog.AddBuffer("model/buffers", model_.buffers, model_.buffer_floats);
        std::string a =
            prog.AddBuffer("sgp/average", Buffer("sgp/average", avg_floats), avg_floats);
        prog.Emit("AverageBlocking", {"", buffers, a});
      }
      SetProgram("finish", prog.Finish());
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<AlgorithmBase> MakeSgp(const runtime::DistributedConfig& config, Communicator* comm,
                                       graph::TrainingProgram* program) {
  return std::make_unique<SgpAlgorithm>(config, comm, program);
}

}  // namespace lasgd::distributed
