// KV events: the ring (EventLog) and the SubscribeEvents stream over it. See events.h and
// docs/events.md.

#include "services/events.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "absl/time/clock.h"
#include "proto/grpc_status.h"

namespace kvcache {

EventLog::EventLog(size_t ring_events)
    : capacity_(std::max<size_t>(ring_events, 1)), epoch_([] {
        uint64_t e = 0;
        while (e == 0) {
          if (!FillRandom(&e, sizeof(e)).ok()) e = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
        }
        return e;
      }()) {
  {
    absl::MutexLock lock(&mu_);
    ring_.resize(capacity_);
  }
  waker_ = std::thread([this] { WakeLoop(); });
}

EventLog::~EventLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    cv_.Signal();
  }
  waker_.join();
}

void EventLog::OnStored(const Block& block, TierId tier) {
  Append([&](StoreEvent& e) {
    e.kind = StoreEvent::Kind::kStored;
    e.tier = tier;
    e.id = block.meta.id;
    e.parent = block.meta.parent;
    e.payload_bytes = block.payload.size();
    e.token_ids.assign(block.token_ids.begin(), block.token_ids.end());
  });
}

void EventLog::OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) {
  Append([&](StoreEvent& e) {
    e.kind = StoreEvent::Kind::kRemoved;
    e.tier = tier;
    e.reason = reason;
    e.id = id;
  });
}

void EventLog::OnCleared(TierId tier) {
  Append([&](StoreEvent& e) {
    e.kind = StoreEvent::Kind::kCleared;
    e.tier = tier;
  });
}

template <typename Fill>
void EventLog::Append(const Fill& fill) {
  const int64_t now = absl::GetCurrentTimeNanos() / 1000;
  absl::MutexLock lock(&mu_);
  // Filled in place: the slot's token id buffer is reused, nothing is allocated for events
  // without token ids.
  StoreEvent& e = ring_[head_ % capacity_];
  e.sequence = ++head_;
  e.unix_micros = now;
  e.token_ids.clear();
  fill(e);
  if (!waiters_.empty() && !wake_) {
    wake_ = true;
    cv_.Signal();
  }
}

EventLog::Position EventLog::PositionLocked() const {
  Position p;
  p.head = head_;
  if (head_ > 0) p.oldest = head_ >= capacity_ ? head_ - capacity_ + 1 : 1;
  return p;
}

EventLog::Position EventLog::position() const {
  absl::MutexLock lock(&mu_);
  return PositionLocked();
}

EventLog::ReadResult EventLog::Read(uint64_t from, size_t max, std::vector<StoreEvent>* out,
                                    Waiter* waiter, Position* position) {
  absl::MutexLock lock(&mu_);
  const Position p = PositionLocked();
  if (position != nullptr) *position = p;
  if (from > head_) {
    if (waiter != nullptr) waiters_.insert(waiter);
    return ReadResult::kWaiting;
  }
  if (from < std::max<uint64_t>(p.oldest, 1)) return ReadResult::kLagged;
  for (uint64_t s = from; s <= head_ && out->size() < max; ++s) {
    out->push_back(ring_[(s - 1) % capacity_]);
  }
  return ReadResult::kEvents;
}

bool EventLog::CancelWait(Waiter* waiter) {
  absl::MutexLock lock(&mu_);
  return waiters_.erase(waiter) > 0;
}

void EventLog::WakeLoop() {
  for (;;) {
    std::vector<Waiter*> due;
    {
      absl::MutexLock lock(&mu_);
      while (!wake_ && !stop_) cv_.Wait(&mu_);
      if (stop_) return;
      wake_ = false;
      due.assign(waiters_.begin(), waiters_.end());
      waiters_.clear();
    }
    for (Waiter* w : due) w->Wake();
  }
}

v1::Tier ToProtoTier(TierId tier) { return tier == TierId::kRam ? v1::TIER_RAM : v1::TIER_DISK; }

