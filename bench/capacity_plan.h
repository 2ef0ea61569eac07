// The capacity planner: expected hit ratios of a trace over a grid of RAM sizes, disk sizes
// and block sizes, for sizing a deployment. Each cell is one Simulate run with the tiers'
// byte budgets turned into whole blocks: blocks = bytes / ChargeOf(block_bytes, tier).
//
// Thread safety: pure functions.

#ifndef KVCACHE_BENCH_CAPACITY_PLAN_H_
#define KVCACHE_BENCH_CAPACITY_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/trace.h"
#include "bench/trace_sim.h"

namespace kvcache {

struct PlanOptions {
  std::vector<uint64_t> ram_bytes;    // Required, each > 0.
  std::vector<uint64_t> disk_bytes;   // 0 means RAM only. Default: {0}.
  std::vector<uint64_t> block_bytes;  // Payload bytes per block (KV of one block). Required.
  // Eviction policy. Default: "lru".
  std::string eviction = "lru";
};

struct PlanRow {
  uint64_t block_bytes = 0, ram_bytes = 0, disk_bytes = 0;
  uint64_t ram_blocks = 0, disk_blocks = 0;
  SimulationResult result;
};

// One row per (block size, RAM size, disk size), in that nesting order.
//   INVALID_ARGUMENT  an empty list, a zero block size, or a RAM size under one block.
absl::StatusOr<std::vector<PlanRow>> PlanCapacity(const Trace& trace, const TraceKeys& keys,
                                                  const PlanOptions& options);

// The rows as a Markdown table.
std::string PlanToMarkdown(const std::vector<PlanRow>& rows);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_CAPACITY_PLAN_H_
