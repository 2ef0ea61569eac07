#include "services/admin_format.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/byte_size.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace kvcache {
namespace admin {
namespace {

using json = nlohmann::json;

json TierJson(const v1::TierStats& t) {
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
              {"demotion_failures", t.demotion_failures()},
              {"index_bytes", t.index_bytes()},
              {"dir_bytes", t.dir_bytes()},
              {"free_bytes", t.free_bytes()},
              {"degraded", t.degraded()},
              {"fault", t.fault()},
              {"write_refusals", t.write_refusals()},
              {"demotion_waits", t.demotion_waits()}};
}

// Adds every uint64 field of `from` to `into`, recursing into message fields.
void AddCounters(const google::protobuf::Message& from, google::protobuf::Message* into) {
  const google::protobuf::Reflection* r = from.GetReflection();
  const google::protobuf::Descriptor* d = from.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_UINT64) {
      r->SetUInt64(into, f, r->GetUInt64(*into, f) + r->GetUInt64(from, f));
    } else if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      AddCounters(r->GetMessage(from, f), r->MutableMessage(into, f));
    }
  }
}

}  // namespace

const char* TierName(v1::Tier tier) { return tier == v1::TIER_RAM ? "ram" : "disk"; }

std::string Hex(const std::string& raw) { return absl::BytesToHexString(raw); }

std::string FormatMicros(int64_t micros) {
  if (micros == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(micros),
                          absl::LocalTimeZone());
}

json StatsJson(const v1::GetStatsResponse& s) {
  json tenants = json::array();
  for (const v1::TenantStats& t : s.tenants()) {
    tenants.push_back(json{{"tenant", t.tenant()},
                           {"ram_quota_bytes", t.ram_quota_bytes()},
                           {"disk_quota_bytes", t.disk_quota_bytes()},
                           {"conflicts", t.conflicts()},
                           {"ram_blocks", t.ram_blocks()},
                           {"ram_bytes", t.ram_bytes()},
                           {"disk_blocks", t.disk_blocks()},
                           {"disk_bytes", t.disk_bytes()},
                           {"ram_quota_evictions", t.ram_quota_evictions()},
                           {"disk_quota_evictions", t.disk_quota_evictions()}});
  }
  return json{{"ram", TierJson(s.ram())},
              {"disk", TierJson(s.disk())},
              {"lookups", s.lookups()},
              {"lookup_keys", s.lookup_keys()},
              {"lookup_hits", s.lookup_hits()},
              {"conflicts", s.conflicts()},
              {"tenants", tenants}};
}

void PrintStats(const v1::GetStatsResponse& s, std::ostream& out) {
  out << absl::StrFormat("%-5s %9s %11s %11s %6s %9s %9s %9s %10s %10s %9s\n", "tier", "blocks",
                         "bytes", "capacity", "used", "hits", "misses", "evictions", "demotions",
                         "promotions", "checksum");
  for (const auto& [name, t] : {std::pair{"ram", &s.ram()}, std::pair{"disk", &s.disk()}}) {
    const double used = t->capacity_bytes() ? 100.0 * t->bytes() / t->capacity_bytes() : 0.0;
    out << absl::StrFormat("%-5s %9d %11s %11s %5.1f%% %9d %9d %9d %10d %10d %9d\n", name,
                           t->blocks(), FormatBytes(t->bytes()), FormatBytes(t->capacity_bytes()),
                           used, t->hits(), t->misses(), t->evictions(), t->demotions(),
                           t->promotions(), t->checksum_failures());
  }
  if (s.disk().write_errors() != 0 || s.ram().demotion_failures() != 0) {
    out << absl::StrFormat("disk trouble: %d failed writes, %d blocks not demoted\n",
                           s.disk().write_errors(), s.ram().demotion_failures());
  }
  if (s.disk().degraded()) {
    out << "disk degraded, serving from RAM: " << s.disk().fault() << "\n";
  }
  out << absl::StrFormat("lookups %d: %d of %d keys present\n", s.lookups(), s.lookup_hits(),
                         s.lookup_keys());
  if (s.conflicts() != 0) {
    out << absl::StrFormat("conflicts %d: puts of a stored key with other bytes (kept the "
                           "stored block; kvcache-admin conflicts)\n",
                           s.conflicts());
  }
  if (s.tenants_size() == 0) return;
  // Per tier: what the tenant holds of its quota, and how many blocks the quota moved out.
  out << absl::StrFormat("%-16s %9s %23s %9s %9s %23s %9s %9s\n", "tenant", "ram blocks",
                         "ram bytes / quota", "ram out", "disk blocks", "disk bytes / quota",
                         "disk out", "conflicts");
  auto quota = [](uint64_t bytes) { return bytes == 0 ? std::string("-") : FormatBytes(bytes); };
  for (const v1::TenantStats& t : s.tenants()) {
    out << absl::StrFormat(
        "%-16s %9d %23s %9d %9d %23s %9d %9d\n", t.tenant().empty() ? "(no tenant)" : t.tenant(),
        t.ram_blocks(), FormatBytes(t.ram_bytes()) + " / " + quota(t.ram_quota_bytes()),
        t.ram_quota_evictions(), t.disk_blocks(),
        FormatBytes(t.disk_bytes()) + " / " + quota(t.disk_quota_bytes()),
        t.disk_quota_evictions(), t.conflicts());
  }
}

