#include "cachestore/arena.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cachestore/compact_index_internal.h"

namespace kvcache {
namespace {

constexpr size_t kPageBytes = internal::kHugePageBytes;  // The unit slabs are made of.
constexpr size_t kSmallAlign = 256;   // Chunks up to 4 KiB: multiples of 256 bytes.
constexpr size_t kLargeAlign = 4096;  // Larger ones: of 4 KiB.
constexpr uint32_t kMaxSlabPages = 32;
constexpr uint32_t kNone = 0xffffffffu;

size_t SizeClass(size_t bytes) {
  const size_t align = bytes <= kLargeAlign ? kSmallAlign : kLargeAlign;
  return (bytes + align - 1) / align * align;
}

// "always" or "madvise" selected in /sys/kernel/mm/transparent_hugepage/enabled.
bool KernelOffersHugePages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return false;
  return absl::StrContains(line, "[always]") || absl::StrContains(line, "[madvise]");
}

// A page's state. An atomic byte each, so that the background thread claims pages without
// the region's lock (it runs at SCHED_IDLE: preempted while holding a lock, it would stall
// every Put behind it for as long as the CPUs stay busy).
enum PageState : uint8_t {
  kUntouched = 0,    // Free, never faulted in.
  kPrefaulting = 1,  // Being faulted in by the background thread.
  kFreeWarm = 2,     // Free, faulted in.
  kInSlab = 3,       // Part of a slab.
};

// The region and its allocator. Refcounted: the arena holds one reference and every chunk
// handed out another, so blocks may outlive the arena.
class Region final : public PayloadSource {
 public:
  Region(uint64_t capacity_bytes, bool huge_pages)
      : pages_(static_cast<uint32_t>((capacity_bytes + kPageBytes - 1) / kPageBytes)) {
    if (pages_ == 0) return;
    const bool huge = huge_pages && KernelOffersHugePages();
    try {
      base_ = static_cast<char*>(internal::MapAligned(size_t{pages_} * kPageBytes, huge));
    } catch (const std::bad_alloc&) {  // Payloads come from malloc instead.
      pages_ = 0;
      return;
    }
    huge_pages_ = huge;
    page_state_ = std::make_unique<std::atomic<uint8_t>[]>(pages_);
    page_slab_ = std::make_unique<std::atomic<uint32_t>[]>(pages_);
    slab_chunks_ = std::make_unique<SlabChunks[]>(pages_);  // At most one slab per page.
    for (uint32_t i = 0; i < pages_; ++i) {
      page_state_[i].store(kUntouched);
      page_slab_[i].store(kNone);
    }
  }
  ~Region() {
    if (base_ != nullptr) ::munmap(base_, size_t{pages_} * kPageBytes);
  }

  // Drops a reference; the last one frees the region.
  void Unref() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  bool OwnsPayload(const Payload& payload) const { return payload.source() == this; }

  // A chunk for `size` bytes, or a heap buffer when the region has none.
  Payload Take(size_t size) {
    const size_t cls = SizeClass(size);
    char* p = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (size == 0 || cls > size_t{pages_} * kPageBytes) {
        ++heap_takes_;
      } else {
        p = TakeLocked(cls, size);
        if (p == nullptr) ++heap_takes_;
      }
    }
    if (p == nullptr) return Payload::Uninitialized(size);
    return Payload::FromSource(p, size, this);
  }

  void Ref(const char* data) override {
    ChunkOf(data).refs.fetch_add(1, std::memory_order_relaxed);
  }

