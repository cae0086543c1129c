#include "distributed/inprocess_communicator.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace lasgd::distributed {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

TimePoint After(TimePoint t, double seconds) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

enum class Kind { kAllReduce, kBroadcast, kBarrier };

std::string KindName(Kind kind) {
  switch (kind) {
    case Kind::kAllReduce:
      return "all-reduce";
    case Kind::kBroadcast:
      return "broadcast";
    case Kind::kBarrier:
      return "barrier";
  }
  return "collective";
}

// One collective as the ranks issue it: the k-th collective of every rank.
struct Collective {
  int64_t seq = 0;  // 1-based
  Kind kind = Kind::kBarrier;
  size_t bytes = 0;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
  std::vector<void*> buffers;  // per rank
  std::vector<bool> joined;
  std::vector<TimePoint> issued_at;
  int joined_count = 0;
  TimePoint last_join;
  // Set by the worker once the data moved; the result is visible at
  // complete_at (the emulated network time).
  bool processed = false;
  TimePoint complete_at;
  // Ranks disagreeing on what collective #seq is.
  absl::Status error;

  std::string Describe() const {
    if (kind == Kind::kBarrier) return absl::StrCat("barrier #", seq);
    return absl::StrCat(KindName(kind), " #", seq, " (", HumanBytes(bytes), ")");
  }
};

struct Message {
  std::vector<char> data;
  TimePoint deliver_at;
};

// Messages from one rank to another with one tag, in send order.
struct Channel {
  int64_t sent = 0;
  int64_t receives_posted = 0;
  std::map<int64_t, Message> messages;  // by send index, until received
  TimePoint last_release;
};

struct RankState {
  int64_t issued = 0;       // collectives issued
  TimePoint expected_free;  // when its last collective should complete, network time included
  bool alive = true;        // its communicator still exists
  absl::Status broken;      // after a timeout: every later call fails with this
  CommStats stats;
  TimePoint covered_until;  // stats.comm_s counts the union of in-flight intervals
};

class Group {
 public:
  Group(int size, const CommOptions& options) : size_(size), options_(options), ranks_(size) {
    TimePoint now = Clock::now();
    for (RankState& r : ranks_) r.expected_free = r.covered_until = now;
    link_free_ = now;
    worker_ = std::thread([this] { Work(); });
  }
  ~Group() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  int size() const { return size_; }
  const CommOptions& options() const { return options_; }
  std::mutex& mu() { return mu_; }
  std::condition_variable& cv() { return cv_; }
  RankState& rank(int r) { return ranks_[r]; }
  std::map<std::tuple<int, int, int>, Channel>& channels() { return channels_; }

  // Adds an in-flight interval to a rank's comm_s (the union of intervals).
  void AddBusyLocked(int r, TimePoint start, TimePoint end) {
    RankState& state = ranks_[r];
    TimePoint from = std::max(start, state.covered_until);
    if (end > from) state.stats.comm_s += Seconds(end - from);
    state.covered_until = std::max(state.covered_until, end);
  }

  // Rank r issues its next collective. Returns it with the rank joined (or
  // with error set when the ranks disagree about it).
  std::shared_ptr<Collective> JoinLocked(int r, Kind kind, void* buffer, size_t bytes, ReduceOp op,
                                         int root, TimePoint now, TimePoint* deadline) {
    RankState& state = ranks_[r];
    int64_t seq = ++state.issued;
    std::shared_ptr<Collective>& slot = pending_[seq];
    if (!slot) {
      slot = std::make_shared<Collective>();
      slot->seq = seq;
      slot->kind = kind;
      slot->bytes = bytes;
      slot->op = op;
      slot->root = root;
      slot->buffers.assign(size_, nullptr);
      slot->joined.assign(size_, false);
      slot->issued_at.assign(size_, now);
    } else if (slot->error.ok() && (slot->kind != kind || slot->bytes != bytes || slot->op != op ||
                                    slot->root != root)) {
      Collective mine = *slot;
      mine.kind = kind;
      mine.bytes = bytes;
      slot->error = absl::InvalidArgumentError(absl::StrCat(
          "ranks disagree about collective #", seq, ": rank ", r, " issued ", mine.Describe(),
          kind == Kind::kBroadcast ? absl::StrCat(" from root ", root) : "", " but another rank ",
          slot->Describe(),
          slot->kind == Kind::kBroadcast ? absl::StrCat(" from root ", slot->root) : "",
          op != slot->op ? " with another reduce op" : ""));
    }
    slot->buffers[r] = buffer;
    slot->joined[r] = true;
    slot->issued_at[r] = now;
    slot->last_join = now;
    ++slot->joined_count;

    double delay = CollectiveDelay(*slot);
    TimePoint expected_start = std::max(now, state.expected_free);
    state.expected_free = After(expected_start, delay);
    *deadline = After(state.expected_free, options_.timeout_s);
    std::shared_ptr<Collective> result = slot;
    if (slot->joined_count == size_) cv_.notify_all();
    return result;
  }

