// The disk tier on a caller's RocksDB Env (not part of the public API): what tests use to
// put a failing disk under the tier.

#ifndef KVCACHE_CACHESTORE_DISK_TIER_INTERNAL_H_
#define KVCACHE_CACHESTORE_DISK_TIER_INTERNAL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "cachestore/block_store.h"
#include "rocksdb/env.h"

namespace kvcache {
namespace internal {

// NewDiskTier with RocksDB's file I/O going through `env` (nullptr: the default).
// REQUIRES: `env` outlives the tier.
absl::StatusOr<std::unique_ptr<BlockStore>> NewDiskTierOnEnv(const DiskTierOptions& options,
                                                             rocksdb::Env* env);

}  // namespace internal
}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_DISK_TIER_INTERNAL_H_
