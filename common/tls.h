// Transport security for kvcache's gRPC surfaces: the one place that turns PEM file paths
// into gRPC server and channel credentials (docs/security.md).
//
// Naming, the same in every binary and options struct:
//   cert_file / key_file   this process's own identity (a server's certificate; a client's
//                          certificate for mutual TLS). --tls-cert, --tls-key.
//   ca_file                the CA bundle that verifies the SERVER a client connects to.
//                          --tls-ca.
//   client_ca_file         the CA bundle a server verifies CLIENT certificates with; when set,
//                          the server requires one (mutual TLS). --tls-client-ca.
//
// Servers read their files through gRPC's FileWatcherCertificateProvider: a certificate,
// key or client CA replaced on disk is picked up within `reload_interval` by new
// connections, without a restart (connections already open keep their session). Replace
// the key and certificate together (write both, then rename a directory or a symlink).
//
// Thread safety: the functions are thread-safe; the credentials they return are shared
// and immutable.

#ifndef KVCACHE_COMMON_TLS_H_
#define KVCACHE_COMMON_TLS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tls_options.h"

namespace kvcache {

// Checks the files (readable, PEM, the key matches the certificate) so that a bad flag is
// an error at start rather than a failed handshake later. Messages name the flag
// (--tls-cert, --tls-key, --tls-ca, --tls-client-ca).
//   INVALID_ARGUMENT  a file missing, unreadable, not PEM, or cert without key.
absl::Status CheckTlsServerOptions(const TlsServerOptions& options);
// Also checks the token file (--token-file).
absl::Status CheckTlsClientOptions(const TlsClientOptions& options);

// The bearer token of `options` (see TlsClientOptions::token), "" for none.
//   INVALID_ARGUMENT  token_file cannot be read or holds no token.
absl::StatusOr<std::string> BearerToken(const TlsClientOptions& options);

// Insecure credentials when !options.enabled(), else TLS (mTLS with client_ca_file) with
// files watched for changes. Checks the options first (same errors as above).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsServerOptions& options);

// Insecure credentials when !options.enabled(), else TLS credentials that verify the server
// (and present the client certificate when given). Checks the options first.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsClientOptions& options);

// For code that cannot return an error (a channel remade later, after the options were
// checked): MakeChannelCredentials, or when that fails with TLS on (a file gone since),
// TLS credentials trusting only the system roots: it fails closed, never plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsOrFailClosed(
    const TlsClientOptions& options);

// Adds what the channel needs besides credentials (the server name override).
void AddTlsChannelArgs(const TlsClientOptions& options, grpc::ChannelArguments* args);

// Whether a listen address ("host:port") accepts connections from this machine only:
// 127.0.0.0/8, ::1, "localhost". "0.0.0.0", "[::]", other names and addresses: false.
bool IsLoopbackAddress(absl::string_view address);

// The plaintext policy of every kvcache server (docs/security.md): TLS on: OK, empty
// warning. Plaintext on loopback: OK with a one-line warning. Plaintext on any other
// address: a usage error naming --allow-plaintext, unless `allow_plaintext`, then OK with
// a warning. `program` starts the warning ("kvcache-server").
absl::Status CheckPlaintextPolicy(absl::string_view program, absl::string_view listen,
                                  bool tls_enabled, bool allow_plaintext, std::string* warning);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_TLS_H_
