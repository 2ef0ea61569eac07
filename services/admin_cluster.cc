#include "services/admin_cluster.h"

#include <algorithm>
#include <random>
#include <thread>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/rendezvous.h"
#include "common/byte_size.h"
#include "common/socket_io.h"
#include "services/admin_format.h"

namespace kvcache {
namespace {

using json = nlohmann::json;
using admin::Hex;

json OptionalJson(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

std::string Percent(const std::optional<double>& v) {
  return v ? absl::StrFormat("%.1f%%", 100.0 * *v) : "-";
}

std::string Ratio(const std::optional<double>& v) {
  return v ? absl::StrFormat("%.2f", *v) : "-";
}

std::optional<double> RatioOf(uint64_t part, uint64_t whole) {
  if (whole == 0) return std::nullopt;
  return static_cast<double>(part) / static_cast<double>(whole);
}

// The status a cluster command returns when `failed` of `total` nodes did not answer;
// `first` is the first failure's message.
absl::Status NodesFailed(int failed, size_t total, const std::string& first) {
  return absl::UnavailableError(
      absl::StrCat(failed, " of ", total, " nodes did not answer; first: ", first));
}

}  // namespace

std::vector<double> SampledKeyShares(absl::Span<const std::string> nodes, int replicas,
                                     int samples) {
  std::vector<double> shares(nodes.size(), 0.0);
  if (nodes.empty() || samples <= 0 || replicas <= 0) return shares;
  std::mt19937_64 rng(0x6b7663616368ull);  // "kvcach": fixed, so the figure repeats.
  std::vector<uint64_t> owned(nodes.size(), 0);
  Key ns, key;
  for (int s = 0; s < samples; ++s) {
    for (Key* k : {&ns, &key}) {
      for (size_t i = 0; i < kKeyBytes; i += 8) {
        const uint64_t r = rng();
        for (size_t b = 0; b < 8 && i + b < kKeyBytes; ++b) {
          k->bytes[i + b] = static_cast<uint8_t>(r >> (8 * b));
        }
      }
    }
    for (size_t i : RendezvousRank(nodes, ns, key, static_cast<size_t>(replicas))) ++owned[i];
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    shares[i] = static_cast<double>(owned[i]) / samples;
  }
  return shares;
}

std::optional<double> Skew(absl::Span<const uint64_t> values) {
  if (values.empty()) return std::nullopt;
  uint64_t max = 0;
  double sum = 0;
  for (uint64_t v : values) {
    max = std::max(max, v);
    sum += static_cast<double>(v);
  }
  const double mean = sum / values.size();
  if (mean == 0) return std::nullopt;
  return static_cast<double>(max) / mean;
}

absl::StatusOr<std::unique_ptr<ClusterAdmin>> ClusterAdmin::Connect(
    std::vector<std::string> addresses, absl::Duration timeout, const TlsClientOptions& tls) {
  if (addresses.empty()) return absl::InvalidArgumentError("the cluster has no node");
  std::vector<std::unique_ptr<AdminClient>> clients;
  for (const std::string& a : addresses) {
    absl::StatusOr<std::unique_ptr<AdminClient>> c = NewAdminClient({a, timeout, tls});
    if (!c.ok()) return c.status();
    clients.push_back(*std::move(c));
  }
  return std::unique_ptr<ClusterAdmin>(new ClusterAdmin(std::move(addresses), std::move(clients)));
}

template <typename T, typename Fn>
std::vector<absl::StatusOr<T>> ClusterAdmin::OnEveryNode(Fn fn) {
  // One thread per node: each writes only its own slot, read after the joins.
  std::vector<absl::StatusOr<T>> results(clients_.size());
  std::vector<std::thread> threads;
  threads.reserve(clients_.size());
  for (size_t i = 0; i < clients_.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = fn(i, *clients_[i]); });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

std::vector<std::string> ClusterAdmin::PlacementAddresses() {
  std::vector<absl::StatusOr<v1::GetConfigResponse>> configs =
      OnEveryNode<v1::GetConfigResponse>([](size_t, AdminClient& c) { return c.GetConfig(); });
  auto port_of = [](const std::string& address) {
    std::string host, port;
    return SplitHostPort(address, &host, &port) ? port : std::string();
  };
  // Admin port -> cache port, as the nodes that answered report them.
  absl::flat_hash_map<std::string, std::string> cache_port_of;
  for (const auto& c : configs) {
    if (!c.ok()) continue;
    const std::string admin = port_of(c->admin_listen()), cache = port_of(c->listen());
    if (!admin.empty() && !cache.empty()) cache_port_of[admin] = cache;
  }
  std::vector<std::string> placement;
  for (const std::string& a : addresses_) {
    std::string host, port;
    auto it = cache_port_of.end();
    if (SplitHostPort(a, &host, &port)) it = cache_port_of.find(port);
    placement.push_back(it == cache_port_of.end()
                            ? a
                            : absl::StrCat(a.substr(0, a.size() - port.size()), it->second));
  }
  return placement;
}

ClusterReport ClusterAdmin::Survey(int replicas, int samples) {
  struct Answer {
    std::string health;
    absl::StatusOr<v1::GetStatsResponse> stats;
  };
  std::vector<absl::StatusOr<Answer>> answers =
      OnEveryNode<Answer>([](size_t, AdminClient& c) -> absl::StatusOr<Answer> {
        absl::StatusOr<std::string> health = c.Health();
        if (!health.ok()) return health.status();
        return Answer{*health, c.GetStats()};  // A draining node still answers.
      });
  ClusterReport report;
  report.replicas = replicas;
  report.samples = samples;
  const std::vector<double> shares = SampledKeyShares(PlacementAddresses(), replicas, samples);
  std::vector<uint64_t> blocks, bytes;
  for (size_t i = 0; i < addresses_.size(); ++i) {
    ClusterNodeReport n;
    n.address = addresses_[i];
    n.key_share = shares[i];
    if (!answers[i].ok()) {
      n.health = "unreachable";
      n.error = std::string(answers[i].status().message());
    } else if (!answers[i]->stats.ok()) {
      n.health = answers[i]->health;
      n.error = std::string(answers[i]->stats.status().message());
    } else {
      const v1::GetStatsResponse& s = *answers[i]->stats;
      n.health = answers[i]->health;
      n.has_stats = true;
      n.ram_blocks = s.ram().blocks();
      n.disk_blocks = s.disk().blocks();
      n.ram_bytes = s.ram().bytes();
      n.disk_bytes = s.disk().bytes();
      // Without a disk tier (capacity 0) the Gets every tier missed are the RAM's misses.
      const uint64_t hits = s.ram().hits() + s.disk().hits();
      const uint64_t misses =
          s.disk().capacity_bytes() != 0 ? s.disk().misses() : s.ram().misses();
      n.hit_ratio = RatioOf(hits, hits + misses);
      n.lookup_hit_ratio = RatioOf(s.lookup_hits(), s.lookup_keys());
      blocks.push_back(n.blocks());
      bytes.push_back(n.bytes());
      ++report.answered;
    }
    report.nodes.push_back(std::move(n));
  }
  report.skew_blocks = Skew(blocks);
  report.skew_bytes = Skew(bytes);
  return report;
}

absl::Status ClusterAdmin::Cluster(int replicas, int samples, bool json_out,
                                   std::ostream& out) {
  const ClusterReport r = Survey(replicas, samples);
  uint64_t total_blocks = 0, total_bytes = 0;
  for (const ClusterNodeReport& n : r.nodes) {
    total_blocks += n.blocks();
    total_bytes += n.bytes();
  }
  if (json_out) {
    json nodes = json::array();
    for (const ClusterNodeReport& n : r.nodes) {
      auto count = [&](uint64_t v) { return n.has_stats ? json(v) : json(nullptr); };
      nodes.push_back(json{{"address", n.address},
                           {"health", n.health},
                           {"error", n.error.empty() ? json(nullptr) : json(n.error)},
                           {"blocks", count(n.blocks())},
                           {"bytes", count(n.bytes())},
                           {"ram_blocks", count(n.ram_blocks)},
                           {"disk_blocks", count(n.disk_blocks)},
                           {"ram_bytes", count(n.ram_bytes)},
                           {"disk_bytes", count(n.disk_bytes)},
                           {"hit_ratio", OptionalJson(n.hit_ratio)},
                           {"lookup_hit_ratio", OptionalJson(n.lookup_hit_ratio)},
                           {"key_share", n.key_share}});
    }
    out << json{{"nodes", nodes},
                {"answered", r.answered},
                {"blocks", total_blocks},
                {"bytes", total_bytes},
                {"skew_blocks", OptionalJson(r.skew_blocks)},
                {"skew_bytes", OptionalJson(r.skew_bytes)},
                {"replicas", r.replicas},
                {"key_share_samples", r.samples}}
                   .dump(2)
        << "\n";
  } else {
    out << absl::StrFormat("%-21s %-11s %9s %11s %8s %11s %9s\n", "node", "health", "blocks",
                           "bytes", "get hits", "lookup hits", "key share");
    for (const ClusterNodeReport& n : r.nodes) {
      if (!n.has_stats) {
        out << absl::StrFormat("%-21s %-11s %s\n", n.address, n.health, n.error);
        continue;
      }
      out << absl::StrFormat("%-21s %-11s %9d %11s %8s %11s %9s\n", n.address, n.health,
                             n.blocks(), FormatBytes(n.bytes()), Percent(n.hit_ratio),
                             Percent(n.lookup_hit_ratio), Percent(n.key_share));
    }
    out << absl::StrFormat("%-33s %9d %11s\n",
                           absl::StrCat("total (", r.answered, " of ", r.nodes.size(),
                                        " nodes)"),
                           total_blocks, FormatBytes(total_bytes));
    out << "skew (max/mean over the nodes that answered): blocks " << Ratio(r.skew_blocks)
        << ", bytes " << Ratio(r.skew_bytes) << "\n";
    out << absl::StrFormat(
        "key share: the node's share of %d sampled keys as one of their %d owner(s) by "
        "rendezvous (ideal %d/%d = %.1f%%)\n",
        r.samples, r.replicas, std::min<size_t>(r.replicas, r.nodes.size()), r.nodes.size(),
        100.0 * std::min<size_t>(r.replicas, r.nodes.size()) / r.nodes.size());
  }
  if (r.answered == 0) {
    return absl::UnavailableError(
        absl::StrCat("no node answered (", r.nodes.size(), " nodes); first: ",
                     r.nodes.front().error));
  }
  return absl::OkStatus();
}

absl::Status ClusterAdmin::Health(bool json_out, std::ostream& out) {
  std::vector<absl::StatusOr<std::string>> health =
      OnEveryNode<std::string>([](size_t, AdminClient& c) { return c.Health(); });
  int not_serving = 0;
  json nodes = json::array();
  for (size_t i = 0; i < health.size(); ++i) {
    const std::string status = health[i].ok() ? *health[i] : "unreachable";
    const std::string error =
        health[i].ok() ? "" : std::string(health[i].status().message());
    if (status != "SERVING") ++not_serving;
    if (json_out) {
      nodes.push_back(json{{"address", addresses_[i]},
                           {"status", status},
                           {"error", error.empty() ? json(nullptr) : json(error)}});
    } else {
      out << addresses_[i] << " " << status << (error.empty() ? "" : ": " + error) << "\n";
    }
  }
  if (json_out) {
    out << json{{"status", not_serving == 0 ? "SERVING" : "NOT_SERVING"}, {"nodes", nodes}}
               .dump(2)
        << "\n";
  }
  if (not_serving != 0) {
    return absl::UnavailableError(
        absl::StrCat(not_serving, " of ", health.size(), " nodes are not SERVING"));
  }
  return absl::OkStatus();
}

absl::Status ClusterAdmin::Stats(bool json_out, std::ostream& out) {
  std::vector<absl::StatusOr<v1::GetStatsResponse>> stats = OnEveryNode<v1::GetStatsResponse>(
      [](size_t, AdminClient& c) { return c.GetStats(); });
  v1::GetStatsResponse sum;
  int failed = 0;
  std::string first_error;
  json nodes = json::array();
  for (size_t i = 0; i < stats.size(); ++i) {
    json node{{"address", addresses_[i]}};
    if (stats[i].ok()) {
      admin::AddStats(*stats[i], &sum);
      node["error"] = nullptr;
      node.update(admin::StatsJson(*stats[i]));
    } else {
      if (failed++ == 0) first_error = std::string(stats[i].status().message());
      node["error"] = std::string(stats[i].status().message());
      for (const char* field : {"ram", "disk", "lookups", "lookup_keys", "lookup_hits"}) {
        node[field] = nullptr;
      }
    }
    nodes.push_back(std::move(node));
  }
  if (json_out) {
    json j = admin::StatsJson(sum);
    j["nodes"] = std::move(nodes);
    out << j.dump(2) << "\n";
  } else {
    out << "summed over " << stats.size() - failed << " of " << stats.size()
        << " nodes (per node: --json)\n";
    admin::PrintStats(sum, out);
    for (size_t i = 0; i < stats.size(); ++i) {
      if (!stats[i].ok()) {
        out << "not counted: " << addresses_[i] << ": " << stats[i].status().message() << "\n";
      }
    }
  }
  return failed == 0 ? absl::OkStatus() : NodesFailed(failed, stats.size(), first_error);
}

absl::Status ClusterAdmin::Conflicts(uint32_t limit, bool json_out, std::ostream& out) {
  v1::ListConflictsRequest req;
  req.set_limit(limit);
  std::vector<absl::StatusOr<v1::ListConflictsResponse>> answers =
      OnEveryNode<v1::ListConflictsResponse>(
          [&req](size_t, AdminClient& c) { return c.ListConflicts(req); });
  nlohmann::json nodes = nlohmann::json::array();
  int failed = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!answers[i].ok()) {
      ++failed;
      if (json_out) {
        nodes.push_back({{"node", addresses_[i]},
                         {"error", std::string(answers[i].status().message())}});
      } else {
        out << addresses_[i] << ": " << answers[i].status().message() << "\n";
      }
      continue;
    }
    if (json_out) {
      nlohmann::json j = admin::ConflictsJson(*answers[i]);
      j["node"] = addresses_[i];
      nodes.push_back(std::move(j));
    } else {
      out << "node " << addresses_[i] << ":\n";
      admin::PrintConflicts(*answers[i], out);
    }
  }
  if (json_out) out << nlohmann::json{{"nodes", nodes}}.dump(2) << "\n";
  if (failed == 0) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(failed, " of ", answers.size(),
                                             " nodes did not answer"));
}

