// kvcache's tiered block store: KV blocks in a sharded RAM tier over a RocksDB disk tier.
//
// This is the one header a user of the store needs. No gRPC in here.
//
// - A block is identified by (namespace, key) and is immutable once stored: a Put of a key
//   that is already stored keeps the stored block (Put is idempotent).
// - Blocks are shared as `BlockPtr` (a refcounted, immutable block): a Get hands out a
//   reference to the stored bytes, never a copy, and the bytes stay valid for as long as the
//   caller holds it, even if the block is evicted meanwhile.
// - Every implementation checks the payload's checksum on every write; the disk tier checks
//   it again on every read and drops a block that fails (counted, reported as NOT_FOUND).
// - Capacities are byte budgets that are never exceeded: a block is charged its payload plus
//   a fixed per-block overhead (`kBlockOverheadBytes` in RAM, `kDiskBlockOverheadBytes` on
//   disk).
//
// Thread safety: every BlockStore is safe to use from many threads at once.

#ifndef KVCACHE_CACHESTORE_BLOCK_STORE_H_
#define KVCACHE_CACHESTORE_BLOCK_STORE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cachestore/payload.h"
#include "common/block_shape.h"
#include "common/key.h"

namespace kvcache {

class PayloadArena;   // arena.h
class StoreListener;  // store_events.h

struct BlockMeta {
  BlockId id;
  std::optional<Key> parent;  // Previous block of the chain; none for a chain's first block.
  uint64_t checksum = 0;      // XXH3-64 of the payload.
  BlockShape shape;
};

// A block's token ids: one pointer (8 bytes, null when there are none) instead of a
// 24-byte vector in every block. Read like a container (begin, end, size, empty); filled
// with assign.
class TokenIds {
 public:
  TokenIds() = default;
  TokenIds(const TokenIds& other) { assign(other.begin(), other.end()); }
  TokenIds& operator=(const TokenIds& other) {
    if (this != &other) assign(other.begin(), other.end());
    return *this;
  }
  TokenIds(TokenIds&&) noexcept = default;
  TokenIds& operator=(TokenIds&&) noexcept = default;

  template <typename It>
  void assign(It first, It last) {
    const size_t n = static_cast<size_t>(std::distance(first, last));
    if (n == 0) {
      data_.reset();
      return;
    }
    data_ = std::make_unique<uint32_t[]>(n + 1);
    data_[0] = static_cast<uint32_t>(n);
    std::copy(first, last, data_.get() + 1);
  }
  void clear() { data_.reset(); }

  size_t size() const { return data_ == nullptr ? 0 : data_[0]; }
  bool empty() const { return data_ == nullptr; }
  const uint32_t* begin() const { return data_ == nullptr ? nullptr : data_.get() + 1; }
  const uint32_t* end() const { return begin() + size(); }

