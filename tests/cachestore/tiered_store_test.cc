#include "cachestore/block_store.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

class TieredStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<TieredStore> Open(uint64_t ram_blocks, uint64_t disk_blocks) {
    TieredStoreOptions o;
    o.ram.capacity_bytes = ram_blocks * ChargeOf(kSize);
    o.disk = DiskTierOptions{};
    o.disk->path = dir_.Sub("db");
    o.disk->capacity_bytes = disk_blocks * ChargeOf(kSize);
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
