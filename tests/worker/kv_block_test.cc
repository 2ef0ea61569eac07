// The KV block codec: round trips and the rejection of blocks of another shape.

#include "worker/kv_block.h"

#include <cstring>

#include "gtest/gtest.h"
#include "worker/make_model.h"

namespace kvcache {
namespace {

class KvBlockTest : public ::testing::Test {
 protected:
  KvBlockTest() : config_(*PresetConfig("tiny")), shape_(KvBlockShape(config_, 16)) {
    page_.resize(KvBlockFloats(shape_));
    for (size_t i = 0; i < page_.size(); ++i) page_[i] = static_cast<float>(i) * 0.25f - 7.0f;
  }
  ModelConfig config_;
  BlockShape shape_;
  std::vector<float> page_;
};

TEST_F(KvBlockTest, ShapeDescribesTheModel) {
  EXPECT_EQ(shape_.format_version, 1u);
  EXPECT_EQ(shape_.dtype, 1u);  // f32
  EXPECT_EQ(shape_.num_layers, 3u);
  EXPECT_EQ(shape_.num_kv_heads, 2u);
  EXPECT_EQ(shape_.head_dim, 16u);
  EXPECT_EQ(shape_.num_tokens, 16u);
  EXPECT_EQ(KvBlockFloats(shape_), 3u * 2 * 16 * 2 * 16);
}

TEST_F(KvBlockTest, RoundTripIsExact) {
  const std::string payload = EncodeKvBlock(shape_, page_);
  EXPECT_EQ(payload.size(), kKvBlockHeaderBytes + page_.size() * 4);
  EXPECT_EQ(payload.substr(0, 4), "KVB1");
  std::vector<float> back(page_.size(), 0.0f);
  ASSERT_TRUE(DecodeKvBlock(payload, shape_, absl::MakeSpan(back)).ok());
  EXPECT_EQ(back, page_);
}

TEST_F(KvBlockTest, HeaderLayoutIsLittleEndianAsDocumented) {
  const std::string payload = EncodeKvBlock(shape_, page_);
  auto u32 = [&](size_t off) {
    return static_cast<uint32_t>(static_cast<uint8_t>(payload[off])) |
           static_cast<uint32_t>(static_cast<uint8_t>(payload[off + 1])) << 8 |
           static_cast<uint32_t>(static_cast<uint8_t>(payload[off + 2])) << 16 |
           static_cast<uint32_t>(static_cast<uint8_t>(payload[off + 3])) << 24;
  };
  EXPECT_EQ(u32(4), 1u);
  EXPECT_EQ(u32(8), 1u);
  EXPECT_EQ(u32(12), 3u);
  EXPECT_EQ(u32(16), 2u);
  EXPECT_EQ(u32(20), 16u);
  EXPECT_EQ(u32(24), 16u);
  EXPECT_EQ(u32(28), 0u);
  float first;
  std::memcpy(&first, payload.data() + 32, 4);
  EXPECT_EQ(first, page_[0]);
}

TEST_F(KvBlockTest, RejectsOtherShapes) {
  std::vector<float> out(page_.size());
  struct Case {
    const char* field;
    uint32_t BlockShape::*member;
    uint32_t value;
  };
  const Case cases[] = {
      {"num_layers", &BlockShape::num_layers, 4},
      {"num_kv_heads", &BlockShape::num_kv_heads, 4},
      {"head_dim", &BlockShape::head_dim, 8},
      {"num_tokens", &BlockShape::num_tokens, 32},
      {"dtype", &BlockShape::dtype, 3},
      {"format_version", &BlockShape::format_version, 2},
  };
  for (const Case& c : cases) {
    // A block written with another shape, read by this model...
    BlockShape shape = shape_;
    shape.*c.member = c.value;
    std::vector<float> other(KvBlockFloats(shape), 1.0f);
    absl::Status st = DecodeKvBlock(EncodeKvBlock(shape, other), shape_, absl::MakeSpan(out));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(c.field), std::string::npos) << st.message();
  }
}

TEST_F(KvBlockTest, RejectsCorruptPayloads) {
  std::vector<float> out(page_.size());
  const std::string good = EncodeKvBlock(shape_, page_);
  absl::Status truncated = DecodeKvBlock(good.substr(0, 20), shape_, absl::MakeSpan(out));
  EXPECT_EQ(truncated.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(truncated.message().find("shorter than its header"), std::string::npos) << truncated;
  EXPECT_FALSE(DecodeKvBlock(good.substr(0, good.size() - 4), shape_, absl::MakeSpan(out)).ok());
  EXPECT_FALSE(DecodeKvBlock(good + "x", shape_, absl::MakeSpan(out)).ok());
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  absl::Status st = DecodeKvBlock(bad_magic, shape_, absl::MakeSpan(out));
  EXPECT_NE(st.message().find("magic"), std::string::npos) << st;
  std::vector<float> small(10);
  EXPECT_FALSE(DecodeKvBlock(good, shape_, absl::MakeSpan(small)).ok());
}

}  // namespace
}  // namespace kvcache