 private:
  std::unique_ptr<uint32_t[]> data_;  // The count, then the ids; null when none.
};

struct Block {
  BlockMeta meta;
  Payload payload;
  // The block's token ids when its writer sent them (optional, never persisted): only
  // passed on to KV events (store_events.h) so that routers can hash them themselves.
  TokenIds token_ids;
};

using BlockPtr = std::shared_ptr<const Block>;

// Makes a block with its checksum computed from `payload` (copied).
BlockPtr MakeBlock(const BlockId& id, std::optional<Key> parent, absl::string_view payload,
                   const BlockShape& shape = {});

// Bytes a block costs the RAM tier beyond its payload: its index entry, metadata and LRU
// state. A 64-byte slot (key, checksum, payload pointer, LRU links, last access, an interned
// kind: ram_tier.cc), its parent key (32) and fingerprint (4) beside it, its table bucket
// (8 bytes at 3/8 to 3/4 load, so 10.7-21.3) and its payload's holder count and size (8
// bytes in the arena's chunk table; on the heap a header of 8 and malloc's own 8 and
// rounding): 119-129 bytes with the arena, up to ~150 on the heap. Measured in
// docs/benchmarks.md, "Index" (`kvcache-bench throughput --op=index-scale`); so capacities
// hold for small blocks too.
inline constexpr uint64_t kBlockOverheadBytes = 160;
inline uint64_t ChargeOf(uint64_t payload_bytes) { return payload_bytes + kBlockOverheadBytes; }

// Bytes a block costs the disk tier's budget beyond its payload: its records on disk (the
// 146-byte meta record, the blocks column family's 64-byte key and blob reference, RocksDB's
// own per-entry overhead). Its RAM index is budgeted apart (kDiskIndexEntryBytes).
inline constexpr uint64_t kDiskBlockOverheadBytes = 320;
inline uint64_t DiskChargeOf(uint64_t payload_bytes) {
  return payload_bytes + kDiskBlockOverheadBytes;
}

enum class TierId { kRam, kDisk };

// What a block of `payload_bytes` costs `tier`'s budget (before an eviction policy's own
// state: EvictionPolicy::ExtraBytesPerBlock).
inline uint64_t ChargeOf(uint64_t payload_bytes, TierId tier) {
  return tier == TierId::kRam ? ChargeOf(payload_bytes) : DiskChargeOf(payload_bytes);
}

// Counters and gauges of one tier. See cache.proto, TierStats, for each field's meaning.
struct TierStats {
  uint64_t blocks = 0;
  uint64_t bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t demotions = 0;
  uint64_t promotions = 0;
  uint64_t checksum_failures = 0;
  uint64_t inserts = 0;
  // Disk tier: writes (puts and deletes) the disk refused. Each is also reported to its
  // caller where it has one, and a failed delete is retried with the next write.
  uint64_t write_errors = 0;
  // RAM tier of the tiered store: victims worth keeping that the disk tier failed to take
  // (dropped instead of demoted).
  uint64_t demotion_failures = 0;
  // Disk tier: writes turned away because its directory had reached its cap while RocksDB
  // collected the garbage of evicted blocks (the blocks were dropped, not demoted).
  uint64_t write_refusals = 0;
  // Disk tier: memory its in-memory index takes (kDiskIndexEntryBytes a block), charged to
  // DiskTierOptions::index_capacity_bytes.
  uint64_t index_bytes = 0;
  // Disk tier: bytes its directory takes (live blocks, RocksDB's garbage not yet collected,
  // WAL, metadata), as last measured; and the filesystem's free bytes.
  uint64_t dir_bytes = 0;
  uint64_t free_bytes = 0;
  // Disk tier: 1 while it takes no writes (disk full, or writes failing); the store keeps
  // serving from RAM and from what the disk can still read. `fault` says why.
  uint64_t degraded = 0;
  std::string fault;
  // RAM tier of the tiered store: victims a Put demoted on its own thread because the
  // background demotion queue was full (the disk not keeping up): back-pressure.
  uint64_t demotion_waits = 0;
};

// What the store knows of a stored block, without its payload.
struct BlockInfo {
  BlockMeta meta;
  uint64_t payload_bytes = 0;
  TierId tier = TierId::kRam;  // The fastest tier holding it.
  bool on_disk = false;
  int64_t last_access_unix_micros = 0;
};

enum class PutOutcome {
  kStored,          // Newly stored.
  kAlreadyPresent,  // The key was stored already; the stored block is kept.
  kNotAdmitted,     // The eviction policy declined it (not an error: a cache may refuse).
};

// A block a tier gave up to make room, handed to the caller of Put (the tiered store
// demotes it to disk when `worth_demoting`).
struct Evicted {
  BlockPtr block;
  bool worth_demoting = true;
};

// The interface of each tier and of the tiered store.
class BlockStore {
 public:
  BlockStore() = default;
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;
  virtual ~BlockStore() = default;

  // Stores `block` (REQUIRES: non-null), evicting others if needed. Blocks this evicts are
  // appended to `evicted` when it is non-null (tiers that cannot hand back payloads, like
  // the disk tier, append nothing).
  //   OK                  the outcome says whether it was stored.
  //   INVALID_ARGUMENT    empty payload, or the checksum does not match the payload.
  //   RESOURCE_EXHAUSTED  the block is larger than this store could ever hold.
  //   INTERNAL            the disk failed (disk tier).
  virtual absl::StatusOr<PutOutcome> Put(BlockPtr block,
                                         std::vector<Evicted>* evicted = nullptr) = 0;

  // The stored block, counted as a hit or a miss.
  //   OK         the block (its checksum verified if it came from disk).
  //   NOT_FOUND  not stored, or dropped just now because it failed its checksum.
  virtual absl::StatusOr<BlockPtr> Get(const BlockId& id) = 0;

  // Whether `id` is stored, from the in-memory index alone. Does not count or touch.
  virtual bool Contains(const BlockId& id) const = 0;

  // Contains for each of `keys` in namespace `ns`: found[i] for keys[i]. The RAM tier looks
  // them up together, so that their cache misses overlap (a Lookup's chain), and answers from
  // a 64-bit keyed fingerprint without reading the blocks: a false "present" is possible, at
  // odds of about blocks / 2^54 per key (ram_tier.cc), and costs a miss on the Get after.
  virtual void ContainsEach(const Key& ns, absl::Span<const Key> keys, bool* found) const {
    for (size_t i = 0; i < keys.size(); ++i) found[i] = Contains(BlockId{ns, keys[i]});
  }

  // What is known of `id`; nullopt when not stored. Does not count or touch.
  virtual std::optional<BlockInfo> Inspect(const BlockId& id) const = 0;

