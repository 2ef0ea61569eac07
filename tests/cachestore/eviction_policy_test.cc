#include "cachestore/eviction_policy.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;

BlockId Id(uint64_t n) { return BlockId{TestKey(0, 7), TestKey(n)}; }

TEST(LruPolicyTest, EvictsLeastRecentlyUsedFirst) {
  auto lru = NewLruPolicy();
  for (uint64_t i = 0; i < 4; ++i) lru->OnInsert({Id(i), std::nullopt, 10});
  lru->OnAccess(Id(0));
  lru->OnErase(Id(2));
  EXPECT_EQ(lru->PopVictim()->id, Id(1));
  EXPECT_EQ(lru->PopVictim()->id, Id(3));
  EXPECT_EQ(lru->PopVictim()->id, Id(0));
  EXPECT_FALSE(lru->PopVictim().has_value());
}

TEST(EvictionPolicyRegistryTest, KnowsLruAndRejectsUnknownNames) {
  const std::vector<std::string> names = EvictionPolicyNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "lru"), names.end());
  for (const std::string& name : EvictionPolicyNames()) {
    absl::StatusOr<std::unique_ptr<EvictionPolicy>> p = NewEvictionPolicy(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->Name(), name);
  }
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> bad = NewEvictionPolicy("fifo-ish");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_NE(bad.status().message().find("lru"), std::string::npos);
}

}  // namespace
}  // namespace kvcache
