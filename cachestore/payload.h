// A block's payload bytes (Block::payload): a reference to one buffer, either from the heap
// or from the RAM tier's arena (cachestore/arena.h). Buffers are refcounted by their source:
// Share() adds a holder without copying, and the buffer goes back to its source when the
// last holder lets go. 24 bytes; reads like a string (data, size, a string_view).
//
// Why refcounted: the RAM tier's index keeps each stored payload by its bare pointer (8 bytes
// of its 96-byte slot, ram_tier.cc), not inside a refcounted Block; a Get hands out a new
// Block that shares the stored bytes, and they stay valid for as long as it is held, even if
// the block is evicted meanwhile.
//
// Why not std::string: the arena hands out memory from one region it reserved and advised
// for huge pages, which a std::string cannot hold; and the block needs no capacity field.
//
// Thread safety: the bytes are immutable once shared (const use from many threads); the
// refcounts are atomic, so holders of one buffer may come and go on any thread.

#ifndef KVCACHE_CACHESTORE_PAYLOAD_H_
#define KVCACHE_CACHESTORE_PAYLOAD_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <ostream>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace kvcache {

// Where a payload's buffer comes from and goes back to. Every buffer it hands out starts
// with one holder.
class PayloadSource {
 public:
  // One more holder of the buffer at `data` (as handed out).
  virtual void Ref(const char* data) = 0;
  // One fewer; the last frees the buffer (`data` and `size` as handed out).
  virtual void Unref(char* data, size_t size) = 0;
  // The size the buffer at `data` was handed out with.
  virtual size_t SizeOf(const char* data) const = 0;

 protected:
  ~PayloadSource() = default;
};

// The heap's buffers: malloc'd with an 8-byte header (the holder count and the size) before
// the bytes. With glibc's 16-byte granularity the header usually costs no more than malloc's
// own rounding (a 64-byte payload takes an 80-byte chunk either way).
class HeapPayloads final : public PayloadSource {
 public:
  static HeapPayloads* Get() {
    static HeapPayloads* const heap = new HeapPayloads;  // Never destroyed: payloads may be.
    return heap;
  }
  // A buffer of `size` (> 0) bytes with unspecified contents and one holder.
  static char* Allocate(size_t size) {
    if (size > UINT32_MAX) throw std::bad_alloc();
    void* p = std::malloc(sizeof(Header) + size);
    if (p == nullptr) throw std::bad_alloc();
    Header* h = new (p) Header;
    h->refs.store(1, std::memory_order_relaxed);
    h->size = static_cast<uint32_t>(size);
    return reinterpret_cast<char*>(h + 1);
  }
  void Ref(const char* data) override {
    HeaderOf(data)->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void Unref(char* data, size_t) override {
    Header* h = HeaderOf(data);
    if (h->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      h->~Header();
      std::free(h);
    }
  }
  size_t SizeOf(const char* data) const override { return HeaderOf(data)->size; }

 private:
  struct Header {
    std::atomic<uint32_t> refs;
    uint32_t size;
  };
  static_assert(sizeof(Header) == 8, "the heap payload header grew");
  static Header* HeaderOf(const char* data) {
    return reinterpret_cast<Header*>(const_cast<char*>(data)) - 1;
  }
};

class Payload {
 public:
  Payload() = default;
  // A heap copy of `bytes`.
  explicit Payload(absl::string_view bytes) { assign(bytes.data(), bytes.size()); }
  // A heap buffer of `size` bytes with unspecified contents, for the caller to overwrite.
  static Payload Uninitialized(size_t size) {
    Payload p;
    p.Allocate(size);
    return p;
  }
  // Takes over one holder of `size` bytes at `data`, handed out by `source`.
  static Payload FromSource(char* data, size_t size, PayloadSource* source) {
    Payload p;
    p.data_ = data;
    p.size_ = size;
    p.source_ = source;
    return p;
  }
  // Takes over one holder of the buffer at `data` (from `source`), its size from the source:
  // the other half of Leak.
  static Payload Adopt(char* data, PayloadSource* source) {
    return FromSource(data, source->SizeOf(data), source);
  }

  // A copy is a heap copy, wherever the original lives; Share() shares the bytes instead.
  Payload(const Payload& o) { assign(o.data_, o.size_); }
  Payload& operator=(const Payload& o) {
    if (this != &o) assign(o.data_, o.size_);
    return *this;
  }
  Payload(Payload&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        source_(std::exchange(o.source_, nullptr)) {}
  Payload& operator=(Payload&& o) noexcept {
    if (this != &o) {
      Reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      source_ = std::exchange(o.source_, nullptr);
    }
    return *this;
  }
  ~Payload() { Reset(); }

  // Another holder of the same bytes: no copy. Nobody may write the bytes once shared.
  Payload Share() const {
    if (data_ != nullptr) source_->Ref(data_);
    return FromSource(data_, size_, source_);
  }

  // Gives this holder up without letting go of the buffer: returns its bytes (null when
  // empty) for the caller to keep, and to hand back to Adopt with source() (read first).
  char* Leak() {
    size_ = 0;
    source_ = nullptr;
    return std::exchange(data_, nullptr);
  }

  // Replaces the bytes with a heap copy of [data, data + size).
  void assign(const char* data, size_t size) {
    Reset();
    Allocate(size);
    if (size != 0) std::memcpy(data_, data, size);
  }
  void assign(absl::string_view bytes) { assign(bytes.data(), bytes.size()); }

  // Never null (as a string's): an empty payload points at a shared empty buffer, so that
  // memcpy and friends may be handed data() with size() 0.
  const char* data() const { return data_ != nullptr ? data_ : EmptyBuffer(); }
  char* data() { return data_ != nullptr ? data_ : EmptyBuffer(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  char& operator[](size_t i) { return data_[i]; }
  char operator[](size_t i) const { return data_[i]; }
  absl::string_view view() const { return absl::string_view(data(), size_); }
  operator absl::string_view() const { return view(); }  // NOLINT: reads like a string.

  // Where the bytes come from (HeapPayloads::Get() for the heap's); null when empty.
  PayloadSource* source() const { return source_; }

  friend bool operator==(const Payload& a, absl::string_view b) { return a.view() == b; }
  friend bool operator==(absl::string_view a, const Payload& b) { return a == b.view(); }
  friend bool operator==(const Payload& a, const Payload& b) { return a.view() == b.view(); }
  friend bool operator!=(const Payload& a, absl::string_view b) { return !(a == b); }
  friend bool operator!=(const Payload& a, const Payload& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Payload& p) {
    return os << "<payload of " << p.size() << " bytes>";
  }

 private:
  static char* EmptyBuffer() {
    static char empty[1] = {0};
    return empty;
  }
  void Allocate(size_t size) {
    if (size == 0) return;
    data_ = HeapPayloads::Allocate(size);
    size_ = size;
    source_ = HeapPayloads::Get();
  }
  void Reset() {
    if (data_ != nullptr) source_->Unref(data_, size_);
    data_ = nullptr;
    size_ = 0;
    source_ = nullptr;
  }

  char* data_ = nullptr;
  size_t size_ = 0;
  PayloadSource* source_ = nullptr;  // Non-null while data_ is.
};

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_PAYLOAD_H_
