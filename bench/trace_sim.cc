#include "bench/trace_sim.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <queue>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"

namespace kvcache {
namespace {

// One byte: the smallest valid payload, so each block is charged ChargeOf(1).
constexpr uint64_t kSimPayloadBytes = 1;

// A temporary directory removed on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvcache-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

absl::StatusOr<SimulationResult> Simulate(const Trace& trace, const TraceKeys& keys,
                                          const SimulationOptions& options) {
  if (options.ram_blocks == 0) {
    return absl::InvalidArgumentError("the RAM tier needs a capacity of at least one block");
  }
  // What the tiers charge a block, the policy's own state included (ExtraBytesPerBlock).
  const uint64_t extra = EvictionPolicyExtraBytes(options.eviction);
  const uint64_t charge = ChargeOf(kSimPayloadBytes, TierId::kRam) + extra;
  TieredStoreOptions store_options;
  store_options.ram.capacity_bytes = options.ram_blocks * charge;
  store_options.ram.num_shard_bits = options.ram_shard_bits;
  store_options.ram.eviction = options.eviction;
  // Demotions on the Put's thread: a simulation is deterministic (the server's background
  // demotion queue makes what is on disk when depend on timing).
  store_options.demotion_queue_bytes = 0;
  ScratchDir scratch;
  if (options.disk_blocks > 0) {
    if (scratch.path().empty()) return absl::InternalError("cannot create a temp directory");
    DiskTierOptions disk;
    disk.path = scratch.path() + "/disk";
    disk.capacity_bytes = options.disk_blocks * (ChargeOf(kSimPayloadBytes, TierId::kDisk) + extra);
    disk.eviction = options.eviction;
    store_options.disk = disk;
  }
  absl::StatusOr<std::unique_ptr<TieredStore>> store = NewTieredStore(store_options);
  if (!store.ok()) return store.status();

  SimulationResult result;
  result.block_overhead_bytes = charge - kSimPayloadBytes;
  const std::string payload(kSimPayloadBytes, 'k');
  const absl::Time start = absl::Now();
  for (size_t r = 0; r < trace.requests.size(); ++r) {
    const TraceRequest& req = trace.requests[r];
    const std::vector<Key>& chain = keys.keys[r];
    ++result.requests;
    result.block_reads += chain.size();
    for (size_t i = 0; i < chain.size(); ++i) result.tokens += trace.BlockTokens(req, i);

    const LookupResult found = (*store)->Lookup(keys.ns, chain);
    size_t served = 0;
    for (; served < found.num_present; ++served) {
      // Gone meanwhile (a promotion's demotion can push a later block off disk): the run
      // ends here, as a worker's Get would.
      if (!(*store)->Get(BlockId{keys.ns, chain[served]}).ok()) break;
      result.token_hits += trace.BlockTokens(req, served);
    }
    // Per tier as the server reports it: the leading run the Lookup found in RAM.
    const size_t in_ram = std::min(served, found.num_in_ram);
    result.ram_hits += in_ram;
    result.disk_hits += served - in_ram;
    result.block_hits += served;
    for (size_t i = served; i < chain.size(); ++i) {
      std::optional<Key> parent;
      if (i > 0) parent = chain[i - 1];
      absl::StatusOr<PutOutcome> put =
          (*store)->Put(MakeBlock(BlockId{keys.ns, chain[i]}, parent, payload));
      if (!put.ok()) return put.status();
      if (*put == PutOutcome::kStored) ++result.puts;
    }
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const StoreStats stats = (*store)->GetStoreStats();
  result.evictions = stats.ram.evictions + stats.disk.evictions;
  result.demotions = stats.ram.demotions;
  store->reset();  // Close RocksDB before the scratch directory goes.
  if (options.belady) {
    SimulateBelady(trace, keys, options.ram_blocks + options.disk_blocks, &result);
  }
  return result;
}

void SimulateBelady(const Trace& trace, const TraceKeys& keys, uint64_t capacity_blocks,
                    SimulationResult* result) {
  // next_use[p]: the position of the next read of the block read at flat position p.
  constexpr uint64_t kNever = UINT64_MAX;
  std::vector<uint32_t> flat;
  for (const std::vector<uint32_t>& d : keys.dense) flat.insert(flat.end(), d.begin(), d.end());
  std::vector<uint64_t> next_use(flat.size());
  {
    std::vector<uint64_t> upcoming(keys.num_distinct, kNever);
    for (size_t p = flat.size(); p-- > 0;) {
      next_use[p] = upcoming[flat[p]];
      upcoming[flat[p]] = p;
    }
  }
  // cached[b]: 0 when block b is not cached, else its next use + 1 (kNever for none).
  std::vector<uint64_t> cached(keys.num_distinct, 0);
  std::priority_queue<std::pair<uint64_t, uint32_t>> farthest;  // (next use + 1, block)
  uint64_t size = 0, hits = 0, token_hits = 0, repeats = 0;
  std::vector<bool> seen(keys.num_distinct, false);
  size_t p = 0;
  for (size_t r = 0; r < trace.requests.size(); ++r) {
    const std::vector<uint32_t>& chain = keys.dense[r];
    size_t present = 0;
    while (present < chain.size() && cached[chain[present]] != 0) ++present;
    hits += present;
    for (size_t i = 0; i < present; ++i) token_hits += trace.BlockTokens(trace.requests[r], i);
    for (size_t i = 0; i < chain.size(); ++i, ++p) {
      const uint32_t b = chain[i];
      if (seen[b]) ++repeats;
      seen[b] = true;
      const uint64_t tag = next_use[p] == kNever ? kNever : next_use[p] + 1;
      if (capacity_blocks == 0) continue;
      if (cached[b] == 0) {
        if (size >= capacity_blocks) {
          // The farthest next use among cached blocks (skipping stale heap entries).
          while (cached[farthest.top().second] != farthest.top().first) farthest.pop();
          // Bypass: caching a block needed no sooner than everything cached cannot help.
          if (farthest.top().first <= tag) continue;
          cached[farthest.top().second] = 0;
          farthest.pop();
        } else {
          ++size;
        }
      }
      cached[b] = tag;
      farthest.emplace(tag, b);
    }
  }
  result->belady_hits = hits;
  result->belady_token_hits = token_hits;
  result->repeat_reads = repeats;
}

}  // namespace kvcache
