// The bulk data channel's server side: a TCP listener whose connections carry Get and Put
// of blocks in the plain framing of common/data_channel_wire.h, one thread per connection,
// payloads written from and read into the store's own buffers. Clients learn its address
// and token from CacheService.OpenDataChannel. Internal to services/.
//
// Thread safety: Start once; Shutdown from any thread (idempotent; it closes the listener,
// ends every connection and joins their threads).

#ifndef KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_
#define KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cachestore/block_store.h"
#include "common/key.h"
#include "services/metrics.h"

namespace kvcache {

class DataChannelServer {
 public:
  DataChannelServer() = default;
  DataChannelServer(const DataChannelServer&) = delete;
  DataChannelServer& operator=(const DataChannelServer&) = delete;
  virtual ~DataChannelServer() = default;

  virtual std::string address() const = 0;
  virtual const Key& token() const = 0;
  virtual void Shutdown() = 0;
};

// Most connections served at once; more are closed at accept.
inline constexpr int kMaxDataConnections = 256;

// REQUIRES: `store` and `metrics` outlive the server.
//   UNAVAILABLE       `listen` cannot be bound.
//   INVALID_ARGUMENT  `listen` is not host:port.
absl::StatusOr<std::unique_ptr<DataChannelServer>> StartDataChannelServer(
    const std::string& listen, TieredStore* store, ServerMetrics* metrics);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_
