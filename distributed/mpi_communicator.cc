#include "distributed/mpi_communicator.h"

// The C API only: the deprecated C++ bindings are not used.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace lasgd::distributed {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

TimePoint After(TimePoint t, double seconds) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
std::string FormatSeconds(double s) { return absl::StrFormat("%.3g s", s); }

// Every MPI return code becomes a Status here.
absl::Status MpiStatus(int code, absl::string_view what) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  return absl::InternalError(
      absl::StrCat(what, " failed: MPI error ", code, " (", std::string(text, length), ")"));
}

// ---- MPI's lifetime: initialized once, finalized at exit ----

class Core;

struct MpiGlobal {
  std::mutex mu;
  bool we_initialized = false;
  bool at_exit_registered = false;
  std::set<Core*> live;  // communicators to stop before MPI_Finalize
};

// Never destroyed: the exit handler and late destructors still reach it.
MpiGlobal& Global() {
  static MpiGlobal* global = new MpiGlobal;
  return *global;
}

void FinalizeAtExit();

absl::Status EnsureMpiInitialized() {
  MpiGlobal& g = Global();
  std::lock_guard<std::mutex> lock(g.mu);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) {
    return absl::FailedPreconditionError(
        "cannot create an MPI communicator: MPI was already finalized in this process");
  }
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    RETURN_IF_ERROR(MpiStatus(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided),
                              "MPI_Init_thread"));
    g.we_initialized = true;
  } else {
    RETURN_IF_ERROR(MpiStatus(MPI_Query_thread(&provided), "MPI_Query_thread"));
  }
  if (!g.at_exit_registered) {
    std::atexit(FinalizeAtExit);
    g.at_exit_registered = true;
  }
  if (provided < MPI_THREAD_MULTIPLE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the MPI library provides thread level ", provided,
        ", but the communicator's progress thread needs MPI_THREAD_MULTIPLE (", MPI_THREAD_MULTIPLE,
        "); ", g.we_initialized ? "" : "initialize MPI with it or ",
        "use an MPI built with thread support"));
  }
  return absl::OkStatus();
}

std::string LibraryVersion() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "MPI";
  std::string version(text, length);
  version = version.substr(0, version.find_first_of(",\n"));
  // "Open MPI v4.1.4" -> "Open MPI 4.1.4"
  size_t v = version.find(" v");
  if (v != std::string::npos && v + 2 < version.size() && isdigit(version[v + 2])) {
    version.erase(v + 1, 1);
  }
  return version;
}

// ---- operations and their requests ----

enum class OpKind { kAllReduce, kBroadcast, kBarrier, kSend, kRecv };

struct Op {
  OpKind kind = OpKind::kBarrier;
  int64_t seq = 0;  // collectives: 1-based issue index on this communicator
  void* data = nullptr;
  size_t bytes = 0;
  ReduceOp reduce = ReduceOp::kSum;
  int root = 0;
  int peer = 0;
  int tag = 0;
  double delay = 0;    // emulated network seconds
  TimePoint issued;    // by the caller
  TimePoint release;   // when it may go on the wire (after the emulated delay)
  TimePoint deadline;  // set when it starts
  MPI_Request request = MPI_REQUEST_NULL;
  bool posted = false;  // handed to MPI
  // Under Core::mu_:
  bool finished = false;
  absl::Status status;

  bool collective() const { return kind != OpKind::kSend && kind != OpKind::kRecv; }
  std::string Describe() const {
    switch (kind) {
      case OpKind::kAllReduce:
        return absl::StrCat("all-reduce #", seq, " (", HumanBytes(bytes), ")");
      case OpKind::kBroadcast:
        return absl::StrCat("broadcast #", seq, " (", HumanBytes(bytes), " from rank ", root, ")");
      case OpKind::kBarrier:
        return absl::StrCat("barrier #", seq);
      case OpKind::kSend:
        return absl::StrCat("send of ", HumanBytes(bytes), " to rank ", peer, " (tag ", tag, ")");
      case OpKind::kRecv:
        return absl::StrCat("receive of ", HumanBytes(bytes), " from rank ", peer, " (tag ", tag,
                            ")");
    }
    return "operation";
  }
};

