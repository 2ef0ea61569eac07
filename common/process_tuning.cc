#include "common/process_tuning.h"

#include <malloc.h>

#include "absl/synchronization/mutex.h"

namespace kvcache {

void TuneMallocForLargeBuffers() {
  // Blocks up to 32 MiB (glibc's largest allowed threshold on 64-bit: a larger value is
  // refused and leaves the default) come from the heap; freed memory stays mapped up to
  // 512 MiB above the heap top before it is trimmed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

void TurnOffMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace kvcache
