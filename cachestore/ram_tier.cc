// The RAM tier: a sharded hash index of refcounted blocks.
//
// Each shard has its own lock, eviction policy and an equal share of the byte capacity, so
// threads working on different keys rarely meet (as in RocksDB's sharded LRU cache). The
// shard comes from the keyed IndexHash of the whole id (common/key.h): keys are chosen by
// clients, so no fixed bytes of them can be trusted to spread (hash flooding). Victims are collected
// under the lock and released after it, so freeing a large payload never blocks the shard.

#include <cstring>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cachestore/block_internal.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "cachestore/store_events.h"
#include "common/byte_size.h"

namespace kvcache {
namespace {

constexpr int kMaxShardBits = 4;
constexpr uint64_t kMinAutoShardBytes = 64ull << 20;

struct Entry {
  BlockPtr block;
  int64_t last_access_unix_micros = 0;
};

// Cache-line aligned so that two shards' locks never share a line.
struct alignas(64) Shard {
  mutable absl::Mutex mu;
  absl::flat_hash_map<BlockId, Entry> map ABSL_GUARDED_BY(mu);
  std::unique_ptr<EvictionPolicy> policy ABSL_GUARDED_BY(mu);
  uint64_t capacity = 0;  // Constant after construction.
  uint64_t bytes ABSL_GUARDED_BY(mu) = 0;
  TierStats stats ABSL_GUARDED_BY(mu);
};

BlockInfo InfoOf(const Entry& e) {
  BlockInfo info;
  info.meta = e.block->meta;
  info.payload_bytes = e.block->payload.size();
  info.tier = TierId::kRam;
  info.last_access_unix_micros = e.last_access_unix_micros;
  return info;
}

class RamTier final : public BlockStore {
 public:
  RamTier(uint64_t capacity, int shard_bits, std::vector<std::unique_ptr<EvictionPolicy>> policies,
          StoreListener* listener)
      : capacity_(capacity),
        extra_bytes_(policies.empty() ? 0 : policies[0]->ExtraBytesPerBlock()),
        shards_(size_t{1} << shard_bits),
        mask_((size_t{1} << shard_bits) - 1),
        listener_(listener) {
    for (size_t i = 0; i < shards_.size(); ++i) {
      Shard& s = shards_[i];
      absl::MutexLock lock(&s.mu);
      s.capacity = capacity / shards_.size();
      s.policy = std::move(policies[i]);
    }
  }