  // Up to `limit` stored blocks for which `filter` is true (all when `filter` is empty), in
  // no particular order. `filter` runs under the store's locks: keep it cheap.
  using Filter = std::function<bool(const BlockMeta&)>;
  virtual std::vector<BlockInfo> List(const Filter& filter, size_t limit) const = 0;

  // Removes `id`. Returns whether it was stored.
  virtual bool Erase(const BlockId& id) = 0;

  // Removes `id` as if the eviction policy had picked it (counted as an eviction): when
  // `evicted` is given and the tier can hand back payloads, the block is appended to it to
  // be kept below and the listener hears kDemoted, else kEvicted. Returns whether it was
  // stored. (Quotas make room with it: services/tenant_usage.h.)
  virtual bool Evict(const BlockId& id, std::vector<Evicted>* evicted) = 0;

  // Removes every block for which `pred` is true. Returns how many. `pred` runs under the
  // store's locks: keep it cheap and do not call back into the store.
  virtual uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) = 0;

  // Removes everything. Returns how many blocks. (A listener hears one OnCleared, not a
  // removal per block.)
  virtual uint64_t Clear() {
    return EraseIf([](const BlockMeta&) { return true; });
  }

  virtual TierStats Stats() const = 0;
};

// ---------------------------------------------------------------------------------------
// The tiers.

struct RamTierOptions {
  // The byte budget, never exceeded. Default: 1 GiB.
  uint64_t capacity_bytes = 1ull << 30;
  // log2 of the number of shards; each shard has its own lock, policy and an equal share of
  // the capacity. -1 picks the most shards (up to 16) that leave each at least 64 MiB.
  // Default: -1.
  int num_shard_bits = -1;
  // Eviction policy name (see eviction_policy.h). Default: "lru".
  std::string eviction = "lru";
  // Told of every block stored and removed (store_events.h); must outlive the tier.
  // Default: none.
  StoreListener* listener = nullptr;
  // Payloads from a memory arena (cachestore/arena.h): one region of capacity_bytes plus a
  // slack of max(64 MiB, capacity / 16), faulted in by a background thread from the start.
  // Blocks made with TieredStore::NewBlock are received into warm memory and their chunks
  // are recycled on eviction, so a Put into an empty tier costs what one into a full tier
  // does, and the resident size is the capacity from the start. Default: false.
  bool arena = false;
  // With `arena`: advise the region for transparent huge pages (ArenaOptions::huge_pages).
  // Default: true.
  bool huge_pages = true;
};

// Largest RamTierOptions::num_shard_bits accepted.
inline constexpr int kMaxRamShardBits = 10;

// INVALID_ARGUMENT for an unknown policy or a bad shard count.
absl::StatusOr<std::unique_ptr<BlockStore>> NewRamTier(const RamTierOptions& options);

// The number of shards NewRamTier makes for `options` (resolving num_shard_bits = -1).
int RamTierShards(const RamTierOptions& options);

struct DiskTierOptions {
  // The RocksDB directory; created if missing. Required.
  std::string path;
  // The byte budget (payloads plus metadata), never exceeded by the live blocks. Space of
  // deleted blocks is reclaimed by RocksDB's blob garbage collection in the background, so
  // the directory can briefly hold more. Default: 16 GiB.
  uint64_t capacity_bytes = 16ull << 30;
  // Eviction policy name. Default: "lru".
  std::string eviction = "lru";
  // fsync each write. Off, a write survives a crash of the process (kill -9) but not of the
  // machine: a cache can afford to lose blocks. Default: false.
  bool sync_writes = false;
  // The memory budget of the in-memory index: each block on disk costs
  // kDiskIndexEntryBytes of RAM, and the oldest blocks are evicted to keep the index within
  // it (so millions of tiny blocks cannot exhaust memory, at run time or when a restart
  // reloads them). 0: no budget. Default: 256 MiB (2,097,152 blocks).
  uint64_t index_capacity_bytes = 256ull << 20;
  // Room the RocksDB directory may take beyond capacity_bytes for files that do not shrink
  // with it (info LOG, a WAL of at least 4 MiB, MANIFEST, OPTIONS) and garbage awaiting
  // collection: past it, the garbage is taken off the live blocks' budget and writes are
  // turned away until RocksDB collects it. Default: 8 MiB.
  uint64_t directory_slack_bytes = 8ull << 20;
  // The tier takes no writes while the filesystem has less free space than this (it reports
  // itself degraded, and resumes by itself once space is back). Default: 64 MiB.
  uint64_t min_free_bytes = 64ull << 20;
  // How often disk space, the directory's size and a failing disk are re-checked.
  // Default: 1 s.
  absl::Duration check_interval = absl::Seconds(1);
  // Told of every block stored and removed after the index is loaded (store_events.h);
  // must outlive the tier. Default: none.
  StoreListener* listener = nullptr;
};

