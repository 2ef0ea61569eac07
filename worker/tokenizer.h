// Byte-level tokenization for the generated models: token id = byte value (0-255), no
// offset and no special tokens added. Ids from 256 up (the rest of a larger vocabulary) have
// no text: Detokenize skips them.
//
// Thread safety: pure functions.

#ifndef KVCACHE_WORKER_TOKENIZER_H_
#define KVCACHE_WORKER_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvcache {

inline constexpr uint32_t kByteVocabulary = 256;

std::vector<uint32_t> TokenizeBytes(absl::string_view text);
std::string DetokenizeBytes(absl::Span<const uint32_t> tokens);

// Parses "1,2,3" (spaces allowed around ids). INVALID_ARGUMENT on anything else, or an
// empty list.
absl::StatusOr<std::vector<uint32_t>> ParseTokenIds(absl::string_view text);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_TOKENIZER_H_
