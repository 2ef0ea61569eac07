#include "client/admin_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>

#include "absl/status/status.h"
#include "client/call_util_internal.h"
#include "common/tls.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "kvcache/v1/cache.grpc.pb.h"

namespace kvcache {
namespace {

namespace health = ::grpc::health::v1;

class GrpcAdminClient final : public AdminClient {
 public:
  GrpcAdminClient(const AdminClientOptions& options,
                  std::shared_ptr<grpc::ChannelCredentials> credentials, std::string token)
      : options_(options), token_(std::move(token)) {
    grpc::ChannelArguments args;
    AddTlsChannelArgs(options.tls, &args);
    internal::AddFastReconnectArgs(&args);
    channel_ = grpc::CreateCustomChannel(options.target, std::move(credentials), args);
    admin_ = v1::AdminService::NewStub(channel_);
    health_ = health::Health::NewStub(channel_);
  }

  absl::StatusOr<std::string> Health() override {
    health::HealthCheckResponse resp;
    grpc::Status s = Retried([&] {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      return health_->Check(&ctx, health::HealthCheckRequest(), &resp);
    });
    if (!s.ok()) return Error(s, "Health.Check");
    return health::HealthCheckResponse::ServingStatus_Name(resp.status());
  }

  absl::StatusOr<v1::GetStatsResponse> GetStats() override {
    return Call(&v1::AdminService::Stub::GetStats, v1::GetStatsRequest(), "GetStats");
  }
  absl::StatusOr<v1::ListBlocksResponse> ListBlocks(const v1::ListBlocksRequest& r) override {
    return Call(&v1::AdminService::Stub::ListBlocks, r, "ListBlocks");
  }
  absl::StatusOr<v1::InspectBlockResponse> InspectBlock(
      const v1::InspectBlockRequest& r) override {
    return Call(&v1::AdminService::Stub::InspectBlock, r, "InspectBlock");
  }
  absl::StatusOr<v1::EvictResponse> Evict(const v1::EvictRequest& r) override {
    return Call(&v1::AdminService::Stub::Evict, r, "Evict");
  }
  absl::StatusOr<v1::FlushResponse> Flush(const v1::FlushRequest& r) override {
    return Call(&v1::AdminService::Stub::Flush, r, "Flush");
  }
  absl::StatusOr<v1::GetConfigResponse> GetConfig() override {
    return Call(&v1::AdminService::Stub::GetConfig, v1::GetConfigRequest(), "GetConfig");
  }
  absl::StatusOr<v1::ListConflictsResponse> ListConflicts(
      const v1::ListConflictsRequest& r) override {
    return Call(&v1::AdminService::Stub::ListConflicts, r, "ListConflicts");
  }

 private:
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(grpc::Status (v1::AdminService::Stub::*method)(grpc::ClientContext*,
                                                                           const Req&, Resp*),
                            const Req& req, absl::string_view name) {
    Resp resp;
    grpc::Status s = Retried([&] {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      return (admin_.get()->*method)(&ctx, req, &resp);
    });
    if (!s.ok()) return Error(s, name);
    return resp;
  }

  // Every admin call is idempotent: one that found no connection is retried once the channel
  // reconnects (internal::RetryAfterReconnect).
  grpc::Status Retried(const std::function<grpc::Status()>& call) {
    return internal::RetryAfterReconnect(channel_.get(), &down_, call);
  }

  absl::Status Error(const grpc::Status& s, absl::string_view rpc) const {
    return internal::CallError(s, rpc, options_.target);
  }

  void SetDeadline(grpc::ClientContext* ctx) const {
    internal::PrepareCall(ctx, options_.timeout, token_);
  }

  const AdminClientOptions options_;
  const std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<bool> down_{false};  // See internal::RetryAfterReconnect.
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<health::Health::Stub> health_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AdminClient>> NewAdminClient(const AdminClientOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("admin client: --server (host:port) is empty");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<std::string> token = BearerToken(options.tls);
  if (!token.ok()) return token.status();
  return std::make_unique<GrpcAdminClient>(options, *std::move(credentials), *std::move(token));
}

}  // namespace kvcache
