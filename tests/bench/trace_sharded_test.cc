// The server's default policy never loses to LRU on a sharded RAM tier (16 shards, the
// server's layout above 1 GiB), whatever the shard layout: the real kvcache-bench simulates
// the synthetic workload under several index-hash seeds (KVCACHE_INDEX_HASH_SEED fixes which
// shard each block lands in; a seed is process-wide, hence a process per run).

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/process.h"

namespace kvcache {
namespace {

using nlohmann::json;
using testing::Bin;

double SimulatedHitRatio(const std::string& seed, uint64_t blocks, const char* eviction) {
  ::setenv("KVCACHE_INDEX_HASH_SEED", seed.c_str(), /*overwrite=*/1);
  testing::CommandResult r =
      testing::Run({Bin("kvcache-bench"), "trace", "--simulate", "--synthetic", "--seed=1",
                    "--ram-shard-bits=4", "--capacity-blocks=" + std::to_string(blocks),
                    std::string("--eviction=") + eviction, "--json"});
  ::unsetenv("KVCACHE_INDEX_HASH_SEED");
  EXPECT_EQ(r.exit_status, 0) << r.output;
  const json j = json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object() && j.contains("hit_ratio")) << r.output;
  return j.is_object() && j.contains("hit_ratio") ? j["hit_ratio"].get<double>() : -1;
}

TEST(ShardedTraceTest, ReuseDensityNeverBelowLruWhateverTheShardLayout) {
  for (const std::string seed : {"1", "2", "3"}) {
    for (uint64_t blocks : {1000, 4000, 16000, 32000}) {
      const double lru = SimulatedHitRatio(seed, blocks, "lru");
      const double rd = SimulatedHitRatio(seed, blocks, "reuse-density");
      EXPECT_GE(rd, lru) << "seed " << seed << ", " << blocks << " blocks";
      std::printf("seed %s, %6llu blocks: lru %.4f, reuse-density %.4f\n", seed.c_str(),
                  static_cast<unsigned long long>(blocks), lru, rd);
    }
  }
}

TEST(ShardedTraceTest, AFixedSeedRepeatsTheShardLayout) {
  // Without the variable each process draws its seed, so sharded runs differ a little;
  // with it they repeat to the block.
  EXPECT_EQ(SimulatedHitRatio("7", 1000, "reuse-density"),
            SimulatedHitRatio("7", 1000, "reuse-density"));
}

}  // namespace
}  // namespace kvcache
