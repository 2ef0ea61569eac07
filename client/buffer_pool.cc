#include "client/buffer_pool.h"

#include <utility>

#include "common/resize_uninitialized.h"

namespace kvcache {
namespace {

// Buffers looked at per Take, newest first: payloads come in few sizes, so a fit is near.
constexpr size_t kScan = 16;

}  // namespace

std::string BufferPool::Take(size_t size) {
  std::string buffer;
  {
    absl::MutexLock lock(&mu_);
    const size_t n = free_.size();
    for (size_t i = 0; i < n && i < kScan; ++i) {
      std::string& candidate = free_[n - 1 - i];
      if (candidate.capacity() < size) continue;
      buffer = std::move(candidate);
      if (&candidate != &free_.back()) candidate = std::move(free_.back());
      free_.pop_back();
      pooled_bytes_ -= buffer.capacity();
      ++reused_;
      break;
    }
    if (buffer.capacity() < size) ++allocated_;
  }
  // Within the capacity: no allocation; nothing is written (the caller overwrites it).
  ResizeUninitialized(&buffer, size);
  return buffer;
}

void BufferPool::Give(std::string buffer) {
  if (buffer.capacity() < 4096) return;  // Not worth keeping (and SSO has no heap buffer).
  absl::MutexLock lock(&mu_);
  if (pooled_bytes_ + buffer.capacity() > max_bytes_) return;
  pooled_bytes_ += buffer.capacity();
  free_.push_back(std::move(buffer));
}

BufferPool::Stats BufferPool::stats() const {
  absl::MutexLock lock(&mu_);
  return Stats{reused_, allocated_, pooled_bytes_};
}

}  // namespace kvcache
