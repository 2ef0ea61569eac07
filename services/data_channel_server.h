// The bulk data channel's server side: a TCP listener whose connections carry Get and Put
// of blocks in the plain framing of common/data_channel_wire.h, one thread per connection,
// payloads written from and read into the store's own buffers. Clients learn its address
// and a token from CacheService.OpenDataChannel; the token stands for the caller that asked
// (AccessControl::IssueDataToken), whose tenant and role every request is checked against
// as the RPCs are. Internal to services/.
//
// Thread safety: Start once; Shutdown from any thread (idempotent; it closes the listener,
// ends every connection and joins their threads).

#ifndef KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_
#define KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cachestore/block_store.h"
#include "common/key.h"
#include "services/access.h"
#include "services/data_channel_options.h"
#include "services/metrics.h"
#include "services/tenant_book.h"
#include "services/tenant_usage.h"

namespace kvcache {

// What the server refused or cut, since it started (also exported as metrics).
struct DataChannelCounters {
  uint64_t refused_total_cap = 0;  // Closed at accept: max_connections reached.
  uint64_t refused_peer_cap = 0;   // Closed at accept: max_connections_per_peer reached.
  uint64_t deadline_closed = 0;    // Closed when a phase deadline or the idle timeout passed.
  uint64_t accept_failures = 0;    // accept(2) failures waited out (EMFILE and the like).
  uint64_t connection_errors = 0;  // Connection threads ended by an exception (bad_alloc).
  // The same-host path.
  uint64_t local_connections = 0;    // Same-host connections that got a region.
  uint64_t local_blocks_sent = 0;    // Get blocks served through a region.
  uint64_t local_blocks_taken = 0;   // Put payloads taken from a region.
  uint64_t local_waits = 0;          // Gets that filled the region and waited for the client.
  uint64_t local_bad_offsets = 0;    // Put offsets outside the region (refused, closed).
  uint64_t local_region_failures = 0;  // Regions that could not be made (connection closed).
};

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
  // The same-host path's Unix socket ("@name" for an abstract one); empty when off.
  virtual std::string local_address() const = 0;
  virtual DataChannelCounters counters() const = 0;
  virtual void Shutdown() = 0;
};

// Listens on `listen` (host:port, port 0: any; never shared with another socket) and
// advertises `advertise` to clients: empty advertises the bound address (a client that gets
// an unspecified host, 0.0.0.0 or ::, connects to the host it dialled instead); "host"
// advertises host:<bound port>; "host:port" is advertised as it is (a port mapped by a
// container or a Service).
// REQUIRES: `store`, `metrics`, `access` and `tenants` outlive the server.
//   UNAVAILABLE       `listen` cannot be bound (in use, or not an address of this machine).
//   INVALID_ARGUMENT  `listen` is not host:port, or a limit in `options` is not positive.
absl::StatusOr<std::unique_ptr<DataChannelServer>> StartDataChannelServer(
    const std::string& listen, TieredStore* store, ServerMetrics* metrics,
    const AccessControl* access, TenantBook* tenants, const std::string& advertise = "",
    const DataChannelOptions& options = {}, TenantUsage* usage = nullptr);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_DATA_CHANNEL_SERVER_H_
