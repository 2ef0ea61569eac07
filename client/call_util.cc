#include "client/call_util_internal.h"

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

}  // namespace internal
}  // namespace kvcache
