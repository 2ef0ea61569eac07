// Following a cache node's KV events (CacheService.SubscribeEvents, docs/events.md): the
// stream itself, and a set of blocks kept equal to the node's by applying it.
//
// A consumer keeps a BlockSet, subscribes with its ResumeRequest(), applies every message,
// and after a disconnect subscribes again with ResumeRequest(): the node replays what was
// missed, or, when its ring no longer holds it, sends a snapshot that the BlockSet applies
// in place of what it had. Either way it ends with the node's blocks.
//
// Thread safety: SubscribeEvents may be called from many threads; a BlockSet is a plain
// value (one thread at a time).

#ifndef KVCACHE_CLIENT_EVENTS_CLIENT_H_
#define KVCACHE_CLIENT_EVENTS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/key.h"
#include "common/tls_options.h"
#include "kvcache/v1/cache.pb.h"

namespace kvcache {

// Reads one SubscribeEvents stream from the node at `address` ("host:port"), calling
// `on_message` for each message until it returns false (the stream is then cancelled) or
// the stream ends.
//   OK                   on_message stopped it.
//   FAILED_PRECONDITION  the node runs without events.
//   UNIMPLEMENTED        an older node.
//   UNAVAILABLE, ...     the stream broke (resume with the BlockSet's ResumeRequest).
// `connect_timeout` bounds the wait for the connection only, not the stream.
absl::Status SubscribeEvents(const std::string& address, const TlsClientOptions& tls,
                             const v1::SubscribeEventsRequest& request,
                             const std::function<bool(const v1::SubscribeEventsResponse&)>& on_message,
                             absl::Duration connect_timeout = absl::Seconds(10));

// The blocks of one node as its events describe them: one entry per (namespace, key, tier).
class BlockSet {
 public:
  // Applies one message of a stream, in order.
  void Apply(const v1::SubscribeEventsResponse& message);

  // The request that continues after the last message applied: a resume from the next
  // sequence, or a snapshot when nothing (or only part of a snapshot) was applied.
  v1::SubscribeEventsRequest ResumeRequest() const;

  // (namespace bytes || key bytes || tier as one byte) -> the block as last stored.
  using Map = absl::flat_hash_map<std::string, v1::BlockStored>;
  const Map& blocks() const { return blocks_; }
  static std::string EntryKey(absl::string_view ns, absl::string_view key, v1::Tier tier);

  uint64_t epoch() const { return epoch_; }
  uint64_t last_sequence() const { return last_sequence_; }
  bool synced() const { return synced_; }  // A snapshot or a resumable start was applied.
  uint64_t snapshots() const { return snapshots_; }  // Snapshots completed.

 private:
  Map blocks_;
  uint64_t epoch_ = 0;
  uint64_t last_sequence_ = 0;
  bool synced_ = false;
  bool in_snapshot_ = false;
  uint64_t snapshots_ = 0;
};

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_EVENTS_CLIENT_H_
