// The disk tier's meta record codec: what existing disk tiers hold must still read back, so
// the byte layout is pinned here.

#include "cachestore/meta_record_internal.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace internal {
namespace {

MetaRecord Sample() {
  MetaRecord r;
  r.meta.id = BlockId{testing::TestKey(0x00), testing::TestKey(0x20)};
  r.meta.parent = testing::TestKey(0x40);
  r.meta.checksum = 0x0102030405060708ull;
  r.meta.shape = BlockShape{1, 3, 2, 4, 16, 16};
  r.payload_bytes = 0x00000000000a0b0cull;
  r.written_unix_micros = 0x0005f0e1d2c3b4a5ll;
  return r;
}

TEST(MetaRecordTest, RoundTripsWithAndWithoutParent) {
  MetaRecord r = Sample();
  for (bool with_parent : {true, false}) {
    if (!with_parent) r.meta.parent.reset();
    absl::StatusOr<MetaRecord> back = DecodeMetaRecord(DbKey(r.meta.id), EncodeMetaRecord(r));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->meta.id, r.meta.id);
    EXPECT_EQ(back->meta.parent, r.meta.parent);
    EXPECT_EQ(back->meta.checksum, r.meta.checksum);
    EXPECT_EQ(back->meta.shape, r.meta.shape);
    EXPECT_EQ(back->payload_bytes, r.payload_bytes);
    EXPECT_EQ(back->written_unix_micros, r.written_unix_micros);
  }
}

TEST(MetaRecordTest, KeyIsNamespaceThenBlockKey) {
  const MetaRecord r = Sample();
  EXPECT_EQ(DbKey(r.meta.id),
            absl::StrCat(testing::TestKey(0x00).view(), testing::TestKey(0x20).view()));
}

TEST(MetaRecordTest, GoldenLayoutIs82LittleEndianBytes) {
  const std::string value = EncodeMetaRecord(Sample());
  ASSERT_EQ(value.size(), 82u);
  EXPECT_EQ(absl::BytesToHexString(value.substr(0, 2)), "0101");  // version 1, has parent
  EXPECT_EQ(value.substr(2, 32), std::string(testing::TestKey(0x40).view()));
  EXPECT_EQ(absl::BytesToHexString(value.substr(34)),
            "0807060504030201"                                  // checksum
            "010000000300000002000000040000001000000010000000"  // shape
            "0c0b0a0000000000"                                  // payload bytes
            "a5b4c3d2e1f00500");                                // written, unix micros
  MetaRecord orphan = Sample();
  orphan.meta.parent.reset();
  EXPECT_EQ(EncodeMetaRecord(orphan).substr(1, 33), std::string(33, '\0'));
}

TEST(MetaRecordTest, RejectsTruncatedKeysAndValuesAndOtherVersions) {
  const MetaRecord r = Sample();
  const std::string key = DbKey(r.meta.id);
  const std::string value = EncodeMetaRecord(r);

  absl::Status s = DecodeMetaRecord(key.substr(0, 32), value).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("meta key of 32 bytes"), std::string::npos) << s.message();

  for (size_t n : {size_t{0}, size_t{1}, size_t{81}, size_t{83}}) {
    const std::string v = n <= value.size() ? value.substr(0, n) : value + "x";
    s = DecodeMetaRecord(key, v).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_NE(s.message().find("meta record of " + std::to_string(v.size()) + " bytes"),
              std::string::npos)
        << s.message();
  }

  std::string v2 = value;
  v2[0] = 2;
  s = DecodeMetaRecord(key, v2).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("version 2"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace internal
}  // namespace kvcache
