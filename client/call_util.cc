#include "client/call_util_internal.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/grpc_status.h"

namespace kvcache {
namespace internal {

absl::Status CallError(const absl::Status& error, absl::string_view rpc,
                       absl::string_view target) {
  if (error.ok()) return error;
  return absl::Status(error.code(), absl::StrCat(rpc, " to ", target, ": ", error.message()));
}

absl::Status CallError(const grpc::Status& error, absl::string_view rpc,
                       absl::string_view target) {
  return CallError(FromGrpcStatus(error), rpc, target);
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

void AddBearerToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

void PrepareCall(grpc::ClientContext* ctx, absl::Duration timeout, const std::string& token) {
  SetDeadline(ctx, timeout);
  AddBearerToken(ctx, token);
}

grpc::Status RetryAfterReconnect(grpc::Channel* channel, std::atomic<bool>* down,
                                 const std::function<grpc::Status()>& call) {
  grpc::Status s = call();
  if (s.error_code() != grpc::StatusCode::UNAVAILABLE || down->load()) {
    if (s.ok()) down->store(false);
    return s;
  }
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(500))) {
    down->store(true);
    return s;
  }
  s = call();
  if (s.ok()) down->store(false);
  return s;
}

void AddFastReconnectArgs(grpc::ChannelArguments* args) {
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the least time a connect
  // attempt gets (20 s by default), and 100 ms fails connects on a loaded machine.
  args->SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args->SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
}

}  // namespace internal
}  // namespace kvcache
