// A pool of reusable byte buffers for block payloads. A buffer's memory is page-faulted in
// once, by its first use; afterwards Take hands the same memory out again, so a process that
// receives or builds the same sizes request after request (the worker's KV pages and fetched
// blocks) stops paying first-touch page faults, which on some VMs run at well under
// 1 GB/s against tens of GB/s for reused memory (docs/benchmarks.md, "Time to first token").
//
// Thread safety: all methods may be called from any thread.

#ifndef KVCACHE_CLIENT_BUFFER_POOL_H_
#define KVCACHE_CLIENT_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kvcache {

class BufferPool final {
 public:
  // Keeps at most `max_bytes` of capacity in buffers given back; more are freed.
  explicit BufferPool(size_t max_bytes) : max_bytes_(max_bytes) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of exactly `size` bytes whose contents are unspecified: a pooled one with room
  // for `size` when there is one, else a new one.
  std::string Take(size_t size);

  // Returns a buffer to the pool (or frees it when the pool is full).
  void Give(std::string buffer);

  struct Stats {
    uint64_t reused = 0;     // Takes served from the pool.
    uint64_t allocated = 0;  // Takes that allocated.
    size_t pooled_bytes = 0;
  };
  Stats stats() const;

 private:
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  std::vector<std::string> free_ ABSL_GUARDED_BY(mu_);
  size_t pooled_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reused_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t allocated_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_BUFFER_POOL_H_