class DoneRequest : public Request {
 public:
  explicit DoneRequest(absl::Status status) : status_(std::move(status)) {}
  bool Test() override { return true; }
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

// What the progress thread knows of one peer from its heartbeats.
struct Peer {
  int64_t recv_buf[2] = {0, 0};  // {collectives issued, goodbye}
  int64_t send_buf[2] = {0, 0};
  MPI_Request recv = MPI_REQUEST_NULL;
  MPI_Request send = MPI_REQUEST_NULL;
  TimePoint last_heard;
  int64_t issued = 0;
  bool gone = false;  // said goodbye: its communicator is being destroyed
};

constexpr int kHeartbeatTag = 1;

// The state a communicator shares with its requests and its progress thread.
class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(const CommOptions& options)
      : options_(options),
        heartbeat_s_(std::clamp(options.timeout_s / 8, 0.05, 0.5)),
        silent_after_s_(4 * heartbeat_s_) {}

  ~Core() {
    for (MPI_Comm* c : {&coll_, &p2p_, &hb_}) {
      if (*c != MPI_COMM_NULL) {
        // Only when creation failed half-way (otherwise the progress thread
        // freed them).
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(c);
      }
    }
  }

  absl::Status Init() {
    // Duplicating is collective: with idup and a deadline, a rank that never
    // creates its communicator is an error instead of a hang.
    std::vector<MPI_Request> dups(3, MPI_REQUEST_NULL);
    MPI_Comm* comms[3] = {&coll_, &p2p_, &hb_};
    for (int i = 0; i < 3; ++i) {
      RETURN_IF_ERROR(MpiStatus(MPI_Comm_idup(MPI_COMM_WORLD, comms[i], &dups[i]),
                                "MPI_Comm_idup(MPI_COMM_WORLD)"));
    }
    TimePoint deadline = After(Clock::now(), options_.timeout_s);
    while (true) {
      int done = 0;
      RETURN_IF_ERROR(MpiStatus(MPI_Testall(3, dups.data(), &done, MPI_STATUSES_IGNORE),
                                "MPI_Testall(MPI_Comm_idup)"));
      if (done) break;
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("creating the MPI communicator: not every rank joined within ",
                         FormatSeconds(options_.timeout_s), " (does every rank create it?)"));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    for (MPI_Comm c : {coll_, p2p_, hb_}) {
      RETURN_IF_ERROR(
          MpiStatus(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler"));
    }
    MPI_Comm_rank(coll_, &rank_);
    MPI_Comm_size(coll_, &size_);
    int* tag_ub = nullptr;
    int found = 0;
    MPI_Comm_get_attr(p2p_, MPI_TAG_UB, &tag_ub, &found);
    tag_ub_ = found && tag_ub ? *tag_ub : 32767;
    version_ = LibraryVersion();
    TimePoint now = Clock::now();
    peers_.resize(size_);
    for (Peer& p : peers_) p.last_heard = now;
    covered_until_ = now;
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  const CommOptions& options() const { return options_; }
  const std::string& version() const { return version_; }

  std::shared_ptr<Request> Submit(std::shared_ptr<Op> op);

  // Stops the progress thread after everything queued finished (completed
  // or timed out), says goodbye to the peers and frees the communicators.
  void Shutdown() {
    std::lock_guard<std::mutex> shutdown_lock(shutdown_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_requested_ = true;
    }
    work_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  CommStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  absl::Status WaitFor(const std::shared_ptr<Op>& op) {
    std::unique_lock<std::mutex> lock(mu_);
    TimePoint start = Clock::now();
    done_cv_.wait(lock, [&] { return op->finished; });
    stats_.wait_s += Seconds(Clock::now() - start);
    return op->status;
  }
  bool IsFinished(const std::shared_ptr<Op>& op) {
    std::lock_guard<std::mutex> lock(mu_);
    return op->finished;
  }

 private:
  void Run();
  bool StepHeartbeats(TimePoint now);
  bool StepCollectives(TimePoint now);
  bool StepMessages(TimePoint now);
  void StepZombies();
  void SayGoodbye();
  void Finish(const std::shared_ptr<Op>& op, absl::Status status, TimePoint now);
  void FailCollectives(const absl::Status& cause, TimePoint now);
  std::string PeerState(int p, TimePoint now, int64_t seq) const;
  absl::Status TimeoutStatus(const Op& op, TimePoint now) const;
  absl::Status Post(Op& op);

  const CommOptions options_;
  const double heartbeat_s_;
  const double silent_after_s_;
  MPI_Comm coll_ = MPI_COMM_NULL;  // collectives, in issue order
  MPI_Comm p2p_ = MPI_COMM_NULL;   // SendAsync/RecvAsync
  MPI_Comm hb_ = MPI_COMM_NULL;    // heartbeats
  int rank_ = 0;
  int size_ = 1;
  int tag_ub_ = 32767;
  std::string version_;

  std::mutex shutdown_mu_;  // the destructor and the exit handler may race
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // wakes the progress thread
  std::condition_variable done_cv_;  // wakes waiting callers
  std::deque<std::shared_ptr<Op>> incoming_;
  bool stop_requested_ = false;
  absl::Status broken_;  // after a failed collective
  std::atomic<int64_t> issued_{0};
  std::map<std::pair<int, int>, TimePoint> last_release_;  // per (peer, tag): no overtaking
  CommStats stats_;
  TimePoint covered_until_;

  // Progress thread only:
  std::deque<std::shared_ptr<Op>> collectives_;   // queued, not started
  std::shared_ptr<Op> active_;                    // the collective on the wire
  std::list<std::shared_ptr<Op>> delayed_sends_;  // waiting for their emulated release
  std::list<std::shared_ptr<Op>> messages_;       // posted sends and receives
  std::vector<MPI_Request> zombies_;              // timed-out operations MPI still owns
  std::vector<Peer> peers_;
  TimePoint next_heartbeat_;
  std::thread thread_;

  friend class MpiRequest;
};

class MpiRequest : public Request {
 public:
  MpiRequest(std::shared_ptr<Core> core, std::shared_ptr<Op> op)
      : core_(std::move(core)), op_(std::move(op)) {}
  bool Test() override { return core_->IsFinished(op_); }
  absl::Status Wait() override { return core_->WaitFor(op_); }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<Op> op_;
};

std::shared_ptr<Request> Core::Submit(std::shared_ptr<Op> op) {
  if (op->bytes > static_cast<size_t>(INT_MAX)) {
    return std::make_shared<DoneRequest>(absl::InvalidArgumentError(absl::StrCat(
        op->Describe(), ": more than ", INT_MAX, " bytes in one call is not supported")));
  }
  if (op->kind == OpKind::kAllReduce && op->data == nullptr && op->bytes > 0) {
    return std::make_shared<DoneRequest>(absl::InvalidArgumentError("AllReduceAsync: null buffer"));
  }
  if (!op->collective() && (op->peer < 0 || op->peer >= size_)) {
    return std::make_shared<DoneRequest>(absl::InvalidArgumentError(
        absl::StrCat(op->Describe(), ": peer ", op->peer, " is not a rank of ", size_)));
  }
  if (!op->collective() && (op->tag < 0 || op->tag > tag_ub_)) {
    return std::make_shared<DoneRequest>(absl::InvalidArgumentError(
        absl::StrCat(op->Describe(), ": tags must lie in [0, ", tag_ub_, "]")));
  }
  if (op->kind == OpKind::kBroadcast && (op->root < 0 || op->root >= size_)) {
    return std::make_shared<DoneRequest>(absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", op->root, " is not a rank of ", size_)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_requested_) {
    return std::make_shared<DoneRequest>(absl::FailedPreconditionError(
        absl::StrCat(op->Describe(), ": the communicator is shut down")));
  }
  TimePoint now = Clock::now();
  op->issued = now;
  if (op->collective()) {
    if (!broken_.ok()) {
      return std::make_shared<DoneRequest>(absl::Status(
          broken_.code(), absl::StrCat("rank ", rank_,
                                       " cannot start a collective: the "
                                       "communicator is unusable after an earlier failure: ",
                                       broken_.message())));
    }
    op->seq = ++issued_;
  } else if (op->kind == OpKind::kSend) {
    // Messages of one (peer, tag) never overtake each other, whatever their
    // sizes: a later one is released no sooner than an earlier one.
    TimePoint& last = last_release_[{op->peer, op->tag}];
    op->release = std::max(After(now, op->delay), last);
    last = op->release;
  }
  incoming_.push_back(op);
  work_cv_.notify_all();
  return std::make_shared<MpiRequest>(shared_from_this(), std::move(op));
}

void Core::Finish(const std::shared_ptr<Op>& op, absl::Status status, TimePoint now) {
  std::lock_guard<std::mutex> lock(mu_);
  op->status = std::move(status);
  op->finished = true;
  if (op->kind == OpKind::kAllReduce && op->status.ok()) {
    ++stats_.allreduces;
    stats_.bytes_reduced += static_cast<int64_t>(op->bytes);
  }
  // comm_s: the union of the intervals operations were in flight.
  TimePoint from = std::max(op->issued, covered_until_);
  if (now > from) stats_.comm_s += Seconds(now - from);
  covered_until_ = std::max(covered_until_, now);
  done_cv_.notify_all();
}

// What one peer's heartbeats say, for a timeout message; empty when the
// peer looks fine for collective `seq` (0: for a message).
std::string Core::PeerState(int p, TimePoint now, int64_t seq) const {
  const Peer& peer = peers_[p];
  double age = Seconds(now - peer.last_heard);
  if (peer.gone) {
    return absl::StrCat("rank ", p, " has destroyed its communicator (after issuing ", peer.issued,
                        " collective(s))");
  }
  if (age > silent_after_s_) {
    return absl::StrCat("rank ", p, " has not been heard from for ", FormatSeconds(age),
                        " (hung or stopped?)");
  }
  if (seq > 0 && peer.issued < seq) {
    return absl::StrCat("rank ", p, " is alive but has issued only ", peer.issued,
                        " collective(s)");
  }
  return "";
}

absl::Status Core::TimeoutStatus(const Op& op, TimePoint now) const {
  std::vector<std::string> reasons;
  if (op.collective()) {
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      std::string state = PeerState(p, now, op.seq);
      if (!state.empty()) reasons.push_back(state);
    }
    if (reasons.empty()) reasons.push_back("every rank is alive and has issued it");
  } else {
    std::string state = PeerState(op.peer, now, 0);
    reasons.push_back(state.empty()
                          ? absl::StrCat("rank ", op.peer, " is alive (heard from ",
                                         FormatSeconds(Seconds(now - peers_[op.peer].last_heard)),
                                         " ago) but has not ",
                                         op.kind == OpKind::kSend ? "received" : "sent", " it")
                          : state);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      op.Describe(), " on rank ", rank_, " did not complete within ",
      FormatSeconds(options_.timeout_s),
      op.delay > 0 ? absl::StrCat(" (plus ", FormatSeconds(op.delay), " emulated network time)")
                   : "",
      ": ", absl::StrJoin(reasons, "; ")));
}

absl::Status Core::Post(Op& op) {
  int count = static_cast<int>(op.bytes / sizeof(float));
  int rc = MPI_SUCCESS;
  switch (op.kind) {
    case OpKind::kAllReduce:
      rc = MPI_Iallreduce(MPI_IN_PLACE, op.data, count, MPI_FLOAT, MPI_SUM, coll_, &op.request);
      break;
    case OpKind::kBroadcast:
      rc = MPI_Ibcast(op.data, static_cast<int>(op.bytes), MPI_BYTE, op.root, coll_, &op.request);
      break;
    case OpKind::kBarrier:
      rc = MPI_Ibarrier(coll_, &op.request);
      break;
    case OpKind::kSend:
      rc = MPI_Isend(op.data, static_cast<int>(op.bytes), MPI_BYTE, op.peer, op.tag, p2p_,
                     &op.request);
      break;
    case OpKind::kRecv:
      rc = MPI_Irecv(op.data, static_cast<int>(op.bytes), MPI_BYTE, op.peer, op.tag, p2p_,
                     &op.request);
      break;
  }
  op.posted = rc == MPI_SUCCESS;
  return MpiStatus(rc, op.Describe());
}

void Core::FailCollectives(const absl::Status& cause, TimePoint now) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_.ok()) broken_ = cause;
  }
  absl::Status queued(cause.code(), absl::StrCat("not started: the communicator is unusable "
                                                 "after an earlier failure: ",
                                                 cause.message()));
  for (const auto& op : collectives_) Finish(op, queued, now);
  collectives_.clear();
}

