// One suite run against every BlockStore implementation (the RAM tier, the disk tier and
// the tiered store), each with every eviction policy of the registry.

#include <cctype>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cachestore/block_store.h"
#include "cachestore/compact_index_internal.h"
#include "cachestore/eviction_policy.h"
#include "common/checksum.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

// kTieredArena: the tiered store with its RAM-tier arena, blocks made by its NewBlock.
enum class Kind { kRam, kDisk, kTiered, kTieredArena };

using Param = std::tuple<Kind, std::string>;  // The store, and its eviction policy.

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  std::string policy = std::get<1>(info.param);
  for (char& c : policy) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  switch (std::get<0>(info.param)) {
    case Kind::kRam: return "Ram_" + policy;
    case Kind::kDisk: return "Disk_" + policy;
    case Kind::kTiered: return "Tiered_" + policy;
    case Kind::kTieredArena: return "TieredArena_" + policy;
  }
  return "?";
}

class BlockStoreTest : public ::testing::TestWithParam<Param> {
 protected:
  Kind kind() const { return std::get<0>(GetParam()); }
  const std::string& policy() const { return std::get<1>(GetParam()); }
  // What a block of `payload_bytes` costs the store with this policy.
  uint64_t Charge(uint64_t payload_bytes) const {
    const TierId tier = kind() == Kind::kDisk ? TierId::kDisk : TierId::kRam;
    return ChargeOf(payload_bytes, tier) + EvictionPolicyExtraBytes(policy());
  }

  // A store of each kind holding about `capacity` bytes in its first tier.
  std::unique_ptr<BlockStore> Make(uint64_t capacity) {
    switch (kind()) {
      case Kind::kRam: {
        RamTierOptions o;
        o.capacity_bytes = capacity;
        o.eviction = policy();
        return *NewRamTier(o);
      }
      case Kind::kDisk: {
        DiskTierOptions o;
        o.path = dir_.Sub("disk");
        o.capacity_bytes = capacity;
        o.eviction = policy();
        return *NewDiskTier(o);
      }
      case Kind::kTiered:
      case Kind::kTieredArena: {
        TieredStoreOptions o;
        o.ram.capacity_bytes = capacity;
        o.ram.eviction = policy();
        o.ram.arena = kind() == Kind::kTieredArena;
        o.disk = DiskTierOptions{};
        o.disk->eviction = policy();
        o.disk->path = dir_.Sub("tiered");
        o.disk->capacity_bytes = capacity;
        std::unique_ptr<TieredStore> store = *NewTieredStore(o);
        if (o.ram.arena) arena_store_ = store.get();
        return store;
      }
    }
    return nullptr;
  }

  BlockId Id(uint64_t n) const { return BlockId{ns_, TestKey(n)}; }
  BlockPtr Blk(uint64_t n, size_t size = 1000) const {
    if (arena_store_ == nullptr) return MakeBlock(Id(n), std::nullopt, TestPayload(size, n));
    // Received into the arena, as the server's data channel does.
    std::shared_ptr<Block> block = arena_store_->NewBlock(size);
    const std::string payload = TestPayload(size, n);
    std::memcpy(block->payload.data(), payload.data(), size);
    block->meta.id = Id(n);
    block->meta.checksum = PayloadChecksum(block->payload);
    return block;
  }

  TempDir dir_;
  Key ns_ = TestKey(999, 1);
  TieredStore* arena_store_ = nullptr;  // The last kTieredArena store made.
};

