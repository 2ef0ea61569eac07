// Conversions between kvcache.v1 messages and cachestore types, with the request
// validation that turns bad input into INVALID_ARGUMENT / RESOURCE_EXHAUSTED. Internal to
// services/.

#ifndef KVCACHE_SERVICES_CONVERT_INTERNAL_H_
#define KVCACHE_SERVICES_CONVERT_INTERNAL_H_

#include <vector>

#include "absl/status/statusor.h"
#include "cachestore/block_store.h"
#include "kvcache/v1/cache.pb.h"

namespace kvcache {

// Most keys one Lookup or Get may name.
inline constexpr int kMaxKeysPerCall = 65536;

// Most token ids one block may carry (Block.token_ids).
inline constexpr int kMaxTokenIdsPerBlock = 4096;

// The namespace id of a request: INVALID_ARGUMENT if not 32 bytes (or empty).
absl::StatusOr<Key> ParseNamespace(const std::string& raw);

// A request's keys: INVALID_ARGUMENT for a key of the wrong length (naming its index) or
// more than kMaxKeysPerCall.
absl::StatusOr<std::vector<Key>> ParseKeys(const google::protobuf::RepeatedPtrField<std::string>& raw);

// Moves `block` into a block made by `store` (TieredStore::NewBlock: its payload lands in the
// RAM tier's arena with one copy), leaving `block`'s payload empty. Checks key and parent
// lengths (INVALID_ARGUMENT); the store checks the size limit and the checksum.
absl::StatusOr<BlockPtr> TakeBlock(TieredStore* store, const Key& ns, v1::Block* block);

// Fills everything but the payload.
void FillBlockHeader(const Block& block, v1::Block* out);
void FillBlockInfo(const BlockInfo& info, v1::BlockInfo* out);
void FillTierStats(const TierStats& stats, v1::TierStats* out);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_CONVERT_INTERNAL_H_
