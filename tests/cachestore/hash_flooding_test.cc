// Hash flooding: keys are chosen by clients, so a client can send 100,000 keys that share
// any bytes it likes. The store must spread them as it spreads random keys (the RAM tier's
// shards, the maps, the eviction policies all hash the whole id with a per-process seed:
// common/key.h). Asserted: colliding keys fill the RAM tier's shards evenly (a tier sized to
// hold them only when spread evenly keeps them all). Printed, never asserted (timings): the
// insert time of each key set and another client's Lookup p50/p99 meanwhile; `kvcache-bench
// throughput --op=index-scale --key-pattern=colliding` measures the same at any size.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "cachestore/block_store.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;
using Clock = std::chrono::steady_clock;

constexpr size_t kBlocks = 100000;
constexpr size_t kPayload = 64;

struct Figures {
  double insert_s = 0;
  double lookup_p50_us = 0;
  double lookup_p99_us = 0;
};

// Stores kBlocks blocks whose keys have bytes [0, shared) equal, in a RAM tier of 16 shards
// sized 1.5x what they need, while another thread looks up an unrelated stored key.
Figures Flood(size_t shared, const std::string& policy) {
  TieredStoreOptions o;
  o.ram.num_shard_bits = 4;
  o.ram.eviction = policy;
  o.ram.capacity_bytes = (kBlocks + 1) * ChargeOf(kPayload) * 3 / 2;
  std::unique_ptr<TieredStore> store = *NewTieredStore(o);
  const std::string payload(kPayload, 'p');
  const Key ns = TestKey(1, 1);
  std::vector<Key> keys(kBlocks);
  for (size_t i = 0; i < kBlocks; ++i) {
    keys[i] = TestKey(i);
    std::memset(keys[i].bytes.data(), 0xc5, shared);
  }
  const Key probe_ns = TestKey(2, 2), probe_key = TestKey(3, 3);
  EXPECT_TRUE(store->Put(MakeBlock(BlockId{probe_ns, probe_key}, std::nullopt, payload)).ok());

  std::atomic<bool> filling{true};
  // The latest 2^20 samples: the whole fill's worth at any speed.
  constexpr size_t kMaxProbes = size_t{1} << 20;
  std::vector<double> probe_us(kMaxProbes);
  size_t probes = 0;
  std::thread prober([&] {
    while (filling.load()) {
      const Clock::time_point t0 = Clock::now();
      EXPECT_EQ(store->Lookup(probe_ns, absl::MakeConstSpan(&probe_key, 1)).num_present, 1u);
      probe_us[probes++ % kMaxProbes] =
          std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    }
  });
  const Clock::time_point start = Clock::now();
  for (size_t i = 0; i < kBlocks; ++i) {
    absl::StatusOr<PutOutcome> put =
        store->Put(MakeBlock(BlockId{ns, keys[i]}, std::nullopt, payload));
    EXPECT_TRUE(put.ok()) << put.status();
    if (!put.ok()) break;
  }
  Figures f;
  f.insert_s = std::chrono::duration<double>(Clock::now() - start).count();
  filling = false;
  prober.join();
  // Evenly spread, every shard has room: nothing was evicted, every block is there.
  const StoreStats stats = store->GetStoreStats();
  EXPECT_EQ(stats.ram.evictions, 0u) << shared << " shared bytes, " << policy;
  EXPECT_EQ(stats.ram.blocks, kBlocks + 1) << shared << " shared bytes, " << policy;
  EXPECT_EQ(store->Lookup(ns, keys).num_present, kBlocks);
  probe_us.resize(std::min(probes, kMaxProbes));
  std::sort(probe_us.begin(), probe_us.end());
  if (!probe_us.empty()) {
    f.lookup_p50_us = probe_us[probe_us.size() / 2];
    f.lookup_p99_us = probe_us[(probe_us.size() - 1) * 99 / 100];
  }
  return f;
}

TEST(HashFloodingTest, CollidingKeysAreStoredLikeRandomOnes) {
  for (const std::string policy : {"lru", "prefix-lfu"}) {
    const Figures random = Flood(0, policy);
    for (size_t shared : {size_t{8}, size_t{16}}) {
      const Figures colliding = Flood(shared, policy);
      std::printf(
          "%s: %zu blocks, first %zu bytes shared: insert %.3f s (random keys %.3f s, %.2fx); "
          "another client's Lookup meanwhile p50 %.1f us p99 %.1f us (random: p50 %.1f us "
          "p99 %.1f us, p99 %.2fx)\n",
          policy.c_str(), kBlocks, shared, colliding.insert_s, random.insert_s,
          colliding.insert_s / random.insert_s, colliding.lookup_p50_us,
          colliding.lookup_p99_us, random.lookup_p50_us, random.lookup_p99_us,
          random.lookup_p99_us > 0 ? colliding.lookup_p99_us / random.lookup_p99_us : 0.0);
    }
  }
}

}  // namespace
}  // namespace kvcache
