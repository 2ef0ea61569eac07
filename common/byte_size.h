// Byte sizes as operators write them: "4194304", "4MiB", "4M", "64 GiB", "1.5G".
// K/M/G/T and KiB/MiB/GiB/TiB are all powers of 1024 (so "4M" == "4MiB"); "KB"/"MB"/"GB"
// are powers of 1000. Thread safe (pure functions).

#ifndef KVCACHE_COMMON_BYTE_SIZE_H_
#define KVCACHE_COMMON_BYTE_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvcache {

// INVALID_ARGUMENT naming `what` for anything that is not a non-negative size.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text, absl::string_view what);

// "4.0 MiB", "512 B": for tables and logs.
std::string FormatBytes(uint64_t bytes);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_BYTE_SIZE_H_
