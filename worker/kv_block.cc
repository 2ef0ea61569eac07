#include "worker/kv_block.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace kvcache {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'B', '1'};

void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }  // Little-endian host.
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

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

std::string EncodeKvBlock(const BlockShape& shape, absl::Span<const float> page) {
  std::string out(kKvBlockHeaderBytes + page.size() * sizeof(float), '\0');
  std::memcpy(&out[0], kMagic, 4);
  PutU32(&out[4], shape.format_version);
  PutU32(&out[8], shape.dtype);
  PutU32(&out[12], shape.num_layers);
  PutU32(&out[16], shape.num_kv_heads);
  PutU32(&out[20], shape.head_dim);
  PutU32(&out[24], shape.num_tokens);
  PutU32(&out[28], 0);
  std::memcpy(&out[kKvBlockHeaderBytes], page.data(), page.size() * sizeof(float));
  return out;
}

absl::Status DecodeKvBlock(absl::string_view payload, const BlockShape& expected,
                           absl::Span<float> page) {
  if (payload.size() < kKvBlockHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block of ", payload.size(), " bytes is shorter than its header"));
  }
  if (std::memcmp(payload.data(), kMagic, 4) != 0) {
    return absl::InvalidArgumentError("KV block has a bad magic (not a kvcache KV block)");
  }
  const char* p = payload.data();
  struct Field {
    const char* name;
    uint32_t got, want;
  };
  const Field fields[] = {
      {"format_version", GetU32(p + 4), expected.format_version},
      {"dtype", GetU32(p + 8), expected.dtype},
      {"num_layers", GetU32(p + 12), expected.num_layers},
      {"num_kv_heads", GetU32(p + 16), expected.num_kv_heads},
      {"head_dim", GetU32(p + 20), expected.head_dim},
      {"num_tokens", GetU32(p + 24), expected.num_tokens},
  };
  for (const Field& f : fields) {
    if (f.got != f.want) {
      return absl::InvalidArgumentError(
          absl::StrCat("KV block has ", f.name, " ", f.got, ", expected ", f.want));
    }
  }
  const size_t floats = KvBlockFloats(expected);
  if (payload.size() != kKvBlockHeaderBytes + floats * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat("KV block has ", payload.size(),
                                                   " bytes, its shape needs ",
                                                   kKvBlockHeaderBytes + floats * sizeof(float)));
  }
  if (page.size() != floats) {
    return absl::InvalidArgumentError(
        absl::StrCat("page of ", page.size(), " floats for a block of ", floats));
  }
  std::memcpy(page.data(), p + kKvBlockHeaderBytes, floats * sizeof(float));
  return absl::OkStatus();
}

}  // namespace kvcache
