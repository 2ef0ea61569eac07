#include "services/admin_cli.h"

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/admin_client.h"
#include "client/cache_client.h"
#include "client/cluster_client.h"
#include "client/rendezvous.h"
#include "common/byte_size.h"
#include "common/cli.h"
#include "common/key.h"
#include "common/tls_flags.h"
#include "services/admin_cluster.h"
#include "services/admin_explain.h"
#include "services/admin_format.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "the kvcache-server, host:port; or a cluster: host:port,host:port,... or "
          "dns:///name:port");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "deadline of each call (a unit is required: 10s, 500ms)");
ABSL_FLAG(bool, json, false,
          "print JSON instead of text (health, stats, ls, inspect, config, conflicts, cluster, "
          "locate)");
ABSL_FLAG(std::string, namespace, "",
          "namespace id, 64 hex digits (put, get, locate: required; ls, inspect, evict: "
          "optional)");
ABSL_FLAG(std::string, key, "", "block key, 64 hex digits (put, get, inspect, locate; evict)");
ABSL_FLAG(std::string, parent, "", "parent block key, 64 hex digits (put, optional)");
ABSL_FLAG(std::string, file, "", "file with the payload to put (put, required)");
ABSL_FLAG(std::string, out, "", "file to write a fetched payload to (get, required)");
ABSL_FLAG(int, limit, 100, "most blocks or conflicts to list (ls, conflicts)");
ABSL_FLAG(std::string, tenant, "",
          "only this tenant's blocks, --namespace as the tenant sends it (ls, inspect, evict; "
          "servers with --auth-tokens)");
ABSL_FLAG(std::string, tier, "", "ram, disk or all (flush, required)");
ABSL_FLAG(int, replicas, 1,
          "replication factor R of the cluster: locate marks the first R nodes as owners, "
          "cluster's key share counts them, put writes R copies");

namespace kvcache {
namespace {

using json = nlohmann::json;

class Command {
 public:
  Command(ClusterTarget target, std::ostream& out) : target_(std::move(target)), out_(out) {}

  absl::Status Run(const std::string& name) {
    if (name == "health") return Health();
    if (name == "cluster") return ClusterCommand();
    if (name == "locate") return Locate();
    if (name == "stats") return Stats();
    if (name == "put") return Put();
    if (name == "get") return Get();
    if (name == "ls") return List();
    if (name == "inspect") return Inspect();
    if (name == "evict") return Evict();
    if (name == "flush") return Flush();
    if (name == "config") return Config();
    if (name == "conflicts") return Conflicts();
    if (name == "events" || name == "explain") return EventsOrExplain(name);
    return UsageError(
        absl::StrCat("unknown command '", name,
                     "'; commands: health, stats, put, get, ls, inspect, evict, flush, config, "
                     "conflicts, cluster, locate, events, explain"));
  }

 private:
  absl::StatusOr<AdminClient*> Admin() {
    if (!admin_) {
      absl::StatusOr<std::unique_ptr<AdminClient>> c = NewAdminClient(
          {absl::GetFlag(FLAGS_server), absl::GetFlag(FLAGS_timeout),
           TlsClientOptionsFromFlags()});
      if (!c.ok()) return c.status();
      admin_ = *std::move(c);
    }
    return admin_.get();
  }

  // Every node of the target (a single one included, for cluster and locate). Resolves a
  // DNS target: UNAVAILABLE when it does not resolve.
  absl::StatusOr<ClusterAdmin*> Cluster() {
    if (!cluster_) {
      absl::StatusOr<std::vector<std::string>> nodes = ResolveClusterTarget(target_);
      if (!nodes.ok()) return nodes.status();
      absl::StatusOr<std::unique_ptr<ClusterAdmin>> c =
          ClusterAdmin::Connect(*std::move(nodes), absl::GetFlag(FLAGS_timeout),
                                TlsClientOptionsFromFlags());
      if (!c.ok()) return c.status();
      cluster_ = *std::move(c);
    }
    return cluster_.get();
  }

