// The RAM tier: a sharded compact index of refcounted blocks.
//
// Each shard has its own lock, eviction policy and an equal share of the byte capacity, so
// threads working on different keys rarely meet (as in RocksDB's sharded LRU cache). The
// shard comes from the keyed IndexHash of the whole id (common/key.h): keys are chosen by
// clients, so no fixed bytes of them can be trusted to spread (hash flooding). Victims are
// collected under the lock and released after it, so freeing a large payload never blocks
// the shard.
//
// The index (compact_index_internal.h) keeps per block a 32-byte slot (the BlockPtr, the high
// 32 bits of the keyed IndexHash, the last access in whole seconds, two 32-bit LRU links) and
// an 8-byte bucket of an open-addressing table (tag: the low 32 bits; slot) at most 3/4 full.
// The 64-byte id is the block's own (Block::meta.id): Get, Put and the rest check it on every
// fingerprint match. A Lookup's ContainsEach answers from the fingerprint alone (the tag and
// the slot's high bits: 64 bits of a hash keyed with a per-process secret, of which at least
// 54 differ between blocks of one shard), so it reads no Block: a false "present" has odds of
// about blocks / 2^54 per key (one in 10^9 at 10M blocks) and costs what a block evicted
// between Lookup and Get costs, a miss on the Get that follows, which does check the id. With "lru" (the tiers'
// default) the recency list is threaded through the slots; any other policy is called as
// EvictionPolicy says and keeps its own state (its ExtraBytesPerBlock).

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cachestore/block_internal.h"
#include "cachestore/block_store.h"
#include "cachestore/compact_index_internal.h"
#include "cachestore/eviction_policy.h"
#include "cachestore/store_events.h"
#include "common/byte_size.h"

namespace kvcache {
namespace {

using internal::kNoSlot;

constexpr int kMaxShardBits = 4;
constexpr uint64_t kMinAutoShardBytes = 64ull << 20;

// One block's slot: 32 bytes.
struct Entry {
  BlockPtr block;                // Null while the slot is free.
  uint32_t prev = kNoSlot;       // Recency links (intrusive LRU only).
  uint32_t next = kNoSlot;
  uint32_t high = 0;             // HighBits of the block's IndexHash (its tag is the low ones).
  uint32_t last_access_s = 0;    // Unix seconds.
};
static_assert(sizeof(Entry) == 32, "the RAM tier's per-block slot grew");

// Cache-line aligned so that two shards' locks never share a line.
struct alignas(64) Shard {
  mutable absl::Mutex mu;
  internal::FingerprintTable table ABSL_GUARDED_BY(mu);
  internal::SlotArena<Entry> slots ABSL_GUARDED_BY(mu);
  internal::IntrusiveLru<Entry> lru ABSL_GUARDED_BY(mu);  // When policy is null.
  std::unique_ptr<EvictionPolicy> policy ABSL_GUARDED_BY(mu);  // Null: intrusive LRU.
  uint64_t capacity = 0;  // Constant after construction.
  uint64_t bytes ABSL_GUARDED_BY(mu) = 0;
  TierStats stats ABSL_GUARDED_BY(mu);
};

uint32_t HighBits(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }

BlockInfo InfoOf(const Entry& e) {
  BlockInfo info;
  info.meta = e.block->meta;
  info.payload_bytes = e.block->payload.size();
  info.tier = TierId::kRam;
  info.last_access_unix_micros = internal::UnixSecondsToMicros(e.last_access_s);
  return info;
}

class RamTier final : public BlockStore {
 public:
  // `policies`: one per shard, or none for the intrusive LRU.
  RamTier(uint64_t capacity, int shard_bits, std::vector<std::unique_ptr<EvictionPolicy>> policies,
          StoreListener* listener)
      : capacity_(capacity),
        extra_bytes_(policies.empty() ? 0 : policies[0]->ExtraBytesPerBlock()),
        shards_(size_t{1} << shard_bits),
        listener_(listener) {
    for (size_t i = 0; i < shards_.size(); ++i) {
      Shard& s = shards_[i];
      absl::MutexLock lock(&s.mu);
      s.capacity = capacity / shards_.size();
      if (!policies.empty()) s.policy = std::move(policies[i]);
    }
  }

