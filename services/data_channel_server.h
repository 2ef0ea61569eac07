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

  // The bound address, host:port (the chosen port when the listen port was 0).
  virtual std::string address() const = 0;
  // What OpenDataChannel tells clients to connect to (see StartDataChannelServer).
  virtual std::string advertised_address() const = 0;
  virtual const Key& token() const = 0;
  virtual void Shutdown() = 0;
};

// Most connections served at once; more are closed at accept.
inline constexpr int kMaxDataConnections = 256;

// Listens on `listen` (host:port, port 0: any; never shared with another socket) and
// advertises `advertise` to clients: empty advertises the bound address (a client that gets
// an unspecified host, 0.0.0.0 or ::, connects to the host it dialled instead); "host"
// advertises host:<bound port>; "host:port" is advertised as it is (a port mapped by a
// container or a Service).
// REQUIRES: `store` and `metrics` outlive the server.
//   UNAVAILABLE       `listen` cannot be bound (in use, or not an address of this machine).
//   INVALID_ARGUMENT  `listen` is not host:port.
absl::StatusOr<std::unique_ptr<DataChannelServer>> StartDataChannelServer(
    const std::string& listen, TieredStore* store, ServerMetrics* metrics,
    const std::string& advertise = "");

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_
