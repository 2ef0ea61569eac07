#include "common/key.h"

#include <errno.h>
#include <sys/random.h>
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kvcache {

absl::Status FillRandom(void* out, size_t n) {
  char* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

uint64_t IndexHashSeed() {
  static const uint64_t seed = [] {
    uint64_t s = 0;
    // Tests and benchmarks only: a fixed seed repeats a run's shard layout (which blocks
    // share a RAM shard), so sharded simulations can be compared across seeds. A server
    // must never run with it: a known seed lets clients aim collisions.
    if (const char* fixed = std::getenv("KVCACHE_INDEX_HASH_SEED"); fixed != nullptr) {
      char* end = nullptr;
      s = std::strtoull(fixed, &end, 0);
      if (*fixed != '\0' && end != nullptr && *end == '\0') return s;
      std::fprintf(stderr, "kvcache: KVCACHE_INDEX_HASH_SEED=%s is not a number\n", fixed);
      std::abort();
    }
    if (absl::Status st = FillRandom(&s, sizeof(s)); !st.ok()) {
      std::fprintf(stderr, "kvcache: cannot seed the index hash: %s\n", st.ToString().c_str());
      std::abort();
    }
    return s;
  }();
  return seed;
}

uint64_t IndexHash(const Key& key) {
  return XXH3_64bits_withSeed(key.bytes.data(), kKeyBytes, IndexHashSeed());
}

uint64_t IndexHash(const BlockId& id) {
  uint8_t both[2 * kKeyBytes];
  std::memcpy(both, id.ns.bytes.data(), kKeyBytes);
  std::memcpy(both + kKeyBytes, id.key.bytes.data(), kKeyBytes);
  return XXH3_64bits_withSeed(both, sizeof(both), IndexHashSeed());
}

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
