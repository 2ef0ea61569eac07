// The tiered store: RAM over disk.
//
// Put -> RAM; RAM victims -> demoted to disk (if the policy thinks them worth it) -> disk
// victims dropped. Get -> RAM, else disk; a disk hit is promoted (copied) to RAM and keeps
// its disk copy, so a later demotion of the same block is free.
//
// Demotions are queued (up to demotion_queue_bytes) for a background writer that takes them
// in batches, so a Put does not wait for the disk while the disk keeps up; when the queue is
// full the Put writes its own victims (counted: demotion_waits). A queued block is still
// stored: Get, Lookup, Contains and Inspect see it, and a Put of its id is kAlreadyPresent.
// A victim leaves RAM under the RAM shard's lock and reaches the queue just after: the RAM
// tier's listener (DemotionHandOff) notes it in between, and a reader of it waits for the
// hand-off instead of missing it.
//
// Same id, different bytes: a Put of id X and the demotion of an older X must never leave
// one version in RAM and another on disk. Both run under X's stripe lock: the Put checks the
// queue and the disk before it inserts into RAM, and the demotion writes X to disk only if
// X is still queued and RAM holds no X (a newer X in RAM is demoted later itself).

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cachestore/arena.h"
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

// The RAM tier's listener over a disk. A victim worth demoting leaves RAM under the RAM
// shard's lock (reported kDemoted) and reaches the demotion queue a moment later (Demote);
// this notes it in between, so that a Get, Lookup or Put of it then waits for it instead of
// finding it nowhere.
class DemotionHandOff final : public StoreListener {
 public:
  explicit DemotionHandOff(StoreListener* next) : next_(next) {}
  void OnStored(const Block& block, TierId tier) override {
    if (next_ != nullptr) next_->OnStored(block, tier);
  }
  void OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) override {
    if (reason == RemovalReason::kDemoted) {
      absl::MutexLock lock(&mu_);
      ++pending_[id];
    }
    if (next_ != nullptr) next_->OnRemoved(id, tier, reason);
  }
  void OnCleared(TierId tier) override {
    if (next_ != nullptr) next_->OnCleared(tier);
  }

  // Demote has queued `id` (or is writing it itself).
  void Done(const BlockId& id) {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(id);
    if (it != pending_.end() && --it->second == 0) pending_.erase(it);
  }

  // Whether `id` is between RAM and the queue; then waits until it is not (at most `limit`:
  // a safety net, the hand-off takes microseconds).
  bool WaitIfPending(const BlockId& id, absl::Duration limit) const {
    absl::MutexLock lock(&mu_);
    if (!pending_.contains(id)) return false;
    auto done = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !pending_.contains(id);
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), limit);
    return true;
  }

 private:
  StoreListener* const next_;  // Null when nobody else listens.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<BlockId, int> pending_ ABSL_GUARDED_BY(mu_);  // Id -> victims in between.
};

class TieredStoreImpl final : public TieredStore {
 public:
  TieredStoreImpl(const TieredStoreOptions& options, std::unique_ptr<BlockStore> ram,
                  std::unique_ptr<BlockStore> disk,
                  std::unique_ptr<StoreListener> ram_listener = nullptr,
                  DemotionHandOff* handoff = nullptr)
      : options_(options),
        ram_listener_(std::move(ram_listener)),
        handoff_(handoff),
        ram_(std::move(ram)),
        disk_(std::move(disk)) {
    if (options.ram.arena) {
      ArenaOptions arena;
      const uint64_t capacity = options.ram.capacity_bytes;
      // The slack holds victims on their way to disk or still read, and chunk rounding.
      arena.capacity_bytes = capacity + std::max<uint64_t>(64ull << 20, capacity / 16);
      arena.huge_pages = options.ram.huge_pages;
      arena_ = PayloadArena::Create(arena);
    }
    if (disk_ && options.demotion_queue_bytes > 0) {
      writer_ = std::thread([this] { WriterLoop(); });
    }
  }

  ~TieredStoreImpl() override {
    {
      absl::MutexLock lock(&queue_mu_);
      stopping_ = true;
    }
    if (writer_.joinable()) writer_.join();  // It empties the queue first.
  }

  std::shared_ptr<Block> NewBlock(size_t payload_bytes) override {
    if (arena_ == nullptr) return TieredStore::NewBlock(payload_bytes);
    return arena_->NewBlock(payload_bytes);
  }

