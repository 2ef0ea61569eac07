// The kvcache data channel's wire format (docs/data-channel.md): the one codec of its
// frames, shared by the server (services/data_channel_server.cc) and the client
// (client/data_connection.cc). All integers little-endian.
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
//
// The same-host path (docs/data-channel.md, "Same-host path"): the same frames over a Unix
// socket, but payloads move through a shared-memory region the server makes per connection
// and passes with its hello reply, so only headers cross the socket:
//   hello     as above; server -> client: u8 0 | u64 region_bytes, the region's memfd
//             attached (SCM_RIGHTS)
//   GET       server: (u8 kBlock | BlockHeader | u64 offset) for each leading key held, the
//                     payload at region[offset, offset + payload_bytes); u8 kWait when the
//                     next block does not fit after those sent: the client answers u8 kAck
//                     once it has copied them out, and the server starts over at offset 0
//   PUT       client: u8 op=2 | ns[32] | BlockHeader | u64 offset, the payload in the region
// Each side bounds-checks every offset and length against the region before touching it.
//
// Thread safety: constants and pure functions.

#ifndef KVCACHE_COMMON_DATA_CHANNEL_WIRE_H_
#define KVCACHE_COMMON_DATA_CHANNEL_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/block_shape.h"
#include "common/key.h"
#include "common/little_endian.h"

namespace kvcache {
namespace data_channel {

inline constexpr char kMagic[4] = {'K', 'V', 'D', 'C'};
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHelloBytes = 4 + 4 + kKeyBytes;
inline constexpr size_t kBlockHeaderBytes = 32 + 32 + 1 + 8 + kBlockShapeBytes + 8;
inline constexpr size_t kErrorHeadBytes = 1 + 4;  // ErrorBody without its message.
inline constexpr uint32_t kMaxErrorMessageBytes = 1 << 20;
inline constexpr uint32_t kMaxKeysPerGet = 65536;

enum Op : uint8_t { kGet = 1, kPut = 2, kAck = 3 /* same-host only */ };
enum Reply : uint8_t { kBlock = 1, kEnd = 2, kStored = 3, kError = 4, kWait = 5 /* same-host */ };
// Same-host path: the hello reply (u8 0 | u64 region_bytes) and a payload's region offset.
inline constexpr size_t kLocalHelloReplyBytes = 1 + 8;
inline constexpr size_t kOffsetBytes = 8;
// Same-host: where the payload after one ending at `end` goes in the region (offsets start
// on a cache line). Both sides place payloads by it.
inline constexpr uint64_t NextRegionOffset(uint64_t end) { return (end + 63) & ~uint64_t{63}; }
// The byte after kStored.
enum PutOutcomeByte : uint8_t {
  kOutcomeStored = 0,
  kOutcomeAlreadyPresent = 1,
  kOutcomeNotAdmitted = 2,
};

inline void PutU32(char* p, uint32_t v) { PutLittleEndian(p, v); }
inline uint32_t GetU32(const char* p) { return GetLittleEndian<uint32_t>(p); }

// REQUIRES: `out` has kHelloBytes.
void EncodeHello(const Key& token, char* out);
// The token of a hello.
//   INVALID_ARGUMENT  not kHelloBytes long, not "KVDC", or another version.
absl::StatusOr<Key> DecodeHello(absl::string_view in);

struct BlockHeader {
  Key key;
  std::optional<Key> parent;
  uint64_t checksum = 0;
  BlockShape shape;
  uint64_t payload_bytes = 0;
};

// REQUIRES: `out` has kBlockHeaderBytes.
void EncodeBlockHeader(const BlockHeader& h, char* out);
//   INVALID_ARGUMENT  not kBlockHeaderBytes long, or a has_parent byte other than 0 or 1.
absl::StatusOr<BlockHeader> DecodeBlockHeader(absl::string_view in);

// The whole error reply: u8 kError | ErrorBody. A message over kMaxErrorMessageBytes is cut.
std::string EncodeErrorReply(const absl::Status& error);

struct ErrorHead {
  absl::StatusCode code = absl::StatusCode::kInternal;  // Never kOk: read as INTERNAL.
  uint32_t message_bytes = 0;
};
//   INVALID_ARGUMENT  not kErrorHeadBytes long, or a message over kMaxErrorMessageBytes.
absl::StatusOr<ErrorHead> DecodeErrorHead(absl::string_view in);

}  // namespace data_channel
}  // namespace kvcache

#endif  // KVCACHE_COMMON_DATA_CHANNEL_WIRE_H_
