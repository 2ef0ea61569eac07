// A fixed pool of threads for blocking work (the store's RocksDB reads and writes), so that
// threads which must stay responsive (gRPC's callback threads, which also answer health
// checks) hand that work over instead of waiting on a disk. Tasks start in the order given;
// a task that blocks holds one of the pool's threads and nothing else, so a stuck disk
// stalls at most `threads` tasks and queues the rest.
//
// Thread safety: Run may be called from any thread, a task included. The destructor runs
// every task already given (and those they give), then joins the threads; REQUIRES: no Run
// from outside the pool once it has begun.

#ifndef KVCACHE_COMMON_IO_EXECUTOR_H_
#define KVCACHE_COMMON_IO_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace kvcache {

class IoExecutor {
 public:
  // Starts `threads` threads (clamped to at least 1), named `name` for debuggers and top.
  explicit IoExecutor(int threads, const std::string& name = "kvcache-io");
  ~IoExecutor();
  IoExecutor(const IoExecutor&) = delete;
  IoExecutor& operator=(const IoExecutor&) = delete;

  void Run(absl::AnyInvocable<void() &&> task);

  int threads() const { return static_cast<int>(threads_.size()); }
  // Tasks given and not started yet, and tasks running now.
  size_t queued() const;
  size_t running() const;

 private:
  void Loop();

  mutable absl::Mutex mu_;
  absl::CondVar ready_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvcache

#endif  // KVCACHE_COMMON_IO_EXECUTOR_H_
