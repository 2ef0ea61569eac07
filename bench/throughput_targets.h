// The stores `kvcache-bench throughput` drives, behind one small interface, so that every
// target runs the very same workload loop: kvcache (through the public CacheClient), Redis
// (hiredis), memcached (libmemcached) and a raw TCP request/response server (the loopback
// ceiling, served by the bench binary itself).
//
// Thread safety: a TargetConnection is used by one thread only; each client thread of the
// bench makes its own (its own CacheClient and gRPC channel, hiredis context, memcached_st
// or socket). ServeRawTcp blocks and serves each connection on its own thread.

#ifndef KVCACHE_BENCH_THROUGHPUT_TARGETS_H_
#define KVCACHE_BENCH_THROUGHPUT_TARGETS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tls_options.h"

namespace kvcache {
namespace bench {

// Which store a connection talks to.
// kKvcache is kvcache as the worker uses it: the same-host path (shared memory) when the
// server is on this machine, else the TCP data channel. kKvcacheTcp forces the TCP data
// channel (same-host path off in the client); kKvcacheGrpc turns the data channel off
// (gRPC only).
enum class TargetKind { kKvcache, kKvcacheGrpc, kRedis, kMemcached, kRawTcp, kKvcacheTcp };

inline bool IsKvcache(TargetKind kind) {
  return kind == TargetKind::kKvcache || kind == TargetKind::kKvcacheGrpc ||
         kind == TargetKind::kKvcacheTcp;
}

// Parses "kvcache", "kvcache-tcp", "kvcache-grpc", "redis", "memcached" or "rawtcp".
// INVALID_ARGUMENT otherwise.
absl::StatusOr<TargetKind> ParseTargetKind(absl::string_view name);
absl::string_view TargetName(TargetKind kind);

// Values are identified by a 64-bit id within a run; `nonce` keeps runs apart (every run
// writes keys no earlier run wrote).
struct KeySpace {
  uint64_t nonce = 0;
};

// One client's connection to one store.
class TargetConnection {
 public:
  TargetConnection() = default;
  TargetConnection(const TargetConnection&) = delete;
  TargetConnection& operator=(const TargetConnection&) = delete;
  virtual ~TargetConnection() = default;

  // Stores `*value` under value id `id`. The connection may borrow the string during the
  // call (kvcache's CacheBlock holds a std::string: swapping it in avoids a harness copy)
  // but hands it back unchanged. Any failure is an error (counted by the caller).
  virtual absl::Status Put(uint64_t id, std::string* value) = 0;

  // Fetches value id `id` and returns a view of its bytes, valid until the next call on
  // this connection. NOT_FOUND when the store does not hold it.
  virtual absl::StatusOr<absl::string_view> Get(uint64_t id, size_t expected_bytes) = 0;

  // Fetches values `ids` in one request (kvcache: one Get of those keys, which stops at the
  // first it does not hold); views valid until the next call on this connection. Other
  // stores: one id only (UNIMPLEMENTED otherwise).
  virtual absl::StatusOr<std::vector<absl::string_view>> GetMany(
      absl::Span<const uint64_t> ids, size_t expected_bytes);

  // Whether Get returns the bytes that Put stored (false for the raw TCP ceiling, which
  // keeps nothing and answers a get with `expected_bytes` filler bytes).
  virtual bool StoresValues() const { return true; }
};

// Connects to `addr` ("host:port"); `tls` is for the kvcache targets (docs/security.md).
// Connection failures are UNAVAILABLE.
absl::StatusOr<std::unique_ptr<TargetConnection>> ConnectTarget(
    TargetKind kind, const std::string& addr, const KeySpace& keys,
    const TlsClientOptions& tls = TlsClientOptions());

// The 32-byte kvcache key (and namespace) of value id `id` in `keys`; Redis and memcached
// use the same bytes, hex-encoded, as their key strings.
std::string KvcacheKeyBytes(const KeySpace& keys, uint64_t id);
std::string KvcacheNamespaceBytes(const KeySpace& keys);

// The raw TCP server: binds `listen` ("host:port", port 0 for any), prints
// "kvcache-bench rawtcp: listening on HOST:PORT" on stdout, then serves until killed.
// Returns only on a bind/listen failure (UNAVAILABLE).
absl::Status ServeRawTcp(const std::string& listen);

}  // namespace bench
}  // namespace kvcache

#endif  // KVCACHE_BENCH_THROUGHPUT_TARGETS_H_
