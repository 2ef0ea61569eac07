#include "common/byte_size.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvcache {

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text, absl::string_view what) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  size_t digits_end = 0;
  while (digits_end < s.size() &&
         (absl::ascii_isdigit(static_cast<unsigned char>(s[digits_end])) || s[digits_end] == '.')) {
    ++digits_end;
  }
  absl::string_view number = s.substr(0, digits_end);
  std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(digits_end)));
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": '", text, "' is not a byte size (examples: 1048576, 512KiB, 4MiB, 2GiB)"));
  };
  double value = 0;
  if (number.empty() || !absl::SimpleAtod(number, &value) || value < 0) return bad();
  double scale;
  if (unit.empty() || unit == "b") {
    scale = 1;
  } else if (unit == "k" || unit == "kib") {
    scale = 1024.0;
  } else if (unit == "m" || unit == "mib") {
    scale = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gib") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "t" || unit == "tib") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else if (unit == "kb") {
    scale = 1e3;
  } else if (unit == "mb") {
    scale = 1e6;
  } else if (unit == "gb") {
    scale = 1e9;
  } else if (unit == "tb") {
    scale = 1e12;
  } else {
    return bad();
  }
  double bytes = std::floor(value * scale);
  if (bytes > 9.0e18) return bad();
  return static_cast<uint64_t>(bytes);
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

}  // namespace kvcache
