// Waiting for a termination signal in a server's main thread, the same way in every binary.
//
// Call BlockTerminationSignals first thing in main, before any thread starts (gRPC, RocksDB,
// BLAS): the signals are then blocked in every thread, and only WaitForTerminationSignal
// receives them (no handler runs on an arbitrary thread).

#ifndef KVCACHE_COMMON_SIGNALS_H_
#define KVCACHE_COMMON_SIGNALS_H_

#include <functional>

namespace kvcache {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and the threads it starts later.
void BlockTerminationSignals();

// Waits for SIGINT or SIGTERM (after BlockTerminationSignals) and returns its number. Each
// SIGHUP meanwhile calls `on_hangup` (when given) on the calling thread and waits on.
int WaitForTerminationSignal(const std::function<void()>& on_hangup = nullptr);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_SIGNALS_H_