absl::Status ClusterAdmin::List(const v1::ListBlocksRequest& request, bool json_out,
                                std::ostream& out) {
  // Each node's first `limit`: enough for the merged first `limit`.
  const v1::ListBlocksRequest& req = request;
  const uint32_t limit = request.limit();
  std::vector<absl::StatusOr<v1::ListBlocksResponse>> lists =
      OnEveryNode<v1::ListBlocksResponse>(
          [&req](size_t, AdminClient& c) { return c.ListBlocks(req); });
  struct Row {
    const v1::BlockInfo* block;
    size_t node;
  };
  std::vector<Row> rows;
  bool truncated = false;
  int failed = 0;
  std::string first_error;
  for (size_t i = 0; i < lists.size(); ++i) {
    if (!lists[i].ok()) {
      if (failed++ == 0) first_error = std::string(lists[i].status().message());
      continue;
    }
    truncated |= lists[i]->truncated();
    for (const v1::BlockInfo& b : lists[i]->blocks()) rows.push_back({&b, i});
  }
  // A stable order across nodes: by namespace, key, then node.
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.block->namespace_id(), a.block->key(), a.node) <
           std::tie(b.block->namespace_id(), b.block->key(), b.node);
  });
  if (rows.size() > limit) {
    rows.resize(limit);
    truncated = true;
  }
  if (json_out) {
    json blocks = json::array();
    for (const Row& r : rows) {
      json b = admin::BlockJson(*r.block);
      b["node"] = addresses_[r.node];
      blocks.push_back(std::move(b));
    }
    json errors = json::array();
    for (size_t i = 0; i < lists.size(); ++i) {
      if (!lists[i].ok()) {
        errors.push_back(json{{"address", addresses_[i]},
                              {"error", std::string(lists[i].status().message())}});
      }
    }
    out << json{{"blocks", blocks}, {"truncated", truncated}, {"errors", errors}}.dump(2)
        << "\n";
  } else {
    out << absl::StrFormat("%-64s %-64s %-4s %10s  %-19s  %s\n", "namespace", "key", "tier",
                           "size", "last access", "node");
    for (const Row& r : rows) {
      const v1::BlockInfo& b = *r.block;
      out << absl::StrFormat("%-64s %-64s %-4s %10s  %-19s  %s\n", Hex(b.namespace_id()),
                             Hex(b.key()), admin::TierName(b.tier()),
                             FormatBytes(b.payload_bytes()),
                             admin::FormatMicros(b.last_access_unix_micros()),
                             addresses_[r.node]);
    }
    for (size_t i = 0; i < lists.size(); ++i) {
      if (!lists[i].ok()) {
        out << "not listed: " << addresses_[i] << ": " << lists[i].status().message() << "\n";
      }
    }
    out << rows.size() << " blocks on " << lists.size() - failed << " of " << lists.size()
        << " nodes" << (truncated ? " (more not shown: --limit)" : "") << "\n";
  }
  return failed == 0 ? absl::OkStatus() : NodesFailed(failed, lists.size(), first_error);
}

