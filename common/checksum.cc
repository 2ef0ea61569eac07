#include "common/checksum.h"

#include <xxhash.h>

namespace kvcache {

uint64_t PayloadChecksum(absl::string_view payload) {
  return XXH3_64bits(payload.data(), payload.size());
}

}  // namespace kvcache
