// Fuzzes the data channel's frame decoders (common/data_channel_wire.h) with any bytes: each
// must answer a value or INVALID_ARGUMENT, and what it accepts must encode back to the same
// bytes (the header's parent bytes excepted when has_parent is 0: they are ignored).

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/data_channel_wire.h"

namespace dc = kvcache::data_channel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);

  if (absl::StatusOr<kvcache::Key> token = dc::DecodeHello(in); token.ok()) {
    char out[dc::kHelloBytes];
    dc::EncodeHello(*token, out);
    if (absl::string_view(out, sizeof(out)) != in) std::abort();
  } else if (token.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }

  if (absl::StatusOr<dc::BlockHeader> h = dc::DecodeBlockHeader(in); h.ok()) {
    char out[dc::kBlockHeaderBytes];
    dc::EncodeBlockHeader(*h, out);
    absl::StatusOr<dc::BlockHeader> again = dc::DecodeBlockHeader(absl::string_view(out, sizeof(out)));
    if (!again.ok() || again->key != h->key || again->parent != h->parent ||
        again->checksum != h->checksum || again->payload_bytes != h->payload_bytes) {
      std::abort();
    }
    if (h->parent && absl::string_view(out, sizeof(out)) != in) std::abort();
  } else if (h.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }

  if (absl::StatusOr<dc::ErrorHead> head = dc::DecodeErrorHead(in); head.ok()) {
    if (head->code == absl::StatusCode::kOk || head->message_bytes > dc::kMaxErrorMessageBytes) {
      std::abort();
    }
  } else if (head.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }

  // An error reply carrying these bytes as its message reads back whole.
  const std::string reply = dc::EncodeErrorReply(absl::DataLossError(in));
  absl::StatusOr<dc::ErrorHead> head =
      dc::DecodeErrorHead(absl::string_view(reply).substr(1, dc::kErrorHeadBytes));
  if (!head.ok() || head->code != absl::StatusCode::kDataLoss || head->message_bytes != size ||
      reply.substr(1 + dc::kErrorHeadBytes) != in) {
    std::abort();
  }
  return 0;
}
