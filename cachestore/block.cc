#include <time.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cachestore/block_internal.h"
#include "cachestore/block_store.h"
#include "common/checksum.h"

namespace kvcache {

BlockPtr MakeBlock(const BlockId& id, std::optional<Key> parent, absl::string_view payload,
                   const BlockShape& shape) {
  auto block = std::make_shared<Block>();
  block->meta.id = id;
  block->meta.parent = parent;
  block->meta.checksum = PayloadChecksum(payload);
  block->meta.shape = shape;
  block->payload.assign(payload);
  return block;
}

namespace internal {

absl::Status ValidateBlock(const Block& block) {
  if (block.payload.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", KeyToHex(block.meta.id.key), " has an empty payload"));
  }
  const uint64_t actual = PayloadChecksum(block.payload);
  if (actual != block.meta.checksum) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "block %s: checksum mismatch (sent %016x, payload hashes to %016x): the payload was "
        "corrupted or the checksum is not XXH3-64 of the payload",
        KeyToHex(block.meta.id.key), block.meta.checksum, actual));
  }
  return absl::OkStatus();
}

PolicyEntry PolicyEntryOf(const BlockMeta& meta, uint64_t charge) {
  return PolicyEntry{meta.id, meta.parent, charge};
}

int64_t NowUnixMicros() { return absl::ToUnixMicros(absl::Now()); }

uint32_t NowUnixSeconds() {
  struct timespec ts;
  if (::clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0) {
    return static_cast<uint32_t>(absl::ToUnixSeconds(absl::Now()));
  }
  return static_cast<uint32_t>(ts.tv_sec);
}

}  // namespace internal
}  // namespace kvcache
