#include "common/data_channel_wire.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace kvcache {
namespace data_channel {
namespace {

// BlockHeader field offsets.
constexpr size_t kParentAt = kKeyBytes;
constexpr size_t kHasParentAt = kParentAt + kKeyBytes;
constexpr size_t kChecksumAt = kHasParentAt + 1;
constexpr size_t kShapeAt = kChecksumAt + 8;
constexpr size_t kPayloadBytesAt = kShapeAt + kBlockShapeBytes;
static_assert(kPayloadBytesAt + 8 == kBlockHeaderBytes);
static_assert(kBlockHeaderBytes == 105, "docs/data-channel.md fixes the header at 105 bytes");

absl::Status Truncated(absl::string_view what, size_t got, size_t want) {
  return absl::InvalidArgumentError(
      absl::StrCat("data channel: ", what, " of ", got, " bytes, expected ", want));
}

}  // namespace

void EncodeHello(const Key& token, char* out) {
  std::memcpy(out, kMagic, sizeof(kMagic));
  PutLittleEndian<uint32_t>(out + 4, kVersion);
  std::memcpy(out + 8, token.bytes.data(), kKeyBytes);
}

absl::StatusOr<Key> DecodeHello(absl::string_view in) {
  if (in.size() != kHelloBytes) return Truncated("hello", in.size(), kHelloBytes);
  if (std::memcmp(in.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError("data channel: hello has a bad magic (not \"KVDC\")");
  }
  if (const uint32_t version = GetLittleEndian<uint32_t>(in.data() + 4); version != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat("data channel: hello has version ", version,
                                                   ", this side speaks ", kVersion));
  }
  Key token;
  std::memcpy(token.bytes.data(), in.data() + 8, kKeyBytes);
  return token;
}

void EncodeBlockHeader(const BlockHeader& h, char* out) {
  std::memcpy(out, h.key.bytes.data(), kKeyBytes);
  const Key parent = h.parent.value_or(Key{});
  std::memcpy(out + kParentAt, parent.bytes.data(), kKeyBytes);
  out[kHasParentAt] = h.parent ? 1 : 0;
  PutLittleEndian<uint64_t>(out + kChecksumAt, h.checksum);
  EncodeBlockShape(h.shape, out + kShapeAt);
  PutLittleEndian<uint64_t>(out + kPayloadBytesAt, h.payload_bytes);
}

absl::StatusOr<BlockHeader> DecodeBlockHeader(absl::string_view in) {
  if (in.size() != kBlockHeaderBytes) {
    return Truncated("block header", in.size(), kBlockHeaderBytes);
  }
  const char* p = in.data();
  const uint8_t has_parent = static_cast<uint8_t>(p[kHasParentAt]);
  if (has_parent > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data channel: block header has has_parent ", has_parent, ", expected 0 or 1"));
  }
  BlockHeader h;
  std::memcpy(h.key.bytes.data(), p, kKeyBytes);
  if (has_parent) {
    Key parent;
    std::memcpy(parent.bytes.data(), p + kParentAt, kKeyBytes);
    h.parent = parent;
  }
  h.checksum = GetLittleEndian<uint64_t>(p + kChecksumAt);
  h.shape = DecodeBlockShape(p + kShapeAt);
  h.payload_bytes = GetLittleEndian<uint64_t>(p + kPayloadBytesAt);
  return h;
}

std::string EncodeErrorReply(const absl::Status& error) {
  const absl::string_view message =
      error.message().substr(0, std::min<size_t>(error.message().size(), kMaxErrorMessageBytes));
  std::string frame(1 + kErrorHeadBytes, '\0');
  frame[0] = static_cast<char>(kError);
  frame[1] = static_cast<char>(error.code());
  PutLittleEndian<uint32_t>(frame.data() + 2, static_cast<uint32_t>(message.size()));
  frame.append(message.data(), message.size());
  return frame;
}

absl::StatusOr<ErrorHead> DecodeErrorHead(absl::string_view in) {
  if (in.size() != kErrorHeadBytes) return Truncated("error reply", in.size(), kErrorHeadBytes);
  ErrorHead head;
  head.code = static_cast<absl::StatusCode>(static_cast<uint8_t>(in[0]));
  if (head.code == absl::StatusCode::kOk) head.code = absl::StatusCode::kInternal;
  head.message_bytes = GetLittleEndian<uint32_t>(in.data() + 1);
  if (head.message_bytes > kMaxErrorMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat("data channel: error reply of ",
                                                   head.message_bytes, " message bytes, at most ",
                                                   kMaxErrorMessageBytes));
  }
  return head;
}

}  // namespace data_channel
}  // namespace kvcache
