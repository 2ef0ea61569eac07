// Fixed-width little-endian integers in byte buffers, for kvcache's own binary formats (the
// disk tier's meta records, the data channel). Independent of the host's byte order.

#ifndef KVCACHE_COMMON_LITTLE_ENDIAN_H_
#define KVCACHE_COMMON_LITTLE_ENDIAN_H_

#include <cstdint>

namespace kvcache {

template <typename T>
void PutLittleEndian(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>(v >> (8 * i));
}

template <typename T>
T GetLittleEndian(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<T>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  return v;
}

}  // namespace kvcache

#endif  // KVCACHE_COMMON_LITTLE_ENDIAN_H_
