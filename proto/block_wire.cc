#include "proto/block_wire.h"

#include <grpcpp/support/slice.h>

#include <string>

namespace kvcache {
namespace {

// Protobuf wire format: a tag is (field_number << 3) | wire_type.
constexpr uint8_t kVarint = 0;
constexpr uint8_t kLengthDelimited = 2;
constexpr uint8_t Tag(int field, uint8_t type) { return static_cast<uint8_t>(field << 3 | type); }

// Field numbers of cache.proto.
constexpr int kGetResponseBlock = 1;
constexpr int kGetResponseIndex = 2;
constexpr int kPutRequestNamespace = 1;
constexpr int kPutRequestBlocks = 2;
constexpr int kBlockPayload = 3;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Appends the bytes of a Block field (tag, length, header fields, payload tag and length):
// everything but the payload itself, which must follow.
void AppendBlockPrefix(std::string* out, int field, const v1::Block& header, size_t payload) {
  const std::string fields = header.SerializeAsString();
  const size_t block_len = fields.size() + 1 + VarintSize(payload) + payload;
  out->push_back(static_cast<char>(Tag(field, kLengthDelimited)));
  PutVarint(out, block_len);
  out->append(fields);
  out->push_back(static_cast<char>(Tag(kBlockPayload, kLengthDelimited)));
  PutVarint(out, payload);
}

void ReleaseOwner(void* owner) { delete static_cast<std::shared_ptr<const void>*>(owner); }

}  // namespace

grpc::ByteBuffer EncodeGetResponse(uint32_t index, const v1::Block& header,
                                   absl::string_view payload, std::shared_ptr<const void> owner) {
  std::string prefix;
  prefix.push_back(static_cast<char>(Tag(kGetResponseIndex, kVarint)));
  PutVarint(&prefix, index);
  AppendBlockPrefix(&prefix, kGetResponseBlock, header, payload.size());
  auto* ref = new std::shared_ptr<const void>(std::move(owner));
  grpc::Slice body(const_cast<char*>(payload.data()), payload.size(), &ReleaseOwner, ref);
  grpc::Slice slices[2] = {grpc::Slice(prefix), std::move(body)};
  return grpc::ByteBuffer(slices, 2);
}

grpc::ByteBuffer EncodePutRequest(absl::string_view namespace_id, const v1::Block& header,
                                  absl::string_view payload, void (*on_release)(void*),
                                  void* arg) {
  std::string prefix;
  if (!namespace_id.empty()) {
    prefix.push_back(static_cast<char>(Tag(kPutRequestNamespace, kLengthDelimited)));
    PutVarint(&prefix, namespace_id.size());
    prefix.append(namespace_id.data(), namespace_id.size());
  }
  AppendBlockPrefix(&prefix, kPutRequestBlocks, header, payload.size());
  grpc::Slice body(const_cast<char*>(payload.data()), payload.size(), on_release, arg);
  grpc::Slice slices[2] = {grpc::Slice(prefix), std::move(body)};
  return grpc::ByteBuffer(slices, 2);
}

}  // namespace kvcache
