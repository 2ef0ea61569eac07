// Trace simulation: replays a trace against the real cachestore library (no server) with
// capacities in blocks, and computes Belady's offline optimum for the same capacity.
//
// Each request does what a worker does: Lookup its chain of keys, Get the leading blocks
// that are present (a block counts as a hit only if it and its whole prefix were served),
// and Put the rest. Payloads are small and every capacity is a whole number of blocks
// (capacity_bytes = blocks * ChargeOf(payload), one RAM shard), so results are exact and
// a 12k-request trace simulates in about a second per capacity.
//
// Thread safety: each call is independent; calls may run in parallel.

#ifndef KVCACHE_BENCH_TRACE_SIM_H_
#define KVCACHE_BENCH_TRACE_SIM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "bench/trace.h"

namespace kvcache {

struct SimulationOptions {
  // Blocks the RAM tier holds. Required (> 0).
  uint64_t ram_blocks = 0;
  // Blocks the disk tier holds; 0 runs RAM only. A disk tier is a real RocksDB tier in a
  // temporary directory, removed afterwards. Default: 0.
  uint64_t disk_blocks = 0;
  // Eviction policy of both tiers (see eviction_policy.h). Default: "lru".
  std::string eviction = "lru";
  // log2 of the RAM tier's shards. Each shard has its own policy and 1/2^bits of the
  // capacity, as in the server; 0 (one shard) makes the capacity exact. Default: 0.
  int ram_shard_bits = 0;
  // Also compute Belady's optimum at ram_blocks + disk_blocks. Default: true.
  bool belady = true;
};

struct SimulationResult : HitCounts {
  uint64_t puts = 0;       // Blocks stored.
  uint64_t evictions = 0;  // Both tiers.
  uint64_t demotions = 0;  // RAM victims written to disk.
  uint64_t belady_hits = 0;
  uint64_t belady_token_hits = 0;
  uint64_t repeat_reads = 0;  // Reads of a block read before: an unbounded cache's hits.
  double seconds = 0;         // Wall time of the cachestore replay.
  // Bytes the RAM tier charges a block beyond its payload with this policy:
  // kBlockOverheadBytes plus the policy's ExtraBytesPerBlock.
  uint64_t block_overhead_bytes = 0;

  double BeladyHitRatio() const { return Ratio(belady_hits, block_reads); }
  double BeladyTokenHitRatio() const { return Ratio(belady_hits ? belady_token_hits : 0, tokens); }
  double CeilingHitRatio() const { return Ratio(repeat_reads, block_reads); }
};

// Replays `trace` (with its `keys`, from KeysOf) against a tiered store.
//   INVALID_ARGUMENT  ram_blocks is 0 or the policy is unknown.
//   INTERNAL          the disk tier could not be opened.
absl::StatusOr<SimulationResult> Simulate(const Trace& trace, const TraceKeys& keys,
                                          const SimulationOptions& options);

// Belady's offline optimum for a cache of `capacity_blocks`: on a miss, evict the block
// whose next read is farthest in the future, or bypass the missing block when its own next
// read is the farthest (MIN with bypass). Same hit rule as Simulate (a hit needs the whole
// prefix), so it is the bound for policies that see one request at a time; with the prefix
// rule it is a very good schedule rather than a proven optimum. Sets belady_hits
// and belady_token_hits of `result` (and repeat_reads).
void SimulateBelady(const Trace& trace, const TraceKeys& keys, uint64_t capacity_blocks,
                    SimulationResult* result);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_TRACE_SIM_H_
