// The RAM tier's payload arena: payload buffers reserved up to the tier's capacity, page-faulted
// in ahead of use by a background thread, handed out to receive Puts into, and recycled when
// the block holding one is freed (evicted and no longer read).
//
// Why: the first touch of fresh anonymous memory costs a page fault per 4 KiB page, which on
// this project's VMs runs at ~0.36 GB/s against ~25 GB/s for reused memory. Without an
// arena, a cache that has just started (or grown) is at its slowest: every Put into an empty
// tier faults its payload in, while a full tier reuses what eviction freed
// (docs/benchmarks.md, "Put into an empty vs a full RAM tier"). With it, Put never faults on
// the request path once the background thread has gone ahead, and the process's resident
// size is the capacity from the start.
//
// Buffers are std::string (Block::payload), so the store's interfaces are unchanged: a block
// made by NewBlock carries a deleter that gives its payload back here. Buffers are kept per
// size class (payload size rounded up to 4 KiB); the background thread faults in buffers of
// the class Puts used most recently (ArenaOptions::initial_block_bytes before the first),
// with MADV_HUGEPAGE on every whole 2 MiB page of a buffer where the kernel offers it, until
// the buffers held by blocks plus those pooled reach the capacity. A Put of a class with no
// pooled buffer allocates (counted: cold_takes), taking capacity from another class's pooled
// buffers when needed so the total stays bounded.
//
// Thread safety: all methods may be called from any thread; blocks may outlive the arena
// (their buffers are then simply freed).

#ifndef KVCACHE_CACHESTORE_ARENA_H_
#define KVCACHE_CACHESTORE_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cachestore/block_store.h"

namespace kvcache {

struct ArenaOptions {
  // Bytes of payload buffers (held by blocks plus pooled) the arena keeps. Required.
  uint64_t capacity_bytes = 0;
  // Fault buffers in ahead of use, in a background thread. Default: true.
  bool prefault = true;
  // The size class faulted in before the first Put says which one is used. Default: 256 KiB.
  size_t initial_block_bytes = 256 << 10;
};

struct ArenaStats {
  uint64_t capacity_bytes = 0;
  uint64_t pooled_bytes = 0;      // Faulted in and free.
  uint64_t held_bytes = 0;        // In blocks (stored, or still read).
  uint64_t prefaulted_bytes = 0;  // Faulted in by the background thread, in all.
  uint64_t warm_takes = 0;        // Buffers handed out from the pool.
  uint64_t cold_takes = 0;        // Buffers allocated on the request path.
};

class PayloadArena {
 public:
  // Starts the background thread (when options.prefault).
  static std::shared_ptr<PayloadArena> Create(const ArenaOptions& options);
  virtual ~PayloadArena() = default;

  // A block whose payload is `payload_bytes` long (contents unspecified), for the caller to
  // fill in with its metadata and bytes; the payload returns to the arena when the last
  // reference to the block is dropped.
  virtual std::shared_ptr<Block> NewBlock(size_t payload_bytes) = 0;

  // `block` itself when its payload is the arena's, else a copy whose payload is: so that
  // blocks reaching the RAM tier some other way (gRPC Puts, promotions from disk) count
  // against the same capacity instead of adding heap memory beside it.
  virtual BlockPtr Adopt(BlockPtr block) = 0;

  // Whether `block`'s payload is this arena's (made by NewBlock or Adopt).
  virtual bool Owns(const BlockPtr& block) const = 0;

  virtual ArenaStats Stats() const = 0;

  // Blocks until the background thread has nothing left to fault in (tests, benchmarks).
  virtual void WaitUntilPrefaulted() = 0;
};

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_ARENA_H_
