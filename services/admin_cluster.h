// kvcache-admin over several nodes: the commands that visit every node of a cluster target
// (`host:port,host:port,...` or `dns:///name:port`) and combine what they answer. The
// single-node commands live in admin_cli.cc, which parses the flags, checks them (usage
// errors) and calls these with plain values; output formats are documented in
// docs/operations.md ("Clusters").
//
// Every command calls all nodes in parallel, each call bounded by the node timeout. A node
// that cannot be reached is reported (a row, a line, an "error" field) and never stops the
// others. Return values:
//   OK           the command did everything it does on every node (`cluster`, `locate`:
//                at least one node answered).
//   UNAVAILABLE  a node (or, for `cluster`/`locate`, every node) did not answer; what the
//                others answered is printed first.
//   The status of a node's call otherwise (the first failure), after printing the rest.
//
// Thread safety: a ClusterAdmin may be used from one thread at a time; it makes its own
// threads for the duration of each call.

#ifndef KVCACHE_SERVICES_ADMIN_CLUSTER_H_
#define KVCACHE_SERVICES_ADMIN_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/admin_client.h"
#include "common/key.h"

namespace kvcache {

// The share of keys each of `nodes` owns (is one of the first `replicas` in rendezvous
// order for), estimated over `samples` random (namespace, key) pairs drawn from a fixed seed
// (so the figure is reproducible). The shares sum to min(replicas, nodes.size()); each is
// about replicas/N. Costs samples x N hashes (100,000 x 3: a few ms).
std::vector<double> SampledKeyShares(absl::Span<const std::string> nodes, int replicas,
                                     int samples);

// max / mean of `values`; nullopt when empty or when the mean is 0.
std::optional<double> Skew(absl::Span<const uint64_t> values);

// One node's answer to `cluster`.
struct ClusterNodeReport {
  std::string address;
  // "SERVING", "NOT_SERVING" (draining, say: it still answers) or "unreachable".
  std::string health;
  std::string error;   // Why unreachable, or why stats failed; empty otherwise.
  bool has_stats = false;
  uint64_t ram_blocks = 0, disk_blocks = 0;  // A block promoted to RAM counts in both.
  uint64_t ram_bytes = 0, disk_bytes = 0;    // As charged to each tier's capacity.
  // Gets served / Gets asked (ram hits + disk hits over those plus the Gets every tier
  // missed); nullopt before any Get.
  std::optional<double> hit_ratio;
  // Lookup keys found present / Lookup keys asked; nullopt before any Lookup.
  std::optional<double> lookup_hit_ratio;
  double key_share = 0;  // SampledKeyShares.

  uint64_t blocks() const { return ram_blocks + disk_blocks; }
  uint64_t bytes() const { return ram_bytes + disk_bytes; }
};

struct ClusterReport {
  std::vector<ClusterNodeReport> nodes;  // In target order.
  int replicas = 1;
  int samples = 0;  // Keys sampled for key_share.
  // Over the nodes that answered with stats: max/mean of blocks() and of bytes().
  std::optional<double> skew_blocks, skew_bytes;
  int answered = 0;  // Nodes that answered with stats.
};

// Talks to every node of a cluster.
class ClusterAdmin final {
 public:
  // `addresses`: the nodes, as ResolveClusterTarget gives them (at least one).
  //   INVALID_ARGUMENT  no address, or an empty one.
  static absl::StatusOr<std::unique_ptr<ClusterAdmin>> Connect(
      std::vector<std::string> addresses, absl::Duration timeout,
      const TlsClientOptions& tls = TlsClientOptions());

  const std::vector<std::string>& addresses() const { return addresses_; }

  // The addresses clients place blocks by (rendezvous hashing over the cache ports): a node
  // dialed on its admin listener is placed by the same host on its --listen port, from its
  // GetConfig (a node that does not answer takes the port mapping of those that do).
  std::vector<std::string> PlacementAddresses();

  // `cluster`: health and stats of every node, key shares over `samples` keys, skew.
  ClusterReport Survey(int replicas, int samples);

  // Commands; `json` picks the output format (docs/operations.md).
  absl::Status Cluster(int replicas, int samples, bool json, std::ostream& out);
  absl::Status Health(bool json, std::ostream& out);
  absl::Status Stats(bool json, std::ostream& out);
  // `request.limit` applies to the merged listing.
  absl::Status List(const v1::ListBlocksRequest& request, bool json, std::ostream& out);
  // The most recent `limit` conflicting Puts of each node.
  absl::Status Conflicts(uint32_t limit, bool json, std::ostream& out);
  absl::Status Inspect(const v1::InspectBlockRequest& request, bool json, std::ostream& out);
  absl::Status Locate(const Key& ns, const Key& key, int replicas, bool json,
                      std::ostream& out);
  absl::Status Evict(const v1::EvictRequest& request, std::ostream& out);
  absl::Status Flush(const v1::FlushRequest& request, const std::string& tier_name,
                     std::ostream& out);
  absl::Status Config(bool json, std::ostream& out);

  ClusterAdmin(const ClusterAdmin&) = delete;
  ClusterAdmin& operator=(const ClusterAdmin&) = delete;

 private:
  ClusterAdmin(std::vector<std::string> addresses,
               std::vector<std::unique_ptr<AdminClient>> clients)
      : addresses_(std::move(addresses)), clients_(std::move(clients)) {}

  // fn(i, client i) for every node, all in parallel; returns once all are done.
  template <typename T, typename Fn>
  std::vector<absl::StatusOr<T>> OnEveryNode(Fn fn);

  const std::vector<std::string> addresses_;
  const std::vector<std::unique_ptr<AdminClient>> clients_;
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_ADMIN_CLUSTER_H_
