#include "cachestore/arena.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/process_tuning.h"
#include "common/resize_uninitialized.h"

namespace kvcache {
namespace {

constexpr size_t kPage = 4096;
constexpr uintptr_t kHugePage = uintptr_t{2} << 20;

size_t SizeClass(size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

// Asks for huge pages on every whole 2 MiB page of [data, data + size) (a hint: the kernel
// may not have any), before the memory is first touched.
void AdviseHugePages(char* data, size_t size) {
#ifdef MADV_HUGEPAGE
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) & ~(kHugePage - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)size;
#endif
}

// A buffer of `cls` bytes of capacity, every page touched.
std::string FaultedBuffer(size_t cls) {
  std::string buffer;
  buffer.reserve(cls);
  AdviseHugePages(buffer.data(), cls);
  buffer.resize(cls);  // Zero-fills: the first (and costly) touch of each page.
  return buffer;
}

// What blocks' deleters reach: outlives the arena object while blocks hold buffers.
class State {
 public:
  explicit State(const ArenaOptions& options)
      : capacity_(options.capacity_bytes), want_class_(SizeClass(options.initial_block_bytes)) {}

  std::string Take(size_t size, size_t cls) {
    std::string buffer;
    std::vector<std::string> dropped;  // Freed after the lock.
    {
      absl::MutexLock lock(&mu_);
      want_class_ = cls;
      held_ += cls;
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        buffer = std::move(it->second.back());
        it->second.pop_back();
        pooled_ -= cls;
        ++warm_takes_;
      } else {
        ++cold_takes_;
        // Stay within the capacity: free pooled buffers of other classes.
        for (auto& [c, list] : free_) {
          while (pooled_ + held_ > capacity_ && !list.empty()) {
            dropped.push_back(std::move(list.back()));
            list.pop_back();
            pooled_ -= c;
          }
        }
      }
    }
    if (buffer.capacity() < cls) buffer.reserve(cls);
    ResizeUninitialized(&buffer, size);  // Overwritten whole by the caller.
    return buffer;
  }

  void Give(std::string buffer, size_t cls) {
    absl::MutexLock lock(&mu_);
    held_ -= cls;
    if (buffer.capacity() < cls || pooled_ + held_ + cls > capacity_) return;  // Freed.
    free_[cls].push_back(std::move(buffer));
    pooled_ += cls;
  }

  // The background thread: faults buffers in while there is room, until stopped. It runs at
  // SCHED_IDLE, on CPU time nothing else wants: a server that starts next to busy workers
  // (or a test suite that starts dozens of servers) is not slowed by its own warm-up. Not
  // when malloc has one arena for all threads (HugePageMallocOn): then this thread takes
  // malloc's one lock for every buffer, and preempted at SCHED_IDLE while holding it, it
  // stalled every other thread's malloc for as long as the CPUs stayed busy (Puts timed out
  // under a loaded test suite). On huge pages the warm-up is short anyway (4 GiB in 2-7 s).
  void PrefaultLoop() {
    pthread_setname_np(pthread_self(), "kvcache-prefault");
    if (!HugePageMallocOn()) {
      sched_param idle{};
      sched_setscheduler(0, SCHED_IDLE, &idle);  // Best effort: stays SCHED_OTHER if refused.
    }
    while (true) {
      size_t cls;
      {
        absl::MutexLock lock(&mu_);
        idle_ = false;
        if (pooled_ + held_ + want_class_ > capacity_ && !stopping_) {
          idle_ = true;
          mu_.Await(absl::Condition(
              +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
                return s->stopping_ || s->pooled_ + s->held_ + s->want_class_ <= s->capacity_;
              },
              this));
          idle_ = false;
        }
        if (stopping_) return;
        cls = want_class_;
      }
      std::string buffer = FaultedBuffer(cls);
      absl::MutexLock lock(&mu_);
      if (pooled_ + held_ + cls > capacity_) continue;  // Taken meanwhile: drop it.
      free_[cls].push_back(std::move(buffer));
      pooled_ += cls;
      prefaulted_ += cls;
    }
  }

  void Stop() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }

  void WaitUntilIdle() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
          return s->stopping_ || s->idle_ ||
                 s->pooled_ + s->held_ + s->want_class_ > s->capacity_;
        },
        this));
  }

  ArenaStats Stats() const {
    absl::MutexLock lock(&mu_);
    ArenaStats s;
    s.capacity_bytes = capacity_;
    s.pooled_bytes = pooled_;
    s.held_bytes = held_;
    s.prefaulted_bytes = prefaulted_;
    s.warm_takes = warm_takes_;
    s.cold_takes = cold_takes_;
    return s;
  }

 private:
  const uint64_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<size_t, std::vector<std::string>> free_ ABSL_GUARDED_BY(mu_);
  uint64_t pooled_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t held_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t prefaulted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t warm_takes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t cold_takes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t want_class_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool idle_ ABSL_GUARDED_BY(mu_) = false;
};

// Gives the payload back to the arena (if it still exists) when the block is freed.
struct Recycle {
  std::weak_ptr<State> state;
  size_t cls;
  void operator()(Block* block) const {
    if (std::shared_ptr<State> s = state.lock()) {
      s->Give(std::move(block->payload), cls);
    }
    delete block;
  }
};

class Arena final : public PayloadArena {
 public:
  explicit Arena(const ArenaOptions& options) : state_(std::make_shared<State>(options)) {
    if (options.prefault) prefaulter_ = std::thread([s = state_] { s->PrefaultLoop(); });
  }
  ~Arena() override {
    state_->Stop();
    if (prefaulter_.joinable()) prefaulter_.join();
  }

  std::shared_ptr<Block> NewBlock(size_t payload_bytes) override {
    const size_t cls = SizeClass(payload_bytes);
    auto* block = new Block;
    block->payload = state_->Take(payload_bytes, cls);
    return std::shared_ptr<Block>(block, Recycle{state_, cls});
  }

  bool Owns(const BlockPtr& block) const override {
    const Recycle* recycle = std::get_deleter<Recycle>(block);
    // Same owner, without taking a reference (owner_before orders control blocks).
    return recycle != nullptr && !recycle->state.owner_before(state_) &&
           !state_.owner_before(recycle->state);
  }

  BlockPtr Adopt(BlockPtr block) override {
    if (Owns(block)) return block;
    std::shared_ptr<Block> copy = NewBlock(block->payload.size());
    copy->meta = block->meta;
    copy->token_ids = block->token_ids;
    std::memcpy(copy->payload.data(), block->payload.data(), block->payload.size());
    return copy;
  }

  ArenaStats Stats() const override { return state_->Stats(); }

  void WaitUntilPrefaulted() override {
    if (prefaulter_.joinable()) state_->WaitUntilIdle();
  }

 private:
  const std::shared_ptr<State> state_;
  std::thread prefaulter_;
};

}  // namespace

std::shared_ptr<PayloadArena> PayloadArena::Create(const ArenaOptions& options) {
  return std::make_shared<Arena>(options);
}

}  // namespace kvcache
