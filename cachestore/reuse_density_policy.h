// reuse-density: eviction by learned hit density over the prefix tree, with a key history
// four times the capacity. The server's default policy.
//
// What it keeps is what the traffic itself shows comes back soonest and most surely per
// unit of room, learned online; every parameter comes from the capacity or is learned:
//
//   - Hit density (LHD: Beckmann, Chen and Cidon, NSDI 2018). Blocks fall in classes (uses
//     so far: 1, 2, 3, 4+; and whether a chain ever continued past the block, since a
//     request's last block almost never comes back). Per class and age (log-spaced bins,
//     four per doubling, no scale), histograms count reuses and ends; the density of a block
//     is the reuses still to come for its class and age over the room-time they cost. The
//     lowest density goes first. Recomputed once per capacity's worth of events, with
//     histograms that halve over 64 such periods.
//   - A key history of four times the capacity (ARC's ghosts, LIRS's non-resident HIR
//     blocks, but longer: keys are cheap next to blocks): 64-bit IndexHash fingerprints
//     (seeded, so clients cannot aim collisions) of evicted blocks with their class and last
//     use, 16 bytes a key in a set-associative FIFO table. A block that comes back within it
//     resumes its class (its second access is recognised) and its reuse distance is recorded
//     as a hit for the class it left in, so the densities are those of a cache that kept
//     every block until its reuse or the history's horizon. A victim's "end" is booked at
//     the age the history will forget it, and cancelled if it comes back.
//   - Densities never fall with more uses (at equal age).
//   - Children before parents: only leaves (blocks without a tracked child) are candidates,
//     and the parent an eviction exposes is always among the next candidates, so a chain
//     leaves tail first. The block of the latest event (the tip of a chain being stored) is
//     taken only when nothing else is left.
//   - Candidates: 64 leaves drawn at random (LHD samples 64), the 16 least recently used
//     blocks, and the exposed parent; the lowest density wins, ties go to the oldest.
//   - Shards: where most parents are in another shard (a sharded RAM tier), densities are
//     made non-increasing with age per class and the child bit is pooled, so a block never
//     ranks above its parent wherever that lies (the parent is as recent and as used), and
//     until one turnover of evictions (no estimate yet) the order is LRU's.
//   - worth_demoting: as prefix-lfu, false only for a visible dead tail.
//
// Cost: O(1) per insert and access (hash maps, an intrusive recency list, a leaf vector);
// PopVictim looks at about 80 candidates (constant), the sampled ones through 16-byte leaf
// entries with prefetched draws. Memory: ExtraBytesPerBlock() (119 B per block on 64-bit
// Linux beyond LRU's ~170 B: its node, a pending-children entry, four remembered keys at
// ~18 B each); the tiers charge it with each block.
// Not thread safe: a tier calls its policy under its shard lock.

#ifndef KVCACHE_CACHESTORE_REUSE_DENSITY_POLICY_H_
#define KVCACHE_CACHESTORE_REUSE_DENSITY_POLICY_H_

#include <memory>

#include "cachestore/eviction_policy.h"

namespace kvcache {

// The policy selected by `--eviction=reuse-density`.
std::unique_ptr<EvictionPolicy> NewReuseDensityPolicy();

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_REUSE_DENSITY_POLICY_H_
