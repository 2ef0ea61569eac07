// The one conversion between absl::Status (used everywhere inside kvcache) and grpc::Status
// (used on the wire). Codes map one to one; messages are kept. Thread safe.

#ifndef KVCACHE_PROTO_GRPC_STATUS_H_
#define KVCACHE_PROTO_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace kvcache {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace kvcache

#endif  // KVCACHE_PROTO_GRPC_STATUS_H_
