#include "cachestore/reuse_density_policy.h"

#include <algorithm>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;

const Key kNs = TestKey(0, 9);

BlockId Id(uint64_t n) { return BlockId{kNs, TestKey(n)}; }

PolicyEntry Entry(uint64_t n, std::optional<uint64_t> parent = std::nullopt) {
  PolicyEntry e{Id(n), std::nullopt, 100};
  if (parent) e.parent = TestKey(*parent);
  return e;
}

BlockId Pop(EvictionPolicy& p) {
  std::optional<Victim> v = p.PopVictim();
  EXPECT_TRUE(v.has_value());
  return v ? v->id : BlockId{};
}

// Drives a policy as a cache of `capacity` blocks would: Request() is a hit or an insert.
class PolicyCache {
 public:
  PolicyCache(const char* policy, size_t capacity)
      : policy_(*NewEvictionPolicy(policy)), capacity_(capacity) {}

  bool Request(uint64_t n) {
    if (cached_.count(n)) {
      policy_->OnAccess(Id(n));
      ++hits_;
      return true;
    }
    if (cached_.size() >= capacity_) {
      std::optional<Victim> v = policy_->PopVictim();
      EXPECT_TRUE(v.has_value());
      for (auto it = cached_.begin(); v && it != cached_.end(); ++it) {
        if (Id(*it) == v->id) {
          cached_.erase(it);
          break;
        }
      }
    }
    policy_->OnInsert(Entry(n));
    cached_.insert(n);
    return false;
  }
  uint64_t hits() const { return hits_; }

 private:
  std::unique_ptr<EvictionPolicy> policy_;
  size_t capacity_;
  std::set<uint64_t> cached_;
  uint64_t hits_ = 0;
};

TEST(ReuseDensityPolicyTest, IsTheDefault) {
  const std::vector<std::string> names = EvictionPolicyNames();
  EXPECT_EQ(names.front(), "reuse-density");
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> p = NewEvictionPolicy("reuse-density");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Name(), "reuse-density");
}

TEST(ReuseDensityPolicyTest, StatesItsMemoryAndTheTiersChargeIt) {
  const uint64_t extra = EvictionPolicyExtraBytes("reuse-density");
  EXPECT_GT(extra, 200u);  // A node and four remembered keys per block.
  EXPECT_LE(extra, 320u) << "no more than the tier's own per-block overhead";
  EXPECT_EQ(EvictionPolicyExtraBytes("lru"), 0u);
  RamTierOptions o;
  o.capacity_bytes = 3 * (ChargeOf(1000) + extra);
  o.eviction = "reuse-density";
  std::unique_ptr<BlockStore> ram = *NewRamTier(o);
  for (uint64_t n = 0; n < 4; ++n) ASSERT_TRUE(ram->Put(MakeBlock(Id(n), std::nullopt, std::string(1000, 'x'))).ok());
  EXPECT_EQ(ram->Stats().blocks, 3u);
  EXPECT_EQ(ram->Stats().bytes, 3 * (ChargeOf(1000) + extra));
}

TEST(ReuseDensityPolicyTest, EvictsAChainFromItsTail) {
  auto p = NewReuseDensityPolicy();
  p->OnInsert(Entry(0));
  for (uint64_t i = 1; i < 4; ++i) p->OnInsert(Entry(i, i - 1));
  for (uint64_t i = 4; i-- > 0;) EXPECT_EQ(Pop(*p), Id(i));
  EXPECT_FALSE(p->PopVictim().has_value());
}

TEST(ReuseDensityPolicyTest, LeavesGoBeforeTheirParentsWhateverTheirUse) {
  auto p = NewReuseDensityPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  for (int i = 0; i < 5; ++i) p->OnAccess(Id(2));  // The child is far more used...
  p->OnInsert(Entry(3));
  EXPECT_EQ(Pop(*p), Id(2));  // ...but its parent holds it up (3 is the newest: kept).
  EXPECT_EQ(Pop(*p), Id(1));
  EXPECT_EQ(Pop(*p), Id(3));
}

TEST(ReuseDensityPolicyTest, AChildStoredBeforeItsParentStillHoldsItUp) {
  auto p = NewReuseDensityPolicy();
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(1));
  EXPECT_EQ(Pop(*p), Id(2));
  EXPECT_EQ(Pop(*p), Id(1));
}

TEST(ReuseDensityPolicyTest, ACycleOfParentsStillEvicts) {
  // Keys are chosen by clients: two blocks naming each other as parent leave no leaf.
  auto p = NewReuseDensityPolicy();
  p->OnInsert(Entry(1, 2));
  p->OnInsert(Entry(2, 1));
  std::set<uint64_t> popped;
  for (int i = 0; i < 2; ++i) {
    const BlockId id = Pop(*p);
    popped.insert(id == Id(1) ? 1 : id == Id(2) ? 2 : 0);
  }
  EXPECT_EQ(popped, (std::set<uint64_t>{1, 2}));
  EXPECT_FALSE(p->PopVictim().has_value());
}

