#include "common/io_executor.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

namespace kvcache {

IoExecutor::IoExecutor(int threads, const std::string& name) {
  threads = std::max(threads, 1);
  threads_.reserve(static_cast<size_t>(threads));
  const std::string thread_name = name.substr(0, 15);  // The kernel's limit.
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Loop(); });
    pthread_setname_np(threads_.back().native_handle(), thread_name.c_str());
  }
}

IoExecutor::~IoExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  ready_.SignalAll();
  for (std::thread& t : threads_) t.join();
}

void IoExecutor::Run(absl::AnyInvocable<void() &&> task) {
  {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }
  ready_.Signal();
}

size_t IoExecutor::queued() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

size_t IoExecutor::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void IoExecutor::Loop() {
  while (true) {
    absl::AnyInvocable<void() &&> task;
    {
      absl::MutexLock lock(&mu_);
      while (tasks_.empty() && !stop_) ready_.Wait(&mu_);
      if (tasks_.empty()) return;  // Stopping, and everything given has run.
      task = std::move(tasks_.front());
      tasks_.pop_front();
      ++running_;
    }
    std::move(task)();
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

}  // namespace kvcache