  absl::StatusOr<PutOutcome> Put(BlockPtr block, std::vector<Evicted>* evicted) override {
    if (absl::Status s = internal::ValidateBlock(*block); !s.ok()) return s;
    const uint64_t charge = Charge(block->payload.size());
    const uint64_t hash = IndexHash(block->meta.id);
    Shard& shard = ShardOf(hash);
    if (charge > shard.capacity) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "block of ", FormatBytes(charge), " does not fit the RAM tier (",
          FormatBytes(shard.capacity), " per shard of ", FormatBytes(capacity_), ")"));
    }
    const uint32_t tag = internal::IndexTag(hash);
    std::vector<Evicted> victims;  // Released after the lock.
    {
      absl::MutexLock lock(&shard.mu);
      if (const uint32_t slot = FindLocked(shard, tag, block->meta.id); slot != kNoSlot) {
        TouchLocked(shard, slot, block->meta.id);
        return PutOutcome::kAlreadyPresent;
      }
      const PolicyEntry entry = internal::PolicyEntryOf(block->meta, charge);
      if (shard.policy != nullptr && !shard.policy->Admit(entry)) return PutOutcome::kNotAdmitted;
      while (shard.bytes + charge > shard.capacity) {
        std::optional<Evicted> victim = PopVictimLocked(shard);
        if (!victim) break;  // Unreachable while the policy tracks what the index holds.
        ++shard.stats.evictions;
        victims.push_back(*std::move(victim));
      }
      if (listener_ != nullptr) Report(victims, *block);
      const uint32_t slot = shard.slots.Allocate();
      Entry& e = shard.slots[slot];
      e.block = std::move(block);
      e.high = HighBits(hash);
      e.last_access_s = internal::NowUnixSeconds();
      shard.table.Insert(tag, slot);
      if (shard.policy != nullptr) {
        shard.policy->OnInsert(entry);
      } else {
        shard.lru.PushFront(shard.slots, slot);
      }
      shard.bytes += charge;
      ++shard.stats.inserts;
    }
    if (evicted != nullptr) {
      for (Evicted& v : victims) evicted->push_back(std::move(v));
    }
    return PutOutcome::kStored;
  }

  absl::StatusOr<BlockPtr> Get(const BlockId& id) override {
    const uint64_t hash = IndexHash(id);
    Shard& shard = ShardOf(hash);
    absl::MutexLock lock(&shard.mu);
    const uint32_t slot = FindLocked(shard, internal::IndexTag(hash), id);
    if (slot == kNoSlot) {
      ++shard.stats.misses;
      return absl::NotFoundError("not in the RAM tier");
    }
    ++shard.stats.hits;
    TouchLocked(shard, slot, id);
    return shard.slots[slot].block;
  }

  bool Contains(const BlockId& id) const override {
    const uint64_t hash = IndexHash(id);
    const Shard& shard = ShardOf(hash);
    absl::MutexLock lock(&shard.mu);
    return FindLocked(shard, internal::IndexTag(hash), id) != kNoSlot;
  }

  // In three passes, so that the memory misses of all the keys overlap instead of following
  // one another (a shard holds only a few keys of a chain): every key's bucket is prefetched
  // without locks, then each shard's lock is taken once to prefetch its keys' candidate
  // slots, and once more to compare them (by fingerprint: see the top of this file).
  void ContainsEach(const Key& ns, absl::Span<const Key> keys, bool* found) const override {
    struct Probe {
      uint32_t shard;
      uint32_t index;
      uint32_t tag;
      uint32_t high;
    };
    absl::InlinedVector<Probe, 64> in_order(keys.size());
    absl::InlinedVector<uint32_t, 17> start(shards_.size() + 1, 0);
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint64_t hash = IndexHash(BlockId{ns, keys[i]});
      Probe& p = in_order[i];
      p = Probe{static_cast<uint32_t>(IndexShard(hash, shards_.size())), static_cast<uint32_t>(i),
                internal::IndexTag(hash), HighBits(hash)};
      // Reads only the table's published hint (atomics): no lock needed.
      ABSL_TS_UNCHECKED_READ(shards_[p.shard].table).PrefetchUnlocked(p.tag);
      ++start[p.shard + 1];
    }
    // Grouped by shard, in key order within each (a counting sort: shards are few).
    for (size_t s = 1; s < start.size(); ++s) start[s] += start[s - 1];
    absl::InlinedVector<Probe, 64> probes(keys.size());
    for (const Probe& p : in_order) probes[start[p.shard]++] = p;
    // Calls fn(shard, first probe, one past the last) for each shard's run of probes.
    auto by_shard = [&](auto fn) {
      for (size_t begin = 0; begin < probes.size();) {
        size_t end = begin;
        while (end < probes.size() && probes[end].shard == probes[begin].shard) ++end;
        fn(shards_[probes[begin].shard], begin, end);
        begin = end;
      }
    };
    by_shard([&](const Shard& shard, size_t begin, size_t end) {
      absl::MutexLock lock(&shard.mu);
      const internal::FingerprintTable* table = &shard.table;
      const internal::SlotArena<Entry>* slots = &shard.slots;
      for (size_t p = begin; p < end; ++p) {
        table->ForEachCandidate(probes[p].tag,
                                [&](uint32_t slot) { __builtin_prefetch(&(*slots)[slot]); });
      }
    });
    by_shard([&](const Shard& shard, size_t begin, size_t end) {
      absl::MutexLock lock(&shard.mu);
      const internal::FingerprintTable* table = &shard.table;
      const internal::SlotArena<Entry>* slots = &shard.slots;
      for (size_t p = begin; p < end; ++p) {
        const uint32_t high = probes[p].high;
        found[probes[p].index] =
            table->Find(probes[p].tag, [&](uint32_t slot) { return (*slots)[slot].high == high; }) !=
            kNoSlot;
      }
    });
  }

  std::optional<BlockInfo> Inspect(const BlockId& id) const override {
    const uint64_t hash = IndexHash(id);
    const Shard& shard = ShardOf(hash);
    absl::MutexLock lock(&shard.mu);
    const uint32_t slot = FindLocked(shard, internal::IndexTag(hash), id);
    if (slot == kNoSlot) return std::nullopt;
    return InfoOf(shard.slots[slot]);
  }

  std::vector<BlockInfo> List(const Filter& filter, size_t limit) const override {
    std::vector<BlockInfo> out;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (uint32_t slot = 0; slot < shard.slots.end(); ++slot) {
        const Entry& e = shard.slots[slot];
        if (e.block == nullptr) continue;
        if (out.size() >= limit) return out;
        if (filter && !filter(e.block->meta)) continue;
        out.push_back(InfoOf(e));
      }
    }
    return out;
  }

  bool Erase(const BlockId& id) override {
    return Remove(id, RemovalReason::kErased) != nullptr;  // Freed here, after the lock.
  }

  bool Evict(const BlockId& id, std::vector<Evicted>* evicted) override {
    BlockPtr doomed =
        Remove(id, evicted != nullptr ? RemovalReason::kDemoted : RemovalReason::kEvicted);
    if (doomed == nullptr) return false;
    if (evicted != nullptr) evicted->push_back(Evicted{std::move(doomed), true});
    return true;
  }

  uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) override {
    uint64_t erased = 0;
    for (Shard& shard : shards_) {
      std::vector<BlockPtr> doomed;  // Released after the lock.
      absl::MutexLock lock(&shard.mu);
      EraseLocked(shard, pred, /*report=*/true, &doomed);
      erased += doomed.size();
    }
    return erased;
  }

  // Holds every shard's lock at once, so that a listener's one OnCleared is ordered against
  // every change of every shard.
  uint64_t Clear() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::vector<BlockPtr> doomed;  // Released after the locks.
    for (Shard& shard : shards_) shard.mu.Lock();
    for (Shard& shard : shards_) {
      EraseLocked(shard, [](const BlockMeta&) { return true; }, /*report=*/false, &doomed);
      // Empty now: give the index's memory back.
      shard.table.Clear();
      shard.slots.Clear();
      shard.lru.Clear();
    }
    if (listener_ != nullptr) listener_->OnCleared(TierId::kRam);
    for (auto it = shards_.rbegin(); it != shards_.rend(); ++it) it->mu.Unlock();
    return doomed.size();
  }

  TierStats Stats() const override {
    TierStats total;
    total.capacity_bytes = capacity_;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      total.blocks += shard.table.size();
      total.bytes += shard.bytes;
      total.hits += shard.stats.hits;
      total.misses += shard.stats.misses;
      total.evictions += shard.stats.evictions;
      total.inserts += shard.stats.inserts;
    }
    return total;
  }

 private:
  // The keyed hash of the whole id (common/key.h), never raw key bytes: keys are chosen by
  // clients.
  Shard& ShardOf(uint64_t hash) { return shards_[IndexShard(hash, shards_.size())]; }
  const Shard& ShardOf(uint64_t hash) const { return shards_[IndexShard(hash, shards_.size())]; }

  // The slot holding `id`, or kNoSlot: a tag match is confirmed against the block's full id.
  static uint32_t FindLocked(const Shard& shard, uint32_t tag, const BlockId& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    // The lambda runs within this call, under the lock (a pointer, not a reference: Clang's
    // analysis follows references into the lambda, which it checks as if unlocked).
    const internal::SlotArena<Entry>* slots = &shard.slots;
    return shard.table.Find(
        tag, [&](uint32_t slot) { return (*slots)[slot].block->meta.id == id; });
  }

  static void TouchLocked(Shard& shard, uint32_t slot, const BlockId& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    if (shard.policy != nullptr) {
      shard.policy->OnAccess(id);
    } else {
      shard.lru.Touch(shard.slots, slot);
    }
    shard.slots[slot].last_access_s = internal::NowUnixSeconds();
  }

  // Takes `slot`'s block out of the index (not out of the policy) and frees the slot.
  BlockPtr TakeLocked(Shard& shard, uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    Entry& e = shard.slots[slot];
    BlockPtr block = std::move(e.block);
    shard.bytes -= Charge(block->payload.size());
    shard.table.Erase(internal::IndexTag(IndexHash(block->meta.id)), slot);
    if (shard.policy == nullptr) shard.lru.Unlink(shard.slots, slot);
    shard.slots.Free(slot);
    return block;
  }

  // The policy's next victim, taken out of the index; nullopt when nothing is left.
  std::optional<Evicted> PopVictimLocked(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    if (shard.policy == nullptr) {
      const uint32_t slot = shard.lru.Oldest();
      if (slot == kNoSlot) return std::nullopt;
      return Evicted{TakeLocked(shard, slot), true};
    }
    for (;;) {
      std::optional<Victim> victim = shard.policy->PopVictim();
      if (!victim) return std::nullopt;
      const uint32_t slot =
          FindLocked(shard, internal::IndexTag(IndexHash(victim->id)), victim->id);
      if (slot == kNoSlot) continue;
      return Evicted{TakeLocked(shard, slot), victim->worth_demoting};
    }
  }

  // What a block costs: ChargeOf plus the policy's own state per block.
  uint64_t Charge(uint64_t payload_bytes) const { return ChargeOf(payload_bytes) + extra_bytes_; }

  // Takes `id` out of its shard (an eviction unless `reason` is kErased) and returns it, for
  // the caller to release after the lock; null when not stored.
  BlockPtr Remove(const BlockId& id, RemovalReason reason) {
    const uint64_t hash = IndexHash(id);
    Shard& shard = ShardOf(hash);
    absl::MutexLock lock(&shard.mu);
    const uint32_t slot = FindLocked(shard, internal::IndexTag(hash), id);
    if (slot == kNoSlot) return nullptr;
    if (shard.policy != nullptr) shard.policy->OnErase(id);
    BlockPtr block = TakeLocked(shard, slot);
    if (reason != RemovalReason::kErased) ++shard.stats.evictions;
    if (listener_ != nullptr) listener_->OnRemoved(id, TierId::kRam, reason);
    return block;
  }

  // Moves the blocks of `shard` that `pred` selects to `doomed`, telling the listener of
  // each when `report`.
  void EraseLocked(Shard& shard, const std::function<bool(const BlockMeta&)>& pred, bool report,
                   std::vector<BlockPtr>* doomed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    for (uint32_t slot = 0; slot < shard.slots.end(); ++slot) {
      const Entry& e = shard.slots[slot];
      if (e.block == nullptr || !pred(e.block->meta)) continue;
      const BlockId id = e.block->meta.id;
      if (shard.policy != nullptr) shard.policy->OnErase(id);
      doomed->push_back(TakeLocked(shard, slot));
      if (report && listener_ != nullptr) {
        listener_->OnRemoved(id, TierId::kRam, RemovalReason::kErased);
      }
    }
  }

  // Tells the listener of a Put's victims and of the block it stores (under the shard's
  // lock, so in the order the changes happen).
  void Report(const std::vector<Evicted>& victims, const Block& stored) {
    for (const Evicted& v : victims) {
      listener_->OnRemoved(v.block->meta.id, TierId::kRam,
                           v.worth_demoting ? RemovalReason::kDemoted : RemovalReason::kEvicted);
    }
    listener_->OnStored(stored, TierId::kRam);
  }

  const uint64_t capacity_;
  const uint64_t extra_bytes_;
  std::vector<Shard> shards_;
  StoreListener* const listener_;  // Null when nobody listens.
};

