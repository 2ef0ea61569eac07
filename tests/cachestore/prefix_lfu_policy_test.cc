#include "cachestore/prefix_lfu_policy.h"

#include <algorithm>
#include <set>

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

TEST(PrefixLfuPolicyTest, IsRegistered) {
  const std::vector<std::string> names = EvictionPolicyNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "prefix-lfu"), names.end());
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> p = NewEvictionPolicy("prefix-lfu");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Name(), "prefix-lfu");
}

TEST(PrefixLfuPolicyTest, EvictsAChainFromItsTail) {
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(0));
  for (uint64_t i = 1; i < 4; ++i) p->OnInsert(Entry(i, i - 1));
  for (uint64_t i = 4; i-- > 0;) EXPECT_EQ(Pop(*p), Id(i));
  EXPECT_FALSE(p->PopVictim().has_value());
}

TEST(PrefixLfuPolicyTest, LeavesGoBeforeTheirParentsWhateverTheirCounts) {
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  for (int i = 0; i < 5; ++i) p->OnAccess(Id(2));  // The child is far more used...
  EXPECT_EQ(Pop(*p), Id(2));                       // ...but its parent holds it up.
  EXPECT_EQ(Pop(*p), Id(1));
}

TEST(PrefixLfuPolicyTest, AChildStoredBeforeItsParentStillHoldsItUp) {
  // A disk index rebuilt in write order, or a parent stored again after its eviction.
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(1));
  EXPECT_EQ(Pop(*p), Id(2));
  EXPECT_EQ(Pop(*p), Id(1));
}

TEST(PrefixLfuPolicyTest, FrequentlyReusedBlocksSurviveAScan) {
  // 10 hot blocks, re-read once per 20 inserts of never-reused blocks, in a cache of 20:
  // LRU loses them to the scan between two reads; prefix-lfu keeps them.
  constexpr uint64_t kCapacity = 20, kHot = 10;
  for (const char* name : {"lru", "prefix-lfu"}) {
    std::unique_ptr<EvictionPolicy> p = *NewEvictionPolicy(name);
    std::set<uint64_t> cached;
    uint64_t hot_misses = 0;
    auto insert = [&](uint64_t n) {
      if (cached.size() >= kCapacity) {
        std::optional<Victim> v = p->PopVictim();
        ASSERT_TRUE(v.has_value());
        for (auto it = cached.begin(); it != cached.end(); ++it) {
          if (Id(*it) == v->id) {
            cached.erase(it);
            break;
          }
        }
      }
      p->OnInsert(Entry(n));
      cached.insert(n);
    };
    for (uint64_t round = 0; round < 50; ++round) {
      for (uint64_t h = 0; h < kHot; ++h) {
        if (cached.count(h)) {
          p->OnAccess(Id(h));
        } else {
          if (round > 0) ++hot_misses;
          insert(h);
        }
      }
      for (uint64_t s = 0; s < kCapacity; ++s) insert(1000 + round * kCapacity + s);
    }
    if (std::string(name) == "lru") {
      EXPECT_GT(hot_misses, 400u) << name;
    } else {
      EXPECT_LE(hot_misses, 10u) << name;  // At most the first round's worth.
    }
  }
}