bool Core::StepHeartbeats(TimePoint now) {
  if (size_ == 1) return false;
  bool heard = false;
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    Peer& peer = peers_[p];
    // Drain everything that arrived, reposting after each message.
    while (!peer.gone) {
      if (peer.recv == MPI_REQUEST_NULL) {
        if (MPI_Irecv(peer.recv_buf, 2, MPI_INT64_T, p, kHeartbeatTag, hb_, &peer.recv) !=
            MPI_SUCCESS) {
          peer.recv = MPI_REQUEST_NULL;
          break;
        }
      }
      int flag = 0;
      if (MPI_Test(&peer.recv, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || !flag) break;
      peer.recv = MPI_REQUEST_NULL;
      peer.last_heard = now;
      peer.issued = peer.recv_buf[0];
      peer.gone = peer.recv_buf[1] != 0;
      heard = true;
    }
  }
  if (now >= next_heartbeat_) {
    next_heartbeat_ = After(now, heartbeat_s_);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      Peer& peer = peers_[p];
      int flag = 1;
      if (peer.send != MPI_REQUEST_NULL) MPI_Test(&peer.send, &flag, MPI_STATUS_IGNORE);
      // A peer that does not take our heartbeats (stopped) gets no pile of them.
      if (!flag) continue;
      peer.send_buf[0] = issued_.load();
      peer.send_buf[1] = 0;
      if (MPI_Isend(peer.send_buf, 2, MPI_INT64_T, p, kHeartbeatTag, hb_, &peer.send) !=
          MPI_SUCCESS) {
        peer.send = MPI_REQUEST_NULL;
      }
    }
  }
  return heard;
}

