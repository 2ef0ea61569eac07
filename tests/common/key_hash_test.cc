// The index hash (common/key.h): keyed, over every byte of the namespace and key, so keys a
// client chooses to share any fixed bytes still spread over shards and hash-map slots.
// Deterministic properties only; tests/cachestore/hash_flooding_test.cc prints the timings.

#include <cstring>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "common/key.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;

// Key `n` with bytes [from, to) overwritten by a constant: what a flooding client sends.
Key Colliding(uint64_t n, size_t from, size_t to) {
  Key k = TestKey(n);
  std::memset(k.bytes.data() + from, 0xc5, to - from);
  return k;
}

TEST(IndexHashTest, EveryByteOfTheKeyAndNamespaceCounts) {
  const Key base = TestKey(1);
  const Key ns = TestKey(2);
  for (size_t i = 0; i < kKeyBytes; ++i) {
    for (uint8_t bit = 1; bit != 0; bit = static_cast<uint8_t>(bit << 1)) {
      Key k = base;
      k.bytes[i] ^= bit;
      EXPECT_NE(IndexHash(k), IndexHash(base)) << "byte " << i;
      EXPECT_NE(IndexHash(BlockId{ns, k}), IndexHash(BlockId{ns, base})) << "key byte " << i;
      EXPECT_NE(absl::Hash<Key>()(k), absl::Hash<Key>()(base)) << "byte " << i;
      Key other_ns = ns;
      other_ns.bytes[i] ^= bit;
      EXPECT_NE(IndexHash(BlockId{other_ns, base}), IndexHash(BlockId{ns, base}))
          << "namespace byte " << i;
    }
  }
}

TEST(IndexHashTest, IsKeyedWithANonZeroSeed) {
  // Not XXH3 with seed 0 (what an attacker could compute offline); stable within the process.
  EXPECT_NE(IndexHashSeed(), 0u);
  EXPECT_EQ(IndexHash(TestKey(5)), IndexHash(TestKey(5)));
}

// The keys of a flood: 100,000 sharing their first 16 bytes (both the bytes the old map
// hash used, 0-8, and the old shard bytes, 8-16), or their first 8 only.
TEST(IndexHashTest, CollidingKeysGetDistinctHashesAndEvenShards) {
  const Key ns = TestKey(9);
  for (size_t shared : {size_t{8}, size_t{16}, size_t{24}}) {
    constexpr size_t kKeys = 100000;
    constexpr size_t kShards = 16;
    absl::flat_hash_set<uint64_t> hashes;
    absl::flat_hash_set<size_t> absl_hashes;
    std::vector<size_t> per_shard(kShards, 0);
    for (uint64_t n = 0; n < kKeys; ++n) {
      const BlockId id{ns, Colliding(n, 0, shared)};
      hashes.insert(IndexHash(id));
      absl_hashes.insert(absl::Hash<BlockId>()(id));
      ++per_shard[IndexShard(IndexHash(id), kShards)];
    }
    // 64-bit hashes of 10^5 distinct inputs: a single collision has odds of ~3e-10.
    EXPECT_GE(hashes.size(), kKeys - 1) << shared << " shared bytes";
    EXPECT_GE(absl_hashes.size(), kKeys - 1) << shared << " shared bytes";
    // 6,250 expected per shard, standard deviation ~77: +-20% is over 16 deviations.
    for (size_t s = 0; s < kShards; ++s) {
      EXPECT_GT(per_shard[s], kKeys / kShards * 8 / 10) << "shard " << s << ", " << shared;
      EXPECT_LT(per_shard[s], kKeys / kShards * 12 / 10) << "shard " << s << ", " << shared;
    }
  }
}

}  // namespace
}  // namespace kvcache
