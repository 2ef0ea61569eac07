// The compact index's open-addressing table, against a plain map as the model: tags drawn
// from a tiny range so that runs are long, wrap around the table's end and share tags, which
// is where linear probing's backward-shift deletion and Robin Hood's early stop can go wrong.

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "cachestore/compact_index_internal.h"
#include "gtest/gtest.h"

namespace kvcache {
namespace internal {
namespace {

TEST(FingerprintTableTest, FindsEveryEntryThroughCollidingTags) {
  FingerprintTable table;
  std::map<uint32_t, uint32_t> model;  // slot -> tag
  std::mt19937_64 rng(42);
  uint32_t next_slot = 0;
  for (int step = 0; step < 20000; ++step) {
    const bool insert = model.size() < 50 || (rng() % 3 != 0 && model.size() < 3000);
    if (insert) {
      // Tags near the top of the range too, so that runs wrap to bucket 0; and a third of
      // them spread wider, so that Robin Hood displaces entries of many distances.
      const uint32_t tag = rng() % 3 == 0 ? static_cast<uint32_t>(rng() % 4096)
                                          : static_cast<uint32_t>(rng() % 8) |
                                                (rng() % 2 ? 0xfffffff8u : 0);
      table.Insert(tag, next_slot);
      model[next_slot++] = tag;
    } else {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      ASSERT_TRUE(table.Erase(it->second, it->first));
      EXPECT_FALSE(table.Erase(it->second, it->first));
      model.erase(it);
    }
    if (step % 97 == 0) {
      ASSERT_EQ(table.size(), model.size());
      for (const auto& [slot, tag] : model) {
        const uint32_t s = slot;
        ASSERT_EQ(table.Find(tag, [&](uint32_t found) { return found == s; }), slot);
      }
      EXPECT_EQ(table.Find(3, [](uint32_t) { return false; }), kNoSlot);
    }
  }
}

TEST(FingerprintTableTest, ClearReturnsTheMemory) {
  FingerprintTable table;
  for (uint32_t i = 0; i < 1000; ++i) table.Insert(i * 2654435761u, i);
  EXPECT_GT(table.MemoryBytes(), 1000u * 8);
  table.Clear();
  EXPECT_EQ(table.MemoryBytes(), 0u);
  EXPECT_EQ(table.Find(0, [](uint32_t) { return true; }), kNoSlot);
}

// Past 2 MiB the buckets are mapped in whole huge pages; lookups work the same across a
// resize from calloc'd to mapped memory.
TEST(FingerprintTableTest, LargeTablesAreMappedInHugePages) {
  FingerprintTable table;
  constexpr uint32_t kEntries = 300000;
  for (uint32_t i = 0; i < kEntries; ++i) table.Insert(i * 2654435761u, i);
  EXPECT_EQ(table.MemoryBytes() % HugePageArray<uint64_t>::kHugePage, 0u);
  EXPECT_GE(table.MemoryBytes(), size_t{kEntries} * 8);
  for (uint32_t i = 0; i < kEntries; i += 7) {
    ASSERT_EQ(table.Find(i * 2654435761u, [&](uint32_t s) { return s == i; }), i);
  }
  for (uint32_t i = 0; i < kEntries; i += 2) ASSERT_TRUE(table.Erase(i * 2654435761u, i));
  EXPECT_EQ(table.size(), kEntries / 2);
  EXPECT_EQ(table.Find(3 * 2654435761u, [](uint32_t s) { return s == 3; }), 3u);
  EXPECT_EQ(table.Find(4 * 2654435761u, [](uint32_t s) { return s == 4; }), kNoSlot);
}

struct Linked {
  int value = 0;
  uint32_t prev = kNoSlot;
  uint32_t next = kNoSlot;
};

TEST(SlotArenaTest, ReusesFreedSlotsAndKeepsEntriesInPlace) {
  SlotArena<Linked> slots;
  std::vector<uint32_t> taken;
  for (int i = 0; i < 10000; ++i) {
    taken.push_back(slots.Allocate());
    slots[taken.back()].value = i;
  }
  const Linked* first = &slots[taken[0]];
  for (int i = 0; i < 10000; ++i) EXPECT_EQ(slots[taken[i]].value, i);
  slots.Free(taken[5]);
  EXPECT_EQ(slots[taken[5]].value, 0);
  EXPECT_EQ(slots.Allocate(), taken[5]);
  EXPECT_EQ(&slots[taken[0]], first);  // Growing never moved it.
  EXPECT_EQ(slots.end(), 10000u);
}

TEST(IntrusiveLruTest, OldestIsTheLeastRecentlyTouched) {
  SlotArena<Linked> slots;
  IntrusiveLru<Linked> lru;
  for (int i = 0; i < 4; ++i) lru.PushFront(slots, slots.Allocate());
  EXPECT_EQ(lru.Oldest(), 0u);
  lru.Touch(slots, 0);
  EXPECT_EQ(lru.Oldest(), 1u);
  lru.Unlink(slots, 1);
  EXPECT_EQ(lru.Oldest(), 2u);
  lru.Unlink(slots, 2);
  lru.Unlink(slots, 3);
  EXPECT_EQ(lru.Oldest(), 0u);
  lru.Unlink(slots, 0);
  EXPECT_EQ(lru.Oldest(), kNoSlot);
}

}  // namespace
}  // namespace internal
}  // namespace kvcache
