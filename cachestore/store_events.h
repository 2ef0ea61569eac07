// The store's change hook: what a tier reports as blocks come and go, so that the server can
// publish them as KV events (services/events.h, docs/events.md). No gRPC in here.
//
// Each tier calls its listener while it holds the lock that guards the change, so the calls
// for one block in one tier arrive in the order the changes happened (a consumer that
// applies them in order ends with the tier's contents). A listener must therefore be cheap,
// must not block, and must never call back into the store.
//
// Thread safety: the store calls a listener from many threads at once.

#ifndef KVCACHE_CACHESTORE_STORE_EVENTS_H_
#define KVCACHE_CACHESTORE_STORE_EVENTS_H_

#include "cachestore/block_store.h"

namespace kvcache {

// Why a block left a tier.
enum class RemovalReason {
  kEvicted,  // Pushed out to make room (and not kept anywhere below).
  kDemoted,  // Pushed out of RAM to be written to disk (a disk BlockStored follows, unless
             // the disk already holds it or refuses it).
  kErased,   // Removed on request (admin evict) or a tier flushed block by block.
  kCorrupt,  // Its bytes failed their checksum on a read: dropped, never served.
};

class StoreListener {
 public:
  StoreListener() = default;
  StoreListener(const StoreListener&) = delete;
  StoreListener& operator=(const StoreListener&) = delete;
  virtual ~StoreListener() = default;

  // `block` is now held by `tier`. The block's token_ids are those its writer sent, if any.
  virtual void OnStored(const Block& block, TierId tier) = 0;

  // `id` is no longer held by `tier`.
  virtual void OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) = 0;

  // Every block of `tier` is gone (a flush).
  virtual void OnCleared(TierId tier) = 0;
};

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_STORE_EVENTS_H_
