// kvcache.v1.AdminService: stats, list, inspect, evict, flush and configuration readout.
// All unary; listing and namespace eviction walk the in-memory indexes (admin-rate work).

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/grpc_status.h"
#include "services/convert_internal.h"
#include "services/services.h"

namespace kvcache {
namespace {

constexpr uint32_t kDefaultListLimit = 100;
constexpr uint32_t kMaxListLimit = 100000;

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(TieredStore* store, ServerMetrics* metrics,
                   std::function<v1::GetConfigResponse()> config)
      : store_(store), metrics_(metrics), config_(std::move(config)) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx,
                                     const v1::GetStatsRequest*,
                                     v1::GetStatsResponse* response) override {
    return Answer(ctx, [&] {
      const StoreStats s = store_->GetStoreStats();
      FillTierStats(s.ram, response->mutable_ram());
      FillTierStats(s.disk, response->mutable_disk());
      response->set_lookups(s.lookups);
      response->set_lookup_keys(s.lookup_keys);
      response->set_lookup_hits(s.lookup_hits);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* ListBlocks(grpc::CallbackServerContext* ctx,
                                       const v1::ListBlocksRequest* request,
                                       v1::ListBlocksResponse* response) override {
    return Answer(ctx, [&]() -> absl::Status {
      BlockStore::Filter filter;
      if (!request->namespace_id().empty()) {
        absl::StatusOr<Key> ns = KeyFromBytes(request->namespace_id(), "namespace_id");
        if (!ns.ok()) return ns.status();
        filter = [ns = *ns](const BlockMeta& m) { return m.id.ns == ns; };
      }
      uint32_t limit = request->limit() == 0 ? kDefaultListLimit : request->limit();
      limit = std::min(limit, kMaxListLimit);
      std::vector<BlockInfo> blocks = store_->List(filter, limit + 1);
      response->set_truncated(blocks.size() > limit);
      if (blocks.size() > limit) blocks.resize(limit);
      for (const BlockInfo& b : blocks) FillBlockInfo(b, response->add_blocks());
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* InspectBlock(grpc::CallbackServerContext* ctx,
                                         const v1::InspectBlockRequest* request,
                                         v1::InspectBlockResponse* response) override {
    return Answer(ctx, [&]() -> absl::Status {
      absl::StatusOr<Key> key = KeyFromBytes(request->key(), "key");
      if (!key.ok()) return key.status();
      if (!request->namespace_id().empty()) {
        absl::StatusOr<Key> ns = KeyFromBytes(request->namespace_id(), "namespace_id");
        if (!ns.ok()) return ns.status();
        std::optional<BlockInfo> info = store_->Inspect(BlockId{*ns, *key});
        if (info) FillBlockInfo(*info, response->add_blocks());
      } else {
        // The key in any namespace: a walk of the index (admin-rate work).
        for (const BlockInfo& b :
             store_->List([&](const BlockMeta& m) { return m.id.key == *key; }, 1000)) {
          FillBlockInfo(b, response->add_blocks());
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
    return Answer(ctx, [&]() -> absl::Status {
      switch (request->target_case()) {
        case v1::EvictRequest::kKey: {
          absl::StatusOr<Key> key = KeyFromBytes(request->key(), "key");
          if (!key.ok()) return key.status();
          std::optional<Key> ns;
          if (!request->namespace_id().empty()) {
            absl::StatusOr<Key> parsed = KeyFromBytes(request->namespace_id(), "namespace_id");
            if (!parsed.ok()) return parsed.status();
            ns = *parsed;
          }
          response->set_evicted(store_->EraseIf([&](const BlockMeta& m) {
            return m.id.key == *key && (!ns || m.id.ns == *ns);
          }));
          return absl::OkStatus();
        }
        case v1::EvictRequest::kNamespace: {
          absl::StatusOr<Key> ns = KeyFromBytes(request->namespace_(), "namespace");
          if (!ns.ok()) return ns.status();
          response->set_evicted(
              store_->EraseIf([&](const BlockMeta& m) { return m.id.ns == *ns; }));
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
    return Answer(ctx, [&]() -> absl::Status {
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
    return Answer(ctx, [&] {
      *response = config_();
      return absl::OkStatus();
    });
  }

 private:
  // Runs `body`, records its latency and finishes the call with its status.
  template <typename Body>
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, Body body) {
    const absl::Time start = absl::Now();
    const absl::Status status = body();
    metrics_->ObserveRpc(Rpc::kAdmin, absl::Now() - start, status.ok());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  TieredStore* const store_;
  ServerMetrics* const metrics_;
  const std::function<v1::GetConfigResponse()> config_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewAdminService(
    TieredStore* store, ServerMetrics* metrics, std::function<v1::GetConfigResponse()> config) {
  return std::make_unique<AdminServiceImpl>(store, metrics, std::move(config));
}

}  // namespace kvcache
