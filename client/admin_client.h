// The admin side of a kvcache server: stats, listing, inspection, eviction, flush, config
// and standard gRPC health checking. What kvcache-admin is built on. Messages are the
// kvcache.v1 protos (see proto/kvcache/v1/cache.proto for every field).
//
// Thread safety: safe to use from many threads. Each call blocks until done or until its
// deadline. Errors carry the server's gRPC code, with the RPC and target in the message.

#ifndef KVCACHE_CLIENT_ADMIN_CLIENT_H_
#define KVCACHE_CLIENT_ADMIN_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls_options.h"
#include "kvcache/v1/cache.pb.h"

namespace kvcache {

struct AdminClientOptions {
  std::string target;  // "host:port". Required.
  absl::Duration timeout = absl::Seconds(10);  // Per call. Default: 10 s.
  TlsClientOptions tls{};  // common/tls.h. Default: plaintext.
};

class AdminClient {
 public:
  AdminClient() = default;
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;
  virtual ~AdminClient() = default;

  // grpc.health.v1 Check of the whole server (service ""): "SERVING", "NOT_SERVING", ...
  virtual absl::StatusOr<std::string> Health() = 0;
  virtual absl::StatusOr<v1::GetStatsResponse> GetStats() = 0;
  virtual absl::StatusOr<v1::ListBlocksResponse> ListBlocks(const v1::ListBlocksRequest&) = 0;
  virtual absl::StatusOr<v1::InspectBlockResponse> InspectBlock(
      const v1::InspectBlockRequest&) = 0;
  virtual absl::StatusOr<v1::EvictResponse> Evict(const v1::EvictRequest&) = 0;
  virtual absl::StatusOr<v1::FlushResponse> Flush(const v1::FlushRequest&) = 0;
  virtual absl::StatusOr<v1::GetConfigResponse> GetConfig() = 0;
  virtual absl::StatusOr<v1::ListConflictsResponse> ListConflicts(
      const v1::ListConflictsRequest&) = 0;
};

//   INVALID_ARGUMENT  empty target; unreadable or mismatched TLS files.
absl::StatusOr<std::unique_ptr<AdminClient>> NewAdminClient(const AdminClientOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_ADMIN_CLIENT_H_
