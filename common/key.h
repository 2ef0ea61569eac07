// Block and namespace identifiers: 32 raw bytes (a SHA-256), shown to people as 64 lowercase
// hex digits. See DESIGN.md, "Block keys".
//
// Thread safety: plain values; safe to copy and share.

#ifndef KVCACHE_COMMON_KEY_H_
#define KVCACHE_COMMON_KEY_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvcache {

inline constexpr size_t kKeyBytes = 32;

// A 32-byte key (block key, parent key or namespace id).
struct Key {
  std::array<uint8_t, kKeyBytes> bytes{};

  // The raw bytes as a string_view (for wire and storage encodings).
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  bool IsZero() const;

  friend bool operator==(const Key& a, const Key& b) { return a.bytes == b.bytes; }
  friend bool operator!=(const Key& a, const Key& b) { return !(a == b); }
  friend bool operator<(const Key& a, const Key& b) { return a.bytes < b.bytes; }
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    // The key is already a cryptographic hash: its first 8 bytes are as good as any mix.
    uint64_t prefix;
    static_assert(sizeof(prefix) <= kKeyBytes);
    __builtin_memcpy(&prefix, k.bytes.data(), sizeof(prefix));
    return H::combine(std::move(h), prefix);
  }
};

// Parses 32 raw bytes. INVALID_ARGUMENT (naming `what`) for any other length.
absl::StatusOr<Key> KeyFromBytes(absl::string_view raw, absl::string_view what);

// Parses 64 hex digits (either case). INVALID_ARGUMENT naming `what` otherwise.
absl::StatusOr<Key> KeyFromHex(absl::string_view hex, absl::string_view what);

// 64 lowercase hex digits.
std::string KeyToHex(const Key& key);

// A block's identity in the store: the namespace it belongs to and its key.
struct BlockId {
  Key ns;
  Key key;

  friend bool operator==(const BlockId& a, const BlockId& b) {
    return a.key == b.key && a.ns == b.ns;
  }
  friend bool operator!=(const BlockId& a, const BlockId& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const BlockId& id) {
    return H::combine(std::move(h), id.key, id.ns);
  }
};

}  // namespace kvcache

#endif  // KVCACHE_COMMON_KEY_H_
