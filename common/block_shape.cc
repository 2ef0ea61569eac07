#include "common/block_shape.h"

#include "absl/strings/str_cat.h"
#include "common/byte_size.h"
#include "common/little_endian.h"

namespace kvcache {

void EncodeBlockShape(const BlockShape& s, char* out) {
  const uint32_t fields[] = {s.format_version, s.dtype,    s.num_layers,
                             s.num_kv_heads,   s.head_dim, s.num_tokens};
  static_assert(sizeof(fields) == kBlockShapeBytes);
  for (uint32_t v : fields) {
    PutLittleEndian<uint32_t>(out, v);
    out += 4;
  }
}

BlockShape DecodeBlockShape(const char* in) {
  BlockShape s;
  uint32_t* fields[] = {&s.format_version, &s.dtype,    &s.num_layers,
                        &s.num_kv_heads,   &s.head_dim, &s.num_tokens};
  for (uint32_t* f : fields) {
    *f = GetLittleEndian<uint32_t>(in);
    in += 4;
  }
  return s;
}

absl::Status CheckBlockSize(const Key& key, uint64_t payload_bytes, uint64_t max_block_bytes) {
  if (payload_bytes <= max_block_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "block ", KeyToHex(key), " payload is ", FormatBytes(payload_bytes),
      ", over the server's limit of ", FormatBytes(max_block_bytes), " (--max-block-bytes)"));
}

}  // namespace kvcache
