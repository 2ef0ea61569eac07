// ChainedBlocks (client/cache_client.h): the Put list for the uncached part of a chain.

#include <gtest/gtest.h>

#include <vector>

#include "client/cache_client.h"

namespace kvcache {
namespace {

std::vector<Key> Chain(int n) {
  std::vector<Key> keys(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) keys[i].bytes[0] = static_cast<uint8_t>(i + 1);
  return keys;
}

TEST(ChainedBlocksTest, EachBlockNamesTheKeyBeforeItAsParent) {
  const std::vector<Key> chain = Chain(4);
  const std::vector<CacheBlock> blocks = ChainedBlocks(chain, 0);
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_FALSE(blocks[0].parent.has_value());
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_EQ(blocks[i].key, chain[i]) << i;
    if (i > 0) {
      EXPECT_EQ(blocks[i].parent, chain[i - 1]) << i;
    }
    EXPECT_TRUE(blocks[i].payload.empty()) << i;
  }
}

TEST(ChainedBlocksTest, ATailKeepsItsLinkToTheCachedPrefix) {
  const std::vector<Key> chain = Chain(5);
  const std::vector<CacheBlock> blocks = ChainedBlocks(chain, 3);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].key, chain[3]);
  EXPECT_EQ(blocks[0].parent, chain[2]);
  EXPECT_EQ(blocks[1].parent, chain[3]);
}

TEST(ChainedBlocksTest, NothingPastTheEnd) {
  const std::vector<Key> chain = Chain(2);
  EXPECT_TRUE(ChainedBlocks(chain, 2).empty());
  EXPECT_TRUE(ChainedBlocks(chain, 7).empty());
  EXPECT_TRUE(ChainedBlocks({}, 0).empty());
}

}  // namespace
}  // namespace kvcache
