// The disk tier's on-disk records (internal to cachestore; see disk_tier.cc for how the two
// column families are used). The one codec of the "meta" column family:
//
//   key    namespace (32) || block key (32)                                     (64 bytes)
//   value  u8 version (=1) | u8 flags (bit 0: has parent) | parent key [32] | u64 checksum |
//          u32 shape[6] (format_version, dtype, layers, kv heads, head dim, tokens) |
//          u64 payload bytes | i64 written (unix micros)        little-endian, 82 bytes
//
// The format is what existing disk tiers hold: change it only with a new version byte and a
// reader for the old one. The "blocks" column family uses the same key.
//
// Thread safety: pure functions.

#ifndef KVCACHE_CACHESTORE_META_RECORD_INTERNAL_H_
#define KVCACHE_CACHESTORE_META_RECORD_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cachestore/block_store.h"

namespace kvcache {
namespace internal {

inline constexpr uint8_t kMetaVersion = 1;
inline constexpr size_t kMetaRecordBytes = 1 + 1 + kKeyBytes + 8 + kBlockShapeBytes + 8 + 8;
inline constexpr size_t kDbKeyBytes = 2 * kKeyBytes;

struct MetaRecord {
  BlockMeta meta;
  uint64_t payload_bytes = 0;
  int64_t written_unix_micros = 0;
};

// The RocksDB key of a block, in both column families.
std::string DbKey(const BlockId& id);

// The "meta" value of a record (its id goes in the key).
std::string EncodeMetaRecord(const MetaRecord& record);

// A record from its RocksDB key and "meta" value.
//   INVALID_ARGUMENT  a key that is not kDbKeyBytes, a value that is not kMetaRecordBytes, or
//                     another version byte (the message says which).
absl::StatusOr<MetaRecord> DecodeMetaRecord(absl::string_view db_key, absl::string_view value);

}  // namespace internal
}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_META_RECORD_INTERNAL_H_
