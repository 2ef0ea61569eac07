// The RAM tier: a sharded compact index of stored payloads.
//
// Each shard has its own lock, eviction policy and an equal share of the byte capacity, so
// threads working on different keys rarely meet (as in RocksDB's sharded LRU cache). The
// shard comes from the keyed IndexHash of the whole id (common/key.h): keys are chosen by
// clients, so no fixed bytes of them can be trusted to spread (hash flooding). Victims are
// collected under the lock and released after it, so freeing a large payload never blocks
// the shard.
//
// A stored block is not kept as a Block object: its slot (compact_index_internal.h) holds
// everything the tier knows of it in 64 bytes, one cache line (the key, a "kind", the last
// access in whole seconds, the payload's pointer, two 32-bit LRU links, the checksum), plus
// two parallel arrays under the same slot number: the parent key (32 bytes, read by Get) and
// the high 32 bits of the keyed IndexHash (4 bytes, read by Lookup). An 8-byte bucket of an
// open-addressing table (the hash's low 32 bits, the tag; the slot) at most 3/4 full maps the
// id to it. The kind (namespace, shape and the payload's source, a handful per shard) is
// interned per shard, so the 32-byte namespace and 24-byte shape are not repeated in every
// slot. The payload is the buffer the block was Put with, shared (its source counts holders:
// cachestore/payload.h), never copied: 8 bytes of holder count and size sit in the arena's
// chunk table (or the heap buffer's header). So a block costs the tier 64 + 32 + 4 + 8 +
// 10.7-21.3 = 119-129 bytes beyond its payload's own allocation (docs/benchmarks.md,
// "Index"). A Get builds a new Block from the slot (its payload another holder of the stored
// bytes): the bytes stay valid while it is held, even if the block is evicted meanwhile.
// With "lru" (the tiers' default) the recency list is threaded through the slots; any other
// policy is called as EvictionPolicy says and keeps its own state (its ExtraBytesPerBlock).
//
// Get, Put, Inspect and the rest compare the full id on a tag match (the slot's key and its
// kind's namespace). A Lookup's ContainsEach answers from the fingerprint alone (the tag and
// the high bits: 64 bits of a hash keyed with a per-process secret, of which at least 54
// differ between blocks of one shard), reading 4 bytes a key instead of a 64-byte slot
// (30% more Lookups a second at 100k blocks): a false "present" has odds of about
// blocks / 2^54 per key (one in 10^9 at 10M blocks) and costs what a block evicted between
// Lookup and Get costs, a miss on the Get that follows, which does check the id.

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
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
constexpr uint32_t kHasParent = 1u << 31;  // In Entry::kind.

// One block's slot: 64 bytes, one cache line (the slot arena's chunks are 2 MiB-aligned),
// so that a lookup reads one line. The parent key, read only by Get and the like, is the
// slot's other 32 bytes, in Shard::parents under the same slot number.
struct Entry {
  Key key;
  uint32_t kind = 0;           // Its Kinds id, | kHasParent.
  uint32_t last_access_s = 0;  // Unix seconds.
  char* data = nullptr;        // One holder of the payload (Payload::Leak); null: free slot.
  uint32_t prev = kNoSlot;     // Recency links (intrusive LRU only).
  uint32_t next = kNoSlot;
  uint64_t checksum = 0;
};
static_assert(sizeof(Entry) == 64, "the RAM tier's per-block slot grew");

// What blocks share and slots refer to by a 32-bit id: namespace, shape and payload source.
// Interned per shard, and forgotten when the last block of the kind leaves.
class Kinds {
 public:
  struct Kind {
    Key ns;
    BlockShape shape;
    PayloadSource* source = nullptr;
    uint32_t blocks = 0;
  };

