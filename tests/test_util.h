// Helpers shared by kvcache's tests: temp directories, keys and blocks.

#ifndef KVCACHE_TESTS_TEST_UTIL_H_
#define KVCACHE_TESTS_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/block_shape.h"
#include "common/key.h"

namespace kvcache {
namespace testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvcache-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A deterministic key from a small number (distinct numbers give distinct keys).
inline Key TestKey(uint64_t n, uint8_t tag = 0) {
  Key k;
  uint64_t x = n * 0x9E3779B97F4A7C15ull + tag + 1;
  for (size_t i = 0; i < kKeyBytes; ++i) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    k.bytes[i] = static_cast<uint8_t>(x >> 56);
  }
  return k;
}

// `n` bytes of a pattern that depends on `seed`.
inline std::string TestPayload(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x2545F4914F6CDD1Dull + 7;
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    s[i] = static_cast<char>(x >> 56);
  }
  return s;
}

// A shape that agrees with a payload of `payload_bytes` (f32, one layer, one KV head of
// head_dim 1, (payload_bytes - 32) / 8 tokens), or no shape (all zeros, not checked) when no
// such shape fits that size.
inline BlockShape TestShape(size_t payload_bytes) {
  if (payload_bytes <= kBlockFormatV1HeaderBytes ||
      (payload_bytes - kBlockFormatV1HeaderBytes) % 8 != 0) {
    return BlockShape{};
  }
  return BlockShape{kBlockFormatV1, 1, 1, 1, 1,
                    static_cast<uint32_t>((payload_bytes - kBlockFormatV1HeaderBytes) / 8)};
}

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_TEST_UTIL_H_
