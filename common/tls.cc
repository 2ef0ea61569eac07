#include "common/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/cli.h"

namespace kvcache {
namespace {

absl::StatusOr<std::string> ReadPem(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' is not a PEM file"));
  }
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// A certificate and key pair that parse and belong together.
absl::Status CheckIdentity(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(cert_file.empty()
                                          ? "--tls-key is given without --tls-cert"
                                          : "--tls-cert is given without --tls-key");
  }
  if (cert_file.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> cert_pem = ReadPem("--tls-cert", cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadPem("--tls-key", key_file);
  if (!key_pem.ok()) return key_pem.status();
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(MemBio(*cert_pem).get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: '", cert_file, "' holds no PEM certificate"));
  }
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(MemBio(*key_pem).get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key: '", key_file, "' holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-key: '", key_file,
                                                   "' is not the key of --tls-cert '",
                                                   cert_file, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckCa(absl::string_view flag, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> pem = ReadPem(flag, path);
  if (!pem.ok()) return pem.status();
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(MemBio(*pem).get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", path, "' holds no PEM certificate"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTlsServerOptions(const TlsServerOptions& options) {
  if (!options.enabled()) {
    if (!options.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)");
    }
    return absl::OkStatus();
  }
  if (options.reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tls-reload-interval must be at least 1s");
  }
  if (absl::Status s = CheckIdentity(options.cert_file, options.key_file); !s.ok()) return s;
  return CheckCa("--tls-client-ca", options.client_ca_file);
}

absl::StatusOr<std::string> BearerToken(const TlsClientOptions& options) {
  if (!options.token.empty() || options.token_file.empty()) return options.token;
  std::ifstream in(options.token_file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file: cannot read '", options.token_file, "'"));
  }
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty() || token.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--token-file: '", options.token_file, "' must hold one token and nothing else"));
  }
  return token;
}

absl::Status CheckTlsClientOptions(const TlsClientOptions& options) {
  if (absl::Status s = BearerToken(options).status(); !s.ok()) return s;
  if (!options.enabled()) return absl::OkStatus();
  if (absl::Status s = CheckIdentity(options.cert_file, options.key_file); !s.ok()) return s;
  return CheckCa("--tls-ca", options.ca_file);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsServerOptions& options) {
  if (absl::Status s = CheckTlsServerOptions(options); !s.ok()) return s;
  if (!options.enabled()) return grpc::InsecureServerCredentials();
  const unsigned int interval = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options.reload_interval)));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.key_file, options.cert_file, options.client_ca_file, interval);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (!options.client_ca_file.empty()) {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsClientOptions& options) {
  if (absl::Status s = CheckTlsClientOptions(options); !s.ok()) return s;
  if (!options.enabled()) return grpc::InsecureChannelCredentials();
  // Static files: a client re-reads them when it is made (clients are short-lived or
  // restart with their server-side peers; docs/security.md).
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) ssl.pem_root_certs = *ReadPem("--tls-ca", options.ca_file);
  if (!options.cert_file.empty()) {
    ssl.pem_cert_chain = *ReadPem("--tls-cert", options.cert_file);
    ssl.pem_private_key = *ReadPem("--tls-key", options.key_file);
  }
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsOrFailClosed(
    const TlsClientOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c = MakeChannelCredentials(options);
  if (c.ok()) return *c;
  return grpc::SslCredentials(grpc::SslCredentialsOptions());
}

void AddTlsChannelArgs(const TlsClientOptions& options, grpc::ChannelArguments* args) {
  if (options.enabled() && !options.server_name.empty()) {
    args->SetSslTargetNameOverride(options.server_name);
  }
}

bool IsLoopbackAddress(absl::string_view address) {
  absl::string_view host = address;
  const size_t colon = host.rfind(':');
  if (colon != absl::string_view::npos && host.find(']') == absl::string_view::npos &&
      host.find(':') == colon) {
    host = host.substr(0, colon);  // host:port (IPv4 or a name)
  } else if (absl::ConsumePrefix(&host, "[")) {
    host = host.substr(0, host.find(']'));  // [v6]:port
  }
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  const std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

absl::Status CheckPlaintextPolicy(absl::string_view program, absl::string_view listen,
                                  bool tls_enabled, bool allow_plaintext, std::string* warning) {
  warning->clear();
  if (tls_enabled) return absl::OkStatus();
  if (IsLoopbackAddress(listen)) {
    *warning = absl::StrCat(program, ": warning: plaintext gRPC on loopback ", listen,
                            " (no --tls-cert); any local process can call it");
    return absl::OkStatus();
  }
  if (!allow_plaintext) {
    return UsageError(absl::StrCat(
        "refusing to serve plaintext on non-loopback address ", listen,
        ": give --tls-cert and --tls-key, or --allow-plaintext to accept the risk "
        "(docs/security.md)"));
  }
  *warning = absl::StrCat(program, ": warning: PLAINTEXT gRPC on ", listen,
                          " (--allow-plaintext): anyone who reaches it can read and write "
                          "every block");
  return absl::OkStatus();
}

}  // namespace kvcache
