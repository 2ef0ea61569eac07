// Process-wide settings for programs that serve (kvcache-server, kvcache-worker,
// kvcache-bench). Call each once at the top of main, before threads start. Tests keep the
// defaults.

#ifndef KVCACHE_COMMON_PROCESS_TUNING_H_
#define KVCACHE_COMMON_PROCESS_TUNING_H_

namespace kvcache {

// glibc serves allocations over M_MMAP_THRESHOLD (128 KiB at first) with fresh mmap()s and
// gives freed memory back with munmap()/trim, so every 256 KiB-4 MiB payload buffer is
// page-faulted in again, one 4 KiB page at a time. On the data path that fault storm cost
// more CPU than the copying itself. Raising both thresholds keeps such buffers in the heap
// and reuses them.
void TuneMallocForLargeBuffers();

// Abseil built without NDEBUG (Debian's is) checks lock order on every Mutex acquire: each
// Lock records an edge in one process-wide graph under one global spinlock. Measured here
// (2 threads, each locking its own Mutex): 252 ns a lock with the check, 16 without; on a
// server every shard, pool and counter lock pays it, and all threads meet on that spinlock.
// Tests keep the check (a lock-order cycle aborts them); Clang's -Wthread-safety checks the
// annotations at compile time.
void TurnOffMutexDeadlockDetection();

}  // namespace kvcache

#endif  // KVCACHE_COMMON_PROCESS_TUNING_H_
