// The worker's gRPC front: kvcache.v1.InferenceService (proto/kvcache/v1/worker.proto) over an
// InferenceEngine, with grpc.health.v1.Health and server reflection on.
//
// Generate streams one message per generated token as soon as it is chosen, then a last
// message with the stats (prompt and cached tokens, TTFT). Requests run concurrently on
// gRPC's synchronous thread pool, each on its own KV pages; a client that goes away stops
// its request at the next token. With an --auth-tokens file (services/access.h, the cache
// server's format) every caller must present a token or client certificate listed there,
// of any role (UNAUTHENTICATED otherwise); the KV the worker shares is under its own
// cache credentials, whatever the caller's tenant.
//
// Thread safety: Shutdown and Wait may be called from any thread.
// Ownership: the engine is borrowed and must outlive the server.

#ifndef KVCACHE_WORKER_INFERENCE_SERVICE_H_
#define KVCACHE_WORKER_INFERENCE_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls_options.h"
#include "worker/engine.h"

namespace kvcache {

struct InferenceServerOptions {
  // host:port to listen on; port 0 picks a free port (see InferenceServer::address).
  // Default: 127.0.0.1:50061.
  std::string listen = "127.0.0.1:50061";
  // Largest request accepted, bytes (a prompt of N ids takes about 5N). Default: 16 MiB.
  int max_message_bytes = 16 << 20;
  // Transport security (common/tls.h, docs/security.md). Default: plaintext.
  TlsServerOptions tls;
  // Serve plaintext on an address that is not loopback (refused otherwise).
  // Default: false.
  bool allow_plaintext = false;
  // The callers file (docs/security.md), re-read by ReloadAccess. Empty: every caller is
  // anonymous, allowed only on a loopback `listen` or with `allow_anonymous`.
  // Default: empty.
  std::string auth_tokens_file;
  bool allow_anonymous = false;
};

class InferenceServer final {
 public:
  //   INVALID_ARGUMENT  empty listen address; bad TLS files; plaintext on a non-loopback
  //                     address without allow_plaintext, or no auth_tokens_file there
  //                     without allow_anonymous (usage errors); a malformed callers file.
  //   NOT_FOUND         auth_tokens_file does not exist.
  //   UNAVAILABLE       the address could not be bound (in use: never shared, or not local).
  static absl::StatusOr<std::unique_ptr<InferenceServer>> Start(
      InferenceEngine* engine, const InferenceServerOptions& options);
  ~InferenceServer();  // Shuts down (no grace) if still running.
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  // The bound address, host:port (the chosen port when options.listen had port 0).
  const std::string& address() const;

  // Re-reads the callers file (SIGHUP); on an error the callers in use are kept.
  absl::Status ReloadAccess();

  // Drains, then stops: health goes NOT_SERVING at once while the listener stays open and
  // requests are still served for `grace` (load balancers see the node leave instead of a
  // refused connection); then the listener closes and requests still running are
  // cancelled. Blocks for `grace`.
  void Shutdown(absl::Duration grace);

 private:
  class Impl;
  explicit InferenceServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs `request` on the kvcache-worker serving at `address` (`kvcache-worker generate
// --worker`): the tokens, the logits when asked for, and the stats the worker reports
// (its timings, the model being resident there). Errors: the worker's gRPC status, with
// the address in the message; INVALID_ARGUMENT for bad TLS options.
absl::StatusOr<GenerateResult> GenerateOnWorker(const std::string& address,
                                               const TlsClientOptions& tls,
                                               const GenerateRequest& request);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_INFERENCE_SERVICE_H_
