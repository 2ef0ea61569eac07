#include "cachestore/block_store.h"

#include <atomic>
#include <thread>
#include <vector>

#include "cachestore/arena.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

class TieredStoreTest : public ::testing::Test {
 protected:
  // demotion_queue_bytes 0: demotions on the Put's thread, so counts are exact right after
  // a Put (the background writer has its own tests below).
  std::unique_ptr<TieredStore> Open(uint64_t ram_blocks, uint64_t disk_blocks,
                                    uint64_t demotion_queue_bytes = 0) {
    TieredStoreOptions o;
    o.demotion_queue_bytes = demotion_queue_bytes;
    o.ram.capacity_bytes = ram_blocks * ChargeOf(kSize);
    o.disk = DiskTierOptions{};
    o.disk->path = dir_.Sub("db");
    o.disk->capacity_bytes = disk_blocks * DiskChargeOf(kSize);
    absl::StatusOr<std::unique_ptr<TieredStore>> store = NewTieredStore(o);
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }
  BlockId Id(uint64_t n) const { return BlockId{ns_, TestKey(n)}; }
  BlockPtr Blk(uint64_t n) const {
    return MakeBlock(Id(n), n ? std::optional<Key>(TestKey(n - 1)) : std::nullopt,
                     TestPayload(kSize, n));
  }

  static constexpr size_t kSize = 4096;
  TempDir dir_;
  Key ns_ = TestKey(1, 9);
};

TEST_F(TieredStoreTest, RamVictimsAreDemotedAndPromotedBack) {
  auto store = Open(4, 100);
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  StoreStats s = store->GetStoreStats();
  EXPECT_EQ(s.ram.blocks, 4u);
  EXPECT_LE(s.ram.bytes, s.ram.capacity_bytes);
  EXPECT_EQ(s.ram.evictions, 6u);
  EXPECT_EQ(s.ram.demotions, 6u);
  EXPECT_EQ(s.disk.blocks, 6u);
  // Block 0 lives on disk now; reading it promotes it.
  ASSERT_FALSE(store->Inspect(Id(0))->tier == TierId::kRam);
  absl::StatusOr<BlockPtr> got = store->Get(Id(0));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)->payload, TestPayload(kSize, 0));
  s = store->GetStoreStats();
  EXPECT_EQ(s.disk.hits, 1u);
  EXPECT_EQ(s.ram.misses, 1u);
  EXPECT_EQ(s.ram.promotions, 1u);
  std::optional<BlockInfo> info = store->Inspect(Id(0));
  EXPECT_EQ(info->tier, TierId::kRam);
  EXPECT_TRUE(info->on_disk);  // Promotion copies: a later demotion costs no write.
  EXPECT_LE(s.ram.bytes, s.ram.capacity_bytes);
}

// gRPC Puts and promotions from disk bring blocks made outside the arena: the RAM tier keeps
// arena copies of them, so the arena's capacity bounds what RAM holds (it would otherwise
// pool up to its capacity beside a RAM tier full of heap blocks).
TEST_F(TieredStoreTest, WithAnArenaEveryRamPayloadLivesInIt) {
  TieredStoreOptions o;
  o.demotion_queue_bytes = 0;
  o.ram.capacity_bytes = 4 * ChargeOf(kSize);
  o.ram.arena = true;
  o.disk = DiskTierOptions{};
  o.disk->path = dir_.Sub("db");
  o.disk->capacity_bytes = 100 * DiskChargeOf(kSize);
  std::unique_ptr<TieredStore> store = *NewTieredStore(o);
  ASSERT_NE(store->arena(), nullptr);
  std::vector<BlockPtr> sent;
  for (uint64_t i = 0; i < 10; ++i) {
    sent.push_back(Blk(i));
    ASSERT_TRUE(store->Put(sent.back()).ok());
  }
  EXPECT_EQ(store->arena()->Stats().held_bytes, 4 * kSize);  // The 4 blocks in RAM.
  absl::StatusOr<BlockPtr> got = store->Get(Id(9));
  ASSERT_TRUE(got.ok());
  EXPECT_NE((*got)->payload.data(), sent[9]->payload.data());
  EXPECT_EQ((*got)->payload, sent[9]->payload);

  got = store->Get(Id(0));  // From disk, promoted: RAM still holds 4, all in the arena.
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)->payload, TestPayload(kSize, 0));
  EXPECT_EQ(store->Inspect(Id(0))->tier, TierId::kRam);
  EXPECT_EQ(store->GetStoreStats().ram.promotions, 1u);
  EXPECT_EQ(store->arena()->Stats().held_bytes, 4 * kSize);
}