  CacheClientOptions CacheOptions() {
    CacheClientOptions o;
    o.target = absl::GetFlag(FLAGS_server);
    o.timeout = absl::GetFlag(FLAGS_timeout);
    o.max_message_bytes = 1 << 30;
    o.replicas = absl::GetFlag(FLAGS_replicas);
    o.tls = TlsClientOptionsFromFlags();
    return o;
  }

  // A 64-hex-digit flag; a bad value is a usage error.
  static absl::StatusOr<Key> KeyFlag(const std::string& value, const char* flag) {
    absl::StatusOr<Key> key = KeyFromHex(value, flag);
    if (!key.ok()) return UsageError(key.status().message());
    return key;
  }

  // A required 64-hex-digit flag.
  static absl::StatusOr<Key> HexFlag(const std::string& value, const char* flag) {
    if (value.empty()) return UsageError(absl::StrCat(flag, " is required"));
    return KeyFlag(value, flag);
  }

  absl::Status Health() {
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Health(absl::GetFlag(FLAGS_json), out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<std::string> status = (*admin)->Health();
    if (!status.ok()) return status.status();
    if (absl::GetFlag(FLAGS_json)) {
      out_ << json{{"status", *status}}.dump(2) << "\n";
    } else {
      out_ << *status << "\n";
    }
    if (*status != "SERVING") return absl::UnavailableError(absl::StrCat("server is ", *status));
    return absl::OkStatus();
  }

  absl::Status Stats() {
    const bool as_json = absl::GetFlag(FLAGS_json);
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Stats(as_json, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::GetStatsResponse> s = (*admin)->GetStats();
    if (!s.ok()) return s.status();
    if (as_json) {
      out_ << admin::StatsJson(*s).dump(2) << "\n";
    } else {
      admin::PrintStats(*s, out_);
    }
    return absl::OkStatus();
  }

  absl::Status Put() {
    absl::StatusOr<Key> ns = HexFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
    if (!ns.ok()) return ns.status();
    absl::StatusOr<Key> key = HexFlag(absl::GetFlag(FLAGS_key), "--key");
    if (!key.ok()) return key.status();
    CacheBlock block;
    block.key = *key;
    if (!absl::GetFlag(FLAGS_parent).empty()) {
      absl::StatusOr<Key> parent = KeyFlag(absl::GetFlag(FLAGS_parent), "--parent");
      if (!parent.ok()) return parent.status();
      block.parent = *parent;
    }
    const std::string path = absl::GetFlag(FLAGS_file);
    if (path.empty()) return UsageError("--file is required");
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("--file: cannot read '", path, "'"));
    block.payload.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    absl::StatusOr<int> replicas = ReplicasFlag();
    if (!replicas.ok()) return replicas.status();
    absl::StatusOr<CachePutResult> r;
    if (target_.is_cluster()) {
      // The cluster client writes the first copy before returning and the other R-1 in the
      // background: wait for those before the process exits.
      absl::StatusOr<std::unique_ptr<ClusterCacheClient>> cache =
          NewClusterCacheClient(CacheOptions());
      if (!cache.ok()) return cache.status();
      r = (*cache)->Put(*ns, {block});
      (*cache)->WaitForBackgroundWrites();
    } else {
      absl::StatusOr<std::unique_ptr<CacheClient>> cache = NewCacheClient(CacheOptions());
      if (!cache.ok()) return cache.status();
      r = (*cache)->Put(*ns, {block});
    }
    if (!r.ok()) return r.status();
    out_ << (r->stored ? "stored" : r->already_present ? "already present" : "not admitted")
         << " " << KeyToHex(*key) << " (" << FormatBytes(block.payload.size()) << ")\n";
    return absl::OkStatus();
  }

  absl::Status Get() {
    absl::StatusOr<Key> ns = HexFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
    if (!ns.ok()) return ns.status();
    absl::StatusOr<Key> key = HexFlag(absl::GetFlag(FLAGS_key), "--key");
    if (!key.ok()) return key.status();
    const std::string path = absl::GetFlag(FLAGS_out);
    if (path.empty()) return UsageError("--out is required");
    absl::StatusOr<std::unique_ptr<CacheClient>> cache = NewCacheClient(CacheOptions());
    if (!cache.ok()) return cache.status();
    absl::StatusOr<std::vector<CacheBlock>> blocks = (*cache)->Get(*ns, {*key});
    if (!blocks.ok()) return blocks.status();
    if (blocks->empty()) {
      return absl::NotFoundError(
          absl::StrCat("block ", KeyToHex(*key), " is not cached in that namespace"));
    }
    std::ofstream o(path, std::ios::binary | std::ios::trunc);
    o.write(blocks->front().payload.data(), blocks->front().payload.size());
    if (!o.good()) return absl::InternalError(absl::StrCat("--out: cannot write '", path, "'"));
    out_ << "wrote " << blocks->front().payload.size() << " bytes to " << path << "\n";
    return absl::OkStatus();
  }

  absl::Status List() {
    std::string ns_raw;
    if (!absl::GetFlag(FLAGS_namespace).empty()) {
      absl::StatusOr<Key> ns = KeyFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
      if (!ns.ok()) return ns.status();
      ns_raw = std::string(ns->view());
    }
    if (absl::GetFlag(FLAGS_limit) <= 0) {
      return UsageError("--limit must be a positive number");
    }
    const bool as_json = absl::GetFlag(FLAGS_json);
    v1::ListBlocksRequest req;
    req.set_namespace_id(ns_raw);
    req.set_limit(absl::GetFlag(FLAGS_limit));
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->List(req, as_json, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::ListBlocksResponse> r = (*admin)->ListBlocks(req);
    if (!r.ok()) return r.status();
    if (as_json) {
      json blocks = json::array();
      for (const v1::BlockInfo& b : r->blocks()) blocks.push_back(admin::BlockJson(b));
      out_ << json{{"blocks", blocks}, {"truncated", r->truncated()}}.dump(2) << "\n";
      return absl::OkStatus();
    }
    admin::PrintListHeader(out_);
    for (const v1::BlockInfo& b : r->blocks()) admin::PrintListRow(b, out_);
    out_ << r->blocks_size() << " blocks" << (r->truncated() ? " (more not shown: --limit)" : "")
         << "\n";
    return absl::OkStatus();
  }

  absl::Status Inspect() {
    absl::StatusOr<Key> key = HexFlag(absl::GetFlag(FLAGS_key), "--key");
    if (!key.ok()) return key.status();
    v1::InspectBlockRequest req;
    req.set_key(std::string(key->view()));
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    if (!absl::GetFlag(FLAGS_namespace).empty()) {
      absl::StatusOr<Key> ns = KeyFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
      if (!ns.ok()) return ns.status();
      req.set_namespace_id(std::string(ns->view()));
    }
    const bool as_json = absl::GetFlag(FLAGS_json);
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Inspect(req, as_json, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::InspectBlockResponse> r = (*admin)->InspectBlock(req);
    if (!r.ok()) return r.status();
    for (const v1::BlockInfo& b : r->blocks()) {
      if (as_json) {
        out_ << admin::BlockJson(b).dump(2) << "\n";
      } else {
        admin::PrintInspect(b, out_);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Evict() {
    const std::string key_hex = absl::GetFlag(FLAGS_key);
    const std::string ns_hex = absl::GetFlag(FLAGS_namespace);
    v1::EvictRequest req;
    req.set_tenant(absl::GetFlag(FLAGS_tenant));
    if (!key_hex.empty()) {
      absl::StatusOr<Key> key = KeyFlag(key_hex, "--key");
      if (!key.ok()) return key.status();
      req.set_key(std::string(key->view()));
      if (!ns_hex.empty()) {
        absl::StatusOr<Key> ns = KeyFlag(ns_hex, "--namespace");
        if (!ns.ok()) return ns.status();
        req.set_namespace_id(std::string(ns->view()));
      }
    } else if (!ns_hex.empty()) {
      absl::StatusOr<Key> ns = KeyFlag(ns_hex, "--namespace");
      if (!ns.ok()) return ns.status();
      req.set_namespace_(std::string(ns->view()));
    } else {
      return UsageError("evict needs --key=HEX or --namespace=HEX");
    }
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Evict(req, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::EvictResponse> r = (*admin)->Evict(req);
    if (!r.ok()) return r.status();
    out_ << "evicted " << r->evicted() << " blocks\n";
    return absl::OkStatus();
  }

  absl::Status Conflicts() {
    if (absl::GetFlag(FLAGS_limit) <= 0) return UsageError("--limit must be a positive number");
    const uint32_t limit = static_cast<uint32_t>(absl::GetFlag(FLAGS_limit));
    const bool as_json = absl::GetFlag(FLAGS_json);
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Conflicts(limit, as_json, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    v1::ListConflictsRequest req;
    req.set_limit(limit);
    absl::StatusOr<v1::ListConflictsResponse> r = (*admin)->ListConflicts(req);
    if (!r.ok()) return r.status();
    if (as_json) {
      out_ << admin::ConflictsJson(*r).dump(2) << "\n";
    } else {
      admin::PrintConflicts(*r, out_);
    }
    return absl::OkStatus();
  }

  absl::Status Flush() {
    const std::string tier = absl::GetFlag(FLAGS_tier);
    v1::FlushRequest req;
    if (tier == "ram") {
      req.set_tier(v1::TIER_RAM);
    } else if (tier == "disk") {
      req.set_tier(v1::TIER_DISK);
    } else if (tier != "all") {
      return UsageError(absl::StrCat("--tier must be ram, disk or all, got '", tier, "'"));
    }
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Flush(req, tier, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::FlushResponse> r = (*admin)->Flush(req);
    if (!r.ok()) return r.status();
    out_ << "flushed " << tier << ": dropped " << r->dropped() << " blocks\n";
    return absl::OkStatus();
  }

  absl::Status Config() {
    const bool as_json = absl::GetFlag(FLAGS_json);
    if (target_.is_cluster()) {
      absl::StatusOr<ClusterAdmin*> cluster = Cluster();
      if (!cluster.ok()) return cluster.status();
      return (*cluster)->Config(as_json, out_);
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::GetConfigResponse> c = (*admin)->GetConfig();
    if (!c.ok()) return c.status();
    const json j = admin::ConfigJson(*c);
    if (as_json) {
      out_ << j.dump(2) << "\n";
    } else {
      admin::PrintConfig(j, out_);
    }
    return absl::OkStatus();
  }

  // The --replicas flag, checked.
  static absl::StatusOr<int> ReplicasFlag() {
    const int replicas = absl::GetFlag(FLAGS_replicas);
    if (replicas < 1) {
      return UsageError(absl::StrCat("--replicas must be 1 or more, got ", replicas));
    }
    return replicas;
  }

  absl::Status ClusterCommand() {
    absl::StatusOr<int> replicas = ReplicasFlag();
    if (!replicas.ok()) return replicas.status();
    absl::StatusOr<ClusterAdmin*> cluster = Cluster();
    if (!cluster.ok()) return cluster.status();
    return (*cluster)->Cluster(*replicas, kKeyShareSamples, absl::GetFlag(FLAGS_json), out_);
  }

  absl::Status Locate() {
    absl::StatusOr<Key> ns = HexFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
    if (!ns.ok()) return ns.status();
    absl::StatusOr<Key> key = HexFlag(absl::GetFlag(FLAGS_key), "--key");
    if (!key.ok()) return key.status();
    absl::StatusOr<int> replicas = ReplicasFlag();
    if (!replicas.ok()) return replicas.status();
    absl::StatusOr<ClusterAdmin*> cluster = Cluster();
    if (!cluster.ok()) return cluster.status();
    return (*cluster)->Locate(*ns, *key, *replicas, absl::GetFlag(FLAGS_json), out_);
  }

  // services/admin_explain.h, over every node of the target.
  absl::Status EventsOrExplain(const std::string& name) {
    absl::StatusOr<std::vector<std::string>> nodes = ResolveClusterTarget(target_);
    if (!nodes.ok()) return nodes.status();
    if (name == "events") {
      return RunEventsCommand(*nodes, target_.is_cluster(), TlsClientOptionsFromFlags(),
                              absl::GetFlag(FLAGS_timeout), out_);
    }
    return RunExplainCommand(*nodes, TlsClientOptionsFromFlags(), absl::GetFlag(FLAGS_timeout),
                             out_);
  }

  // Keys sampled for `cluster`'s key shares: 100,000 give each share to about +-0.3 %.
  static constexpr int kKeyShareSamples = 100000;

  const ClusterTarget target_;
  std::ostream& out_;
  std::unique_ptr<AdminClient> admin_;
  std::unique_ptr<ClusterAdmin> cluster_;
};

}  // namespace

std::string AdminUsage() {
  return "usage: kvcache-admin [--server=TARGET] [--timeout=10s] COMMAND [flags]\n"
         "  health [--json]                           gRPC health check (exit 0 if SERVING)\n"
         "  stats [--json]                            per-tier blocks, bytes, hits, ...\n"
         "  put --namespace=HEX --key=HEX --file=PATH [--parent=HEX] [--replicas=R]\n"
         "  get --namespace=HEX --key=HEX --out=PATH\n"
         "  ls [--namespace=HEX] [--limit=N] [--json]\n"
         "  inspect --key=HEX [--namespace=HEX] [--json]\n"
         "  evict --key=HEX [--namespace=HEX] | --namespace=HEX\n"
         "  flush --tier=ram|disk|all\n"
         "  config [--json]                           the server's effective configuration\n"
         "  conflicts [--limit=N] [--json]            recent puts of a stored key with other\n"
         "                                            bytes (the stored block was kept)\n"
         "  cluster [--replicas=R] [--json]           per node: health, blocks, bytes, hit\n"
         "                                            ratio, key share; and the skew\n"
         "  locate --namespace=HEX --key=HEX [--replicas=R] [--json]\n"
         "                                            nodes in rendezvous order, the first R\n"
         "                                            owning the block, and where it is held\n"
         "  events [--from=SEQ] [--snapshot] [--count=N] [--json]\n"
         "                                            tail the KV events (docs/events.md)\n"
         "  explain (--model=DIR | --namespace=HEX) [--block-size=N] [--cache-salt=S]\n"
         "          (--prompt-ids=1,2,3 | --prompt-text=TEXT | --prompt-file=PATH) [--json]\n"
         "                                            for each block of a prompt: where it\n"
         "                                            is, where the chain breaks and why\n"
         "TARGET: host:port (one node), host:port,host:port,... or dns:///name:port (a\n"
         "cluster: health, stats, ls, inspect, evict, flush, config and conflicts visit every\n"
         "node). Admin calls go to a server's admin listener (its port + 2 by default; also\n"
         "its main port when that is loopback). --tenant=NAME limits ls, inspect and evict to\n"
         "a tenant, --namespace then being the id that tenant sends. Credentials:\n"
         "--token-file, --tls-ca, --tls-cert, --tls-key.\n"
         "Keys and namespaces are 64 hex digits. Exit status: 0 on success, 1 when a server\n"
         "answers with an error or cannot be reached, 2 for a usage error.";
}

int RunAdminCommand(const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err) {
  if (args.size() != 2) {
    err << "kvcache-admin: "
        << (args.size() < 2 ? "no command given" : "one command at a time, got '" + args[2] + "'")
        << "\n"
        << AdminUsage() << "\n";
    return kExitUsage;
  }
  if (absl::GetFlag(FLAGS_timeout) <= absl::ZeroDuration()) {
    err << "kvcache-admin: --timeout must be more than 0 (e.g. 10s)\n";
    return kExitUsage;
  }
  absl::StatusOr<ClusterTarget> target = ParseClusterTarget(absl::GetFlag(FLAGS_server));
  if (!target.ok()) {
    err << "kvcache-admin: --server: " << target.status().message() << "\n";
    return kExitUsage;
  }
  Command command(*std::move(target), out);
  const absl::Status status = command.Run(args[1]);
  if (status.ok()) return kExitOk;
  err << "kvcache-admin: " << status.message();
  if (absl::IsUnimplemented(status)) {
    // A gRPC server without kvcache.v1's services answers with an empty message.
    err << (status.message().empty() || status.message().back() == ' ' ? "" : ": ")
        << "UNIMPLEMENTED: the server does not offer this call; is "
        << absl::GetFlag(FLAGS_server) << " a kvcache-server (and not a kvcache-worker)?";
  }
  err << "\n";
  return ExitStatusOf(status);
}

}  // namespace kvcache