  // Why collective #seq (issued by rank r) has not completed: the ranks that
  // have not issued it, or the earlier collective it is queued behind.
  std::string WhyNotCompleteLocked(const Collective& collective) const {
    int64_t blocking_seq = std::min(next_seq_, collective.seq);
    std::vector<std::string> missing;
    for (int p = 0; p < size_; ++p) {
      if (ranks_[p].issued >= blocking_seq) continue;
      missing.push_back(absl::StrCat(
          "rank ", p, ranks_[p].alive ? " has not issued it" : " has destroyed its communicator",
          " (it issued ", ranks_[p].issued, " collective(s))"));
    }
    std::string prefix;
    if (blocking_seq != collective.seq) {
      prefix = absl::StrCat("it is queued behind collective #", blocking_seq, ", which ");
    }
    if (missing.empty()) return prefix + "every rank issued it (the group is stuck)";
    return prefix + absl::StrJoin(missing, "; ");
  }

  double CollectiveDelay(const Collective& c) const {
    switch (c.kind) {
      case Kind::kAllReduce:
        return EmulatedAllReduceSeconds(options_, c.bytes, size_);
      case Kind::kBroadcast:
        return EmulatedBroadcastSeconds(options_, c.bytes, size_);
      case Kind::kBarrier:
        return EmulatedBarrierSeconds(options_, size_);
    }
    return 0;
  }

 private:
  // Moves the data of each collective once every rank joined it, in issue
  // order, outside the lock (the buffers are the callers' and untouched
  // until completion), then sets its completion time.
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] {
        if (stop_) return true;
        auto it = pending_.find(next_seq_);
        return it != pending_.end() && it->second->joined_count == size_;
      });
      if (stop_) return;
      std::shared_ptr<Collective> c = pending_[next_seq_];
      if (c->error.ok()) {
        lock.unlock();
        MoveData(*c);
        lock.lock();
        TimePoint start = std::max(c->last_join, link_free_);
        c->complete_at = After(start, CollectiveDelay(*c));
        link_free_ = c->complete_at;
        for (int r = 0; r < size_; ++r) {
          RankState& state = ranks_[r];
          if (c->kind == Kind::kAllReduce) {
            ++state.stats.allreduces;
            state.stats.bytes_reduced += static_cast<int64_t>(c->bytes);
          }
          AddBusyLocked(r, c->issued_at[r], c->complete_at);
        }
      } else {
        c->complete_at = Clock::now();
      }
      c->processed = true;
      pending_.erase(next_seq_);
      ++next_seq_;
      cv_.notify_all();
    }
  }

  void MoveData(const Collective& c) {
    if (c.kind == Kind::kAllReduce) {
      // Sum in rank order into rank 0's buffer, then copy: every rank gets
      // the same bits.
      size_t count = c.bytes / sizeof(float);
      float* acc = static_cast<float*>(c.buffers[0]);
      for (int r = 1; r < size_; ++r) {
        const float* in = static_cast<const float*>(c.buffers[r]);
        for (size_t i = 0; i < count; ++i) acc[i] += in[i];
      }
      if (c.op == ReduceOp::kMean) {
        const float scale = 1.0f / static_cast<float>(size_);
        for (size_t i = 0; i < count; ++i) acc[i] *= scale;
      }
      for (int r = 1; r < size_; ++r) {
        if (count > 0) std::memcpy(c.buffers[r], acc, count * sizeof(float));
      }
    } else if (c.kind == Kind::kBroadcast) {
      for (int r = 0; r < size_; ++r) {
        if (r != c.root && c.bytes > 0) std::memcpy(c.buffers[r], c.buffers[c.root], c.bytes);
      }
    }
  }

  const int size_;
  const CommOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RankState> ranks_;
  std::map<int64_t, std::shared_ptr<Collective>> pending_;  // by seq, until processed
  int64_t next_seq_ = 1;
  TimePoint link_free_;
  std::map<std::tuple<int, int, int>, Channel> channels_;  // (from, to, tag)
  bool stop_ = false;
  std::thread worker_;
};