absl::Status ClusterAdmin::Inspect(const v1::InspectBlockRequest& request, bool json_out,
                                   std::ostream& out) {
  std::vector<absl::StatusOr<v1::InspectBlockResponse>> found =
      OnEveryNode<v1::InspectBlockResponse>(
          [&request](size_t, AdminClient& c) { return c.InspectBlock(request); });
  int failed = 0, holding = 0;
  std::string first_error;
  for (size_t i = 0; i < found.size(); ++i) {
    if (absl::IsNotFound(found[i].status())) continue;  // The node does not hold it.
    if (!found[i].ok()) {
      if (failed++ == 0) first_error = std::string(found[i].status().message());
      continue;
    }
    ++holding;
    for (const v1::BlockInfo& b : found[i]->blocks()) {
      if (json_out) {
        json j = admin::BlockJson(b);
        j["node"] = addresses_[i];
        out << j.dump(2) << "\n";
      } else {
        out << "node         " << addresses_[i] << "\n";
        admin::PrintInspect(b, out);
      }
    }
  }
  if (failed != 0) return NodesFailed(failed, found.size(), first_error);
  if (holding == 0) {
    return absl::NotFoundError(absl::StrCat("no node of ", found.size(), " holds key ",
                                            Hex(request.key())));
  }
  return absl::OkStatus();
}

