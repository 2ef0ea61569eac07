#include "common/malloc_tuning.h"

#include <malloc.h>

namespace kvcache {

void TuneMallocForLargeBuffers() {
  // Blocks up to 64 MiB come from the heap; freed memory stays mapped up to 512 MiB above
  // the heap top before it is trimmed.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

}  // namespace kvcache
