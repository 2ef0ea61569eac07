// The kvcache client: Lookup / Get / Put against one cache server or a cluster of them, with
// deadlines and clear errors. Used by the worker, kvcache-admin and the benchmarks; usable by any C++ inference
// engine on its own (it depends on gRPC and the kvcache.v1 stubs, not on the store).
//
// Thread safety: a CacheClient is safe to use from many threads at once. Each call blocks
// until it completes or its deadline (`CacheClientOptions::timeout`) passes.
//
// Errors are absl::Status with the server's gRPC code; a cache miss is never an error
// (Lookup returns 0, Get returns fewer blocks). When the server is down or slow, calls fail
// with UNAVAILABLE or DEADLINE_EXCEEDED: callers that can recompute should treat any error
// as a miss.
//
// Cluster: given several nodes (a list or a DNS name, see `target`), the client places each
// block on R nodes by rendezvous hashing and talks to the nodes in parallel; a node that is
// down, frozen or cut off costs misses (a shorter Lookup prefix, fewer Get blocks) for at
// most one `timeout`, never an error. docs/cluster.md; client/cluster_client.h for per-node
// state.

#ifndef KVCACHE_CLIENT_CACHE_CLIENT_H_
#define KVCACHE_CLIENT_CACHE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/buffer_pool.h"
#include "common/block_shape.h"
#include "common/key.h"
#include "common/tls_options.h"

namespace kvcache {

struct CacheClientOptions {
  // Server address. Required. One of:
  //   "host:port" (or any other single gRPC target): one node, a plain client;
  //   "host:port,host:port,...": a cluster of the nodes listed;
  //   "dns:///name:port": a cluster of the addresses the name resolves to (a Kubernetes
  //   headless Service), re-resolved every `resolve_interval`.
  std::string target;
  // Deadline of each call. In a cluster, of each call to a node, and of a whole client call
  // (node calls run in parallel; a node that has not answered by then is a miss).
  // Default: 5 s.
  absl::Duration timeout = absl::Seconds(5);
  // Largest message the client accepts or sends. Default: 80 MiB.
  int max_message_bytes = 80 << 20;
  // Move Get and Put payloads over the server's bulk data channel (a plain TCP connection
  // negotiated with OpenDataChannel; docs/data-channel.md) when it offers one, falling back
  // to gRPC Get and Put when it does not or the channel fails (counted: see
  // data_channel_fallbacks). A channel advertised on an unspecified host (0.0.0.0, ::) is
  // reached on the host of `target`. Default: true.
  // Ignored (no data channel) when `tls` is on: the data channel is plaintext.
  bool use_data_channel = true;
  // Where the server is on this machine (it advertises a same-host socket and the same
  // machine and boot identity, docs/data-channel.md "Same-host path"), Get and Put payloads
  // move through shared memory instead of the TCP channel; on any failure the TCP channel
  // (then gRPC) takes over, counted in local_path_fallbacks. Needs use_data_channel.
  // Default: true.
  bool use_local_path = true;
  // Where Get's payloads are received over the data channel: buffers taken from this pool
  // (a caller done with a block may Give its payload back, so the next Get reuses warm
  // memory). Null: a fresh allocation per block. Default: null.
  std::shared_ptr<BufferPool> payload_pool;
  // Transport security of every channel the client opens (node calls, a cluster's health
  // checks): common/tls.h, docs/security.md. Default: plaintext.
  TlsClientOptions tls;

  // --- Cluster only (ignored for a single node) ---