  void Unref(char* data, size_t size) override {
    if (ChunkOf(data).refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    const size_t cls = SizeClass(size);
    bool last;
    {
      absl::MutexLock lock(&mu_);
      classes_[cls].free.push_back(data);
      Slab& s = slabs_[SlabOf(data)];
      if (--s.used == 0) ++empty_slabs_;
      held_ -= cls;
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  size_t SizeOf(const char* data) const override { return ChunkOf(data).size; }

  // Faults every page in, lowest first (the order slabs are taken in), until done or `stop`.
  void Prefault(const std::atomic<bool>& stop) {
    for (uint32_t i = 0; i < pages_ && !stop.load(std::memory_order_relaxed); ++i) {
      uint8_t expected = kUntouched;
      if (!page_state_[i].compare_exchange_strong(expected, kPrefaulting)) continue;
      // The page is this thread's until it is marked free: writing it races with no one.
      volatile char* page = base_ + size_t{i} * kPageBytes;
      for (size_t off = 0; off < kPageBytes; off += 4096) page[off] = 0;
      page_state_[i].store(kFreeWarm, std::memory_order_release);
      prefaulted_pages_.fetch_add(1, std::memory_order_relaxed);
      resident_pages_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  ArenaStats Stats() const {
    ArenaStats s;
    s.capacity_bytes = size_t{pages_} * kPageBytes;
    s.resident_bytes = resident_pages_.load() * kPageBytes;
    s.prefaulted_bytes = prefaulted_pages_.load() * kPageBytes;
    s.huge_pages = huge_pages_;
    absl::MutexLock lock(&mu_);
    s.held_bytes = held_;
    s.warm_takes = warm_takes_;
    s.cold_takes = cold_takes_;
    s.heap_takes = heap_takes_;
    return s;
  }

 private:
  // A chunk's holders and the size it was handed out with. Written under mu_ when the chunk
  // is handed out; read by its holders without the lock (Ref, Unref, SizeOf).
  struct Chunk {
    std::atomic<uint32_t> refs{0};
    uint32_t size = 0;
  };
  // Where a slab's chunks are, for holders of one of them: set under mu_ before the slab's
  // first chunk is handed out and cleared only when none is held, so reading it without the
  // lock while holding a chunk races with no write.
  struct SlabChunks {
    char* first = nullptr;
    size_t cls = 0;
    std::unique_ptr<Chunk[]> chunks;
  };
  struct Slab {
    uint32_t first_page = 0;
    uint32_t pages = 0;  // 0: this slab id is unused.
    uint32_t chunks = 0;
    uint32_t carved = 0;  // Chunks handed out at least once; the rest lie beyond.
    uint32_t used = 0;    // Chunks held by payloads.
    bool warm = false;  // Every page was faulted in before the slab took it.
  };
  struct Class {
    std::vector<char*> free;  // Chunks given back.
    uint32_t carving = kNone;  // The slab new chunks are carved from.
    uint32_t slab_pages = 0;
  };

  uint32_t SlabOf(const char* p) const {
    return page_slab_[static_cast<size_t>(p - base_) / kPageBytes].load(std::memory_order_relaxed);
  }

  // The metadata of the chunk at `p`. REQUIRES: the caller holds the chunk.
  Chunk& ChunkOf(const char* p) const {
    const SlabChunks& s = slab_chunks_[SlabOf(p)];
    return s.chunks[static_cast<size_t>(p - s.first) / s.cls];
  }

  // Records the chunk at `p` as handed out for `size` bytes, with one holder.
  void HandOutLocked(char* p, size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Chunk& c = ChunkOf(p);
    c.size = static_cast<uint32_t>(size);
    c.refs.store(1, std::memory_order_relaxed);
  }

  char* TakeLocked(size_t cls, size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Class& c = classes_[cls];
    char* p = nullptr;
    bool warm = true;  // A chunk given back was written: it is faulted in.
    if (!c.free.empty()) {
      p = c.free.back();
      c.free.pop_back();
    } else {
      if (c.carving == kNone || slabs_[c.carving].carved == slabs_[c.carving].chunks) {
        if (c.slab_pages == 0) c.slab_pages = SlabPages(cls);
        c.carving = NewSlabLocked(cls, c.slab_pages);
        if (c.carving == kNone) return nullptr;
      }
      Slab& s = slabs_[c.carving];
      p = base_ + size_t{s.first_page} * kPageBytes + size_t{s.carved} * cls;
      if (s.used == 0 && s.carved > 0) --empty_slabs_;
      ++s.carved;
      ++s.used;
      warm = s.warm;
      held_ += cls;
      ++refs_;
      ++(warm ? warm_takes_ : cold_takes_);
      HandOutLocked(p, size);
      return p;
    }
    Slab& s = slabs_[SlabOf(p)];
    if (s.used++ == 0) --empty_slabs_;
    held_ += cls;
    ++refs_;
    ++(warm ? warm_takes_ : cold_takes_);
    HandOutLocked(p, size);
    return p;
  }

  // Pages per slab of class `cls`: the fewest that hold at least one chunk and waste at most
  // 1/32 of the slab (at most kMaxSlabPages, and a quarter of a small region), else the
  // least wasteful of those.
  uint32_t SlabPages(size_t cls) const {
    const uint32_t least = static_cast<uint32_t>((cls + kPageBytes - 1) / kPageBytes);
    const uint32_t most = std::max(least, std::min(kMaxSlabPages, pages_ / 4));
    uint32_t best = least;
    double best_waste = 1.0;
    for (uint32_t k = least; k <= most; ++k) {
      const size_t bytes = size_t{k} * kPageBytes;
      const double waste = static_cast<double>(bytes % cls) / static_cast<double>(bytes);
      if (waste * 32 <= 1.0) return k;
      if (waste < best_waste) {
        best = k;
        best_waste = waste;
      }
    }
    return best;
  }

  // A new slab of `pages` contiguous pages for class `cls`, giving empty slabs back first if
  // no run is free; kNone when there is no room.
  uint32_t NewSlabLocked(size_t cls, uint32_t pages) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool warm = false;
    uint32_t first = ClaimRunLocked(pages, &warm);
    if (first == kNone && empty_slabs_ > 0) {
      ReclaimEmptySlabsLocked();
      first = ClaimRunLocked(pages, &warm);
    }
    if (first == kNone) return kNone;
    uint32_t id;
    if (!unused_slab_ids_.empty()) {
      id = unused_slab_ids_.back();
      unused_slab_ids_.pop_back();
    } else {
      id = static_cast<uint32_t>(slabs_.size());
      slabs_.emplace_back();
    }
    Slab& s = slabs_[id];
    s = Slab{};
    s.first_page = first;
    s.pages = pages;
    s.chunks = static_cast<uint32_t>(size_t{pages} * kPageBytes / cls);
    s.warm = warm;
    SlabChunks& sc = slab_chunks_[id];
    sc.first = base_ + size_t{first} * kPageBytes;
    sc.cls = cls;
    sc.chunks = std::make_unique<Chunk[]>(s.chunks);
    for (uint32_t i = first; i < first + pages; ++i) page_slab_[i].store(id);
    return id;
  }

  // The lowest run of `n` free pages, marked kInSlab; kNone if there is none. `warm`: every
  // page of it had been faulted in.
  uint32_t ClaimRunLocked(uint32_t n, bool* warm) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto is_free = [&](uint32_t i) {
      const uint8_t state = page_state_[i].load(std::memory_order_acquire);
      return state == kFreeWarm || state == kUntouched;
    };
    while (scan_from_ < pages_ && page_state_[scan_from_].load() == kInSlab) ++scan_from_;
    std::vector<uint8_t> before(n);
    for (uint32_t first = scan_from_; first + n <= pages_;) {
      uint32_t i = first;
      while (i < first + n && is_free(i)) ++i;
      if (i < first + n) {
        first = i + 1;  // Page i is in a slab or being faulted in.
        continue;
      }
      // Claim the run. Only this lock's holders move a page out of kFreeWarm; the background
      // thread may take an untouched one meanwhile, and then the run is given back.
      bool all_warm = true;
      for (i = first; i < first + n; ++i) {
        uint8_t state = page_state_[i].load(std::memory_order_acquire);
        before[i - first] = state;
        if (state == kUntouched) all_warm = false;
        if (!page_state_[i].compare_exchange_strong(state, kInSlab)) break;
      }
      if (i == first + n) {
        for (uint32_t j = 0; j < n; ++j) {
          // Pages faulted in by their use, on the request path.
          if (before[j] == kUntouched) resident_pages_.fetch_add(1, std::memory_order_relaxed);
        }
        *warm = all_warm;
        return first;
      }
      for (uint32_t j = first; j < i; ++j) page_state_[j].store(before[j - first]);
      first = i + 1;
    }
    return kNone;
  }

  // Gives every slab whose chunks are all free back to the pages.
  void ReclaimEmptySlabsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& [cls, c] : classes_) {
      std::vector<char*>& free = c.free;
      size_t kept = 0;
      for (char* p : free) {
        if (slabs_[SlabOf(p)].used != 0) free[kept++] = p;
      }
      free.resize(kept);
      if (c.carving != kNone && slabs_[c.carving].used == 0) c.carving = kNone;
    }
    for (uint32_t id = 0; id < slabs_.size(); ++id) {
      Slab& s = slabs_[id];
      if (s.pages == 0 || s.used != 0) continue;
      for (uint32_t i = s.first_page; i < s.first_page + s.pages; ++i) {
        page_slab_[i].store(kNone);
        page_state_[i].store(kFreeWarm);
      }
      scan_from_ = std::min(scan_from_, s.first_page);
      s = Slab{};
      slab_chunks_[id] = SlabChunks{};
      unused_slab_ids_.push_back(id);
    }
    empty_slabs_ = 0;
  }

  uint32_t pages_;
  char* base_ = nullptr;  // 2 MiB-aligned.
  bool huge_pages_ = false;
  std::unique_ptr<std::atomic<uint8_t>[]> page_state_;
  std::atomic<uint64_t> prefaulted_pages_{0};
  std::atomic<uint64_t> resident_pages_{0};

  mutable absl::Mutex mu_;
  // Each page's slab (kNone: in none), and each slab's chunks: written under mu_, read
  // without it by holders of a chunk (see SlabChunks).
  std::unique_ptr<std::atomic<uint32_t>[]> page_slab_;
  std::unique_ptr<SlabChunks[]> slab_chunks_;
  std::vector<Slab> slabs_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> unused_slab_ids_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<size_t, Class> classes_ ABSL_GUARDED_BY(mu_);
  uint32_t scan_from_ ABSL_GUARDED_BY(mu_) = 0;  // Every page below it is in a slab.
  uint64_t empty_slabs_ ABSL_GUARDED_BY(mu_) = 0;  // Slabs carved from whose chunks are all free.
  uint64_t refs_ ABSL_GUARDED_BY(mu_) = 1;         // The arena's, and one per chunk held.
  uint64_t held_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t warm_takes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t cold_takes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t heap_takes_ ABSL_GUARDED_BY(mu_) = 0;
};

class Arena final : public PayloadArena {
 public:
  explicit Arena(const ArenaOptions& options)
      : region_(new Region(options.capacity_bytes, options.huge_pages)) {
    if (!options.prefault) {
      prefaulted_.Notify();
      return;
    }
    prefaulter_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "kvcache-prefault");
      // On CPU time nothing else wants: a server that starts next to busy workers (or a test
      // suite that starts dozens of servers) is not slowed by its own warm-up. It takes no
      // lock, so being preempted stalls no one.
      sched_param idle{};
      sched_setscheduler(0, SCHED_IDLE, &idle);  // Best effort: stays SCHED_OTHER if refused.
      region_->Prefault(stop_);
      prefaulted_.Notify();
    });
  }
  ~Arena() override {
    stop_ = true;
    if (prefaulter_.joinable()) prefaulter_.join();
    region_->Unref();
  }

  std::shared_ptr<Block> NewBlock(size_t payload_bytes) override {
    auto block = std::make_shared<Block>();
    block->payload = region_->Take(payload_bytes);
    return block;
  }

  bool Owns(const BlockPtr& block) const override {
    return region_->OwnsPayload(block->payload);
  }

  BlockPtr Adopt(BlockPtr block) override {
    if (Owns(block)) return block;
    std::shared_ptr<Block> copy = NewBlock(block->payload.size());
    copy->meta = block->meta;
    copy->token_ids = block->token_ids;
    if (!block->payload.empty()) {
      std::memcpy(copy->payload.data(), block->payload.data(), block->payload.size());
    }
    return copy;
  }

  ArenaStats Stats() const override { return region_->Stats(); }

  void WaitUntilPrefaulted() override { prefaulted_.WaitForNotification(); }

 private:
  Region* const region_;
  std::atomic<bool> stop_{false};
  absl::Notification prefaulted_;
  std::thread prefaulter_;
};

}  // namespace

std::shared_ptr<PayloadArena> PayloadArena::Create(const ArenaOptions& options) {
  return std::make_shared<Arena>(options);
}

}  // namespace kvcache
