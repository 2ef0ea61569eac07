// The kvcache.v1 gRPC services over a TieredStore. Internal to services/: the server
// (cache_server.cc) registers them.

#ifndef KVCACHE_SERVICES_SERVICES_H_
#define KVCACHE_SERVICES_SERVICES_H_

#include <functional>
#include <memory>

#include <grpcpp/impl/codegen/service_type.h>

#include "cachestore/block_store.h"
#include "kvcache/v1/cache.pb.h"
#include "services/metrics.h"

namespace kvcache {

class DataChannelServer;
class EventLog;

// REQUIRES: `store`, `metrics`, `data` (null when there is no data channel) and `events`
// (null when events are off) outlive the service.
std::unique_ptr<grpc::Service> NewCacheService(TieredStore* store, ServerMetrics* metrics,
                                               const DataChannelServer* data,
                                               EventLog* events = nullptr);

// `config` answers GetConfig (called once per call, from any thread).
std::unique_ptr<grpc::Service> NewAdminService(
    TieredStore* store, ServerMetrics* metrics, std::function<v1::GetConfigResponse()> config);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_SERVICES_H_