// What quotas make room with: out of RAM a block is demoted (kept on disk), out of disk it
// is dropped; each counted as its tier's eviction.
TEST_F(TieredStoreTest, EvictFromOneTierDemotesOutOfRamAndDropsOutOfDisk) {
  auto store = Open(10, 100);
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  EXPECT_TRUE(store->EvictFrom(Id(0), TierId::kRam));
  EXPECT_FALSE(store->EvictFrom(Id(0), TierId::kRam));  // Not in RAM any more.
  std::optional<BlockInfo> info = store->Inspect(Id(0));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->tier, TierId::kDisk);
  StoreStats s = store->GetStoreStats();
  EXPECT_EQ(s.ram.blocks, 2u);
  EXPECT_EQ(s.ram.evictions, 1u);
  EXPECT_EQ(s.disk.blocks, 1u);
  EXPECT_EQ(s.ram.demotions, 1u);

  EXPECT_TRUE(store->EvictFrom(Id(0), TierId::kDisk));
  EXPECT_FALSE(store->Contains(Id(0)));
  EXPECT_FALSE(store->EvictFrom(Id(1), TierId::kDisk));  // Only in RAM.
  EXPECT_TRUE(store->Contains(Id(1)));
  s = store->GetStoreStats();
  EXPECT_EQ(s.disk.blocks, 0u);
  EXPECT_EQ(s.disk.evictions, 1u);
  absl::StatusOr<BlockPtr> got = store->Get(Id(2));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)->payload, TestPayload(kSize, 2));
}

TEST_F(TieredStoreTest, BackgroundDemotionsServeQueuedBlocksAndDrain) {
  auto store = Open(4, 100, /*demotion_queue_bytes=*/1 << 20);
  for (uint64_t i = 0; i < 40; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  // Every block is stored at every moment: in RAM, in the queue, or on disk.
  for (uint64_t i = 0; i < 40; ++i) {
    EXPECT_TRUE(store->Contains(Id(i))) << i;
    absl::StatusOr<BlockPtr> got = store->Get(Id(i));
    ASSERT_TRUE(got.ok()) << i << " " << got.status();
    EXPECT_EQ((*got)->payload, TestPayload(kSize, i));
  }
  EXPECT_EQ(store->Lookup(ns_, {TestKey(0), TestKey(1), TestKey(2)}).num_present, 3u);
  store->Flush(TierId::kRam);  // Waits for the queue: everything demoted is on disk.
  const StoreStats s = store->GetStoreStats();
  EXPECT_GE(s.disk.blocks, 36u);
  EXPECT_EQ(s.ram.demotion_failures, 0u);
  for (uint64_t i = 0; i < 36; ++i) EXPECT_TRUE(store->Contains(Id(i))) << i;
}

// Every block stored is found at every moment while victims stream from RAM to the queue
// to disk: one thread puts into a RAM tier of 4 blocks (each Put demotes one), others read
// what was put already. A victim between leaving RAM and reaching the queue used to be a
// miss.
TEST_F(TieredStoreTest, ReadersNeverMissABlockOnItsWayToDisk) {
  for (uint64_t queue : {uint64_t{0}, uint64_t{1} << 20}) {
    TempDir dir;
    TieredStoreOptions o;
    o.demotion_queue_bytes = queue;
    o.ram.capacity_bytes = 4 * ChargeOf(kSize);
    o.ram.num_shard_bits = 0;
    o.disk = DiskTierOptions{};
    o.disk->path = dir.Sub("db");
    o.disk->capacity_bytes = 4000 * DiskChargeOf(kSize);
    o.disk->min_free_bytes = 0;
    absl::StatusOr<std::unique_ptr<TieredStore>> store = NewTieredStore(o);
    ASSERT_TRUE(store.ok()) << store.status();
    constexpr uint64_t kBlocks = 1500;
    std::atomic<uint64_t> stored{0};
    std::atomic<uint64_t> misses{0}, reads{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) {
      readers.emplace_back([&, r] {
        uint64_t x = 0x9E3779B97F4A7C15ull * (r + 1);
        while (stored.load() < kBlocks) {
          const uint64_t n = stored.load();
          if (n == 0) continue;
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          // Mostly the last few: the ones in flight between the tiers.
          const uint64_t i = n - 1 - (x % 8 < 6 ? x % std::min<uint64_t>(n, 6) : x % n);
          ++reads;
          if (!(*store)->Get(Id(i)).ok()) ++misses;
        }
      });
    }
    for (uint64_t i = 0; i < kBlocks; ++i) {
      ASSERT_TRUE((*store)->Put(Blk(i)).ok());
      stored.store(i + 1);
    }
    for (std::thread& t : readers) t.join();
    EXPECT_GT(reads.load(), 0u);
    EXPECT_EQ(misses.load(), 0u) << "of " << reads.load() << " reads, queue " << queue;
  }
}

TEST_F(TieredStoreTest, AFullDemotionQueueIsBackPressureAndCounted) {
  // A queue of one block: most victims find it full and are written by their Put.
  auto store = Open(2, 1000, /*demotion_queue_bytes=*/1);
  for (uint64_t i = 0; i < 300; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  store->Flush(std::nullopt);
  const StoreStats s = store->GetStoreStats();
  EXPECT_GT(s.ram.demotion_waits, 0u);
  EXPECT_EQ(s.ram.demotions, 298u);  // Every victim reached the disk, one way or the other.
}

// A Put of id X racing the demotion of an older X (other bytes) must not leave one version
// in RAM and another on disk. Many threads put their own bytes under few keys into a tiny
// RAM tier; at the end every key's RAM copy (when there is one) must equal its disk copy.
TEST_F(TieredStoreTest, PutRacingDemotionNeverLeavesTwoVersions) {
  for (uint64_t queue : {uint64_t{0}, uint64_t{1} << 20}) {
    TempDir dir;
    TieredStoreOptions o;
    o.ram.capacity_bytes = 3 * ChargeOf(kSize);
    o.ram.num_shard_bits = 0;
    o.demotion_queue_bytes = queue;
    o.disk = DiskTierOptions{};
    o.disk->path = dir.Sub("db");
    o.disk->capacity_bytes = 1000 * DiskChargeOf(kSize);
    std::unique_ptr<TieredStore> store = *NewTieredStore(o);
    constexpr uint64_t kKeys = 16;
    std::vector<std::thread> threads;
    for (uint64_t t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t i = 0; i < 1500; ++i) {
          const uint64_t k = (i * 7 + t * 3) % kKeys;
          store->Put(MakeBlock(Id(k), std::nullopt, TestPayload(kSize, 1000 * (t + 1) + k)))
              .IgnoreError();
          if (i % 3 == 0) store->Get(Id((k + 5) % kKeys)).IgnoreError();
        }
      });
    }
    for (std::thread& th : threads) th.join();
    std::vector<std::string> first(kKeys);
    for (uint64_t k = 0; k < kKeys; ++k) {
      absl::StatusOr<BlockPtr> got = store->Get(Id(k));  // RAM's copy when it has one.
      if (got.ok()) first[k] = std::string((*got)->payload.view());
    }
    store->Flush(TierId::kRam);
    for (uint64_t k = 0; k < kKeys; ++k) {
      absl::StatusOr<BlockPtr> on_disk = store->Get(Id(k));
      if (!on_disk.ok() || first[k].empty()) continue;
      EXPECT_EQ((*on_disk)->payload, first[k]) << "key " << k << ", queue " << queue;
    }
  }
}

