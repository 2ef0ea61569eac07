#include "worker/kv_block.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/little_endian.h"

namespace kvcache {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'B', '1'};
constexpr size_t kShapeAt = 4;
constexpr size_t kReservedAt = kShapeAt + kBlockShapeBytes;
static_assert(kReservedAt + 4 == kKvBlockHeaderBytes);

// The data is float32 in the host's byte order, which the format fixes as little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "KV block data is little-endian f32: a big-endian host must swap it");

}  // namespace

BlockShape KvBlockShape(const ModelConfig& config, uint32_t block_size) {
  BlockShape s;
  s.format_version = kKvBlockFormatVersion;
  s.dtype = kKvBlockDTypeF32;
  s.num_layers = config.num_layers;
  s.num_kv_heads = config.num_kv_heads;
  s.head_dim = config.head_dim;
  s.num_tokens = block_size;
  return s;
}

size_t KvBlockFloats(const BlockShape& s) {
  return static_cast<size_t>(s.num_layers) * 2 * s.num_tokens * s.num_kv_heads * s.head_dim;
}

void EncodeKvBlockTo(const BlockShape& shape, absl::Span<const float> page, char* out) {
  std::memcpy(out, kMagic, 4);
  EncodeBlockShape(shape, out + kShapeAt);
  PutLittleEndian<uint32_t>(out + kReservedAt, 0);
  std::memcpy(out + kKvBlockHeaderBytes, page.data(), page.size() * sizeof(float));
}

std::string EncodeKvBlock(const BlockShape& shape, absl::Span<const float> page) {
  std::string out(kKvBlockHeaderBytes + page.size() * sizeof(float), '\0');
  EncodeKvBlockTo(shape, page, out.data());
  return out;
}

absl::Status CheckKvBlock(absl::string_view payload, const BlockShape& expected) {
  if (payload.size() < kKvBlockHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block of ", payload.size(), " bytes is shorter than its header"));
  }
  if (std::memcmp(payload.data(), kMagic, 4) != 0) {
    return absl::InvalidArgumentError("KV block has a bad magic (not a kvcache KV block)");
  }
  const char* p = payload.data();
  const BlockShape got = DecodeBlockShape(p + kShapeAt);
  struct Field {
    const char* name;
    uint32_t got, want;
  };
  const Field fields[] = {
      {"format_version", got.format_version, expected.format_version},
      {"dtype", got.dtype, expected.dtype},
      {"num_layers", got.num_layers, expected.num_layers},
      {"num_kv_heads", got.num_kv_heads, expected.num_kv_heads},
      {"head_dim", got.head_dim, expected.head_dim},
      {"num_tokens", got.num_tokens, expected.num_tokens},
  };
  for (const Field& f : fields) {
    if (f.got != f.want) {
      return absl::InvalidArgumentError(
          absl::StrCat("KV block has ", f.name, " ", f.got, ", expected ", f.want));
    }
  }
  absl::StatusOr<uint64_t> need = BlockPayloadBytes(expected);  // The server checks the same.
  if (!need.ok()) return need.status();
  if (payload.size() != *need) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block has ", payload.size(), " bytes, its shape needs ", *need));
  }
  return absl::OkStatus();
}

absl::Status DecodeKvBlock(absl::string_view payload, const BlockShape& expected,
                           absl::Span<float> page) {
  if (absl::Status s = CheckKvBlock(payload, expected); !s.ok()) return s;
  const size_t floats = KvBlockFloats(expected);
  if (page.size() != floats) {
    return absl::InvalidArgumentError(
        absl::StrCat("page of ", page.size(), " floats for a block of ", floats));
  }
  std::memcpy(page.data(), payload.data() + kKvBlockHeaderBytes, floats * sizeof(float));
  return absl::OkStatus();
}

}  // namespace kvcache
