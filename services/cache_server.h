// The kvcache server: the kvcache.v1 CacheService and AdminService over a TieredStore, with
// gRPC health checking, server reflection and Prometheus metrics. kvcache-server's main
// only parses flags into ServerOptions and calls Start / WaitForShutdownSignal.
//
// Thread safety: Start returns a running server; Shutdown may be called from any thread,
// once. The destructor shuts down if needed and closes the store (RocksDB) cleanly.

#ifndef KVCACHE_SERVICES_CACHE_SERVER_H_
#define KVCACHE_SERVICES_CACHE_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cachestore/block_store.h"

namespace kvcache {

struct ServerOptions {
  // gRPC listen address, "host:port"; port 0 picks a free port. Default: 127.0.0.1:50051.
  std::string listen = "127.0.0.1:50051";
  // Prometheus text exposition address ("host:port"), empty for none. Default: none.
  std::string metrics_listen;
  // The bulk data channel's TCP address ("host:port", port 0: any), empty for none
  // (clients then use gRPC Get and Put). Default: none.
  std::string data_listen;
  // The store: capacities, disk path, block size limit, eviction policy.
  TieredStoreOptions store;
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
  // One line describing the effective configuration, for the start-up log.
  virtual std::string ConfigSummary() const = 0;

  // Stops taking calls (health turns NOT_SERVING, new calls get UNAVAILABLE), lets in-flight
  // calls finish for up to `grace`, then cancels the rest. Idempotent.
  virtual void Shutdown(absl::Duration grace) = 0;

  // The store, for tests and embedding.
  virtual TieredStore* store() = 0;
};

// Opens the store and starts serving.
//   INVALID_ARGUMENT  bad options (the message names the flag).
//   INTERNAL          the disk tier could not be opened.
//   UNAVAILABLE       the listen or metrics address could not be bound.
absl::StatusOr<std::unique_ptr<CacheServer>> StartCacheServer(const ServerOptions& options);

// Blocks until SIGTERM or SIGINT. Call before starting threads that should not see those
// signals (it blocks them in the calling thread and its future children).
void BlockShutdownSignals();
int WaitForShutdownSignal();

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_CACHE_SERVER_H_