int ShardBits(const RamTierOptions& options) {
  int bits = options.num_shard_bits;
  if (bits < 0) {
    bits = 0;
    while (bits < kMaxShardBits && (options.capacity_bytes >> (bits + 1)) >= kMinAutoShardBytes) {
      ++bits;
    }
  }
  return bits;
}

}  // namespace

int RamTierShards(const RamTierOptions& options) { return 1 << ShardBits(options); }

absl::StatusOr<std::unique_ptr<BlockStore>> NewRamTier(const RamTierOptions& options) {
  const int bits = ShardBits(options);
  if (bits > kMaxRamShardBits) {
    return absl::InvalidArgumentError(absl::StrCat("num_shard_bits must be at most ",
                                                   kMaxRamShardBits, ", got ",
                                                   options.num_shard_bits));
  }
  // LRU, the default, is threaded through the index's slots (no policy object, no map of
  // its own); any other policy is one object per shard.
  std::vector<std::unique_ptr<EvictionPolicy>> policies;
  for (int i = 0; options.eviction != "lru" && i < (1 << bits); ++i) {
    absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy = NewEvictionPolicy(options.eviction);
    if (!policy.ok()) return policy.status();
    policies.push_back(*std::move(policy));
  }
  return std::make_unique<RamTier>(options.capacity_bytes, bits, std::move(policies),
                                   options.listener);
}

}  // namespace kvcache