TEST_P(BlockStoreTest, HitAndMiss) {
  auto store = Make(1 << 20);
  EXPECT_TRUE(absl::IsNotFound(store->Get(Id(1)).status()));
  ASSERT_EQ(*store->Put(Blk(1)), PutOutcome::kStored);
  absl::StatusOr<BlockPtr> got = store->Get(Id(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->payload, TestPayload(1000, 1));
  EXPECT_TRUE(store->Contains(Id(1)));
  EXPECT_FALSE(store->Contains(Id(2)));
  TierStats s = store->Stats();
  EXPECT_EQ(s.blocks, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.bytes, Charge(1000));
}

TEST_P(BlockStoreTest, PutIsIdempotent) {
  auto store = Make(1 << 20);
  ASSERT_EQ(*store->Put(Blk(1)), PutOutcome::kStored);
  // Same key, other bytes: the first block stays.
  auto other = MakeBlock(Id(1), std::nullopt, TestPayload(1000, 77));
  EXPECT_EQ(*store->Put(other), PutOutcome::kAlreadyPresent);
  EXPECT_EQ((*store->Get(Id(1)))->payload, TestPayload(1000, 1));
  EXPECT_EQ(store->Stats().blocks, 1u);
}

TEST_P(BlockStoreTest, NamespacesAreSeparate) {
  auto store = Make(1 << 20);
  ASSERT_TRUE(store->Put(Blk(1)).ok());
  BlockId other_ns{TestKey(5, 1), TestKey(1)};
  EXPECT_FALSE(store->Contains(other_ns));
  EXPECT_TRUE(absl::IsNotFound(store->Get(other_ns).status()));
}

TEST_P(BlockStoreTest, RejectsChecksumMismatch) {
  auto store = Make(1 << 20);
  auto block = std::make_shared<Block>(*Blk(1));
  block->meta.checksum ^= 1;
  absl::StatusOr<PutOutcome> put = store->Put(block);
  EXPECT_TRUE(absl::IsInvalidArgument(put.status())) << put.status();
  EXPECT_NE(put.status().message().find("checksum"), std::string::npos);
  EXPECT_FALSE(store->Contains(Id(1)));
}

TEST_P(BlockStoreTest, RejectsEmptyPayload) {
  auto store = Make(1 << 20);
  auto put = store->Put(MakeBlock(Id(1), std::nullopt, ""));
  EXPECT_TRUE(absl::IsInvalidArgument(put.status())) << put.status();
}

TEST_P(BlockStoreTest, RejectsBlockLargerThanCapacity) {
  auto store = Make(64 << 10);
  auto put = store->Put(Blk(1, 200 << 10));
  EXPECT_TRUE(absl::IsResourceExhausted(put.status())) << put.status();
  EXPECT_EQ(store->Stats().blocks, 0u);
}

TEST_P(BlockStoreTest, NeverExceedsCapacityAndEvictsByPolicy) {
  const uint64_t capacity = 10 * Charge(1000);
  auto store = Make(capacity);
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  ASSERT_TRUE(store->Get(Id(0)).ok());  // 0 is now the most recent.
  for (uint64_t i = 10; i < 15; ++i) {
    ASSERT_TRUE(store->Put(Blk(i)).ok());
    TierStats s = store->Stats();
    if (kind() != Kind::kTiered && kind() != Kind::kTieredArena) {
      EXPECT_LE(s.bytes, capacity);
    }
  }
  EXPECT_TRUE(store->Contains(Id(0)));  // Touched since: every policy keeps it.
  // The tiered store keeps victims on disk.
  if (kind() != Kind::kTiered && kind() != Kind::kTieredArena) {
    // LRU's victim is the least recently used; other policies choose their own.
    if (policy() == "lru") {
      EXPECT_FALSE(store->Contains(Id(1)));
    }
    EXPECT_EQ(store->Stats().evictions, 5u);
  }
}

TEST_P(BlockStoreTest, EraseAndEraseIf) {
  auto store = Make(1 << 20);
  for (uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(store->Put(Blk(i)).ok());
  EXPECT_TRUE(store->Erase(Id(0)));
  EXPECT_FALSE(store->Erase(Id(0)));
  EXPECT_FALSE(store->Contains(Id(0)));
  const Key other_ns = TestKey(5, 1);
  ASSERT_TRUE(store->Put(MakeBlock({other_ns, TestKey(1)}, std::nullopt, "x")).ok());
  EXPECT_EQ(store->EraseIf([&](const BlockMeta& m) { return m.id.ns == ns_; }), 5u);
  EXPECT_EQ(store->Stats().blocks, 1u);
  EXPECT_EQ(store->Clear(), 1u);
  EXPECT_EQ(store->Stats().blocks, 0u);
  EXPECT_EQ(store->Stats().bytes, 0u);
}

TEST_P(BlockStoreTest, InspectAndList) {
  auto store = Make(1 << 20);
  BlockShape shape{1, 1, 1, 1, 1, 16};  // 32 + 8 * 16 bytes.
  ASSERT_TRUE(store->Put(MakeBlock(Id(1), TestKey(0), std::string(160, 'p'), shape)).ok());
  ASSERT_TRUE(store->Put(Blk(2)).ok());
  std::optional<BlockInfo> info = store->Inspect(Id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->payload_bytes, 160u);
  EXPECT_EQ(info->meta.parent, TestKey(0));
  EXPECT_EQ(info->meta.shape, shape);
  EXPECT_GT(info->last_access_unix_micros, 0);
  EXPECT_FALSE(store->Inspect(Id(3)).has_value());
  EXPECT_EQ(store->List({}, 10).size(), 2u);
  EXPECT_EQ(store->List({}, 1).size(), 1u);
  const Key other_ns = TestKey(5, 1);
  EXPECT_EQ(store->List([&](const BlockMeta& m) { return m.id.ns == other_ns; }, 10).size(), 0u);
  auto only_2 = store->List([&](const BlockMeta& m) { return m.id == Id(2); }, 10);
  ASSERT_EQ(only_2.size(), 1u);
  EXPECT_EQ(only_2[0].payload_bytes, 1000u);
}

// A Get hands out the stored block whole (metadata as Put, the same bytes: the RAM tier
// shares its payload instead of copying it), and what it hands out stays readable after the
// block is evicted and after the store itself is gone. Two namespaces and two shapes live
// side by side (the RAM tier interns them per shard).
TEST_P(BlockStoreTest, AGetIsTheStoredBlockAndOutlivesEvictionAndTheStore) {
  auto store = Make(1 << 20);
  const BlockShape shape{1, 1, 1, 1, 1, 16};  // 32 + 8 * 16 bytes.
  const Key ns2 = TestKey(5, 1);
  BlockPtr put = MakeBlock(Id(1), TestKey(0), std::string(160, 'p'), shape);
  ASSERT_TRUE(store->Put(put).ok());
  ASSERT_TRUE(store->Put(MakeBlock(BlockId{ns2, TestKey(1)}, std::nullopt, "other")).ok());
  absl::StatusOr<BlockPtr> got = store->Get(Id(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->meta.id, Id(1));
  EXPECT_EQ((*got)->meta.parent, TestKey(0));
  EXPECT_EQ((*got)->meta.shape, shape);
  EXPECT_EQ((*got)->meta.checksum, put->meta.checksum);
  EXPECT_EQ((*got)->payload, std::string(160, 'p'));
  if (kind() == Kind::kRam || kind() == Kind::kTiered) {
    EXPECT_EQ((*got)->payload.data(), put->payload.data()) << "the RAM tier copied the payload";
  }
  absl::StatusOr<BlockPtr> other = store->Get(BlockId{ns2, TestKey(1)});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE((*other)->meta.parent.has_value());
  EXPECT_EQ((*other)->meta.shape, BlockShape{});
  EXPECT_EQ((*other)->payload, absl::string_view("other"));

  put.reset();
  ASSERT_TRUE(store->Erase(Id(1)));
  EXPECT_EQ((*got)->payload, std::string(160, 'p'));
  store.reset();
  EXPECT_EQ((*got)->payload, std::string(160, 'p'));
  EXPECT_EQ((*other)->payload, absl::string_view("other"));
}

TEST_P(BlockStoreTest, ConcurrentPutsAndGets) {
  const uint64_t capacity = 64 * ChargeOf(4096);
  auto store = Make(capacity);
  std::vector<std::thread> threads;
  std::atomic<int> corrupt{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 300; ++i) {
        const uint64_t n = (i * 7 + t) % 100;
        store->Put(MakeBlock(Id(n), std::nullopt, TestPayload(4096, n))).IgnoreError();
        absl::StatusOr<BlockPtr> got = store->Get(Id((n * 3) % 100));
        if (got.ok() && (*got)->payload != TestPayload(4096, (n * 3) % 100)) ++corrupt;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0);
  if (kind() != Kind::kTiered && kind() != Kind::kTieredArena) {
    EXPECT_LE(store->Stats().bytes, capacity);
  }
}

// The index keeps a 32-bit fingerprint of each id, not the id: with every fingerprint made
// equal, each lookup has to tell blocks apart by their full id, and must never hand back
// another block or find one never stored.
TEST_P(BlockStoreTest, CollidingFingerprintsNeverReturnAnotherBlock) {
  struct AllTagsEqual {
    AllTagsEqual() { internal::SetIndexTagMaskForTesting(0); }
    ~AllTagsEqual() { internal::SetIndexTagMaskForTesting(0xffffffffu); }
  } all_tags_equal;
  auto store = Make(1 << 20);
  constexpr uint64_t kBlocks = 200;
  for (uint64_t i = 0; i < kBlocks; ++i) ASSERT_EQ(*store->Put(Blk(i, 100)), PutOutcome::kStored);
  for (uint64_t i = 0; i < kBlocks; i += 3) ASSERT_TRUE(store->Erase(Id(i)));
  for (uint64_t i = 0; i < kBlocks; ++i) {
    absl::StatusOr<BlockPtr> got = store->Get(Id(i));
    if (i % 3 == 0) {
      EXPECT_TRUE(absl::IsNotFound(got.status())) << i;
      EXPECT_FALSE(store->Contains(Id(i))) << i;
      continue;
    }
    ASSERT_TRUE(got.ok()) << i << ": " << got.status();
    EXPECT_EQ((*got)->meta.id, Id(i));
    EXPECT_EQ((*got)->payload, TestPayload(100, i));
    ASSERT_TRUE(store->Inspect(Id(i)).has_value());
    EXPECT_EQ(store->Inspect(Id(i))->meta.id, Id(i));
  }
  EXPECT_FALSE(store->Contains(Id(kBlocks + 1)));
  EXPECT_FALSE(store->Contains(BlockId{TestKey(5, 1), TestKey(1)}));  // Same key, other ns.
  EXPECT_EQ(store->Stats().blocks, kBlocks - (kBlocks + 2) / 3);
}

// ContainsEach, which a Lookup asks of the RAM tier for a whole chain at once, answers for
// every key as Contains does and in the caller's order: more keys than its inline buffer,
// present and absent ones interleaved, with real fingerprints and with all of them equal.
TEST_P(BlockStoreTest, ContainsEachAnswersAsContainsDoes) {
  struct TagMask {
    explicit TagMask(uint32_t mask) { internal::SetIndexTagMaskForTesting(mask); }
    ~TagMask() { internal::SetIndexTagMaskForTesting(0xffffffffu); }
  };
  for (uint32_t mask : {0xffffffffu, 0u}) {
    TagMask tags(mask);
    auto store = Make(1 << 20);
    for (uint64_t i = 0; i < 200; i += 2) {
      // Already present on the second pass for the disk tier, which reopens its directory.
      absl::StatusOr<PutOutcome> put = store->Put(Blk(i, 100));
      ASSERT_TRUE(put.ok() && *put != PutOutcome::kNotAdmitted) << i;
    }
    std::vector<Key> keys;
    for (uint64_t i = 0; i < 300; ++i) keys.push_back(TestKey((i * 37) % 300));
    std::unique_ptr<bool[]> found(new bool[keys.size()]);
    store->ContainsEach(ns_, keys, found.get());
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint64_t n = (i * 37) % 300;
      EXPECT_EQ(found[i], n < 200 && n % 2 == 0) << "mask " << mask << ", key " << n;
      EXPECT_EQ(found[i], store->Contains(BlockId{ns_, keys[i]})) << n;
    }
    store->ContainsEach(TestKey(5, 1), keys, found.get());  // The same keys, another namespace.
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_FALSE(found[i]) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllStores, BlockStoreTest,
                         ::testing::Combine(::testing::Values(Kind::kRam, Kind::kDisk,
                                                              Kind::kTiered, Kind::kTieredArena),
                                            ::testing::ValuesIn(EvictionPolicyNames())),
                         ParamName);

}  // namespace
}  // namespace kvcache
