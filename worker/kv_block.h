// The block value codec: one full KV page <-> the payload of a cache block.
//
// Payload layout (all integers little-endian u32; docs/worker.md has the full table):
//   offset  0  magic "KVB1" (bytes 4B 56 42 31)
//   offset  4  format_version = 1
//   offset  8  dtype (kvcache.v1.DType: 1 f32, 2 f16, 3 bf16)
//   offset 12  num_layers
//   offset 16  num_kv_heads
//   offset 20  head_dim
//   offset 24  num_tokens (the block size)
//   offset 28  reserved, 0
//   offset 32  data: for each layer, K then V, each [num_tokens][num_kv_heads][head_dim]
// The data is exactly a KvCache page. The worker writes f32; the XXH3-64 checksum of the
// payload is the client's and server's business, not this codec's.
//
// Thread safety: pure functions.

#ifndef KVCACHE_WORKER_KV_BLOCK_H_
#define KVCACHE_WORKER_KV_BLOCK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/block_shape.h"
#include "worker/model.h"

namespace kvcache {

inline constexpr uint32_t kKvBlockFormatVersion = kBlockFormatV1;
inline constexpr size_t kKvBlockHeaderBytes = kBlockFormatV1HeaderBytes;
inline constexpr uint32_t kKvBlockDTypeF32 = 1;  // kvcache.v1.DTYPE_F32

// The shape of a block of `block_size` tokens of `config`'s model, f32.
BlockShape KvBlockShape(const ModelConfig& config, uint32_t block_size);

// Floats in a page of `shape`: num_layers * 2 * num_tokens * num_kv_heads * head_dim.
size_t KvBlockFloats(const BlockShape& shape);

// The payload of one page. REQUIRES: shape.dtype == f32, page.size() == KvBlockFloats(shape).
std::string EncodeKvBlock(const BlockShape& shape, absl::Span<const float> page);

// Writes the payload of one page to `out`: kKvBlockHeaderBytes + page.size() * 4 bytes.
// REQUIRES: as EncodeKvBlock.
void EncodeKvBlockTo(const BlockShape& shape, absl::Span<const float> page, char* out);

// Checks `payload` against `expected` (the errors of DecodeKvBlock but the page's): its
// data, from byte kKvBlockHeaderBytes on, is then a page of `expected`.
absl::Status CheckKvBlock(absl::string_view payload, const BlockShape& expected);

// Checks `payload` against `expected` and copies its data into `page`.
//   INVALID_ARGUMENT  short payload, bad magic, another format version, dtype or shape than
//                     `expected` (the message names the field), wrong length, or a `page`
//                     of the wrong size.
absl::Status DecodeKvBlock(absl::string_view payload, const BlockShape& expected,
                           absl::Span<float> page);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_KV_BLOCK_H_
