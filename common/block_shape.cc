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

uint32_t DTypeBytes(uint32_t dtype) {
  switch (dtype) {
    case 1: return 4;  // f32
    case 2: return 2;  // f16
    case 3: return 2;  // bf16
    default: return 0;
  }
}

absl::StatusOr<uint64_t> BlockPayloadBytes(const BlockShape& s) {
  if (s.format_version != kBlockFormatV1) {
    return absl::InvalidArgumentError(absl::StrCat("block shape has format_version ",
                                                   s.format_version, "; only 1 is known"));
  }
  const uint32_t element = DTypeBytes(s.dtype);
  if (element == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block shape has dtype ", s.dtype, "; 1 (f32), 2 (f16), 3 (bf16) are known"));
  }
  uint64_t n = 2 * uint64_t{element};
  for (uint64_t f : {s.num_layers, s.num_tokens, s.num_kv_heads, s.head_dim}) {
    if (__builtin_mul_overflow(n, f, &n)) {
      return absl::InvalidArgumentError("block shape's payload size overflows 64 bits");
    }
  }
  if (__builtin_add_overflow(n, kBlockFormatV1HeaderBytes, &n)) {
    return absl::InvalidArgumentError("block shape's payload size overflows 64 bits");
  }
  return n;
}

absl::Status CheckPayloadMatchesShape(const Key& key, const BlockShape& shape,
                                      uint64_t payload_bytes) {
  if (shape == BlockShape{}) return absl::OkStatus();
  absl::StatusOr<uint64_t> want = BlockPayloadBytes(shape);
  if (!want.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", KeyToHex(key), ": ", want.status().message()));
  }
  if (*want == payload_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "block ", KeyToHex(key), " payload is ", payload_bytes, " bytes; its shape (format_version ",
      shape.format_version, ", dtype ", shape.dtype, ", ", shape.num_layers, " layers, ",
      shape.num_kv_heads, " kv heads, head_dim ", shape.head_dim, ", ", shape.num_tokens,
      " tokens) needs ", *want, " bytes"));
}

absl::Status CheckBlockSize(const Key& key, uint64_t payload_bytes, uint64_t max_block_bytes) {
  if (payload_bytes <= max_block_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "block ", KeyToHex(key), " payload is ", FormatBytes(payload_bytes),
      ", over the server's limit of ", FormatBytes(max_block_bytes), " (--max-block-bytes)"));
}

}  // namespace kvcache
