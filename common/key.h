// Block and namespace identifiers: 32 raw bytes (a SHA-256), shown to people as 64 lowercase
// hex digits. See DESIGN.md, "Block keys".
//
// Thread safety: plain values; safe to copy and share.

#ifndef KVCACHE_COMMON_KEY_H_
#define KVCACHE_COMMON_KEY_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvcache {

inline constexpr size_t kKeyBytes = 32;

struct Key;
struct BlockId;

// The one hash of keys for every in-memory index (the RAM tier's shards and maps, the disk
// index, the eviction policies: every absl hash container keyed by Key or BlockId goes
// through AbslHashValue below, which calls these). XXH3-64 over all the bytes (a BlockId:
// namespace and key), keyed with a seed drawn once per process from getrandom(2). Keys are
// chosen by clients: hashing a fixed part of them, or hashing without a secret seed, lets a
// client send keys that all collide and turn every index operation linear (hash flooding).
// Never persisted or sent: the values change from one process to the next.
uint64_t IndexHash(const Key& key);
uint64_t IndexHash(const BlockId& id);

// Which of `num_shards` (a power of two) shards an id belongs in: bits of IndexHash(id) that
// hash maps inside a shard do not depend on alone (they mix the whole value again).
inline size_t IndexShard(uint64_t index_hash, size_t num_shards) {
  return static_cast<size_t>(index_hash >> 32) & (num_shards - 1);
}

// The process's seed for IndexHash (drawn on first use; aborts the process if getrandom(2)
// fails, as it cannot on Linux 3.17 or later). For tests and benchmarks only, the
// environment variable KVCACHE_INDEX_HASH_SEED=N fixes it (a sharded simulation then
// repeats exactly); never set it on a server.
uint64_t IndexHashSeed();

// Fills `out` with `n` bytes from getrandom(2). INTERNAL when the kernel cannot provide them.
absl::Status FillRandom(void* out, size_t n);

// A 32-byte key (block key, parent key or namespace id).
struct Key {
  std::array<uint8_t, kKeyBytes> bytes{};

  // The raw bytes as a string_view (for wire and storage encodings).
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  bool IsZero() const;

  // Inline, branch-free (std::array's == calls memcmp): the index compares a key on every
  // lookup.
  friend bool operator==(const Key& a, const Key& b) {
    uint64_t x[4], y[4];
    std::memcpy(x, a.bytes.data(), sizeof(x));
    std::memcpy(y, b.bytes.data(), sizeof(y));
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
  }
  friend bool operator!=(const Key& a, const Key& b) { return !(a == b); }
  friend bool operator<(const Key& a, const Key& b) { return a.bytes < b.bytes; }
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), IndexHash(k));
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
    return H::combine(std::move(h), IndexHash(id));
  }
};

}  // namespace kvcache

#endif  // KVCACHE_COMMON_KEY_H_