// A request of one rank. Subclasses say when they are done; the base class
// waits, applies the deadline and records the time blocked.
class InProcessRequest : public Request {
 public:
  InProcessRequest(std::shared_ptr<Group> group, int rank, TimePoint deadline)
      : group_(std::move(group)), rank_(rank), deadline_(deadline) {}

  bool Test() override {
    std::lock_guard<std::mutex> lock(group_->mu());
    return PollOrExpireLocked(Clock::now());
  }

  absl::Status Wait() override {
    std::unique_lock<std::mutex> lock(group_->mu());
    TimePoint start = Clock::now();
    while (true) {
      TimePoint now = Clock::now();
      if (PollOrExpireLocked(now)) break;
      group_->cv().wait_until(lock, std::min(deadline_, NextEventLocked()));
    }
    group_->rank(rank_).stats.wait_s += Seconds(Clock::now() - start);
    return status_;
  }

 protected:
  // True once finished; sets status_ on failure.
  virtual bool PollLocked(TimePoint now) = 0;
  // When PollLocked may next turn true without a notification.
  virtual TimePoint NextEventLocked() { return TimePoint::max(); }
  // False while the operation can no longer be withdrawn (its data is moving).
  virtual bool CanExpireLocked() { return true; }
  virtual absl::Status TimeoutLocked() = 0;

  Group& group() { return *group_; }
  int rank() const { return rank_; }
  absl::Status status_;

 private:
  bool PollOrExpireLocked(TimePoint now) {
    if (finished_) return true;
    if (PollLocked(now)) {
      finished_ = true;
    } else if (now >= deadline_ && CanExpireLocked()) {
      status_ = TimeoutLocked();
      finished_ = true;
    }
    return finished_;
  }

  std::shared_ptr<Group> group_;
  int rank_;
  TimePoint deadline_;
  bool finished_ = false;
};

class DoneRequest : public Request {
 public:
  explicit DoneRequest(absl::Status status) : status_(std::move(status)) {}
  bool Test() override { return true; }
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

class CollectiveRequest : public InProcessRequest {
 public:
  CollectiveRequest(std::shared_ptr<Group> group, int rank, TimePoint deadline,
                    std::shared_ptr<Collective> collective)
      : InProcessRequest(std::move(group), rank, deadline), collective_(std::move(collective)) {}

 protected:
  bool PollLocked(TimePoint now) override {
    if (!collective_->error.ok()) {
      status_ = collective_->error;
      group().rank(rank()).broken = status_;
      return true;
    }
    return collective_->processed && now >= collective_->complete_at;
  }
  TimePoint NextEventLocked() override {
    return collective_->processed ? collective_->complete_at : TimePoint::max();
  }
  // Once every rank joined, the worker moves the data (into this rank's
  // buffer too): the request then completes, however late.
  bool CanExpireLocked() override {
    return collective_->joined_count < group().size() || !collective_->error.ok();
  }
  absl::Status TimeoutLocked() override {
    absl::Status status = absl::DeadlineExceededError(
        absl::StrCat(collective_->Describe(), " on rank ", rank(), " did not complete within ",
                     absl::StrFormat("%g", group().options().timeout_s),
                     " s: ", group().WhyNotCompleteLocked(*collective_)));
    // The collective is withdrawn: the worker never touches this rank's
    // buffer, and ranks joining it later fail at once with this message
    // instead of waiting. The group can no longer agree on what the next
    // collective is, so this rank's later collectives fail too.
    if (collective_->error.ok()) collective_->error = status;
    group().rank(rank()).broken = status;
    group().cv().notify_all();
    return status;
  }