absl::Status ClusterAdmin::Locate(const Key& ns, const Key& key, int replicas, bool json_out,
                                  std::ostream& out) {
  v1::InspectBlockRequest req;
  req.set_namespace_id(std::string(ns.view()));
  req.set_key(std::string(key.view()));
  std::vector<absl::StatusOr<v1::InspectBlockResponse>> found =
      OnEveryNode<v1::InspectBlockResponse>(
          [&req](size_t, AdminClient& c) { return c.InspectBlock(req); });
  const std::vector<std::string> placement = PlacementAddresses();
  const std::vector<size_t> order = RendezvousRank(placement, ns, key, placement.size());
  int answered = 0;
  json nodes = json::array();
  if (!json_out) {
    out << absl::StrFormat("%-4s %-21s %-5s %s\n", "rank", "node", "role", "held");
  }
  for (size_t rank = 0; rank < order.size(); ++rank) {
    const size_t i = order[rank];
    const bool owner = rank < static_cast<size_t>(replicas);
    std::string held;
    json node{{"rank", rank + 1},
              {"address", addresses_[i]},
              {"placement_address", placement[i]},
              {"owner", owner},
              {"held", nullptr},
              {"tier", nullptr},
              {"on_disk", nullptr},
              {"error", nullptr}};
    if (absl::IsNotFound(found[i].status())) {
      ++answered;
      held = "no";
      node["held"] = false;
    } else if (!found[i].ok()) {
      held = absl::StrCat("error: ", found[i].status().message());
      node["error"] = std::string(found[i].status().message());
    } else {
      ++answered;
      node["held"] = found[i]->blocks_size() > 0;
      if (found[i]->blocks_size() == 0) {
        held = "no";
      } else {
        const v1::BlockInfo& b = found[i]->blocks(0);
        held = absl::StrCat(admin::TierName(b.tier()),
                            b.on_disk() && b.tier() == v1::TIER_RAM ? " (also on disk)" : "");
        node["tier"] = admin::TierName(b.tier());
        node["on_disk"] = b.on_disk() || b.tier() == v1::TIER_DISK;
      }
    }
    if (json_out) {
      nodes.push_back(std::move(node));
    } else {
      out << absl::StrFormat("%-4d %-21s %-5s %s\n", rank + 1, addresses_[i],
                             owner ? "owner" : "-", held);
    }
  }
  if (json_out) {
    out << json{{"namespace", Hex(std::string(ns.view()))},
                {"key", Hex(std::string(key.view()))},
                {"replicas", replicas},
                {"nodes", nodes}}
                   .dump(2)
        << "\n";
  }
  if (answered == 0) {
    return absl::UnavailableError(absl::StrCat("no node answered (", addresses_.size(),
                                               " nodes); first: ",
                                               found[order[0]].status().message()));
  }
  return absl::OkStatus();
}

