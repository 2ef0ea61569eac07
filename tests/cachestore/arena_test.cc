// The RAM tier's payload arena (cachestore/arena.h): one region faulted in ahead of use,
// carved into chunks by size class, recycled when blocks are freed, malloc when full.

#include "cachestore/arena.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kvcache {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

ArenaOptions Options(size_t capacity, bool prefault) {
  ArenaOptions o;
  o.capacity_bytes = capacity;
  o.prefault = prefault;
  return o;
}

// A payload's buffer goes back to its source exactly once, when its last holder lets go,
// whether holders are destroyed, moved from or assigned over; Share adds a holder without a
// copy, Leak and Adopt hand one over through a bare pointer.
TEST(PayloadTest, HoldersShareTheBytesAndTheLastGivesThemBackOnce) {
  struct CountingSource : PayloadSource {
    int refs = 0;
    int released = 0;
    void Ref(const char*) override { ++refs; }
    void Unref(char* data, size_t) override {
      if (--refs > 0) return;
      ++released;
      delete[] data;
    }
    size_t SizeOf(const char*) const override { return 10; }
  } source;
  {
    source.refs = 1;
    Payload p = Payload::FromSource(new char[10], 10, &source);
    EXPECT_EQ(p.source(), &source);
    Payload moved = std::move(p);
    EXPECT_EQ(p.size(), 0u);  // NOLINT: moved-from is empty.
    EXPECT_EQ(moved.size(), 10u);
    Payload copy = moved;  // A heap copy, not the source's.
    EXPECT_EQ(copy.source(), HeapPayloads::Get());
    EXPECT_EQ(copy, moved);
    EXPECT_NE(copy.data(), moved.data());
    Payload shared = moved.Share();  // The same bytes.
    EXPECT_EQ(shared.data(), moved.data());
    EXPECT_EQ(source.refs, 2);
    char* bare = shared.Leak();
    EXPECT_TRUE(shared.empty());
    EXPECT_EQ(source.refs, 2);  // Still held, through `bare`.
    moved = Payload(absl::string_view("abc"));  // One holder left.
    EXPECT_EQ(source.released, 0);
    EXPECT_EQ(moved, absl::string_view("abc"));
    Payload adopted = Payload::Adopt(bare, &source);
    EXPECT_EQ(adopted.size(), 10u);
  }
  EXPECT_EQ(source.released, 1);
  EXPECT_EQ(source.refs, 0);

  // The heap's buffers count their holders too.
  Payload heap(absl::string_view("heap bytes"));
  {
    Payload other = heap.Share();
    EXPECT_EQ(other.data(), heap.data());
    EXPECT_EQ(HeapPayloads::Get()->SizeOf(other.data()), 10u);
  }
  EXPECT_EQ(heap, absl::string_view("heap bytes"));

  Payload empty;  // Like a string, data() is never null, so memcpy(data(), p, 0) is fine.
  EXPECT_NE(empty.data(), nullptr);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty, absl::string_view());
  EXPECT_TRUE(empty.Share().empty());
}

TEST(ArenaTest, PrefaultsTheRegionThenServesWarmChunks) {
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(Options(8 * kMiB, true));
  arena->WaitUntilPrefaulted();
  ArenaStats s = arena->Stats();
  EXPECT_EQ(s.capacity_bytes, 8 * kMiB);
  EXPECT_EQ(s.prefaulted_bytes, 8 * kMiB);
  EXPECT_EQ(s.resident_bytes, 8 * kMiB);

  std::vector<std::shared_ptr<Block>> blocks;
  for (int i = 0; i < 32; ++i) {  // 256 KiB chunks fill 8 MiB exactly.
    blocks.push_back(arena->NewBlock(256 << 10));
    ASSERT_EQ(blocks.back()->payload.size(), 256u << 10);
    EXPECT_TRUE(arena->Owns(blocks.back()));
    blocks.back()->payload[i] = 'x';
  }
  s = arena->Stats();
  EXPECT_EQ(s.warm_takes, 32u);
  EXPECT_EQ(s.cold_takes, 0u);
  EXPECT_EQ(s.heap_takes, 0u);
  EXPECT_EQ(s.held_bytes, 8 * kMiB);

  // Full: the next payload comes from malloc, and is not the arena's.
  std::shared_ptr<Block> extra = arena->NewBlock(256 << 10);
  EXPECT_EQ(extra->payload.size(), 256u << 10);
  EXPECT_FALSE(arena->Owns(extra));
  EXPECT_EQ(arena->Stats().heap_takes, 1u);
}

