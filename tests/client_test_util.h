// Blocks for tests of the client library and the services: a chain of blocks with
// deterministic keys, payloads and shapes that agree with them.

#ifndef KVCACHE_TESTS_CLIENT_TEST_UTIL_H_
#define KVCACHE_TESTS_CLIENT_TEST_UTIL_H_

#include <cstdint>
#include <vector>

#include "client/cache_client.h"
#include "tests/test_util.h"

namespace kvcache {
namespace testing {

// `n` chained blocks (block i's parent is block i-1) of `size` payload bytes; keys and
// payloads from `seed` onwards.
inline std::vector<CacheBlock> TestChain(size_t n, size_t size, uint64_t seed) {
  std::vector<Key> keys;
  for (size_t i = 0; i < n; ++i) keys.push_back(TestKey(seed + i));
  std::vector<CacheBlock> blocks = ChainedBlocks(keys, 0);
  for (size_t i = 0; i < n; ++i) {
    blocks[i].payload = TestPayload(size, seed + i);
    blocks[i].shape = TestShape(size);
  }
  return blocks;
}

inline std::vector<Key> KeysOf(const std::vector<CacheBlock>& blocks) {
  std::vector<Key> keys;
  for (const CacheBlock& b : blocks) keys.push_back(b.key);
  return keys;
}

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_CLIENT_TEST_UTIL_H_
