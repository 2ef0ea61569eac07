#include "services/admin_cli.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/admin_client.h"
#include "client/cache_client.h"
#include "common/byte_size.h"
#include "common/cli.h"
#include "common/key.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "the kvcache-server, host:port");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "deadline of each call (a unit is required: 10s, 500ms)");
ABSL_FLAG(bool, json, false,
          "print JSON instead of text (health, stats, ls, inspect, config)");
ABSL_FLAG(std::string, namespace, "",
          "namespace id, 64 hex digits (put, get: required; ls, inspect, evict: optional)");
ABSL_FLAG(std::string, key, "", "block key, 64 hex digits (put, get, inspect; evict)");
ABSL_FLAG(std::string, parent, "", "parent block key, 64 hex digits (put, optional)");
ABSL_FLAG(std::string, file, "", "file with the payload to put (put, required)");
ABSL_FLAG(std::string, out, "", "file to write a fetched payload to (get, required)");
ABSL_FLAG(int, limit, 100, "most blocks to list (ls)");
ABSL_FLAG(std::string, tier, "", "ram, disk or all (flush, required)");

namespace kvcache {
namespace {

using json = nlohmann::json;

class Command {
 public:
  Command(std::ostream& out) : out_(out) {}

  absl::Status Run(const std::string& name) {
    if (name == "health") return Health();
    if (name == "stats") return Stats();
    if (name == "put") return Put();
    if (name == "get") return Get();
    if (name == "ls") return List();
    if (name == "inspect") return Inspect();
    if (name == "evict") return Evict();
    if (name == "flush") return Flush();
    if (name == "config") return Config();
    return UsageError(
        absl::StrCat("unknown command '", name,
                     "'; commands: health, stats, put, get, ls, inspect, evict, flush, config"));
  }

 private:
  absl::StatusOr<AdminClient*> Admin() {
    if (!admin_) {
      absl::StatusOr<std::unique_ptr<AdminClient>> c = NewAdminClient(
          {absl::GetFlag(FLAGS_server), absl::GetFlag(FLAGS_timeout)});
      if (!c.ok()) return c.status();
      admin_ = *std::move(c);
    }
    return admin_.get();
  }