void AddStats(const v1::GetStatsResponse& from, v1::GetStatsResponse* into) {
  AddCounters(from, into);
  // Tenants by name (quotas are per node: the sum is the cluster's).
  for (const v1::TenantStats& t : from.tenants()) {
    v1::TenantStats* mine = nullptr;
    for (v1::TenantStats& have : *into->mutable_tenants()) {
      if (have.tenant() == t.tenant()) mine = &have;
    }
    if (mine == nullptr) {
      mine = into->add_tenants();
      mine->set_tenant(t.tenant());
    }
    AddCounters(t, mine);
  }
}

json BlockJson(const v1::BlockInfo& b) {
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
              {"last_access_unix_micros", b.last_access_unix_micros()},
              {"tenant", b.tenant()}};
}

void PrintListHeader(std::ostream& out) {
  // Full ids: what ls shows, --namespace and --key take as they are.
  out << absl::StrFormat("%-64s %-64s %-4s %10s  %s\n", "namespace", "key", "tier", "size",
                         "last access");
}

void PrintListRow(const v1::BlockInfo& b, std::ostream& out) {
  out << absl::StrFormat("%-64s %-64s %-4s %10s  %s\n", Hex(b.namespace_id()), Hex(b.key()),
                         TierName(b.tier()), FormatBytes(b.payload_bytes()),
                         FormatMicros(b.last_access_unix_micros()));
}

void PrintInspect(const v1::BlockInfo& b, std::ostream& out) {
  const v1::BlockShape& s = b.shape();
  out << "namespace    " << Hex(b.namespace_id()) << "\n"
      << "key          " << Hex(b.key()) << "\n"
      << "parent       " << (b.parent_key().empty() ? "-" : Hex(b.parent_key())) << "\n"
      << "tier         " << TierName(b.tier())
      << (b.on_disk() && b.tier() == v1::TIER_RAM ? " (also on disk)" : "") << "\n"
      << "size         " << b.payload_bytes() << " bytes\n"
      << "checksum     " << absl::StrFormat("%016x (XXH3-64)", b.checksum()) << "\n"
      << "shape        "
      << absl::StrFormat("v%d %s, %d layers x %d kv heads x %d head dim x %d tokens",
                         s.format_version(), v1::DType_Name(s.dtype()), s.num_layers(),
                         s.num_kv_heads(), s.head_dim(), s.num_tokens())
      << "\n"
      << "last access  " << FormatMicros(b.last_access_unix_micros()) << "\n";
}

json ConfigJson(const v1::GetConfigResponse& c) {
  return json{{"listen", c.listen()},
              {"ram_bytes", c.ram_bytes()},
              {"ram_shards", c.ram_shards()},
              {"disk_path", c.disk_path()},
              {"disk_bytes", c.disk_bytes()},
              {"max_block_bytes", c.max_block_bytes()},
              {"eviction", c.eviction()},
              {"data_listen", c.data_listen()},
              {"data_advertise", c.data_advertise()},
              {"metrics_listen", c.metrics_listen()},
              {"shutdown_grace", absl::FormatDuration(absl::Milliseconds(c.shutdown_grace_ms()))},
              {"admin_listen", c.admin_listen()},
              {"auth", c.auth()},
              {"io_threads", c.io_threads()},
              {"ram_arena", c.ram_arena()},
              {"ram_huge_pages", c.ram_huge_pages()},
              {"demotion_queue_bytes", c.demotion_queue_bytes()},
              {"version", c.version()}};
}

void PrintConfig(const json& config, std::ostream& out) {
  for (auto& [k, v] : config.items()) out << absl::StrFormat("%-16s %s\n", k, v.dump());
}

json ConflictsJson(const v1::ListConflictsResponse& r) {
  json list = json::array();
  for (const v1::Conflict& c : r.conflicts()) {
    list.push_back(json{{"tenant", c.tenant()},
                        {"caller", c.caller()},
                        {"namespace", Hex(c.namespace_id())},
                        {"key", Hex(c.key())},
                        {"stored_checksum", absl::StrFormat("%016x", c.stored_checksum())},
                        {"offered_checksum", absl::StrFormat("%016x", c.offered_checksum())},
                        {"unix_micros", c.unix_micros()}});
  }
  return json{{"conflicts", list}, {"total", r.total()}};
}

void PrintConflicts(const v1::ListConflictsResponse& r, std::ostream& out) {
  out << absl::StrFormat("%-19s %-12s %-18s %-64s %-16s %-16s\n", "time", "tenant", "caller",
                         "key", "stored", "offered");
  for (const v1::Conflict& c : r.conflicts()) {
    out << absl::StrFormat("%-19s %-12s %-18s %-64s %016x %016x\n", FormatMicros(c.unix_micros()),
                           c.tenant().empty() ? "-" : c.tenant(), c.caller(), Hex(c.key()),
                           c.stored_checksum(), c.offered_checksum());
  }
  out << r.conflicts_size() << " shown, " << r.total()
      << " since the server started (the stored blocks were kept)\n";
}

}  // namespace admin
}  // namespace kvcache
