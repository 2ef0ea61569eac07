// The RAM tier's payload arena: one region of memory reserved for the tier's payloads,
// advised for transparent huge pages, page-faulted in ahead of use by a background thread,
// carved into chunks that Puts receive into, and recycled when the block holding one is
// freed (evicted and no longer read).
//
// Why: the first touch of fresh anonymous memory costs a page fault per 4 KiB page, which on
// this project's VMs runs at ~0.36 GB/s against ~25 GB/s for reused memory. Without an
// arena, a cache that has just started (or grown) is at its slowest: every Put into an empty
// tier faults its payload in, while a full tier reuses what eviction freed
// (docs/benchmarks.md, "Put into an empty vs a full RAM tier"). With it, Put never faults on
// the request path once the background thread has gone ahead, and the process's resident
// size is the capacity from the start. On huge pages the warm-up is several times faster, and
// copies into and out of the arena miss the TLB less often.
//
// How (memcached's slabs, CacheLib's allocator): the region is cut into 2 MiB pages. A size
// class (the payload size rounded up to 256 bytes up to 4 KiB, to 4 KiB above) takes a slab
// of a few contiguous pages, chosen so that its chunks waste at most ~3% of it, and carves it
// into chunks; freed chunks go back to their class's free list. When no page is free for a
// new slab, slabs whose chunks are all free go back to the pages. When nothing is left (the
// region is full of other classes' chunks), a payload comes from malloc instead (counted:
// heap_takes), so a Put never fails for lack of arena memory.
//
// Thread safety: all methods may be called from any thread; blocks may outlive the arena
// (the region is unmapped when the last of them is freed).

#ifndef KVCACHE_CACHESTORE_ARENA_H_
#define KVCACHE_CACHESTORE_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cachestore/block_store.h"

namespace kvcache {

struct ArenaOptions {
  // Bytes of the region (rounded up to 2 MiB). Required.
  uint64_t capacity_bytes = 0;
  // Fault the region in ahead of use, in a background thread. Default: true.
  bool prefault = true;
  // Advise the region for transparent huge pages (MADV_HUGEPAGE; the kernel's THP setting
  // decides: "madvise" or "always" gives them, "never" does not). Default: true.
  bool huge_pages = true;
};

struct ArenaStats {
  uint64_t capacity_bytes = 0;    // The region.
  uint64_t resident_bytes = 0;    // Pages of the region faulted in (ahead of use, or by use).
  uint64_t held_bytes = 0;        // In chunks held by blocks (stored, or still read).
  uint64_t prefaulted_bytes = 0;  // Faulted in by the background thread.
  uint64_t warm_takes = 0;        // Chunks handed out from memory already faulted in.
  uint64_t cold_takes = 0;        // Chunks whose pages were faulted in on the request path.
  uint64_t heap_takes = 0;        // Payloads from malloc: the region had no room.
  bool huge_pages = false;        // The region is advised for huge pages.
};

class PayloadArena {
 public:
  // Maps the region and starts the background thread (when options.prefault).
  static std::shared_ptr<PayloadArena> Create(const ArenaOptions& options);
  virtual ~PayloadArena() = default;

  // A block whose payload is `payload_bytes` long (contents unspecified), for the caller to
  // fill in with its metadata and bytes; the payload returns to the arena when the block is
  // freed.
  virtual std::shared_ptr<Block> NewBlock(size_t payload_bytes) = 0;

  // `block` itself when its payload is the arena's, else a copy whose payload is: so that
  // blocks reaching the RAM tier some other way (gRPC Puts, promotions from disk) count
  // against the same capacity instead of adding heap memory beside it.
  virtual BlockPtr Adopt(BlockPtr block) = 0;

  // Whether `block`'s payload is this arena's (made by NewBlock or Adopt, not from malloc).
  virtual bool Owns(const BlockPtr& block) const = 0;

  virtual ArenaStats Stats() const = 0;

  // Blocks until the background thread has faulted in the whole region (tests, benchmarks).
  virtual void WaitUntilPrefaulted() = 0;
};

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_ARENA_H_
