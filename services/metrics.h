// Prometheus metrics of a kvcache server: per-tier gauges and counters read from the store
// at scrape time, and RPC latency histograms. Internal to services/.
//
// Thread safety: ObserveRpc may be called from any thread.

#ifndef KVCACHE_SERVICES_METRICS_H_
#define KVCACHE_SERVICES_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"

#include "absl/time/time.h"
#include "cachestore/block_store.h"
#include "services/tenant_usage.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace kvcache {

enum class Rpc { kLookup, kGet, kPut, kAdmin, kNumRpcs };

// Why the data channel refused or closed a connection (see DataChannelOptions).
enum class DataChannelEvent {
  kRefusedTotalCap,
  kRefusedPeerCap,
  kDeadline,
  kAcceptFailure,
  kConnectionError,
  kLocalConnection,     // A same-host connection got its shared-memory region.
  kLocalBadOffset,      // A same-host Put named an offset outside its region.
  kLocalRegionFailure,  // A same-host connection's region could not be made.
  kNumEvents
};

class ServerMetrics {
 public:
  // REQUIRES: `store` and `usage` (null when auth is off) outlive this.
  explicit ServerMetrics(const TieredStore* store, const TenantUsage* usage = nullptr);

  void ObserveRpc(Rpc rpc, absl::Duration latency, bool ok);

  // kvcache_tenant_requests_total{tenant, rpc, code}: calls of servers with --auth-tokens
  // by tenant and outcome; calls refused before a tenant was known count under tenant
  // "(unauthenticated)".
  void CountTenantCall(const std::string& tenant, Rpc rpc, absl::StatusCode code);

  // A Get or Put served over gRPC while this server offers a data channel: a client that
  // could not reach the channel (or chose not to use it) fell back to gRPC.
  void CountDataChannelFallback(Rpc rpc);

  // kvcache_data_channel_events_total{event=...}.
  void CountDataChannelEvent(DataChannelEvent event);

  // Everything to expose: the RPC histograms and the store's figures.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  std::shared_ptr<prometheus::Collectable> store_collector() const { return store_collector_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> store_collector_;
  prometheus::Histogram* latency_[static_cast<int>(Rpc::kNumRpcs)][2];  // [rpc][ok]
  prometheus::Counter* fallbacks_[static_cast<int>(Rpc::kNumRpcs)];      // Get and Put only.
  prometheus::Counter* data_events_[static_cast<int>(DataChannelEvent::kNumEvents)];
  prometheus::Family<prometheus::Counter>* tenant_calls_;
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_METRICS_H_
