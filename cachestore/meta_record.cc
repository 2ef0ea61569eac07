#include "cachestore/meta_record_internal.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/little_endian.h"

namespace kvcache {
namespace internal {
namespace {

// Value field offsets.
constexpr size_t kFlagsAt = 1;
constexpr size_t kParentAt = 2;
constexpr size_t kChecksumAt = kParentAt + kKeyBytes;
constexpr size_t kShapeAt = kChecksumAt + 8;
constexpr size_t kPayloadBytesAt = kShapeAt + kBlockShapeBytes;
constexpr size_t kWrittenAt = kPayloadBytesAt + 8;
static_assert(kWrittenAt + 8 == kMetaRecordBytes);
static_assert(kMetaRecordBytes == 82, "existing disk tiers hold 82-byte meta records");
constexpr uint8_t kHasParent = 1;

}  // namespace

std::string DbKey(const BlockId& id) {
  std::string k;
  k.reserve(kDbKeyBytes);
  k.append(id.ns.view().data(), kKeyBytes);
  k.append(id.key.view().data(), kKeyBytes);
  return k;
}

std::string EncodeMetaRecord(const MetaRecord& r) {
  std::string out(kMetaRecordBytes, '\0');
  char* p = out.data();
  p[0] = static_cast<char>(kMetaVersion);
  p[kFlagsAt] = r.meta.parent ? kHasParent : 0;
  const Key parent = r.meta.parent.value_or(Key{});
  std::memcpy(p + kParentAt, parent.bytes.data(), kKeyBytes);
  PutLittleEndian<uint64_t>(p + kChecksumAt, r.meta.checksum);
  EncodeBlockShape(r.meta.shape, p + kShapeAt);
  PutLittleEndian<uint64_t>(p + kPayloadBytesAt, r.payload_bytes);
  PutLittleEndian<uint64_t>(p + kWrittenAt, static_cast<uint64_t>(r.written_unix_micros));
  return out;
}

absl::StatusOr<MetaRecord> DecodeMetaRecord(absl::string_view db_key, absl::string_view value) {
  if (db_key.size() != kDbKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("disk tier: meta key of ", db_key.size(),
                                                   " bytes, expected ", kDbKeyBytes));
  }
  if (value.size() != kMetaRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("disk tier: meta record of ", value.size(),
                                                   " bytes, expected ", kMetaRecordBytes));
  }
  if (const uint8_t version = static_cast<uint8_t>(value[0]); version != kMetaVersion) {
    return absl::InvalidArgumentError(absl::StrCat("disk tier: meta record version ", version,
                                                   ", this build reads ", kMetaVersion));
  }
  MetaRecord r;
  std::memcpy(r.meta.id.ns.bytes.data(), db_key.data(), kKeyBytes);
  std::memcpy(r.meta.id.key.bytes.data(), db_key.data() + kKeyBytes, kKeyBytes);
  const char* p = value.data();
  if ((static_cast<uint8_t>(p[kFlagsAt]) & kHasParent) != 0) {
    Key parent;
    std::memcpy(parent.bytes.data(), p + kParentAt, kKeyBytes);
    r.meta.parent = parent;
  }
  r.meta.checksum = GetLittleEndian<uint64_t>(p + kChecksumAt);
  r.meta.shape = DecodeBlockShape(p + kShapeAt);
  r.payload_bytes = GetLittleEndian<uint64_t>(p + kPayloadBytesAt);
  r.written_unix_micros = static_cast<int64_t>(GetLittleEndian<uint64_t>(p + kWrittenAt));
  return r;
}

}  // namespace internal
}  // namespace kvcache