TEST(ReuseDensityPolicyTest, FrequentlyReusedBlocksSurviveAScan) {
  // 10 hot blocks, re-read once per 20 inserts of never-reused blocks, in a cache of 20:
  // LRU loses them to the scan between two reads; the learned densities keep them once the
  // first scans have shown that once-used blocks do not come back.
  constexpr uint64_t kCapacity = 20, kHot = 10;
  PolicyCache lru("lru", kCapacity), rd("reuse-density", kCapacity);
  for (uint64_t round = 0; round < 50; ++round) {
    for (PolicyCache* c : {&lru, &rd}) {
      for (uint64_t h = 0; h < kHot; ++h) c->Request(h);
      for (uint64_t s = 0; s < kCapacity; ++s) c->Request(1000 + round * kCapacity + s);
    }
  }
  EXPECT_LT(lru.hits(), 10u);
  EXPECT_GT(rd.hits(), 400u) << "of 490 hot reads after the first round";
}

TEST(ReuseDensityPolicyTest, KeepsPartOfALoopLargerThanTheCache) {
  // 200 blocks read round robin through a cache of 100: every block comes back after 200
  // reads, so LRU always evicts the block needed next and never hits. The history (four
  // times the cache) sees the blocks come back, and the densities rise with age towards
  // the reuse distance: the policy keeps a stable part of the loop, as Belady would.
  PolicyCache lru("lru", 100), rd("reuse-density", 100);
  for (uint64_t t = 0; t < 20000; ++t) {
    lru.Request(t % 200);
    rd.Request(t % 200);
  }
  EXPECT_EQ(lru.hits(), 0u);
  EXPECT_GT(rd.hits(), 20000u / 4) << "Belady: almost half";
}

TEST(ReuseDensityPolicyTest, StaysCloseToLruWhereRecencyIsRight) {
  // A working set of 15 blocks, read round robin, one member replaced every 15 steps, among
  // a stream of never-reused blocks, in a cache of 40: LRU keeps the working set and misses
  // only each new member's first read.
  PolicyCache lru("lru", 40), rd("reuse-density", 40);
  std::vector<uint64_t> working(15);
  for (uint64_t s = 0; s < 15; ++s) working[s] = s;
  uint64_t next = 15;
  for (uint64_t t = 0; t < 3000; ++t) {
    if (t % 15 == 0) working[(t / 15) % 15] = next++;
    for (PolicyCache* c : {&lru, &rd}) {
      c->Request(1000000 + t);
      c->Request(working[t % 15]);
    }
  }
  EXPECT_GT(lru.hits(), 2700u);
  EXPECT_GE(rd.hits(), lru.hits() * 95 / 100) << "lru " << lru.hits();
}

TEST(ReuseDensityPolicyTest, DropsDeadTailsAndDemotesPrefixesAndReusedBlocks) {
  auto p = NewReuseDensityPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(3, 2));
  p->OnAccess(Id(3));
  p->OnInsert(Entry(4, 3));  // The tail, never read again.
  p->OnInsert(Entry(9));     // Another request: 4 is no longer the block being stored.
  std::optional<Victim> v = p->PopVictim();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->id, Id(4));
  EXPECT_FALSE(v->worth_demoting);
  for (uint64_t n : {3, 2, 1}) {  // Read again (3) or a prefix (2, 1).
    v = p->PopVictim();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->id, Id(n));
    EXPECT_TRUE(v->worth_demoting) << n;
  }
}

TEST(ReuseDensityPolicyTest, EraseReleasesTheParentAndIgnoresUnknownIds) {
  auto p = NewReuseDensityPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(3));
  p->OnErase(Id(99));
  p->OnErase(Id(2));
  p->OnAccess(Id(2));  // Unknown now: ignored.
  p->OnAccess(Id(3));
  EXPECT_EQ(Pop(*p), Id(1));  // A leaf again, and the least recently used.
  EXPECT_EQ(Pop(*p), Id(3));
  EXPECT_FALSE(p->PopVictim().has_value());
}

TEST(ReuseDensityPolicyTest, ScalesToManyBlocksAndPopsOnlyTrackedLeaves) {
  // 400k operations over 50k tracked blocks (and 200k remembered keys): a policy that
  // scanned its index per call would take billions of steps here.
  auto p = NewReuseDensityPolicy();
  constexpr uint64_t kCapacity = 50000;
  absl::flat_hash_map<BlockId, uint64_t> tracked;  // Id -> block number.
  uint64_t popped = 0;
  for (uint64_t n = 0; n < 200000; ++n) {
    if (tracked.size() == kCapacity) {
      std::optional<Victim> v = p->PopVictim();
      ASSERT_TRUE(v.has_value());
      auto it = tracked.find(v->id);
      ASSERT_NE(it, tracked.end()) << "popped an untracked block at " << n;
      // A leaf: the next block of its chain (if any) went before it.
      const uint64_t m = it->second;
      if ((m + 1) % 16 != 0) EXPECT_FALSE(tracked.contains(Id(m + 1))) << m;
      tracked.erase(it);
      ++popped;
    }
    p->OnInsert(n % 16 == 0 ? Entry(n) : Entry(n, n - 1));
    tracked[Id(n)] = n;
    p->OnAccess(Id(n - n % 16));  // The chain's first block is read with every block.
  }
  EXPECT_EQ(popped, 200000 - kCapacity);
  uint64_t rest = 0;
  while (p->PopVictim().has_value()) ++rest;
  EXPECT_EQ(rest, kCapacity);
}

}  // namespace
}  // namespace kvcache
