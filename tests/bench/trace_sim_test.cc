#include "bench/trace_sim.h"

#include "bench/capacity_plan.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "gtest/gtest.h"

namespace kvcache {
namespace {

// Two blocks of room. R1 stores chain [1, 2]; R2 is a one-block request [3] never seen
// again; R3 reads [1, 2] again.
//   LRU:        R2's put evicts 1 (least recent), so R3 misses at its first block: 0 / 5.
//   Belady:     block 3 is never read again, so it is not cached; R3 hits both: 2 / 5.
//   prefix-lfu: R2's put evicts the leaf 2 (1 still has a child); R3 hits 1, then stores 2
//               again in place of 3 (lowest priority): 1 / 5.
Trace TinyTrace() {
  Trace trace;
  trace.requests.push_back({0, 1000, 1, {1, 2}});
  trace.requests.push_back({1, 100, 1, {3}});
  trace.requests.push_back({2, 1024, 1, {1, 2}});
  return trace;
}

SimulationOptions Opts(uint64_t ram_blocks, uint64_t disk_blocks, const char* eviction) {
  SimulationOptions o;
  o.ram_blocks = ram_blocks;
  o.disk_blocks = disk_blocks;
  o.eviction = eviction;
  return o;
}

SimulationResult SimulateOrDie(const Trace& trace, const SimulationOptions& o) {
  absl::StatusOr<SimulationResult> r = Simulate(trace, KeysOf(trace), o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : SimulationResult{};
}

TEST(SimulateTest, LruOnATinyTrace) {
  const SimulationResult r = SimulateOrDie(TinyTrace(), Opts(2, 0, "lru"));
  EXPECT_EQ(r.requests, 3u);
  EXPECT_EQ(r.block_reads, 5u);
  EXPECT_EQ(r.block_hits, 0u);
  EXPECT_DOUBLE_EQ(r.HitRatio(), 0.0);
  EXPECT_EQ(r.tokens, 1000u + 100u + 1024u);
  EXPECT_EQ(r.puts, 5u);
  EXPECT_EQ(r.evictions, 3u);
}

TEST(SimulateTest, BeladyOnATinyTrace) {
  const SimulationResult r = SimulateOrDie(TinyTrace(), Opts(2, 0, "lru"));
  EXPECT_EQ(r.belady_hits, 2u);
  EXPECT_DOUBLE_EQ(r.BeladyHitRatio(), 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(r.BeladyTokenHitRatio(), 1024.0 / 2124.0);
  EXPECT_EQ(r.repeat_reads, 2u);
  EXPECT_DOUBLE_EQ(r.CeilingHitRatio(), 2.0 / 5.0);
}

TEST(SimulateTest, PrefixLfuOnATinyTrace) {
  const SimulationResult r = SimulateOrDie(TinyTrace(), Opts(2, 0, "prefix-lfu"));
  EXPECT_EQ(r.block_hits, 1u);
  EXPECT_EQ(r.ram_hits, 1u);
  EXPECT_EQ(r.token_hits, 512u);
  EXPECT_DOUBLE_EQ(r.TokenHitRatio(), 512.0 / 2124.0);
}

TEST(SimulateTest, ReuseDensityOnATinyTrace) {
  // R2's put evicts the leaf 2 (1 still has a child; 3 is not stored yet); R3 hits 1.
  const SimulationResult r = SimulateOrDie(TinyTrace(), Opts(2, 0, "reuse-density"));
  EXPECT_EQ(r.block_hits, 1u);
  EXPECT_EQ(r.token_hits, 512u);
}

TEST(SimulateTest, ChargesEachBlockThePolicysState) {
  // N blocks of room whatever the policy: the capacity includes the policy's own state.
  const SimulationResult lru = SimulateOrDie(TinyTrace(), Opts(2, 0, "lru"));
  EXPECT_EQ(lru.block_overhead_bytes, kBlockOverheadBytes);
  const SimulationResult rd = SimulateOrDie(TinyTrace(), Opts(2, 0, "reuse-density"));
  EXPECT_EQ(rd.block_overhead_bytes,
            kBlockOverheadBytes + EvictionPolicyExtraBytes("reuse-density"));
  EXPECT_EQ(rd.puts - rd.evictions, 2u);  // Two blocks held at the end, as for LRU.
  EXPECT_EQ(lru.puts - lru.evictions, 2u);
}

TEST(SimulateTest, AHitNeedsTheWholePrefix) {
  // With room for one block, LRU leaves R2 the second block (2) cached but not its first:
  // no hit. Belady keeps the first block instead (bypassing 2, read later than 1): one hit.
  Trace trace;
  trace.requests.push_back({0, 1024, 1, {1, 2}});
  trace.requests.push_back({1, 1024, 1, {1, 2}});
  const SimulationResult r = SimulateOrDie(trace, Opts(1, 0, "lru"));
  EXPECT_EQ(r.block_hits, 0u);
  EXPECT_EQ(r.belady_hits, 1u);
}

TEST(SimulateTest, CountsHitsPerTier) {
  // RAM holds one block, disk two. R1 leaves 2 in RAM and 1 demoted to disk; R2's Get of 1
  // is a disk hit (promoted, demoting 2), and so is its Get of 2.
  Trace trace;
  trace.requests.push_back({0, 1024, 1, {1, 2}});
  trace.requests.push_back({1, 1024, 1, {1, 2}});
  for (const char* policy : {"lru", "prefix-lfu"}) {
    const SimulationResult r = SimulateOrDie(trace, Opts(1, 2, policy));
    EXPECT_EQ(r.block_hits, 2u) << policy;
    EXPECT_EQ(r.disk_hits, 2u) << policy;
    EXPECT_EQ(r.ram_hits, 0u) << policy;
    EXPECT_GE(r.demotions, 2u) << policy;
    EXPECT_EQ(r.belady_hits, 2u) << policy;  // Belady at 1 + 2 blocks.
  }
}

TEST(SimulateTest, RejectsBadOptions) {
  const Trace trace = TinyTrace();
  EXPECT_TRUE(absl::IsInvalidArgument(Simulate(trace, KeysOf(trace), Opts(0, 0, "lru")).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Simulate(trace, KeysOf(trace), Opts(2, 0, "nope")).status()));
}

TEST(CapacityPlanTest, TurnsBytesIntoBlocksAndPrintsATable) {
  const Trace trace = TinyTrace();
  PlanOptions o;
  o.ram_bytes = {2 * ChargeOf(1000), 8 * ChargeOf(1000)};
  o.disk_bytes = {0};
  o.block_bytes = {1000};
  absl::StatusOr<std::vector<PlanRow>> rows = PlanCapacity(trace, KeysOf(trace), o);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].ram_blocks, 2u);
  EXPECT_EQ((*rows)[1].ram_blocks, 8u);
  EXPECT_DOUBLE_EQ((*rows)[1].result.HitRatio(), 2.0 / 5.0);  // Room for everything.
  const std::string table = PlanToMarkdown(*rows);
  EXPECT_NE(table.find("| block | RAM | disk |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 0.400 |"), std::string::npos) << table;

  o.ram_bytes = {100};
  EXPECT_TRUE(absl::IsInvalidArgument(PlanCapacity(trace, KeysOf(trace), o).status()));
}

}  // namespace
}  // namespace kvcache