  uint32_t Acquire(const Key& ns, const BlockShape& shape, PayloadSource* source) {
    auto [it, inserted] = ids_.try_emplace(KindKey{ns, shape, source}, 0);
    if (inserted) {
      if (!free_.empty()) {
        it->second = free_.back();
        free_.pop_back();
      } else {
        it->second = static_cast<uint32_t>(kinds_.size());
        kinds_.emplace_back();
      }
      kinds_[it->second] = Kind{ns, shape, source, 0};
    }
    ++kinds_[it->second].blocks;
    return it->second;
  }

  void Release(uint32_t id) {
    Kind& k = kinds_[id];
    if (--k.blocks != 0) return;
    ids_.erase(KindKey{k.ns, k.shape, k.source});
    free_.push_back(id);
  }

  const Kind& operator[](uint32_t id) const { return kinds_[id]; }

 private:
  struct KindKey {
    Key ns;
    BlockShape shape;
    PayloadSource* source;
    friend bool operator==(const KindKey& a, const KindKey& b) {
      return a.ns == b.ns && a.shape == b.shape && a.source == b.source;
    }
    template <typename H>
    friend H AbslHashValue(H h, const KindKey& k) {
      const BlockShape& s = k.shape;
      return H::combine(std::move(h), k.ns, s.format_version, s.dtype, s.num_layers,
                        s.num_kv_heads, s.head_dim, s.num_tokens, k.source);
    }
  };

  std::vector<Kind> kinds_;
  std::vector<uint32_t> free_;
  absl::flat_hash_map<KindKey, uint32_t> ids_;
};

// The high 32 bits of a block's IndexHash (its table tag is the low ones).
uint32_t HighBits(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }

// Cache-line aligned so that two shards' locks never share a line.
struct alignas(64) Shard {
  mutable absl::Mutex mu;
  internal::FingerprintTable table ABSL_GUARDED_BY(mu);
  internal::SlotArena<Entry> slots ABSL_GUARDED_BY(mu);
  // Each slot's parent key (when its kind has kHasParent): allocated and freed with `slots`,
  // so a slot has the same number in both.
  internal::SlotArena<Key> parents ABSL_GUARDED_BY(mu);
  // Each slot's HighBits of its IndexHash (the table's tag holds the low ones): what a
  // Lookup compares, 4 bytes a block instead of the slot's 64 (allocated with `slots` too).
  internal::SlotArena<uint32_t> highs ABSL_GUARDED_BY(mu);
  Kinds kinds ABSL_GUARDED_BY(mu);
  internal::IntrusiveLru<Entry> lru ABSL_GUARDED_BY(mu);  // When policy is null.
  std::unique_ptr<EvictionPolicy> policy ABSL_GUARDED_BY(mu);  // Null: intrusive LRU.
  uint64_t capacity = 0;  // Constant after construction.
  uint64_t bytes ABSL_GUARDED_BY(mu) = 0;
  TierStats stats ABSL_GUARDED_BY(mu);
};

// A block taken out of a slot (or shared from it) under the shard's lock, made a Block after
// it (ToBlock), so that the allocation and a victim's release happen outside the lock.
struct Taken {
  BlockMeta meta;
  Payload payload;
  bool worth_demoting = true;
};

