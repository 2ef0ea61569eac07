// What a kvcache server or client needs to know to speak TLS: PEM file paths (common/tls.h
// builds gRPC credentials from them; docs/security.md). Kept free of gRPC headers so that
// options structs (ServerOptions, CacheClientOptions) can hold them cheaply.

#ifndef KVCACHE_COMMON_TLS_OPTIONS_H_
#define KVCACHE_COMMON_TLS_OPTIONS_H_

#include <string>

#include "absl/time/time.h"

namespace kvcache {

struct TlsServerOptions {
  // PEM certificate chain and private key of the server. Both empty: plaintext; one without
  // the other is an error. Default: empty (plaintext).
  std::string cert_file;
  std::string key_file;
  // PEM CA bundle: when set, every client must present a certificate it verifies (mTLS);
  // a client without one fails its handshake. Default: empty (no client certificates).
  std::string client_ca_file;
  // How often the files are re-read (whole seconds, at least 1). Default: 60 s.
  absl::Duration reload_interval = absl::Seconds(60);

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

struct TlsClientOptions {
  // PEM CA bundle the server's certificate must chain to. Setting any field of this struct
  // turns TLS on; with TLS on and no ca_file, the system's roots are used. Default: empty.
  std::string ca_file;
  // The client's own certificate and key, for a server that requires them (mTLS); both or
  // neither. Default: empty.
  std::string cert_file;
  std::string key_file;
  // The name the server's certificate is checked against instead of the host dialled (for
  // nodes reached by IP address whose certificates name a service). Default: empty.
  std::string server_name;
  // The caller's bearer token for a server with --auth-tokens (docs/security.md), sent as
  // `authorization: Bearer <token>` on every call: `token` itself, or else the contents of
  // `token_file` (surrounding whitespace dropped). Not part of TLS: enabled() ignores them;
  // over plaintext the token travels in the clear. Default: none.
  std::string token;
  std::string token_file;

  bool enabled() const {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty() || !server_name.empty();
  }
};

}  // namespace kvcache

#endif  // KVCACHE_COMMON_TLS_OPTIONS_H_