 private:
  std::shared_ptr<Collective> collective_;
};

class SendRequest : public InProcessRequest {
 public:
  SendRequest(std::shared_ptr<Group> group, int rank, TimePoint complete_at)
      : InProcessRequest(std::move(group), rank, TimePoint::max()), complete_at_(complete_at) {}

 protected:
  bool PollLocked(TimePoint now) override { return now >= complete_at_; }
  TimePoint NextEventLocked() override { return complete_at_; }
  absl::Status TimeoutLocked() override { return absl::OkStatus(); }

 private:
  TimePoint complete_at_;  // buffered: complete once "on the wire" for the emulated time
};

class RecvRequest : public InProcessRequest {
 public:
  RecvRequest(std::shared_ptr<Group> group, int rank, TimePoint deadline, TimePoint issued,
              void* data, size_t bytes, int peer, int tag, int64_t index)
      : InProcessRequest(std::move(group), rank, deadline),
        issued_(issued),
        data_(data),
        bytes_(bytes),
        peer_(peer),
        tag_(tag),
        index_(index) {}

 protected:
  Channel& channel() { return group().channels()[{peer_, rank(), tag_}]; }

  bool PollLocked(TimePoint now) override {
    Channel& ch = channel();
    auto it = ch.messages.find(index_);
    if (it == ch.messages.end() || now < it->second.deliver_at) return false;
    const Message& message = it->second;
    if (message.data.size() > bytes_) {
      status_ = absl::InvalidArgumentError(absl::StrCat(
          "message of ", HumanBytes(message.data.size()), " from rank ", peer_, " (tag ", tag_,
          ") does not fit the receive of ", HumanBytes(bytes_), " on rank ", rank()));
    } else if (!message.data.empty()) {
      std::memcpy(data_, message.data.data(), message.data.size());
    }
    group().AddBusyLocked(rank(), issued_, message.deliver_at);
    ch.messages.erase(it);
    return true;
  }
  TimePoint NextEventLocked() override {
    Channel& ch = channel();
    auto it = ch.messages.find(index_);
    return it == ch.messages.end() ? TimePoint::max() : it->second.deliver_at;
  }
  absl::Status TimeoutLocked() override {
    int64_t sent = channel().sent;
    const RankState& sender = group().rank(peer_);
    return absl::DeadlineExceededError(absl::StrCat(
        "receive of ", HumanBytes(bytes_), " from rank ", peer_, " (tag ", tag_, ") on rank ",
        rank(), " did not complete within ", absl::StrFormat("%g", group().options().timeout_s),
        " s: rank ", peer_, sender.alive ? "" : " has destroyed its communicator and", " has sent ",
        sent, " message(s) with this tag to rank ", rank(), ", this is #", index_ + 1));
  }

