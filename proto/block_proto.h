// The one conversion between kvcache's block types and their kvcache.v1 messages, shared by
// the server (services/convert.cc) and the client (client/cache_client.cc).
//
// Thread safety: pure functions.

#ifndef KVCACHE_PROTO_BLOCK_PROTO_H_
#define KVCACHE_PROTO_BLOCK_PROTO_H_

#include <cstdint>
#include <optional>

#include "common/block_shape.h"
#include "common/key.h"
#include "kvcache/v1/cache.pb.h"

namespace kvcache {

void ShapeToProto(const BlockShape& shape, v1::BlockShape* out);
// Any message is a shape (the cache does not interpret it): this cannot fail.
BlockShape ShapeFromProto(const v1::BlockShape& shape);

// Sets every field of `out` but the payload (which the caller moves or references in).
void FillBlockHeader(const Key& key, const std::optional<Key>& parent, uint64_t checksum,
                     const BlockShape& shape, v1::Block* out);

}  // namespace kvcache

#endif  // KVCACHE_PROTO_BLOCK_PROTO_H_
