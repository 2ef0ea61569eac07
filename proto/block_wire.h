// Zero-copy wire encodings of the two messages that carry block payloads.
//
// A KV block is hundreds of KiB to MiB: copying it into a protobuf and then serializing it
// (two copies) costs more CPU than sending it. These build the exact protobuf wire bytes of
// a kvcache.v1 GetResponse / PutRequest as a grpc::ByteBuffer of two slices: a small
// header (copied) and the payload, referenced where it lies. Any protobuf parser reads the
// result as the ordinary message.
//
// Thread safety: pure functions.

#ifndef KVCACHE_PROTO_BLOCK_WIRE_H_
#define KVCACHE_PROTO_BLOCK_WIRE_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <memory>

#include "absl/strings/string_view.h"
#include "kvcache/v1/cache.pb.h"

namespace kvcache {

// A GetResponse{index, block = header + payload}. `header` must have no payload. The payload
// slice holds a reference on `owner`, which must keep `payload` alive; gRPC drops the
// reference once the bytes are sent.
grpc::ByteBuffer EncodeGetResponse(uint32_t index, const v1::Block& header,
                                   absl::string_view payload, std::shared_ptr<const void> owner);

// A PutRequest{namespace_id, blocks = [header + payload]}: `namespace_id` may be empty.
// `on_release(arg)` runs when gRPC no longer needs `payload` (after the bytes are sent or the
// call is gone); until then the caller keeps `payload` alive.
grpc::ByteBuffer EncodePutRequest(absl::string_view namespace_id, const v1::Block& header,
                                  absl::string_view payload, void (*on_release)(void*),
                                  void* arg);

}  // namespace kvcache

#endif  // KVCACHE_PROTO_BLOCK_WIRE_H_