v1::RemovalReason ToProtoReason(RemovalReason reason) {
  switch (reason) {
    case RemovalReason::kEvicted: return v1::REMOVAL_REASON_EVICTED;
    case RemovalReason::kDemoted: return v1::REMOVAL_REASON_DEMOTED;
    case RemovalReason::kErased: return v1::REMOVAL_REASON_ERASED;
    case RemovalReason::kCorrupt: return v1::REMOVAL_REASON_CORRUPT;
  }
  return v1::REMOVAL_REASON_UNSPECIFIED;
}

void FillEvent(const StoreEvent& e, v1::KvEvent* out) {
  out->set_sequence(e.sequence);
  out->set_unix_micros(e.unix_micros);
  switch (e.kind) {
    case StoreEvent::Kind::kStored: {
      v1::BlockStored* s = out->mutable_stored();
      s->set_namespace_id(std::string(e.id.ns.view()));
      s->set_key(std::string(e.id.key.view()));
      if (e.parent) s->set_parent_key(std::string(e.parent->view()));
      s->set_tier(ToProtoTier(e.tier));
      s->set_payload_bytes(e.payload_bytes);
      s->mutable_token_ids()->Add(e.token_ids.begin(), e.token_ids.end());
      break;
    }
    case StoreEvent::Kind::kRemoved: {
      v1::BlockRemoved* r = out->mutable_removed();
      r->set_namespace_id(std::string(e.id.ns.view()));
      r->set_key(std::string(e.id.key.view()));
      r->set_tier(ToProtoTier(e.tier));
      r->set_reason(ToProtoReason(e.reason));
      break;
    }
    case StoreEvent::Kind::kCleared:
      out->mutable_cleared()->set_tier(ToProtoTier(e.tier));
      break;
  }
}

namespace {

constexpr size_t kEventsPerMessage = 256;
constexpr size_t kBlocksPerSnapshotPart = 1024;

// One subscriber. Its state is touched by one thread at a time: the constructor, then
// whichever of OnWriteDone and Wake (the log's thread) follows the one write or wait in
// flight. OnCancel may run at any time and only finishes a subscriber that is waiting.
class EventsReactor final : public grpc::ServerWriteReactor<v1::SubscribeEventsResponse>,
                            public EventLog::Waiter {
 public:
  EventsReactor(const v1::SubscribeEventsRequest& request, EventLog* log, TieredStore* store,
                NamespaceFilter filter)
      : log_(log), store_(store), filter_(std::move(filter)) {
    if (log_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this server runs without KV events (--events-ring=0)"));
      return;
    }
    const EventLog::Position p = log_->position();
    const uint64_t from = request.from_sequence();
    const bool same_epoch = request.epoch() == 0 || request.epoch() == log_->epoch();
    if (request.from_oldest()) {
      cursor_ = p.head == 0 ? 1 : p.oldest;
    } else if (from == 0) {
      if (request.skip_snapshot()) {
        cursor_ = p.head + 1;
      } else {
        snapshot_reason_ = v1::SNAPSHOT_REASON_REQUESTED;
      }
    } else if (same_epoch && from >= std::max<uint64_t>(p.oldest, 1) && from <= p.head + 1) {
      cursor_ = from;
    } else {
      snapshot_reason_ = v1::SNAPSHOT_REASON_NOT_IN_RING;
    }
    // The first message says where the stream starts; the snapshot (if any) follows it.
    FillHeader(p, &response_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
      return;
    }
    Next();
  }

  void Wake() override { Next(); }

  void OnCancel() override {
    cancelled_.store(true);
    if (log_ != nullptr && log_->CancelWait(this)) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
    }
  }

  void OnDone() override { delete this; }

 private:
  void FillHeader(const EventLog::Position& p, v1::SubscribeEventsResponse* r) const {
    r->set_version(kEventsVersion);
    r->set_epoch(log_->epoch());
    r->set_head_sequence(p.head);
    r->set_oldest_sequence(p.oldest);
  }

