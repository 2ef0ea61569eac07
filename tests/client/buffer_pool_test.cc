#include "client/buffer_pool.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kvcache {
namespace {

TEST(BufferPoolTest, GivenBuffersAreTakenAgain) {
  BufferPool pool(10 << 20);
  std::string a = pool.Take(256 << 10);
  EXPECT_EQ(a.size(), 256u << 10);
  const char* memory = a.data();
  pool.Give(std::move(a));
  EXPECT_GE(pool.stats().pooled_bytes, 256u << 10);
  // A smaller or equal request reuses the same memory.
  std::string b = pool.Take(200 << 10);
  EXPECT_EQ(b.size(), 200u << 10);
  EXPECT_EQ(b.data(), memory);
  EXPECT_EQ(pool.stats().reused, 1u);
  EXPECT_EQ(pool.stats().pooled_bytes, 0u);
  // A larger one than any pooled buffer allocates.
  pool.Give(std::move(b));
  std::string c = pool.Take(1 << 20);
  EXPECT_EQ(c.size(), 1u << 20);
  EXPECT_EQ(pool.stats().allocated, 2u);
}

TEST(BufferPoolTest, KeepsNoMoreThanItsCapacity) {
  BufferPool pool(1 << 20);
  for (int i = 0; i < 8; ++i) pool.Give(std::string(256 << 10, 'x'));
  EXPECT_LE(pool.stats().pooled_bytes, 1u << 20);
  EXPECT_GE(pool.stats().pooled_bytes, 768u << 10);
  pool.Give(std::string(10, 'x'));  // Too small to be worth keeping.
  EXPECT_LE(pool.stats().pooled_bytes, 1u << 20);
}

TEST(BufferPoolTest, ManyThreads) {
  BufferPool pool(64 << 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < 200; ++i) {
        std::string s = pool.Take((64 + t) << 10);
        s[0] = static_cast<char>(i);
        pool.Give(std::move(s));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const BufferPool::Stats stats = pool.stats();
  EXPECT_EQ(stats.reused + stats.allocated, 800u);
  EXPECT_LE(stats.allocated, 16u);  // At most a few buffers per thread ever made.
}

}  // namespace
}  // namespace kvcache
