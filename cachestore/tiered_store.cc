// The tiered store: RAM over disk.
//
// Put -> RAM; RAM victims -> demoted to disk (if the policy thinks them worth it) -> disk
// victims dropped. Get -> RAM, else disk; a disk hit is promoted (copied) to RAM and keeps
// its disk copy, so a later demotion of the same block is free. Demotions run on the
// calling thread after the RAM shard's lock is released.

#include <atomic>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cachestore/block_internal.h"
#include "cachestore/block_store.h"
#include "cachestore/store_events.h"
#include "common/byte_size.h"

namespace kvcache {
namespace {

// The RAM tier's listener when there is no disk below: a victim worth demoting has nowhere
// to go, so it is evicted.
class RamOnlyListener final : public StoreListener {
 public:
  explicit RamOnlyListener(StoreListener* next) : next_(next) {}
  void OnStored(const Block& block, TierId tier) override { next_->OnStored(block, tier); }
  void OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) override {
    next_->OnRemoved(id, tier,
                     reason == RemovalReason::kDemoted ? RemovalReason::kEvicted : reason);
  }
  void OnCleared(TierId tier) override { next_->OnCleared(tier); }

 private:
  StoreListener* const next_;
};

class TieredStoreImpl final : public TieredStore {
 public:
  TieredStoreImpl(const TieredStoreOptions& options, std::unique_ptr<BlockStore> ram,
                  std::unique_ptr<BlockStore> disk,
                  std::unique_ptr<StoreListener> ram_listener = nullptr)
      : options_(options),
        ram_listener_(std::move(ram_listener)),
        ram_(std::move(ram)),
        disk_(std::move(disk)) {}

  absl::StatusOr<PutOutcome> Put(BlockPtr block, std::vector<Evicted>* evicted) override {
    if (absl::Status s = CheckBlockSize(block->meta.id.key, block->payload.size(),
                                        options_.max_block_bytes);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckPayloadMatchesShape(block->meta.id.key, block->meta.shape,
                                                  block->payload.size());
        !s.ok()) {
      return s;
    }
    // The checksum is checked once, by the tier that stores the block (hashing a 4 MiB
    // payload twice was a quarter of the server's time per Put).
    if (disk_ && !ram_->Contains(block->meta.id) && disk_->Contains(block->meta.id)) {
      return PutOutcome::kAlreadyPresent;
    }
    std::vector<Evicted> victims;
    absl::StatusOr<PutOutcome> outcome = ram_->Put(block, &victims);
    if (absl::IsResourceExhausted(outcome.status()) && disk_) {
      // Larger than a RAM shard: it can still live on disk.
      outcome = disk_->Put(block);
    }
    Demote(victims);
    return outcome;
  }

  absl::StatusOr<BlockPtr> Get(const BlockId& id) override {
    absl::StatusOr<BlockPtr> hit = ram_->Get(id);
    if (hit.ok() || !disk_) return hit;
    hit = disk_->Get(id);
    if (!hit.ok()) return hit;
    std::vector<Evicted> victims;
    if (ram_->Put(*hit, &victims).ok()) promotions_.fetch_add(1, std::memory_order_relaxed);
    Demote(victims);
    return hit;
  }

  bool Contains(const BlockId& id) const override {
    return ram_->Contains(id) || (disk_ && disk_->Contains(id));
  }

  LookupResult Lookup(const Key& ns, absl::Span<const Key> keys) override {
    LookupResult result;
    bool all_in_ram = true;
    for (const Key& key : keys) {
      const BlockId id{ns, key};
      const bool in_ram = ram_->Contains(id);
      if (!in_ram && !(disk_ && disk_->Contains(id))) break;
      ++result.num_present;
      all_in_ram = all_in_ram && in_ram;
      if (all_in_ram) ++result.num_in_ram;
    }
    lookups_.fetch_add(1, std::memory_order_relaxed);
    lookup_keys_.fetch_add(keys.size(), std::memory_order_relaxed);
    lookup_hits_.fetch_add(result.num_present, std::memory_order_relaxed);
    return result;
  }

  std::optional<BlockInfo> Inspect(const BlockId& id) const override {
    std::optional<BlockInfo> info = ram_->Inspect(id);
    std::optional<BlockInfo> on_disk = disk_ ? disk_->Inspect(id) : std::nullopt;
    if (!info) return on_disk;
    info->on_disk = on_disk.has_value();
    return info;
  }

  std::vector<BlockInfo> List(const Filter& filter, size_t limit) const override {
    std::vector<BlockInfo> out = ram_->List(filter, limit);
    if (!disk_) return out;
    absl::flat_hash_set<BlockId> in_ram;
    for (const BlockInfo& b : out) in_ram.insert(b.meta.id);
    // Ask for enough to fill the page even when RAM and disk overlap.
    for (BlockInfo& b : disk_->List(filter, limit + in_ram.size())) {
      if (in_ram.contains(b.meta.id)) continue;
      if (out.size() >= limit) break;
      out.push_back(std::move(b));
    }
    for (BlockInfo& b : out) {
      if (b.tier == TierId::kRam) b.on_disk = disk_->Contains(b.meta.id);
    }
    return out;
  }