TEST_F(TieredStoreTest, DiskEvictsItsLeastRecentlyUsed) {
  auto store = Open(2, 4);
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  StoreStats s = store->GetStoreStats();
  EXPECT_EQ(s.disk.blocks, 4u);
  EXPECT_LE(s.disk.bytes, s.disk.capacity_bytes);
  EXPECT_EQ(s.disk.evictions, 4u);
  EXPECT_FALSE(store->Contains(Id(0)));  // Oldest, dropped from disk.
  EXPECT_TRUE(store->Contains(Id(9)));
}

TEST_F(TieredStoreTest, LookupCountsLeadingPresentKeys) {
  auto store = Open(3, 100);
  std::vector<Key> chain;
  for (uint64_t i = 0; i < 8; ++i) chain.push_back(TestKey(i));
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  LookupResult r = store->Lookup(ns_, chain);
  EXPECT_EQ(r.num_present, 5u);
  EXPECT_EQ(r.num_in_ram, 0u);  // 0 and 1 were demoted: RAM holds 2, 3, 4.
  ASSERT_TRUE(store->Erase(Id(2)));
  EXPECT_EQ(store->Lookup(ns_, chain).num_present, 2u);
  EXPECT_EQ(store->Lookup(TestKey(3, 3), chain).num_present, 0u);  // Other namespace.
  StoreStats s = store->GetStoreStats();
  EXPECT_EQ(s.lookups, 3u);
  EXPECT_EQ(s.lookup_keys, 24u);
  EXPECT_EQ(s.lookup_hits, 7u);
}

TEST_F(TieredStoreTest, RejectsBlocksOverMaxBlockBytes) {
  TieredStoreOptions o;
  o.max_block_bytes = 1000;
  auto store = *NewTieredStore(o);
  auto put = store->Put(MakeBlock(Id(1), std::nullopt, TestPayload(1001, 1)));
  EXPECT_TRUE(absl::IsResourceExhausted(put.status())) << put.status();
  EXPECT_NE(put.status().message().find("--max-block-bytes"), std::string::npos);
}

TEST_F(TieredStoreTest, FlushOneTier) {
  auto store = Open(2, 100);
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  EXPECT_EQ(store->Flush(TierId::kRam), 2u);
  EXPECT_EQ(store->GetStoreStats().ram.blocks, 0u);
  EXPECT_EQ(store->GetStoreStats().disk.blocks, 3u);
  EXPECT_EQ(store->Flush(std::nullopt), 3u);
  EXPECT_EQ(store->Stats().blocks, 0u);
}

TEST_F(TieredStoreTest, DemotedBlocksSurviveRestart) {
  {
    auto store = Open(2, 100);
    for (uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  }
  auto store = Open(2, 100);
  for (uint64_t i = 0; i < 4; ++i) {
    absl::StatusOr<BlockPtr> got = store->Get(Id(i));
    ASSERT_TRUE(got.ok()) << i;
    EXPECT_EQ((*got)->payload, TestPayload(kSize, i));
    EXPECT_EQ((*got)->meta.parent, i ? std::optional<Key>(TestKey(i - 1)) : std::nullopt);
  }
}

}  // namespace
}  // namespace kvcache
