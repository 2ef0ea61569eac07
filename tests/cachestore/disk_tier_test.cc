#include "cachestore/block_store.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

class DiskTierTest : public ::testing::Test {
 protected:
  std::unique_ptr<BlockStore> Open(uint64_t capacity = 1 << 20) {
    DiskTierOptions o;
    o.path = dir_.Sub("db");
    o.capacity_bytes = capacity;
    absl::StatusOr<std::unique_ptr<BlockStore>> tier = NewDiskTier(o);
    EXPECT_TRUE(tier.ok()) << tier.status();
    return *std::move(tier);
  }
  BlockId Id(uint64_t n) const { return BlockId{ns_, TestKey(n)}; }

  // Overwrites the stored payload of `id` behind the tier's back, as a bad disk would.
  void CorruptPayload(const BlockId& id) {
    rocksdb::DB* db;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"meta", {}}, {"blocks", {}}};
    rocksdb::ColumnFamilyOptions blob;
    blob.enable_blob_files = true;
    cfs[2].options = blob;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.Sub("db"), cfs, &handles, &db).ok());
    std::string key(id.ns.view());
    key.append(id.key.view().data(), kKeyBytes);
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), handles[2], key, &value).ok());
    value[value.size() / 2] ^= 0x40;
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[2], key, value).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }

  TempDir dir_;
  Key ns_ = TestKey(4, 4);
};

TEST_F(DiskTierTest, IndexIsRebuiltAtOpen) {
  {
    auto tier = Open();
    for (uint64_t i = 0; i < 20; ++i) {
      ASSERT_TRUE(tier->Put(MakeBlock(Id(i), std::nullopt, TestPayload(3000, i))).ok());
    }
  }
  auto tier = Open();
  TierStats s = tier->Stats();
  EXPECT_EQ(s.blocks, 20u);
  EXPECT_EQ(s.bytes, 20 * ChargeOf(3000));
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_TRUE(tier->Contains(Id(i)));
    EXPECT_EQ((*tier->Get(Id(i)))->payload, TestPayload(3000, i));
  }
}

TEST_F(DiskTierTest, ReopenWithSmallerCapacityTrimsOldestFirst) {
  {
    auto tier = Open();
    for (uint64_t i = 0; i < 10; ++i) {
      ASSERT_TRUE(tier->Put(MakeBlock(Id(i), std::nullopt, TestPayload(1000, i))).ok());
    }
  }
  auto tier = Open(4 * ChargeOf(1000));
  EXPECT_EQ(tier->Stats().blocks, 4u);
  EXPECT_FALSE(tier->Contains(Id(0)));
  EXPECT_TRUE(tier->Contains(Id(9)));
}

TEST_F(DiskTierTest, CorruptBlockIsDroppedCountedAndNeverServed) {
  {
    auto tier = Open();
    ASSERT_TRUE(tier->Put(MakeBlock(Id(1), std::nullopt, TestPayload(5000, 1))).ok());
    ASSERT_TRUE(tier->Put(MakeBlock(Id(2), std::nullopt, TestPayload(5000, 2))).ok());
  }
  CorruptPayload(Id(1));
  auto tier = Open();
  EXPECT_TRUE(tier->Contains(Id(1)));  // The index cannot know before reading.
  absl::StatusOr<BlockPtr> got = tier->Get(Id(1));
  EXPECT_TRUE(absl::IsNotFound(got.status())) << got.status();
  TierStats s = tier->Stats();
  EXPECT_EQ(s.checksum_failures, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_FALSE(tier->Contains(Id(1)));  // Dropped.
  EXPECT_EQ((*tier->Get(Id(2)))->payload, TestPayload(5000, 2));  // Neighbours intact.
}

TEST_F(DiskTierTest, BadPathIsAnError) {
  DiskTierOptions o;
  o.path = "/proc/definitely/not/writable";
  absl::StatusOr<std::unique_ptr<BlockStore>> tier = NewDiskTier(o);
  EXPECT_TRUE(absl::IsInternal(tier.status())) << tier.status();
  o.path = "";
  EXPECT_TRUE(absl::IsInvalidArgument(NewDiskTier(o).status()));
}

}  // namespace
}  // namespace kvcache
