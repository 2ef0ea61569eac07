// The zero-copy encodings of GetResponse / PutRequest: any protobuf parser must read them as
// the ordinary messages, and the payload must be referenced, not copied.

#include "proto/block_wire.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/block_proto.h"

namespace kvcache {
namespace {

v1::Block Header() {
  Key key, parent;
  key.bytes[0] = 0xaa;
  parent.bytes[31] = 0xbb;
  v1::Block b;
  FillBlockHeader(key, parent, 0xfeedull, BlockShape{1, 1, 2, 2, 16, 16}, &b);
  return b;
}

template <typename Message>
Message Parse(grpc::ByteBuffer* buffer) {
  Message m;
  grpc::ProtoBufferReader reader(buffer);
  EXPECT_TRUE(m.ParseFromZeroCopyStream(&reader));
  return m;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

void CountRelease(void* arg) { ++*static_cast<int*>(arg); }

TEST(BlockWireTest, PutRequestReadsAsTheProtobufMessage) {
  const std::string payload(300000, 'p');  // Long enough for a multi-byte length.
  int released = 0;
  {
    grpc::ByteBuffer buffer =
        EncodePutRequest(std::string(32, 'n'), Header(), payload, &CountRelease, &released);
    v1::PutRequest expected;
    expected.set_namespace_id(std::string(32, 'n'));
    *expected.add_blocks() = Header();
    expected.mutable_blocks(0)->set_payload(payload);
    // The same fields (the payload goes last, which parsers accept in any order).
    const std::string bytes = Flatten(buffer);
    EXPECT_EQ(bytes.size(), expected.ByteSizeLong());
    EXPECT_EQ(bytes.substr(bytes.size() - payload.size()), payload);
    const v1::PutRequest parsed = Parse<v1::PutRequest>(&buffer);
    EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
    EXPECT_EQ(parsed.namespace_id(), std::string(32, 'n'));
    ASSERT_EQ(parsed.blocks_size(), 1);
    EXPECT_EQ(parsed.blocks(0).payload(), payload);
    EXPECT_EQ(parsed.blocks(0).checksum(), 0xfeedu);
    EXPECT_EQ(released, 0);  // Still referenced.
  }
  EXPECT_EQ(released, 1);  // The payload was referenced by the buffer, then let go.
}

TEST(BlockWireTest, PutRequestWithoutNamespaceOmitsTheField) {
  int released = 0;
  grpc::ByteBuffer buffer = EncodePutRequest("", Header(), "xyz", &CountRelease, &released);
  const v1::PutRequest parsed = Parse<v1::PutRequest>(&buffer);
  EXPECT_TRUE(parsed.namespace_id().empty());
  ASSERT_EQ(parsed.blocks_size(), 1);
  EXPECT_EQ(parsed.blocks(0).payload(), "xyz");
}

TEST(BlockWireTest, GetResponseReadsAsTheProtobufMessage) {
  auto owner = std::make_shared<std::string>(5000, 'g');
  std::weak_ptr<std::string> watch = owner;
  {
    grpc::ByteBuffer buffer = EncodeGetResponse(7, Header(), *owner, owner);
    owner.reset();
    EXPECT_FALSE(watch.expired());  // The buffer keeps the payload alive.
    v1::GetResponse expected;
    expected.set_index(7);
    *expected.mutable_block() = Header();
    expected.mutable_block()->set_payload(std::string(5000, 'g'));
    const v1::GetResponse parsed = Parse<v1::GetResponse>(&buffer);
    EXPECT_EQ(parsed.index(), 7u);
    EXPECT_EQ(parsed.block().payload(), std::string(5000, 'g'));
    EXPECT_EQ(parsed.block().key(), Header().key());
    EXPECT_EQ(Flatten(buffer).size(), expected.ByteSizeLong());
    EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
  }
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace kvcache