absl::Status ClusterAdmin::Evict(const v1::EvictRequest& request, std::ostream& out) {
  std::vector<absl::StatusOr<v1::EvictResponse>> r = OnEveryNode<v1::EvictResponse>(
      [&request](size_t, AdminClient& c) { return c.Evict(request); });
  uint64_t total = 0;
  int failed = 0;
  std::string first_error;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i].ok()) {
      total += r[i]->evicted();
      out << addresses_[i] << ": evicted " << r[i]->evicted() << " blocks\n";
    } else {
      if (failed++ == 0) first_error = std::string(r[i].status().message());
      out << addresses_[i] << ": failed: " << r[i].status().message() << "\n";
    }
  }
  out << "evicted " << total << " blocks in total (" << r.size() - failed << " of " << r.size()
      << " nodes)\n";
  return failed == 0 ? absl::OkStatus() : NodesFailed(failed, r.size(), first_error);
}

absl::Status ClusterAdmin::Flush(const v1::FlushRequest& request, const std::string& tier_name,
                                 std::ostream& out) {
  std::vector<absl::StatusOr<v1::FlushResponse>> r = OnEveryNode<v1::FlushResponse>(
      [&request](size_t, AdminClient& c) { return c.Flush(request); });
  uint64_t total = 0;
  int failed = 0;
  std::string first_error;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i].ok()) {
      total += r[i]->dropped();
      out << addresses_[i] << ": flushed " << tier_name << ": dropped " << r[i]->dropped()
          << " blocks\n";
    } else {
      if (failed++ == 0) first_error = std::string(r[i].status().message());
      out << addresses_[i] << ": failed: " << r[i].status().message() << "\n";
    }
  }
  out << "flushed " << tier_name << ": dropped " << total << " blocks in total ("
      << r.size() - failed << " of " << r.size() << " nodes)\n";
  return failed == 0 ? absl::OkStatus() : NodesFailed(failed, r.size(), first_error);
}

