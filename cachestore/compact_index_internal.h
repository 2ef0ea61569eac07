// The tiers' compact in-memory index (not part of the public API).
//
// A block's entry lives in a slot of a SlotArena (fixed-size chunks, so a slot never moves
// and growing never copies); a FingerprintTable maps the block's keyed IndexHash
// (common/key.h) to its slot. The table keeps 32 bits of that hash (the tag) per bucket, not
// the 64-byte id: a lookup compares tags and then verifies the full id against the entry (the
// caller's `is_it`), so a tag shared by two blocks costs one more comparison and can never
// return the wrong block. Buckets are 8 bytes (tag, slot) in one array with linear probing and
// backward-shift deletion (no tombstones), Robin Hood ordering (so a search for an absent
// tag stops where it would have been), at most 3/4 full.
//
// The hash is keyed by a per-process secret seed, so clients cannot choose keys whose tags
// collide (hash flooding); SetIndexTagMaskForTesting makes them collide on purpose.
//
// Thread safety: none; the tiers call these under their shard's lock.

#ifndef KVCACHE_CACHESTORE_COMPACT_INDEX_INTERNAL_H_
#define KVCACHE_CACHESTORE_COMPACT_INDEX_INTERNAL_H_

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace kvcache {
namespace internal {

inline constexpr uint32_t kNoSlot = 0xffffffffu;

// Tests only: tags are `IndexHash & mask` (all ones by default). A mask of 0 gives every
// block the same tag, so every lookup must tell blocks apart by their full id.
inline std::atomic<uint32_t>& IndexTagMask() {
  static std::atomic<uint32_t> mask{0xffffffffu};
  return mask;
}
inline void SetIndexTagMaskForTesting(uint32_t mask) { IndexTagMask().store(mask); }

// The tag of a block whose IndexHash is `hash`: its low 32 bits (IndexShard uses the high
// ones, so blocks of one shard still differ in these).
inline uint32_t IndexTag(uint64_t hash) {
  return static_cast<uint32_t>(hash) & IndexTagMask().load(std::memory_order_relaxed);
}

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` (a multiple of 2 MiB) of zero-filled anonymous memory aligned to 2 MiB (a huge
// page can only back an aligned 2 MiB), advised for transparent huge pages when `huge`.
// Throws std::bad_alloc when the kernel refuses. Free with munmap(p, bytes).
inline void* MapAligned(size_t bytes, bool huge) {
  const size_t len = bytes + kHugePageBytes;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (begin + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
  if (aligned > begin) ::munmap(p, aligned - begin);
  if (begin + len > aligned + bytes) {
    ::munmap(reinterpret_cast<void*>(aligned + bytes), begin + len - (aligned + bytes));
  }
  if (huge) ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // Advice only.
  return reinterpret_cast<void*>(aligned);
}

// A zero-filled array of T (trivially copyable, all-zero bytes a valid value) for the
// table's buckets. From 2 MiB up it is mapped in whole 2 MiB pages and offered to the kernel
// as transparent huge pages (MADV_HUGEPAGE, which THP's default "madvise" mode honours): a
// lookup in a table of millions of buckets then misses one page-table entry per 2 MiB
// instead of per 4 KiB, so it costs about one cache miss, not a TLB walk on top.
template <typename T>
class HugePageArray {
 public:
  static constexpr size_t kHugePage = kHugePageBytes;

  HugePageArray() = default;
  explicit HugePageArray(size_t n) : size_(n) {
    if (n == 0) return;
    bytes_ = n * sizeof(T);
    if (bytes_ >= kHugePage) {
      bytes_ = (bytes_ + kHugePage - 1) / kHugePage * kHugePage;
      data_ = static_cast<T*>(MapAligned(bytes_, /*huge=*/true));
      mapped_ = true;
    } else {
      data_ = static_cast<T*>(std::calloc(n, sizeof(T)));
      if (data_ == nullptr) throw std::bad_alloc();
    }
  }
  HugePageArray(const HugePageArray&) = delete;
  HugePageArray& operator=(const HugePageArray&) = delete;
  HugePageArray(HugePageArray&& o) noexcept { Swap(o); }
  HugePageArray& operator=(HugePageArray&& o) noexcept {
    HugePageArray(std::move(o)).Swap(*this);
    return *this;
  }
  ~HugePageArray() {
    if (mapped_) {
      ::munmap(data_, bytes_);
    } else {
      std::free(data_);
    }
  }

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t MemoryBytes() const { return bytes_; }

 private:
  void Swap(HugePageArray& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(bytes_, o.bytes_);
    std::swap(mapped_, o.mapped_);
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
  bool mapped_ = false;
};

class FingerprintTable {
 public:
  // The slot whose bucket has `tag` and for which `is_it(slot)` is true; kNoSlot if none.
  template <typename IsIt>
  uint32_t Find(uint32_t tag, IsIt is_it) const {
    if (size_ == 0) return kNoSlot;
    for (size_t i = tag & mask_, dist = 0;; i = (i + 1) & mask_, ++dist) {
      const Bucket& b = buckets_[i];
      if (b.empty() || Distance(b, i) < dist) return kNoSlot;  // Past where `tag` would be.
      if (b.tag == tag && is_it(b.slot())) return b.slot();
    }
  }

  // Asks the CPU to fetch `tag`'s home bucket: a hint, no effect on what Find returns.
  void Prefetch(uint32_t tag) const {
    if (size_ != 0) __builtin_prefetch(&buckets_[tag & mask_]);
  }

  // Prefetch without the owner's lock, in the table as its last resize or Clear left it (so
  // that a caller can start the misses of keys in many tables before taking each lock). A
  // hint only: a stale table costs a wasted prefetch, and a prefetch never faults, not even
  // on memory given back.
  void PrefetchUnlocked(uint32_t tag) const {
    const Bucket* buckets = hint_buckets_.load(std::memory_order_relaxed);
    if (buckets != nullptr) {
      __builtin_prefetch(buckets + (tag & hint_mask_.load(std::memory_order_relaxed)));
    }
  }

  // Calls `fn(slot)` for every bucket of `tag`'s run whose tag matches: the slots Find would
  // check against the full id.
  template <typename Fn>
  void ForEachCandidate(uint32_t tag, Fn fn) const {
    if (size_ == 0) return;
    for (size_t i = tag & mask_, dist = 0;; i = (i + 1) & mask_, ++dist) {
      const Bucket& b = buckets_[i];
      if (b.empty() || Distance(b, i) < dist) return;
      if (b.tag == tag) fn(b.slot());
    }
  }

  // REQUIRES: `slot` is not in the table.
  void Insert(uint32_t tag, uint32_t slot) {
    if ((size_ + 1) * 4 > buckets_.size() * 3) Resize(buckets_.empty() ? 16 : 2 * buckets_.size());
    Place(tag, slot);
    ++size_;
  }

  // Removes `slot`, whose bucket has `tag`. Returns whether it was there.
  bool Erase(uint32_t tag, uint32_t slot) {
    if (size_ == 0) return false;
    size_t i = tag & mask_;
    for (size_t dist = 0;; i = (i + 1) & mask_, ++dist) {
      const Bucket& b = buckets_[i];
      if (b.empty() || Distance(b, i) < dist) return false;
      if (b.slot() == slot) break;
    }
    // Backward shift: every later bucket of the run that is not in its home moves back one,
    // which keeps the runs ordered as Robin Hood needs.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; !buckets_[j].empty() && Distance(buckets_[j], j) > 0;
         j = (j + 1) & mask_) {
      buckets_[hole] = buckets_[j];
      hole = j;
    }
    buckets_[hole] = Bucket{};
    --size_;
    return true;
  }

  // Empties the table and returns its memory.
  void Clear() {
    buckets_ = HugePageArray<Bucket>();
    mask_ = 0;
    size_ = 0;
    PublishHint();
  }

  size_t size() const { return size_; }
  size_t MemoryBytes() const { return buckets_.MemoryBytes(); }

 private:
  // All zero bytes when empty (so a new array needs no filling): the slot is stored plus one.
  struct Bucket {
    uint32_t tag = 0;
    uint32_t slot_plus_1 = 0;
    bool empty() const { return slot_plus_1 == 0; }
    uint32_t slot() const { return slot_plus_1 - 1; }
  };

  // How far bucket `i`, holding `b`, is from its home.
  size_t Distance(const Bucket& b, size_t i) const { return (i - (b.tag & mask_)) & mask_; }

  // Robin Hood: an entry displaces one nearer its home than it is, so every run stays
  // ordered by home and a search stops where its tag would have been.
  void Place(uint32_t tag, uint32_t slot) {
    Bucket cur{tag, slot + 1};
    for (size_t i = tag & mask_, dist = 0;; i = (i + 1) & mask_, ++dist) {
      Bucket& b = buckets_[i];
      if (b.empty()) {
        b = cur;
        return;
      }
      if (const size_t d = Distance(b, i); d < dist) {
        std::swap(b, cur);
        dist = d;
      }
    }
  }

  void Resize(size_t buckets) {
    HugePageArray<Bucket> old(buckets);
    std::swap(old, buckets_);
    mask_ = buckets - 1;
    for (size_t i = 0; i < old.size(); ++i) {
      if (!old[i].empty()) Place(old[i].tag, old[i].slot());
    }
    PublishHint();
  }

  void PublishHint() {
    hint_buckets_.store(buckets_.empty() ? nullptr : &buckets_[0], std::memory_order_relaxed);
    hint_mask_.store(mask_, std::memory_order_relaxed);
  }

  HugePageArray<Bucket> buckets_;  // A power of two of them, or none.
  size_t mask_ = 0;
  size_t size_ = 0;
  // For PrefetchUnlocked: the two are read separately, so a reader may pair one table's
  // array with another's mask (a prefetch outside the array: harmless).
  std::atomic<const Bucket*> hint_buckets_{nullptr};
  std::atomic<size_t> hint_mask_{0};
};

// Entries by 32-bit slot number, in chunks that never move. Freed slots are reused
// (last freed first). Entry must be default-constructible; Free resets a slot to Entry{}.
//
// Each chunk is its own anonymous mapping, touched only as far as slots are used, and advised
// for transparent huge pages (MADV_HUGEPAGE), so that an index of millions of blocks misses
// one page-table entry per 2 MiB instead of per 4 KiB on every lookup (on this project's VMs
// a 4 KiB page walk costs a lookup about a quarter of its rate at 3M blocks). The price: a
// shard's last 2 MiB page is resident as soon as its first slot is used.
template <typename Entry>
class SlotArena {
 public:
  // 65536 slots a chunk, or as many as fill one 2 MiB page when entries are smaller than 32
  // bytes (a chunk is mapped in whole huge pages).
  static constexpr uint32_t kChunkBits = sizeof(Entry) >= 32 ? 16 : sizeof(Entry) >= 16 ? 17
                                         : sizeof(Entry) >= 8 ? 18 : sizeof(Entry) >= 4 ? 19 : 20;
  static constexpr uint32_t kChunkSlots = 1u << kChunkBits;

  SlotArena() = default;
  SlotArena(const SlotArena&) = delete;
  SlotArena& operator=(const SlotArena&) = delete;
  ~SlotArena() { Clear(); }

  uint32_t Allocate() {
    if (!free_.empty()) {
      const uint32_t slot = free_.back();
      free_.pop_back();
      return slot;
    }
    if ((end_ & (kChunkSlots - 1)) == 0) chunks_.push_back(MapChunk());
    new (&(*this)[end_]) Entry();
    return end_++;
  }

  void Free(uint32_t slot) {
    (*this)[slot] = Entry{};
    free_.push_back(slot);
  }

  Entry& operator[](uint32_t slot) { return chunks_[slot >> kChunkBits][slot & (kChunkSlots - 1)]; }
  const Entry& operator[](uint32_t slot) const {
    return chunks_[slot >> kChunkBits][slot & (kChunkSlots - 1)];
  }

  // One past the highest slot ever allocated: iterate [0, end()) and skip free slots.
  uint32_t end() const { return end_; }

  // Frees every slot and returns the memory.
  void Clear() {
    for (uint32_t slot = 0; slot < end_; ++slot) (*this)[slot].~Entry();
    for (Entry* chunk : chunks_) ::munmap(chunk, kChunkBytes);
    chunks_.clear();
    std::vector<uint32_t>().swap(free_);
    end_ = 0;
  }

  // Memory the slots take (the pages touched so far) and the free list.
  size_t MemoryBytes() const {
    return (size_t{end_} * sizeof(Entry) + 4095) / 4096 * 4096 + free_.capacity() * sizeof(uint32_t);
  }

 private:
  static constexpr size_t kChunkBytes =
      (size_t{kChunkSlots} * sizeof(Entry) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;

  static Entry* MapChunk() { return static_cast<Entry*>(MapAligned(kChunkBytes, /*huge=*/true)); }

  std::vector<Entry*> chunks_;
  std::vector<uint32_t> free_;
  uint32_t end_ = 0;
};

// A doubly linked recency list threaded through a SlotArena's entries (their `prev` and
// `next` fields): the tiers' LRU without a map of its own.
template <typename Entry>
class IntrusiveLru {
 public:
  void PushFront(SlotArena<Entry>& slots, uint32_t slot) {
    Entry& e = slots[slot];
    e.prev = kNoSlot;
    e.next = head_;
    if (head_ != kNoSlot) slots[head_].prev = slot;
    head_ = slot;
    if (tail_ == kNoSlot) tail_ = slot;
  }

  void Unlink(SlotArena<Entry>& slots, uint32_t slot) {
    Entry& e = slots[slot];
    if (e.prev != kNoSlot) {
      slots[e.prev].next = e.next;
    } else {
      head_ = e.next;
    }
    if (e.next != kNoSlot) {
      slots[e.next].prev = e.prev;
    } else {
      tail_ = e.prev;
    }
    e.prev = e.next = kNoSlot;
  }

  void Touch(SlotArena<Entry>& slots, uint32_t slot) {
    if (head_ == slot) return;
    Unlink(slots, slot);
    PushFront(slots, slot);
  }

  uint32_t Oldest() const { return tail_; }  // kNoSlot when empty.
  void Clear() { head_ = tail_ = kNoSlot; }

 private:
  uint32_t head_ = kNoSlot;  // Most recent.
  uint32_t tail_ = kNoSlot;  // Least recent.
};

}  // namespace internal
}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_COMPACT_INDEX_INTERNAL_H_
