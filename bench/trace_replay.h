// Live trace replay: a trace's requests against a running kvcache-server, through the
// CacheClient, as a worker would send them: Lookup the chain of keys, Get the leading
// blocks that are present, Put the rest with payloads of `block_bytes`.
//
// Thread safety: one replay per call; the client may be shared.

#ifndef KVCACHE_BENCH_TRACE_REPLAY_H_
#define KVCACHE_BENCH_TRACE_REPLAY_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "bench/latency.h"
#include "bench/trace.h"
#include "client/cache_client.h"

namespace kvcache {

struct ReplayOptions {
  // Payload bytes of each block put. Default: 64 KiB.
  uint64_t block_bytes = 64 << 10;
  // Pace: 0 sends requests back to back; X > 0 sends request i at timestamp_i / X after the
  // start (1 = the trace's own pace). Default: 0.
  double speed = 0;
  // Replay only the first N requests; 0 for all. Default: 0.
  uint64_t limit_requests = 0;
  // Called with (requests done, requests to replay) after each request, on the replaying
  // thread (a progress meter: common/progress.h). Default: none.
  std::function<void(uint64_t done, uint64_t total)> on_progress;
};

struct ReplayResult : HitCounts {
  uint64_t bytes_read = 0;     // Payload bytes received by Get.
  uint64_t bytes_written = 0;  // Payload bytes sent by Put.
  uint64_t stored = 0, already_present = 0, not_admitted = 0;
  uint64_t errors = 0;  // Failed calls (counted as misses, as a worker would).
  double seconds = 0;
  LatencySummary lookup, get, put, request;
};

// Replays `trace` (keys from KeysOf) through `client`. Call errors are counted, not fatal.
//   INVALID_ARGUMENT  block_bytes is 0 or speed is negative.
absl::StatusOr<ReplayResult> ReplayTrace(CacheClient& client, const Trace& trace,
                                         const TraceKeys& keys, const ReplayOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_TRACE_REPLAY_H_