  absl::StatusOr<PutOutcome> Put(BlockPtr block, std::vector<Evicted>* evicted) override {
    if (absl::Status s = internal::ValidateBlock(*block); !s.ok()) return s;
    const uint64_t charge = Charge(block->payload.size());
    Shard& shard = ShardOf(block->meta.id);
    if (charge > shard.capacity) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "block of ", FormatBytes(charge), " does not fit the RAM tier (",
          FormatBytes(shard.capacity), " per shard of ", FormatBytes(capacity_), ")"));
    }
    std::vector<Evicted> victims;  // Released after the lock.
    {
      absl::MutexLock lock(&shard.mu);
      auto it = shard.map.find(block->meta.id);
      if (it != shard.map.end()) {
        shard.policy->OnAccess(block->meta.id);
        it->second.last_access_unix_micros = internal::NowUnixMicros();
        return PutOutcome::kAlreadyPresent;
      }
      const PolicyEntry entry = internal::PolicyEntryOf(block->meta, charge);
      if (!shard.policy->Admit(entry)) return PutOutcome::kNotAdmitted;
      while (shard.bytes + charge > shard.capacity) {
        std::optional<Victim> victim = shard.policy->PopVictim();
        if (!victim) break;  // Unreachable while the policy tracks what the map holds.
        auto vit = shard.map.find(victim->id);
        if (vit == shard.map.end()) continue;
        shard.bytes -= Charge(vit->second.block->payload.size());
        ++shard.stats.evictions;
        victims.push_back(Evicted{std::move(vit->second.block), victim->worth_demoting});
        shard.map.erase(vit);
      }
      shard.policy->OnInsert(entry);
      if (listener_ != nullptr) Report(victims, *block);
      shard.map.emplace(entry.id, Entry{std::move(block), internal::NowUnixMicros()});
      shard.bytes += charge;
      ++shard.stats.inserts;
    }
    if (evicted != nullptr) {
      for (Evicted& v : victims) evicted->push_back(std::move(v));
    }
    return PutOutcome::kStored;
  }

  absl::StatusOr<BlockPtr> Get(const BlockId& id) override {
    Shard& shard = ShardOf(id);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.map.find(id);
    if (it == shard.map.end()) {
      ++shard.stats.misses;
      return absl::NotFoundError("not in the RAM tier");
    }
    ++shard.stats.hits;
    shard.policy->OnAccess(id);
    it->second.last_access_unix_micros = internal::NowUnixMicros();
    return it->second.block;
  }

  bool Contains(const BlockId& id) const override {
    const Shard& shard = ShardOf(id);
    absl::MutexLock lock(&shard.mu);
    return shard.map.contains(id);
  }

  std::optional<BlockInfo> Inspect(const BlockId& id) const override {
    const Shard& shard = ShardOf(id);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.map.find(id);
    if (it == shard.map.end()) return std::nullopt;
    return InfoOf(it->second);
  }

  std::vector<BlockInfo> List(const Filter& filter, size_t limit) const override {
    std::vector<BlockInfo> out;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (const auto& [id, entry] : shard.map) {
        if (out.size() >= limit) return out;
        if (filter && !filter(entry.block->meta)) continue;
        out.push_back(InfoOf(entry));
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
      total.blocks += shard.map.size();
      total.bytes += shard.bytes;
      total.hits += shard.stats.hits;
      total.misses += shard.stats.misses;
      total.evictions += shard.stats.evictions;
      total.inserts += shard.stats.inserts;
    }
    return total;
  }

 private:
  Shard& ShardOf(const BlockId& id) { return shards_[ShardIndex(id)]; }
  const Shard& ShardOf(const BlockId& id) const { return shards_[ShardIndex(id)]; }
  size_t ShardIndex(const BlockId& id) const {
    // The keyed hash of the whole id (common/key.h), never raw key bytes: keys are chosen by
    // clients.
    return IndexShard(IndexHash(id), mask_ + 1);
  }

  // What a block costs: ChargeOf plus the policy's own state per block.
  uint64_t Charge(uint64_t payload_bytes) const { return ChargeOf(payload_bytes) + extra_bytes_; }

  // Takes `id` out of its shard (an eviction unless `reason` is kErased) and returns it, for
  // the caller to release after the lock; null when not stored.
  BlockPtr Remove(const BlockId& id, RemovalReason reason) {
    Shard& shard = ShardOf(id);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.map.find(id);
    if (it == shard.map.end()) return nullptr;
    BlockPtr block = std::move(it->second.block);
    shard.bytes -= Charge(block->payload.size());
    shard.policy->OnErase(id);
    shard.map.erase(it);
    if (reason != RemovalReason::kErased) ++shard.stats.evictions;
    if (listener_ != nullptr) listener_->OnRemoved(id, TierId::kRam, reason);
    return block;
  }
  // Moves the blocks of `shard` that `pred` selects to `doomed`, telling the listener of
  // each when `report`.
  void EraseLocked(Shard& shard, const std::function<bool(const BlockMeta&)>& pred, bool report,
                   std::vector<BlockPtr>* doomed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    for (auto it = shard.map.begin(); it != shard.map.end();) {
      if (!pred(it->second.block->meta)) {
        ++it;
        continue;
      }
      shard.bytes -= Charge(it->second.block->payload.size());
      shard.policy->OnErase(it->first);
      if (report && listener_ != nullptr) {
        listener_->OnRemoved(it->first, TierId::kRam, RemovalReason::kErased);
      }
      doomed->push_back(std::move(it->second.block));
      shard.map.erase(it++);
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
  const size_t mask_;
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
  std::vector<std::unique_ptr<EvictionPolicy>> policies;
  for (int i = 0; i < (1 << bits); ++i) {
    absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy = NewEvictionPolicy(options.eviction);
    if (!policy.ok()) return policy.status();
    policies.push_back(*std::move(policy));
  }
  return std::make_unique<RamTier>(options.capacity_bytes, bits, std::move(policies),
                                   options.listener);
}

}  // namespace kvcache
