#include "absl/flags/flag.h"
#include "common/tls_flags.h"

ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle that verifies the server's certificate; turns TLS on "
          "(docs/security.md)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate of this process: a server's TLS identity, or a client's for "
          "mutual TLS (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, token_file, "",
          "file holding this caller's bearer token for a server with --auth-tokens "
          "(docs/security.md)");
ABSL_FLAG(std::string, tls_server_name, "",
          "name to check the server's certificate against instead of the host dialled");

namespace kvcache {

TlsClientOptions TlsClientOptionsFromFlags() {
  TlsClientOptions o;
  o.ca_file = absl::GetFlag(FLAGS_tls_ca);
  o.cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.key_file = absl::GetFlag(FLAGS_tls_key);
  o.server_name = absl::GetFlag(FLAGS_tls_server_name);
  o.token_file = absl::GetFlag(FLAGS_token_file);
  return o;
}

}  // namespace kvcache
