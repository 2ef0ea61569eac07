// The disk tier on a caller's RocksDB Env, and a hook on its reads (not part of the public
// API): what tests use to put a failing, slow or stuck disk under the tier.

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

// Tests only: every disk tier of the process calls `hook` on the reading thread before it
// reads a block's payload from RocksDB (a Get), so a test can make reads slow or hold them
// (a stuck disk) under a whole server; nullptr (the default) removes it.
using DiskReadHook = void (*)();
void SetDiskReadHookForTesting(DiskReadHook hook);

}  // namespace internal
}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_DISK_TIER_INTERNAL_H_
