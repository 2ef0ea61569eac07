#include "client/cluster_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/call_util_internal.h"
#include "client/rendezvous.h"
#include "common/tls.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/grpc_status.h"

namespace kvcache {
namespace {

namespace health = ::grpc::health::v1;
namespace pb = ::kvcache::v1;

// An error that is the caller's (a bad request): returned as is. Any other error is the
// node's (down, frozen, broken): a miss, and a mark against the node.
bool IsCallerError(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;
  }
}

// Runs tasks on as many threads as they need (node calls block, and a frozen node holds a
// thread for up to a deadline, so a fixed-size pool could starve the healthy nodes' calls).
// Threads are kept for reuse; at most kMaxThreads, beyond which tasks queue.
class Executor {
 public:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Runs what is queued, then joins.
  ~Executor() {
    std::vector<std::thread> workers;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      workers.swap(workers_);
    }
    for (std::thread& t : workers) t.join();
  }

  // False once stopping (the task is not run).
  bool Submit(std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(task));
    if (idle_ < queue_.size() && workers_.size() < kMaxThreads) {
      workers_.emplace_back([this] { Loop(); });
    }
    return true;
  }

 private:
  static constexpr size_t kMaxThreads = 512;

  void Loop() {
    absl::MutexLock lock(&mu_);
    while (true) {
      ++idle_;
      mu_.Await(absl::Condition(
          +[](Executor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return e->stopping_ || !e->queue_.empty();
          },
          this));
      --idle_;
      if (queue_.empty()) return;  // Stopping and drained.
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      mu_.Unlock();
      task();
      task = nullptr;  // Captures are released outside the lock.
      mu_.Lock();
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// Runs `tasks` in parallel and waits for all of them or `deadline`, whichever comes first.
// A task not done by then is abandoned: it still runs to its end (its captures must own what
// it reads), and its result is dropped (nullopt here).
template <typename R>
std::vector<std::optional<R>> RunAll(Executor* executor, std::vector<std::function<R()>> tasks,
                                     absl::Time deadline) {
  struct State {
    absl::Mutex mu;
    size_t remaining ABSL_GUARDED_BY(mu) = 0;
    bool abandoned ABSL_GUARDED_BY(mu) = false;
    std::vector<std::optional<R>> results ABSL_GUARDED_BY(mu);
  };
  auto state = std::make_shared<State>();
  {
    absl::MutexLock lock(&state->mu);
    state->remaining = tasks.size();
    state->results.resize(tasks.size());
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto run = [state, i, task = std::move(tasks[i])] {
      R result = task();
      absl::MutexLock lock(&state->mu);
      if (!state->abandoned) state->results[i] = std::move(result);
      --state->remaining;
    };
    if (!executor->Submit(run)) {
      absl::MutexLock lock(&state->mu);
      --state->remaining;
    }
  }
  absl::MutexLock lock(&state->mu);
  state->mu.AwaitWithDeadline(
      absl::Condition(+[](size_t* remaining) { return *remaining == 0; }, &state->remaining),
      deadline);
  state->abandoned = true;
  return std::move(state->results);
}

enum class Breaker { kClosed, kOpen, kHalfOpen };

const char* BreakerName(Breaker b) {
  switch (b) {
    case Breaker::kClosed:
      return "closed";
    case Breaker::kOpen:
      return "open";
    case Breaker::kHalfOpen:
      return "half-open";
  }
  return "?";
}

// One cache node: its client, health checks and circuit breaker.
class Node {
 public:
  Node(const std::string& address, const CacheClientOptions& options)
      : address_(address),
        options_(WithTarget(options, address)),
        token_(BearerToken(options.tls).value_or("")) {
    grpc::ChannelArguments args;
    // Probes should see a restarted node soon, not after gRPC's reconnect backoff (which
    // grows to 2 minutes). Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the
    // connect timeout, and a busy node's handshake can take longer than a short one.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(options.max_message_bytes);
    args.SetMaxSendMessageSize(options.max_message_bytes);
    AddTlsChannelArgs(options.tls, &args);
    // The control channel: health checks and the cluster's own (asynchronous) Lookups.
    // Same credentials as the node's client (checked when the cluster client was made).
    std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        address, ChannelCredentialsOrFailClosed(options.tls), args);
    health_ = health::Health::NewStub(channel);
    stub_ = pb::CacheService::NewStub(channel);
    absl::MutexLock lock(&mu_);
    client_ = MakeClient();
    backoff_ = options_.breaker_initial_backoff;
  }

  const std::string& address() const { return address_; }
  // For asynchronous Lookups on the control channel. Null when the breaker is not closed.
  // The caller's bearer token on a call of the control channel.
  void AddToken(grpc::ClientContext* ctx) const { internal::AddBearerToken(ctx, token_); }

  pb::CacheService::Stub* UsableStub() const {
    absl::MutexLock lock(&mu_);
    return breaker_ == Breaker::kClosed ? stub_.get() : nullptr;
  }

  // The node's client, or null when its breaker is not closed (the node is skipped).
  std::shared_ptr<CacheClient> UsableClient() const {
    absl::MutexLock lock(&mu_);
    if (breaker_ != Breaker::kClosed) return nullptr;
    return client_;
  }
  bool usable() const {
    absl::MutexLock lock(&mu_);
    return breaker_ == Breaker::kClosed;
  }

  // Records a call's outcome: a node failure counts towards opening the breaker.
  void RecordOutcome(const absl::Status& s) {
    if (s.ok() || IsCallerError(s)) {
      absl::MutexLock lock(&mu_);
      consecutive_failures_ = 0;
      healthy_ = true;
      return;
    }
    failures_.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    last_error_ = s.ToString();
    healthy_ = false;
    ++consecutive_failures_;
    if (breaker_ == Breaker::kClosed && consecutive_failures_ >= options_.breaker_failures) {
      OpenLocked();
    }
  }

  // Called by the health loop: returns true (and marks a check in flight) when a health
  // check is due: a periodic one while closed, the half-open probe when open and its backoff
  // has passed.
  bool StartCheckIfDue(absl::Time now) {
    absl::MutexLock lock(&mu_);
    if (check_in_flight_) return false;
    if (breaker_ == Breaker::kClosed && now >= next_check_) {
      next_check_ = now + options_.health_check_interval;
    } else if (breaker_ == Breaker::kOpen && now >= retry_at_) {
      breaker_ = Breaker::kHalfOpen;
    } else {
      return false;
    }
    check_in_flight_ = true;
    return true;
  }

  // Runs the health check StartCheckIfDue asked for (blocking, bounded by a deadline).
  void RunCheck() {
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    // The calls' deadline: a check must not be stricter than the calls it stands for.
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    const grpc::Status s = health_->Check(&ctx, req, &resp);
    const bool serving = s.ok() && resp.status() == health::HealthCheckResponse::SERVING;
    if (!serving) failures_.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    check_in_flight_ = false;
    healthy_ = serving;
    if (!serving) {
      last_error_ = absl::StrCat(
          "health: ", s.ok() ? health::HealthCheckResponse::ServingStatus_Name(resp.status())
                             : s.error_message());
    }
    if (breaker_ == Breaker::kHalfOpen) {
      if (serving) {
        // Back in use, over a fresh client: the old one's channel may sit in gRPC's
        // reconnect backoff, and a restarted node may offer another data channel.
        breaker_ = Breaker::kClosed;
        consecutive_failures_ = 0;
        backoff_ = options_.breaker_initial_backoff;
        if (client_ != nullptr) {
          retired_fallbacks_ += client_->data_channel_fallbacks();
          retired_local_calls_ += client_->local_path_calls();
          retired_local_fallbacks_ += client_->local_path_fallbacks();
        }
        client_ = MakeClient();
      } else {
        backoff_ = std::min(backoff_ * 2, options_.breaker_max_backoff);
        breaker_ = Breaker::kOpen;
        retry_at_ = absl::Now() + backoff_;
      }
      return;
    }
    if (serving) {
      consecutive_failures_ = 0;
    } else if (breaker_ == Breaker::kClosed &&
               ++consecutive_failures_ >= options_.breaker_failures) {
      OpenLocked();
    }
  }

  // Data-channel fallbacks of this node's clients, the replaced ones included.
  uint64_t DataChannelFallbacks() const {
    absl::MutexLock lock(&mu_);
    return retired_fallbacks_ + (client_ != nullptr ? client_->data_channel_fallbacks() : 0);
  }
  // Same-host path calls and fallbacks of this node's clients, the replaced ones included.
  uint64_t LocalPathCalls() const {
    absl::MutexLock lock(&mu_);
    return retired_local_calls_ + (client_ != nullptr ? client_->local_path_calls() : 0);
  }
  uint64_t LocalPathFallbacks() const {
    absl::MutexLock lock(&mu_);
    return retired_local_fallbacks_ + (client_ != nullptr ? client_->local_path_fallbacks() : 0);
  }

  ClusterNodeStats Stats() const {
    ClusterNodeStats s;
    s.address = address_;
    {
      absl::MutexLock lock(&mu_);
      s.breaker = BreakerName(breaker_);
      s.healthy = healthy_;
      s.last_error = last_error_;
    }
    s.lookups = lookups.load(std::memory_order_relaxed);
    s.gets = gets.load(std::memory_order_relaxed);
    s.get_blocks = get_blocks.load(std::memory_order_relaxed);
    s.hot_get_blocks = hot_get_blocks.load(std::memory_order_relaxed);
    s.puts = puts.load(std::memory_order_relaxed);
    s.put_blocks = put_blocks.load(std::memory_order_relaxed);
    s.failures = failures_.load(std::memory_order_relaxed);
    s.breaker_opens = breaker_opens_.load(std::memory_order_relaxed);
    s.replication_dropped = replication_dropped.load(std::memory_order_relaxed);
    return s;
  }

  // Counters the cluster client bumps.
  std::atomic<uint64_t> lookups{0}, gets{0}, get_blocks{0}, hot_get_blocks{0}, puts{0},
      put_blocks{0}, replication_dropped{0};

 private:
  static CacheClientOptions WithTarget(CacheClientOptions o, const std::string& address) {
    o.target = address;
    return o;
  }

  std::shared_ptr<CacheClient> MakeClient() const {
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewNodeCacheClient(options_);
    return c.ok() ? std::shared_ptr<CacheClient>(*std::move(c)) : nullptr;
  }

  void OpenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    breaker_ = Breaker::kOpen;
    retry_at_ = absl::Now() + backoff_;
    breaker_opens_.fetch_add(1, std::memory_order_relaxed);
  }

  // Constant after construction.
  const std::string address_;
  const CacheClientOptions options_;
  const std::string token_;  // For the control channel's Lookups (checked with the options).
  std::unique_ptr<health::Health::Stub> health_;
  std::unique_ptr<pb::CacheService::Stub> stub_;

  mutable absl::Mutex mu_;
  std::shared_ptr<CacheClient> client_ ABSL_GUARDED_BY(mu_);
  uint64_t retired_fallbacks_ ABSL_GUARDED_BY(mu_) = 0;  // Of clients replaced since.
  uint64_t retired_local_calls_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t retired_local_fallbacks_ ABSL_GUARDED_BY(mu_) = 0;
  Breaker breaker_ ABSL_GUARDED_BY(mu_) = Breaker::kClosed;
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool check_in_flight_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> failures_{0}, breaker_opens_{0};
};

