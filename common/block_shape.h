// The shape of the K/V tensors a block payload holds (mirrors kvcache.v1.BlockShape).
// Opaque to the cache; workers use it to check that a fetched block fits their model.

#ifndef KVCACHE_COMMON_BLOCK_SHAPE_H_
#define KVCACHE_COMMON_BLOCK_SHAPE_H_

#include <cstdint>

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
};

}  // namespace kvcache

#endif  // KVCACHE_COMMON_BLOCK_SHAPE_H_