  bool Erase(const BlockId& id) override {
    const bool in_ram = ram_->Erase(id);
    const bool in_disk = disk_ && disk_->Erase(id);
    return in_ram || in_disk;
  }

  uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) override {
    // A block held by both tiers counts once.
    absl::flat_hash_set<BlockId> erased;
    auto record = [&](const BlockMeta& m) {
      if (!pred(m)) return false;
      erased.insert(m.id);
      return true;
    };
    ram_->EraseIf(record);
    if (disk_) disk_->EraseIf(record);
    return erased.size();
  }

  uint64_t Flush(std::optional<TierId> tier) override {
    uint64_t dropped = 0;
    if (!tier || *tier == TierId::kRam) dropped += ram_->Clear();
    if (disk_ && (!tier || *tier == TierId::kDisk)) dropped += disk_->Clear();
    return dropped;
  }

  TierStats Stats() const override {
    const StoreStats s = GetStoreStats();
    TierStats t;
    t.blocks = s.ram.blocks + s.disk.blocks;
    t.bytes = s.ram.bytes + s.disk.bytes;
    t.capacity_bytes = s.ram.capacity_bytes + s.disk.capacity_bytes;
    t.hits = s.ram.hits + s.disk.hits;
    t.misses = disk_ ? s.disk.misses : s.ram.misses;  // Gets that missed every tier.
    t.evictions = s.ram.evictions + s.disk.evictions;
    t.demotions = s.ram.demotions;
    t.promotions = s.ram.promotions;
    t.checksum_failures = s.ram.checksum_failures + s.disk.checksum_failures;
    t.inserts = s.ram.inserts + s.disk.inserts;
    t.write_errors = s.ram.write_errors + s.disk.write_errors;
    t.demotion_failures = s.ram.demotion_failures;
    return t;
  }

  StoreStats GetStoreStats() const override {
    StoreStats s;
    s.ram = ram_->Stats();
    if (disk_) s.disk = disk_->Stats();
    const uint64_t demotions = demotions_.load(std::memory_order_relaxed);
    const uint64_t promotions = promotions_.load(std::memory_order_relaxed);
    s.ram.demotions = s.disk.demotions = demotions;
    s.ram.promotions = s.disk.promotions = promotions;
    s.ram.demotion_failures = demotion_failures_.load(std::memory_order_relaxed);
    s.lookups = lookups_.load(std::memory_order_relaxed);
    s.lookup_keys = lookup_keys_.load(std::memory_order_relaxed);
    s.lookup_hits = lookup_hits_.load(std::memory_order_relaxed);
    return s;
  }

  const TieredStoreOptions& options() const override { return options_; }

 private:
  void Demote(std::vector<Evicted>& victims) {
    if (!disk_) return;
    for (Evicted& v : victims) {
      if (!v.worth_demoting) continue;
      absl::StatusOr<PutOutcome> put = disk_->Put(std::move(v.block));
      if (put.ok() && *put == PutOutcome::kStored) {
        demotions_.fetch_add(1, std::memory_order_relaxed);
      } else if (!put.ok()) {
        // The block is lost to the cache (a miss later, never wrong bytes); the disk's own
        // write_errors say why.
        demotion_failures_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  const TieredStoreOptions options_;
  const std::unique_ptr<StoreListener> ram_listener_;  // Outlives ram_ (declared before).
  const std::unique_ptr<BlockStore> ram_;
  const std::unique_ptr<BlockStore> disk_;  // Null when RAM only.
  std::atomic<uint64_t> demotions_{0};
  std::atomic<uint64_t> demotion_failures_{0};
  std::atomic<uint64_t> promotions_{0};
  std::atomic<uint64_t> lookups_{0};
  std::atomic<uint64_t> lookup_keys_{0};
  std::atomic<uint64_t> lookup_hits_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<TieredStore>> NewTieredStore(const TieredStoreOptions& options) {
  if (options.max_block_bytes == 0) {
    return absl::InvalidArgumentError("max_block_bytes must be positive");
  }
  if (options.ram.capacity_bytes < ChargeOf(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RAM capacity of ", options.ram.capacity_bytes, " bytes cannot hold any block"));
  }
  RamTierOptions ram_options = options.ram;
  std::unique_ptr<StoreListener> ram_listener;
  if (options.listener != nullptr && !options.disk) {
    ram_listener = std::make_unique<RamOnlyListener>(options.listener);
  }
  ram_options.listener = ram_listener ? ram_listener.get() : options.listener;
  absl::StatusOr<std::unique_ptr<BlockStore>> ram = NewRamTier(ram_options);
  if (!ram.ok()) return ram.status();
  std::unique_ptr<BlockStore> disk;
  if (options.disk) {
    DiskTierOptions disk_options = *options.disk;
    disk_options.listener = options.listener;
    absl::StatusOr<std::unique_ptr<BlockStore>> opened = NewDiskTier(disk_options);
    if (!opened.ok()) return opened.status();
    disk = *std::move(opened);
  }
  return std::make_unique<TieredStoreImpl>(options, *std::move(ram), std::move(disk),
                                           std::move(ram_listener));
}

}  // namespace kvcache