  std::shared_ptr<const PayloadArena> arena() const override { return arena_; }

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
    // Every payload the RAM tier holds lives in the arena, so RAM stays within it. (A block
    // received into the arena, the data channel's, skips the index lookup.)
    if (arena_ && !arena_->Owns(block) && !ram_->Contains(block->meta.id)) {
      block = arena_->Adopt(std::move(block));
    }
    // The checksum is checked once, by the tier that stores the block (hashing a 4 MiB
    // payload twice was a quarter of the server's time per Put).
    std::vector<Evicted> victims;
    absl::StatusOr<PutOutcome> outcome;
    {
      absl::MutexLock stripe(&StripeOf(block->meta.id));
      if (disk_ && !ram_->Contains(block->meta.id) &&
          (Queued(block->meta.id) != nullptr || disk_->Contains(block->meta.id))) {
        return PutOutcome::kAlreadyPresent;
      }
      outcome = ram_->Put(block, &victims);
      if (absl::IsResourceExhausted(outcome.status()) && disk_) {
        // Larger than a RAM shard: it can still live on disk.
        outcome = disk_->Put(block);
      }
    }
    Demote(victims);
    return outcome;
  }

  absl::StatusOr<BlockPtr> Get(const BlockId& id) override {
    absl::StatusOr<BlockPtr> hit = ram_->Get(id);
    if (hit.ok() || !disk_) return hit;
    if (BlockPtr queued = Queued(id)) return queued;  // On its way to disk.
    hit = disk_->Get(id);
    if (!hit.ok()) return hit;
    if (arena_) *hit = arena_->Adopt(std::move(*hit));  // Promoted into the arena.
    std::vector<Evicted> victims;
    if (ram_->Put(*hit, &victims).ok()) promotions_.fetch_add(1, std::memory_order_relaxed);
    Demote(victims);
    return hit;
  }

  std::optional<absl::StatusOr<BlockPtr>> GetFromMemory(const BlockId& id) override {
    if (!disk_) return ram_->Get(id);
    if (ram_->Contains(id)) {
      absl::StatusOr<BlockPtr> hit = ram_->Get(id);
      if (hit.ok()) return hit;
    }
    if (BlockPtr queued = Queued(id)) return queued;
    return std::nullopt;
  }

  bool Contains(const BlockId& id) const override {
    return ram_->Contains(id) ||
           (disk_ && (Queued(id) != nullptr || disk_->Contains(id)));
  }

  LookupResult Lookup(const Key& ns, absl::Span<const Key> keys) override {
    LookupResult result;
    bool all_in_ram = true;
    absl::InlinedVector<bool, 64> ram_has(keys.size());
    ram_->ContainsEach(ns, keys, ram_has.data());
    for (size_t i = 0; i < keys.size(); ++i) {
      const BlockId id{ns, keys[i]};
      const bool in_ram = ram_has[i];
      if (!in_ram && !(disk_ && (Queued(id) != nullptr || disk_->Contains(id)))) break;
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
    if (!info && !on_disk && disk_) {
      if (BlockPtr queued = Queued(id)) {  // In memory, on its way to disk.
        BlockInfo q;
        q.meta = queued->meta;
        q.payload_bytes = queued->payload.size();
        q.tier = TierId::kRam;
        return q;
      }
    }
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
    absl::MutexLock stripe(&StripeOf(id));
    bool queued = false;
    if (disk_) {
      absl::MutexLock lock(&queue_mu_);
      queued = queued_.erase(id) > 0;  // The writer then skips it.
    }
    const bool in_ram = ram_->Erase(id) || queued;
    const bool in_disk = disk_ && disk_->Erase(id);
    return in_ram || in_disk;
  }

  bool Evict(const BlockId& id, std::vector<Evicted>* /*evicted*/) override {
    return EvictFrom(id, TierId::kRam) || EvictFrom(id, TierId::kDisk);
  }

  bool EvictFrom(const BlockId& id, TierId tier) override {
    if (tier == TierId::kDisk) return disk_ && disk_->Evict(id, nullptr);
    std::vector<Evicted> victims;
    bool held;
    {
      absl::MutexLock stripe(&StripeOf(id));
      held = ram_->Evict(id, disk_ ? &victims : nullptr);
    }
    Demote(victims);
    return held;
  }

  uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) override {
    WaitForDemotions();
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
    WaitForDemotions();  // Queued blocks are first on disk, as demoted.
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
    t.demotion_waits = s.ram.demotion_waits;
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
    s.ram.demotion_waits = demotion_waits_.load(std::memory_order_relaxed);
    s.lookups = lookups_.load(std::memory_order_relaxed);
    s.lookup_keys = lookup_keys_.load(std::memory_order_relaxed);
    s.lookup_hits = lookup_hits_.load(std::memory_order_relaxed);
    return s;
  }

  const TieredStoreOptions& options() const override { return options_; }

 private:
  static constexpr size_t kStripes = 64;
  // Blocks per batch the writer takes from the queue.
  static constexpr size_t kBatch = 32;

  absl::Mutex& StripeOf(const BlockId& id) const {
    return stripes_[IndexHash(id) % kStripes];
  }

  // The queued block of `id`, or null. A victim between RAM and the queue is waited for.
  BlockPtr Queued(const BlockId& id) const {
    if (!disk_) return nullptr;
    for (bool waited = false;; waited = true) {
      {
        absl::MutexLock lock(&queue_mu_);
        auto it = queued_.find(id);
        if (it != queued_.end()) return it->second;
      }
      if (waited || !handoff_->WaitIfPending(id, absl::Milliseconds(100))) return nullptr;
    }
  }

  void Demote(std::vector<Evicted>& victims) {
    if (!disk_) return;
    for (Evicted& v : victims) {
      if (!v.worth_demoting) continue;
      const BlockId id = v.block->meta.id;
      const uint64_t size = v.block->payload.size();
      bool room;
      {
        absl::MutexLock lock(&queue_mu_);
        room = writer_.joinable() && !stopping_ &&
               (queue_.empty() || queued_bytes_ + size <= options_.demotion_queue_bytes);
        // Queued (or, when full, registered while this thread writes it): still served.
        queued_[id] = v.block;
        if (room) {
          queue_.push_back(v.block);
          queued_bytes_ += size;
        }
      }
      handoff_->Done(id);
      if (room) continue;
      // Back-pressure: the disk is not keeping up (or there is no writer).
      if (writer_.joinable()) demotion_waits_.fetch_add(1, std::memory_order_relaxed);
      WriteDown(v.block);
    }
  }

  // Writes a demoted block to disk, unless it was erased meanwhile or RAM holds a newer
  // block of its id; then forgets it from the queue map.
  void WriteDown(const BlockPtr& block) {
    const BlockId& id = block->meta.id;
    absl::MutexLock stripe(&StripeOf(id));
    bool still_queued;
    {
      absl::MutexLock lock(&queue_mu_);
      auto it = queued_.find(id);
      still_queued = it != queued_.end() && it->second == block;
    }
    if (still_queued && !ram_->Contains(id)) {
      absl::StatusOr<PutOutcome> put = disk_->Put(block);
      if (put.ok() && *put == PutOutcome::kStored) {
        demotions_.fetch_add(1, std::memory_order_relaxed);
      } else if (!put.ok()) {
        // The block is lost to the cache (a miss later, never wrong bytes); the disk's own
        // write_errors say why.
        demotion_failures_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    absl::MutexLock lock(&queue_mu_);
    auto it = queued_.find(id);
    if (it != queued_.end() && it->second == block) queued_.erase(it);
  }

  void WriterLoop() {
    while (true) {
      std::vector<BlockPtr> batch;
      {
        absl::MutexLock lock(&queue_mu_);
        queue_mu_.Await(absl::Condition(
            +[](TieredStoreImpl* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t->queue_mu_) {
              return t->stopping_ || !t->queue_.empty();
            },
            this));
        if (queue_.empty()) return;  // Stopping, and everything queued is written.
        while (!queue_.empty() && batch.size() < kBatch) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        writing_ = true;
      }
      for (const BlockPtr& block : batch) WriteDown(block);
      absl::MutexLock lock(&queue_mu_);
      for (const BlockPtr& block : batch) queued_bytes_ -= block->payload.size();
      writing_ = false;
    }
  }

  // Blocks until the writer has written everything queued so far.
  void WaitForDemotions() {
    if (!writer_.joinable()) return;
    absl::MutexLock lock(&queue_mu_);
    queue_mu_.Await(absl::Condition(
        +[](TieredStoreImpl* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t->queue_mu_) {
          return t->queue_.empty() && !t->writing_;
        },
        this));
  }

  const TieredStoreOptions options_;
  const std::unique_ptr<StoreListener> ram_listener_;  // Outlives ram_ (declared before).
  DemotionHandOff* const handoff_;  // ram_listener_ when there is a disk, else null.
  const std::unique_ptr<BlockStore> ram_;
  const std::unique_ptr<BlockStore> disk_;  // Null when RAM only.
  // Declared after the tiers: destroyed first, so blocks freed later just free their bytes.
  std::shared_ptr<PayloadArena> arena_;  // Null without RamTierOptions::arena.
  std::atomic<uint64_t> demotions_{0};
  std::atomic<uint64_t> demotion_failures_{0};
  std::atomic<uint64_t> demotion_waits_{0};
  // A Put of an id and the demotion of the same id run under its stripe (see the top).
  mutable std::array<absl::Mutex, kStripes> stripes_;
  mutable absl::Mutex queue_mu_;
  // Victims on their way to disk (queued, or being written by a Put under back-pressure).
  absl::flat_hash_map<BlockId, BlockPtr> queued_ ABSL_GUARDED_BY(queue_mu_);
  std::deque<BlockPtr> queue_ ABSL_GUARDED_BY(queue_mu_);  // For the writer, oldest first.
  uint64_t queued_bytes_ ABSL_GUARDED_BY(queue_mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(queue_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::thread writer_;  // Started last, joined in the destructor.
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
  DemotionHandOff* handoff = nullptr;
  if (options.disk) {
    auto h = std::make_unique<DemotionHandOff>(options.listener);
    handoff = h.get();
    ram_listener = std::move(h);
  } else if (options.listener != nullptr) {
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
                                           std::move(ram_listener), handoff);
}

}  // namespace kvcache
