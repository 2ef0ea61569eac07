// kvcache.v1.AdminService: stats, list, inspect, evict, flush and configuration readout.
// All unary; listing and namespace eviction walk the in-memory indexes (admin-rate work).
// Calls that walk the indexes or erase blocks (List, Inspect, Evict, Flush: RocksDB
// deletes) run on the server's I/O threads (ServiceDeps::io), off gRPC's callback threads;
// stats, configuration and conflicts answer from memory, inline.
// Every call needs the admin role (services/access.h). Blocks are shown with their tenant;
// a request naming a tenant takes namespace ids as that tenant sends them.

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "common/io_executor.h"
#include "common/little_endian.h"
#include "proto/grpc_status.h"
#include "services/access_grpc.h"
#include "services/convert_internal.h"
#include "services/services.h"

namespace kvcache {
namespace {

constexpr uint32_t kDefaultListLimit = 100;
constexpr uint32_t kMaxListLimit = 100000;

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(const ServiceDeps& deps, std::function<v1::GetConfigResponse()> config)
      : deps_(deps), store_(deps.store), config_(std::move(config)) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx,
                                     const v1::GetStatsRequest*,
                                     v1::GetStatsResponse* response) override {
    return Answer(ctx, Where::kInline, [this, response] {
      const StoreStats s = store_->GetStoreStats();
      FillTierStats(s.ram, response->mutable_ram());
      FillTierStats(s.disk, response->mutable_disk());
      response->set_lookups(s.lookups);
      response->set_lookup_keys(s.lookup_keys);
      response->set_lookup_hits(s.lookup_hits);
      response->set_conflicts(deps_.tenants->total_conflicts());
      if (deps_.usage == nullptr) return absl::OkStatus();  // Auth off: one tenant.
      for (const TenantUsageStats& u : deps_.usage->Snapshot()) {
        v1::TenantStats* t = response->add_tenants();
        t->set_tenant(u.tenant);
        t->set_ram_quota_bytes(u.ram.quota_bytes);
        t->set_disk_quota_bytes(u.disk.quota_bytes);
        if (!u.tenant.empty()) t->set_conflicts(deps_.tenants->ConflictsOf(u.tenant));
        t->set_ram_blocks(u.ram.blocks);
        t->set_ram_bytes(u.ram.bytes);
        t->set_disk_blocks(u.disk.blocks);
        t->set_disk_bytes(u.disk.bytes);
        t->set_ram_quota_evictions(u.ram.quota_evictions);
        t->set_disk_quota_evictions(u.disk.quota_evictions);
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* ListBlocks(grpc::CallbackServerContext* ctx,
                                       const v1::ListBlocksRequest* request,
                                       v1::ListBlocksResponse* response) override {
    return Answer(ctx, Where::kIo, [this, request, response]() -> absl::Status {
      BlockStore::Filter filter;
      if (!request->namespace_id().empty()) {
        absl::StatusOr<Key> ns = KeyFromBytes(request->namespace_id(), "namespace_id");
        if (!ns.ok()) return ns.status();
        filter = [ns = StoredNamespace(request->tenant(), *ns)](const BlockMeta& m) {
          return m.id.ns == ns;
        };
      } else if (!request->tenant().empty()) {
        const uint64_t tag = TenantTag(request->tenant());
        filter = [tag](const BlockMeta& m) { return TagOf(m.id.ns) == tag; };
      }
      uint32_t limit = request->limit() == 0 ? kDefaultListLimit : request->limit();
      limit = std::min(limit, kMaxListLimit);
      std::vector<BlockInfo> blocks = store_->List(filter, limit + 1);
      response->set_truncated(blocks.size() > limit);
      if (blocks.size() > limit) blocks.resize(limit);
      for (const BlockInfo& b : blocks) Fill(b, response->add_blocks());
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* InspectBlock(grpc::CallbackServerContext* ctx,
                                         const v1::InspectBlockRequest* request,
                                         v1::InspectBlockResponse* response) override {
    return Answer(ctx, Where::kIo, [this, request, response]() -> absl::Status {
      absl::StatusOr<Key> key = KeyFromBytes(request->key(), "key");
      if (!key.ok()) return key.status();
      if (!request->namespace_id().empty()) {
        absl::StatusOr<Key> ns = KeyFromBytes(request->namespace_id(), "namespace_id");
        if (!ns.ok()) return ns.status();
        std::optional<BlockInfo> info =
            store_->Inspect(BlockId{StoredNamespace(request->tenant(), *ns), *key});
        if (info) Fill(*info, response->add_blocks());
      } else {
        // The key in any namespace: a walk of the index (admin-rate work).
        const std::optional<uint64_t> tag = TagFilter(request->tenant());
        for (const BlockInfo& b : store_->List(
                 [&](const BlockMeta& m) {
                   return m.id.key == *key && (!tag || TagOf(m.id.ns) == *tag);
                 },
                 1000)) {
          Fill(b, response->add_blocks());
        }
      }
      if (response->blocks_size() == 0) {
        return absl::NotFoundError(absl::StrCat("no block has key ", KeyToHex(*key)));
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* Evict(grpc::CallbackServerContext* ctx,
                                  const v1::EvictRequest* request,
                                  v1::EvictResponse* response) override {
    return Answer(ctx, Where::kIo, [this, request, response]() -> absl::Status {
      switch (request->target_case()) {
        case v1::EvictRequest::kKey: {
          absl::StatusOr<Key> key = KeyFromBytes(request->key(), "key");
          if (!key.ok()) return key.status();
          std::optional<Key> ns;
          if (!request->namespace_id().empty()) {
            absl::StatusOr<Key> parsed = KeyFromBytes(request->namespace_id(), "namespace_id");
            if (!parsed.ok()) return parsed.status();
            ns = StoredNamespace(request->tenant(), *parsed);
          }
          const std::optional<uint64_t> tag = TagFilter(request->tenant());
          response->set_evicted(store_->EraseIf([&](const BlockMeta& m) {
            return m.id.key == *key && (!ns || m.id.ns == *ns) &&
                   (!tag || TagOf(m.id.ns) == *tag);
          }));
          return absl::OkStatus();
        }
        case v1::EvictRequest::kNamespace: {
          absl::StatusOr<Key> ns = KeyFromBytes(request->namespace_(), "namespace");
          if (!ns.ok()) return ns.status();
          const Key stored = StoredNamespace(request->tenant(), *ns);
          response->set_evicted(
              store_->EraseIf([&](const BlockMeta& m) { return m.id.ns == stored; }));
          return absl::OkStatus();
        }
        case v1::EvictRequest::TARGET_NOT_SET:
          break;
      }
      return absl::InvalidArgumentError("Evict needs a target: a key or a namespace");
    });
  }

  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* ctx,
                                  const v1::FlushRequest* request,
                                  v1::FlushResponse* response) override {
    return Answer(ctx, Where::kIo, [this, request, response]() -> absl::Status {
      std::optional<TierId> tier;
      switch (request->tier()) {
        case v1::TIER_UNSPECIFIED: break;
        case v1::TIER_RAM: tier = TierId::kRam; break;
        case v1::TIER_DISK: tier = TierId::kDisk; break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("unknown tier ", request->tier(), "; use TIER_RAM or TIER_DISK"));
      }
      response->set_dropped(store_->Flush(tier));
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* GetConfig(grpc::CallbackServerContext* ctx,
                                      const v1::GetConfigRequest*,
                                      v1::GetConfigResponse* response) override {
    return Answer(ctx, Where::kInline, [this, response] {
      *response = config_();
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* ListConflicts(grpc::CallbackServerContext* ctx,
                                          const v1::ListConflictsRequest* request,
                                          v1::ListConflictsResponse* response) override {
    return Answer(ctx, Where::kInline, [this, request, response] {
      const uint32_t limit = request->limit() == 0 ? kDefaultListLimit : request->limit();
      for (const ConflictRecord& c : deps_.tenants->RecentConflicts(limit)) {
        v1::Conflict* out = response->add_conflicts();
        out->set_tenant(c.tenant);
        out->set_caller(c.caller);
        out->set_namespace_id(std::string(c.ns.view()));
        out->set_key(std::string(c.key.view()));
        out->set_stored_checksum(c.stored_checksum);
        out->set_offered_checksum(c.offered_checksum);
        out->set_unix_micros(absl::ToUnixMicros(c.when));
      }
      response->set_total(deps_.tenants->total_conflicts());
      return absl::OkStatus();
    });
  }

 private:
  static uint64_t TagOf(const Key& stored_ns) {
    return GetLittleEndian<uint64_t>(reinterpret_cast<const char*>(stored_ns.bytes.data()));
  }
  // The tag a request's tenant filters on: none for "" (every tenant).
  static std::optional<uint64_t> TagFilter(const std::string& tenant) {
    if (tenant.empty()) return std::nullopt;
    return TenantTag(tenant);
  }

  void Fill(const BlockInfo& info, v1::BlockInfo* out) const {
    FillBlockInfo(info, out);
    out->set_tenant(deps_.access->TenantOfStored(info.meta.id.ns));
  }

  // Where a call's body runs: inline on gRPC's thread (memory only), or on an I/O thread
  // (may wait on the disk, or walk a large index).
  enum class Where { kInline, kIo };

  // Admits an admin caller, runs `body` (which must not refer to the handler's locals: with
  // kIo it runs after the handler returned), records its latency and finishes the call with
  // its status.
  template <typename Body>
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, Where where, Body body) {
    const absl::Time start = absl::Now();
    absl::StatusOr<Principal> who = AuthenticateCall(*deps_.access, *ctx);
    if (who.ok()) {
      if (absl::Status s = AccessControl::Require(*who, Role::kAdmin, "the admin service");
          !s.ok()) {
        who = s;
      }
    }
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const bool admitted = who.ok();
    auto run = [this, start, reactor, who = std::move(who), body = std::move(body)]() mutable {
      const absl::Status status = who.ok() ? body() : who.status();
      deps_.metrics->ObserveRpc(Rpc::kAdmin, absl::Now() - start, status.ok());
      if (deps_.access->enabled()) {
        deps_.metrics->CountTenantCall(who.ok() ? who->tenant : "", Rpc::kAdmin, status.code());
      }
      reactor->Finish(ToGrpcStatus(status));
    };
    if (where == Where::kIo && admitted) {
      deps_.io->Run(std::move(run));
    } else {
      run();
    }
    return reactor;
  }

  const ServiceDeps deps_;
  TieredStore* const store_;
  const std::function<v1::GetConfigResponse()> config_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewAdminService(const ServiceDeps& deps,
                                               std::function<v1::GetConfigResponse()> config) {
  return std::make_unique<AdminServiceImpl>(deps, std::move(config));
}

}  // namespace kvcache