// A chunk goes back when its last holder lets go, whether a Block or a shared Payload.
TEST(ArenaTest, FreedBlocksGiveTheirChunksBack) {
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(Options(4 * kMiB, false));
  std::shared_ptr<Block> block = arena->NewBlock(100000);  // Class: 100000 rounded to 4 KiB.
  EXPECT_EQ(arena->Stats().cold_takes, 1u);  // Nothing was faulted in ahead.
  EXPECT_EQ(arena->Stats().held_bytes, 102400u);
  const char* memory = block->payload.data();
  BlockPtr reader = block;  // A reader holds the block after it is dropped elsewhere.
  Payload shared = block->payload.Share();  // And another holder of the bytes alone.
  EXPECT_EQ(arena->Stats().held_bytes, 102400u);  // Shared, not taken again.
  EXPECT_EQ(shared.data(), block->payload.data());
  block.reset();
  EXPECT_EQ(arena->Stats().held_bytes, 102400u);
  reader.reset();
  EXPECT_EQ(arena->Stats().held_bytes, 102400u);
  EXPECT_EQ(shared.source()->SizeOf(shared.data()), 100000u);
  shared = Payload();
  EXPECT_EQ(arena->Stats().held_bytes, 0u);
  std::shared_ptr<Block> again = arena->NewBlock(99000);  // Same class.
  EXPECT_EQ(again->payload.data(), memory);
  EXPECT_EQ(again->payload.size(), 99000u);
  EXPECT_EQ(arena->Stats().warm_takes, 1u);
}

TEST(ArenaTest, AdoptCopiesForeignBlocksInAndKeepsItsOwn) {
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(Options(4 * kMiB, false));
  BlockPtr own = arena->NewBlock(8192);
  EXPECT_EQ(arena->Adopt(own), own);

  BlockPtr foreign = MakeBlock(BlockId{Key{}, Key{}}, std::nullopt, std::string(10000, 'k'));
  BlockPtr adopted = arena->Adopt(foreign);
  ASSERT_NE(adopted, foreign);
  EXPECT_EQ(adopted->payload, foreign->payload);
  EXPECT_EQ(adopted->meta.checksum, foreign->meta.checksum);
  EXPECT_EQ(arena->Stats().held_bytes, 8192u + 12288u);  // Both classes, 4 KiB rounded.
  EXPECT_EQ(arena->Adopt(adopted), adopted);
  EXPECT_TRUE(arena->Owns(own));
  EXPECT_TRUE(arena->Owns(adopted));
  EXPECT_FALSE(arena->Owns(foreign));
  // Another arena's block is foreign here: adopting it copies it in.
  std::shared_ptr<PayloadArena> other = PayloadArena::Create(Options(4 * kMiB, false));
  BlockPtr theirs = other->NewBlock(4096);
  EXPECT_FALSE(arena->Owns(theirs));
  EXPECT_NE(arena->Adopt(theirs), theirs);
  adopted.reset();
  EXPECT_EQ(arena->Stats().held_bytes, 8192u);
}