  // Deadline of a cluster Lookup (all its node calls). Lookups are small and come first in
  // a request, so a short deadline bounds what a frozen node costs the request that finds it
  // out (its breaker then opens and later calls skip it). Default: 250 ms.
  absl::Duration lookup_timeout = absl::Milliseconds(250);
  // Replication factor R: each block is written to the R first live nodes of its rendezvous
  // order (the first synchronously, the others in the background) and read from any of them.
  // Default: 1.
  int replicas = 1;
  // How often a DNS target is re-resolved; nodes that appear are used, nodes that disappear
  // are dropped. Default: 30 s.
  absl::Duration resolve_interval = absl::Seconds(30);
  // How often each node's grpc.health.v1 status is checked while its breaker is closed
  // (a check's deadline is `timeout`). Default: 1 s.
  absl::Duration health_check_interval = absl::Seconds(1);
  // Consecutive failed calls (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, or a failed
  // health check) that open a node's circuit breaker: the node is then skipped (its blocks
  // are misses) until a half-open health probe finds it SERVING. Default: 1 (one deadline is
  // all a frozen node may cost).
  int breaker_failures = 1;
  // Wait before the first half-open probe of an open breaker; doubled after each failed
  // probe up to `breaker_max_backoff`, reset when the node is healthy. Default: 500 ms.
  absl::Duration breaker_initial_backoff = absl::Milliseconds(500);
  // Default: 30 s.
  absl::Duration breaker_max_backoff = absl::Seconds(30);
  // Hot blocks: a block this client reads at least `hot_min_reads` times per `hot_window`
  // (an exponentially decayed count) is copied to `hot_extra_replicas` more nodes (the next
  // ones in its rendezvous order) and its Gets are spread over all of them; it goes back to
  // its R owners when its count falls under half the threshold. 0 turns this off.
  // Default: 32.
  int hot_min_reads = 32;
  // Default: 1 s.
  absl::Duration hot_window = absl::Seconds(1);
  // Default: 2.
  int hot_extra_replicas = 2;
  // Bytes of block copies queued for background writes (replicas beyond the first and hot
  // copies); beyond it such writes are dropped (counted in the node stats). Default: 256 MiB.
  size_t max_pending_replication_bytes = 256 << 20;
};

// A block as the client sends and receives it.
struct CacheBlock {
  Key key;
  std::optional<Key> parent;
  std::string payload;
  uint64_t checksum = 0;  // Filled in by Put; verified by Get.
  BlockShape shape;
};

// Blocks for chain[first..], in order, each with its key and its parent (the key before
// it in the chain; none for chain[0]), payload and shape left for the caller to fill: the
// list Put takes for the part of a chain that is not cached yet. Empty when first >=
// chain.size().
std::vector<CacheBlock> ChainedBlocks(absl::Span<const Key> chain, size_t first);

struct CacheLookup {
  size_t num_present = 0;  // Leading keys stored.
  size_t num_in_ram = 0;   // Of those, leading keys in the server's RAM tier.
};

struct CachePutResult {
  uint32_t stored = 0;
  uint32_t already_present = 0;
  uint32_t not_admitted = 0;
  // Of already_present: stored with other bytes (kept; the server records the conflict).
  // Counted only over gRPC Put: the data channel's reply says already present.
  uint32_t conflicts = 0;
};

class CacheClient {
 public:
  CacheClient() = default;
  CacheClient(const CacheClient&) = delete;
  CacheClient& operator=(const CacheClient&) = delete;
  virtual ~CacheClient() = default;

  // How many leading `keys` of namespace `ns` the server holds.
  //   INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED.
  virtual absl::StatusOr<CacheLookup> Lookup(const Key& ns, absl::Span<const Key> keys) = 0;

  // The leading run of `keys` that the server holds, in order (possibly empty). A block
  // whose checksum fails on arrival ends the run there, as a miss.
  //   INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED.
  virtual absl::StatusOr<std::vector<CacheBlock>> Get(const Key& ns,
                                                      absl::Span<const Key> keys) = 0;

  // Publishes `blocks` (their checksums are computed here) as one client stream.
  //   INVALID_ARGUMENT, RESOURCE_EXHAUSTED (a block over the server's limit), UNAVAILABLE,
  //   DEADLINE_EXCEEDED.
  virtual absl::StatusOr<CachePutResult> Put(const Key& ns,
                                             absl::Span<const CacheBlock> blocks) = 0;

  // Get and Put calls that went over gRPC although the server offers a data channel (it
  // could not be reached or broke: see docs/data-channel.md). Never blocks.
  virtual uint64_t data_channel_fallbacks() const { return 0; }
  // Get and Put calls served by the same-host path (shared memory), and times that path was
  // offered on this machine but failed (calls then took the TCP channel or gRPC). Never
  // block.
  virtual uint64_t local_path_calls() const { return 0; }
  virtual uint64_t local_path_fallbacks() const { return 0; }
};

// Makes a client (a cluster client when `options.target` names several nodes or a DNS name);
// connects lazily (the first call connects).
//   INVALID_ARGUMENT  empty or malformed target, replicas < 1, unreadable or mismatched TLS
//                     files (the message names the flag).
absl::StatusOr<std::unique_ptr<CacheClient>> NewCacheClient(const CacheClientOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_CACHE_CLIENT_H_