// The members at one moment; replaced whole when the membership changes, so a call works on
// one consistent view.
struct Membership {
  std::vector<std::string> names;
  std::vector<std::shared_ptr<Node>> nodes;
};

// A call's view of the cluster: the members and which of them are in use.
struct View {
  std::shared_ptr<const Membership> members;
  std::vector<bool> live;
  size_t num_live = 0;

  // The live nodes in rendezvous order for (ns, key), at most `count`.
  std::vector<size_t> LiveRank(const Key& ns, const Key& key, size_t count) const {
    std::vector<size_t> out;
    if (count == 0 || num_live == 0) return out;
    for (size_t i : RendezvousRank(members->names, ns, key, members->names.size())) {
      if (!live[i]) continue;
      out.push_back(i);
      if (out.size() == count) break;
    }
    return out;
  }
};

class ClusterClientImpl final : public ClusterCacheClient {
 public:
  ClusterClientImpl(const CacheClientOptions& options, ClusterTarget target)
      : options_(options),
        target_(std::move(target)),
        replicas_(static_cast<size_t>(options.replicas)),
        executor_(std::make_unique<Executor>()) {
    absl::StatusOr<std::vector<std::string>> addresses = ResolveClusterTarget(target_);
    SetMembers(addresses.ok() ? *addresses : std::vector<std::string>());
    background_ = std::thread([this] { BackgroundLoop(); });
  }