// A region full of one size, once freed, serves another: empty slabs go back to the pages.
TEST(ArenaTest, EmptySlabsServeOtherSizes) {
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(Options(4 * kMiB, false));
  std::vector<std::shared_ptr<Block>> small;
  for (int i = 0; i < 16; ++i) small.push_back(arena->NewBlock(256 << 10));
  EXPECT_EQ(arena->Stats().heap_takes, 0u);
  std::shared_ptr<Block> big = arena->NewBlock(kMiB + 1);
  EXPECT_FALSE(arena->Owns(big));  // No room: malloc's.
  big.reset();
  small.clear();
  big = arena->NewBlock(kMiB + 1);
  EXPECT_TRUE(arena->Owns(big));
  std::shared_ptr<Block> big2 = arena->NewBlock(kMiB + 1);
  EXPECT_TRUE(arena->Owns(big2));
  EXPECT_EQ(arena->Stats().heap_takes, 1u);
  EXPECT_EQ(arena->Stats().held_bytes, 2 * (kMiB + 4096));
}

// Chunks of many sizes, held and freed at random, never overlap: each keeps its own bytes.
TEST(ArenaTest, ChunksOfMixedSizesNeverOverlap) {
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(Options(16 * kMiB, true));
  std::mt19937_64 rng(7);
  struct Held {
    std::shared_ptr<Block> block;
    char fill;
  };
  std::vector<Held> held;
  for (int i = 0; i < 3000; ++i) {
    if (held.size() > 8 || (!held.empty() && rng() % 3 == 0)) {
      const size_t victim = rng() % held.size();
      const Held& h = held[victim];
      ASSERT_EQ(h.block->payload.view(), std::string(h.block->payload.size(), h.fill)) << i;
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(victim));
    }
    const size_t size = 1 + rng() % kMiB;
    Held h{arena->NewBlock(size), static_cast<char>('a' + i % 26)};
    std::memset(h.block->payload.data(), h.fill, size);
    held.push_back(std::move(h));
  }
  for (const Held& h : held) {
    EXPECT_EQ(h.block->payload.view(), std::string(h.block->payload.size(), h.fill));
  }
  const ArenaStats s = arena->Stats();
  EXPECT_GT(s.warm_takes + s.cold_takes, 1500u);  // Most came from the region.
  EXPECT_LE(s.held_bytes, s.capacity_bytes);
}

TEST(ArenaTest, BlocksOutliveTheArena) {
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(Options(4 * kMiB, true));
  std::shared_ptr<Block> survivor = arena->NewBlock(1000);
  ASSERT_TRUE(arena->Owns(survivor));
  arena.reset();
  survivor->payload[999] = 'y';  // Still mapped: the block holds the region.
  EXPECT_EQ(survivor->payload[999], 'y');
  survivor.reset();
}

// The "THPeligible" field of /proc/self/smaps for the mapping holding `address`; -1 if none.
int ThpEligible(const void* address) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const uintptr_t a = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  while (std::getline(in, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= a && a < end;
      continue;
    }
    if (inside && line.rfind("THPeligible:", 0) == 0) return std::stoi(line.substr(12));
  }
  return -1;
}

bool KernelOffersHugePages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  return line.find("[always]") != std::string::npos || line.find("[madvise]") != std::string::npos;
}

TEST(ArenaTest, TheRegionIsAdvisedForHugePagesUnlessToldNot) {
  ArenaOptions o = Options(8 * kMiB, false);
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(o);
  std::shared_ptr<Block> block = arena->NewBlock(4096);
  EXPECT_EQ(arena->Stats().huge_pages, KernelOffersHugePages());
  if (KernelOffersHugePages()) EXPECT_EQ(ThpEligible(block->payload.data()), 1);

  o.huge_pages = false;
  std::shared_ptr<PayloadArena> plain = PayloadArena::Create(o);
  std::shared_ptr<Block> plain_block = plain->NewBlock(4096);
  EXPECT_FALSE(plain->Stats().huge_pages);
  // Under "madvise" an unadvised mapping is not eligible; under "always" every one is.
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(in, mode);
  if (mode.find("[madvise]") != std::string::npos) {
    EXPECT_EQ(ThpEligible(plain_block->payload.data()), 0);
  }
}

}  // namespace
}  // namespace kvcache
