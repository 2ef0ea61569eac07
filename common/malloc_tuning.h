// Process-wide malloc settings for programs that move large blocks.
//
// glibc serves allocations over M_MMAP_THRESHOLD (128 KiB at first) with fresh mmap()s and
// gives freed memory back with munmap()/trim, so every 256 KiB-4 MiB payload buffer is
// page-faulted in again, one 4 KiB page at a time. On the data path that fault storm cost
// more CPU than the copying itself. Raising both thresholds keeps such buffers in the heap
// and reuses them. Call once at the top of main, before threads start.

#ifndef KVCACHE_COMMON_MALLOC_TUNING_H_
#define KVCACHE_COMMON_MALLOC_TUNING_H_

namespace kvcache {

void TuneMallocForLargeBuffers();

}  // namespace kvcache

#endif  // KVCACHE_COMMON_MALLOC_TUNING_H_
