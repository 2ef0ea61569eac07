// The one block shape / header <-> kvcache.v1 conversion.

#include "proto/block_proto.h"

#include "gtest/gtest.h"

namespace kvcache {
namespace {

TEST(BlockProtoTest, ShapeRoundTripsEveryField) {
  const BlockShape shape{1, 3, 32, 8, 128, 16};
  v1::BlockShape pb;
  ShapeToProto(shape, &pb);
  EXPECT_EQ(pb.format_version(), 1u);
  EXPECT_EQ(pb.dtype(), v1::DTYPE_BF16);
  EXPECT_EQ(pb.num_layers(), 32u);
  EXPECT_EQ(pb.num_kv_heads(), 8u);
  EXPECT_EQ(pb.head_dim(), 128u);
  EXPECT_EQ(pb.num_tokens(), 16u);
  EXPECT_EQ(ShapeFromProto(pb), shape);
}

TEST(BlockProtoTest, ShapeSurvivesTheWire) {
  // An unknown dtype is kept as its number (the cache does not interpret shapes).
  const BlockShape shape{7, 99, 1, 2, 3, 4};
  v1::BlockShape pb;
  ShapeToProto(shape, &pb);
  v1::BlockShape parsed;
  ASSERT_TRUE(parsed.ParseFromString(pb.SerializeAsString()));
  EXPECT_EQ(ShapeFromProto(parsed), shape);
}

TEST(BlockProtoTest, HeaderHasEveryFieldButThePayload) {
  Key key, parent;
  key.bytes[0] = 1;
  parent.bytes[0] = 2;
  v1::Block b;
  FillBlockHeader(key, parent, 0x1234, BlockShape{1, 1, 2, 2, 16, 16}, &b);
  EXPECT_EQ(b.key(), std::string(key.view()));
  EXPECT_EQ(b.parent_key(), std::string(parent.view()));
  EXPECT_EQ(b.checksum(), 0x1234u);
  EXPECT_EQ(ShapeFromProto(b.shape()), (BlockShape{1, 1, 2, 2, 16, 16}));
  EXPECT_TRUE(b.payload().empty());

  v1::Block root;
  FillBlockHeader(key, std::nullopt, 0, BlockShape{}, &root);
  EXPECT_TRUE(root.parent_key().empty());
}

}  // namespace
}  // namespace kvcache
