// Reading a gRPC call's credentials for AccessControl: the bearer token of its
// `authorization` metadata and, over mTLS, its client certificate's identities. Used by the
// cache server's services and the worker's InferenceService (library kvcache_access).
//
// Thread safety: pure functions of the call.

#ifndef KVCACHE_SERVICES_ACCESS_GRPC_H_
#define KVCACHE_SERVICES_ACCESS_GRPC_H_

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "services/access.h"

namespace kvcache {

// The caller of `ctx` (see AccessControl::Authenticate).
//   UNAUTHENTICATED  no, unknown or expired credentials; an `authorization` that is not
//                    "Bearer <token>".
absl::StatusOr<Principal> AuthenticateCall(const AccessControl& access,
                                           const grpc::ServerContextBase& ctx);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_ACCESS_GRPC_H_