  absl::StatusOr<std::unique_ptr<CacheClient>> Cache() {
    CacheClientOptions o;
    o.target = absl::GetFlag(FLAGS_server);
    o.timeout = absl::GetFlag(FLAGS_timeout);
    o.max_message_bytes = 1 << 30;
    return NewCacheClient(o);
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

  static json TierJson(const v1::TierStats& t) {
    return json{{"blocks", t.blocks()},
                {"bytes", t.bytes()},
                {"capacity_bytes", t.capacity_bytes()},
                {"hits", t.hits()},
                {"misses", t.misses()},
                {"evictions", t.evictions()},
                {"demotions", t.demotions()},
                {"promotions", t.promotions()},
                {"checksum_failures", t.checksum_failures()},
                {"inserts", t.inserts()},
                {"write_errors", t.write_errors()},
                {"demotion_failures", t.demotion_failures()}};
  }

  absl::Status Stats() {
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::GetStatsResponse> s = (*admin)->GetStats();
    if (!s.ok()) return s.status();
    if (absl::GetFlag(FLAGS_json)) {
      out_ << json{{"ram", TierJson(s->ram())},
                   {"disk", TierJson(s->disk())},
                   {"lookups", s->lookups()},
                   {"lookup_keys", s->lookup_keys()},
                   {"lookup_hits", s->lookup_hits()}}
                  .dump(2)
           << "\n";
      return absl::OkStatus();
    }
    out_ << absl::StrFormat("%-5s %9s %11s %11s %6s %9s %9s %9s %10s %10s %9s\n", "tier",
                            "blocks", "bytes", "capacity", "used", "hits", "misses",
                            "evictions", "demotions", "promotions", "checksum");
    for (const auto& [name, t] : {std::pair{"ram", &s->ram()}, std::pair{"disk", &s->disk()}}) {
      const double used =
          t->capacity_bytes() ? 100.0 * t->bytes() / t->capacity_bytes() : 0.0;
      out_ << absl::StrFormat("%-5s %9d %11s %11s %5.1f%% %9d %9d %9d %10d %10d %9d\n", name,
                              t->blocks(), FormatBytes(t->bytes()),
                              FormatBytes(t->capacity_bytes()), used, t->hits(), t->misses(),
                              t->evictions(), t->demotions(), t->promotions(),
                              t->checksum_failures());
    }
    if (s->disk().write_errors() != 0 || s->ram().demotion_failures() != 0) {
      out_ << absl::StrFormat("disk trouble: %d failed writes, %d blocks not demoted\n",
                              s->disk().write_errors(), s->ram().demotion_failures());
    }
    out_ << absl::StrFormat("lookups %d: %d of %d keys present\n", s->lookups(),
                            s->lookup_hits(), s->lookup_keys());
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
    absl::StatusOr<std::unique_ptr<CacheClient>> cache = Cache();
    if (!cache.ok()) return cache.status();
    absl::StatusOr<CachePutResult> r = (*cache)->Put(*ns, {block});
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
    absl::StatusOr<std::unique_ptr<CacheClient>> cache = Cache();
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

  static const char* TierName(v1::Tier t) { return t == v1::TIER_RAM ? "ram" : "disk"; }

  static std::string Hex(const std::string& raw) { return absl::BytesToHexString(raw); }

  static std::string Time(int64_t micros) {
    if (micros == 0) return "-";
    return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(micros),
                            absl::LocalTimeZone());
  }

  static json InfoJson(const v1::BlockInfo& b) {
    const v1::BlockShape& s = b.shape();
    return json{{"namespace", Hex(b.namespace_id())},
                {"key", Hex(b.key())},
                {"parent", Hex(b.parent_key())},
                {"tier", TierName(b.tier())},
                {"on_disk", b.on_disk()},
                {"payload_bytes", b.payload_bytes()},
                {"checksum", absl::StrFormat("%016x", b.checksum())},
                {"shape",
                 {{"format_version", s.format_version()},
                  {"dtype", v1::DType_Name(s.dtype())},
                  {"num_layers", s.num_layers()},
                  {"num_kv_heads", s.num_kv_heads()},
                  {"head_dim", s.head_dim()},
                  {"num_tokens", s.num_tokens()}}},
                {"last_access_unix_micros", b.last_access_unix_micros()}};
  }

  absl::Status List() {
    v1::ListBlocksRequest req;
    if (!absl::GetFlag(FLAGS_namespace).empty()) {
      absl::StatusOr<Key> ns = KeyFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
      if (!ns.ok()) return ns.status();
      req.set_namespace_id(std::string(ns->view()));
    }
    if (absl::GetFlag(FLAGS_limit) <= 0) {
      return UsageError("--limit must be a positive number");
    }
    req.set_limit(absl::GetFlag(FLAGS_limit));
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::ListBlocksResponse> r = (*admin)->ListBlocks(req);
    if (!r.ok()) return r.status();
    if (absl::GetFlag(FLAGS_json)) {
      json blocks = json::array();
      for (const v1::BlockInfo& b : r->blocks()) blocks.push_back(InfoJson(b));
      out_ << json{{"blocks", blocks}, {"truncated", r->truncated()}}.dump(2) << "\n";
      return absl::OkStatus();
    }
    // Full ids: what ls shows, --namespace and --key take as they are.
    out_ << absl::StrFormat("%-64s %-64s %-4s %10s  %s\n", "namespace", "key", "tier", "size",
                            "last access");
    for (const v1::BlockInfo& b : r->blocks()) {
      out_ << absl::StrFormat("%-64s %-64s %-4s %10s  %s\n", Hex(b.namespace_id()), Hex(b.key()),
                              TierName(b.tier()), FormatBytes(b.payload_bytes()),
                              Time(b.last_access_unix_micros()));
    }
    out_ << r->blocks_size() << " blocks" << (r->truncated() ? " (more not shown: --limit)" : "")
         << "\n";
    return absl::OkStatus();
  }

  absl::Status Inspect() {
    absl::StatusOr<Key> key = HexFlag(absl::GetFlag(FLAGS_key), "--key");
    if (!key.ok()) return key.status();
    v1::InspectBlockRequest req;
    req.set_key(std::string(key->view()));
    if (!absl::GetFlag(FLAGS_namespace).empty()) {
      absl::StatusOr<Key> ns = KeyFlag(absl::GetFlag(FLAGS_namespace), "--namespace");
      if (!ns.ok()) return ns.status();
      req.set_namespace_id(std::string(ns->view()));
    }
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::InspectBlockResponse> r = (*admin)->InspectBlock(req);
    if (!r.ok()) return r.status();
    for (const v1::BlockInfo& b : r->blocks()) {
      if (absl::GetFlag(FLAGS_json)) {
        out_ << InfoJson(b).dump(2) << "\n";
        continue;
      }
      const v1::BlockShape& s = b.shape();
      out_ << "namespace    " << Hex(b.namespace_id()) << "\n"
           << "key          " << Hex(b.key()) << "\n"
           << "parent       " << (b.parent_key().empty() ? "-" : Hex(b.parent_key())) << "\n"
           << "tier         " << TierName(b.tier()) << (b.on_disk() && b.tier() == v1::TIER_RAM
                                                             ? " (also on disk)" : "") << "\n"
           << "size         " << b.payload_bytes() << " bytes\n"
           << "checksum     " << absl::StrFormat("%016x (XXH3-64)", b.checksum()) << "\n"
           << "shape        " << absl::StrFormat(
                  "v%d %s, %d layers x %d kv heads x %d head dim x %d tokens",
                  s.format_version(), v1::DType_Name(s.dtype()), s.num_layers(),
                  s.num_kv_heads(), s.head_dim(), s.num_tokens()) << "\n"
           << "last access  " << Time(b.last_access_unix_micros()) << "\n";
    }
    return absl::OkStatus();
  }

  absl::Status Evict() {
    const std::string key_hex = absl::GetFlag(FLAGS_key);
    const std::string ns_hex = absl::GetFlag(FLAGS_namespace);
    v1::EvictRequest req;
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
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::EvictResponse> r = (*admin)->Evict(req);
    if (!r.ok()) return r.status();
    out_ << "evicted " << r->evicted() << " blocks\n";
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
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::FlushResponse> r = (*admin)->Flush(req);
    if (!r.ok()) return r.status();
    out_ << "flushed " << tier << ": dropped " << r->dropped() << " blocks\n";
    return absl::OkStatus();
  }

  absl::Status Config() {
    absl::StatusOr<AdminClient*> admin = Admin();
    if (!admin.ok()) return admin.status();
    absl::StatusOr<v1::GetConfigResponse> c = (*admin)->GetConfig();
    if (!c.ok()) return c.status();
    json j{{"listen", c->listen()},
           {"ram_bytes", c->ram_bytes()},
           {"ram_shards", c->ram_shards()},
           {"disk_path", c->disk_path()},
           {"disk_bytes", c->disk_bytes()},
           {"max_block_bytes", c->max_block_bytes()},
           {"eviction", c->eviction()},
           {"data_listen", c->data_listen()},
           {"data_advertise", c->data_advertise()},
           {"metrics_listen", c->metrics_listen()},
           {"shutdown_grace",
            absl::FormatDuration(absl::Milliseconds(c->shutdown_grace_ms()))},
           {"version", c->version()}};
    if (absl::GetFlag(FLAGS_json)) {
      out_ << j.dump(2) << "\n";
    } else {
      for (auto& [k, v] : j.items()) out_ << absl::StrFormat("%-16s %s\n", k, v.dump());
    }
    return absl::OkStatus();
  }

  std::ostream& out_;
  std::unique_ptr<AdminClient> admin_;
};

}  // namespace

std::string AdminUsage() {
  return "usage: kvcache-admin [--server=HOST:PORT] [--timeout=10s] COMMAND [flags]\n"
         "  health [--json]                           gRPC health check (exit 0 if SERVING)\n"
         "  stats [--json]                            per-tier blocks, bytes, hits, ...\n"
         "  put --namespace=HEX --key=HEX --file=PATH [--parent=HEX]\n"
         "  get --namespace=HEX --key=HEX --out=PATH\n"
         "  ls [--namespace=HEX] [--limit=N] [--json]\n"
         "  inspect --key=HEX [--namespace=HEX] [--json]\n"
         "  evict --key=HEX [--namespace=HEX] | --namespace=HEX\n"
         "  flush --tier=ram|disk|all\n"
         "  config [--json]                           the server's effective configuration\n"
         "Keys and namespaces are 64 hex digits. Exit status: 0 on success, 1 when the server\n"
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
  Command command(out);
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
