// KV events: the server's record of what changes in its store, and the SubscribeEvents
// stream over it (docs/events.md).
//
// EventLog is the store's listener (cachestore/store_events.h): every change becomes an
// event with the next sequence number in a bounded ring, whether or not anybody listens, so
// that a subscriber that reconnects can be replayed what it missed. Appending is a mutex,
// a slot overwrite and, only when a subscriber waits, a signal: no allocation unless the Put
// carried token ids. Subscribers read the ring at their own pace; one that falls behind the
// ring is never waited for (it is resent a snapshot instead), so Puts never block on them.
//
// Thread safety: all methods are safe to call from many threads.

#ifndef KVCACHE_SERVICES_EVENTS_H_
#define KVCACHE_SERVICES_EVENTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "cachestore/store_events.h"
#include "kvcache/v1/cache.pb.h"


namespace kvcache {

// One change of the store, as the ring keeps it.
struct StoreEvent {
  enum class Kind : uint8_t { kStored, kRemoved, kCleared };
  uint64_t sequence = 0;
  int64_t unix_micros = 0;
  Kind kind = Kind::kStored;
  TierId tier = TierId::kRam;
  RemovalReason reason = RemovalReason::kEvicted;  // kRemoved only.
  BlockId id;                                      // Not for kCleared.
  std::optional<Key> parent;                       // kStored only.
  uint64_t payload_bytes = 0;                      // kStored only.
  std::vector<uint32_t> token_ids;                 // kStored, when the Put carried them.
};

// The event format version this server speaks.
inline constexpr uint32_t kEventsVersion = 1;

class EventLog final : public StoreListener {
 public:
  // Something waiting for the next event. Wake is called once, from the log's own thread,
  // after an event is appended; it may call Read again.
  class Waiter {
   public:
    virtual ~Waiter() = default;
    virtual void Wake() = 0;
  };

  // `ring_events` (REQUIRES: > 0) is how many of the newest events are kept for replay.
  explicit EventLog(size_t ring_events);
  ~EventLog() override;  // REQUIRES: no waiter is registered.

  // StoreListener.
  void OnStored(const Block& block, TierId tier) override;
  void OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) override;
  void OnCleared(TierId tier) override;

  // Random per log (per server start); sequences restart with it.
  uint64_t epoch() const { return epoch_; }

  struct Position {
    uint64_t head = 0;    // The newest sequence (0: none yet).
    uint64_t oldest = 0;  // The oldest sequence the ring holds (0: empty).
  };
  Position position() const;

  enum class ReadResult {
    kEvents,   // `out` got events from `from` on.
    kLagged,   // `from` is older than the ring: what was missed is lost.
    kWaiting,  // Nothing at `from` yet: `waiter` (when non-null) will be woken.
  };
  // Copies up to `max` events from sequence `from` (REQUIRES: >= 1 and at most head + 1)
  // into `out`.
  ReadResult Read(uint64_t from, size_t max, std::vector<StoreEvent>* out, Waiter* waiter,
                  Position* position);

  // Unregisters `waiter`. Returns whether it was registered (false: it was woken, or is
  // being woken now, or never waited).
  bool CancelWait(Waiter* waiter);

 private:
  // Takes the next slot and sequence and lets `fill` (void(StoreEvent&)) set the rest.
  template <typename Fill>
  void Append(const Fill& fill);
  Position PositionLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeLoop();

  // Constant after construction.
  const size_t capacity_;
  const uint64_t epoch_;

  mutable absl::Mutex mu_;
  std::vector<StoreEvent> ring_ ABSL_GUARDED_BY(mu_);  // Event s lives at (s - 1) % capacity_.
  uint64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // Waiters are due a Wake.
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar cv_;   // Signalled when wake_ or stop_ turns true.
  std::thread waker_;  // Calls Wake outside mu_, so Puts never run a subscriber's code.
};

// The wire form of one event.
void FillEvent(const StoreEvent& event, v1::KvEvent* out);
v1::Tier ToProtoTier(TierId tier);
v1::RemovalReason ToProtoReason(RemovalReason reason);

// Which namespaces a subscriber may see (tenants: their own only). Empty: all.
using NamespaceFilter = std::function<bool(const Key& ns)>;

// Answers one SubscribeEvents call (the CacheService handler returns it). Events and
// snapshot entries of namespaces `filter` rejects are left out. `log` null: the stream
// ends with FAILED_PRECONDITION (the server runs without events).
// REQUIRES: `log` and `store` outlive the call.
grpc::ServerWriteReactor<v1::SubscribeEventsResponse>* NewSubscribeEventsReactor(
    grpc::CallbackServerContext* context, const v1::SubscribeEventsRequest* request,
    EventLog* log, TieredStore* store, NamespaceFilter filter);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_EVENTS_H_