  // Writes the next message, or waits for the next event.
  void Next() {
    for (;;) {
      if (cancelled_.load()) {
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
        return;
      }
      response_.Clear();
      if (snapshot_reason_ != v1::SNAPSHOT_REASON_UNSPECIFIED && !snapshot_taken_) TakeSnapshot();
      if (snapshot_taken_) {
        WriteSnapshotPart();
        return;
      }
      std::vector<StoreEvent> events;
      EventLog::Position p;
      switch (log_->Read(cursor_, kEventsPerMessage, &events, this, &p)) {
        case EventLog::ReadResult::kLagged:
          snapshot_reason_ = v1::SNAPSHOT_REASON_LAGGED;
          continue;
        case EventLog::ReadResult::kWaiting:
          // Registered: Wake follows the next event. A cancel that came before the
          // registration could not unregister us: do it here.
          if (cancelled_.load() && log_->CancelWait(this)) {
            Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
          }
          return;
        case EventLog::ReadResult::kEvents:
          break;
      }
      cursor_ = events.back().sequence + 1;
      FillHeader(p, &response_);
      for (const StoreEvent& e : events) {
        if (e.kind != StoreEvent::Kind::kCleared && filter_ && !filter_(e.id.ns)) continue;
        FillEvent(e, response_.add_events());
      }
      if (response_.events_size() == 0) continue;  // All of other namespaces.
      StartWrite(&response_);
      return;
    }
  }

  // Lists the blocks held now. Events after the sequence read before listing are sent
  // after the snapshot: each (block, tier) ends in the state of its last event, and one
  // changed by none is listed as it was.
  void TakeSnapshot() {
    const EventLog::Position p = log_->position();
    snapshot_sequence_ = p.head;
    cursor_ = p.head + 1;
    BlockStore::Filter filter;
    if (filter_) filter = [this](const BlockMeta& m) { return filter_(m.id.ns); };
    snapshot_.clear();
    for (const BlockInfo& info :
         store_->List(filter, std::numeric_limits<size_t>::max() / 4)) {
      v1::BlockStored b;
      b.set_namespace_id(std::string(info.meta.id.ns.view()));
      b.set_key(std::string(info.meta.id.key.view()));
      if (info.meta.parent) b.set_parent_key(std::string(info.meta.parent->view()));
      b.set_payload_bytes(info.payload_bytes);
      b.set_tier(ToProtoTier(info.tier));
      if (info.tier == TierId::kRam && info.on_disk) {
        snapshot_.push_back(b);
        b.set_tier(v1::TIER_DISK);
      }
      snapshot_.push_back(std::move(b));
    }
    snapshot_next_ = 0;
    snapshot_taken_ = true;
  }

  void WriteSnapshotPart() {
    FillHeader(log_->position(), &response_);
    v1::SnapshotPart* part = response_.mutable_snapshot();
    part->set_reason(snapshot_reason_);
    part->set_sequence(snapshot_sequence_);
    part->set_first(snapshot_next_ == 0);
    const size_t end = std::min(snapshot_.size(), snapshot_next_ + kBlocksPerSnapshotPart);
    for (; snapshot_next_ < end; ++snapshot_next_) {
      *part->add_blocks() = std::move(snapshot_[snapshot_next_]);
    }
    if (snapshot_next_ >= snapshot_.size()) {
      part->set_last(true);
      snapshot_.clear();
      snapshot_.shrink_to_fit();
      snapshot_taken_ = false;
      snapshot_reason_ = v1::SNAPSHOT_REASON_UNSPECIFIED;
    }
    StartWrite(&response_);
  }

  EventLog* const log_;
  TieredStore* const store_;
  const NamespaceFilter filter_;
  std::atomic<bool> cancelled_{false};
  uint64_t cursor_ = 1;  // The next sequence to send.
  v1::SnapshotReason snapshot_reason_ = v1::SNAPSHOT_REASON_UNSPECIFIED;  // One is due.
  bool snapshot_taken_ = false;  // snapshot_ holds one being sent.
  uint64_t snapshot_sequence_ = 0;
  std::vector<v1::BlockStored> snapshot_;
  size_t snapshot_next_ = 0;
  v1::SubscribeEventsResponse response_;
};

}  // namespace

grpc::ServerWriteReactor<v1::SubscribeEventsResponse>* NewSubscribeEventsReactor(
    grpc::CallbackServerContext* context, const v1::SubscribeEventsRequest* request,
    EventLog* log, TieredStore* store, NamespaceFilter filter) {
  (void)context;
  return new EventsReactor(*request, log, store, std::move(filter));
}

}  // namespace kvcache