bool Core::StepCollectives(TimePoint now) {
  bool progressed = false;
  if (!active_ && !collectives_.empty()) {
    // Collectives run one at a time in issue order; the emulated network
    // time of this one starts now (after the previous one completed).
    active_ = collectives_.front();
    collectives_.pop_front();
    active_->release = After(now, active_->delay);
    active_->deadline = After(active_->release, options_.timeout_s);
  }
  if (!active_) return false;
  Op& op = *active_;
  if (!op.posted && now >= op.release) {
    absl::Status posted = Post(op);
    if (!posted.ok()) {
      Finish(active_, posted, now);
      active_.reset();
      FailCollectives(posted, now);
      return true;
    }
    progressed = true;
  }
  if (op.posted) {
    int flag = 0;
    int rc = MPI_Test(&op.request, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      absl::Status error = MpiStatus(rc, op.Describe());
      Finish(active_, error, now);
      active_.reset();
      FailCollectives(error, now);
      return true;
    }
    if (flag) {
      if (op.kind == OpKind::kAllReduce && op.reduce == ReduceOp::kMean) {
        // The sum is identical on every rank, so is sum * (1/size).
        float* data = static_cast<float*>(op.data);
        const float scale = 1.0f / static_cast<float>(size_);
        for (size_t i = 0, n = op.bytes / sizeof(float); i < n; ++i) data[i] *= scale;
      }
      Finish(active_, absl::OkStatus(), Clock::now());
      active_.reset();
      return true;
    }
  }
  if (now > op.deadline) {
    absl::Status timeout = TimeoutStatus(op, now);
    // MPI cannot withdraw a started collective: keep testing it so that it
    // completes if the peers catch up, but this communicator's sequence of
    // collectives is broken.
    if (op.posted) zombies_.push_back(op.request);
    op.request = MPI_REQUEST_NULL;
    Finish(active_, timeout, now);
    active_.reset();
    FailCollectives(timeout, now);
    return true;
  }
  return progressed;
}

