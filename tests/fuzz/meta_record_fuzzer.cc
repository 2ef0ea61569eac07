// Fuzzes the disk tier's meta-record decoder (cachestore/meta_record_internal.h): what a
// corrupt or foreign RocksDB directory could hand it at startup. The first 64 bytes (or
// fewer) are the RocksDB key, the rest the value. Anything accepted encodes back to a record
// that decodes to the same fields.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "cachestore/meta_record_internal.h"

using kvcache::internal::DecodeMetaRecord;
using kvcache::internal::EncodeMetaRecord;
using kvcache::internal::kDbKeyBytes;
using kvcache::internal::MetaRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  const absl::string_view key = in.substr(0, kDbKeyBytes);
  const absl::string_view value = in.substr(key.size());
  absl::StatusOr<MetaRecord> r = DecodeMetaRecord(key, value);
  if (!r.ok()) {
    if (r.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (kvcache::internal::DbKey(r->meta.id) != key) std::abort();
  const std::string encoded = EncodeMetaRecord(*r);
  absl::StatusOr<MetaRecord> again = DecodeMetaRecord(key, encoded);
  if (!again.ok() || again->meta.id != r->meta.id || again->meta.parent != r->meta.parent ||
      again->meta.checksum != r->meta.checksum || again->payload_bytes != r->payload_bytes ||
      again->written_unix_micros != r->written_unix_micros ||
      EncodeMetaRecord(*again) != encoded) {
    std::abort();
  }
  return 0;
}
