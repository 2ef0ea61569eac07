// The kvcache data channel's wire format (docs/data-channel.md), shared by the server and
// the client. All integers little-endian.
//
//   hello     client -> server: "KVDC" | u32 version (1) | token[32]
//             server -> client: u8 0 (accepted); the server closes on a bad hello
//   GET       client: u8 op=1 | ns[32] | u32 n | key[32] x n
//             server: (u8 kBlock | BlockHeader | payload) for each leading key held,
//                     then u8 kEnd; or u8 kError | ErrorBody
//   PUT       client: u8 op=2 | ns[32] | BlockHeader | payload
//             server: u8 kStored | u8 outcome (0 stored, 1 already present, 2 not admitted)
//                     or u8 kError | ErrorBody
//   BlockHeader: key[32] | parent[32] | u8 has_parent | u64 checksum | u32 shape[6] |
//                u64 payload_bytes                                        (105 bytes)
//   ErrorBody:   u8 absl::StatusCode | u32 message_bytes | message
//
// After a kError the server closes the connection if it could not read the request whole
// (a bad op, an oversized payload); otherwise the connection stays usable.

#ifndef KVCACHE_COMMON_DATA_CHANNEL_WIRE_H_
#define KVCACHE_COMMON_DATA_CHANNEL_WIRE_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "common/block_shape.h"
#include "common/key.h"
#include "common/little_endian.h"

namespace kvcache {
namespace data_channel {

inline constexpr char kMagic[4] = {'K', 'V', 'D', 'C'};
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHelloBytes = 4 + 4 + kKeyBytes;
inline constexpr size_t kBlockHeaderBytes = 32 + 32 + 1 + 8 + 24 + 8;
inline constexpr uint32_t kMaxKeysPerGet = 65536;

enum Op : uint8_t { kGet = 1, kPut = 2 };
enum Reply : uint8_t { kBlock = 1, kEnd = 2, kStored = 3, kError = 4 };

struct BlockHeader {
  Key key;
  std::optional<Key> parent;
  uint64_t checksum = 0;
  BlockShape shape;
  uint64_t payload_bytes = 0;
};

inline void PutU32(char* p, uint32_t v) { PutLittleEndian(p, v); }
inline void PutU64(char* p, uint64_t v) { PutLittleEndian(p, v); }
inline uint32_t GetU32(const char* p) { return GetLittleEndian<uint32_t>(p); }
inline uint64_t GetU64(const char* p) { return GetLittleEndian<uint64_t>(p); }

// REQUIRES: `out` has kBlockHeaderBytes.
inline void EncodeBlockHeader(const BlockHeader& h, char* out) {
  std::memcpy(out, h.key.bytes.data(), kKeyBytes);
  const Key parent = h.parent.value_or(Key{});
  std::memcpy(out + 32, parent.bytes.data(), kKeyBytes);
  out[64] = h.parent ? 1 : 0;
  PutU64(out + 65, h.checksum);
  const uint32_t shape[6] = {h.shape.format_version, h.shape.dtype,    h.shape.num_layers,
                             h.shape.num_kv_heads,   h.shape.head_dim, h.shape.num_tokens};
  for (int i = 0; i < 6; ++i) PutU32(out + 73 + 4 * i, shape[i]);
  PutU64(out + 97, h.payload_bytes);
}

inline BlockHeader DecodeBlockHeader(const char* in) {
  BlockHeader h;
  std::memcpy(h.key.bytes.data(), in, kKeyBytes);
  if (in[64] != 0) {
    Key parent;
    std::memcpy(parent.bytes.data(), in + 32, kKeyBytes);
    h.parent = parent;
  }
  h.checksum = GetU64(in + 65);
  uint32_t* shape[6] = {&h.shape.format_version, &h.shape.dtype,    &h.shape.num_layers,
                        &h.shape.num_kv_heads,   &h.shape.head_dim, &h.shape.num_tokens};
  for (int i = 0; i < 6; ++i) *shape[i] = GetU32(in + 73 + 4 * i);
  h.payload_bytes = GetU64(in + 97);
  return h;
}

}  // namespace data_channel
}  // namespace kvcache

#endif  // KVCACHE_COMMON_DATA_CHANNEL_WIRE_H_