// RAM the disk tier's index takes per block: a 96-byte slot (id, payload size, last access,
// LRU links, fingerprint) and its fingerprint-table bucket (8 bytes at 3/8 to 3/4 load,
// so 11-22), rounded up. A policy other than LRU keeps its own state on top (charged to the
// tier's capacity as ExtraBytesPerBlock).
inline constexpr uint64_t kDiskIndexEntryBytes = 128;

// Opens (or creates) the disk tier and rebuilds its index from what is on disk, so blocks
// written before a restart, clean or not, are served again.
//   INVALID_ARGUMENT  empty path or unknown policy.
//   INTERNAL          RocksDB could not open the directory (the message says why).
absl::StatusOr<std::unique_ptr<BlockStore>> NewDiskTier(const DiskTierOptions& options);

// ---------------------------------------------------------------------------------------
// The tiered store: what the server runs.

struct TieredStoreOptions {
  RamTierOptions ram;
  // The disk tier; nullopt runs RAM only. Default: none.
  std::optional<DiskTierOptions> disk;
  // Largest payload accepted; larger puts are RESOURCE_EXHAUSTED. Default: 16 MiB. (The
  // tiered store's Put also refuses, INVALID_ARGUMENT, a payload whose size disagrees with a
  // non-zero shape: CheckPayloadMatchesShape in common/block_shape.h.)
  uint64_t max_block_bytes = 16ull << 20;
  // Told of every change of either tier (store_events.h); NewTieredStore hands it to both
  // tiers, overriding theirs. Must outlive the store. Default: none.
  StoreListener* listener = nullptr;
  // RAM victims waiting for the background writer to put them on disk, in payload bytes.
  // They are still served (Get, Lookup, Contains) from the queue. Beyond it a Put demotes its
  // own victims (TierStats::demotion_waits). 0 demotes on the caller's thread, as before.
  // Default: 256 MiB.
  uint64_t demotion_queue_bytes = 256ull << 20;
};

struct LookupResult {
  size_t num_present = 0;  // Leading keys stored in some tier.
  size_t num_in_ram = 0;   // Leading keys stored in RAM.
};

struct StoreStats {
  TierStats ram;
  TierStats disk;
  uint64_t lookups = 0;
  uint64_t lookup_keys = 0;
  uint64_t lookup_hits = 0;
};

// Puts go to RAM; RAM victims are demoted to disk (unless the policy judges them not worth
// it) by a background writer, in batches, off the Put's path (TieredStoreOptions::
// demotion_queue_bytes); a disk hit is promoted (copied) back to RAM and stays on disk too,
// so demoting it again costs no write. As a BlockStore its Stats() sums the tiers.
class TieredStore : public BlockStore {
 public:
  // How many leading `keys` of namespace `ns` are stored, from memory alone. Counted in the
  // lookup stats.
  virtual LookupResult Lookup(const Key& ns, absl::Span<const Key> keys) = 0;

  virtual StoreStats GetStoreStats() const = 0;

  // Get, where memory alone can answer: a block in RAM (counted as Get counts a RAM hit) or
  // on its way to disk, and, without a disk tier, whatever Get answers. nullopt where only
  // the disk tier can tell (then Get, on a thread that may wait on the disk; nothing was
  // counted, but for the rare block evicted from RAM meanwhile).
  virtual std::optional<absl::StatusOr<BlockPtr>> GetFromMemory(const BlockId& id) = 0;

  // Drops every block of one tier (or of both with nullopt). Returns how many.
  virtual uint64_t Flush(std::optional<TierId> tier) = 0;

  // Moves `id` out of one tier, as that tier's eviction would: out of RAM it is demoted
  // (kept on disk, when there is one), out of disk it is dropped. Returns whether the tier
  // held it.
  virtual bool EvictFrom(const BlockId& id, TierId tier) = 0;

  virtual const TieredStoreOptions& options() const = 0;

  // A block to fill in (metadata and payload bytes) and Put: its payload, `payload_bytes`
  // long with unspecified contents, comes from the RAM tier's arena when it has one
  // (RamTierOptions::arena), else from a plain allocation (not zero-filled: the caller
  // overwrites it whole).
  virtual std::shared_ptr<Block> NewBlock(size_t payload_bytes) {
    auto block = std::make_shared<Block>();
    block->payload = Payload::Uninitialized(payload_bytes);
    return block;
  }

  // The RAM tier's arena (for its Stats()), or null without RamTierOptions::arena.
  virtual std::shared_ptr<const PayloadArena> arena() const { return nullptr; }
};

//   INVALID_ARGUMENT  bad options (the message names the field).
//   INTERNAL          the disk tier could not be opened.
absl::StatusOr<std::unique_ptr<TieredStore>> NewTieredStore(const TieredStoreOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_BLOCK_STORE_H_
