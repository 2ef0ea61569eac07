// The block payload checksum: XXH3-64 (seed 0) of the payload bytes. See DESIGN.md,
// "Block values". Thread safe (a pure function).

#ifndef KVCACHE_COMMON_CHECKSUM_H_
#define KVCACHE_COMMON_CHECKSUM_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace kvcache {

uint64_t PayloadChecksum(absl::string_view payload);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_CHECKSUM_H_
