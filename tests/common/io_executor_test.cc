// common/io_executor.h: every task runs, no more at once than the pool has threads, in the
// order given, tasks may give more, and the destructor runs what was queued.

#include "common/io_executor.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kvcache {
namespace {

TEST(IoExecutorTest, BlockedTasksHoldNoMoreThanThePoolsThreads) {
  IoExecutor pool(3);
  EXPECT_EQ(pool.threads(), 3);
  absl::Notification open;
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i) {
    pool.Run([&] {
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      open.WaitForNotification();
      --running;
      ++done;
    });
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  // Waits on the tasks' own count: the pool counts a task as running once it is dequeued, a
  // moment before its body starts (and notifying in between let one task finish before the
  // third began: `most` 2, seen under TSan).
  while (running.load() < 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(pool.running(), 3u);
  EXPECT_EQ(pool.queued(), 7u);
  open.Notify();
  while (done.load() < 10 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(done.load(), 10);
  EXPECT_EQ(most.load(), 3);
}

TEST(IoExecutorTest, OneThreadRunsTasksInOrderAndTasksMayGiveMore) {
  absl::Mutex mu;
  std::vector<int> order;
  {
    IoExecutor pool(1);
    for (int i = 0; i < 100; ++i) {
      pool.Run([&, i] {
        absl::MutexLock lock(&mu);
        order.push_back(i);
      });
    }
    pool.Run([&] {
      pool.Run([&] {
        absl::MutexLock lock(&mu);
        order.push_back(100);
      });
    });
  }  // The destructor runs what is queued.
  ASSERT_EQ(order.size(), 101u);
  for (int i = 0; i <= 100; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
}

TEST(IoExecutorTest, AtLeastOneThread) {
  IoExecutor pool(0);
  EXPECT_EQ(pool.threads(), 1);
  absl::Notification ran;
  pool.Run([&] { ran.Notify(); });
  ran.WaitForNotification();  // (A hang is ctest's timeout.)
  EXPECT_TRUE(ran.HasBeenNotified());
}

}  // namespace
}  // namespace kvcache
