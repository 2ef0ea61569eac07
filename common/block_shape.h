// The shape of the K/V tensors a block payload holds (mirrors kvcache.v1.BlockShape), and
// its one binary encoding, used inside every kvcache binary format that carries a shape (the
// disk tier's meta record, the data channel's block header, the worker's KV block header).
// Opaque to the cache; workers use it to check that a fetched block fits their model.
//
// Also the one block-size check: every path that accepts a payload (gRPC Put, the data
// channel, the store itself) refuses an oversized one with the same status and message.
//
// Thread safety: plain values and pure functions.

#ifndef KVCACHE_COMMON_BLOCK_SHAPE_H_
#define KVCACHE_COMMON_BLOCK_SHAPE_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/key.h"

namespace kvcache {

struct BlockShape {
  uint32_t format_version = 0;
  uint32_t dtype = 0;  // kvcache.v1.DType value: 1 f32, 2 f16, 3 bf16.
  uint32_t num_layers = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t num_tokens = 0;

  friend bool operator==(const BlockShape& a, const BlockShape& b) {
    return a.format_version == b.format_version && a.dtype == b.dtype &&
           a.num_layers == b.num_layers && a.num_kv_heads == b.num_kv_heads &&
           a.head_dim == b.head_dim && a.num_tokens == b.num_tokens;
  }
  friend bool operator!=(const BlockShape& a, const BlockShape& b) { return !(a == b); }
};

// Binary form: six u32, little-endian, in field order (format_version, dtype, num_layers,
// num_kv_heads, head_dim, num_tokens).
inline constexpr size_t kBlockShapeBytes = 6 * 4;

// REQUIRES: `out` has kBlockShapeBytes.
void EncodeBlockShape(const BlockShape& shape, char* out);
// REQUIRES: `in` has kBlockShapeBytes. Every bit pattern is a shape (the cache does not
// interpret it), so this cannot fail; the enclosing format checks its own length.
BlockShape DecodeBlockShape(const char* in);

// The payload layout that BlockShape format_version 1 names (worker/kv_block.h has the table):
// a header of this many bytes, then for each layer K and V, each
// [num_tokens][num_kv_heads][head_dim] elements of `dtype`.
inline constexpr uint32_t kBlockFormatV1 = 1;
inline constexpr uint64_t kBlockFormatV1HeaderBytes = 32;

// Bytes of one element of kvcache.v1.DType `dtype` (1 f32: 4, 2 f16: 2, 3 bf16: 2); 0 for
// any other value.
uint32_t DTypeBytes(uint32_t dtype);

// The one computation of a block's payload size from its shape, used by the worker (to encode
// and decode KV blocks) and the server (to refuse a payload that disagrees with its shape):
// kBlockFormatV1HeaderBytes + num_layers * 2 * num_tokens * num_kv_heads * head_dim *
// DTypeBytes(dtype).
//   INVALID_ARGUMENT  format_version is not 1, dtype is unknown, or the size overflows 64 bits.
absl::StatusOr<uint64_t> BlockPayloadBytes(const BlockShape& shape);

// Whether a payload of `payload_bytes` agrees with `shape`. A shape of all zeros (a block
// that does not state its shape: opaque bytes, as the bench and tools send) is not checked.
// The tiered store's Put checks it (so gRPC Put does), and the data channel checks it before
// it allocates or reads the payload; both check the size limit first.
//   INVALID_ARGUMENT  BlockPayloadBytes fails, or the sizes differ; the message names the
//                     block, the payload's size and the size the shape needs.
absl::Status CheckPayloadMatchesShape(const Key& key, const BlockShape& shape,
                                      uint64_t payload_bytes);

// RESOURCE_EXHAUSTED when a payload of `payload_bytes` is over the server's
// `max_block_bytes` (--max-block-bytes); the message names the block and both sizes.
absl::Status CheckBlockSize(const Key& key, uint64_t payload_bytes, uint64_t max_block_bytes);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_BLOCK_SHAPE_H_
