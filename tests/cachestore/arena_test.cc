// The RAM tier's payload arena (cachestore/arena.h): faulted in ahead of use, recycled when
// blocks are freed, bounded by its capacity.

#include "cachestore/arena.h"

#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace kvcache {
namespace {

TEST(ArenaTest, PrefaultsUpToItsCapacityThenServesWarmBuffers) {
  ArenaOptions options;
  options.capacity_bytes = 8 << 20;
  options.initial_block_bytes = 256 << 10;
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(options);
  arena->WaitUntilPrefaulted();
  ArenaStats s = arena->Stats();
  EXPECT_EQ(s.pooled_bytes, 8u << 20);  // 32 buffers of 256 KiB.
  EXPECT_EQ(s.prefaulted_bytes, 8u << 20);

  std::vector<std::shared_ptr<Block>> blocks;
  for (int i = 0; i < 32; ++i) {
    blocks.push_back(arena->NewBlock(256 << 10));
    EXPECT_EQ(blocks.back()->payload.size(), 256u << 10);
    blocks.back()->payload[i] = 'x';
  }
  s = arena->Stats();
  EXPECT_EQ(s.warm_takes, 32u);
  EXPECT_EQ(s.cold_takes, 0u);
  EXPECT_EQ(s.held_bytes, 8u << 20);
  EXPECT_EQ(s.pooled_bytes, 0u);
}

TEST(ArenaTest, FreedBlocksGiveTheirBuffersBack) {
  ArenaOptions options;
  options.capacity_bytes = 4 << 20;
  options.prefault = false;
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(options);
  std::shared_ptr<Block> block = arena->NewBlock(100000);  // Class: 100000 rounded to 4 KiB.
  EXPECT_EQ(arena->Stats().cold_takes, 1u);
  const char* memory = block->payload.data();
  BlockPtr reader = block;  // A reader holds the block after it is dropped elsewhere.
  block.reset();
  EXPECT_EQ(arena->Stats().pooled_bytes, 0u);
  reader.reset();
  EXPECT_GT(arena->Stats().pooled_bytes, 0u);
  std::shared_ptr<Block> again = arena->NewBlock(99000);  // Same class.
  EXPECT_EQ(again->payload.data(), memory);
  EXPECT_EQ(again->payload.size(), 99000u);
  EXPECT_EQ(arena->Stats().warm_takes, 1u);
}

TEST(ArenaTest, AdoptCopiesForeignBlocksInAndKeepsItsOwn) {
  ArenaOptions options;
  options.capacity_bytes = 4 << 20;
  options.prefault = false;
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(options);
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
  std::shared_ptr<PayloadArena> other = PayloadArena::Create(options);
  BlockPtr theirs = other->NewBlock(4096);
  EXPECT_FALSE(arena->Owns(theirs));
  EXPECT_NE(arena->Adopt(theirs), theirs);
  adopted.reset();
  EXPECT_EQ(arena->Stats().held_bytes, 8192u);
}

TEST(ArenaTest, StaysWithinItsCapacityAcrossSizesAndOutlivesNothing) {
  ArenaOptions options;
  options.capacity_bytes = 2 << 20;
  options.initial_block_bytes = 64 << 10;
  std::shared_ptr<PayloadArena> arena = PayloadArena::Create(options);
  arena->WaitUntilPrefaulted();
  std::vector<std::shared_ptr<Block>> held;
  for (int i = 0; i < 200; ++i) {
    held.push_back(arena->NewBlock((i % 3 + 1) * (40 << 10)));
    if (held.size() > 8) held.erase(held.begin());
    const ArenaStats s = arena->Stats();
    // Pooled buffers never push the total over the capacity (held ones may, briefly).
    EXPECT_TRUE(s.pooled_bytes == 0 || s.pooled_bytes + s.held_bytes <= (2u << 20)) << i;
  }
  // Blocks may outlive the arena: their buffers are then simply freed.
  std::shared_ptr<Block> survivor = arena->NewBlock(1000);
  arena.reset();
  survivor->payload[0] = 'y';
  survivor.reset();
}

}  // namespace
}  // namespace kvcache