 private:
  TimePoint issued_;
  void* data_;
  size_t bytes_;
  int peer_;
  int tag_;
  int64_t index_;
};

class InProcessCommunicator : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<Group> group, int rank)
      : group_(std::move(group)), rank_(rank) {}
  ~InProcessCommunicator() override {
    std::lock_guard<std::mutex> lock(group_->mu());
    group_->rank(rank_).alive = false;
    group_->cv().notify_all();
  }

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }

  std::shared_ptr<Request> AllReduceAsync(float* data, size_t count, ReduceOp op) override {
    if (data == nullptr && count > 0) {
      return Fail(absl::InvalidArgumentError("AllReduceAsync: null buffer"));
    }
    return StartCollective(Kind::kAllReduce, data, count * sizeof(float), op, 0);
  }

  absl::Status Broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Broadcast: root ", root, " is not a rank of ", size()));
    }
    return StartCollective(Kind::kBroadcast, data, bytes, ReduceOp::kSum, root)->Wait();
  }

  absl::Status Barrier() override {
    return StartCollective(Kind::kBarrier, nullptr, 0, ReduceOp::kSum, 0)->Wait();
  }

  std::shared_ptr<Request> SendAsync(const void* data, size_t bytes, int peer, int tag) override {
    if (peer < 0 || peer >= size()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("SendAsync: peer ", peer, " is not a rank of ", size())));
    }
    std::lock_guard<std::mutex> lock(group_->mu());
    TimePoint now = Clock::now();
    Channel& ch = group_->channels()[{rank_, peer, tag}];
    // Messages of one channel never overtake each other, whatever their size.
    TimePoint release =
        std::max(After(now, EmulatedMessageSeconds(group_->options(), bytes)), ch.last_release);
    ch.last_release = release;
    Message& message = ch.messages[ch.sent++];
    message.data.assign(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    message.deliver_at = release;
    group_->AddBusyLocked(rank_, now, release);
    group_->cv().notify_all();
    return std::make_shared<SendRequest>(group_, rank_, release);
  }

  std::shared_ptr<Request> RecvAsync(void* data, size_t bytes, int peer, int tag) override {
    if (peer < 0 || peer >= size()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("RecvAsync: peer ", peer, " is not a rank of ", size())));
    }
    std::lock_guard<std::mutex> lock(group_->mu());
    TimePoint now = Clock::now();
    Channel& ch = group_->channels()[{peer, rank_, tag}];
    TimePoint deadline =
        After(now, group_->options().timeout_s + EmulatedMessageSeconds(group_->options(), bytes));
    return std::make_shared<RecvRequest>(group_, rank_, deadline, now, data, bytes, peer, tag,
                                         ch.receives_posted++);
  }

  void Abort(int exit_code) override {
    // Unit tests only: no peer processes to take down; ending the process is
    // what Abort promises.
    std::fprintf(stderr, "lasgd: in-process communicator rank %d aborts with code %d\n", rank_,
                 exit_code);
    std::_Exit(exit_code);
  }

  CommStats stats() const override {
    std::lock_guard<std::mutex> lock(group_->mu());
    return group_->rank(rank_).stats;
  }

  std::string Describe() const override {
    std::string text = absl::StrCat("in-process (", size(), size() == 1 ? " rank" : " ranks");
    const CommOptions& o = group_->options();
    if (o.latency_ms > 0 || o.bandwidth_mb_s > 0) {
      absl::StrAppend(&text, ", emulating ", absl::StrFormat("%g", o.latency_ms), " ms");
      if (o.bandwidth_mb_s > 0) {
        absl::StrAppend(&text, " + ", absl::StrFormat("%g", o.bandwidth_mb_s), " MB/s");
      }
    }
    return text + ")";
  }

 private:
  std::shared_ptr<Request> Fail(absl::Status status) {
    return std::make_shared<DoneRequest>(std::move(status));
  }

  std::shared_ptr<Request> StartCollective(Kind kind, void* data, size_t bytes, ReduceOp op,
                                           int root) {
    std::lock_guard<std::mutex> lock(group_->mu());
    const absl::Status& broken = group_->rank(rank_).broken;
    if (!broken.ok()) {
      return Fail(absl::Status(broken.code(), absl::StrCat("communicator of rank ", rank_,
                                                           " is unusable after an earlier "
                                                           "failure: ",
                                                           broken.message())));
    }
    TimePoint deadline;
    std::shared_ptr<Collective> c =
        group_->JoinLocked(rank_, kind, data, bytes, op, root, Clock::now(), &deadline);
    return std::make_shared<CollectiveRequest>(group_, rank_, deadline, std::move(c));
  }

  std::shared_ptr<Group> group_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> CreateInProcessGroup(int size,
                                                                const CommOptions& options) {
  std::vector<std::unique_ptr<Communicator>> result;
  if (size <= 0) return result;
  auto group = std::make_shared<Group>(size, options);
  for (int r = 0; r < size; ++r) {
    result.push_back(std::make_unique<InProcessCommunicator>(group, r));
  }
  return result;
}

}  // namespace lasgd::distributed