  ~ClusterClientImpl() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    background_.join();
    executor_.reset();  // Waits for the node calls and background writes in flight.
  }

  absl::StatusOr<CacheLookup> Lookup(const Key& ns, absl::Span<const Key> keys) override {
    if (keys.empty()) return absl::InvalidArgumentError("Lookup: no keys");
    const absl::Time deadline = absl::Now() + options_.lookup_timeout;
    const View view = TakeView();
    const size_t n = keys.size();
    // Each key is asked of its first live owner; only a key that owner lacks (or a node that
    // failed) is asked of the next owner, in a further round. Without losses: one round, one
    // call per node, all in parallel.
    std::vector<std::vector<size_t>> candidates(n);
    for (size_t i = 0; i < n; ++i) candidates[i] = view.LiveRank(ns, keys[i], replicas_);
    std::vector<size_t> next(n, 0);
    std::vector<bool> present(n), in_ram(n);
    size_t limit = n;
    for (int round = 0; round < kMaxRounds; ++round) {
      size_t first = 0;
      while (first < limit && present[first]) ++first;
      for (size_t i = first; i < limit; ++i) {
        if (!present[i] && next[i] >= candidates[i].size()) limit = i;
      }
      if (first >= limit) break;
      if (round > 0 && absl::Now() >= deadline) break;
      std::vector<std::pair<size_t, std::vector<size_t>>> asked = Group(first, limit, present,
                                                                        candidates, next);
      std::vector<std::vector<Key>> subs;
      for (const auto& [node, idx] : asked) {
        std::vector<Key>& sub = subs.emplace_back();
        for (size_t i : idx) sub.push_back(keys[i]);
      }
      std::vector<std::optional<absl::StatusOr<CacheLookup>>> results =
          LookupAll(view, ns, asked, subs, deadline);
      for (size_t a = 0; a < asked.size(); ++a) {
        const std::vector<size_t>& idx = asked[a].second;
        if (!results[a] || !results[a]->ok()) {
          if (results[a] && IsCallerError(results[a]->status())) return results[a]->status();
          if (!results[a]) NoAnswerInTime(view, asked[a].first);
          for (size_t i : idx) ++next[i];  // Failed or too slow: vouches for nothing.
          continue;
        }
        const CacheLookup& r = **results[a];
        const size_t c = std::min(r.num_present, idx.size());
        for (size_t j = 0; j < c; ++j) present[idx[j]] = true;
        for (size_t j = 0; j < std::min(r.num_in_ram, c); ++j) in_ram[idx[j]] = true;
        MissedAt(idx, c, &candidates, &next);
      }
    }
    CacheLookup out;
    while (out.num_present < n && present[out.num_present]) ++out.num_present;
    while (out.num_in_ram < out.num_present && in_ram[out.num_in_ram]) ++out.num_in_ram;
    return out;
  }

  absl::StatusOr<std::vector<CacheBlock>> Get(const Key& ns,
                                              absl::Span<const Key> keys) override {
    std::vector<CacheBlock> out;
    if (keys.empty()) return out;
    const absl::Time deadline = absl::Now() + options_.timeout;
    const View view = TakeView();
    const std::vector<bool> hot = HotFlags(ns, keys);
    const size_t n = keys.size();
    const uint64_t rotor = rotor_.fetch_add(1, std::memory_order_relaxed);

    // Each key's candidates, in the order to try them: its live owners; for a hot key, its
    // owners and read replicas, starting at a different one on each call.
    std::vector<std::vector<size_t>> candidates(n);
    for (size_t i = 0; i < n; ++i) {
      if (hot[i]) {
        std::vector<size_t> c = view.LiveRank(
            ns, keys[i], replicas_ + static_cast<size_t>(options_.hot_extra_replicas));
        if (!c.empty()) std::rotate(c.begin(), c.begin() + (rotor + i) % c.size(), c.end());
        candidates[i] = std::move(c);
      } else {
        candidates[i] = view.LiveRank(ns, keys[i], replicas_);
      }
    }

    std::vector<size_t> next(n, 0);  // Index into candidates[i] of the node to ask next.
    std::vector<std::optional<CacheBlock>> got(n);
    std::vector<size_t> served_by(n);
    size_t limit = n;  // Keys at and after `limit` cannot be part of the prefix.
    for (int round = 0; round < kMaxRounds; ++round) {
      size_t first = 0;
      while (first < limit && got[first]) ++first;
      for (size_t i = first; i < limit; ++i) {
        if (!got[i] && next[i] >= candidates[i].size()) limit = i;
      }
      if (first >= limit) break;
      if (round > 0 && absl::Now() >= deadline) break;
      std::vector<bool> done(n);
      for (size_t i = 0; i < n; ++i) done[i] = got[i].has_value();
      std::vector<std::pair<size_t, std::vector<size_t>>> asked =
          Group(first, limit, done, candidates, next);
      std::vector<std::function<absl::StatusOr<std::vector<CacheBlock>>()>> tasks;
      for (const auto& [node, idx] : asked) {
        std::vector<Key> sub;
        for (size_t i : idx) sub.push_back(keys[i]);
        tasks.push_back([node = view.members->nodes[node], ns, sub = std::move(sub)]()
                            -> absl::StatusOr<std::vector<CacheBlock>> {
          std::shared_ptr<CacheClient> client = node->UsableClient();
          if (!client) return absl::UnavailableError("breaker open");
          node->gets.fetch_add(1, std::memory_order_relaxed);
          absl::StatusOr<std::vector<CacheBlock>> r = client->Get(ns, sub);
          node->RecordOutcome(r.status());
          if (r.ok()) node->get_blocks.fetch_add(r->size(), std::memory_order_relaxed);
          return r;
        });
      }
      std::vector<std::optional<absl::StatusOr<std::vector<CacheBlock>>>> results =
          RunAll(executor_.get(), std::move(tasks), deadline);
      for (size_t a = 0; a < asked.size(); ++a) {
        const std::vector<size_t>& idx = asked[a].second;
        if (!results[a] || !results[a]->ok()) {
          if (results[a] && IsCallerError(results[a]->status())) return results[a]->status();
          if (!results[a]) NoAnswerInTime(view, asked[a].first);
          for (size_t i : idx) ++next[i];  // Failed or too slow: the next replica.
          continue;
        }
        std::vector<CacheBlock>& blocks = **results[a];
        size_t j = 0;
        for (; j < blocks.size() && j < idx.size() && blocks[j].key == keys[idx[j]]; ++j) {
          served_by[idx[j]] = asked[a].first;
          got[idx[j]] = std::move(blocks[j]);
        }
        MissedAt(idx, j, &candidates, &next);
      }
    }

    while (out.size() < n && got[out.size()]) {
      const size_t i = out.size();
      if (hot[i]) {
        view.members->nodes[served_by[i]]->hot_get_blocks.fetch_add(1,
                                                                    std::memory_order_relaxed);
      }
      out.push_back(std::move(*got[i]));
    }
    RecordReads(ns, out, view);
    return out;
  }

  absl::StatusOr<CachePutResult> Put(const Key& ns,
                                     absl::Span<const CacheBlock> blocks) override {
    CachePutResult result;
    if (blocks.empty()) return result;
    const absl::Time deadline = absl::Now() + options_.timeout;
    const View view = TakeView();
    if (view.num_live == 0) {
      return absl::UnavailableError("Put: no cache node is in use (all down or none listed)");
    }
    // Each block goes to its first live owner now and to the other R-1 in the background.
    // Copies: the calls may outlive this one (a frozen node is abandoned at the deadline).
    const size_t n = view.members->nodes.size();
    std::vector<std::vector<CacheBlock>> first(n), later(n);
    for (const CacheBlock& b : blocks) {
      const std::vector<size_t> owners = view.LiveRank(ns, b.key, replicas_);
      for (size_t r = 0; r < owners.size(); ++r) {
        (r == 0 ? first : later)[owners[r]].push_back(b);
      }
    }
    for (size_t node = 0; node < n; ++node) {
      if (!later[node].empty()) {
        PutInBackground(view.members->nodes[node], ns, std::move(later[node]));
      }
    }
    std::vector<size_t> asked;
    std::vector<std::function<absl::StatusOr<CachePutResult>()>> tasks;
    for (size_t node = 0; node < n; ++node) {
      if (first[node].empty()) continue;
      asked.push_back(node);
      tasks.push_back([node = view.members->nodes[node], ns,
                       sub = std::move(first[node])]() -> absl::StatusOr<CachePutResult> {
        return PutTo(node.get(), ns, sub);
      });
    }
    std::vector<std::optional<absl::StatusOr<CachePutResult>>> results =
        RunAll(executor_.get(), std::move(tasks), deadline);
    bool any_ok = false;
    absl::Status failure;
    for (size_t a = 0; a < asked.size(); ++a) {
      if (!results[a]) {
        NoAnswerInTime(view, asked[a]);
        failure = absl::DeadlineExceededError(
            absl::StrCat("Put to ", view.members->names[asked[a]], ": no answer in time"));
        continue;
      }
      const absl::StatusOr<CachePutResult>& r = *results[a];
      if (!r.ok()) {
        if (IsCallerError(r.status())) return r.status();
        failure = r.status();
        continue;
      }
      any_ok = true;
      result.stored += r->stored;
      result.already_present += r->already_present;
      result.not_admitted += r->not_admitted;
    }
    if (!any_ok && !failure.ok()) {
      return absl::UnavailableError(
          absl::StrCat("Put: no cache node took the blocks; last error: ", failure.ToString()));
    }
    return result;
  }

  std::vector<std::string> Members() const override { return TakeView().members->names; }

  std::vector<ClusterNodeStats> NodeStats() const override {
    std::vector<ClusterNodeStats> out;
    for (const std::shared_ptr<Node>& node : TakeView().members->nodes) {
      out.push_back(node->Stats());
    }
    return out;
  }

  uint64_t data_channel_fallbacks() const override {
    uint64_t total = 0;
    for (const std::shared_ptr<Node>& node : TakeView().members->nodes) {
      total += node->DataChannelFallbacks();
    }
    return total;
  }
  uint64_t local_path_calls() const override {
    uint64_t total = 0;
    for (const std::shared_ptr<Node>& node : TakeView().members->nodes) {
      total += node->LocalPathCalls();
    }
    return total;
  }
  uint64_t local_path_fallbacks() const override {
    uint64_t total = 0;
    for (const std::shared_ptr<Node>& node : TakeView().members->nodes) {
      total += node->LocalPathFallbacks();
    }
    return total;
  }

  size_t NumHotBlocks() const override {
    absl::MutexLock lock(&hot_mu_);
    return num_hot_;
  }

  void WaitForBackgroundWrites() override {
    absl::MutexLock lock(&bg_mu_);
    bg_mu_.Await(absl::Condition(
        +[](size_t* pending) { return *pending == 0; }, &pending_writes_));
  }

 private:
  static constexpr int kMaxRounds = 8;
  // Hot-block bookkeeping is bounded: beyond this many tracked blocks, new ones are not
  // counted until the next window drops the cold ones.
  static constexpr size_t kMaxTrackedBlocks = 1 << 16;
  static constexpr absl::Duration kBackgroundTick = absl::Milliseconds(50);

  // One Lookup per asked node, all in flight at once on one completion queue that this
  // thread drives: no thread hand-off, so a fan-out costs about the slowest round trip.
  // nullopt for a node that did not answer by `deadline` (its call is cancelled).
  static std::vector<std::optional<absl::StatusOr<CacheLookup>>> LookupAll(
      const View& view, const Key& ns,
      const std::vector<std::pair<size_t, std::vector<size_t>>>& asked,
      const std::vector<std::vector<Key>>& subs, absl::Time deadline) {
    struct Call {
      grpc::ClientContext ctx;
      pb::LookupResponse resp;
      grpc::Status status;
      std::unique_ptr<grpc::ClientAsyncResponseReader<pb::LookupResponse>> rpc;
      bool done = false;
    };
    std::vector<std::optional<absl::StatusOr<CacheLookup>>> out(asked.size());
    std::vector<std::unique_ptr<Call>> calls(asked.size());
    grpc::CompletionQueue cq;
    size_t pending = 0;
    for (size_t a = 0; a < asked.size(); ++a) {
      Node* node = view.members->nodes[asked[a].first].get();
      pb::CacheService::Stub* stub = node->UsableStub();
      if (!stub) {
        out[a] = absl::UnavailableError("breaker open");
        continue;
      }
      pb::LookupRequest req;
      req.set_namespace_id(std::string(ns.view()));
      for (const Key& k : subs[a]) req.add_keys(std::string(k.view()));
      auto call = std::make_unique<Call>();
      call->ctx.set_deadline(absl::ToChronoTime(deadline));
      node->AddToken(&call->ctx);
      call->rpc = stub->AsyncLookup(&call->ctx, req, &cq);
      call->rpc->Finish(&call->resp, &call->status, reinterpret_cast<void*>(a));
      node->lookups.fetch_add(1, std::memory_order_relaxed);
      calls[a] = std::move(call);
      ++pending;
    }
    bool cancelled = false;
    while (pending > 0) {
      void* tag = nullptr;
      bool ok = false;
      const grpc::CompletionQueue::NextStatus st = cq.AsyncNext(
          &tag, &ok, absl::ToChronoTime(cancelled ? absl::InfiniteFuture() : deadline));
      if (st == grpc::CompletionQueue::GOT_EVENT) {
        calls[reinterpret_cast<size_t>(tag)]->done = true;
        --pending;
      } else if (st == grpc::CompletionQueue::TIMEOUT && !cancelled) {
        // gRPC ends them at the deadline itself; this only makes sure.
        for (auto& c : calls) {
          if (c && !c->done) c->ctx.TryCancel();
        }
        cancelled = true;
      } else {
        break;  // Shut down: cannot happen before Shutdown below.
      }
    }
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
    for (size_t a = 0; a < asked.size(); ++a) {
      Call* c = calls[a].get();
      if (!c) continue;
      Node* node = view.members->nodes[asked[a].first].get();
      if (c->status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
          c->status.error_code() == grpc::StatusCode::CANCELLED) {
        continue;  // No answer in time: nullopt, charged by the caller.
      }
      absl::Status s = FromGrpcStatus(c->status);
      node->RecordOutcome(s);
      if (!s.ok()) {
        out[a] = absl::Status(s.code(), absl::StrCat("Lookup to ", node->address(), ": ",
                                                     s.message()));
      } else {
        out[a] = CacheLookup{c->resp.num_present(), c->resp.num_in_ram()};
      }
    }
    return out;
  }

  // A node call abandoned at the deadline counts against the node now, not when it ends (a
  // node client's call may take longer than one deadline), so the next call skips the node.
  static void NoAnswerInTime(const View& view, size_t node) {
    view.members->nodes[node]->RecordOutcome(
        absl::DeadlineExceededError("no answer within the deadline"));
  }

  // One group per node of the keys in [first, limit) not yet done, each asked of its current
  // candidate, in chain order: one call per node per round.
  static std::vector<std::pair<size_t, std::vector<size_t>>> Group(
      size_t first, size_t limit, const std::vector<bool>& done,
      const std::vector<std::vector<size_t>>& candidates, const std::vector<size_t>& next) {
    std::map<size_t, std::vector<size_t>> groups;
    for (size_t i = first; i < limit; ++i) {
      if (!done[i]) groups[candidates[i][next[i]]].push_back(i);
    }
    return {groups.begin(), groups.end()};
  }

  // A node answered for the keys `idx` (its current candidate) with a run of `c`: idx[c] is
  // absent there, ask its next replica; the keys after it were not looked at, but a node
  // that lacks one block often lacks more (it restarted, or evicted): they ask their other
  // replicas first and this node last.
  static void MissedAt(const std::vector<size_t>& idx, size_t c,
                       std::vector<std::vector<size_t>>* candidates, std::vector<size_t>* next) {
    if (c >= idx.size()) return;
    ++(*next)[idx[c]];
    for (size_t j = c + 1; j < idx.size(); ++j) {
      std::vector<size_t>& cand = (*candidates)[idx[j]];
      const size_t at = (*next)[idx[j]];
      std::rotate(cand.begin() + at, cand.begin() + at + 1, cand.end());
    }
  }

  static absl::StatusOr<CachePutResult> PutTo(Node* node, const Key& ns,
                                              absl::Span<const CacheBlock> blocks) {
    std::shared_ptr<CacheClient> client = node->UsableClient();
    if (!client) return absl::UnavailableError("breaker open");
    node->puts.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<CachePutResult> r = client->Put(ns, blocks);
    node->RecordOutcome(r.status());
    if (r.ok()) {
      node->put_blocks.fetch_add(r->stored + r->already_present, std::memory_order_relaxed);
    }
    return r;
  }

  View TakeView() const {
    View view;
    {
      absl::MutexLock lock(&mu_);
      view.members = members_;
    }
    view.live.resize(view.members->nodes.size());
    for (size_t i = 0; i < view.live.size(); ++i) {
      view.live[i] = view.members->nodes[i]->usable();
      view.num_live += view.live[i];
    }
    return view;
  }

  // Replaces the membership, keeping the Node (client, breaker, counters) of every address
  // that stays.
  void SetMembers(std::vector<std::string> addresses) {
    std::sort(addresses.begin(), addresses.end());
    absl::MutexLock lock(&mu_);
    if (members_ && members_->names == addresses) return;
    std::map<std::string, std::shared_ptr<Node>> old;
    if (members_) {
      for (size_t i = 0; i < members_->names.size(); ++i) {
        old[members_->names[i]] = members_->nodes[i];
      }
    }
    auto next = std::make_shared<Membership>();
    for (const std::string& a : addresses) {
      auto it = old.find(a);
      next->names.push_back(a);
      next->nodes.push_back(it != old.end() ? it->second : std::make_shared<Node>(a, options_));
    }
    members_ = std::move(next);
  }

  // Health checks and probes (on the executor, so a frozen node delays only its own), and
  // DNS re-resolution.
  void BackgroundLoop() {
    absl::Time next_resolve = absl::Now() + options_.resolve_interval;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), kBackgroundTick)) return;
      }
      const absl::Time now = absl::Now();
      if (target_.is_dns() && now >= next_resolve) {
        next_resolve = now + options_.resolve_interval;
        absl::StatusOr<std::vector<std::string>> addresses = ResolveClusterTarget(target_);
        if (addresses.ok()) SetMembers(*std::move(addresses));  // Failure: keep the last.
      }
      std::shared_ptr<const Membership> members;
      {
        absl::MutexLock lock(&mu_);
        members = members_;
      }
      for (const std::shared_ptr<Node>& node : members->nodes) {
        if (node->StartCheckIfDue(now)) executor_->Submit([node] { node->RunCheck(); });
      }
    }
  }

  // Queues a write of `blocks` to `node`, unless the queue is over its byte budget.
  void PutInBackground(std::shared_ptr<Node> node, const Key& ns,
                       std::vector<CacheBlock> blocks) {
    size_t bytes = 0;
    for (const CacheBlock& b : blocks) bytes += b.payload.size();
    {
      absl::MutexLock lock(&bg_mu_);
      if (pending_bytes_ + bytes > options_.max_pending_replication_bytes) {
        node->replication_dropped.fetch_add(blocks.size(), std::memory_order_relaxed);
        return;
      }
      pending_bytes_ += bytes;
      ++pending_writes_;
    }
    auto done = [this, bytes] {
      absl::MutexLock lock(&bg_mu_);
      pending_bytes_ -= bytes;
      --pending_writes_;
    };
    if (!executor_->Submit([node, ns, blocks = std::move(blocks), done] {
          PutTo(node.get(), ns, blocks).IgnoreError();  // Best effort: a miss later.
          done();
        })) {
      done();
    }
  }

  std::vector<bool> HotFlags(const Key& ns, absl::Span<const Key> keys) const {
    std::vector<bool> hot(keys.size());
    if (options_.hot_min_reads <= 0) return hot;
    absl::MutexLock lock(&hot_mu_);
    if (num_hot_ == 0) return hot;
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = reads_.find(BlockId{ns, keys[i]});
      hot[i] = it != reads_.end() && it->second.hot;
    }
    return hot;
  }

  // Counts the reads of `blocks`; those that just turned hot are copied to their read
  // replicas in the background.
  void RecordReads(const Key& ns, const std::vector<CacheBlock>& blocks, const View& view) {
    if (options_.hot_min_reads <= 0 || blocks.empty()) return;
    const double threshold = options_.hot_min_reads;
    std::vector<const CacheBlock*> promoted;
    {
      absl::MutexLock lock(&hot_mu_);
      DecayLocked(absl::Now());
      for (const CacheBlock& b : blocks) {
        auto it = reads_.find(BlockId{ns, b.key});
        if (it == reads_.end()) {
          if (reads_.size() >= kMaxTrackedBlocks) continue;
          it = reads_.emplace(BlockId{ns, b.key}, Reads{}).first;
        }
        it->second.count += 1;
        if (!it->second.hot && it->second.count >= threshold) {
          it->second.hot = true;
          ++num_hot_;
          promoted.push_back(&b);
        }
      }
    }
    if (promoted.empty()) return;
    const size_t n = view.members->nodes.size();
    std::vector<std::vector<CacheBlock>> copies(n);
    for (const CacheBlock* b : promoted) {
      const std::vector<size_t> rank = view.LiveRank(
          ns, b->key, replicas_ + static_cast<size_t>(options_.hot_extra_replicas));
      for (size_t r = replicas_; r < rank.size(); ++r) copies[rank[r]].push_back(*b);
    }
    for (size_t node = 0; node < n; ++node) {
      if (!copies[node].empty()) {
        PutInBackground(view.members->nodes[node], ns, std::move(copies[node]));
      }
    }
  }

  // Halves every count once per elapsed window; cool blocks stop being hot (under half the
  // threshold) or are forgotten (under one read).
  void DecayLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(hot_mu_) {
    if (window_end_ == absl::InfinitePast()) window_end_ = now + options_.hot_window;
    if (now < window_end_) return;
    const int64_t windows = 1 + (now - window_end_) / options_.hot_window;
    window_end_ += windows * options_.hot_window;
    const double factor = std::ldexp(1.0, -static_cast<int>(std::min<int64_t>(windows, 60)));
    const double cool = options_.hot_min_reads / 2.0;
    for (auto it = reads_.begin(); it != reads_.end();) {
      Reads& r = it->second;
      r.count *= factor;
      if (r.hot && r.count < cool) {
        r.hot = false;
        --num_hot_;
      }
      if (!r.hot && r.count < 1) {
        reads_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  // Constant after construction.
  const CacheClientOptions options_;
  const ClusterTarget target_;
  const size_t replicas_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Membership> members_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> rotor_{0};

  struct Reads {
    double count = 0;  // Decayed: halved every hot_window.
    bool hot = false;
  };
  mutable absl::Mutex hot_mu_;
  absl::flat_hash_map<BlockId, Reads> reads_ ABSL_GUARDED_BY(hot_mu_);
  size_t num_hot_ ABSL_GUARDED_BY(hot_mu_) = 0;
  absl::Time window_end_ ABSL_GUARDED_BY(hot_mu_) = absl::InfinitePast();

  absl::Mutex bg_mu_;
  size_t pending_bytes_ ABSL_GUARDED_BY(bg_mu_) = 0;
  size_t pending_writes_ ABSL_GUARDED_BY(bg_mu_) = 0;

  // Last: stopped first in the destructor (its tasks use the fields above).
  std::unique_ptr<Executor> executor_;
  std::thread background_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClusterCacheClient>> NewClusterCacheClient(
    const CacheClientOptions& options) {
  absl::StatusOr<ClusterTarget> target = ParseClusterTarget(options.target);
  if (!target.ok()) return target.status();
  if (options.replicas < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache client: replicas must be at least 1, not ", options.replicas));
  }
  if (options.lookup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("cache client: lookup_timeout must be positive");
  }
  if (options.hot_window <= absl::ZeroDuration() || options.hot_extra_replicas < 0) {
    return absl::InvalidArgumentError(
        "cache client: hot_window must be positive and hot_extra_replicas not negative");
  }
  if (absl::Status s = CheckTlsClientOptions(options.tls); !s.ok()) return s;
  return std::make_unique<ClusterClientImpl>(options, *std::move(target));
}

}  // namespace kvcache
