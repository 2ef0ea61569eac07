// The block shape's binary form (shared by the meta record, the data channel header and the
// worker's KV block header) and the one block-size check.

#include "common/block_shape.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace kvcache {
namespace {

constexpr BlockShape kShape{1, 3, 32, 8, 128, 16};

TEST(BlockShapeCodecTest, RoundTripsEveryField) {
  const BlockShape odd{0xffffffffu, 0, 0x01020304u, 7, 0x80000000u, 1};
  for (const BlockShape& shape : {kShape, odd, BlockShape{}}) {
    char bytes[kBlockShapeBytes];
    EncodeBlockShape(shape, bytes);
    EXPECT_EQ(DecodeBlockShape(bytes), shape);
  }
}

TEST(BlockShapeCodecTest, GoldenLayoutIsSixLittleEndianU32InFieldOrder) {
  std::string bytes(kBlockShapeBytes, '\0');
  EncodeBlockShape(BlockShape{1, 3, 0x0102, 8, 0x01020304, 16}, bytes.data());
  EXPECT_EQ(absl::BytesToHexString(bytes),
            "01000000"    // format_version
            "03000000"    // dtype
            "02010000"    // num_layers
            "08000000"    // num_kv_heads
            "04030201"    // head_dim
            "10000000");  // num_tokens
}

TEST(BlockPayloadBytesTest, IsTheHeaderPlusKAndVOfEveryLayer) {
  // 32 + layers * 2 * tokens * heads * dim * dtype bytes.
  EXPECT_EQ(*BlockPayloadBytes(BlockShape{1, 1, 2, 2, 16, 16}), 32u + 2 * 2 * 16 * 2 * 16 * 4);
  EXPECT_EQ(*BlockPayloadBytes(BlockShape{1, 2, 2, 2, 16, 16}), 32u + 2 * 2 * 16 * 2 * 16 * 2);
  EXPECT_EQ(*BlockPayloadBytes(BlockShape{1, 3, 1, 1, 1, 1}), 32u + 2 * 2);
  EXPECT_EQ(BlockPayloadBytes(BlockShape{2, 1, 1, 1, 1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockPayloadBytes(BlockShape{1, 4, 1, 1, 1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const uint32_t big = 0xffffffffu;
  EXPECT_EQ(BlockPayloadBytes(BlockShape{1, 1, big, big, big, big}).status().code(),
            absl::StatusCode::kInvalidArgument);  // Overflows 64 bits.
}

TEST(CheckPayloadMatchesShapeTest, NamesTheSizeTheShapeNeeds) {
  const Key key{};
  const BlockShape shape{1, 1, 1, 1, 1, 16};  // 32 + 8 * 16 = 160 bytes.
  EXPECT_TRUE(CheckPayloadMatchesShape(key, shape, 160).ok());
  for (uint64_t wrong : {uint64_t{0}, uint64_t{1}, uint64_t{159}, uint64_t{161},
                         uint64_t{1} << 40}) {
    absl::Status s = CheckPayloadMatchesShape(key, shape, wrong);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << wrong;
    EXPECT_NE(s.message().find("needs 160 bytes"), absl::string_view::npos) << s.message();
  }
  // A shape of all zeros says nothing: opaque bytes are not checked.
  EXPECT_TRUE(CheckPayloadMatchesShape(key, BlockShape{}, 1).ok());
}

TEST(CheckBlockSizeTest, AcceptsUpToTheLimit) {
  Key key;
  EXPECT_TRUE(CheckBlockSize(key, 0, 1024).ok());
  EXPECT_TRUE(CheckBlockSize(key, 1024, 1024).ok());
}

TEST(CheckBlockSizeTest, RefusesOverTheLimitNamingBlockSizesAndFlag) {
  Key key;
  key.bytes[0] = 0xab;
  const absl::Status s = CheckBlockSize(key, (4 << 20) + 1, 4 << 20);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find(KeyToHex(key)), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("4.0 MiB"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--max-block-bytes"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kvcache
