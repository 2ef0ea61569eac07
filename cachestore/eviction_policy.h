// The eviction-policy seam: which block a tier gives up when it needs room, whether a new
// block is worth admitting, and whether a RAM victim is worth demoting to disk.
//
// A tier owns one policy per shard and calls it under that shard's lock: implementations
// need no locking of their own and must not call back into the tier. Every call should be
// O(1) or O(log n) in the number of tracked blocks: no scans of the whole index.
//
// Policies are made by name (`NewEvictionPolicy`), so servers and benchmarks select them with
// a flag (`--eviction=lru`).

#ifndef KVCACHE_CACHESTORE_EVICTION_POLICY_H_
#define KVCACHE_CACHESTORE_EVICTION_POLICY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/key.h"

namespace kvcache {

// What a policy is told about a block when it enters the tier.
struct PolicyEntry {
  BlockId id;
  std::optional<Key> parent;  // The previous block of the chain (same namespace), if any.
  uint64_t charge = 0;        // Bytes the block costs the tier.
};

struct Victim {
  BlockId id;
  // False when the policy judges the block not worth a disk write (for example a leaf that
  // was never read again). The tiered store drops such RAM victims instead of demoting them.
  bool worth_demoting = true;
};

class EvictionPolicy {
 public:
  EvictionPolicy() = default;
  EvictionPolicy(const EvictionPolicy&) = delete;
  EvictionPolicy& operator=(const EvictionPolicy&) = delete;
  virtual ~EvictionPolicy() = default;

  // The name it is selected by.
  virtual absl::string_view Name() const = 0;

  // Whether to store a new block at all. Called before OnInsert; a block refused here is
  // never inserted. Default: admit everything.
  virtual bool Admit(const PolicyEntry& entry) { return true; }

  // A block entered the tier. REQUIRES: `entry.id` is not tracked.
  virtual void OnInsert(const PolicyEntry& entry) = 0;

  // A tracked block was read (or put again).
  virtual void OnAccess(const BlockId& id) = 0;

  // A tracked block left the tier for a reason other than PopVictim (erased, flushed,
  // failed its checksum). Unknown ids are ignored.
  virtual void OnErase(const BlockId& id) = 0;

  // Chooses the next block to give up and stops tracking it. nullopt only when nothing is
  // tracked.
  virtual std::optional<Victim> PopVictim() = 0;

  // Bytes of policy state per block beyond LRU's (which kBlockOverheadBytes covers),
  // including any history of evicted keys, amortised over the blocks tracked. The tiers
  // charge each block ChargeOf(payload) plus this, so a policy's memory is in the budget.
  virtual uint64_t ExtraBytesPerBlock() const { return 0; }
};

// Least recently used: the first policy, still the default of the store's options structs
// (their tests count blocks by ChargeOf alone); servers default to reuse-density.
std::unique_ptr<EvictionPolicy> NewLruPolicy();

// A policy by name. INVALID_ARGUMENT naming the known policies for an unknown name.
absl::StatusOr<std::unique_ptr<EvictionPolicy>> NewEvictionPolicy(absl::string_view name);

// ExtraBytesPerBlock of the policy `name` (0 for an unknown name).
uint64_t EvictionPolicyExtraBytes(absl::string_view name);

// The names NewEvictionPolicy accepts, the server's default (reuse-density) first.
std::vector<std::string> EvictionPolicyNames();

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_EVICTION_POLICY_H_
