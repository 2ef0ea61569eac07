// Placement of blocks on the nodes of a cluster: rendezvous (highest-random-weight) hashing,
// and the cluster target syntax. See docs/cluster.md.
//
// A block (namespace, key) is owned by the R nodes with the highest scores
//
//   score(node, ns, key) = XXH3-64( ns || key , seed = XXH3-64(node) )
//
// where `node` is the node's address exactly as listed ("10.0.0.7:50051") and ns and key are
// the 32 raw bytes of each. The order is reproducible in any language that has XXH3; adding a
// node moves to it only the blocks it now outranks the others on (about 1/N of them), and
// removing one moves only the blocks it owned.
//
// Thread safety: pure functions, except ResolveClusterTarget (which calls the system resolver
// and may block for as long as it takes).

#ifndef KVCACHE_CLIENT_RENDEZVOUS_H_
#define KVCACHE_CLIENT_RENDEZVOUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/key.h"

namespace kvcache {

// The rendezvous score of `node` for block (ns, key); higher wins.
uint64_t RendezvousScore(absl::string_view node, const Key& ns, const Key& key);

// Indices into `nodes` of the highest-scoring `count` nodes for (ns, key), best first
// (all of them when count >= nodes.size()). Ties (never seen in practice) go to the lower
// index.
std::vector<size_t> RendezvousRank(absl::Span<const std::string> nodes, const Key& ns,
                                   const Key& key, size_t count);

// Every node in rendezvous order for (ns, key): the first R are the block's owners, the next
// ones its hot read replicas (and its owners should an owner be down). For
// `kvcache-admin locate`.
std::vector<std::string> LocateOwners(absl::Span<const std::string> nodes, const Key& ns,
                                      const Key& key);

// A parsed cache target.
struct ClusterTarget {
  // The nodes listed ("host:port" each), or, for a DNS target, none until resolved.
  std::vector<std::string> addresses;
  // For "dns:///name:port": the name and port to resolve; empty otherwise.
  std::string dns_host;
  std::string dns_port;

  bool is_dns() const { return !dns_host.empty(); }
  // True when the target names more than one node, or may (a DNS name): the cluster client
  // is used. A single "host:port" (or any other single gRPC target) is a plain node client.
  bool is_cluster() const { return is_dns() || addresses.size() > 1; }
};

// Parses "host:port", "host:port,host:port,..." (spaces around commas allowed, duplicates
// dropped) or "dns:///name:port" (also "dns:name:port").
//   INVALID_ARGUMENT  empty target, an empty list entry, or a DNS target without a port.
absl::StatusOr<ClusterTarget> ParseClusterTarget(absl::string_view target);

// The node addresses of `target` now: the listed ones, or the DNS name's addresses
// ("ip:port", IPv6 as "[ip]:port"), sorted. Blocks in the system resolver.
//   INVALID_ARGUMENT  as ParseClusterTarget.
//   UNAVAILABLE       the name does not resolve (or resolves to nothing).
absl::StatusOr<std::vector<std::string>> ResolveClusterTarget(absl::string_view target);
absl::StatusOr<std::vector<std::string>> ResolveClusterTarget(const ClusterTarget& target);

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_RENDEZVOUS_H_
