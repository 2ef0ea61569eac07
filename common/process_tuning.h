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

// glibc's malloc puts its heap on transparent huge pages only when told at start-up, by
// GLIBC_TUNABLES: glibc.malloc.hugetlb=1 madvises (MADV_HUGEPAGE) each extension of the
// main heap, and glibc.malloc.arena_max=1 keeps every thread's allocations there (glibc
// 2.36 advises only the first part of a thread's own arena, so the RAM tier's arena, faulted
// in by a background thread, got 12 MiB of huge pages in 1 GiB; with both, all of it).
// Re-executes this program (/proc/self/exe, same argv and pid) with both added to
// GLIBC_TUNABLES, unless either is set there already or the kernel's transparent huge pages
// are off. Call after flag parsing, before any thread starts or anything is printed;
// returns when there was nothing to do or the exec failed (then the process runs without).
// Measured (docs/benchmarks.md, "Put into an empty vs a full RAM tier"): the 4 GiB arena
// faulted in in 7.2 s instead of 20.3, and Put into the empty tier at 98% of a full one
// (64% on 4 KiB pages). kvcache-server does it with --ram-huge-pages (off by default:
// one malloc arena for all threads stalls them while the arena faults in).
void ReexecWithHugePageMalloc(char** argv);

// Whether this process runs with the tunables ReexecWithHugePageMalloc adds.
bool HugePageMallocOn();

}  // namespace kvcache

#endif  // KVCACHE_COMMON_PROCESS_TUNING_H_
