// The kvcache.v1 gRPC services over a TieredStore. Internal to services/: the server
// (cache_server.cc) registers them.

#ifndef KVCACHE_SERVICES_SERVICES_H_
#define KVCACHE_SERVICES_SERVICES_H_

#include <functional>
#include <memory>

#include <grpcpp/impl/codegen/service_type.h>

#include "cachestore/block_store.h"
#include "kvcache/v1/cache.pb.h"
#include "services/access.h"
#include "services/metrics.h"
#include "services/tenant_book.h"
#include "services/tenant_usage.h"

namespace kvcache {

class CallLimiter;
class DataChannelServer;
class EventLog;
class IoExecutor;

// What the services work with. REQUIRES: all of it outlives the services.
struct ServiceDeps {
  TieredStore* store = nullptr;
  ServerMetrics* metrics = nullptr;
  AccessControl* access = nullptr;
  TenantBook* tenants = nullptr;
  const DataChannelServer* data = nullptr;  // Null when there is no data channel.
  CallLimiter* limiter = nullptr;           // services/call_limits.h.
  EventLog* events = nullptr;               // Null when events are off.
  TenantUsage* usage = nullptr;             // Null when auth is off.
  // Where store work that may wait on the disk runs (common/io_executor.h), never on
  // gRPC's callback threads: Get's reads of blocks not in memory, Put's stores (a Put can
  // demote or trim on its own thread), and the admin calls that walk or erase (List,
  // Inspect, Evict, Flush). Lookup, RAM hits, stats and configuration answer inline.
  IoExecutor* io = nullptr;
};

std::unique_ptr<grpc::Service> NewCacheService(const ServiceDeps& deps);

// `config` answers GetConfig (called once per call, from any thread).
std::unique_ptr<grpc::Service> NewAdminService(const ServiceDeps& deps,
                                               std::function<v1::GetConfigResponse()> config);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_SERVICES_H_
