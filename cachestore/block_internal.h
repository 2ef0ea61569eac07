// Helpers shared by the tiers (not part of the public API).

#ifndef KVCACHE_CACHESTORE_BLOCK_INTERNAL_H_
#define KVCACHE_CACHESTORE_BLOCK_INTERNAL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"

namespace kvcache {
namespace internal {

// INVALID_ARGUMENT for an empty payload or a checksum that does not match it.
absl::Status ValidateBlock(const Block& block);

PolicyEntry PolicyEntryOf(const BlockMeta& meta, uint64_t charge);

int64_t NowUnixMicros();

// The index's coarse clock for last-access times: whole Unix seconds in 32 bits (good until
// 2106), read from CLOCK_REALTIME_COARSE (no system call, a few ns).
uint32_t NowUnixSeconds();
inline int64_t UnixSecondsToMicros(uint32_t s) { return static_cast<int64_t>(s) * 1000000; }

}  // namespace internal
}  // namespace kvcache

#endif  // KVCACHE_CACHESTORE_BLOCK_INTERNAL_H_