bool Core::StepMessages(TimePoint now) {
  bool progressed = false;
  for (auto it = delayed_sends_.begin(); it != delayed_sends_.end();) {
    std::shared_ptr<Op> op = *it;
    if (now < op->release) {
      ++it;
      continue;
    }
    it = delayed_sends_.erase(it);
    op->deadline = After(now, options_.timeout_s);
    absl::Status posted = Post(*op);
    if (!posted.ok()) {
      Finish(op, posted, now);
    } else {
      messages_.push_back(op);
    }
    progressed = true;
  }
  for (auto it = messages_.begin(); it != messages_.end();) {
    std::shared_ptr<Op> op = *it;
    int flag = 0;
    int rc = MPI_Test(&op->request, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || flag) {
      Finish(op, MpiStatus(rc, op->Describe()), now);
      it = messages_.erase(it);
      progressed = true;
    } else if (now > op->deadline) {
      // A message can be withdrawn; MPI may still need a moment to agree.
      MPI_Cancel(&op->request);
      zombies_.push_back(op->request);
      op->request = MPI_REQUEST_NULL;
      Finish(op, TimeoutStatus(*op, now), now);
      it = messages_.erase(it);
      progressed = true;
    } else {
      ++it;
    }
  }
  return progressed;
}

void Core::StepZombies() {
  for (auto it = zombies_.begin(); it != zombies_.end();) {
    int flag = 0;
    if (MPI_Test(&*it, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || flag) {
      it = zombies_.erase(it);
    } else {
      ++it;
    }
  }
}

void Core::Run() {
  pthread_setname_np(pthread_self(), "lasgd-mpi");
  // The thread sleeps unless MPI has work, and that work is what the ranks
  // wait for: where allowed (root, CAP_SYS_NICE), let it run before the
  // caller's compute threads when both want a core. Best effort.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), -10);
  next_heartbeat_ = Clock::now();
  // Polling MPI: sleep between tests, starting short (a small collective
  // completes within microseconds) and backing off, so that waiting for a
  // slow peer costs no core.
  constexpr auto kMinPoll = std::chrono::microseconds(20);
  constexpr auto kMaxPoll = std::chrono::microseconds(500);
  Clock::duration poll = kMinPoll;
  while (true) {
    std::vector<std::shared_ptr<Op>> fresh;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fresh.assign(incoming_.begin(), incoming_.end());
      incoming_.clear();
      if (stop_requested_ && fresh.empty() && !active_ && collectives_.empty() &&
          delayed_sends_.empty() && messages_.empty()) {
        break;
      }
    }
    TimePoint now = Clock::now();
    bool progressed = !fresh.empty();
    for (auto& op : fresh) {
      if (op->collective()) {
        absl::Status broken;
        {
          std::lock_guard<std::mutex> lock(mu_);
          broken = broken_;
        }
        if (!broken.ok()) {
          // Issued before the failure was known.
          Finish(op,
                 absl::Status(broken.code(),
                              absl::StrCat("not started: the communicator is unusable after an "
                                           "earlier failure: ",
                                           broken.message())),
                 now);
          continue;
        }
        collectives_.push_back(op);
      } else if (op->kind == OpKind::kSend) {
        delayed_sends_.push_back(op);
      } else {
        // Receives are posted at once, in issue order (MPI matches them in
        // that order); the sender applies the emulated delay.
        op->deadline = After(now, options_.timeout_s + op->delay);
        absl::Status posted = Post(*op);
        if (!posted.ok()) {
          Finish(op, posted, now);
        } else {
          messages_.push_back(op);
        }
      }
    }
    progressed |= StepHeartbeats(now);
    progressed |= StepCollectives(now);
    progressed |= StepMessages(now);
    StepZombies();

    // When to look again: soon while MPI owns work, otherwise at the next
    // emulated release, deadline or heartbeat, or when a caller submits.
    now = Clock::now();
    TimePoint wake = next_heartbeat_;
    bool mpi_busy = (active_ && active_->posted) || !messages_.empty() || !zombies_.empty();
    if (mpi_busy) {
      poll = progressed ? kMinPoll : std::min<Clock::duration>(poll * 2, kMaxPoll);
      wake = std::min(wake, now + poll);
    }
    if (active_) wake = std::min(wake, active_->posted ? active_->deadline : active_->release);
    if (!active_ && !collectives_.empty()) wake = now;
    for (const auto& op : delayed_sends_) wake = std::min(wake, op->release);
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_requested_) {
      // Draining before shutdown (no more submissions): sleep rather than
      // spin on the flag that is already set.
      lock.unlock();
      std::this_thread::sleep_until(std::min(wake, Clock::now() + kMaxPoll));
    } else {
      work_cv_.wait_until(lock, wake, [&] { return !incoming_.empty() || stop_requested_; });
    }
  }
  SayGoodbye();
}

