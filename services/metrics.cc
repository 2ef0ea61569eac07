#include "services/metrics.h"

#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/family.h"
#include "prometheus/metric_family.h"

namespace kvcache {
namespace {

// Adds one sample of `value` under `labels` to `family`, as its type wants.
void AddSample(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
               uint64_t value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (family.type == prometheus::MetricType::Gauge) {
    m.gauge.value = static_cast<double>(value);
  } else {
    m.counter.value = static_cast<double>(value);
  }
  family.metric.push_back(std::move(m));
}

// One metric family read from a field of a per-tier figures struct (TierStats, TierUsage).
template <typename Figures>
struct FieldSpec {
  const char* name;
  const char* help;
  prometheus::MetricType type;
  uint64_t Figures::*field;
};

// Reads the store's stats on each scrape, so gauges are never stale and the data path pays
// nothing for them.
class StoreCollector final : public prometheus::Collectable {
 public:
  StoreCollector(const TieredStore* store, const TenantUsage* usage)
      : store_(store), usage_(usage) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const StoreStats s = store_->GetStoreStats();
    std::vector<prometheus::MetricFamily> out;
    const FieldSpec<TierStats> specs[] = {
        {"kvcache_tier_blocks", "Blocks held by the tier.", prometheus::MetricType::Gauge,
         &TierStats::blocks},
        {"kvcache_tier_bytes", "Bytes charged to the tier (payload + metadata).",
         prometheus::MetricType::Gauge, &TierStats::bytes},
        {"kvcache_tier_capacity_bytes", "The tier's byte budget.", prometheus::MetricType::Gauge,
         &TierStats::capacity_bytes},
        {"kvcache_tier_hits_total", "Gets served by the tier.", prometheus::MetricType::Counter,
         &TierStats::hits},
        {"kvcache_tier_misses_total", "Gets the tier could not serve.",
         prometheus::MetricType::Counter, &TierStats::misses},
        {"kvcache_tier_evictions_total", "Blocks evicted to make room.",
         prometheus::MetricType::Counter, &TierStats::evictions},
        {"kvcache_tier_demotions_total", "Blocks moved from RAM to disk.",
         prometheus::MetricType::Counter, &TierStats::demotions},
        {"kvcache_tier_promotions_total", "Blocks copied from disk to RAM.",
         prometheus::MetricType::Counter, &TierStats::promotions},
        {"kvcache_tier_checksum_failures_total", "Blocks dropped for a bad checksum.",
         prometheus::MetricType::Counter, &TierStats::checksum_failures},
        {"kvcache_tier_inserts_total", "Blocks written into the tier.",
         prometheus::MetricType::Counter, &TierStats::inserts},
        {"kvcache_tier_write_errors_total", "Writes and deletes the disk refused.",
         prometheus::MetricType::Counter, &TierStats::write_errors},
        {"kvcache_tier_demotion_failures_total", "RAM victims the disk failed to take.",
         prometheus::MetricType::Counter, &TierStats::demotion_failures},
        {"kvcache_tier_write_refusals_total",
         "Disk writes turned away while the directory was at its cap (garbage pending).",
         prometheus::MetricType::Counter, &TierStats::write_refusals},
        {"kvcache_tier_index_bytes", "RAM the disk tier's index takes.",
         prometheus::MetricType::Gauge, &TierStats::index_bytes},
        {"kvcache_tier_dir_bytes", "Bytes the disk tier's directory takes.",
         prometheus::MetricType::Gauge, &TierStats::dir_bytes},
        {"kvcache_tier_free_bytes", "Free bytes of the disk tier's filesystem.",
         prometheus::MetricType::Gauge, &TierStats::free_bytes},
        {"kvcache_tier_degraded",
         "1 while the disk tier takes no writes (full or failing); RAM still serves.",
         prometheus::MetricType::Gauge, &TierStats::degraded},
        {"kvcache_tier_demotion_waits_total",
         "RAM victims a Put wrote to disk itself: the demotion queue was full.",
         prometheus::MetricType::Counter, &TierStats::demotion_waits},
    };
    for (const FieldSpec<TierStats>& spec : specs) {
      prometheus::MetricFamily family{spec.name, spec.help, spec.type, {}};
      for (const auto& [tier, stats] : {std::pair{"ram", &s.ram}, std::pair{"disk", &s.disk}}) {
        AddSample(family, {{"tier", tier}}, stats->*spec.field);
      }
      out.push_back(std::move(family));
    }
    auto counter = [&](const char* name, const char* help, uint64_t v) {
      prometheus::ClientMetric m;
      m.counter.value = static_cast<double>(v);
      out.push_back({name, help, prometheus::MetricType::Counter, {m}});
    };
    counter("kvcache_lookups_total", "Lookup calls served.", s.lookups);
    counter("kvcache_lookup_keys_total", "Keys asked in Lookup calls.", s.lookup_keys);
    counter("kvcache_lookup_hits_total", "Keys found present by Lookup calls.", s.lookup_hits);
    if (usage_ != nullptr) CollectTenants(out);
    return out;
  }