// Drives a policy as a cache of `capacity` blocks would: Request() is a hit or an insert.
class PolicyCache {
 public:
  PolicyCache(std::unique_ptr<EvictionPolicy> policy, size_t capacity)
      : policy_(std::move(policy)), capacity_(capacity) {}

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

TEST(PrefixLfuPolicyTest, StaysCloseToLruWhereRecencyIsRight) {
  // A working set of 15 blocks, read round robin, one member replaced every 15 steps, among
  // a stream of never-reused blocks, in a cache of 40: LRU keeps the working set and misses
  // only each new member's first read. Evicting the newest block first would also evict
  // each new member before its second read; the miniature simulation of both orders and the
  // history of evicted blocks keep prefix-lfu within a few percent of LRU.
  PolicyCache lru(NewLruPolicy(), 40), plfu(NewPrefixLfuPolicy(), 40);
  std::vector<uint64_t> working(15);
  for (uint64_t s = 0; s < 15; ++s) working[s] = s;
  uint64_t next = 15;
  for (uint64_t t = 0; t < 3000; ++t) {
    if (t % 15 == 0) working[(t / 15) % 15] = next++;
    for (PolicyCache* c : {&lru, &plfu}) {
      c->Request(1000000 + t);
      c->Request(working[t % 15]);
    }
  }
  EXPECT_GT(lru.hits(), 2700u);
  EXPECT_GE(plfu.hits(), lru.hits() * 95 / 100) << "lru " << lru.hits();
}

TEST(PrefixLfuPolicyTest, ABlockThatComesBackResumesItsCount) {
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(1));
  for (int i = 0; i < 3; ++i) p->OnAccess(Id(1));
  EXPECT_EQ(Pop(*p), Id(1));
  p->OnInsert(Entry(2));
  p->OnInsert(Entry(1));  // Newest, but remembered as used 4 times.
  EXPECT_EQ(Pop(*p), Id(2));
  EXPECT_EQ(Pop(*p), Id(1));
}

TEST(PrefixLfuPolicyTest, DropsDeadTailsAndDemotesPrefixesAndReusedBlocks) {
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(3, 2));
  p->OnAccess(Id(3));
  p->OnInsert(Entry(4, 3));  // The tail, never read again.
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

TEST(PrefixLfuPolicyTest, WithParentsElsewhereDemotesAllAndEvictsOldestFirst) {
  // A sharded tier: each block's parent lives in another shard. No child is ever seen, so
  // "no child" proves nothing: every victim is demoted, and they go oldest first, so a
  // chain spread over shards leaves every shard at about the same time.
  auto p = NewPrefixLfuPolicy();
  for (uint64_t i = 0; i < 5; ++i) p->OnInsert(Entry(100 + i, 1000 + i));
  for (uint64_t i = 0; i < 5; ++i) {
    std::optional<Victim> v = p->PopVictim();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->id, Id(100 + i));
    EXPECT_TRUE(v->worth_demoting);
  }
}

TEST(PrefixLfuPolicyTest, DetachedBlocksGoBeforeAttachedOnes) {
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(7, 6));  // Its parent is not here.
  EXPECT_EQ(Pop(*p), Id(7));
  EXPECT_EQ(Pop(*p), Id(2));
}

TEST(PrefixLfuPolicyTest, EraseReleasesTheParentAndIgnoresUnknownIds) {
  auto p = NewPrefixLfuPolicy();
  p->OnInsert(Entry(1));
  p->OnInsert(Entry(2, 1));
  p->OnInsert(Entry(3));
  p->OnAccess(Id(3));
  p->OnErase(Id(99));
  p->OnErase(Id(2));
  p->OnAccess(Id(2));         // Unknown now: ignored.
  EXPECT_EQ(Pop(*p), Id(1));  // A leaf again, and used less than 3.
  EXPECT_EQ(Pop(*p), Id(3));
  EXPECT_FALSE(p->PopVictim().has_value());
}

TEST(PrefixLfuPolicyTest, ScalesToManyBlocks) {
  // 400k operations over 50k tracked blocks; a policy that scanned its index per call
  // would take billions of steps here (ctest's timeout), this takes a fraction of a second.
  auto p = NewPrefixLfuPolicy();
  constexpr uint64_t kCapacity = 50000;
  uint64_t tracked = 0, popped = 0;
  for (uint64_t n = 0; n < 200000; ++n) {
    if (tracked == kCapacity) {
      ASSERT_TRUE(p->PopVictim().has_value());
      --tracked;
      ++popped;
    }
    p->OnInsert(n % 16 == 0 ? Entry(n) : Entry(n, n - 1));
    ++tracked;
    p->OnAccess(Id(n - n % 16));  // The chain's first block is read with every block.
  }
  EXPECT_EQ(popped, 200000 - kCapacity);
  while (p->PopVictim().has_value()) --tracked;
  EXPECT_EQ(tracked, 0u);
}

}  // namespace
}  // namespace kvcache
