// The kvcache server: the kvcache.v1 CacheService and AdminService over a TieredStore, with
// gRPC health checking, server reflection and Prometheus metrics. kvcache-server's main
// only parses and checks flags into ServerOptions, calls StartCacheServer, waits for a
// termination signal (common/signals.h) and calls Shutdown.
//
// Every listener is exclusive: a port another process (or another kvcache-server) already
// listens on is an error at start, never shared (gRPC's SO_REUSEPORT is turned off).
//
// Thread safety: Start returns a running server; Shutdown may be called from any thread,
// once. The destructor shuts down if needed and closes the store (RocksDB) cleanly.

#ifndef KVCACHE_SERVICES_CACHE_SERVER_H_
#define KVCACHE_SERVICES_CACHE_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cachestore/block_store.h"
#include "common/tls_options.h"
#include "services/call_limits.h"
#include "services/data_channel_options.h"

namespace kvcache {

struct ServerOptions {
  // gRPC listen address, "host:port"; port 0 picks a free port. Default: 127.0.0.1:50051.
  std::string listen = "127.0.0.1:50051";
  // Prometheus text exposition address ("host:port"), empty for none. Default: none.
  std::string metrics_listen;
  // The bulk data channel's TCP address ("host:port", port 0: any), empty for none
  // (clients then use gRPC Get and Put). Default: none.
  std::string data_listen;
  // What OpenDataChannel advertises: empty for the bound data address (clients that get an
  // unspecified host, 0.0.0.0 or ::, use the host they dialled), "host" for host:<bound
  // port>, or "host:port" as it is. Default: empty.
  std::string data_advertise;
  // The data channel's connection caps and per-phase deadlines (see DataChannelOptions).
  DataChannelOptions data_channel;
  // The drain period Shutdown will be given, for the configuration readout only.
  // Default: 10 s.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Transport security of the gRPC listener (cache, admin, health, reflection); see
  // common/tls.h and docs/security.md. With TLS on, `data_listen` must be empty: the data
  // channel is plain TCP. Default: plaintext.
  TlsServerOptions tls;
  // Serve plaintext on an address that is not loopback (refused otherwise).
  // Default: false.
  bool allow_plaintext = false;
  // The callers, tenants, roles and quotas file (services/access.h, docs/security.md),
  // re-read by ReloadAccess (SIGHUP). Empty: every caller is the anonymous admin, allowed
  // only on a loopback `listen` or with `allow_anonymous`. Default: empty.
  std::string auth_tokens_file;
  bool allow_anonymous = false;
  // The admin service's own listener, "host:port" (port 0: any). The admin service is
  // served here and, when `listen` is a loopback address, on `listen` too (equally
  // reachable). Empty: 127.0.0.1 and `listen`'s port + 2 (any port when that is 0).
  // Plaintext on a non-loopback admin address needs `allow_plaintext` as `listen` does.
  std::string admin_listen;
  // The gRPC surface's limits (keys per request, blocks per stream, bytes in flight, call
  // duration, message size, streams per connection, gRPC memory); docs/operations.md.
  CallLimits limits;
  // The store: capacities, disk path, block size limit, eviction policy. (Its listener is
  // the server's event ring when events are on.)
  TieredStoreOptions store;
  // Threads that run the store work which may wait on the disk (Get's reads of blocks not
  // in memory, Put's stores, admin list/inspect/evict/flush), so that gRPC's callback threads, which also
  // answer health checks, never do; a stuck disk holds at most this many calls' work and
  // queues the rest. Clamped to 1..256. Default: 8.
  int io_threads = 8;
  // KV events (SubscribeEvents, docs/events.md): how many of the newest events the ring
  // keeps for subscribers that reconnect (about 160 B each, more with token ids); 0 turns
  // events off. Default: 65536.
  size_t events_ring = 65536;
};

class CacheServer {
 public:
  CacheServer() = default;
  CacheServer(const CacheServer&) = delete;
  CacheServer& operator=(const CacheServer&) = delete;
  virtual ~CacheServer() = default;

  // The address actually listened on (with the chosen port when port 0 was asked).
  virtual std::string address() const = 0;
  // The metrics address actually listened on, or empty.
  virtual std::string metrics_address() const = 0;
  // The data channel address actually listened on, or empty.
  virtual std::string data_address() const = 0;
  // The admin listener's address.
  virtual std::string admin_address() const = 0;

  // Re-reads the --auth-tokens file (a no-op without one). On an error the callers in use
  // are kept and the error is returned (the message names the file and line).
  virtual absl::Status ReloadAccess() = 0;
  // One line describing the effective configuration, for the start-up log.
  virtual std::string ConfigSummary() const = 0;

  // Drains, then stops: health turns NOT_SERVING at once, while the listeners stay open
  // and calls are still served for `grace`, so load balancers and Kubernetes see the node
  // leave and move traffic before anything is refused; then the listeners close, calls
  // still running are cancelled and new ones fail (UNAVAILABLE). Blocks for `grace`.
  // Idempotent; concurrent callers wait for the first.
  virtual void Shutdown(absl::Duration grace) = 0;

  // The store, for tests and embedding.
  virtual TieredStore* store() = 0;
};

// Opens the store and starts serving.
//   INVALID_ARGUMENT  bad options (the message names the flag): among them unreadable or
//                     mismatched TLS files, a data channel with TLS, plaintext on a
//                     non-loopback address without allow_plaintext (a usage error),
//                     anonymous access on a non-loopback address without
//                     allow_anonymous, a malformed auth_tokens_file.
//   NOT_FOUND         auth_tokens_file cannot be read.
//   INTERNAL          the disk tier could not be opened.
//   UNAVAILABLE       the listen, data or metrics address could not be bound (in use, or
//                     not an address of this machine); the message names the flag.
absl::StatusOr<std::unique_ptr<CacheServer>> StartCacheServer(const ServerOptions& options);

// Whether the server would start with `options` as far as exposure goes: plaintext (TLS
// off) or anonymous access (no auth_tokens_file) on a non-loopback `listen` or admin
// address is refused (a usage error naming the flag to give) unless allowed by
// allow_plaintext / allow_anonymous. OK comes with the warnings to print at start.
absl::Status CheckServerPolicies(const ServerOptions& options,
                                 std::vector<std::string>* warnings);

// The admin listener's address for `options` (see ServerOptions::admin_listen).
std::string AdminListenOf(const ServerOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_CACHE_SERVER_H_