absl::Status ClusterAdmin::Config(bool json_out, std::ostream& out) {
  std::vector<absl::StatusOr<v1::GetConfigResponse>> r = OnEveryNode<v1::GetConfigResponse>(
      [](size_t, AdminClient& c) { return c.GetConfig(); });
  int failed = 0;
  std::string first_error;
  json nodes = json::array();
  for (size_t i = 0; i < r.size(); ++i) {
    json node{{"address", addresses_[i]}, {"error", nullptr}, {"config", nullptr}};
    if (r[i].ok()) {
      node["config"] = admin::ConfigJson(*r[i]);
    } else {
      if (failed++ == 0) first_error = std::string(r[i].status().message());
      node["error"] = std::string(r[i].status().message());
    }
    if (!json_out) {
      out << (i == 0 ? "" : "\n") << "== " << addresses_[i] << "\n";
      if (r[i].ok()) {
        admin::PrintConfig(node["config"], out);
      } else {
        out << "failed: " << r[i].status().message() << "\n";
      }
    }
    nodes.push_back(std::move(node));
  }
  if (json_out) out << json{{"nodes", nodes}}.dump(2) << "\n";
  return failed == 0 ? absl::OkStatus() : NodesFailed(failed, r.size(), first_error);
}

}  // namespace kvcache
