// The cluster client: one CacheClient over N cache nodes, with rendezvous placement,
// replication, per-node health and circuit breakers, and read replicas for hot blocks.
// NewCacheClient returns one when its target names several nodes; make one directly (as
// kvcache-admin does) to read the per-node state. docs/cluster.md explains the choices.
//
// Placement unit: each block by its own (namespace, key). Lookup sends each node the keys it
// owns, all nodes in parallel (one round trip), and combines the answers into the longest
// prefix present across the cluster; Get does the same with the payloads, and asks the next
// replica only for a block that an owner missed or could not serve; Put writes each block
// to its first live owner before returning and to the other R-1 owners in the background.
//
// Failure: a node's calls are bounded by `CacheClientOptions::timeout` (Lookups by
// `lookup_timeout`); every client call returns by then (node calls that have not answered are
// abandoned and count as misses).
// Lookup and Get never fail because of a node (a node failure is a shorter prefix); Put
// fails (UNAVAILABLE) only when no block could be written anywhere.
//
// Thread safety: safe to use from many threads at once. Background work (health checks,
// DNS re-resolution, replication) runs on the client's own threads, which the destructor
// stops, waiting for the node calls in flight (a call abandoned on a frozen node may take up
// to two `timeout`s to end: the node client's data channel negotiation, then its gRPC call).

#ifndef KVCACHE_CLIENT_CLUSTER_CLIENT_H_
#define KVCACHE_CLIENT_CLUSTER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cache_client.h"

namespace kvcache {

// One node as the cluster client sees it. Counters are since the node joined this client's
// membership.
struct ClusterNodeStats {
  std::string address;
  // "closed" (in use), "open" (skipped, waiting to probe), "half-open" (being probed).
  std::string breaker;
  bool healthy = false;  // Last health check or call outcome was good.
  uint64_t lookups = 0;       // Lookup calls sent to the node.
  uint64_t gets = 0;          // Get calls sent to the node.
  uint64_t get_blocks = 0;    // Blocks the node served.
  uint64_t hot_get_blocks = 0;  // Of those, hot blocks read from it as a read replica.
  uint64_t puts = 0;          // Put calls (first copies, replicas and hot copies).
  uint64_t put_blocks = 0;    // Blocks the node stored (stored + already present).
  uint64_t failures = 0;      // Calls and health checks that failed.
  uint64_t breaker_opens = 0;
  uint64_t replication_dropped = 0;  // Background writes to it dropped (queue full).
  std::string last_error;  // The last failure (call or health check), for operators.
};

class ClusterCacheClient : public CacheClient {
 public:
  // The current members (as listed or resolved), in a stable order.
  virtual std::vector<std::string> Members() const = 0;
  // One entry per current member, in Members() order.
  virtual std::vector<ClusterNodeStats> NodeStats() const = 0;
  // Blocks currently served from read replicas.
  virtual size_t NumHotBlocks() const = 0;
  // Waits until the background writes queued so far are done (tests, orderly shutdown).
  virtual void WaitForBackgroundWrites() = 0;
};

// Makes a cluster client; any number of nodes (one included). Connects lazily; a DNS target
// is resolved here once (a failure leaves the cluster empty until the next re-resolution:
// every call is then a miss).
//   INVALID_ARGUMENT  malformed target, replicas < 1.
absl::StatusOr<std::unique_ptr<ClusterCacheClient>> NewClusterCacheClient(
    const CacheClientOptions& options);

// The plain client of one node (what NewCacheClient returns for a single target). Defined in
// cache_client.cc.
//   INVALID_ARGUMENT  empty target.
absl::StatusOr<std::unique_ptr<CacheClient>> NewNodeCacheClient(const CacheClientOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_CLUSTER_CLIENT_H_
