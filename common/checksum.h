// The block payload checksum: XXH3-64 (seed 0) of the payload bytes. See DESIGN.md,
// "Block values". Thread safe (a pure function).

#ifndef KVCACHE_COMMON_CHECKSUM_H_
#define KVCACHE_COMMON_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace kvcache {

uint64_t PayloadChecksum(absl::string_view payload);

// Copies `n` bytes from `src` to `dst` (not overlapping) and returns PayloadChecksum of the
// copy, in one pass over memory (piece by piece, each hashed while still in cache). The
// checksum is of what landed in `dst`, even if `src` changes meanwhile (shared memory).
uint64_t CopyWithChecksum(char* dst, const char* src, size_t n);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_CHECKSUM_H_
