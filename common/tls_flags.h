// The TLS command-line flags, defined once for every kvcache binary (common/tls.h says what
// each file is for):
//   clients and servers: --tls-cert, --tls-key (this process's identity)
//   clients:             --tls-ca (verifies the server), --tls-server-name,
//                        --token-file (the caller's bearer token)
//   servers:             --tls-client-ca (requires client certificates: mTLS),
//                        --tls-reload-interval, --allow-plaintext
// A binary links kvcache_tls_client_flags, or kvcache_tls_server_flags (which brings both
// sets: a server that also connects, such as the worker, uses one identity both ways).
// A subcommand FlagScope lists them with kTlsClientFlagNames / kTlsServerFlagNames.

#ifndef KVCACHE_COMMON_TLS_FLAGS_H_
#define KVCACHE_COMMON_TLS_FLAGS_H_

#include "common/tls.h"

namespace kvcache {

// For FlagScope::shared (comma separated, underscore spelling).
inline constexpr char kTlsClientFlagNames[] =
    "tls_ca,tls_cert,tls_key,tls_server_name,token_file";

// The client flags as options.
TlsClientOptions TlsClientOptionsFromFlags();

// The server flags as options, and --allow-plaintext.
TlsServerOptions TlsServerOptionsFromFlags();
bool AllowPlaintextFromFlag();

}  // namespace kvcache

#endif  // KVCACHE_COMMON_TLS_FLAGS_H_
