#include "worker/tokenizer.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kvcache {

std::vector<uint32_t> TokenizeBytes(absl::string_view text) {
  std::vector<uint32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::string DetokenizeBytes(absl::Span<const uint32_t> tokens) {
  std::string text;
  for (uint32_t t : tokens) {
    if (t < kByteVocabulary) text.push_back(static_cast<char>(t));
  }
  return text;
}

absl::StatusOr<std::vector<uint32_t>> ParseTokenIds(absl::string_view text) {
  std::vector<uint32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    uint32_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("\"", part, "\" is not a token id"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("no token ids");
  return ids;
}

}  // namespace kvcache
