// A block's payload bytes (Block::payload): one buffer that the block owns, either from the
// heap (malloc) or from the RAM tier's arena (cachestore/arena.h), which gets it back when
// the payload is freed. 24 bytes; reads like a string (data, size, a string_view).
//
// Why not std::string: the arena hands out memory from one region it reserved and advised
// for huge pages, which a std::string cannot hold; and the block needs no capacity field.
//
// Thread safety: like a std::string (const use from many threads; writes need one owner).

#ifndef KVCACHE_CACHESTORE_PAYLOAD_H_
#define KVCACHE_CACHESTORE_PAYLOAD_H_

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <ostream>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace kvcache {

// Where an arena payload's memory goes back to when the payload is freed.
class PayloadSource {
 public:
  // `data` and `size` are what was handed out (Payload::FromSource).
  virtual void Release(char* data, size_t size) = 0;

 protected:
  ~PayloadSource() = default;
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
  // `size` bytes at `data`, given back to `source` when this payload is freed.
  static Payload FromSource(char* data, size_t size, PayloadSource* source) {
    Payload p;
    p.data_ = data;
    p.size_ = size;
    p.source_ = source;
    return p;
  }

  // A copy is a heap copy, wherever the original lives.
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

  // The arena that owns the bytes; null for the heap's.
  const PayloadSource* source() const { return source_; }

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
    data_ = static_cast<char*>(std::malloc(size));
    if (data_ == nullptr) throw std::bad_alloc();
    size_ = size;
  }
  void Reset() {
    if (data_ != nullptr) {
      if (source_ != nullptr) {
        source_->Release(data_, size_);
      } else {
        std::free(data_);
      }
    }
    data_ = nullptr;
    size_ = 0;
    source_ = nullptr;
  }

  char* data_ = nullptr;
  size_t size_ = 0;
  PayloadSource* source_ = nullptr;  // Null: data_ is malloc's.
};

}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_PAYLOAD_H_