 private:
  // kvcache_tenant_*{tenant, tier}: what each tenant holds, its quota and what the quota
  // moved out.
  void CollectTenants(std::vector<prometheus::MetricFamily>& out) const {
    const std::vector<TenantUsageStats> tenants = usage_->Snapshot();
    const FieldSpec<TierUsage> specs[] = {
        {"kvcache_tenant_blocks", "Blocks the tenant holds in the tier.",
         prometheus::MetricType::Gauge, &TierUsage::blocks},
        {"kvcache_tenant_bytes",
         "Bytes charged to the tenant in the tier (payload + 160 B in RAM, + 320 B on disk).",
         prometheus::MetricType::Gauge, &TierUsage::bytes},
        {"kvcache_tenant_quota_bytes", "The tenant's quota in the tier; 0: none.",
         prometheus::MetricType::Gauge, &TierUsage::quota_bytes},
        {"kvcache_tenant_quota_evictions_total",
         "The tenant's blocks moved out of the tier to keep it within its quota.",
         prometheus::MetricType::Counter, &TierUsage::quota_evictions},
    };
    for (const FieldSpec<TierUsage>& spec : specs) {
      prometheus::MetricFamily family{spec.name, spec.help, spec.type, {}};
      for (const TenantUsageStats& t : tenants) {
        for (const auto& [tier, u] : {std::pair{"ram", &t.ram}, std::pair{"disk", &t.disk}}) {
          AddSample(family, {{"tenant", t.tenant}, {"tier", tier}}, u->*spec.field);
        }
      }
      out.push_back(std::move(family));
    }
  }

  const TieredStore* const store_;
  const TenantUsage* const usage_;  // Null when auth is off.
};

}  // namespace

ServerMetrics::ServerMetrics(const TieredStore* store, const TenantUsage* usage)
    : registry_(std::make_shared<prometheus::Registry>()),
      store_collector_(std::make_shared<StoreCollector>(store, usage)) {
  auto& family = prometheus::BuildHistogram()
                     .Name("kvcache_rpc_latency_seconds")
                     .Help("Server-side latency of kvcache.v1 RPCs.")
                     .Register(*registry_);
  // 25 us .. ~1.6 s, doubling.
  prometheus::Histogram::BucketBoundaries buckets;
  for (double b = 25e-6; b < 2.0; b *= 2) buckets.push_back(b);
  const char* names[] = {"Lookup", "Get", "Put", "Admin"};
  for (int r = 0; r < static_cast<int>(Rpc::kNumRpcs); ++r) {
    for (int ok = 0; ok < 2; ++ok) {
      latency_[r][ok] =
          &family.Add({{"rpc", names[r]}, {"status", ok ? "ok" : "error"}}, buckets);
    }
  }
  auto& fallbacks =
      prometheus::BuildCounter()
          .Name("kvcache_data_channel_fallbacks_total")
          .Help("Get and Put calls served over gRPC while the data channel was on (clients "
                "that could not reach it, or do not use it).")
          .Register(*registry_);
  for (int r = 0; r < static_cast<int>(Rpc::kNumRpcs); ++r) {
    fallbacks_[r] = &fallbacks.Add({{"rpc", names[r]}});
  }
  auto& events = prometheus::BuildCounter()
                     .Name("kvcache_data_channel_events_total")
                     .Help("Data channel connections refused at accept (total_cap, peer_cap), "
                           "closed at a deadline (deadline), ended by an exception such as "
                           "bad_alloc (error), and accept failures waited out (accept_failure); "
                           "same-host connections opened (local_connection), Puts refused for an "
                           "offset outside the region (local_bad_offset), regions that could not "
                           "be made (local_region_failure).")
                     .Register(*registry_);
  const char* event_names[] = {"total_cap",        "peer_cap",         "deadline",
                               "accept_failure",   "error",            "local_connection",
                               "local_bad_offset", "local_region_failure"};
  static_assert(sizeof(event_names) / sizeof(event_names[0]) ==
                static_cast<size_t>(DataChannelEvent::kNumEvents));
  for (int e = 0; e < static_cast<int>(DataChannelEvent::kNumEvents); ++e) {
    data_events_[e] = &events.Add({{"event", event_names[e]}});
  }
  tenant_calls_ = &prometheus::BuildCounter()
                       .Name("kvcache_tenant_requests_total")
                       .Help("Calls of a server with --auth-tokens by tenant, RPC and status "
                             "code (refusals included).")
                       .Register(*registry_);
}

void ServerMetrics::CountTenantCall(const std::string& tenant, Rpc rpc, absl::StatusCode code) {
  static const char* const kNames[] = {"Lookup", "Get", "Put", "Admin"};
  tenant_calls_
      ->Add({{"tenant", tenant.empty() ? "(unauthenticated)" : tenant},
             {"rpc", kNames[static_cast<int>(rpc)]},
             {"code", absl::StatusCodeToString(code)}})
      .Increment();
}

void ServerMetrics::CountDataChannelEvent(DataChannelEvent event) {
  data_events_[static_cast<int>(event)]->Increment();
}

void ServerMetrics::CountDataChannelFallback(Rpc rpc) {
  fallbacks_[static_cast<int>(rpc)]->Increment();
}

void ServerMetrics::ObserveRpc(Rpc rpc, absl::Duration latency, bool ok) {
  latency_[static_cast<int>(rpc)][ok ? 1 : 0]->Observe(absl::ToDoubleSeconds(latency));
}

}  // namespace kvcache