BlockPtr ToBlock(Taken&& t) {
  auto block = std::make_shared<Block>();
  block->meta = std::move(t.meta);
  block->payload = std::move(t.payload);
  return block;
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

  // The slots hold their payloads by bare pointer: let each go.
  ~RamTier() override {
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (uint32_t slot = 0; slot < shard.slots.end(); ++slot) {
        Entry& e = shard.slots[slot];
        if (e.data != nullptr) Payload::Adopt(e.data, SourceOf(shard, e));
      }
    }
  }

  absl::StatusOr<PutOutcome> Put(BlockPtr block, std::vector<Evicted>* evicted) override {
    if (absl::Status s = internal::ValidateBlock(*block); !s.ok()) return s;
    const uint64_t charge = Charge(block->payload.size());
    const BlockMeta& meta = block->meta;
    const uint64_t hash = IndexHash(meta.id);
    Shard& shard = ShardOf(hash);
    if (charge > shard.capacity) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "block of ", FormatBytes(charge), " does not fit the RAM tier (",
          FormatBytes(shard.capacity), " per shard of ", FormatBytes(capacity_), ")"));
    }
    const uint32_t tag = internal::IndexTag(hash);
    Payload shared = block->payload.Share();  // The slot's holder (let go unless stored).
    std::vector<Taken> victims;               // Released after the lock.
    {
      absl::MutexLock lock(&shard.mu);
      if (const uint32_t slot = FindLocked(shard, tag, meta.id); slot != kNoSlot) {
        TouchLocked(shard, slot, meta.id);
        return PutOutcome::kAlreadyPresent;
      }
      const PolicyEntry entry = internal::PolicyEntryOf(meta, charge);
      if (shard.policy != nullptr && !shard.policy->Admit(entry)) return PutOutcome::kNotAdmitted;
      while (shard.bytes + charge > shard.capacity) {
        std::optional<Taken> victim = PopVictimLocked(shard);
        if (!victim) break;  // Unreachable while the policy tracks what the index holds.
        ++shard.stats.evictions;
        victims.push_back(*std::move(victim));
      }
      if (listener_ != nullptr) Report(victims, *block);
      const uint32_t slot = shard.slots.Allocate();
      // The same number in each: the three are allocated and freed together.
      shard.parents.Allocate();
      shard.highs.Allocate();
      shard.highs[slot] = HighBits(hash);
      Entry& e = shard.slots[slot];
      PayloadSource* source = shared.source();
      e.data = shared.Leak();
      e.key = meta.id.key;
      if (meta.parent) shard.parents[slot] = *meta.parent;
      e.checksum = meta.checksum;
      e.kind = shard.kinds.Acquire(meta.id.ns, meta.shape, source) |
               (meta.parent ? kHasParent : 0);
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
    for (Taken& v : victims) {
      if (evicted != nullptr) {
        const bool worth = v.worth_demoting;
        evicted->push_back(Evicted{ToBlock(std::move(v)), worth});
      }
    }
    return PutOutcome::kStored;
  }

  absl::StatusOr<BlockPtr> Get(const BlockId& id) override {
    const uint64_t hash = IndexHash(id);
    Shard& shard = ShardOf(hash);
    Taken hit;
    {
      absl::MutexLock lock(&shard.mu);
      const uint32_t slot = FindLocked(shard, internal::IndexTag(hash), id);
      if (slot == kNoSlot) {
        ++shard.stats.misses;
        return absl::NotFoundError("not in the RAM tier");
      }
      ++shard.stats.hits;
      __builtin_prefetch(&shard.parents[slot]);  // Read below: its miss overlaps the relinking.
      TouchLocked(shard, slot, id);
      const Entry& e = shard.slots[slot];
      PayloadSource* source = SourceOf(shard, e);
      source->Ref(e.data);
      hit.meta = MetaOf(shard, slot);
      hit.payload = Payload::Adopt(e.data, source);
    }
    return ToBlock(std::move(hit));
  }

  bool Contains(const BlockId& id) const override {
    const uint64_t hash = IndexHash(id);
    const Shard& shard = ShardOf(hash);
    absl::MutexLock lock(&shard.mu);
    return FindLocked(shard, internal::IndexTag(hash), id) != kNoSlot;
  }

  // In three passes, so that the memory misses of all the keys overlap instead of following
  // one another (a shard holds only a few keys of a chain): every key's bucket is prefetched
  // without locks, then each shard's lock is taken once to prefetch its keys' candidates'
  // high bits, and once more to compare them. Answered from the 64-bit fingerprint (the
  // table's tag and `highs`) without reading the slots: see the top of this file.
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
      const internal::SlotArena<uint32_t>* highs = &shard.highs;
      for (size_t p = begin; p < end; ++p) {
        table->ForEachCandidate(probes[p].tag,
                                [&](uint32_t slot) { __builtin_prefetch(&(*highs)[slot]); });
      }
    });
    by_shard([&](const Shard& shard, size_t begin, size_t end) {
      absl::MutexLock lock(&shard.mu);
      const internal::FingerprintTable* table = &shard.table;
      const internal::SlotArena<uint32_t>* highs = &shard.highs;
      for (size_t p = begin; p < end; ++p) {
        const uint32_t high = probes[p].high;
        found[probes[p].index] =
            table->Find(probes[p].tag, [&](uint32_t slot) { return (*highs)[slot] == high; }) !=
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
    return InfoOf(shard, slot);
  }

  std::vector<BlockInfo> List(const Filter& filter, size_t limit) const override {
    std::vector<BlockInfo> out;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (uint32_t slot = 0; slot < shard.slots.end(); ++slot) {
        const Entry& e = shard.slots[slot];
        if (e.data == nullptr) continue;
        if (out.size() >= limit) return out;
        BlockInfo info = InfoOf(shard, slot);
        if (filter && !filter(info.meta)) continue;
        out.push_back(std::move(info));
      }
    }
    return out;
  }

  bool Erase(const BlockId& id) override {
    return Remove(id, RemovalReason::kErased).has_value();  // Freed here, after the lock.
  }

  bool Evict(const BlockId& id, std::vector<Evicted>* evicted) override {
    std::optional<Taken> doomed =
        Remove(id, evicted != nullptr ? RemovalReason::kDemoted : RemovalReason::kEvicted);
    if (!doomed) return false;
    if (evicted != nullptr) evicted->push_back(Evicted{ToBlock(*std::move(doomed)), true});
    return true;
  }

  uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) override {
    uint64_t erased = 0;
    for (Shard& shard : shards_) {
      std::vector<Taken> doomed;  // Released after the lock.
      absl::MutexLock lock(&shard.mu);
      EraseLocked(shard, pred, /*report=*/true, &doomed);
      erased += doomed.size();
    }
    return erased;
  }

  // Holds every shard's lock at once, so that a listener's one OnCleared is ordered against
  // every change of every shard.
  uint64_t Clear() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::vector<Taken> doomed;  // Released after the locks.
    for (Shard& shard : shards_) shard.mu.Lock();
    for (Shard& shard : shards_) {
      EraseLocked(shard, [](const BlockMeta&) { return true; }, /*report=*/false, &doomed);
      // Empty now: give the index's memory back.
      shard.table.Clear();
      shard.slots.Clear();
      shard.parents.Clear();
      shard.highs.Clear();
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

  static const Kinds::Kind& KindOf(const Shard& shard, const Entry& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    return shard.kinds[e.kind & ~kHasParent];
  }
  static PayloadSource* SourceOf(const Shard& shard, const Entry& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    return KindOf(shard, e).source;
  }

  static BlockMeta MetaOf(const Shard& shard, uint32_t slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    const Entry& e = shard.slots[slot];
    const Kinds::Kind& kind = KindOf(shard, e);
    BlockMeta meta;
    meta.id = BlockId{kind.ns, e.key};
    if (e.kind & kHasParent) meta.parent = shard.parents[slot];
    meta.checksum = e.checksum;
    meta.shape = kind.shape;
    return meta;
  }

  static BlockInfo InfoOf(const Shard& shard, uint32_t slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    const Entry& e = shard.slots[slot];
    BlockInfo info;
    info.meta = MetaOf(shard, slot);
    info.payload_bytes = SourceOf(shard, e)->SizeOf(e.data);
    info.tier = TierId::kRam;
    info.last_access_unix_micros = internal::UnixSecondsToMicros(e.last_access_s);
    return info;
  }

  // The slot holding (`ns`, `key`), or kNoSlot: a tag match is confirmed against the key in
  // the slot and the namespace of its kind.
  static uint32_t FindLocked(const Shard& shard, uint32_t tag, const Key& ns, const Key& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    // The lambda runs within this call, under the lock (pointers, not references: Clang's
    // analysis follows references into the lambda, which it checks as if unlocked).
    const internal::SlotArena<Entry>* slots = &shard.slots;
    const Kinds* kinds = &shard.kinds;
    return shard.table.Find(tag, [&](uint32_t slot) {
      const Entry& e = (*slots)[slot];
      return e.key == key && (*kinds)[e.kind & ~kHasParent].ns == ns;
    });
  }
  static uint32_t FindLocked(const Shard& shard, uint32_t tag, const BlockId& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    return FindLocked(shard, tag, id.ns, id.key);
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
  Taken TakeLocked(Shard& shard, uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    Entry& e = shard.slots[slot];
    Taken t;
    t.meta = MetaOf(shard, slot);
    t.payload = Payload::Adopt(e.data, SourceOf(shard, e));  // The slot's holder.
    shard.bytes -= Charge(t.payload.size());
    shard.table.Erase(internal::IndexTag(IndexHash(t.meta.id)), slot);
    if (shard.policy == nullptr) shard.lru.Unlink(shard.slots, slot);
    shard.kinds.Release(e.kind & ~kHasParent);
    shard.slots.Free(slot);
    shard.parents.Free(slot);
    shard.highs.Free(slot);
    return t;
  }

  // The policy's next victim, taken out of the index; nullopt when nothing is left.
  std::optional<Taken> PopVictimLocked(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    if (shard.policy == nullptr) {
      const uint32_t slot = shard.lru.Oldest();
      if (slot == kNoSlot) return std::nullopt;
      return TakeLocked(shard, slot);
    }
    for (;;) {
      std::optional<Victim> victim = shard.policy->PopVictim();
      if (!victim) return std::nullopt;
      const uint32_t slot =
          FindLocked(shard, internal::IndexTag(IndexHash(victim->id)), victim->id);
      if (slot == kNoSlot) continue;
      Taken t = TakeLocked(shard, slot);
      t.worth_demoting = victim->worth_demoting;
      return t;
    }
  }

  // What a block costs: ChargeOf plus the policy's own state per block.
  uint64_t Charge(uint64_t payload_bytes) const { return ChargeOf(payload_bytes) + extra_bytes_; }

  // Takes `id` out of its shard (an eviction unless `reason` is kErased) and returns it, for
  // the caller to release after the lock; nullopt when not stored.
  std::optional<Taken> Remove(const BlockId& id, RemovalReason reason) {
    const uint64_t hash = IndexHash(id);
    Shard& shard = ShardOf(hash);
    absl::MutexLock lock(&shard.mu);
    const uint32_t slot = FindLocked(shard, internal::IndexTag(hash), id);
    if (slot == kNoSlot) return std::nullopt;
    if (shard.policy != nullptr) shard.policy->OnErase(id);
    Taken t = TakeLocked(shard, slot);
    if (reason != RemovalReason::kErased) ++shard.stats.evictions;
    if (listener_ != nullptr) listener_->OnRemoved(id, TierId::kRam, reason);
    return t;
  }

  // Moves the blocks of `shard` that `pred` selects to `doomed`, telling the listener of
  // each when `report`.
  void EraseLocked(Shard& shard, const std::function<bool(const BlockMeta&)>& pred, bool report,
                   std::vector<Taken>* doomed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    for (uint32_t slot = 0; slot < shard.slots.end(); ++slot) {
      if (shard.slots[slot].data == nullptr || !pred(MetaOf(shard, slot))) continue;
      doomed->push_back(TakeLocked(shard, slot));
      const BlockId& id = doomed->back().meta.id;
      if (shard.policy != nullptr) shard.policy->OnErase(id);
      if (report && listener_ != nullptr) {
        listener_->OnRemoved(id, TierId::kRam, RemovalReason::kErased);
      }
    }
  }

  // Tells the listener of a Put's victims and of the block it stores (under the shard's
  // lock, so in the order the changes happen).
  void Report(const std::vector<Taken>& victims, const Block& stored) {
    for (const Taken& v : victims) {
      listener_->OnRemoved(v.meta.id, TierId::kRam,
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
