#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "common/tls_flags.h"

ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle of client certificates: every client must present one it verifies "
          "(mutual TLS); needs --tls-cert");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(60),
          "how often --tls-cert, --tls-key and --tls-client-ca are re-read (new connections "
          "use new files; no restart)");
ABSL_FLAG(bool, allow_plaintext, false,
          "serve without TLS on a non-loopback address (refused otherwise; a warning is "
          "printed)");

namespace kvcache {

TlsServerOptions TlsServerOptionsFromFlags() {
  const TlsClientOptions identity = TlsClientOptionsFromFlags();
  TlsServerOptions o;
  o.cert_file = identity.cert_file;
  o.key_file = identity.key_file;
  o.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  o.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  return o;
}

bool AllowPlaintextFromFlag() { return absl::GetFlag(FLAGS_allow_plaintext); }

}  // namespace kvcache