// Tells every peer this communicator goes away and waits (briefly) for theirs,
// so that no heartbeat is left in flight on a freed communicator.
void Core::SayGoodbye() {
  TimePoint deadline = After(Clock::now(), std::min(options_.timeout_s, 10.0));
  auto all_gone = [&] {
    for (int p = 0; p < size_; ++p) {
      if (p != rank_ && !peers_[p].gone) return false;
    }
    return true;
  };
  for (int p = 0; p < size_; ++p) {
    if (p == rank_) continue;
    Peer& peer = peers_[p];
    while (peer.send != MPI_REQUEST_NULL && Clock::now() < deadline) {
      int flag = 0;
      if (MPI_Test(&peer.send, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || flag) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (peer.send != MPI_REQUEST_NULL) {
      int flag = 0;
      MPI_Test(&peer.send, &flag, MPI_STATUS_IGNORE);
      if (!flag) continue;  // a stopped peer: no goodbye
    }
    peer.send_buf[0] = issued_.load();
    peer.send_buf[1] = 1;
    if (MPI_Isend(peer.send_buf, 2, MPI_INT64_T, p, kHeartbeatTag, hb_, &peer.send) !=
        MPI_SUCCESS) {
      peer.send = MPI_REQUEST_NULL;
    }
  }
  while (!all_gone() && Clock::now() < deadline) {
    StepHeartbeats(Clock::now());
    StepZombies();
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  for (int p = 0; p < size_; ++p) {
    Peer& peer = peers_[p];
    if (peer.recv != MPI_REQUEST_NULL) {
      // Local: a posted receive is withdrawn at once.
      MPI_Cancel(&peer.recv);
      MPI_Wait(&peer.recv, MPI_STATUS_IGNORE);
    }
    while (peer.send != MPI_REQUEST_NULL && Clock::now() < deadline) {
      int flag = 0;
      if (MPI_Test(&peer.send, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || flag) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (peer.send != MPI_REQUEST_NULL) MPI_Request_free(&peer.send);
  }
  // Freeing with operations still pending is allowed: MPI frees the
  // communicator once they complete.
  for (MPI_Comm* c : {&coll_, &p2p_, &hb_}) MPI_Comm_free(c);
}

void FinalizeAtExit() {
  MpiGlobal& g = Global();
  std::vector<Core*> live;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    live.assign(g.live.begin(), g.live.end());
  }
  for (Core* core : live) core->Shutdown();
  std::lock_guard<std::mutex> lock(g.mu);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g.we_initialized && !finalized) MPI_Finalize();
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(std::shared_ptr<Core> core) : core_(std::move(core)) {
    std::lock_guard<std::mutex> lock(Global().mu);
    Global().live.insert(core_.get());
  }
  ~MpiCommunicator() override {
    core_->Shutdown();
    std::lock_guard<std::mutex> lock(Global().mu);
    Global().live.erase(core_.get());
  }

  int rank() const override { return core_->rank(); }
  int size() const override { return core_->size(); }

  std::shared_ptr<Request> AllReduceAsync(float* data, size_t count, ReduceOp op) override {
    auto o = std::make_shared<Op>();
    o->kind = OpKind::kAllReduce;
    o->data = data;
    o->bytes = count * sizeof(float);
    o->reduce = op;
    o->delay = EmulatedAllReduceSeconds(core_->options(), o->bytes, size());
    return core_->Submit(std::move(o));
  }

  absl::Status Broadcast(void* data, size_t bytes, int root) override {
    auto o = std::make_shared<Op>();
    o->kind = OpKind::kBroadcast;
    o->data = data;
    o->bytes = bytes;
    o->root = root;
    o->delay = EmulatedBroadcastSeconds(core_->options(), bytes, size());
    return core_->Submit(std::move(o))->Wait();
  }

  absl::Status Barrier() override {
    auto o = std::make_shared<Op>();
    o->kind = OpKind::kBarrier;
    o->delay = EmulatedBarrierSeconds(core_->options(), size());
    return core_->Submit(std::move(o))->Wait();
  }

  std::shared_ptr<Request> SendAsync(const void* data, size_t bytes, int peer, int tag) override {
    auto o = std::make_shared<Op>();
    o->kind = OpKind::kSend;
    o->data = const_cast<void*>(data);
    o->bytes = bytes;
    o->peer = peer;
    o->tag = tag;
    o->delay = EmulatedMessageSeconds(core_->options(), static_cast<double>(bytes));
    return core_->Submit(std::move(o));
  }

  std::shared_ptr<Request> RecvAsync(void* data, size_t bytes, int peer, int tag) override {
    auto o = std::make_shared<Op>();
    o->kind = OpKind::kRecv;
    o->data = data;
    o->bytes = bytes;
    o->peer = peer;
    o->tag = tag;
    o->delay = EmulatedMessageSeconds(core_->options(), static_cast<double>(bytes));
    return core_->Submit(std::move(o));
  }

  void Abort(int exit_code) override {
    std::fprintf(stderr, "lasgd: rank %d aborts the MPI job (exit code %d)\n", rank(), exit_code);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; should it, still end.
  }

  CommStats stats() const override { return core_->stats(); }

  std::string Describe() const override {
    std::string text =
        absl::StrCat("mpi (", core_->version(), ", ", size(), size() == 1 ? " rank" : " ranks");
    const CommOptions& o = core_->options();
    if (o.latency_ms > 0 || o.bandwidth_mb_s > 0) {
      absl::StrAppend(&text, ", emulating ", absl::StrFormat("%g", o.latency_ms), " ms");
      if (o.bandwidth_mb_s > 0) {
        absl::StrAppend(&text, " + ", absl::StrFormat("%g", o.bandwidth_mb_s), " MB/s");
      }
    }
    return text + ")";
  }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

bool LaunchedUnderMpi() {
  // Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun), PMI-1/2 (srun
  // --mpi=pmi2, MPICH's hydra), MVAPICH.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                           "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(const CommOptions& options) {
  if (!(options.timeout_s > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("communicator timeout must be positive, got ", options.timeout_s));
  }
  if (options.latency_ms < 0 || options.bandwidth_mb_s < 0) {
    return absl::InvalidArgumentError("emulated latency and bandwidth must not be negative");
  }
  RETURN_IF_ERROR(EnsureMpiInitialized());
  auto core = std::make_shared<Core>(options);
  {
    // Duplicating MPI_COMM_WORLD from two threads at once could pair up
    // differently on different ranks; ranks create communicators in the same
    // order, one at a time.
    static std::mutex* creating = new std::mutex;
    std::lock_guard<std::mutex> lock(*creating);
    RETURN_IF_ERROR_CTX(core->Init(), "creating the MPI communicator");
  }
  return std::unique_ptr<Communicator>(new MpiCommunicator(std::move(core)));
}

}  // namespace lasgd::distributed
