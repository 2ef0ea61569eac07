// The data channel's frames (docs/data-channel.md): round trips, the documented byte layout,
// and clear errors for truncated or garbage input.

#include "common/data_channel_wire.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace data_channel {
namespace {

BlockHeader SampleHeader() {
  BlockHeader h;
  h.key = testing::TestKey(0x00);
  h.parent = testing::TestKey(0x40);
  h.checksum = 0x0102030405060708ull;
  h.shape = BlockShape{1, 3, 2, 4, 16, 16};
  h.payload_bytes = 0x0000000a0b0c0d0eull;
  return h;
}

std::string Encode(const BlockHeader& h) {
  std::string bytes(kBlockHeaderBytes, '\0');
  EncodeBlockHeader(h, bytes.data());
  return bytes;
}

TEST(DataChannelHelloTest, RoundTripsAndHasTheDocumentedLayout) {
  std::string bytes(kHelloBytes, '\0');
  EncodeHello(testing::TestKey(0x80), bytes.data());
  EXPECT_EQ(bytes.substr(0, 4), "KVDC");
  EXPECT_EQ(absl::BytesToHexString(bytes.substr(4, 4)), "01000000");
  EXPECT_EQ(bytes.substr(8), std::string(testing::TestKey(0x80).view()));
  absl::StatusOr<Key> token = DecodeHello(bytes);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, testing::TestKey(0x80));
}

TEST(DataChannelHelloTest, RejectsShortBadMagicAndOtherVersions) {
  std::string good(kHelloBytes, '\0');
  EncodeHello(testing::TestKey(1), good.data());
  EXPECT_EQ(DecodeHello(good.substr(0, 20)).status().code(), absl::StatusCode::kInvalidArgument);
  std::string magic = good;
  magic[0] = 'X';
  EXPECT_NE(DecodeHello(magic).status().message().find("magic"), std::string::npos);
  std::string version = good;
  version[4] = 2;
  const absl::Status s = DecodeHello(version).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("version 2"), std::string::npos) << s.message();
}

TEST(DataChannelBlockHeaderTest, RoundTripsWithAndWithoutParent) {
  BlockHeader h = SampleHeader();
  for (bool with_parent : {true, false}) {
    if (!with_parent) h.parent.reset();
    absl::StatusOr<BlockHeader> back = DecodeBlockHeader(Encode(h));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->key, h.key);
    EXPECT_EQ(back->parent, h.parent);
    EXPECT_EQ(back->checksum, h.checksum);
    EXPECT_EQ(back->shape, h.shape);
    EXPECT_EQ(back->payload_bytes, h.payload_bytes);
  }
}

TEST(DataChannelBlockHeaderTest, GoldenLayoutIs105BytesAsDocumented) {
  const std::string bytes = Encode(SampleHeader());
  ASSERT_EQ(bytes.size(), 105u);
  EXPECT_EQ(bytes.substr(0, 32), std::string(testing::TestKey(0x00).view()));   // key
  EXPECT_EQ(bytes.substr(32, 32), std::string(testing::TestKey(0x40).view()));  // parent
  EXPECT_EQ(absl::BytesToHexString(bytes.substr(64)),
            "01"                                                // has_parent
            "0807060504030201"                                  // checksum
            "010000000300000002000000040000001000000010000000"  // shape
            "0e0d0c0b0a000000");                                // payload_bytes
  BlockHeader orphan = SampleHeader();
  orphan.parent.reset();
  const std::string no_parent = Encode(orphan);
  EXPECT_EQ(no_parent.substr(32, 33), std::string(33, '\0'));  // zero parent, has_parent 0
}

TEST(DataChannelBlockHeaderTest, RejectsTruncatedAndGarbageHeaders) {
  const std::string good = Encode(SampleHeader());
  for (size_t n : {size_t{0}, size_t{1}, size_t{64}, kBlockHeaderBytes - 1}) {
    const absl::Status s = DecodeBlockHeader(good.substr(0, n)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_NE(s.message().find("block header of " + std::to_string(n) + " bytes"),
              std::string::npos)
        << s.message();
  }
  EXPECT_FALSE(DecodeBlockHeader(good + "x").ok());
  std::string garbage = good;
  garbage[64] = 7;  // has_parent is 0 or 1.
  const absl::Status s = DecodeBlockHeader(garbage).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("has_parent 7"), std::string::npos) << s.message();
}

TEST(DataChannelErrorTest, RoundTripsCodeAndMessage) {
  const std::string frame = EncodeErrorReply(absl::ResourceExhaustedError("too big"));
  EXPECT_EQ(absl::BytesToHexString(frame.substr(0, 6)), "040807000000");  // kError, 8, len 7
  EXPECT_EQ(frame.substr(6), "too big");
  absl::StatusOr<ErrorHead> head = DecodeErrorHead(frame.substr(1, kErrorHeadBytes));
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(head->message_bytes, 7u);
}

TEST(DataChannelErrorTest, RejectsTruncatedAndOversizedAndNeverReadsOk) {
  EXPECT_EQ(DecodeErrorHead("abc").status().code(), absl::StatusCode::kInvalidArgument);
  std::string huge(kErrorHeadBytes, '\0');
  huge[0] = 3;
  PutU32(huge.data() + 1, kMaxErrorMessageBytes + 1);
  const absl::Status s = DecodeErrorHead(huge).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("message bytes"), std::string::npos) << s.message();
  const std::string ok_code(kErrorHeadBytes, '\0');  // Code 0 would read as success.
  EXPECT_EQ(DecodeErrorHead(ok_code)->code, absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace data_channel
}  // namespace kvcache
