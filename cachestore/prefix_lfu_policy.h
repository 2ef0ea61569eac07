// prefix-lfu: a frequency-aware, prefix-chain-aware eviction policy for KV blocks.
//
// LRU keeps the wrong blocks on LLM traffic: most blocks are read once, a few (shared system
// prompts, the earlier turns of long chats) are read again and again, and a block is only
// useful while its whole prefix is cached. prefix-lfu combines what the field knows:
//
//   - LFU with dynamic aging (LFU-DA, the GDSF family; Arlitt et al. 2000). Each block has
//     a priority H = L + f, where f counts its uses and L is the priority of the last
//     victim. The lowest H goes first; L rising with every eviction ages out blocks that
//     were popular once but are no longer read. GDSF's cost/size factor is 1 here: a
//     block's recompute cost is proportional to its size.
//   - Leaves first (SGLang's radix-tree eviction): a block with a cached child in the same
//     tier is never chosen while any leaf is tracked, so eviction never strands a suffix
//     whose prefix is gone.
//   - Among attached blocks of equal H (a chain's first block, or one whose parent this
//     tier tracks), newest first or oldest first, whichever is winning. Newest first is
//     vLLM's tail-first freeing (within a request the deepest block goes before its prefix)
//     and the thrash resistance of LIP and LIRS (a flood of once-seen chains evicts itself
//     instead of flushing what was cached before it): it wins when the cache is small next
//     to the reuse distances. Oldest first is LRU's order: it wins when the cache holds
//     them. Two shadow copies of the policy, one per order, see every request at the same
//     capacity (set dueling as in DIP, Qureshi et al. 2007, with miniature simulations for
//     a fully associative cache), and the real one follows the order whose shadow is ahead.
//   - Detached blocks (the parent is not in this tier, or not in this shard of it) go before
//     attached ones of equal H, and oldest first: their prefix is elsewhere or gone, and
//     evicting them in time order keeps a chain whose blocks are spread over shards
//     coherent (its blocks, touched together, leave together from every shard), as LRU does.
//   - A history of evicted blocks (ARC's ghost list, as many entries as blocks tracked):
//     a block that comes back resumes its count, so a second visit after a long gap is
//     recognised as reuse.
//   - worth_demoting: a victim is dropped instead of demoted only when it is visibly a
//     chain's dead tail: never read again, its parent tracked here, and no chain ever
//     continued past it. In a sharded tier "no child seen" proves nothing (children sit in
//     other shards) and dropping a prefix strands its chain, so the rule applies only while
//     most chained blocks find their parent in the same tier (counted as it goes).
//
// Cost: O(log n) per call: a few ordered-set and hash-map updates in each of the three
// copies (real and two shadows; about 3x LRU's constant, no scans). Memory: about 1 KiB of
// keys and counts per tracked block across the copies, plus the histories.
// Not thread safe: a tier calls its policy under its shard lock.

#ifndef KVCACHE_CACHESTORE_PREFIX_LFU_POLICY_H_
#define KVCACHE_CACHESTORE_PREFIX_LFU_POLICY_H_

#include <memory>

#include "cachestore/eviction_policy.h"

namespace kvcache {

// The policy selected by `--eviction=prefix-lfu`.
std::unique_ptr<EvictionPolicy> NewPrefixLfuPolicy();

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_PREFIX_LFU_POLICY_H_
