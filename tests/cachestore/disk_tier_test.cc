#include <atomic>

#include "absl/time/clock.h"

#include "cachestore/block_store.h"
#include "cachestore/disk_tier_internal.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/file_system.h"
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

// A disk that refuses every write while `failing` is set (as a full or failing disk does);
// reads still work.
class FailingFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  FailingFileSystem() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FailingFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }

  std::atomic<bool> failing{false};

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, FailingFileSystem* fs)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->failing) return rocksdb::IOStatus::NoSpace("injected: disk full");
      return FSWritableFileOwnerWrapper::Append(data, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->failing) return rocksdb::IOStatus::NoSpace("injected: disk full");
      return FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
    }

   private:
    FailingFileSystem* const fs_;
  };
};

TEST_F(DiskTierTest, FailedWritesAreReportedCountedAndErasesSurviveThem) {
  auto fs = std::make_shared<FailingFileSystem>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  DiskTierOptions o;
  o.path = dir_.Sub("db");
  {
    absl::StatusOr<std::unique_ptr<BlockStore>> tier = internal::NewDiskTierOnEnv(o, env.get());
    ASSERT_TRUE(tier.ok()) << tier.status();
    for (uint64_t i = 0; i < 3; ++i) {
      ASSERT_TRUE((*tier)->Put(MakeBlock(Id(i), std::nullopt, TestPayload(2000, i))).ok());
    }
    fs->failing = true;
    // A Put the disk refuses is an error to its caller, and not stored.
    absl::StatusOr<PutOutcome> put =
        (*tier)->Put(MakeBlock(Id(9), std::nullopt, TestPayload(2000, 9)));
    EXPECT_TRUE(absl::IsInternal(put.status())) << put.status();
    EXPECT_FALSE((*tier)->Contains(Id(9)));
    // An erase the disk refuses still leaves the index, and is counted.
    EXPECT_TRUE((*tier)->Erase(Id(0)));
    EXPECT_FALSE((*tier)->Contains(Id(0)));
    EXPECT_EQ((*tier)->Stats().write_errors, 2u);
    // The disk comes back. RocksDB recovers from a full disk in the background; once it
    // has, writes succeed again and the first one also carries the erase that failed.
    fs->failing = false;
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    absl::StatusOr<PutOutcome> retried;
    do {
      retried = (*tier)->Put(MakeBlock(Id(5), std::nullopt, TestPayload(2000, 5)));
      if (!retried.ok()) absl::SleepFor(absl::Milliseconds(50));
    } while (!retried.ok() && absl::Now() < give_up);
    ASSERT_TRUE(retried.ok()) << retried.status();
    const uint64_t errors = (*tier)->Stats().write_errors;
    EXPECT_TRUE((*tier)->Erase(Id(1)));
    EXPECT_EQ((*tier)->Stats().write_errors, errors);
  }
  // After a restart, neither erased block comes back; the others are intact.
  auto tier = Open();
  EXPECT_FALSE(tier->Contains(Id(0)));
  EXPECT_FALSE(tier->Contains(Id(1)));
  EXPECT_FALSE(tier->Contains(Id(9)));
  EXPECT_EQ((*tier->Get(Id(2)))->payload, TestPayload(2000, 2));
  EXPECT_EQ((*tier->Get(Id(5)))->payload, TestPayload(2000, 5));
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
