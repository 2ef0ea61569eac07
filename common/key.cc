#include "common/key.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kvcache {

bool Key::IsZero() const {
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

absl::StatusOr<Key> KeyFromBytes(absl::string_view raw, absl::string_view what) {
  if (raw.size() != kKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be ", kKeyBytes,
                                                   " bytes, got ", raw.size()));
  }
  Key key;
  std::memcpy(key.bytes.data(), raw.data(), kKeyBytes);
  return key;
}

absl::StatusOr<Key> KeyFromHex(absl::string_view hex, absl::string_view what) {
  if (hex.size() != 2 * kKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be ", 2 * kKeyBytes,
                                                   " hex digits, got ", hex.size(),
                                                   " characters"));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " must be hex digits only, found '", std::string(1, c), "'"));
    }
  }
  return KeyFromBytes(absl::HexStringToBytes(hex), what);
}

std::string KeyToHex(const Key& key) { return absl::BytesToHexString(key.view()); }

}  // namespace kvcache
