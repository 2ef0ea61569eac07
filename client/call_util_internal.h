// Helpers shared by the client library's gRPC clients (CacheClient, AdminClient). Internal
// to client/: not part of any public header, not for callers of the library.
//
// Thread safety: pure functions.

#ifndef KVCACHE_CLIENT_CALL_UTIL_INTERNAL_H_
#define KVCACHE_CLIENT_CALL_UTIL_INTERNAL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kvcache {
namespace internal {

// `error` with what failed in front of its message, "<rpc> to <target>: <message>"; the
// code is kept. OK stays OK.
absl::Status CallError(const absl::Status& error, absl::string_view rpc,
                       absl::string_view target);
// The same for a gRPC status (code mapped by FromGrpcStatus).
absl::Status CallError(const grpc::Status& error, absl::string_view rpc,
                       absl::string_view target);

// Sets `ctx`'s deadline `timeout` from now.
void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout);

// Adds the caller's bearer token (none when empty) as `authorization: Bearer <token>`.
void AddBearerToken(grpc::ClientContext* ctx, const std::string& token);

// Prepares a call: its deadline and the bearer token.
void PrepareCall(grpc::ClientContext* ctx, absl::Duration timeout, const std::string& token);

// One failed connect (a loaded node, a dropped SYN) is not a node that is down. Runs `call`
// (an idempotent call that makes its own ClientContext); when it fails UNAVAILABLE, waits up to
// 500 ms for `channel` to connect and, if it does, runs it once more. A wait that ends
// unconnected sets `*down`, and while it is set (until a call succeeds) calls are not
// retried: a node that is really down costs the wait once, not on every call.
grpc::Status RetryAfterReconnect(grpc::Channel* channel, std::atomic<bool>* down,
                                 const std::function<grpc::Status()>& call);

// Makes a failed connect tried again after 100 ms (then backing off to 1 s), not gRPC's 1 s
// (to 120 s): what lets RetryAfterReconnect find a fresh connection within its wait.
void AddFastReconnectArgs(grpc::ChannelArguments* args);

}  // namespace internal
}  // namespace kvcache

#endif  // KVCACHE_CLIENT_CALL_UTIL_INTERNAL_H_
