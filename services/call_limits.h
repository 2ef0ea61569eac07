// The gRPC surface's limits: keys per request, blocks per Put stream, bytes in flight
// across Put and Get calls, and how long a Get or Put stream may run. Each is a
// kvcache-server flag with a safe default; docs/operations.md ("Limits") lists each flag,
// its default and what the caller gets. The transport's own limits (message size, streams
// per connection, gRPC's memory quota, idle connections) are channel arguments set in
// cache_server.cc. Internal to services/.
//
// Thread safety: every method may be called from any thread.

#ifndef KVCACHE_SERVICES_CALL_LIMITS_H_
#define KVCACHE_SERVICES_CALL_LIMITS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace kvcache {

struct CallLimits {
  // Keys one Lookup or Get may name, 1..65536; more: RESOURCE_EXHAUSTED. Default: 65536.
  int max_keys_per_request = 65536;
  // Blocks one Put stream may carry; the block past it: RESOURCE_EXHAUSTED (the blocks
  // before it are kept). Default: 65536.
  int64_t max_blocks_per_put = 65536;
  // Bytes held at once by Put messages being stored and Get blocks being sent, across all
  // calls (a Get stream pins the block it is sending, evicted or not); a message or block
  // that would go over: RESOURCE_EXHAUSTED. 0: no limit. Default: 1 GiB.
  uint64_t max_inflight_bytes = 1ull << 30;
  // How long a Get or Put stream may run: past it, the next message is answered
  // DEADLINE_EXCEEDED, and a stream stalled on its peer is cancelled (CANCELLED) within a
  // second. 0: no limit. Default: 10 min.
  absl::Duration max_call_duration = absl::Minutes(10);
  // gRPC message size, both ways; 0: the largest block plus 4 MiB of framing. Larger:
  // RESOURCE_EXHAUSTED from gRPC. Default: 0.
  uint64_t max_message_bytes = 0;
  // Concurrent streams (calls) per HTTP/2 connection; more wait at the client. Default: 256.
  int max_concurrent_streams = 256;
  // gRPC's memory quota for the server's transport buffers and calls (a ResourceQuota): under
  // pressure gRPC stops reading from peers and refuses new calls (RESOURCE_EXHAUSTED or
  // UNAVAILABLE). 0: gRPC's default (unbounded). Default: 1 GiB.
  uint64_t grpc_memory_bytes = 1ull << 30;
  // A connection with no call for this long is closed (GOAWAY; clients reconnect
  // transparently). 0: never. Default: 10 min.
  absl::Duration max_connection_idle = absl::Minutes(10);
};

// The running side of CallLimits: counts bytes in flight and cancels streams that outlive
// max_call_duration.
class CallLimiter {
 public:
  // Registers kvcache_inflight_bytes{rpc} and kvcache_limit_refusals_total{limit} in
  // `registry`.
  CallLimiter(const CallLimits& limits, prometheus::Registry& registry);
  ~CallLimiter();
  CallLimiter(const CallLimiter&) = delete;
  CallLimiter& operator=(const CallLimiter&) = delete;

  const CallLimits& limits() const { return limits_; }

  enum class Op { kGet, kPut };

  // RESOURCE_EXHAUSTED when `keys` is over max_keys_per_request.
  absl::Status CheckKeys(int keys);
  // RESOURCE_EXHAUSTED when a Put stream's block count `blocks` is over the limit.
  absl::Status CheckBlocks(int64_t blocks);
  // DEADLINE_EXCEEDED when a call that started at `start` has run past max_call_duration.
  absl::Status CheckDuration(absl::Time start);

  // Takes `bytes` from the in-flight budget, or RESOURCE_EXHAUSTED (nothing taken).
  absl::Status Reserve(Op op, uint64_t bytes);
  void Release(Op op, uint64_t bytes);
  uint64_t inflight_bytes(Op op) const;

  // Cancels `ctx` (gRPC's TryCancel) once it has run past max_call_duration. Watch in the
  // reactor's constructor, Unwatch in its OnDone (before the context goes away).
  void Watch(grpc::CallbackServerContext* ctx);
  void Unwatch(grpc::CallbackServerContext* ctx);

 private:
  void Refused(int limit);
  void WatchdogLoop();

  const CallLimits limits_;
  std::atomic<uint64_t> inflight_[2] = {0, 0};
  std::atomic<uint64_t> inflight_total_{0};
  prometheus::Gauge* inflight_gauge_[2];
  prometheus::Counter* refusals_[4];  // keys, blocks, inflight_bytes, duration.

  absl::Mutex mu_;
  absl::flat_hash_map<grpc::CallbackServerContext*, absl::Time> watched_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // The context the watchdog is cancelling outside mu_; Unwatch waits for it.
  grpc::CallbackServerContext* cancelling_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::CondVar cancelled_;
  std::thread watchdog_;
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_CALL_LIMITS_H_
